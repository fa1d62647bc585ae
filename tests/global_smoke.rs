//! `MapAlloc` as the global allocator of an ordinary Rust program: std collections, strings,
//! `Box`, `Rc`/`Arc`, threads, and thread-local values whose destructors free (and allocate)
//! memory while the thread is being torn down, possibly after the allocator's own thread-exit
//! hook has run.

use mapalloc::MapAlloc;
use std::cell::RefCell;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;

#[global_allocator]
static GLOBAL: MapAlloc = MapAlloc;

#[test]
fn vec_and_box() {
    let mut v: Vec<u64> = Vec::new();
    for i in 0..1_000_000u64 {
        v.push(i * 3);
    }
    assert_eq!(v.len(), 1_000_000);
    assert_eq!(v.iter().sum::<u64>(), 3 * 999_999 * 1_000_000 / 2);
    // The buffer really comes from MapAlloc, and it reports at least the capacity.
    // SAFETY: `v`'s buffer is a live block allocated through the global allocator.
    let usable = unsafe { mapalloc::usable_size(v.as_ptr().cast()) };
    assert!(
        usable >= v.capacity() * 8,
        "usable {usable} < capacity {}",
        v.capacity()
    );
    v.truncate(10);
    v.shrink_to_fit();
    assert_eq!(v, [0, 3, 6, 9, 12, 15, 18, 21, 24, 27]);

    let b: Box<[u8]> = (0..(1usize << 20)).map(|i| (i % 251) as u8).collect();
    assert!(b.iter().enumerate().all(|(i, &x)| x == (i % 251) as u8));

    #[repr(align(4096))]
    struct Page([u8; 4096]);
    let pages: Vec<Box<Page>> = (0..64).map(|i| Box::new(Page([i as u8; 4096]))).collect();
    for (i, p) in pages.iter().enumerate() {
        assert_eq!(
            &**p as *const Page as usize % 4096,
            0,
            "Box<Page> misaligned"
        );
        assert!(p.0.iter().all(|&x| x == i as u8));
    }

    let nested: Vec<Vec<u32>> = (0..1000).map(|n| (0..n).collect()).collect();
    assert_eq!(nested.iter().map(Vec::len).sum::<usize>(), 999 * 1000 / 2);
    assert_eq!(nested[999][998], 998);

    let dyns: Vec<Box<dyn Fn(u32) -> u32>> = (0..100u32)
        .map(|k| Box::new(move |x| x * k) as Box<dyn Fn(u32) -> u32>)
        .collect();
    assert_eq!(dyns.iter().map(|f| f(2)).sum::<u32>(), 2 * 99 * 100 / 2);
}

#[test]
fn strings_and_format() {
    let mut s = String::new();
    for i in 0..10_000 {
        s.push_str(&format!("{i},"));
    }
    let parsed: Vec<u32> = s
        .trim_end_matches(',')
        .split(',')
        .map(|x| x.parse().unwrap())
        .collect();
    assert_eq!(parsed, (0..10_000).collect::<Vec<u32>>());
    let upper = "grüße, welt! ".repeat(1000).to_uppercase();
    assert!(upper.starts_with("GRÜSSE, WELT! "));
    assert_eq!(upper.chars().filter(|&c| c == 'S').count(), 2000);
    let joined = ["a", "bb", "ccc"]
        .iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join("-");
    assert_eq!(joined, "a-bb-ccc");
    let long = format!(
        "{:>width$}|{:08.3}|{:?}",
        "x",
        1.23456,
        vec![1, 2],
        width = 5000
    );
    assert_eq!(long.len(), 5000 + 1 + 8 + 1 + 6);
    assert!(long.ends_with("|0001.235|[1, 2]"));
}

