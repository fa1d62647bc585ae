//! Thread-exit edge cases of the Rust face (issue 7): what a thread does around and after
//! mapalloc's own thread-exit hook (a `pthread_key_create` destructor) must not leak heaps or
//! lose blocks.
//!
//! - A thread that only frees blocks other threads allocated, and never allocates, must not
//!   acquire a heap at all.
//! - A thread whose *first* allocation happens in the last round of pthread key destructors
//!   (glibc runs at most `PTHREAD_DESTRUCTOR_ITERATIONS` = 4 rounds; a destructor that sets its
//!   key again asks for one more) gets a heap after mapalloc's key was visited for the last
//!   time, so mapalloc's hook never runs for it. Its heap must still be reclaimed once the
//!   thread is gone (found by this test: each such thread used to leak a heap).
//! - Key destructors that run after mapalloc's hook (keys created later are visited later in
//!   each round) may still allocate and free, in every round.
//!
//! The cases count heaps and blocks process-wide, so they run one after the other on the main
//! thread of a binary without the test harness (no other thread of it allocates meanwhile).

mod common;

use common::{Block, XorShift, alloc_block, check_and_free};
use mapalloc::MapAlloc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

#[global_allocator]
static GLOBAL: MapAlloc = MapAlloc;

/// Every heap ever created: live ones plus those waiting for adoption.
fn heaps_total() -> u64 {
    let s = mapalloc::stats();
    s.heaps_live + s.heaps_abandoned
}

/// Blocks out (size classes), read until it equals `want` for a moment: the test harness's own
/// threads may allocate briefly while a case runs, so one reading could be off.
fn small_live_settles_at(want: u64) -> u64 {
    let mut got = 0;
    for _ in 0..50 {
        let s = mapalloc::stats();
        got = s.small_allocs - s.small_frees;
        if got == want {
            break;
        }
        thread::sleep(std::time::Duration::from_millis(10));
    }
    got
}

/// A pthread key whose destructor re-arms itself until `rounds_to_arm` rounds have passed,
/// then (in the round after) allocates and frees through mapalloc.
struct LateKey {
    key: libc::pthread_key_t,
}

/// Rounds each thread has seen its destructor run in (per thread, through the key's value).
static ALLOCATED_IN_ROUND: AtomicUsize = AtomicUsize::new(0);

/// The key's value encodes how many more rounds to wait before allocating.
extern "C" fn late_destructor(v: *mut libc::c_void) {
    let left = v as usize;
    if left > 1 {
        // Ask glibc for one more round.
        // SAFETY: the key is valid (created before any thread used it); a non-null value.
        unsafe { libc::pthread_setspecific(KEY.load(Ordering::Relaxed) as _, (left - 1) as _) };
        return;
    }
    // The last round we asked for: the thread's first allocations, then frees.
    let mut blocks: Vec<Box<[u8]>> = Vec::new();
    for i in 0..64usize {
        blocks.push(vec![i as u8; 16 + i * 97].into_boxed_slice());
    }
    let big = vec![7u8; 1 << 20];
    let sum: usize = blocks
        .iter()
        .map(|b| b[b.len() - 1] as usize)
        .sum::<usize>()
        + big[12345] as usize;
    assert_eq!(sum, (0..64).sum::<usize>() + 7);
    drop(blocks);
    drop(big);
    ALLOCATED_IN_ROUND.fetch_add(1, Ordering::Relaxed);
}

static KEY: AtomicUsize = AtomicUsize::new(usize::MAX);

impl LateKey {
    /// Created after mapalloc's key (mapalloc creates its key at the process's first
    /// allocation), so glibc visits it after mapalloc's in every round.
    fn get() -> LateKey {
        let k = KEY.load(Ordering::Relaxed);
        if k != usize::MAX {
            return LateKey { key: k as _ };
        }
        let mut key: libc::pthread_key_t = 0;
        // SAFETY: valid out-pointer and an extern "C" destructor that does not unwind.
        let r = unsafe { libc::pthread_key_create(&mut key, Some(late_destructor)) };
        assert_eq!(r, 0, "pthread_key_create");
        KEY.store(key as usize, Ordering::Relaxed);
        LateKey { key }
    }
}

