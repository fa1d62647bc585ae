//! Reading mapalloc's heap profiles in the tests: the gperftools text format that `prof`
//! writes (`heap profile: ... @ heap_v2/<period>`, one line per stack, `MAPPED_LIBRARIES:`),
//! and the attribution of each stack to a function, symbolised here with binutils' `nm`
//! (function symbols of the object a frame's mapping names), independently of the
//! `mapalloc-prof` tool.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

#[derive(Debug, Clone)]
pub struct StackRec {
    pub inuse_count: u64,
    pub inuse_bytes: u64,
    pub alloc_count: u64,
    pub alloc_bytes: u64,
    pub frames: Vec<u64>,
}

#[derive(Debug, Clone)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    pub offset: u64,
    pub path: String,
}

#[derive(Debug, Clone)]
pub struct Profile {
    pub period: u64,
    pub totals: [u64; 4],
    pub stacks: Vec<StackRec>,
    pub maps: Vec<Mapping>,
}

fn counts(s: &str) -> [u64; 4] {
    // "<c>: <b> [<c>: <b>]"
    let nums: Vec<u64> = s
        .split(|c: char| !c.is_ascii_digit())
        .filter(|t| !t.is_empty())
        .map(|t| t.parse().expect("a count"))
        .collect();
    assert_eq!(nums.len(), 4, "four counts in {s:?}");
    [nums[0], nums[1], nums[2], nums[3]]
}

/// Parse a profile's text; panics (failing the test) on anything malformed.
pub fn parse(text: &str) -> Profile {
    let mut lines = text.lines();
    let head = lines.next().expect("a header line");
    let rest = head
        .strip_prefix("heap profile: ")
        .unwrap_or_else(|| panic!("header {head:?}"));
    let (nums, kind) = rest.split_once(" @ ").expect("header '@'");
    let period = kind
        .strip_prefix("heap_v2/")
        .unwrap_or_else(|| panic!("header kind {kind:?}"))
        .parse()
        .expect("period");
    let totals = counts(nums);
    let mut stacks = Vec::new();
    let mut maps = Vec::new();
    let mut in_maps = false;
    for l in lines {
        if in_maps {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 5 {
                continue;
            }
            let (s, e) = f[0].split_once('-').expect("range");
            maps.push(Mapping {
                start: u64::from_str_radix(s, 16).unwrap(),
                end: u64::from_str_radix(e, 16).unwrap(),
                offset: u64::from_str_radix(f[2], 16).unwrap(),
                path: f.get(5).copied().unwrap_or("").to_string(),
            });
        } else if l == "MAPPED_LIBRARIES:" {
            in_maps = true;
        } else if !l.is_empty() {
            let (nums, frames) = l.split_once(" @").unwrap_or_else(|| panic!("line {l:?}"));
            let c = counts(nums);
            let frames = frames
                .split_whitespace()
                .map(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16).expect("address"))
                .collect();
            stacks.push(StackRec {
                inuse_count: c[0],
                inuse_bytes: c[1],
                alloc_count: c[2],
                alloc_bytes: c[3],
                frames,
            });
        }
    }
    assert!(in_maps, "no MAPPED_LIBRARIES section");
    Profile {
        period,
        totals,
        stacks,
        maps,
    }
}

/// pprof's scaling of raw samples: (blocks, bytes) estimated.
pub fn scale(count: u64, bytes: u64, period: u64) -> (f64, f64) {
    if count == 0 || period <= 1 {
        return (count as f64, bytes as f64);
    }
    let avg = bytes as f64 / count as f64;
    let p = 1.0 - (-avg / period as f64).exp();
    (count as f64 / p, bytes as f64 / p)
}

/// Function symbols of ELF objects, from `nm -C -S --defined-only`.
#[derive(Default)]
pub struct Symbols {
    objects: HashMap<String, Vec<(u64, u64, String)>>,
}

impl Symbols {
    fn of(&mut self, path: &str) -> &[(u64, u64, String)] {
        self.objects.entry(path.to_string()).or_insert_with(|| {
            let mut syms = Vec::new();
            if Path::new(path).is_file() {
                let out = Command::new("nm")
                    .args(["-C", "-S", "--defined-only"])
                    .arg(path)
                    .output()
                    .expect("run nm (binutils)");
                for l in String::from_utf8_lossy(&out.stdout).lines() {
                    let mut f = l.splitn(4, ' ');
                    let (Some(a), Some(s), Some(t), Some(name)) =
                        (f.next(), f.next(), f.next(), f.next())
                    else {
                        continue;
                    };
                    if !matches!(t, "T" | "t" | "W" | "w") {
                        continue;
                    }
                    if let (Ok(a), Ok(s)) = (u64::from_str_radix(a, 16), u64::from_str_radix(s, 16))
                    {
                        syms.push((a, s, name.to_string()));
                    }
                }
            }
            syms
        })
    }

    /// The function (demangled) that holds the return address `addr` of a frame, if known.
    pub fn function(&mut self, p: &Profile, addr: u64) -> Option<String> {
        let call = addr - 1;
        let m = p.maps.iter().find(|m| m.start <= call && call < m.end)?;
        // The object's load bias: where its first mapping (file offset 0, its first PT_LOAD
        // segment, at virtual address 0 in a position-independent object) begins.
        let path = m.path.clone();
        let bias = p
            .maps
            .iter()
            .filter(|x| x.path == path && x.offset == 0)
            .map(|x| x.start)
            .min()
            .unwrap_or(m.start - m.offset);
        let syms = self.of(&path);
        let pie_or_lib = syms.iter().all(|s| s.0 < 0x40_0000) || path.contains(".so");
        let v = if pie_or_lib { call - bias } else { call };
        syms.iter()
            .find(|(a, s, _)| *a <= v && v < a + s.max(&1))
            .map(|(_, _, n)| n.clone())
    }

    /// The stack's frames as function names (`?` where unknown), innermost first.
    pub fn names(&mut self, p: &Profile, s: &StackRec) -> Vec<String> {
        s.frames
            .iter()
            .map(|&a| self.function(p, a).unwrap_or_else(|| "?".into()))
            .collect()
    }
}

/// Estimated live bytes (and allocated bytes) per target function: a stack counts for the
/// innermost of its frames whose name contains one of `targets`; the rest under "other".
pub fn attribute(p: &Profile, targets: &[&str]) -> HashMap<String, (f64, f64)> {
    let mut syms = Symbols::default();
    let mut out: HashMap<String, (f64, f64)> = HashMap::new();
    for s in &p.stacks {
        let names = syms.names(p, s);
        let who = names
            .iter()
            .find_map(|n| targets.iter().find(|t| n.contains(*t)))
            .map(|t| t.to_string())
            .unwrap_or_else(|| "other".into());
        let live = scale(s.inuse_count, s.inuse_bytes, p.period).1;
        let alloc = scale(s.alloc_count, s.alloc_bytes, p.period).1;
        let e = out.entry(who).or_default();
        e.0 += live;
        e.1 += alloc;
    }
    out
}
