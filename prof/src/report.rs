//! The text report: totals, then the top call sites by estimated in-use bytes.
//!
//! A *call site* is the first frame of a stack, innermost first, that is not allocation
//! machinery: in a Rust program with mapalloc as `#[global_allocator]` the innermost frames
//! can be `__rust_alloc`, `alloc::raw_vec::*`, `<mapalloc::MapAlloc as GlobalAlloc>::alloc`
//! and the like, which every allocation shares and which say nothing about who allocated.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::parse::Profile;
use crate::symbolize::Frame;

/// One profile stack, symbolised, with its estimates.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// Innermost frame first, inlined frames expanded.
    pub frames: Vec<Frame>,
    /// Estimated in-use (blocks, bytes).
    pub inuse: (f64, f64),
    /// Estimated allocated (blocks, bytes).
    pub alloc: (f64, f64),
}

/// True for the frames of allocation functions and the allocator itself.
pub fn is_machinery(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "malloc",
        "calloc",
        "realloc",
        "reallocarray",
        "free",
        "posix_memalign",
        "aligned_alloc",
        "memalign",
        "valloc",
        "pvalloc",
        "__libc_malloc",
        "__libc_calloc",
        "__libc_realloc",
        "__libc_memalign",
        "__posix_memalign",
    ];
    const PREFIXES: &[&str] = &[
        "operator new",
        "operator delete",
        "mapalloc::",
        "mapalloc_",
        "<mapalloc::",
        "alloc::alloc::",
        "<alloc::alloc::",
        "alloc::raw_vec::",
        "<alloc::raw_vec::",
        "__rust_alloc",
        "__rust_realloc",
        "__rust_alloc_zeroed",
        "__rustc::",
        "__rdl_",
        "__rg_",
        "std::alloc::",
        "<std::alloc::System as",
        "tcmalloc::",
        "tc_",
    ];
    EXACT.contains(&name) || PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Index of the call site in `frames` (innermost first): the frame after the last machinery
/// frame that comes before the first known frame that is not machinery. Frames with no name
/// (an allocator's stripped local functions) are passed over on the way, so that
/// `[libtcmalloc.so+0x19bfc, tcmalloc::allocate_full_malloc_oom, leak, main]` gives `leak`,
/// but `[malloc, libfoo.so+0x123, main]` gives the unnamed caller of malloc. With no machinery,
/// or nothing after it, the innermost frame.
pub fn call_site(frames: &[Frame]) -> usize {
    let mut last_machinery = None;
    for (i, f) in frames.iter().enumerate() {
        if is_machinery(&f.function) {
            last_machinery = Some(i);
        } else if !f.unknown {
            break;
        }
    }
    match last_machinery {
        Some(m) if m + 1 < frames.len() => m + 1,
        _ => 0,
    }
}

/// A call site with the in-use estimates of every stack that goes through it.
#[derive(Debug, Clone, PartialEq)]
pub struct Site {
    pub frame: Frame,
    pub bytes: f64,
    pub blocks: f64,
    /// The callers of the heaviest stack through this site, innermost first.
    pub callers: Vec<Frame>,
    heaviest: f64,
}

/// The `n` call sites with the most estimated in-use bytes, most first (sites with none are
/// left out).
pub fn top_sites(stacks: &[Resolved], n: usize) -> Vec<Site> {
    let mut sites: Vec<Site> = Vec::new();
    let mut index: HashMap<(String, Option<String>, Option<u32>), usize> = HashMap::new();
    for s in stacks {
        let (blocks, bytes) = s.inuse;
        if bytes <= 0.0 || s.frames.is_empty() {
            continue;
        }
        let i = call_site(&s.frames);
        let f = &s.frames[i];
        let key = (f.function.clone(), f.file.clone(), f.line);
        let callers = s.frames[i + 1..].to_vec();
        let at = *index.entry(key).or_insert_with(|| {
            sites.push(Site {
                frame: f.clone(),
                bytes: 0.0,
                blocks: 0.0,
                callers: callers.clone(),
                heaviest: 0.0,
            });
            sites.len() - 1
        });
        let site = &mut sites[at];
        site.bytes += bytes;
        site.blocks += blocks;
        if bytes > site.heaviest {
            site.heaviest = bytes;
            site.callers = callers;
        }
    }
    sites.sort_by(|a, b| b.bytes.total_cmp(&a.bytes));
    sites.truncate(n);
    sites
}

/// Sum of (blocks, bytes) estimates.
pub fn totals(stacks: &[Resolved], pick: impl Fn(&Resolved) -> (f64, f64)) -> (f64, f64) {
    stacks
        .iter()
        .map(pick)
        .fold((0.0, 0.0), |(c, b), (x, y)| (c + x, b + y))
}

