//! The workloads of the Rust criterion benches, shared by one bench binary per allocator.
//!
//! Each `benches/rust_<allocator>.rs` sets its own `#[global_allocator]` and calls [`all`],
//! so the allocators never share a process or a heap. Every allocation goes through the
//! global allocator (`std::alloc::alloc`, `Box`, `Vec`, `BTreeMap`), the way a Rust program
//! uses it. Benchmark ids are `<group>/<allocator>/<parameter>`, so one `cargo bench` run
//! lists the allocators next to each other per workload:
//!
//! ```sh
//! cargo bench --bench rust_mapalloc --bench rust_system --bench rust_mimalloc \
//!     --bench rust_jemalloc --bench rust_snmalloc
//! ```

use std::alloc::{Layout, alloc, dealloc};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::mpsc::sync_channel;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};

/// Short runs: the point is the comparison between allocators within one run.
pub fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
}

/// Every workload, labelled with the allocator's name.
pub fn all(c: &mut Criterion, allocator: &str) {
    alloc_free(c, allocator);
    box_churn(c, allocator);
    vec_growth(c, allocator);
    btree_churn(c, allocator);
    producer_consumer(c, allocator);
}

/// A seeded xorshift generator: the same sequence under every allocator.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// One allocation immediately freed, by size: the fast path of each size class.
fn alloc_free(c: &mut Criterion, allocator: &str) {
    let mut g = c.benchmark_group("alloc_free");
    for size in [16usize, 64, 256, 1024, 4096, 16384, 65536] {
        let layout = Layout::from_size_align(size, 8).expect("valid layout");
        g.bench_with_input(BenchmarkId::new(allocator, size), &layout, |b, &layout| {
            b.iter(|| {
                // SAFETY: the layout has a non-zero size; the block is freed once, with the
                // layout it was allocated with.
                unsafe {
                    let p = alloc(layout);
                    assert!(!p.is_null());
                    p.write(1);
                    dealloc(black_box(p), layout);
                }
            });
        });
    }
    g.finish();
}

/// Random replacement in a set of 4096 live boxes of 48 bytes.
fn box_churn(c: &mut Criterion, allocator: &str) {
    let mut g = c.benchmark_group("box_churn");
    g.throughput(Throughput::Elements(1024));
    g.bench_function(BenchmarkId::new(allocator, 4096), |b| {
        let mut live: Vec<Box<[u64; 6]>> = (0..4096).map(|i| Box::new([i; 6])).collect();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        b.iter(|| {
            for i in 0..1024u64 {
                let k = rng.below(live.len());
                let fresh = black_box(Box::new([i; 6]));
                drop(black_box(std::mem::replace(&mut live[k], fresh)));
            }
        });
        black_box(&live);
    });
    g.finish();
}

/// `Vec::push` from empty, letting the vector grow by reallocation.
fn vec_growth(c: &mut Criterion, allocator: &str) {
    let mut g = c.benchmark_group("vec_growth");
    for n in [1_000u64, 1_000_000] {
        g.throughput(Throughput::Elements(n));
        g.bench_with_input(BenchmarkId::new(allocator, n), &n, |b, &n| {
            b.iter(|| {
                let mut v = Vec::new();
                for i in 0..n {
                    v.push(i);
                }
                black_box(v)
            });
        });
    }
    g.finish();
}

/// Inserts and removals in a `BTreeMap<u64, u64>` of about 10,000 entries.
fn btree_churn(c: &mut Criterion, allocator: &str) {
    let mut g = c.benchmark_group("btree_churn");
    g.throughput(Throughput::Elements(4096));
    g.bench_function(BenchmarkId::new(allocator, 10_000), |b| {
        let mut map: BTreeMap<u64, u64> = (0..10_000).map(|k| (k * 2, k)).collect();
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        b.iter(|| {
            for _ in 0..2048 {
                let k = rng.below(20_000) as u64;
                map.insert(k, k);
                map.remove(&(rng.below(20_000) as u64));
            }
        });
        black_box(&map);
    });
    g.finish();
}

/// Boxes allocated on one thread and dropped on another: batches of 64 boxed 64-byte
/// values through a bounded channel. One iteration is one batch.
fn producer_consumer(c: &mut Criterion, allocator: &str) {
    let mut g = c.benchmark_group("producer_consumer");
    g.throughput(Throughput::Elements(64));
    g.bench_function(BenchmarkId::new(allocator, 64), |b| {
        b.iter_custom(|iters| {
            let (tx, rx) = sync_channel::<Vec<Box<[u64; 8]>>>(16);
            let consumer = thread::spawn(move || {
                let mut n = 0u64;
                for batch in rx {
                    n += batch.len() as u64;
                }
                n
            });
            let start = Instant::now();
            for i in 0..iters {
                let batch: Vec<Box<[u64; 8]>> = (0..64).map(|j| Box::new([i ^ j; 8])).collect();
                tx.send(batch).expect("consumer alive");
            }
            drop(tx);
            let received = consumer.join().expect("consumer finished");
            let elapsed = start.elapsed();
            assert_eq!(received, iters * 64);
            elapsed
        });
    });
    g.finish();
}
