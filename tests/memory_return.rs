//! Memory return, statistics and configuration through the Rust face.
//!
//! Every case runs this test binary again as a child process (so that RSS, counters and the
//! environment are the case's own) and checks what the child reports.

mod common;

use common::{XorShift, resident_bytes};
use std::alloc::{GlobalAlloc, Layout};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use mapalloc::{Config, ConfigError, MapAlloc};

#[global_allocator]
static A: MapAlloc = MapAlloc;

const CASE: &str = "MAPALLOC_MEMORY_CASE";
const MIB: usize = 1 << 20;

/// Runs `case` in a child with `env` (every other `MAPALLOC_*` variable removed); returns its
/// stdout and stderr after checking that it exited with success.
fn child(case: &str, env: &[(&str, &str)]) -> (String, String) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "child_entry", "--nocapture", "--test-threads=1"]);
    for (k, _) in std::env::vars() {
        if k.starts_with("MAPALLOC_") {
            cmd.env_remove(k);
        }
    }
    cmd.env(CASE, case).envs(env.iter().copied());
    let out = cmd.output().expect("run child");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{case} {env:?}: {}\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    (stdout, stderr)
}

#[test]
fn child_entry() {
    let Ok(case) = std::env::var(CASE) else {
        return;
    };
    match case.as_str() {
        "rss" => rss_case(),
        "stats_threads" => stats_threads_case(),
        "settings" => println!("\nsettings {:?}", mapalloc::config()),
        "configure" => configure_case(),
        "stats_at_exit" => {
            let v: Vec<u64> = (0..1000).collect();
            assert_eq!(v.iter().sum::<u64>(), 499_500);
        }
        other => panic!("unknown case {other}"),
    }
}

/// Allocate and touch about `small` + `medium` bytes and `large` large blocks.
fn fill(seed: u64, small: usize, medium: usize, large: usize) -> Vec<(*mut u8, Layout)> {
    let mut rng = XorShift::new(seed);
    let mut blocks = Vec::with_capacity(small / 16 + medium / 1024 + large);
    let take = |size: usize, blocks: &mut Vec<(*mut u8, Layout)>| {
        let layout = Layout::from_size_align(size, 8).unwrap();
        // SAFETY: a non-zero size.
        let p = unsafe { MapAlloc.alloc(layout) };
        assert!(!p.is_null());
        // SAFETY: `p` holds `size` bytes.
        unsafe { p.write_bytes(0xa5, size) };
        blocks.push((p, layout));
        size
    };
    let mut got = 0;
    while got < small {
        got += take(16 + rng.next_u64() as usize % 1008, &mut blocks);
    }
    got = 0;
    while got < medium {
        got += take(1024 + rng.next_u64() as usize % (255 * 1024), &mut blocks);
    }
    for _ in 0..large {
        take(4 * MIB + rng.next_u64() as usize % (8 * MIB), &mut blocks);
    }
    blocks
}

/// Free in a scattered order, so that pages empty only at the end.
fn drain(blocks: Vec<(*mut u8, Layout)>) {
    let stride = 7919;
    for start in 0..stride {
        for &(p, layout) in blocks.iter().skip(start).step_by(stride) {
            // SAFETY: allocated by `fill` with this layout, freed once.
            unsafe { MapAlloc.dealloc(p, layout) };
        }
    }
}

fn rss_case() {
    let blocks = fill(1, 340 * MIB, 480 * MIB, 15);
    let peak = resident_bytes();
    // A share on a thread that frees its blocks and exits (its heap is abandoned).
    std::thread::spawn(|| drain(fill(2, 60 * MIB, 60 * MIB, 2)))
        .join()
        .unwrap();
    drain(blocks);
    for i in 0..20 {
        std::thread::sleep(Duration::from_millis(100));
        let v = vec![i as u8; 32 + i];
        std::hint::black_box(&v);
    }
    let idle = resident_bytes();
    drain(fill(3, 32 * MIB, 32 * MIB, 0));
    let released = mapalloc::trim();
    let after_trim = resident_bytes();
    println!(
        "\npeak {} MiB, idle {} MiB, trim released {} MiB, then {} MiB",
        peak / MIB,
        idle / MIB,
        released / MIB,
        after_trim / MIB
    );
    assert!(peak > 800 * MIB, "the working set was not resident");
    assert!(
        idle <= peak / 10,
        "RSS after 2 s idle above 10% of the peak"
    );
    assert!(released > 0, "trim released nothing");
    assert!(
        after_trim <= peak / 20,
        "RSS after trim above 5% of the peak"
    );
}

#[test]
fn rss_falls_after_idle_and_trim() {
    let (out, _) = child("rss", &[]);
    eprintln!("{}", out.lines().find(|l| l.starts_with("peak")).unwrap());
}

