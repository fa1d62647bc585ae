// cxx_containers.cpp - standard C++ containers across threads.
//
// Worker threads build and churn std::map, std::unordered_map, std::vector
// and std::string; a producer/consumer stage passes std::shared_ptr-owned
// vectors between threads through a queue, and the last owner (whichever
// thread drops it) frees the object. Also exercises over-aligned new
// (alignas(64)), nothrow new and new[]/delete[]. Every per-thread result is
// combined order-independently, so the printed checksums are deterministic
// and can be compared between runs with and without LD_PRELOAD.
#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

constexpr int kThreads = 4;
constexpr int kItems = 20000;
constexpr int kMessages = 4000;

std::uint64_t mix(std::uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

std::uint64_t fnv(const std::string& s, std::uint64_t h = 1469598103934665603ULL) {
    for (unsigned char c : s) {
        h ^= c;
        h *= 1099511628211ULL;
    }
    return h;
}

struct alignas(64) Cell {
    std::uint64_t v[3];
};

std::mutex fail_lock;
bool failed = false;

void fail(const char* what) {
    std::lock_guard<std::mutex> g(fail_lock);
    std::fprintf(stderr, "FAIL cxx_containers: %s\n", what);
    failed = true;
}

std::uint64_t containers_work(int t) {
    std::uint64_t sum = 0;

    // std::map with string keys, iterated in order
    std::map<std::string, int> m;
    for (int i = 0; i < kItems; i++) {
        std::uint64_t k = mix(static_cast<std::uint64_t>(t) * 1000003ULL + static_cast<std::uint64_t>(i));
        m["key-" + std::to_string(k % 100000) + std::string(k % 40, 'x')] += i;
    }
    for (auto it = m.begin(); it != m.end();) {
        if (it->second % 3 == 0)
            it = m.erase(it);
        else
            ++it;
    }
    for (const auto& kv : m)
        sum = fnv(kv.first, sum) + static_cast<std::uint64_t>(kv.second);

    // std::unordered_map: order-independent sum
    std::unordered_map<int, std::string> um;
    for (int i = 0; i < kItems; i++)
        um.emplace(i * 7 + t, std::string(static_cast<std::size_t>(i % 97), static_cast<char>('a' + i % 26)));
    for (int i = 0; i < kItems; i += 2)
        um.erase(i * 7 + t);
    um.rehash(um.size() * 4);
    std::uint64_t usum = 0;
    for (const auto& kv : um)
        usum += mix(static_cast<std::uint64_t>(kv.first)) ^ kv.second.size();
    sum += usum;

    // std::vector<std::string>: growth, sort, unique, shrink
    std::vector<std::string> v;
    for (int i = 0; i < kItems; i++)
        v.push_back(std::to_string(mix(static_cast<std::uint64_t>(i + t)) % 5000));
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
    v.shrink_to_fit();
    for (const auto& s : v)
        sum = fnv(s, sum);
    sum += v.size();

    // long strings built by appending
    std::string big;
    for (int i = 0; i < 3000; i++)
        big += std::to_string(i * t) + ",";
    sum = fnv(big, sum);

    // over-aligned new via std::vector and directly
    std::vector<Cell> cells(1000 + static_cast<std::size_t>(t));
    if (reinterpret_cast<std::uintptr_t>(cells.data()) % 64 != 0)
        fail("std::vector<alignas(64)> storage misaligned");
    for (std::size_t i = 0; i < cells.size(); i++)
        cells[i].v[0] = i;
    auto* one = new Cell{{1, 2, 3}};
    if (reinterpret_cast<std::uintptr_t>(one) % 64 != 0)
        fail("new alignas(64) misaligned");
    sum += one->v[2];
    delete one;
    auto* arr = new Cell[37];
    if (reinterpret_cast<std::uintptr_t>(arr) % 64 != 0)
        fail("new alignas(64)[] misaligned");
    delete[] arr;
    auto* nt = new (std::nothrow) std::uint64_t[5000];
    if (nt == nullptr)
        fail("nothrow new returned nullptr");
    else {
        nt[4999] = 7;
        sum += nt[4999];
        delete[] nt;
    }
    return sum;
}

// ---- shared_ptr producer/consumer ----

using Payload = std::vector<std::uint64_t>;

std::mutex q_lock;
std::condition_variable q_cond;
std::deque<std::shared_ptr<Payload>> queue;
int producers_left = kThreads;

std::mutex keep_lock;
std::vector<std::shared_ptr<Payload>> kept;  // some objects outlive the queue

void produce(int t) {
    for (int i = 0; i < kMessages; i++) {
        auto p = std::make_shared<Payload>(static_cast<std::size_t>(1 + (i * 13 + t) % 300));
        for (std::size_t k = 0; k < p->size(); k++)
            (*p)[k] = mix(static_cast<std::uint64_t>(t) << 32 | static_cast<std::uint64_t>(i)) + k;
        if (i % 10 == 0) {
            std::lock_guard<std::mutex> g(keep_lock);
            kept.push_back(p);  // second owner
        }
        {
            std::lock_guard<std::mutex> g(q_lock);
            queue.push_back(std::move(p));
        }
        q_cond.notify_one();
    }
    std::lock_guard<std::mutex> g(q_lock);
    if (--producers_left == 0)
        q_cond.notify_all();
}

std::uint64_t consume() {
    std::uint64_t sum = 0;
    for (;;) {
        std::shared_ptr<Payload> p;
        {
            std::unique_lock<std::mutex> g(q_lock);
            q_cond.wait(g, [] { return !queue.empty() || producers_left == 0; });
            if (queue.empty())
                return sum;
            p = std::move(queue.front());
            queue.pop_front();
        }
        for (auto x : *p)
            sum += x;
        // p is released here, possibly as its last owner
    }
}

}  // namespace

int main() {
    std::vector<std::uint64_t> results(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; t++)
        threads.emplace_back([t, &results] { results[static_cast<std::size_t>(t)] = containers_work(t); });
    for (auto& th : threads)
        th.join();
    threads.clear();
    std::uint64_t containers = 0;
    for (auto r : results)
        containers += r;

    std::vector<std::uint64_t> consumed(kThreads);
    for (int t = 0; t < kThreads; t++)
        threads.emplace_back([t] { produce(t); });
    for (int t = 0; t < kThreads; t++)
        threads.emplace_back([t, &consumed] { consumed[static_cast<std::size_t>(t)] = consume(); });
    for (auto& th : threads)
        th.join();
    std::uint64_t shared = 0;
    for (auto r : consumed)
        shared += r;
    // drop the retained owners from another thread than the producers
    std::uint64_t kept_sum = 0;
    std::thread dropper([&kept_sum] {
        std::lock_guard<std::mutex> g(keep_lock);
        for (const auto& p : kept)
            kept_sum += p->size() + static_cast<std::uint64_t>(p.use_count());
        kept.clear();
    });
    dropper.join();

    if (failed)
        return 1;
    std::printf("containers=%016llx\n", static_cast<unsigned long long>(containers));
    std::printf("shared=%016llx kept=%llu\n", static_cast<unsigned long long>(shared),
                static_cast<unsigned long long>(kept_sum));
    std::printf("ok\n");
    return 0;
}
