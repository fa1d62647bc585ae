//! Reading a heap profile in the gperftools text format (pprof's "legacy" heap format), and
//! pprof's scaling of sampled counts.
//!
//! ```text
//! heap profile:   <inuse_count>: <inuse_bytes> [<alloc_count>: <alloc_bytes>] @ heap_v2/<period>
//!    <inuse_count>: <inuse_bytes> [<alloc_count>: <alloc_bytes>] @ 0x<hex> 0x<hex> ...
//!
//! MAPPED_LIBRARIES:
//! <a copy of /proc/self/maps>
//! ```
//!
//! Words used here: a *stack* is one line after the header, its addresses frame 0 (innermost,
//! the caller of the allocation function) first; its numbers are *raw*, that is the count and
//! bytes of the sampled blocks, unscaled. The *period* is the mean sampling interval in bytes
//! (1: every allocation recorded). An *estimate* is a raw number scaled by pprof's formula.
//!
//! Nothing here panics on bad input: every malformed line is an [`Error`] naming its line.

use std::fmt;

/// A parsed profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// The header's four totals, raw.
    pub totals: Counts,
    /// The header's format word: `heap_v2` or `heapprofile`.
    pub kind: String,
    /// Mean sampling interval in bytes; 1 when every allocation was recorded.
    pub period: u64,
    pub stacks: Vec<Stack>,
    /// The MAPPED_LIBRARIES section (empty when the profile has none).
    pub mappings: Vec<Mapping>,
}

/// In-use and allocated numbers of one stack (or of the whole profile).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counts {
    pub inuse_count: u64,
    pub inuse_bytes: u64,
    pub alloc_count: u64,
    pub alloc_bytes: u64,
}

/// One stack line.
#[derive(Debug, Clone, PartialEq)]
pub struct Stack {
    pub counts: Counts,
    /// Return addresses, innermost frame first.
    pub addrs: Vec<u64>,
}

/// One line of /proc/self/maps.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    pub perms: String,
    /// File offset of `start`.
    pub offset: u64,
    /// The file's inode number when it was mapped (0 when unknown).
    pub inode: u64,
    /// The file (or `[vdso]`, `[heap]`...); empty for an anonymous mapping.
    pub path: String,
}

/// A malformed profile: the 1-based line number and what is wrong with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for Error {}

fn err(line: usize, message: impl Into<String>) -> Error {
    Error {
        line,
        message: message.into(),
    }
}

const HEADER_PREFIX: &str = "heap profile:";
const MAPS_MARKER: &str = "MAPPED_LIBRARIES:";

/// Parses a whole profile.
pub fn parse(text: &str) -> Result<Profile, Error> {
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    // gperftools puts `%warn` lines before the header of a profile taken with sampling off.
    let (n, header) = lines
        .by_ref()
        .find(|(_, l)| !l.trim().is_empty() && !l.starts_with('%'))
        .ok_or_else(|| err(1, "empty file: not a heap profile"))?;
    let (totals, kind, period) = parse_header(header).map_err(|m| err(n, m))?;
    let mut stacks = Vec::new();
    let mut mappings = Vec::new();
    let mut in_maps = false;
    for (n, line) in lines {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        if in_maps {
            mappings.push(parse_mapping(trimmed).map_err(|m| err(n, m))?);
        } else if trimmed == MAPS_MARKER {
            in_maps = true;
        } else {
            stacks.push(parse_stack(trimmed).map_err(|m| err(n, m))?);
        }
    }
    Ok(Profile {
        totals,
        kind,
        period,
        stacks,
        mappings,
    })
}

/// `heap profile: 1: 2 [ 3: 4] @ heap_v2/524288` → totals, kind, period.
fn parse_header(line: &str) -> Result<(Counts, String, u64), String> {
    let rest = line
        .trim()
        .strip_prefix(HEADER_PREFIX)
        .ok_or("not a heap profile: the first line must start with `heap profile:`")?;
    let (counts, tail) = parse_counts(rest)?;
    let (kind, period) = match tail.split_once('/') {
        Some((kind, p)) => {
            let period = p
                .trim()
                .parse::<u64>()
                .map_err(|_| format!("sampling period `{p}` is not a whole number"))?;
            (kind.trim(), period)
        }
        None => (tail.trim(), 1),
    };
    match kind {
        "heap_v2" | "heapprofile" => {}
        "" => return Err("the header has no format after `@`".into()),
        other => {
            return Err(format!(
                "unsupported profile format `{other}` (expected heap_v2/<period> or heapprofile)"
            ));
        }
    }
    if kind == "heapprofile" && period != 1 {
        return Err("`heapprofile` takes no sampling period".into());
    }
    Ok((counts, kind.to_string(), period.max(1)))
}

