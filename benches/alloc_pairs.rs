//! Allocation workloads run against `mapalloc::MapAlloc`, `std::alloc::System` (glibc malloc)
//! and `mimalloc::MiMalloc` in the same run, each called through the `GlobalAlloc` trait:
//!
//! - `pair/<size>`: one `alloc` + `dealloc` of `size` bytes per iteration.
//! - `mixed/window1000`: a window of 1000 live blocks; each iteration frees a random one and
//!   allocates a replacement of a random size from 8 B to 64 KiB (logarithm of the size
//!   roughly uniform, fixed-seed xorshift, so every allocator sees the same sequence).
//! - `vec_push/100k`: `Vec<u64>`-style growth by push to 100 000 elements, the buffer grown by
//!   doubling with `realloc`.
//!
//! The benchmark binary itself runs on the default (system) allocator.

use core::alloc::{GlobalAlloc, Layout};
use criterion::{Bencher, Criterion, Throughput, black_box};
use std::alloc::{System, handle_alloc_error};
use std::time::Duration;

/// A workload, written once and monomorphised for each allocator (no dynamic dispatch in the
/// timed loop).
trait Workload {
    fn run<A: GlobalAlloc>(&self, b: &mut Bencher<'_>, a: &A);
}

/// Benchmark group `name` with one function per allocator: `mapalloc`, `system`, `mimalloc`.
/// `elements` is the number of operations one iteration performs.
fn compare(c: &mut Criterion, name: &str, elements: u64, w: impl Workload) {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(elements));
    g.bench_function("mapalloc", |b| w.run(b, &mapalloc::MapAlloc));
    g.bench_function("system", |b| w.run(b, &System));
    g.bench_function("mimalloc", |b| w.run(b, &mimalloc::MiMalloc));
    g.finish();
}

/// One `alloc` + `dealloc` of this many bytes per iteration.
struct Pair(usize);

impl Workload for Pair {
    fn run<A: GlobalAlloc>(&self, b: &mut Bencher<'_>, a: &A) {
        let layout = Layout::from_size_align(self.0, 8).unwrap();
        b.iter(|| {
            // SAFETY: `layout` has a non-zero size; the block is freed with the same layout.
            unsafe {
                let p = a.alloc(layout);
                if p.is_null() {
                    handle_alloc_error(layout);
                }
                p.write(1);
                a.dealloc(black_box(p), layout);
            }
        });
    }
}

/// xorshift64: the same fixed sequence for every allocator.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A size from 8 B to 64 KiB, its logarithm roughly uniform.
    fn size(&mut self) -> usize {
        let r = self.next();
        let e = 3 + (r % 13) as usize; // 8 B ..= 32 KiB lower bounds
        (1 << e) + ((r >> 8) as usize & ((1 << e) - 1))
    }
}

const WINDOW: usize = 1000;

/// Random replacement in a window of live blocks of random sizes.
struct Mixed;

impl Workload for Mixed {
    fn run<A: GlobalAlloc>(&self, b: &mut Bencher<'_>, a: &A) {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let alloc = |layout: Layout| {
            // SAFETY: every layout here has a non-zero size.
            let p = unsafe { a.alloc(layout) };
            if p.is_null() {
                handle_alloc_error(layout);
            }
            // SAFETY: `p` is a live block of at least one byte.
            unsafe { p.write(1) };
            p
        };
        let mut live: Vec<(*mut u8, Layout)> = (0..WINDOW)
            .map(|_| {
                let layout = Layout::from_size_align(rng.size(), 8).unwrap();
                (alloc(layout), layout)
            })
            .collect();
        b.iter(|| {
            let r = rng.next();
            let slot = &mut live[(r % WINDOW as u64) as usize];
            // SAFETY: the slot holds a live block allocated with its layout.
            unsafe { a.dealloc(slot.0, slot.1) };
            let layout = Layout::from_size_align(rng.size(), 8).unwrap();
            *slot = (black_box(alloc(layout)), layout);
        });
        for (p, layout) in live {
            // SAFETY: every slot holds a live block allocated with its layout.
            unsafe { a.dealloc(p, layout) };
        }
    }
}

const PUSHES: usize = 100_000;

/// `Vec<u64>`-style growth by push, doubling with `realloc`.
struct VecPush;

impl Workload for VecPush {
    fn run<A: GlobalAlloc>(&self, b: &mut Bencher<'_>, a: &A) {
        let layout = |n: usize| Layout::array::<u64>(n).unwrap();
        b.iter(|| {
            let (mut ptr, mut cap) = (core::ptr::null_mut::<u64>(), 0usize);
            for i in 0..PUSHES {
                if i == cap {
                    let new_cap = (cap * 2).max(4);
                    // SAFETY: `ptr` is null (first growth) or a live block allocated with
                    // `layout(cap)`; the sizes are non-zero and small.
                    let p = unsafe {
                        if cap == 0 {
                            a.alloc(layout(new_cap))
                        } else {
                            a.realloc(ptr.cast(), layout(cap), layout(new_cap).size())
                        }
                    };
                    if p.is_null() {
                        handle_alloc_error(layout(new_cap));
                    }
                    (ptr, cap) = (p.cast(), new_cap);
                }
                // SAFETY: `i < cap`, inside the live block.
                unsafe { ptr.add(i).write(i as u64) };
            }
            // SAFETY: `ptr` is a live block allocated with `layout(cap)`.
            unsafe { a.dealloc(black_box(ptr).cast(), layout(cap)) };
        });
    }
}

fn benches(c: &mut Criterion) {
    for size in [16, 64, 256, 1024, 4096, 32768] {
        compare(c, &format!("pair/{size}"), 1, Pair(size));
    }
    compare(c, "mixed/window1000", 1, Mixed);
    compare(c, "vec_push/100k", PUSHES as u64, VecPush);
}

criterion::criterion_group! {
    name = alloc_pairs;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    targets = benches
}
criterion::criterion_main!(alloc_pairs);
