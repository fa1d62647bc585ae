//! Guards must not eat the mapping budget: with 10,000 live large blocks (256 KiB .. 2 MiB),
//! and with threads churning large and small blocks on top, the process stays below a
//! quarter of `vm.max_map_count` lines in `/proc/self/maps`. Guards made with `mprotect`
//! split a mapping each and took ~18,000 (23,000 with the threads) of the 16,382 allowed;
//! guard markers split none.
//!
//! Two faces: `tests/c/map_budget.c` under `LD_PRELOAD`, and the same workload in this
//! process with `MapAlloc` as the global allocator.

mod common;

use std::alloc::{GlobalAlloc, Layout};
use std::fs;
use std::sync::Barrier;
use std::thread;

use common::XorShift;
use common::preload::{self, target_dir};
use mapalloc::MapAlloc;

#[global_allocator]
static GLOBAL: MapAlloc = MapAlloc;

fn max_map_count() -> usize {
    fs::read_to_string("/proc/sys/vm/max_map_count")
        .expect("read /proc/sys/vm/max_map_count")
        .trim()
        .parse()
        .expect("parse max_map_count")
}

fn maps() -> usize {
    fs::read_to_string("/proc/self/maps")
        .expect("read /proc/self/maps")
        .lines()
        .count()
}

fn large_size(rng: &mut XorShift) -> usize {
    rng.range(256 << 10, 2 << 20) + rng.range(0, 4095)
}

/// A block of the global allocator whose first, middle and last bytes are written, then
/// checked (the rest is never touched, so 11 GiB of blocks cost little memory).
struct Block {
    p: *mut u8,
    n: usize,
}

// SAFETY: the block is owned memory, like a Box<[u8]>.
unsafe impl Send for Block {}

impl Block {
    fn layout(n: usize) -> Layout {
        Layout::from_size_align(n, 1).unwrap()
    }

    fn new(n: usize, tag: u8) -> Block {
        // SAFETY: n > 0.
        let p = unsafe { GLOBAL.alloc(Self::layout(n)) };
        assert!(!p.is_null(), "allocation of {n} bytes failed");
        let mut b = Block { p, n };
        b.mark(tag);
        b
    }

    fn offsets(&self) -> [usize; 3] {
        [0, self.n / 2, self.n - 1]
    }

    fn mark(&mut self, tag: u8) {
        for (k, o) in self.offsets().into_iter().enumerate() {
            // SAFETY: o < n.
            unsafe { self.p.add(o).write(tag ^ k as u8) };
        }
    }

    fn check(&self, tag: u8) {
        for (k, o) in self.offsets().into_iter().enumerate() {
            // SAFETY: o < n, and the byte was written by `mark`.
            let got = unsafe { self.p.add(o).read() };
            assert_eq!(
                got,
                tag ^ k as u8,
                "block of {} bytes corrupted at {o}",
                self.n
            );
        }
    }

    /// Grow to `n` bytes with `realloc` (in place, or moved with mremap), keeping the marks.
    fn grow(&mut self, n: usize, tag: u8) {
        // SAFETY: the block is live with this layout; n > self.n.
        let p = unsafe { GLOBAL.realloc(self.p, Self::layout(self.n), n) };
        assert!(!p.is_null(), "realloc to {n} bytes failed");
        self.p = p;
        self.check(tag);
        self.n = n;
        self.mark(tag);
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        // SAFETY: allocated with this layout, freed once.
        unsafe { GLOBAL.dealloc(self.p, Self::layout(self.n)) };
    }
}

#[test]
fn c_program_under_preload() {
    let bin = preload::compile_c("map_budget.c", &target_dir().join("map-budget"));
    let out = preload::run(&bin, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The counts, for the log of the test run.
    eprintln!("{stderr}");
    assert!(
        out.status.success()
            && String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|l| l == "ok"),
        "map_budget.c: {:?}\n{stderr}",
        out.status
    );
}

#[test]
fn rust_face_large_blocks_and_threads() {
    let budget = max_map_count() / 4;
    let mut rng = XorShift::new(7);
    let blocks: Vec<Block> = (0..10_000)
        .map(|i| Block::new(large_size(&mut rng), i as u8))
        .collect();
    let with_large = maps();
    eprintln!("maps with 10,000 live large blocks: {with_large} (budget {budget})");
    assert!(
        with_large < budget,
        "{with_large} mappings with 10,000 large blocks; budget {budget}"
    );

    const THREADS: usize = 4;
    let at_peak = Barrier::new(THREADS + 1);
    let counted = Barrier::new(THREADS + 1);
    let peak = thread::scope(|s| {
        for t in 0..THREADS {
            let (at_peak, counted) = (&at_peak, &counted);
            s.spawn(move || {
                let mut rng = XorShift::new(100 + t as u64);
                let size = |rng: &mut XorShift, i: usize| {
                    if i % 3 == 0 {
                        large_size(rng)
                    } else {
                        rng.range(16, 20_000)
                    }
                };
                let mut mine: Vec<Block> = (0..1500)
                    .map(|i| Block::new(size(&mut rng, i), i as u8))
                    .collect();
                for r in 0..20_000usize {
                    let i = rng.range(0, mine.len() - 1);
                    mine[i].check(i as u8);
                    if r % 4 == 0 && mine[i].n < (4 << 20) {
                        let n = mine[i].n + mine[i].n / 2 + 4096;
                        mine[i].grow(n, i as u8);
                    } else {
                        mine[i] = Block::new(size(&mut rng, r), i as u8);
                    }
                }
                at_peak.wait();
                counted.wait();
                for (i, b) in mine.iter().enumerate() {
                    b.check(i as u8);
                }
            });
        }
        at_peak.wait();
        let peak = maps();
        counted.wait();
        peak
    });
    eprintln!("maps with {THREADS} threads churning on top: {peak}");
    assert!(
        peak < budget,
        "{peak} mappings with {THREADS} threads on top of 10,000 large blocks; budget {budget}"
    );
    for (i, b) in blocks.iter().enumerate() {
        b.check(i as u8);
    }
}
