//! Differential random test: seeded sequences of allocator calls on several threads, checked
//! against a shadow model of what every live block must be.
//!
//! Each worker runs a random mix of `alloc`, aligned `alloc` (power-of-two alignments up to
//! 64 KiB, now and then up to 4 MiB), `alloc_zeroed`, `realloc` (growing and shrinking),
//! `dealloc`, `usable_size`, the C-semantics calls of `mapalloc::c_api` (`malloc`, `calloc`,
//! `aligned_alloc`, `posix_memalign`, `realloc`, `free`, `free_sized`,
//! `malloc_usable_size`), and hands blocks to other workers, which check, resize and free them
//! (cross-thread frees and reallocs). The shadow model keeps, for every live block, its
//! address, the size asked for, its alignment, the bytes written and the seed of their pattern
//! (derived from the run's seed and the block's id). Checked:
//! - contents: every byte written is still there when the block is checked, resized or freed;
//!   `realloc` keeps the prefix; `alloc_zeroed`/`calloc` blocks read as zero;
//! - alignment honoured; every block at least 16-byte aligned;
//! - usable size >= requested, and every usable byte can be written (the tail is filled too);
//! - live blocks never overlap: at checkpoints all workers stop, publish their blocks (with
//!   their usable sizes) and one of them sorts the intervals and checks neighbours (and now
//!   and then calls `mapalloc::trim`, so that trimming runs under live blocks too).
//!
//! Seed: `MAPALLOC_TEST_SEED` (decimal or 0x-hex), else derived from the clock; it is printed,
//! and named in every failure message, so a failing run can be replayed. The per-thread
//! sequences are reproducible; which thread a handed-over block reaches first is not.
//! Duration: 3 s, or `MAPALLOC_SOAK_SECS` seconds.

mod common;

use common::{Gate, XorShift, check, check_zero, env_u64, fill_range};
use core::alloc::{GlobalAlloc, Layout};
use core::ffi::c_void;
use mapalloc::{MapAlloc, c_api};
use std::io::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: MapAlloc = MapAlloc;

const THREADS: usize = 4;
/// Operations per worker between checkpoints.
const OPS_PER_ROUND: usize = 3000;
/// Live blocks a worker keeps at most, and bytes (beyond which it frees instead).
const MAX_LIVE: usize = 1500;
const MAX_LIVE_BYTES: usize = 96 << 20;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Api {
    /// `GlobalAlloc` (`dealloc`/`realloc` take the layout).
    Rust,
    /// `mapalloc::c_api` (`free`, C `realloc`).
    C,
}

#[derive(Debug)]
struct Shadow {
    addr: usize,
    /// Size asked for (the layout's size).
    size: usize,
    align: usize,
    /// Bytes `[0, filled)` hold the pattern of `seed` (filled may exceed size once the usable
    /// size was asked).
    filled: usize,
    seed: u64,
    api: Api,
}

fn seed_from_env() -> u64 {
    env_u64("MAPALLOC_TEST_SEED").unwrap_or_else(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        t.as_nanos() as u64 ^ (std::process::id() as u64) << 40
    })
}

fn duration_from_env(default: Duration) -> Duration {
    match std::env::var("MAPALLOC_SOAK_SECS") {
        Ok(s) => Duration::from_secs_f64(
            s.trim()
                .parse()
                .unwrap_or_else(|_| panic!("MAPALLOC_SOAK_SECS={s} is not a number")),
        ),
        Err(_) => default,
    }
}

/// The seed of a block's pattern: the run's seed, the thread and the block's number.
fn block_seed(run: u64, thread: usize, id: u64) -> u64 {
    run.rotate_left(17) ^ ((thread as u64) << 56) ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

struct Worker<'a> {
    t: usize,
    run_seed: u64,
    rng: XorShift,
    next_id: u64,
    live: Vec<Shadow>,
    live_bytes: usize,
    inboxes: &'a [Mutex<Vec<Shadow>>],
    ops: u64,
}