/// `   1: 2 [ 3: 4] @ 0x10 0x20` → counts and addresses.
fn parse_stack(line: &str) -> Result<Stack, String> {
    let (counts, tail) = parse_counts(line)?;
    let addrs = tail
        .split_whitespace()
        .map(|w| {
            let hex = w
                .strip_prefix("0x")
                .or_else(|| w.strip_prefix("0X"))
                .ok_or_else(|| format!("address `{w}` does not start with 0x"))?;
            u64::from_str_radix(hex, 16).map_err(|_| format!("address `{w}` is not hexadecimal"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if addrs.is_empty() {
        return Err("a stack line with no addresses".into());
    }
    Ok(Stack { counts, addrs })
}

/// `<a>: <b> [<c>: <d>] @ rest` → the four numbers and `rest`.
fn parse_counts(s: &str) -> Result<(Counts, &str), String> {
    let (numbers, tail) = s
        .split_once('@')
        .ok_or("expected `<count>: <bytes> [<count>: <bytes>] @ ...`: no `@`")?;
    let (inuse, alloc) = numbers
        .split_once('[')
        .ok_or("expected `[<count>: <bytes>]` before `@`")?;
    let alloc = alloc
        .trim()
        .strip_suffix(']')
        .ok_or("expected `]` before `@`")?;
    let pair = |s: &str| -> Result<(u64, u64), String> {
        let (c, b) = s
            .split_once(':')
            .ok_or_else(|| format!("expected `<count>: <bytes>`, found `{}`", s.trim()))?;
        let num = |x: &str| {
            x.trim()
                .parse::<u64>()
                .map_err(|_| format!("`{}` is not a whole number", x.trim()))
        };
        Ok((num(c)?, num(b)?))
    };
    let (inuse_count, inuse_bytes) = pair(inuse)?;
    let (alloc_count, alloc_bytes) = pair(alloc)?;
    Ok((
        Counts {
            inuse_count,
            inuse_bytes,
            alloc_count,
            alloc_bytes,
        },
        tail,
    ))
}

/// `start-end perms offset dev inode [path]`.
fn parse_mapping(line: &str) -> Result<Mapping, String> {
    let bad = || format!("not a /proc/self/maps line: `{line}`");
    let mut rest = line;
    let mut field = || -> Result<&str, String> {
        let s = rest.trim_start();
        let end = s.find(char::is_whitespace).unwrap_or(s.len());
        rest = &s[end..];
        Some(&s[..end]).filter(|f| !f.is_empty()).ok_or_else(bad)
    };
    let range = field()?;
    let perms = field()?;
    let offset = field()?;
    let _dev = field()?;
    let inode = field()?.parse().unwrap_or(0);
    // The path is the rest of the line, spaces included (a file name may have them).
    let path = rest.trim().to_string();
    let (start, end) = range.split_once('-').ok_or_else(bad)?;
    let hex = |s: &str| u64::from_str_radix(s, 16).map_err(|_| bad());
    let (start, end, offset) = (hex(start)?, hex(end)?, hex(offset)?);
    if end < start {
        return Err(format!("mapping ends before it starts: `{line}`"));
    }
    Ok(Mapping {
        start,
        end,
        perms: perms.to_string(),
        offset,
        inode,
        path,
    })
}

/// Estimated (count, bytes) of a stack with raw `count` blocks of `bytes` bytes sampled every
/// `period` bytes on average: pprof's `scaleHeapSample` (legacy_profile.go).
pub fn scale(count: u64, bytes: u64, period: u64) -> (f64, f64) {
    let (c, b) = (count as f64, bytes as f64);
    if count == 0 || bytes == 0 || period <= 1 {
        return (c, b);
    }
    let avg = b / c;
    let factor = 1.0 / (1.0 - (-avg / period as f64).exp());
    (c * factor, b * factor)
}

impl Profile {
    /// Estimated in-use (blocks, bytes) of a stack.
    pub fn inuse(&self, s: &Stack) -> (f64, f64) {
        scale(s.counts.inuse_count, s.counts.inuse_bytes, self.period)
    }

    /// Estimated allocated (blocks, bytes) of a stack.
    pub fn alloc(&self, s: &Stack) -> (f64, f64) {
        scale(s.counts.alloc_count, s.counts.alloc_bytes, self.period)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "heap profile:    3:  3000 [    5:  9000] @ heap_v2/524288\n\
        \x20    2:  2000 [     3:  3000] @ 0x401a2b 0x401c00\n\
        \x20    1:  1000 [     2:  6000] @ 0x7f0000001234\n\
        \n\
        MAPPED_LIBRARIES:\n\
        00400000-00401000 r--p 00000000 08:01 123    /usr/bin/my prog\n\
        00401000-00402000 r-xp 00001000 08:01 123    /usr/bin/my prog\n\
        7ffd000-7ffe000 rw-p 00000000 00:00 0\n\
        7fff000-7fff100 r-xp 00000000 00:00 0   [vdso]\n";

    #[test]
    fn parses_header_stacks_and_mappings() {
        let p = parse(SAMPLE).unwrap();
        assert_eq!(p.kind, "heap_v2");
        assert_eq!(p.period, 524288);
        assert_eq!(
            p.totals,
            Counts {
                inuse_count: 3,
                inuse_bytes: 3000,
                alloc_count: 5,
                alloc_bytes: 9000
            }
        );
        assert_eq!(p.stacks.len(), 2);
        assert_eq!(p.stacks[0].addrs, vec![0x401a2b, 0x401c00]);
        assert_eq!(p.stacks[1].counts.alloc_bytes, 6000);
        assert_eq!(p.mappings.len(), 4);
        assert_eq!((p.mappings[1].offset, p.mappings[1].inode), (0x1000, 123));
        assert_eq!(p.mappings[1].path, "/usr/bin/my prog");
        assert_eq!(p.mappings[2].path, "");
        assert_eq!(p.mappings[3].path, "[vdso]");
    }

    #[test]
    fn heapprofile_header_means_period_one() {
        let p =
            parse("heap profile:  1: 16 [ 1: 16] @ heapprofile\n 1: 16 [ 1: 16] @ 0x1\n").unwrap();
        assert_eq!((p.kind.as_str(), p.period), ("heapprofile", 1));
        assert!(p.mappings.is_empty());
        let p = parse("%warn\n%warn sampling was off\nheap profile: 0: 0 [0: 0] @ heap_v2/0\n")
            .unwrap();
        assert_eq!((p.period, p.stacks.len()), (1, 0));
    }

    #[test]
    fn malformed_lines_are_errors_with_line_numbers() {
        let cases: &[(&str, usize, &str)] = &[
            ("", 1, "empty"),
            ("cpu profile: 1: 2 [3: 4] @ heap_v2/1\n", 1, "first line"),
            ("heap profile: 1: 2 [3: 4] @ growthz\n", 1, "unsupported"),
            ("heap profile: 1: 2 [3: 4] @ heap_v2/x\n", 1, "period"),
            (
                "heap profile: 1 2 [3: 4] @ heap_v2/1\n",
                1,
                "<count>: <bytes>",
            ),
            ("heap profile: 1: 2 3: 4] @ heap_v2/1\n", 1, "["),
            (
                "heap profile: 1: 2 [3: 4] @ heap_v2/1\n 1: 2 [1: 2] @\n",
                2,
                "no addresses",
            ),
            (
                "heap profile: 1: 2 [3: 4] @ heap_v2/1\n 1: 2 [1: 2] @ 123\n",
                2,
                "0x",
            ),
            (
                "heap profile: 1: 2 [3: 4] @ heap_v2/1\n 1: 2 [1: 2] @ 0xzz\n",
                2,
                "hexadecimal",
            ),
            (
                "heap profile: 1: 2 [3: 4] @ heap_v2/1\n -1: 2 [1: 2] @ 0x1\n",
                2,
                "whole number",
            ),
            (
                "heap profile: 1: 2 [3: 4] @ heap_v2/1\n1: 2 [1: 99999999999999999999] @ 0x1\n",
                2,
                "whole number",
            ),
            (
                "heap profile: 1: 2 [3: 4] @ heap_v2/1\nMAPPED_LIBRARIES:\nnonsense\n",
                3,
                "maps",
            ),
            (
                "heap profile: 1: 2 [3: 4] @ heap_v2/1\nMAPPED_LIBRARIES:\n2000-1000 r-xp 0 0:0 0\n",
                3,
                "ends before",
            ),
        ];
        for (text, line, needle) in cases {
            let e = parse(text).expect_err(text);
            assert_eq!(e.line, *line, "{text:?}: {e}");
            assert!(e.to_string().contains(needle), "{text:?}: {e}");
        }
    }

    #[test]
    fn every_truncation_parses_or_errs_without_panicking() {
        for (i, _) in SAMPLE.char_indices() {
            let _ = parse(&SAMPLE[..i]);
            let mut mangled = SAMPLE.to_string();
            mangled.replace_range(i..=i, "\u{fffd}");
            let _ = parse(&mangled);
        }
    }

    #[test]
    fn scaling_is_pprofs() {
        // period <= 1 or nothing sampled: unchanged.
        assert_eq!(scale(3, 300, 1), (3.0, 300.0));
        assert_eq!(scale(0, 0, 524288), (0.0, 0.0));
        // One block of exactly the period: 1 / (1 - e^-1).
        let (c, b) = scale(1, 524288, 524288);
        let f = 1.0 / (1.0 - (-1.0f64).exp());
        assert!((c - f).abs() < 1e-9 && (b - 524288.0 * f).abs() < 1e-6);
        // Small blocks are scaled up by about period / size.
        let (c, b) = scale(2, 64, 524288);
        assert!((c - 2.0 * 524288.0 / 32.0).abs() / c < 1e-3, "{c}");
        assert!((b - 32.0 * c).abs() < 1e-6);
        // Huge blocks are always sampled: scale about 1.
        let (c, _) = scale(1, 1 << 30, 524288);
        assert!((c - 1.0).abs() < 1e-9);
    }
}