#[test]
fn maps_sets_and_queues() {
    let mut h: HashMap<String, usize> = HashMap::new();
    for i in 0..100_000 {
        h.insert(format!("key{i}"), i);
    }
    for i in (0..100_000).step_by(2) {
        assert_eq!(h.remove(&format!("key{i}")), Some(i));
    }
    assert_eq!(h.len(), 50_000);
    assert_eq!(h.get("key12345"), Some(&12_345));
    assert_eq!(h.get("key12344"), None);
    h.shrink_to_fit();
    assert_eq!(
        h.values().sum::<usize>(),
        (0..100_000).filter(|i| i % 2 == 1).sum()
    );

    let mut b: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    for i in 0..50_000u64 {
        b.insert(i * 7 % 50_000, vec![i as u8; (i % 100) as usize]);
    }
    assert_eq!(b.len(), 50_000);
    assert_eq!(b.range(100..200).count(), 100);
    b.retain(|k, _| k % 10 != 0);
    assert_eq!(b.len(), 45_000);
    assert_eq!(b.keys().next(), Some(&1));
    let total: usize = b.values().map(Vec::len).sum();
    assert!(total > 0);

    let set: HashSet<u32> = (0..20_000).map(|x| x * x % 10_007).collect();
    assert_eq!(set.len(), 5004); // 0 and the (p - 1) / 2 quadratic residues mod 10007

    let mut q: VecDeque<u32> = VecDeque::new();
    for i in 0..10_000 {
        if i % 2 == 0 {
            q.push_back(i);
        } else {
            q.push_front(i);
        }
    }
    q.rotate_left(17);
    q.make_contiguous().sort_unstable();
    assert!(q.iter().copied().eq(0..10_000));

    let mut heap: BinaryHeap<i64> = (0..10_000).map(|i| (i * 7919) % 10_007).collect();
    let mut last = i64::MAX;
    while let Some(x) = heap.pop() {
        assert!(x <= last);
        last = x;
    }
}

#[test]
fn rc_and_arc() {
    let shared = Rc::new(RefCell::new(Vec::<String>::new()));
    let clones: Vec<_> = (0..100).map(|_| Rc::clone(&shared)).collect();
    for (i, c) in clones.iter().enumerate() {
        c.borrow_mut().push(i.to_string());
    }
    assert_eq!(Rc::strong_count(&shared), 101);
    drop(clones);
    assert_eq!(Rc::strong_count(&shared), 1);
    assert_eq!(shared.borrow().len(), 100);

    let map = Arc::new(Mutex::new(HashMap::<usize, Vec<usize>>::new()));
    let data = Arc::new((0..100_000usize).collect::<Vec<_>>());
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let (map, data) = (Arc::clone(&map), Arc::clone(&data));
            thread::spawn(move || {
                let sum: usize = data.iter().skip(t).step_by(8).sum();
                let mut local: Vec<usize> = Vec::new();
                for i in 0..10_000 {
                    local.push(i * t);
                }
                map.lock().unwrap().insert(t, local);
                sum
            })
        })
        .collect();
    let sums: Vec<usize> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(sums.iter().sum::<usize>(), 99_999 * 100_000 / 2);
    assert_eq!(Arc::strong_count(&data), 1);
    let map = Arc::try_unwrap(map).unwrap().into_inner().unwrap();
    assert_eq!(map.len(), 8);
    for (t, v) in &map {
        assert_eq!(v[9_999], 9_999 * t);
    }
}

// ---- thread-exit destructors --------------------------------------------------------------

/// Destructors that ran and found their data intact.
static TLS_DROPS_OK: AtomicUsize = AtomicUsize::new(0);
/// Destructors that found corrupted data (a panic in a TLS destructor would abort, so errors
/// are counted instead and asserted by the test).
static TLS_DROPS_BAD: AtomicUsize = AtomicUsize::new(0);
static KEY_DTORS_OK: AtomicUsize = AtomicUsize::new(0);
static KEY_DTORS_BAD: AtomicUsize = AtomicUsize::new(0);
/// Blocks allocated by pthread-key destructors during thread teardown; main checks them.
static LATE_BLOCKS: Mutex<Vec<(usize, Vec<u8>)>> = Mutex::new(Vec::new());

fn tls_pattern(t: usize, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + t * 7) as u8).collect()
}

/// A thread-local value with a destructor that checks, frees, and allocates again.
struct TlsPayload {
    thread: usize,
    blocks: Vec<Vec<u8>>,
    names: BTreeMap<String, String>,
}

impl Drop for TlsPayload {
    fn drop(&mut self) {
        let t = self.thread;
        let ok = self
            .blocks
            .iter()
            .enumerate()
            .all(|(i, b)| *b == tls_pattern(t, i * 100 + 1))
            && self.names.len() == 50
            && self.names.get("k7").map(String::as_str) == Some(&*format!("v7-{t}"));
        self.blocks.clear();
        self.blocks.shrink_to_fit();
        self.names.clear();
        // Allocate and free again during teardown.
        let scratch: Vec<String> = (0..200).map(|i| format!("{t}:{i}")).collect();
        let ok = ok && scratch[199] == format!("{t}:199");
        drop(scratch);
        if ok {
            TLS_DROPS_OK.fetch_add(1, Ordering::SeqCst);
        } else {
            TLS_DROPS_BAD.fetch_add(1, Ordering::SeqCst);
        }
    }
}

