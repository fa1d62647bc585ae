//! Soak: a long, mixed, multi-threaded workload whose memory use must stay flat.
//!
//! Four slots each run a succession of short-lived worker threads (thread churn: hundreds of
//! threads are created and exit during the run). A worker allocates blocks of mixed sizes
//! (16 bytes to 6 MiB, mostly small), fills them with a pattern derived from the block's seed,
//! frees some itself, reallocs some, and trades others through a shared exchange where any
//! later worker, on any slot, checks and frees them (cross-thread frees, and blocks that
//! outlive the thread that allocated them). Every block's contents are checked when it is
//! freed or resized: a corrupted or stale byte fails the test with the block's seed.
//!
//! The main thread samples the resident set (`/proc/self/statm`) during the run; the live
//! data is bounded by construction, so the average RSS of the last third of the run must not
//! exceed that of the first third by more than a tolerance (a leak, or memory never given back
//! or never reused, shows as a trend). At the end, every block is freed and the heap count
//! must not have grown with the number of threads.
//!
//! Duration: 20 s, or `MAPALLOC_SOAK_SECS` seconds. Seed: `MAPALLOC_TEST_SEED` or the clock
//! (printed).

mod common;

use common::{
    Block, XorShift, alloc_block, block_layout, check, env_u64, fill_range, resident_bytes,
};
use core::alloc::GlobalAlloc;
use mapalloc::MapAlloc;
use std::collections::VecDeque;
use std::io::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: MapAlloc = MapAlloc;

const SLOTS: usize = 4;
/// Blocks a worker holds at most, and blocks waiting in the exchange at most.
const LOCAL_MAX: usize = 400;
const EXCHANGE_MAX: usize = 3000;

struct Shared {
    run_seed: u64,
    exchange: Mutex<VecDeque<Block>>,
    stop: AtomicBool,
    threads: AtomicU64,
    checked_bytes: AtomicU64,
    ops: AtomicU64,
}

impl Shared {
    fn alloc(&self, size: usize, seed: u64) -> Block {
        alloc_block(size, seed)
    }

    fn check(&self, b: &Block, what: &str) {
        // SAFETY: the block is live and filled with its pattern.
        unsafe {
            check(
                b.addr as *const u8,
                b.size,
                b.seed,
                &format!("MAPALLOC_TEST_SEED={:#x} {what}", self.run_seed),
            )
        };
        self.checked_bytes
            .fetch_add(b.size as u64, Ordering::Relaxed);
    }

    fn free(&self, b: Block, what: &str) {
        self.check(&b, what);
        // SAFETY: live block allocated with this layout.
        unsafe { MapAlloc.dealloc(b.addr as *mut u8, block_layout(b.size)) };
    }

    fn realloc(&self, b: Block, new_size: usize) -> Block {
        self.check(&b, "before realloc");
        // SAFETY: live block allocated with this layout; non-zero new size.
        let q = unsafe { MapAlloc.realloc(b.addr as *mut u8, block_layout(b.size), new_size) };
        assert!(!q.is_null(), "realloc to {new_size} failed");
        let keep = b.size.min(new_size);
        // SAFETY: realloc kept `keep` bytes; the block holds `new_size`.
        unsafe {
            check(
                q,
                keep,
                b.seed,
                &format!("MAPALLOC_TEST_SEED={:#x} after realloc", self.run_seed),
            );
            fill_range(q, keep, new_size, b.seed);
        }
        Block {
            addr: q as usize,
            size: new_size,
            seed: b.seed,
        }
    }
}

fn pick_size(rng: &mut XorShift) -> usize {
    match rng.range(0, 999) {
        0..=699 => rng.log_size(1024),
        700..=949 => rng.log_size(64 << 10),
        950..=997 => rng.log_size(512 << 10),
        _ => rng.range(1 << 20, 6 << 20),
    }
}

/// One short-lived worker thread's life.
fn worker(sh: &Shared, seed: u64) {
    let mut rng = XorShift::new(seed);
    let life = rng.range(500, 6000);
    let mut local: Vec<Block> = Vec::with_capacity(LOCAL_MAX);
    let mut n = 0u64;
    let mut next_seed = || {
        n += 1;
        seed.rotate_left(20) ^ n
    };
    for _ in 0..life {
        match rng.range(0, 99) {
            0..=39 if local.len() < LOCAL_MAX => {
                let size = pick_size(&mut rng);
                local.push(sh.alloc(size, next_seed()));
            }
            0..=59 if !local.is_empty() => {
                let i = rng.range(0, local.len() - 1);
                sh.free(local.swap_remove(i), "freed by its own thread");
            }
            60..=69 if !local.is_empty() => {
                let i = rng.range(0, local.len() - 1);
                let new_size = if rng.range(0, 1) == 0 {
                    local[i].size / 2 + 1
                } else {
                    pick_size(&mut rng)
                };
                let b = local.swap_remove(i);
                local.push(sh.realloc(b, new_size));
            }
            70..=84 if !local.is_empty() => {
                let i = rng.range(0, local.len() - 1);
                let b = local.swap_remove(i);
                let mut ex = sh.exchange.lock().unwrap();
                if ex.len() < EXCHANGE_MAX {
                    ex.push_back(b);
                } else {
                    drop(ex);
                    sh.free(b, "freed by its own thread (exchange full)");
                }
            }
            85..=99 => {
                let got = sh.exchange.lock().unwrap().pop_front();
                if let Some(b) = got {
                    if rng.range(0, 3) == 0 && local.len() < LOCAL_MAX {
                        sh.check(&b, "taken from the exchange");
                        local.push(b);
                    } else {
                        sh.free(b, "freed by another thread");
                    }
                }
            }
            _ => {}
        }
    }
    sh.ops.fetch_add(life as u64, Ordering::Relaxed);
    // Half of what is left outlives this thread.
    let mut ex = sh.exchange.lock().unwrap();
    while let Some(b) = local.pop() {
        if local.len() % 2 == 0 && ex.len() < EXCHANGE_MAX {
            ex.push_back(b);
        } else {
            sh.free(b, "freed at its thread's end");
        }
    }
}

