//! Threads exchange blocks: each block is allocated and filled by one thread, checked and
//! freed (sometimes reallocated first) by another. Hundreds of thousands of cross-thread frees
//! of sizes from 1 B to 1 MiB.

mod common;

use common::{XorShift, check, fill};
use core::alloc::{GlobalAlloc, Layout};
use mapalloc::MapAlloc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Barrier, Mutex};
use std::thread;

#[global_allocator]
static GLOBAL: MapAlloc = MapAlloc;

/// A block in flight between threads. The address travels as an integer.
struct Block {
    addr: usize,
    size: usize,
    align: usize,
    from: usize,
    seq: u64,
}

impl Block {
    fn seed(&self) -> u64 {
        ((self.from as u64) << 56) ^ (self.seq << 21) ^ self.size as u64
    }

    fn layout(&self) -> Layout {
        Layout::from_size_align(self.size, self.align).unwrap()
    }

    /// Allocates and fills block number `seq` of thread `from`.
    fn new(rng: &mut XorShift, from: usize, seq: u64) -> Block {
        let size = match rng.range(0, 999) {
            0..=849 => rng.range(1, 256),
            850..=994 => rng.range(257, 64 << 10),
            _ => rng.range((64 << 10) + 1, 1 << 20),
        };
        let align = if seq % 64 == 0 {
            4096
        } else {
            1 << rng.range(0, 6)
        };
        let mut b = Block {
            addr: 0,
            size,
            align,
            from,
            seq,
        };
        // SAFETY: non-zero size.
        let p = unsafe { MapAlloc.alloc(b.layout()) };
        assert!(!p.is_null(), "alloc {size}");
        assert_eq!(
            p as usize % align.max(16),
            0,
            "{p:p}: size {size} align {align}"
        );
        // SAFETY: `p` is a live block of `size` bytes.
        unsafe { fill(p, size, b.seed()) };
        b.addr = p as usize;
        b
    }

    /// Checks the contents, sometimes reallocates (from a thread that does not own the block)
    /// and checks again, then frees.
    fn check_and_free(self, rng: &mut XorShift, by: usize) {
        let p = self.addr as *mut u8;
        let what = format!(
            "block {} of thread {} received by {by}",
            self.seq, self.from
        );
        // SAFETY: the block is live, `size` bytes, filled by its sender.
        unsafe { check(p, self.size, self.seed(), &what) };
        let (p, layout) = if self.seq % 8 == 3 {
            let new = rng.range(1, (self.size * 2).min(1 << 20));
            // SAFETY: `p` is live with `self.layout()`; `new` is non-zero and small.
            let q = unsafe { MapAlloc.realloc(p, self.layout(), new) };
            assert!(!q.is_null(), "realloc {} -> {new}", self.size);
            assert_eq!(
                q as usize % self.align,
                0,
                "realloc lost alignment {}",
                self.align
            );
            // SAFETY: `q` is live with `new` bytes, the first `min(size, new)` copied.
            unsafe {
                check(
                    q,
                    self.size.min(new),
                    self.seed(),
                    &format!("{what}, reallocated"),
                )
            };
            (q, Layout::from_size_align(new, self.align).unwrap())
        } else {
            (p, self.layout())
        };
        // SAFETY: `p` is live with `layout`.
        unsafe { MapAlloc.dealloc(p, layout) };
    }
}

const RING_THREADS: usize = 4;
const BLOCKS_PER_THREAD: u64 = 100_000;

/// Thread `i` sends every block it allocates to thread `i + 1` (mod n), which checks and
/// frees it. Each thread drains its inbox as it goes, so allocation and remote frees overlap.
#[test]
fn ring_of_threads_frees_each_others_blocks() {
    let (senders, receivers): (Vec<_>, Vec<_>) =
        (0..RING_THREADS).map(|_| mpsc::channel::<Block>()).unzip();
    let mut senders: Vec<Option<mpsc::Sender<Block>>> = senders.into_iter().map(Some).collect();
    let barrier = Barrier::new(RING_THREADS);
    let freed = AtomicUsize::new(0);
    thread::scope(|s| {
        for (me, inbox) in receivers.into_iter().enumerate() {
            let outbox = senders[(me + 1) % RING_THREADS].take().unwrap();
            let (barrier, freed) = (&barrier, &freed);
            s.spawn(move || {
                let mut rng = XorShift::new(me as u64 * 7919 + 1);
                let from = (me + RING_THREADS - 1) % RING_THREADS;
                let mut next_seq = 0u64;
                let mut receive = |b: Block, rng: &mut XorShift| {
                    assert_eq!(b.from, from, "thread {me} got a block from {}", b.from);
                    assert_eq!(b.seq, next_seq, "thread {me}: blocks out of order");
                    next_seq += 1;
                    b.check_and_free(rng, me);
                    freed.fetch_add(1, Ordering::Relaxed);
                };
                barrier.wait();
                for seq in 0..BLOCKS_PER_THREAD {
                    outbox.send(Block::new(&mut rng, me, seq)).unwrap();
                    while let Ok(b) = inbox.try_recv() {
                        receive(b, &mut rng);
                    }
                }
                drop(outbox);
                // Every sender drops its end after its last block, so this ends.
                for b in inbox {
                    receive(b, &mut rng);
                }
                assert_eq!(next_seq, BLOCKS_PER_THREAD, "thread {me} missed blocks");
            });
        }
    });
    assert_eq!(
        freed.load(Ordering::Relaxed),
        RING_THREADS * BLOCKS_PER_THREAD as usize
    );
}

const POOL_THREADS: usize = 6;
const POOL_OPS: u64 = 60_000;
const POOL_TARGET: usize = 2_000;

/// Threads put blocks into one shared pool and take random blocks out of it, so that every
/// block is freed by whichever thread happens to take it; the main thread frees what is left
/// after all of them have exited.
#[test]
fn shared_pool_many_to_many() {
    let pool: Mutex<Vec<Block>> = Mutex::new(Vec::new());
    let barrier = Barrier::new(POOL_THREADS);
    let (allocated, freed) = (AtomicUsize::new(0), AtomicUsize::new(0));
    thread::scope(|s| {
        for me in 0..POOL_THREADS {
            let (pool, barrier, allocated, freed) = (&pool, &barrier, &allocated, &freed);
            s.spawn(move || {
                let mut rng = XorShift::new(0xABCD + me as u64);
                barrier.wait();
                for seq in 0..POOL_OPS {
                    let len = pool.lock().unwrap().len();
                    if rng.range(0, 2 * POOL_TARGET) >= len {
                        let b = Block::new(&mut rng, me, seq);
                        pool.lock().unwrap().push(b);
                        allocated.fetch_add(1, Ordering::Relaxed);
                    } else {
                        let taken = {
                            let mut pool = pool.lock().unwrap();
                            let n = pool.len();
                            (n > 0).then(|| pool.swap_remove(rng.range(0, n - 1)))
                        };
                        if let Some(b) = taken {
                            b.check_and_free(&mut rng, me);
                            freed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
    });
    let left = pool.into_inner().unwrap();
    let mut rng = XorShift::new(99);
    let n_left = left.len();
    for b in left {
        b.check_and_free(&mut rng, usize::MAX);
    }
    let allocated = allocated.load(Ordering::Relaxed);
    assert_eq!(freed.load(Ordering::Relaxed) + n_left, allocated);
    assert!(
        allocated > POOL_THREADS * POOL_OPS as usize / 3,
        "only {allocated} blocks"
    );
}