/// Spawns a thread that does not allocate through mapalloc in its body, only arms the late key
/// so that its first allocations happen in destructor round `round` (1..=4).
fn thread_allocating_in_round(round: usize) {
    let key = LateKey::get().key;
    let h = thread::spawn(move || {
        // SAFETY: valid key; the value is a plain non-null integer.
        unsafe { libc::pthread_setspecific(key, round as *mut libc::c_void) };
    });
    h.join().unwrap();
}

fn first_allocation_in_last_destructor_round_does_not_leak_heaps() {
    // Warm up: the main thread and the harness threads have their heaps.
    thread_allocating_in_round(1);
    let before = heaps_total();
    let done_before = ALLOCATED_IN_ROUND.load(Ordering::Relaxed);
    const THREADS: usize = 300;
    for _ in 0..THREADS {
        thread_allocating_in_round(4);
    }
    assert_eq!(
        ALLOCATED_IN_ROUND.load(Ordering::Relaxed) - done_before,
        THREADS,
        "not every thread reached its fourth destructor round"
    );
    let after = heaps_total();
    // Each thread is joined before the next starts: with its heap reclaimed, the pool needs
    // only a few heaps however many threads came and went.
    assert!(
        after - before < 64,
        "{THREADS} threads that first allocated in the last key-destructor round left \
         {} heaps behind ({before} -> {after})",
        after - before
    );
    // What they freed is reusable, and trim reaches reclaimed heaps.
    mapalloc::trim();
    let s = mapalloc::stats();
    assert!(s.heaps_live <= before + 64, "live heaps {}", s.heaps_live);
}

fn allocation_in_every_destructor_round() {
    thread_allocating_in_round(1);
    let before = heaps_total();
    let done_before = ALLOCATED_IN_ROUND.load(Ordering::Relaxed);
    for i in 0..200 {
        thread_allocating_in_round(1 + i % 4);
    }
    assert_eq!(
        ALLOCATED_IN_ROUND.load(Ordering::Relaxed) - done_before,
        200
    );
    let after = heaps_total();
    assert!(after - before < 64, "heaps {before} -> {after}");
}

fn threads_that_only_free_take_no_heap() {
    let mut rng = XorShift::new(0x7e4d);
    let mut seq = 0u64;
    // Warm up so that the harness and main threads have their heaps.
    drop(vec![0u8; 100]);
    let s0 = mapalloc::stats();
    let before = s0.heaps_live + s0.heaps_abandoned;
    let live_before = s0.small_allocs - s0.small_frees;
    for round in 0..20 {
        let batches: Vec<Vec<Block>> = (0..8)
            .map(|_| {
                (0..100)
                    .map(|_| {
                        seq += 1;
                        alloc_block(rng.log_size(32 << 10), seq)
                    })
                    .collect()
            })
            .collect();
        // Raw pthreads: std's spawn machinery stays out of the picture, so the only
        // allocator calls on these threads are the frees below.
        let mut tids = Vec::new();
        for batch in batches {
            let arg = Box::into_raw(Box::new(batch));
            let mut t: libc::pthread_t = 0;
            // SAFETY: `free_batch` takes ownership of `arg`; valid out-pointer.
            let r =
                unsafe { libc::pthread_create(&mut t, core::ptr::null(), free_batch, arg.cast()) };
            assert_eq!(r, 0, "pthread_create");
            tids.push(t);
        }
        for t in tids {
            // SAFETY: joining a thread we created, once.
            assert_eq!(unsafe { libc::pthread_join(t, core::ptr::null_mut()) }, 0);
        }
        let now = heaps_total();
        assert_eq!(
            now, before,
            "round {round}: threads that only free created heaps ({before} -> {now})"
        );
    }
    // Box and Vec headers of the batches were freed too; what main holds is back to before.
    assert_eq!(
        small_live_settles_at(live_before),
        live_before,
        "blocks freed by heap-less threads are not all counted as freed"
    );
    // Main reuses the memory those threads freed into main's pages.
    let mapped = mapalloc::stats().segment_bytes;
    let again: Vec<Block> = (0..800)
        .map(|_| {
            seq += 1;
            alloc_block(rng.log_size(32 << 10), seq)
        })
        .collect();
    for b in again {
        check_and_free(b, "main's block after the freeing threads exited");
    }
    // Strict mode delays reuse on purpose (quarantine, shuffled free lists, guarded pages of
    // lower capacity): it may map more, and the check is the default mode's.
    if mapalloc::config().strict != Some(true) {
        assert!(
            mapalloc::stats().segment_bytes <= mapped,
            "main mapped new segments instead of reusing the blocks other threads freed"
        );
    }
}