impl Worker<'_> {
    fn ctx(&self) -> String {
        format!(
            "MAPALLOC_TEST_SEED={:#x} thread {} op {}",
            self.run_seed, self.t, self.ops
        )
    }

    fn pick_size(&mut self) -> usize {
        match self.rng.range(0, 99) {
            0..=59 => self.rng.log_size(1024),
            60..=89 => self.rng.log_size(64 << 10),
            90..=97 => self.rng.log_size(1 << 20),
            _ => self.rng.range(1 << 20, 4 << 20),
        }
    }

    fn pick_align(&mut self) -> usize {
        if self.rng.range(0, 49) == 0 {
            1 << self.rng.range(17, 22) // 128 KiB .. 4 MiB: aligned mappings
        } else {
            1 << self.rng.range(5, 16) // 32 B .. 64 KiB: aligned size classes
        }
    }

    fn adopt(&mut self, b: Shadow) {
        let ctx = self.ctx();
        assert!(b.addr % b.align == 0, "{ctx}: {b:?} not aligned");
        assert!(b.addr % 16 == 0, "{ctx}: {b:?} not 16-byte aligned");
        self.live_bytes += b.size;
        self.live.push(b);
    }

    fn new_block(&mut self, p: *mut u8, size: usize, align: usize, api: Api, zeroed: bool) {
        let ctx = self.ctx();
        assert!(
            !p.is_null(),
            "{ctx}: allocation of {size} (align {align}) failed"
        );
        if zeroed {
            // SAFETY: a fresh block of `size` bytes, zeroed by contract.
            unsafe { check_zero(p, size, &ctx) };
        }
        self.next_id += 1;
        let seed = block_seed(self.run_seed, self.t, self.next_id);
        // SAFETY: the block is live and `size` bytes long.
        unsafe { fill_range(p, 0, size, seed) };
        self.adopt(Shadow {
            addr: p as usize,
            size,
            align,
            filled: size,
            seed,
            api,
        });
    }

    fn check(&self, b: &Shadow, what: &str) {
        // SAFETY: the model says the block is live with `filled` bytes of its pattern.
        unsafe {
            check(
                b.addr as *const u8,
                b.filled,
                b.seed,
                &format!("{} {what}", self.ctx()),
            )
        };
    }

    fn alloc(&mut self) {
        let size = self.pick_size();
        let (align, zeroed, api) = match self.rng.range(0, 9) {
            0..=3 => (16, false, Api::Rust),
            4 | 5 => (self.pick_align(), false, Api::Rust),
            6 => (1 << self.rng.range(0, 16), true, Api::Rust),
            7 => (16, self.rng.range(0, 1) == 0, Api::C),
            _ => (self.pick_align(), false, Api::C),
        };
        let p = match api {
            Api::Rust => {
                let l = Layout::from_size_align(size, align).unwrap();
                // SAFETY: non-zero size.
                unsafe {
                    if zeroed {
                        MapAlloc.alloc_zeroed(l)
                    } else {
                        MapAlloc.alloc(l)
                    }
                }
            }
            Api::C if align <= 16 => {
                if zeroed {
                    c_api::calloc(1, size).cast()
                } else {
                    c_api::malloc(size).cast()
                }
            }
            Api::C => {
                if self.rng.range(0, 1) == 0 {
                    c_api::aligned_alloc(align, size).cast()
                } else {
                    let mut p: *mut c_void = core::ptr::null_mut();
                    // SAFETY: valid out-pointer.
                    let r = unsafe { c_api::posix_memalign(&mut p, align, size) };
                    assert_eq!(r, 0, "{}: posix_memalign({align}, {size})", self.ctx());
                    p.cast()
                }
            }
        };
        self.new_block(p, size, align.max(16), api, zeroed);
    }

    fn free(&mut self, i: usize) {
        let b = self.live.swap_remove(i);
        self.check(&b, "before free");
        self.live_bytes -= b.size;
        // SAFETY: the block is live and allocated with this size and alignment.
        unsafe {
            match b.api {
                Api::Rust => MapAlloc.dealloc(
                    b.addr as *mut u8,
                    Layout::from_size_align(b.size, b.align).unwrap(),
                ),
                Api::C if b.addr % 3 == 0 => c_api::free_sized(b.addr as *mut c_void, b.size),
                Api::C => c_api::free(b.addr as *mut c_void),
            }
        }
    }

    fn realloc(&mut self, i: usize) {
        let new_size = match self.rng.range(0, 3) {
            0 => self.live[i].size / 2 + 1,
            1 => self.live[i].size + self.rng.range(1, 64),
            _ => self.pick_size(),
        };
        let b = self.live.swap_remove(i);
        self.check(&b, "before realloc");
        self.live_bytes -= b.size;
        // SAFETY: the block is live, allocated with this layout; non-zero new size.
        let q = unsafe {
            match b.api {
                Api::Rust => MapAlloc.realloc(
                    b.addr as *mut u8,
                    Layout::from_size_align(b.size, b.align).unwrap(),
                    new_size,
                ),
                Api::C => c_api::realloc(b.addr as *mut c_void, new_size).cast(),
            }
        };
        let ctx = self.ctx();
        assert!(!q.is_null(), "{ctx}: realloc {b:?} to {new_size} failed");
        // Every byte written survives, up to the new size: the usable tail too (glibc keeps
        // it as well; the API contract promises only min(old size, new size)).
        let keep = b.filled.min(new_size);
        // SAFETY: the block holds at least `keep` initialised bytes.
        unsafe {
            check(
                q,
                keep,
                b.seed,
                &format!("{ctx} after realloc of {b:?} to {new_size}"),
            )
        };
        // SAFETY: the block holds `new_size` bytes.
        unsafe { fill_range(q, keep, new_size, b.seed) };
        // C realloc only promises the fundamental alignment.
        let align = if b.api == Api::C { 16 } else { b.align };
        self.adopt(Shadow {
            addr: q as usize,
            size: new_size,
            align,
            filled: new_size,
            seed: b.seed,
            api: b.api,
        });
    }

    fn usable(&mut self, i: usize) {
        let b = &self.live[i];
        // SAFETY: a live block of ours.
        let u = unsafe {
            match b.api {
                Api::Rust => mapalloc::usable_size(b.addr as *const u8),
                Api::C => c_api::malloc_usable_size(b.addr as *mut c_void),
            }
        };
        let ctx = self.ctx();
        assert!(u >= b.size, "{ctx}: usable size {u} < requested for {b:?}");
        assert!(u >= b.filled, "{ctx}: usable size {u} shrank for {b:?}");
        // Every usable byte may be used: fill the tail too.
        // SAFETY: `u` bytes are usable.
        unsafe { fill_range(b.addr as *mut u8, b.filled, u, b.seed) };
        self.live[i].filled = u;
    }

    fn hand_over(&mut self, i: usize) {
        let b = self.live.swap_remove(i);
        self.check(&b, "before hand-over");
        self.live_bytes -= b.size;
        let to = (self.t + 1 + self.rng.range(0, THREADS - 2)) % THREADS;
        self.inboxes[to].lock().unwrap().push(b);
    }

    fn take_inbox(&mut self) {
        let got = std::mem::take(&mut *self.inboxes[self.t].lock().unwrap());
        for b in got {
            self.check(&b, "handed over from another thread");
            self.adopt(b);
        }
    }

    fn step(&mut self) {
        self.ops += 1;
        if self.ops % 64 == 0 {
            self.take_inbox();
        }
        let n = self.live.len();
        let full = n >= MAX_LIVE || self.live_bytes >= MAX_LIVE_BYTES;
        let r = self.rng.range(0, 99);
        if n == 0 || (!full && r < 40) {
            self.alloc();
            return;
        }
        let i = self.rng.range(0, n - 1);
        match r {
            _ if full => self.free(i),
            40..=69 => self.free(i),
            70..=84 => self.realloc(i),
            85..=94 => self.usable(i),
            _ => self.hand_over(i),
        }
    }

    fn drain(&mut self) {
        self.take_inbox();
        while !self.live.is_empty() {
            self.free(self.live.len() - 1);
        }
    }
}

