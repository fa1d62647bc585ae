//! collections: churn of Rust's std collections under the system allocator.
//!
//! A plain Rust program (no crates, compiled with `rustc -C opt-level=3 -C panic=abort`)
//! whose `System` allocator is the C `malloc`, so any allocator can be preloaded. Each thread
//! runs rounds of: a `HashMap<String, Vec<u64>>` with inserts, growing values, removals and
//! lookups; a `BTreeMap<u64, String>` with inserts, removals and a range scan; a `Vec<String>`
//! built with `format!`, sorted and deduplicated; a `String` built by appending. Work per
//! thread is fixed; results are checked against values computed independently and folded
//! into the checksum in thread order.
//!
//! Usage: `collections THREADS SCALE`; prints `checksum <16 hex digits>`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::process::exit;

const ROUNDS: f64 = 60.0; // at SCALE 1
const KEYS: u64 = 20_000;

/// splitmix64: small, seeded, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
}

fn mix(h: u64, v: u64) -> u64 {
    let mut r = Rng(h ^ v.wrapping_mul(0x0100_0000_01b3));
    r.next()
}

fn fail(msg: &str) -> ! {
    eprintln!("collections: FAILED: {msg}");
    exit(1)
}

fn hash_map_round(r: &mut Rng, h: &mut u64) {
    let mut map: HashMap<String, Vec<u64>> = HashMap::new();
    let mut expect_len = 0usize;
    for _ in 0..KEYS * 3 {
        let k = r.below(KEYS);
        let key = format!("key-{k}");
        match r.below(4) {
            0 => {
                if map.remove(&key).is_some() {
                    expect_len -= 1;
                }
            }
            1 => {
                let v = map.entry(key).or_insert_with(|| {
                    expect_len += 1;
                    Vec::new()
                });
                let n = r.below(16) + 1;
                v.extend((0..n).map(|i| k + i));
            }
            _ => {
                if let Some(v) = map.get(&key) {
                    *h = h.wrapping_add(v.len() as u64);
                    if v.iter().any(|&x| x < k) {
                        fail("hash map value corrupted");
                    }
                }
            }
        }
    }
    if map.len() != expect_len {
        fail("hash map lost entries");
    }
    let mut total = 0u64;
    for v in map.values() {
        total = total.wrapping_add(v.iter().sum::<u64>());
    }
    *h = mix(*h, total);
}

fn btree_round(r: &mut Rng, h: &mut u64) {
    let mut map: BTreeMap<u64, String> = BTreeMap::new();
    for _ in 0..KEYS * 2 {
        let k = r.below(KEYS * 4);
        if r.below(3) == 0 {
            map.remove(&k);
        } else {
            let len = (r.below(48) + 1) as usize;
            let mut s = String::with_capacity(4);
            for i in 0..len {
                s.push(char::from(b'a' + ((k as usize + i) % 26) as u8));
            }
            map.insert(k, s);
        }
    }
    let lo = r.below(KEYS * 2);
    let mut acc = 0u64;
    for (k, s) in map.range(lo..lo + KEYS) {
        let want = char::from(b'a' + (*k % 26) as u8);
        if !s.starts_with(want) {
            fail("btree map value corrupted");
        }
        acc = acc.wrapping_add(*k ^ s.len() as u64);
    }
    *h = mix(*h, acc ^ map.len() as u64);
}

fn vec_round(r: &mut Rng, h: &mut u64) {
    let mut v: Vec<String> = Vec::new();
    for _ in 0..KEYS {
        v.push(format!("{:x}/{}", r.below(KEYS / 2), r.below(7)));
    }
    v.sort_unstable();
    v.dedup();
    if v.windows(2).any(|w| w[0] >= w[1]) {
        fail("vector not sorted");
    }
    let mut s = String::new();
    for (i, item) in v.iter().enumerate().step_by(3) {
        let _ = write!(s, "{i}:{item};");
    }
    let mut acc = s.len() as u64;
    for b in s.bytes() {
        acc = acc.wrapping_mul(31).wrapping_add(u64::from(b));
    }
    *h = mix(*h, acc ^ v.len() as u64);
}

fn work(id: u64, rounds: u64) -> u64 {
    let mut r = Rng(0x6d61_7061_6c6c_6f63 ^ (id << 32));
    let mut h = 0u64;
    for _ in 0..rounds {
        hash_map_round(&mut r, &mut h);
        btree_round(&mut r, &mut h);
        vec_round(&mut r, &mut h);
    }
    h
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (threads, scale) = match (
        args.get(1).and_then(|a| a.parse::<u64>().ok()),
        args.get(2).and_then(|a| a.parse::<f64>().ok()),
    ) {
        (Some(t), Some(s)) if args.len() == 3 && (1..=1024).contains(&t) && s > 0.0 => (t, s),
        _ => {
            eprintln!("usage: collections THREADS SCALE");
            exit(2)
        }
    };
    let rounds = ((ROUNDS * scale) as u64).max(1);
    let results: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|id| s.spawn(move || work(id, rounds)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let h = results.into_iter().fold(0, mix);
    println!("checksum {h:016x}");
}
