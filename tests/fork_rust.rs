//! `fork` while other threads allocate, through the Rust face (`MapAlloc` as the global
//! allocator of this test binary).
//!
//! Two threads allocate, fill, check and free blocks of mixed sizes (and ordinary `Vec`s and
//! `String`s) in a tight loop while the main thread forks 200 times. Each child, a
//! single-threaded copy of a process whose allocator may have been busy in those threads at
//! the fork, checks and frees blocks the parent allocated before the fork, allocates, reallocs
//! and frees blocks of every kind (small, medium, large, over-aligned), starts a thread that
//! allocates too, then `_exit`s with a code saying what went wrong, if anything. The parent
//! polls each child with `waitpid(WNOHANG)` for up to 10 s: a deadlock (a lock inherited in
//! the locked state) or a crash fails the test.
//!
//! The child reports with `write(2)` only: std's stdout lock may have been held by another
//! thread at the fork.

use core::alloc::{GlobalAlloc, Layout};
use mapalloc::MapAlloc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: MapAlloc = MapAlloc;

const FORKS: usize = 200;
const WORKERS: usize = 2;
const CHILD_TIMEOUT: Duration = Duration::from_secs(10);

static STOP: AtomicBool = AtomicBool::new(false);
static WORKER_ROUNDS: AtomicU64 = AtomicU64::new(0);

fn rng_next(s: &mut u64) -> u64 {
    let mut x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    x.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

fn pick_size(r: u64) -> usize {
    (match r % 8 {
        0 => (r >> 8) % 16,
        1..=3 => (r >> 8) % 512,
        4 | 5 => (r >> 8) % 8192,
        6 => (r >> 8) % 100_000,
        _ => (r >> 8) % 2_000_000,
    }) as usize
        + 1
}

/// A raw block filled with one byte value.
struct Blk {
    p: *mut u8,
    size: usize,
    align: usize,
    tag: u8,
}

impl Blk {
    fn new(size: usize, align: usize, tag: u8) -> Option<Blk> {
        let l = Layout::from_size_align(size, align).ok()?;
        // SAFETY: non-zero size.
        let p = unsafe { MapAlloc.alloc(l) };
        if p.is_null() || p as usize % align != 0 {
            return None;
        }
        // SAFETY: `p` holds `size` bytes.
        unsafe { core::ptr::write_bytes(p, tag, size) };
        Some(Blk {
            p,
            size,
            align,
            tag,
        })
    }

    /// The first and last 256 bytes hold the tag (enough to see an overlap or a stale block).
    fn ok(&self) -> bool {
        let k = self.size.min(256);
        // SAFETY: the block is live with `size` initialised bytes.
        let s = unsafe { core::slice::from_raw_parts(self.p, self.size) };
        s[..k].iter().all(|&b| b == self.tag) && s[self.size - k..].iter().all(|&b| b == self.tag)
    }

    fn realloc(&mut self, new_size: usize) -> bool {
        let l = Layout::from_size_align(self.size, self.align).unwrap();
        // SAFETY: live block with this layout; non-zero new size.
        let q = unsafe { MapAlloc.realloc(self.p, l, new_size) };
        if q.is_null() {
            return false;
        }
        // SAFETY: the block holds `new_size` bytes now.
        unsafe { core::ptr::write_bytes(q, self.tag, new_size) };
        self.p = q;
        self.size = new_size;
        true
    }
}

impl Drop for Blk {
    fn drop(&mut self) {
        // SAFETY: live block with this layout.
        unsafe {
            MapAlloc.dealloc(
                self.p,
                Layout::from_size_align(self.size, self.align).unwrap(),
            )
        };
    }
}

fn worker(id: u64) {
    let mut rng = 0x5EED_0000 + id;
    let mut ring: Vec<Option<Blk>> = (0..64).map(|_| None).collect();
    let mut strings: Vec<String> = Vec::new();
    while !STOP.load(Ordering::Relaxed) {
        let r = rng_next(&mut rng);
        let slot = (r % 64) as usize;
        if let Some(b) = ring[slot].take() {
            assert!(b.ok(), "worker {id}: block of {} bytes corrupted", b.size);
        }
        let align = if r % 7 == 0 { 1 << ((r >> 40) % 17) } else { 8 };
        ring[slot] = Blk::new(pick_size(r >> 8), align.max(1), (r >> 56) as u8);
        assert!(ring[slot].is_some(), "worker {id}: allocation failed");
        strings.push(format!("{id}-{r}"));
        if strings.len() > 100 {
            strings.clear();
        }
        if WORKER_ROUNDS.fetch_add(1, Ordering::Relaxed) % 64 == 0 {
            // Leave the children some of the two CPUs of a CI machine.
            std::thread::yield_now();
        }
    }
}

/// Child-side failure: a line on stderr with `write(2)`, then `_exit(code)`.
fn child_fail(code: i32, msg: &str) -> ! {
    // SAFETY: writes from a valid buffer to fd 2, then ends the process without cleanup.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
        libc::write(2, b"\n".as_ptr().cast(), 1);
        libc::_exit(code)
    }
}