/// Sorted-interval check of every live block of every worker (and of the inboxes).
fn check_no_overlap(blocks: &mut [(usize, usize, usize)], ctx: &str) {
    blocks.sort_unstable();
    for w in blocks.windows(2) {
        let (a, a_len, ta) = w[0];
        let (b, _, tb) = w[1];
        assert!(
            a + a_len <= b,
            "{ctx}: block {a:#x}+{a_len} (thread {ta}) overlaps block {b:#x} (thread {tb})"
        );
    }
}

fn usable_of(b: &Shadow) -> usize {
    // SAFETY: a live block of ours (checkpoints run while every worker waits).
    unsafe { mapalloc::usable_size(b.addr as *const u8) }
}

#[test]
fn differential_random() {
    let run_seed = seed_from_env();
    let dur = duration_from_env(Duration::from_secs(3));
    // Straight to the process's stderr (the harness captures `eprintln!`), so that the seed
    // is seen even when the allocator aborts the process or the run hangs.
    let _ = writeln!(
        std::io::stderr(),
        "differential: MAPALLOC_TEST_SEED={run_seed:#x} for {dur:?}"
    );
    let inboxes: Vec<Mutex<Vec<Shadow>>> = (0..THREADS).map(|_| Mutex::new(Vec::new())).collect();
    let published: Mutex<Vec<(usize, usize, usize)>> = Mutex::new(Vec::new());
    let barrier = Gate::new(THREADS);
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let totals: Vec<(u64, usize)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..THREADS)
            .map(|t| {
                let (inboxes, published, barrier, stop) = (&inboxes, &published, &barrier, &stop);
                s.spawn(move || {
                    let _poison_on_panic = barrier.guard();
                    let mut w = Worker {
                        t,
                        run_seed,
                        rng: XorShift::new(
                            run_seed ^ (t as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407),
                        ),
                        next_id: 0,
                        live: Vec::new(),
                        live_bytes: 0,
                        inboxes,
                        ops: 0,
                    };
                    let mut rounds = 0;
                    loop {
                        for _ in 0..OPS_PER_ROUND {
                            w.step();
                        }
                        rounds += 1;
                        barrier.wait();
                        {
                            let mut p = published.lock().unwrap();
                            p.extend(w.live.iter().map(|b| (b.addr, usable_of(b), t)));
                            if t == 0 {
                                for (k, ib) in inboxes.iter().enumerate() {
                                    p.extend(
                                        ib.lock()
                                            .unwrap()
                                            .iter()
                                            .map(|b| (b.addr, usable_of(b), 100 + k)),
                                    );
                                }
                            }
                        }
                        if barrier.wait() {
                            let mut p = published.lock().unwrap();
                            check_no_overlap(
                                &mut p,
                                &format!("MAPALLOC_TEST_SEED={run_seed:#x} checkpoint {rounds}"),
                            );
                            p.clear();
                            // Give back what can be given back (own heap, abandoned heaps,
                            // caches) while the live blocks stay put.
                            if rounds % 4 == 0 {
                                mapalloc::trim();
                            }
                            stop.store(start.elapsed() >= dur, Ordering::Relaxed);
                        }
                        barrier.wait();
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                    }
                    barrier.wait(); // nobody hands blocks over any more
                    w.drain();
                    (w.ops, rounds)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for ib in &inboxes {
        assert!(ib.lock().unwrap().is_empty());
    }
    let ops: u64 = totals.iter().map(|t| t.0).sum();
    println!(
        "differential: {ops} operations, {} checkpoints in {:?}",
        totals[0].1,
        start.elapsed()
    );
    assert!(ops >= (THREADS * OPS_PER_ROUND) as u64);
}