extern "C" fn free_batch(arg: *mut libc::c_void) -> *mut libc::c_void {
    // SAFETY: `arg` is the Box the spawner leaked for this thread.
    let batch = unsafe { Box::from_raw(arg as *mut Vec<Block>) };
    for b in *batch {
        // No formatting here: it could allocate.
        check_and_free(b, "block freed by a thread that never allocates");
    }
    core::ptr::null_mut()
}

/// Key destructors that run after mapalloc's hook (ours has a higher key index) allocate and
/// free, and free blocks the thread allocated before it began to exit.
fn allocate_and_free_after_the_exit_hook() {
    extern "C" fn after_hook(v: *mut libc::c_void) {
        // SAFETY: the thread leaked this Vec for us.
        let kept = unsafe { Box::from_raw(v as *mut Vec<Block>) };
        for b in *kept {
            check_and_free(b, "block freed after the exit hook");
        }
        let mut v: Vec<Block> = (0..50)
            .map(|i| alloc_block(24 + i * 300, i as u64))
            .collect();
        v.push(alloc_block(700 << 10, 99));
        for b in v {
            check_and_free(b, "block allocated after the exit hook");
        }
        AFTER_HOOK_RAN.fetch_add(1, Ordering::Relaxed);
    }
    static AFTER_HOOK_RAN: AtomicUsize = AtomicUsize::new(0);
    drop(vec![1u8; 10]);
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: valid out-pointer; the destructor does not unwind.
    let r = unsafe { libc::pthread_key_create(&mut key, Some(after_hook)) };
    assert_eq!(r, 0);
    let s0 = mapalloc::stats();
    let live0 = s0.small_allocs - s0.small_frees;
    for t in 0..100u64 {
        thread::spawn(move || {
            let kept: Vec<Block> = (0..20)
                .map(|i| alloc_block(16 + i * 50, (t << 8) | i as u64))
                .collect();
            let p = Box::into_raw(Box::new(kept));
            // SAFETY: valid key; the destructor takes ownership of `p`.
            unsafe { libc::pthread_setspecific(key, p.cast()) };
        })
        .join()
        .unwrap();
    }
    assert_eq!(AFTER_HOOK_RAN.load(Ordering::Relaxed), 100);
    assert_eq!(
        small_live_settles_at(live0),
        live0,
        "blocks allocated or freed after the exit hook are unaccounted for"
    );
    // SAFETY: no thread uses the key any more.
    unsafe { libc::pthread_key_delete(key) };
}

/// A plain `main` (`harness = false` in Cargo.toml): libtest's main thread allocates while a
/// test runs (its bookkeeping of the running test), which made the process-wide block count
/// of these cases off by a few blocks now and then on a loaded machine.
fn main() {
    thread_exit_edge_cases();
    println!("thread_exit: ok");
}

fn thread_exit_edge_cases() {
    threads_that_only_free_take_no_heap();
    allocate_and_free_after_the_exit_hook();
    allocation_in_every_destructor_round();
    first_allocation_in_last_destructor_round_does_not_leak_heaps();
}
