//! Memory freed by a thread other than its owner is reused: a program that keeps moving the
//! same volume of blocks between threads, round after round, does not keep growing. Covers
//! owners that are alive (remote frees collected by the owner) and owners that have exited
//! (abandoned memory taken over by later threads).
//!
//! One test in this binary on purpose: the resident set size is per process, so no other
//! test may run beside it.

mod common;

use common::{XorShift, check, fill, resident_bytes};
use core::alloc::{GlobalAlloc, Layout};
use mapalloc::MapAlloc;
use std::sync::mpsc;
use std::thread;

#[global_allocator]
static GLOBAL: MapAlloc = MapAlloc;

const PRODUCERS: usize = 4;
const BLOCKS_PER_ROUND: usize = 2_000;
const ROUNDS: usize = 30;
const WARM_ROUNDS: usize = 3;
/// Volume one producer moves per round, roughly: `BLOCKS_PER_ROUND` blocks averaging ~4 KiB.
const ROUND_VOLUME: usize = PRODUCERS * BLOCKS_PER_ROUND * 4096;
/// Allowed growth between the end of the warm-up and the end: a few rounds' worth. Leaking
/// every remote free would grow by `(ROUNDS - WARM_ROUNDS) * ROUND_VOLUME`, about 860 MiB.
const ALLOWED_GROWTH: usize = 4 * ROUND_VOLUME;

struct Block {
    addr: usize,
    size: usize,
    seed: u64,
}

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 1).unwrap()
}

/// One producer's share of a round: blocks from 1 B to 8 KiB (mean about 4 KiB).
fn produce(rng: &mut XorShift, who: u64, out: &mpsc::Sender<Block>) {
    for i in 0..BLOCKS_PER_ROUND as u64 {
        let size = rng.range(1, 8190);
        // SAFETY: non-zero size.
        let p = unsafe { MapAlloc.alloc(layout(size)) };
        assert!(!p.is_null(), "alloc {size}");
        let seed = (who << 32) | i;
        // SAFETY: `p` is a live block of `size` bytes.
        unsafe { fill(p, size, seed) };
        out.send(Block {
            addr: p as usize,
            size,
            seed,
        })
        .unwrap();
    }
}

fn consume(b: Block) {
    // SAFETY: the block is live, `size` bytes, filled by its producer.
    unsafe {
        check(
            b.addr as *const u8,
            b.size,
            b.seed,
            "block moved between threads",
        );
        MapAlloc.dealloc(b.addr as *mut u8, layout(b.size));
    }
}

fn assert_bounded(what: &str, warm: usize, end: usize) {
    eprintln!(
        "{what}: resident {} MiB after warm-up, {} MiB at the end",
        warm >> 20,
        end >> 20
    );
    assert!(
        end <= warm + ALLOWED_GROWTH,
        "{what}: resident set grew from {} MiB after {WARM_ROUNDS} rounds to {} MiB after \
         {ROUNDS} (allowed growth {} MiB): memory freed by other threads is not reused",
        warm >> 20,
        end >> 20,
        ALLOWED_GROWTH >> 20
    );
}

/// Long-lived producers; each round's blocks are freed by the main thread while their owners
/// are alive and keep allocating.
fn live_owners() {
    let mut warm = 0;
    let (to_main, from_producers) = mpsc::channel::<Block>();
    let go: Vec<mpsc::Sender<()>> = (0..PRODUCERS)
        .map(|k| {
            let (go_tx, go_rx) = mpsc::channel::<()>();
            let out = to_main.clone();
            thread::spawn(move || {
                let mut rng = XorShift::new(k as u64 + 1);
                // One round per message; the loop ends when main drops the sender.
                for (round, ()) in go_rx.into_iter().enumerate() {
                    produce(&mut rng, (k * ROUNDS + round) as u64, &out);
                }
            });
            go_tx
        })
        .collect();
    drop(to_main);
    for round in 1..=ROUNDS {
        for g in &go {
            g.send(()).unwrap();
        }
        for _ in 0..PRODUCERS * BLOCKS_PER_ROUND {
            consume(from_producers.recv().unwrap());
        }
        if round == WARM_ROUNDS {
            warm = resident_bytes();
        }
    }
    drop(go);
    assert_bounded("live owners", warm, resident_bytes());
}

/// Producers that exit at the end of each round; their blocks are freed by main after they
/// have exited, and the next round's new threads should take the memory over.
fn exited_owners() {
    let mut warm = 0;
    for round in 1..=ROUNDS {
        let (to_main, from_producers) = mpsc::channel::<Block>();
        let handles: Vec<_> = (0..PRODUCERS)
            .map(|k| {
                let out = to_main.clone();
                thread::spawn(move || {
                    let who = (k * ROUNDS + round) as u64;
                    produce(&mut XorShift::new(who + 1), who, &out);
                })
            })
            .collect();
        drop(to_main);
        for h in handles {
            h.join().unwrap();
        }
        // Every producer has exited: all of these are frees into abandoned heaps.
        for b in from_producers {
            consume(b);
        }
        if round == WARM_ROUNDS {
            warm = resident_bytes();
        }
    }
    assert_bounded("exited owners", warm, resident_bytes());
}

#[test]
fn cross_thread_frees_are_reused() {
    live_owners();
    exited_owners();
}
