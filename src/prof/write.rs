//! Writing the profile: the gperftools heap-profile text format (the "legacy" format that
//! `pprof` and gperftools' `pprof`/`google-pprof` read), and the leak summary on stderr.
//!
//! ```text
//! heap profile:   <live blocks>: <live bytes> [<allocated blocks>: <allocated bytes>] @ heap_v2/<period>
//!   <live blocks>: <live bytes> [<allocated blocks>: <allocated bytes>] @ 0x... 0x... 0x...
//!   ... one line per stack, innermost frame first, return addresses ...
//!
//! MAPPED_LIBRARIES:
//! <a copy of /proc/self/maps>
//! ```
//! The numbers are raw samples; readers scale them (`heap_v2/<period>` tells them how, as
//! `prof::scale` does). The mappings make the file self-contained: it is symbolised after the
//! process is gone, with no help from it. Why this format rather than pprof's protobuf: it is
//! plain text written with `write(2)` and no compression, so the allocator can write it from
//! any state (at exit, in a signal handler) without allocating, and every pprof reads it.

use super::scale;
use super::table::{Stack, Tables};
use crate::os::{self, Line};

/// A line buffer large enough for a stack's line (64 addresses of 19 bytes).
type Out = Line<2048>;

fn counts(l: &mut Out, count: u64, bytes: u64, alloc_count: u64, alloc_bytes: u64) {
    l.dec(count)
        .str(": ")
        .dec(bytes)
        .str(" [")
        .dec(alloc_count)
        .str(": ")
        .dec(alloc_bytes)
        .str("] @");
}

/// Write the tables to `fd` in the format above: the `errno` value of a failed write.
pub fn heap_profile(fd: i32, tb: &Tables, period: usize) -> Result<(), i32> {
    let mut l = Out::empty();
    let total = tb.stacks().iter().fold((0, 0, 0, 0), |t, s| {
        (
            t.0 + s.inuse_count,
            t.1 + s.inuse_bytes,
            t.2 + s.alloc_count,
            t.3 + s.alloc_bytes,
        )
    });
    l.str("heap profile: ");
    counts(&mut l, total.0, total.1, total.2, total.3);
    l.str(" heap_v2/").dec(period as u64).str("\n");
    os::write_fd(fd, l.as_bytes())?;
    for s in tb.stacks() {
        l.clear();
        counts(
            &mut l,
            s.inuse_count,
            s.inuse_bytes,
            s.alloc_count,
            s.alloc_bytes,
        );
        for &f in tb.frames_of(s) {
            l.str(" ").hex(f);
        }
        l.str("\n");
        os::write_fd(fd, l.as_bytes())?;
    }
    os::write_fd(fd, b"\nMAPPED_LIBRARIES:\n")?;
    let mut failed = Ok(());
    os::read_chunks(c"/proc/self/maps", |chunk| {
        failed = os::write_fd(fd, chunk);
        failed.is_ok()
    })?;
    failed
}

/// The heaviest stacks of the summary.
const SHOWN: usize = 5;
/// Frames shown per stack.
const SHOWN_FRAMES: usize = 4;

/// The leak report on stderr: what is still live, and its heaviest stacks, each frame as
/// `object+offset`, which `addr2line -e object offset` resolves.
pub fn leak_report(tb: &Tables, period: usize, file: &[u8], written: bool) {
    let mut live = (0u64, 0u64, 0usize);
    for s in tb.stacks() {
        if s.inuse_count > 0 {
            let (c, b) = scale(s.inuse_count, s.inuse_bytes, period);
            live = (live.0 + c, live.1 + b, live.2 + 1);
        }
    }
    let mut l = Line::<1024>::empty();
    l.str("mapalloc: leaks: ");
    if live.0 == 0 {
        l.str("none: every recorded block was freed");
    } else {
        l.dec(live.1)
            .str(" bytes in ")
            .dec(live.0)
            .str(" blocks from ")
            .dec(live.2 as u64)
            .str(" stacks are still live at exit");
    }
    if period > 1 {
        l.str(" (estimated from samples every ")
            .dec(period as u64)
            .str(" bytes)");
    }
    if written {
        l.str("; the profile is in ")
            .bytes(file)
            .str(" (mapalloc-prof FILE symbolises it)");
    }
    if tb.dropped > 0 {
        l.str("; ")
            .dec(tb.dropped)
            .str(" samples dropped for lack of memory");
    }
    l.str("\n");
    os::write_stderr(l.as_bytes());
    if live.0 == 0 {
        return;
    }
    // The heaviest stacks, largest first, without sorting (no room to sort in): SHOWN passes
    // for the largest below the last one shown.
    let mut bound = u64::MAX;
    for _ in 0..SHOWN {
        let mut best: Option<&Stack> = None;
        for s in tb.stacks() {
            let b = scale(s.inuse_count, s.inuse_bytes, period).1;
            if s.inuse_count > 0
                && b < bound
                && best.is_none_or(|x| b > scale(x.inuse_count, x.inuse_bytes, period).1)
            {
                best = Some(s);
            }
        }
        let Some(s) = best else { break };
        let (c, b) = scale(s.inuse_count, s.inuse_bytes, period);
        bound = b;
        let mut l = Line::<1024>::empty();
        l.str("mapalloc:   ")
            .dec(b)
            .str(" bytes in ")
            .dec(c)
            .str(" blocks at");
        for &f in tb.frames_of(s).iter().take(SHOWN_FRAMES) {
            l.str(" ");
            locate(&mut l, f);
        }
        l.str("\n");
        os::write_stderr(l.as_bytes());
    }
}

