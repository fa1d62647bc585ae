"""Deterministic dict/list/str churn for the LD_PRELOAD tests.

Run with PYTHONMALLOC=malloc so that every Python object allocation goes
through the C allocator under test. Prints only values that do not depend
on hash seeds, thread scheduling or addresses, so the output of a run under
LD_PRELOAD can be compared byte for byte with a run without it.
"""

import collections
import hashlib
import json
import random
import re
import sys
import threading


def churn(seed, rounds):
    rng = random.Random(seed)
    digest = hashlib.sha256()
    table = {}
    log = []
    for r in range(rounds):
        # grow and shrink a dict of strings and lists
        for _ in range(200):
            k = "k%d" % rng.randrange(5000)
            n = rng.randrange(1, 60)
            if rng.random() < 0.7:
                table[k] = [str(rng.randrange(10**6)) * rng.randrange(1, 4) for _ in range(n)]
            else:
                table.pop(k, None)
        # big strings: join, split, replace, regex
        text = "|".join(",".join(v) for k, v in sorted(table.items())[:300])
        parts = text.split("|")
        text2 = text.replace(",", ";").upper()
        nums = re.findall(r"\d{5,}", text2)
        digest.update(text2[:2000].encode())
        digest.update(str(len(nums)).encode())
        # json round trip of a nested structure
        blob = {k: {"n": len(v), "first": v[0] if v else ""} for k, v in list(table.items())[:100]}
        back = json.loads(json.dumps(blob, sort_keys=True))
        assert back == blob
        # lists of tuples, sorting, counters
        items = sorted(((len(v), k) for k, v in table.items()), reverse=True)
        counts = collections.Counter(len(v) for v in table.values())
        log.append((r, len(table), items[0] if items else None, sum(counts.values()), len(parts)))
        if len(log) > 50:
            del log[:25]
        # bytes and bytearray growth
        ba = bytearray()
        for i in range(rng.randrange(100, 2000)):
            ba += bytes([i & 0xFF]) * (i % 17)
        digest.update(bytes(ba[-64:]))
    digest.update(repr(sorted(table.items())[:50]).encode())
    digest.update(repr(log).encode())
    return digest.hexdigest()


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    results = {}

    def worker(i):
        results[i] = churn(1000 + i, rounds)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    results["main"] = churn(7, rounds)
    for t in threads:
        t.join()
    for key in sorted(results, key=str):
        print(key, results[key])
    # one big allocation burst and release
    big = [str(i) * 10 for i in range(300000)]
    print("big", len(big), sum(map(len, big)))
    del big
    print("ok")


if __name__ == "__main__":
    main()