#[test]
fn soak() {
    let run_seed = env_u64("MAPALLOC_TEST_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    let secs = std::env::var("MAPALLOC_SOAK_SECS")
        .ok()
        .map(|s| s.trim().parse::<f64>().expect("MAPALLOC_SOAK_SECS"))
        .unwrap_or(20.0);
    let dur = Duration::from_secs_f64(secs);
    let _ = writeln!(
        std::io::stderr(),
        "soak: MAPALLOC_TEST_SEED={run_seed:#x} for {dur:?}"
    );
    // The pattern stream is built once, before the first RSS sample.
    common::expected(0, 1);
    let sh = Shared {
        run_seed,
        exchange: Mutex::new(VecDeque::new()),
        stop: AtomicBool::new(false),
        threads: AtomicU64::new(0),
        checked_bytes: AtomicU64::new(0),
        ops: AtomicU64::new(0),
    };
    let (heaps_before, large_live_before) = {
        let s = mapalloc::stats();
        (
            s.heaps_live + s.heaps_abandoned,
            s.large_allocs - s.large_frees,
        )
    };
    let start = Instant::now();
    let mut samples: Vec<(f64, u64)> = Vec::new();
    std::thread::scope(|s| {
        for slot in 0..SLOTS {
            let sh = &sh;
            s.spawn(move || {
                let mut k = 0u64;
                while !sh.stop.load(Ordering::Relaxed) {
                    k += 1;
                    let seed = run_seed ^ ((slot as u64) << 48) ^ k.wrapping_mul(0x9E37_79B9);
                    std::thread::scope(|s2| {
                        s2.spawn(|| worker(sh, seed));
                    });
                    sh.threads.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        while start.elapsed() < dur {
            std::thread::sleep(Duration::from_millis(100));
            samples.push((start.elapsed().as_secs_f64(), resident_bytes() as u64));
        }
        sh.stop.store(true, Ordering::Relaxed);
    });
    // Drain what is left in the exchange.
    let left: Vec<Block> = sh.exchange.lock().unwrap().drain(..).collect();
    for b in left {
        sh.free(b, "freed at the end");
    }
    // The exchange's own buffer may have grown to a large block (above 64 KiB).
    sh.exchange.lock().unwrap().shrink_to_fit();
    let threads = sh.threads.load(Ordering::Relaxed);
    let s = mapalloc::stats();
    println!(
        "soak: at the end: segments {} MiB, committed {} MiB, large cached {} MiB, small live {} KiB",
        s.segment_bytes >> 20,
        s.committed_bytes >> 20,
        s.large_cached_bytes >> 20,
        s.small_live_bytes >> 10
    );
    let heaps = s.heaps_live + s.heaps_abandoned;
    let third = samples.len() / 3;
    let avg = |v: &[(f64, u64)]| v.iter().map(|x| x.1).sum::<u64>() / v.len().max(1) as u64;
    let first = avg(&samples[..third]);
    let last = avg(&samples[samples.len() - third..]);
    let peak = samples.iter().map(|x| x.1).max().unwrap_or(0);
    println!(
        "soak: {threads} threads, {} operations, {} MiB checked; RSS first third {} MiB, last \
         third {} MiB, peak {} MiB; heaps {heaps_before} -> {heaps}",
        sh.ops.load(Ordering::Relaxed),
        sh.checked_bytes.load(Ordering::Relaxed) >> 20,
        first >> 20,
        last >> 20,
        peak >> 20
    );
    assert!(threads >= 20, "only {threads} worker threads ran");
    assert!(third >= 2, "too few RSS samples ({})", samples.len());
    // Tolerance: a quarter of the early level plus 32 MiB (a few large blocks and cached
    // segments more or less at the moment of sampling).
    assert!(
        last <= first + first / 4 + (32 << 20),
        "RSS grew: first third {} MiB, last third {} MiB (MAPALLOC_TEST_SEED={run_seed:#x})",
        first >> 20,
        last >> 20
    );
    // Threads came and went by the hundred; heaps are reused, not piled up.
    assert!(
        heaps <= heaps_before + 4 * SLOTS as u64 + 8,
        "{threads} short-lived threads left {heaps} heaps (from {heaps_before})"
    );
    assert_eq!(
        s.large_allocs - s.large_frees,
        large_live_before,
        "large blocks still live after everything was freed"
    );
}