/// Append `addr` as `object+0xoffset` (the file offset, which `addr2line` takes for a
/// position-independent object), from `/proc/self/maps`; as `0xaddr` when no mapping holds
/// it.
fn locate(l: &mut Line<1024>, addr: usize) {
    // One line of the maps file at a time: `start-end perms offset dev inode path`.
    let mut line = [0u8; 512];
    let mut n = 0;
    let mut found = false;
    let _ = os::read_chunks(c"/proc/self/maps", |chunk| {
        for &b in chunk {
            if b != b'\n' {
                if let Some(slot) = line.get_mut(n) {
                    *slot = b;
                }
                n += 1;
                continue;
            }
            let text = line.get(..n.min(line.len())).unwrap_or(&[]);
            n = 0;
            if let Some((start, end, off, path)) = parse_maps_line(text) {
                // Stack addresses are return addresses: the call is the byte before.
                if (start..end).contains(&addr.saturating_sub(1)) {
                    l.bytes(path).str("+").hex(addr - start + off);
                    found = true;
                    return false;
                }
            }
        }
        true
    });
    if !found {
        l.hex(addr);
    }
}

/// `start-end perms offset dev inode path` → (start, end, offset, path).
fn parse_maps_line(t: &[u8]) -> Option<(usize, usize, usize, &[u8])> {
    let mut fields = t.split(|&b| b == b' ').filter(|f| !f.is_empty());
    let range = fields.next()?;
    let _perms = fields.next()?;
    let off = hex(fields.next()?)?;
    let _dev = fields.next()?;
    let _inode = fields.next()?;
    let path = fields.next().unwrap_or(b"?");
    let dash = range.iter().position(|&b| b == b'-')?;
    let start = hex(range.get(..dash)?)?;
    let end = hex(range.get(dash + 1..)?)?;
    Some((start, end, off, path))
}

fn hex(s: &[u8]) -> Option<usize> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    let mut v = 0usize;
    for &c in s {
        let d = (c as char).to_digit(16)?;
        v = (v << 4) | d as usize;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_lines() {
        let l = b"7f12a0000000-7f12a0021000 r-xp 00002000 fe:01 1234   /usr/lib/libx.so";
        assert_eq!(
            parse_maps_line(l),
            Some((
                0x7f12a0000000,
                0x7f12a0021000,
                0x2000,
                &b"/usr/lib/libx.so"[..]
            ))
        );
        let anon = b"7ffd1000-7ffd2000 rw-p 00000000 00:00 0";
        assert_eq!(
            parse_maps_line(anon),
            Some((0x7ffd1000, 0x7ffd2000, 0, &b"?"[..]))
        );
        assert_eq!(parse_maps_line(b"garbage"), None);
    }

    #[test]
    #[cfg_attr(miri, ignore)] // maps the tables, writes a file, reads /proc/self/maps
    fn profile_text() {
        let mut t = Tables::new();
        assert!(t.insert(0x1000, 100, &[0xaa, 0xbb]));
        assert!(t.insert(0x2000, 50, &[0xaa, 0xbb]));
        assert!(t.insert(0x3000, 7, &[0xcc]));
        assert_eq!(t.remove(0x2000), Some(50));
        let path = std::env::temp_dir().join(format!("mapalloc-prof-{}.heap", std::process::id()));
        let fd = {
            use std::os::fd::IntoRawFd;
            std::fs::File::create(&path).unwrap().into_raw_fd()
        };
        heap_profile(fd, &t, 524288).unwrap();
        os::close_report_file(fd);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("heap profile: 2: 107 [3: 157] @ heap_v2/524288")
        );
        assert_eq!(lines.next(), Some("1: 100 [2: 150] @ 0xaa 0xbb"));
        assert_eq!(lines.next(), Some("1: 7 [1: 7] @ 0xcc"));
        assert_eq!(lines.next(), Some(""));
        assert_eq!(lines.next(), Some("MAPPED_LIBRARIES:"));
        assert!(text.contains("[stack]"), "the maps follow");
    }
}