thread_local! {
    static PAYLOAD: RefCell<Option<TlsPayload>> = const { RefCell::new(None) };
}

/// What a thread hands to its pthread key destructor.
struct KeyPayload {
    thread: usize,
    block: Vec<u8>,
}

/// pthread key destructor. The key is created when this test starts, normally after the
/// allocator's own key (made when it initialises, on the first allocation before `main`), and
/// glibc runs key destructors in key order: so this most likely runs after the allocator's
/// thread-exit hook, and must still be able to free and allocate.
unsafe extern "C" fn key_dtor(value: *mut libc::c_void) {
    // SAFETY: the only values stored under the key are `Box<KeyPayload>` pointers.
    let payload = unsafe { Box::from_raw(value.cast::<KeyPayload>()) };
    let t = payload.thread;
    let ok = payload.block == tls_pattern(t, 3000 + t);
    drop(payload);
    // Allocate memory that outlives the thread; main checks and frees it.
    let late = tls_pattern(t, 5000 + t);
    let ok = ok && late.len() == 5000 + t;
    LATE_BLOCKS.lock().unwrap().push((t, late));
    if ok {
        KEY_DTORS_OK.fetch_add(1, Ordering::SeqCst);
    } else {
        KEY_DTORS_BAD.fetch_add(1, Ordering::SeqCst);
    }
}

fn test_key() -> libc::pthread_key_t {
    static KEY: OnceLock<libc::pthread_key_t> = OnceLock::new();
    *KEY.get_or_init(|| {
        let mut key: libc::pthread_key_t = 0;
        // SAFETY: `key` is a valid out-pointer; `key_dtor` has the required signature.
        let r = unsafe { libc::pthread_key_create(&mut key, Some(key_dtor)) };
        assert_eq!(r, 0, "pthread_key_create");
        key
    })
}

#[test]
fn thread_exit_destructors_free_and_allocate() {
    const THREADS: usize = 64;
    let key = test_key();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            thread::spawn(move || {
                PAYLOAD.with(|p| {
                    *p.borrow_mut() = Some(TlsPayload {
                        thread: t,
                        blocks: (0..40).map(|i| tls_pattern(t, i * 100 + 1)).collect(),
                        names: (0..50)
                            .map(|i| (format!("k{i}"), format!("v{i}-{t}")))
                            .collect(),
                    });
                });
                let payload = Box::new(KeyPayload {
                    thread: t,
                    block: tls_pattern(t, 3000 + t),
                });
                // SAFETY: `key` is a live key; the value is freed by `key_dtor`.
                let r = unsafe { libc::pthread_setspecific(key, Box::into_raw(payload).cast()) };
                assert_eq!(r, 0, "pthread_setspecific");
                // Some ordinary work so that the thread's heap holds other memory too.
                let v: Vec<Box<u64>> = (0..1000).map(Box::new).collect();
                v.iter().map(|b| **b).sum::<u64>()
            })
        })
        .collect();
    for h in handles {
        // `join` returns after the thread has exited, all its destructors run.
        assert_eq!(h.join().unwrap(), 999 * 1000 / 2);
    }
    assert_eq!(
        TLS_DROPS_BAD.load(Ordering::SeqCst),
        0,
        "thread_local data corrupted"
    );
    assert_eq!(TLS_DROPS_OK.load(Ordering::SeqCst), THREADS);
    assert_eq!(
        KEY_DTORS_BAD.load(Ordering::SeqCst),
        0,
        "pthread key data corrupted"
    );
    assert_eq!(KEY_DTORS_OK.load(Ordering::SeqCst), THREADS);
    let mut late = std::mem::take(&mut *LATE_BLOCKS.lock().unwrap());
    assert_eq!(late.len(), THREADS);
    late.sort_by_key(|(t, _)| *t);
    for (i, (t, block)) in late.into_iter().enumerate() {
        assert_eq!(t, i);
        assert!(
            block == tls_pattern(t, 5000 + t),
            "late block of thread {t} corrupted"
        );
    }
}
