//! 500 short-lived threads, in waves: their blocks outlive them and are checked and freed by
//! the main thread after they have exited (and after later threads may have taken over their
//! memory); some threads free blocks that the main thread allocated.

mod common;

use common::{Block, XorShift, alloc_block, check_and_free};
use mapalloc::MapAlloc;
use std::sync::Barrier;
use std::thread;

#[global_allocator]
static GLOBAL: MapAlloc = MapAlloc;

const THREADS: usize = 500;
const WAVE: usize = 25;
const BLOCKS_PER_THREAD: usize = 40;

fn random_size(rng: &mut XorShift) -> usize {
    if rng.range(0, 49) == 0 {
        rng.range(64 << 10, 512 << 10)
    } else {
        rng.log_size(16 << 10)
    }
}

/// Body of thread `t`: frees the main thread's blocks it was given, churns through some
/// short-lived blocks of its own, and returns the blocks that must outlive it.
fn worker(t: usize, from_main: Vec<Block>, barrier: &Barrier) -> Vec<Block> {
    let mut rng = XorShift::new(t as u64 + 1);
    // All threads of a wave are alive at the same time.
    barrier.wait();
    for b in from_main {
        check_and_free(b, &format!("main's block freed by thread {t}"));
    }
    let mut keep = Vec::with_capacity(BLOCKS_PER_THREAD);
    for i in 0..BLOCKS_PER_THREAD {
        let seed = ((t as u64) << 32) | i as u64;
        keep.push(alloc_block(random_size(&mut rng), seed));
        // A short-lived block, freed by its own thread.
        let tmp = alloc_block(random_size(&mut rng), !seed);
        check_and_free(tmp, &format!("thread {t}'s own temporary block"));
    }
    // Ordinary collections too, dropped before the thread ends.
    let v: Vec<String> = (0..100).map(|i| format!("{t}-{i}")).collect();
    assert_eq!(v[99], format!("{t}-99"));
    keep
}

#[test]
fn blocks_outlive_their_threads() {
    let mut rng = XorShift::new(0x500);
    let mut survivors: Vec<(usize, Vec<Block>)> = Vec::new();
    let mut main_seq = 0u64;
    for wave in 0..THREADS / WAVE {
        let barrier = Barrier::new(WAVE);
        let handles: Vec<_> = thread::scope(|s| {
            let handles: Vec<_> = (0..WAVE)
                .map(|k| {
                    let t = wave * WAVE + k;
                    // Every third thread frees a batch of blocks allocated here, by main.
                    let from_main: Vec<Block> = if t % 3 == 0 {
                        (0..30)
                            .map(|_| {
                                main_seq += 1;
                                alloc_block(random_size(&mut rng), main_seq | 1 << 62)
                            })
                            .collect()
                    } else {
                        Vec::new()
                    };
                    let barrier = &barrier;
                    (t, s.spawn(move || worker(t, from_main, barrier)))
                })
                .collect();
            // `join` returns only after the thread has exited, thread-exit hooks included.
            handles
                .into_iter()
                .map(|(t, h)| (t, h.join().unwrap()))
                .collect()
        });
        // Free half of each thread's blocks now; keep the rest until all waves are done, so
        // they outlive many later threads too.
        for (t, mut blocks) in handles {
            for b in blocks.split_off(BLOCKS_PER_THREAD / 2) {
                check_and_free(b, &format!("thread {t}'s block, freed after its wave"));
            }
            survivors.push((t, blocks));
        }
    }
    assert_eq!(survivors.len(), THREADS);
    for (t, blocks) in survivors {
        assert_eq!(blocks.len(), BLOCKS_PER_THREAD / 2);
        for b in blocks {
            check_and_free(b, &format!("thread {t}'s block, freed at the end"));
        }
    }
}

/// Threads that only free (never allocate explicitly) and exit immediately: the blocks were
/// all allocated by main, which keeps allocating while those threads come and go.
#[test]
fn threads_that_only_free_main_blocks() {
    let mut rng = XorShift::new(77);
    let mut seq = 0u64;
    for _ in 0..10 {
        let batches: Vec<Vec<Block>> = (0..20)
            .map(|_| {
                (0..50)
                    .map(|_| {
                        seq += 1;
                        alloc_block(random_size(&mut rng), seq)
                    })
                    .collect()
            })
            .collect();
        let handles: Vec<_> = batches
            .into_iter()
            .map(|batch| {
                thread::spawn(move || {
                    for b in batch {
                        check_and_free(b, "main's block freed by a short thread");
                    }
                })
            })
            .collect();
        // `join` returns only after the thread has exited.
        for h in handles {
            h.join().unwrap();
        }
        // Main reuses what the exited threads freed.
        let again: Vec<Block> = (0..1000)
            .map(|_| {
                seq += 1;
                alloc_block(random_size(&mut rng), seq)
            })
            .collect();
        for b in again {
            check_and_free(b, "main's block after the short threads exited");
        }
    }
}