/// Threads allocate blocks of one class, free half of them on another thread, and hold the
/// rest: the class counters must say exactly that, also after the threads exit.
fn stats_threads_case() {
    const THREADS: usize = 4;
    const PER: usize = 5000;
    let size = 5000;
    let layout = Layout::from_size_align(size, 16).unwrap();
    // SAFETY: a probe block, freed right away.
    let block_size = unsafe {
        let p = MapAlloc.alloc(layout);
        let u = mapalloc::usable_size(p);
        MapAlloc.dealloc(p, layout);
        u as u64
    };
    let class = mapalloc::stats()
        .classes
        .iter()
        .position(|c| c.block_size == block_size)
        .expect("class of the probe block");
    let slots: Arc<Vec<AtomicUsize>> =
        Arc::new((0..THREADS * PER).map(|_| AtomicUsize::new(0)).collect());
    let start = Arc::new(Barrier::new(THREADS + 1));
    let allocated = Arc::new(Barrier::new(THREADS + 1));
    let checked = Arc::new(Barrier::new(THREADS + 1));
    let freed = Arc::new(Barrier::new(THREADS + 1));
    let done = Arc::new(Barrier::new(THREADS + 1));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (slots, start, allocated, checked, freed, done) = (
                slots.clone(),
                start.clone(),
                allocated.clone(),
                checked.clone(),
                freed.clone(),
                done.clone(),
            );
            std::thread::spawn(move || {
                start.wait();
                for i in 0..PER {
                    // SAFETY: a non-zero size.
                    let p = unsafe { MapAlloc.alloc(layout) };
                    assert!(!p.is_null());
                    slots[t * PER + i].store(p as usize, Ordering::Relaxed);
                }
                allocated.wait();
                checked.wait();
                // Free the even blocks of the next thread: remote frees.
                let other = (t + 1) % THREADS;
                for i in (0..PER).step_by(2) {
                    let p = slots[other * PER + i].swap(0, Ordering::Relaxed) as *mut u8;
                    // SAFETY: allocated above with `layout`, freed once.
                    unsafe { MapAlloc.dealloc(p, layout) };
                }
                freed.wait();
                done.wait();
            })
        })
        .collect();
    let before = mapalloc::stats().classes[class];
    start.wait();
    allocated.wait();
    let mid = mapalloc::stats().classes[class];
    assert_eq!(mid.allocs - before.allocs, (THREADS * PER) as u64);
    assert_eq!(mid.frees, before.frees);
    checked.wait();
    freed.wait();
    let after = mapalloc::stats();
    let c = after.classes[class];
    let held = (THREADS * PER / 2) as u64;
    assert_eq!(c.allocs - before.allocs, (THREADS * PER) as u64);
    assert_eq!(c.frees - before.frees, held);
    assert_eq!(
        (c.allocs - c.frees) - (before.allocs - before.frees),
        held,
        "allocations - frees must equal the blocks held"
    );
    assert_eq!(c.live_bytes - before.live_bytes, held * block_size);
    assert!(c.peak_bytes >= c.live_bytes);
    let sum_allocs: u64 = after.classes.iter().map(|c| c.allocs).sum();
    let sum_frees: u64 = after.classes.iter().map(|c| c.frees).sum();
    assert_eq!(sum_allocs, after.small_allocs);
    assert_eq!(sum_frees, after.small_frees);
    done.wait();
    for h in handles {
        h.join().unwrap();
    }
    // The exited threads' counters survive in their abandoned heaps.
    let gone = mapalloc::stats();
    assert!(gone.heaps_abandoned >= 1, "{gone:?}");
    let c2 = gone.classes[class];
    assert_eq!(c2.allocs - c2.frees, c.allocs - c.frees);
    // Free the rest from this thread; the class is back where it started.
    for s in slots.iter() {
        let p = s.swap(0, Ordering::Relaxed) as *mut u8;
        if !p.is_null() {
            // SAFETY: allocated above with `layout`, freed once.
            unsafe { MapAlloc.dealloc(p, layout) };
        }
    }
    let end = mapalloc::stats().classes[class];
    assert_eq!(end.allocs - end.frees, before.allocs - before.frees);
    let s = mapalloc::stats();
    assert!(s.mapped_bytes >= s.segment_bytes);
    assert!(s.mmap > 0 && s.mappings > 0 && s.guard_bytes > 0);
    println!("\nstats ok");
}

#[test]
fn stats_consistent_across_threads() {
    let (out, _) = child("stats_threads", &[]);
    assert!(out.contains("stats ok"), "{out}");
}

fn configure_case() {
    // The runtime allocated before main: strict mode is fixed now.
    let strict = mapalloc::config().strict.unwrap();
    assert_eq!(
        mapalloc::configure(&Config {
            strict: Some(!strict),
            purge_delay_ms: Some(5),
            ..Config::default()
        }),
        Err(ConfigError::StrictAfterFirstAllocation)
    );
    // Nothing applied on error.
    assert_eq!(mapalloc::config().purge_delay_ms, Some(250));
    assert_eq!(
        mapalloc::configure(&Config {
            purge_delay_ms: Some(3_600_001),
            ..Config::default()
        }),
        Err(ConfigError::PurgeDelayTooLong)
    );
    let c = Config {
        stats_at_exit: Some(true),
        purge_delay_ms: Some(0),
        retain_bytes: Some(8 * MIB),
        large_cache_bytes: Some(16 * MIB),
        strict: Some(strict),
        strict_zero: Some(false),
        verbose: Some(false),
    };
    mapalloc::configure(&c).unwrap();
    assert_eq!(mapalloc::config(), c);
    // With no delay, a freed large block is unmapped or purged at once.
    let layout = Layout::from_size_align(32 * MIB, 8).unwrap();
    // SAFETY: a non-zero size; freed once.
    unsafe {
        let p = MapAlloc.alloc(layout);
        p.write_bytes(1, layout.size());
        MapAlloc.dealloc(p, layout);
    }
    assert!(mapalloc::stats().large_cached_bytes <= 16 * MIB as u64);
    println!("\nconfigure ok");
}