fn child(iteration: usize, inherited: Vec<Blk>) -> ! {
    // Blocks the parent allocated before the fork: intact, and freeable here.
    for b in &inherited {
        if !b.ok() {
            child_fail(3, "fork_rust child: inherited block corrupted");
        }
    }
    drop(inherited);
    let mut rng = 0xC41D_0000 + iteration as u64;
    let mut live: Vec<Option<Blk>> = (0..128).map(|_| None).collect();
    for i in 0..300 {
        let r = rng_next(&mut rng);
        let slot = (r % 128) as usize;
        if let Some(b) = live[slot].take() {
            if !b.ok() {
                child_fail(4, "fork_rust child: block corrupted");
            }
        }
        let align = match i % 11 {
            0 => 4096,
            1 => 1 << 20, // an over-aligned large block
            _ => 16,
        };
        // Mostly below 200 KB (a child's memory is copy-on-write: every byte written costs),
        // now and then a large block.
        let size = if i % 50 == 0 {
            1_500_000
        } else {
            pick_size(r >> 8) % 200_000 + 1
        };
        let Some(mut b) = Blk::new(size, align, (r >> 48) as u8) else {
            child_fail(5, "fork_rust child: allocation failed");
        };
        if i % 5 == 0 && !b.realloc(b.size * 2 + 10) {
            child_fail(6, "fork_rust child: realloc failed");
        }
        live[slot] = Some(b);
    }
    drop(live);
    // Ordinary collections.
    let v: Vec<String> = (0..500).map(|i| format!("{iteration}:{i}")).collect();
    if v[499] != format!("{iteration}:499") {
        child_fail(7, "fork_rust child: Vec<String> wrong");
    }
    drop(v);
    // A thread in the child, allocating too.
    let t = std::thread::spawn(|| {
        let mut total = 0usize;
        for i in 0..300usize {
            let b = vec![i as u8; i * 31 % 5000 + 1];
            total += b.len();
        }
        total
    });
    match t.join() {
        Ok(n) if n > 0 => {}
        _ => child_fail(8, "fork_rust child: thread failed"),
    }
    // SAFETY: ends the child without running the parent's atexit handlers or destructors.
    unsafe { libc::_exit(0) }
}

#[test]
fn fork_while_threads_allocate() {
    let workers: Vec<_> = (0..WORKERS as u64)
        .map(|id| std::thread::spawn(move || worker(id)))
        .collect();
    let mut rng = 42u64;
    let start = Instant::now();
    let mut slowest = Duration::ZERO;
    for it in 0..FORKS {
        let mine: Vec<Blk> = (0..32)
            .map(|_| {
                let r = rng_next(&mut rng);
                Blk::new(pick_size(r), 16, (r >> 40) as u8).expect("parent allocation")
            })
            .collect();
        // SAFETY: fork has no preconditions; the child only uses the allocator, threads and
        // write(2), and leaves with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed: {}", std::io::Error::last_os_error());
        if pid == 0 {
            child(it, mine);
        }
        let t0 = Instant::now();
        let mut status = 0;
        loop {
            // SAFETY: valid out-pointer; our own child.
            let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            assert!(r >= 0, "waitpid: {}", std::io::Error::last_os_error());
            if r == pid {
                break;
            }
            if t0.elapsed() > CHILD_TIMEOUT {
                // SAFETY: our own child, still running.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, &mut status, 0);
                }
                STOP.store(true, Ordering::Relaxed);
                panic!(
                    "fork {it}: child {pid} still running after {CHILD_TIMEOUT:?} (deadlock?); killed"
                );
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        slowest = slowest.max(t0.elapsed());
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "fork {it}: child ended with {} (signal {}, exit code {})",
            status,
            if libc::WIFSIGNALED(status) {
                libc::WTERMSIG(status)
            } else {
                0
            },
            if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                -1
            }
        );
        for b in &mine {
            assert!(b.ok(), "fork {it}: parent block corrupted after the fork");
        }
    }
    STOP.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().expect("worker thread");
    }
    let rounds = WORKER_ROUNDS.load(Ordering::Relaxed);
    println!(
        "fork_rust: {FORKS} forks in {:?}, slowest child {slowest:?}, {rounds} worker rounds",
        start.elapsed()
    );
    assert!(
        rounds > FORKS as u64,
        "the workers hardly ran ({rounds} rounds)"
    );
}
