#pragma once
// Coarse-grained fork/join over [0, n): one std::thread per extra worker per
// call. Calls here are few and long (a layer's GEMM, a head's attention), so the
// ~50 us spawn cost is noise and a persistent pool would buy nothing measurable.
#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

namespace msa {

// fn(begin, end) on contiguous chunks; chunk boundaries are multiples of `grain`.
template <class Fn>
void parallel_for(long n, int threads, Fn&& fn, long grain = 1) {
    if (n <= 0) return;
    threads = std::max(1, threads);
    long chunks = (n + grain - 1) / grain;
    int workers = static_cast<int>(std::min<long>(threads, chunks));
    if (workers <= 1) {
        fn(0L, n);
        return;
    }
    auto range = [&](int w, long& b, long& e) {
        long cb = chunks * w / workers, ce = chunks * (w + 1) / workers;
        b = std::min(n, cb * grain);
        e = std::min(n, ce * grain);
    };
    std::vector<std::thread> pool;
    pool.reserve(workers - 1);
    for (int w = 1; w < workers; ++w) {
        long b, e;
        range(w, b, e);
        pool.emplace_back([&fn, b, e] { if (b < e) fn(b, e); });
    }
    long b, e;
    range(0, b, e);
    if (b < e) fn(b, e);
    for (auto& t : pool) t.join();
}

// Dynamic schedule: items handed out one at a time (uneven costs, e.g. causal rows).
template <class Fn>
void parallel_for_dynamic(long n, int threads, Fn&& fn) {
    if (n <= 0) return;
    threads = std::max(1, std::min<int>(threads, static_cast<int>(std::min<long>(n, 1 << 20))));
    if (threads == 1) {
        for (long i = 0; i < n; ++i) fn(i);
        return;
    }
    std::atomic<long> next{0};
    auto work = [&] {
        for (long i = next.fetch_add(1); i < n; i = next.fetch_add(1)) fn(i);
    };
    std::vector<std::thread> pool;
    for (int w = 1; w < threads; ++w) pool.emplace_back(work);
    work();
    for (auto& t : pool) t.join();
}

inline int default_threads() {
    unsigned h = std::thread::hardware_concurrency();
    return h ? static_cast<int>(h) : 1;
}

}  // namespace msa