/// `12.3 MiB`.
pub fn human(bytes: f64) -> String {
    const UNITS: &[&str] = &["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{v:.0} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// How many callers to show under each site.
const CALLERS_SHOWN: usize = 5;

/// The whole report, as printed on stdout.
pub fn render(profile: &Profile, stacks: &[Resolved], top: usize) -> String {
    let mut out = String::new();
    let (inuse_blocks, inuse_bytes) = totals(stacks, |s| s.inuse);
    let (alloc_blocks, alloc_bytes) = totals(stacks, |s| s.alloc);
    let sampling = if profile.period <= 1 {
        "every allocation recorded (period 1): numbers are exact".to_string()
    } else {
        format!(
            "sampled every {} bytes on average: numbers are estimates, scaled as pprof does",
            profile.period
        )
    };
    let _ = writeln!(out, "profile format {}, {sampling}", profile.kind);
    let _ = writeln!(
        out,
        "in use at the dump:     {:>10} ({:.0} bytes) in {:.0} blocks",
        human(inuse_bytes),
        inuse_bytes,
        inuse_blocks
    );
    let _ = writeln!(
        out,
        "allocated over the run: {:>10} ({:.0} bytes) in {:.0} blocks",
        human(alloc_bytes),
        alloc_bytes,
        alloc_blocks
    );
    if inuse_bytes <= 0.0 {
        let _ = writeln!(out, "no live blocks at the dump: nothing leaked");
        return out;
    }
    let sites = top_sites(stacks, top);
    let _ = writeln!(
        out,
        "\ntop {} call sites by in-use bytes:\n{:>12}  {:>9}  {:>6}  call site",
        sites.len(),
        "bytes",
        "blocks",
        "share"
    );
    for s in &sites {
        let _ = writeln!(
            out,
            "{:>12.0}  {:>9.0}  {:>5.1}%  {}",
            s.bytes,
            s.blocks,
            100.0 * s.bytes / inuse_bytes,
            describe(&s.frame)
        );
        for c in s.callers.iter().take(CALLERS_SHOWN) {
            let _ = writeln!(out, "{:>36}<- {}", "", describe(c));
        }
        if s.callers.len() > CALLERS_SHOWN {
            let _ = writeln!(
                out,
                "{:>36}   ({} more frames)",
                "",
                s.callers.len() - CALLERS_SHOWN
            );
        }
    }
    out
}

fn describe(f: &Frame) -> String {
    match f.location() {
        Some(l) => format!("{} ({l})", f.function),
        None => f.function.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(name: &str) -> Frame {
        Frame {
            function: name.into(),
            ..Frame::default()
        }
    }

    fn stack(names: &[&str], bytes: f64) -> Resolved {
        Resolved {
            frames: names.iter().map(|n| frame(n)).collect(),
            inuse: (1.0, bytes),
            alloc: (1.0, bytes),
        }
    }

    #[test]
    fn machinery_is_recognised() {
        for m in [
            "__rust_alloc",
            "__rustc::__rust_alloc",
            "alloc::alloc::alloc",
            "alloc::raw_vec::RawVec<T,A>::grow_one",
            "alloc::raw_vec::finish_grow",
            "<mapalloc::MapAlloc as core::alloc::global::GlobalAlloc>::alloc",
            "mapalloc::heap::Heap::alloc",
            "__rdl_alloc",
            "malloc",
            "calloc",
            "realloc",
            "operator new(unsigned long)",
            "operator new[](unsigned long)",
        ] {
            assert!(is_machinery(m), "{m}");
        }
        for f in [
            "main",
            "leak_a",
            "mallocator_user",
            "my::alloc::thing",
            "std::vec",
        ] {
            assert!(!is_machinery(f), "{f}");
        }
    }

    #[test]
    fn call_site_skips_leading_machinery() {
        let s = stack(
            &[
                "<mapalloc::MapAlloc as core::alloc::global::GlobalAlloc>::alloc",
                "__rust_alloc",
                "alloc::raw_vec::finish_grow",
                "app::build_index",
                "main",
            ],
            1.0,
        );
        assert_eq!(call_site(&s.frames), 3);
        // All machinery: the innermost frame stands for it.
        assert_eq!(call_site(&stack(&["malloc"], 1.0).frames), 0);
        // Machinery further out (a callback from inside an allocator) does not matter.
        assert_eq!(call_site(&stack(&["leak_a", "malloc"], 1.0).frames), 0);
        // Unnamed frames: passed over inside the allocator, kept as the caller of malloc.
        let mut s = stack(
            &["libtcmalloc.so+0x19bfc", "tcmalloc::x", "leak", "main"],
            1.0,
        );
        s.frames[0].unknown = true;
        assert_eq!(call_site(&s.frames), 2);
        let mut s = stack(&["malloc", "libfoo.so+0x123", "main"], 1.0);
        s.frames[1].unknown = true;
        assert_eq!(call_site(&s.frames), 1);
        let mut s = stack(&["libfoo.so+0x123", "main"], 1.0);
        s.frames[0].unknown = true;
        assert_eq!(call_site(&s.frames), 0);
    }

    #[test]
    fn sites_merge_and_sort() {
        let stacks = vec![
            stack(&["malloc", "a", "main"], 100.0),
            stack(&["b", "main"], 300.0),
            stack(&["a", "other", "main"], 250.0),
            stack(&["c", "main"], 0.0),
        ];
        let sites = top_sites(&stacks, 10);
        let names: Vec<_> = sites.iter().map(|s| s.frame.function.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(sites[0].bytes, 350.0);
        assert_eq!(sites[0].blocks, 2.0);
        // The callers shown are the heaviest stack's.
        assert_eq!(sites[0].callers[0].function, "other");
        assert_eq!(top_sites(&stacks, 1).len(), 1);
    }

    #[test]
    fn zero_in_use_says_nothing_leaked() {
        let p =
            crate::parse::parse("heap profile: 0: 0 [1: 10] @ heapprofile\n 0: 0 [1: 10] @ 0x1\n")
                .unwrap();
        let text = render(
            &p,
            &[Resolved {
                inuse: (0.0, 0.0),
                ..stack(&["f"], 10.0)
            }],
            10,
        );
        assert!(
            text.contains("no live blocks at the dump: nothing leaked"),
            "{text}"
        );
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(512.0), "512 B");
        assert_eq!(human(1536.0), "1.5 KiB");
        assert_eq!(human(3.0 * 1024.0 * 1024.0), "3.0 MiB");
    }
}