#[test]
fn configure_from_rust() {
    let (out, err) = child("configure", &[]);
    assert!(out.contains("configure ok"), "{out}");
    // stats_at_exit was switched on in code: the summary follows at exit.
    assert!(err.lines().any(|l| l.starts_with("mapalloc: ")), "{err}");
}

/// The settings a child reports with `env`, and its stderr.
fn settings(env: &[(&str, &str)]) -> (String, String) {
    let (out, err) = child("settings", env);
    let line = out
        .lines()
        .find(|l| l.starts_with("settings "))
        .unwrap_or_else(|| panic!("no settings line: {out}"))
        .to_owned();
    (line, err)
}

fn warning_for(err: &str, var: &str) -> Option<String> {
    err.lines()
        .find(|l| l.starts_with(&format!("mapalloc: warning: {var}=")))
        .map(str::to_owned)
}

#[test]
fn every_variable_good_bad_absent() {
    let (defaults, err) = settings(&[]);
    assert!(!err.contains("mapalloc"), "no output by default: {err}");
    for expected in [
        "stats_at_exit: Some(false)",
        "purge_delay_ms: Some(250)",
        "retain_bytes: Some(67108864)",
        "large_cache_bytes: Some(134217728)",
        "strict: Some(false)",
        "strict_zero: Some(true)",
        "verbose: Some(false)",
    ] {
        assert!(defaults.contains(expected), "{expected} in {defaults}");
    }
    // (variable, good value, what the settings show for it, bad value, expected text)
    let cases = [
        (
            "MAPALLOC_PURGE_DELAY_MS",
            "1000",
            "purge_delay_ms: Some(1000)",
            "soon",
            "a whole number from 0 to 3600000",
        ),
        (
            "MAPALLOC_RETAIN_MB",
            "8",
            "retain_bytes: Some(8388608)",
            "-1",
            "a whole number from 0 to 1048576",
        ),
        (
            "MAPALLOC_LARGE_CACHE_MB",
            "0",
            "large_cache_bytes: Some(0)",
            "12MB",
            "a whole number from 0 to 1048576",
        ),
        (
            "MAPALLOC_STRICT",
            "1",
            "strict: Some(true)",
            "maybe",
            "0 or 1",
        ),
        (
            "MAPALLOC_STRICT_ZERO",
            "0",
            "strict_zero: Some(false)",
            "none",
            "0 or 1",
        ),
        (
            "MAPALLOC_VERBOSE",
            "0",
            "verbose: Some(false)",
            "2",
            "0 or 1",
        ),
        (
            "MAPALLOC_STATS",
            "0",
            "stats_at_exit: Some(false)",
            "yes please",
            "0 or 1",
        ),
    ];
    for (var, good, shown, bad, expected) in cases {
        let (line, err) = settings(&[(var, good)]);
        assert!(line.contains(shown), "{var}={good}: {line}");
        assert!(warning_for(&err, var).is_none(), "{var}={good}: {err}");
        let (line, err) = settings(&[(var, bad)]);
        assert_eq!(line, defaults, "{var}={bad} must keep the default");
        let warning = warning_for(&err, var).unwrap_or_else(|| panic!("{var}={bad}: {err}"));
        assert_eq!(
            warning,
            format!("mapalloc: warning: {var}=\"{bad}\" is not {expected}; keeping the default")
        );
        assert_eq!(
            err.lines().filter(|l| l.contains("warning")).count(),
            1,
            "one warning line: {err}"
        );
    }
}

#[test]
fn verbose_prints_settings() {
    let (_, err) = settings(&[("MAPALLOC_VERBOSE", "1"), ("MAPALLOC_PURGE_DELAY_MS", "40")]);
    let line = err
        .lines()
        .find(|l| l.starts_with("mapalloc: settings "))
        .unwrap_or_else(|| panic!("no settings line: {err}"));
    assert!(line.contains("purge_delay_ms=40"), "{line}");
}

#[test]
fn stats_variable_prints_summary_at_exit() {
    let (_, err) = child("stats_at_exit", &[("MAPALLOC_STATS", "1")]);
    let first = err
        .lines()
        .find(|l| l.starts_with("mapalloc"))
        .unwrap_or_else(|| panic!("no summary: {err}"));
    assert!(first.contains("allocations"), "{first}");
    assert!(
        err.lines().filter(|l| l.starts_with("mapalloc: ")).count() >= 4,
        "{err}"
    );
    let (_, err) = child("stats_at_exit", &[]);
    assert!(!err.contains("mapalloc"), "{err}");
}
