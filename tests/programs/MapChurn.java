// MapChurn.java - a JVM workload for the preload tests: threads that fill and
// churn a large HashMap each, string building, a shared ConcurrentHashMap, and
// a deterministic summary line per part. Run as `java MapChurn.java` (the JDK's
// single-file launcher compiles it in memory).
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.zip.CRC32;

public class MapChurn {
    static long work(int id, Map<Integer, Integer> shared) {
        HashMap<String, int[]> m = new HashMap<>();
        long sum = 0;
        for (int i = 0; i < 200_000; i++) {
            String k = "k" + id + ":" + ((i * 7919 + id * 104_729) % 100_003);
            int[] v = new int[1 + (i % 17)];
            v[0] = i;
            m.put(k, v);
            if (i % 3 == 0) {
                m.remove("k" + id + ":" + ((i / 3) * 7919 % 100_003));
            }
            shared.merge(i % 1000, 1, Integer::sum);
        }
        for (Map.Entry<String, int[]> e : m.entrySet()) {
            sum += e.getKey().length() + e.getValue().length + e.getValue()[0] % 13;
        }
        return sum * 31 + m.size();
    }

    public static void main(String[] args) throws Exception {
        int threads = 4;
        ConcurrentHashMap<Integer, Integer> shared = new ConcurrentHashMap<>();
        long[] results = new long[threads];
        List<Thread> ts = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            final int id = t;
            Thread th = new Thread(() -> results[id] = work(id, shared));
            ts.add(th);
            th.start();
        }
        for (Thread th : ts) {
            th.join();
        }
        CRC32 crc = new CRC32();
        for (int t = 0; t < threads; t++) {
            System.out.println("thread " + t + " " + results[t]);
            crc.update(Long.toString(results[t]).getBytes());
        }
        long total = 0;
        for (int v : shared.values()) {
            total += v;
        }
        System.out.println("shared " + shared.size() + " " + total);
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < 100_000; i++) {
            sb.append(i % 97).append(',');
        }
        crc.update(sb.toString().getBytes());
        System.out.println("crc " + Long.toHexString(crc.getValue()));
        System.out.println("ok");
    }
}
