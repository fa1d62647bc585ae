//! The slack canary, a part of `strict`.

use super::*;

/// The pattern bytes at offsets `[o, o + 8)` of a block with key `key`, as a little-endian
/// word.
#[inline(always)]
pub(super) fn pattern_word(key: u64, o: usize) -> u64 {
    key.rotate_right(((o & 7) * 8) as u32)
}

/// Write the pattern over offsets `[a, b)` of the block at `p` (`b - a <= 16`). The pattern
/// depends only on the offset, so overlapping writes agree.
///
/// # Safety
/// `[p + a, p + b)` is writable.
#[inline(always)]
pub(super) unsafe fn span_write(p: *mut u8, key: u64, a: usize, b: usize) {
    let len = b - a;
    // SAFETY: every write lies in [a, b).
    unsafe {
        if len >= 8 {
            (p.add(a) as *mut u64).write_unaligned(pattern_word(key, a));
            (p.add(b - 8) as *mut u64).write_unaligned(pattern_word(key, b - 8));
        } else if len >= 4 {
            (p.add(a) as *mut u32).write_unaligned(pattern_word(key, a) as u32);
            (p.add(b - 4) as *mut u32).write_unaligned(pattern_word(key, b - 4) as u32);
        } else if len >= 2 {
            (p.add(a) as *mut u16).write_unaligned(pattern_word(key, a) as u16);
            (p.add(b - 2) as *mut u16).write_unaligned(pattern_word(key, b - 2) as u16);
        } else if len == 1 {
            *p.add(a) = pattern(key, a);
        }
    }
}

/// Whether offsets `[a, b)` of the block at `p` hold the pattern (`b - a <= 16`).
///
/// # Safety
/// `[p + a, p + b)` is readable.
#[inline(always)]
pub(super) unsafe fn span_ok(p: *const u8, key: u64, a: usize, b: usize) -> bool {
    let len = b - a;
    // SAFETY: every read lies in [a, b).
    unsafe {
        if len >= 8 {
            (p.add(a) as *const u64).read_unaligned() == pattern_word(key, a)
                && (p.add(b - 8) as *const u64).read_unaligned() == pattern_word(key, b - 8)
        } else if len >= 4 {
            (p.add(a) as *const u32).read_unaligned() == pattern_word(key, a) as u32
                && (p.add(b - 4) as *const u32).read_unaligned() == pattern_word(key, b - 4) as u32
        } else if len >= 2 {
            (p.add(a) as *const u16).read_unaligned() == pattern_word(key, a) as u16
                && (p.add(b - 2) as *const u16).read_unaligned() == pattern_word(key, b - 2) as u16
        } else {
            len == 0 || *p.add(a) == pattern(key, a)
        }
    }
}

/// Length of the tag for slack `s`.
#[inline(always)]
pub(super) fn tag_len(s: usize) -> usize {
    if s < 255 { 1 } else { 9 }
}

/// Write the slack of a block of `bs` bytes at `p` holding `n < bs` requested bytes, leaving
/// the requested bytes untouched (`realloc` in place rewrites the canary of a live block).
///
/// # Safety
/// `p` is a block of ours of `bs` bytes that the caller owns.
#[inline]
pub(super) unsafe fn write_canary(p: *mut u8, bs: usize, n: usize) {
    debug_assert!(n < bs);
    if NO_CANARY {
        return;
    }
    let key = block_key(p as usize);
    let s = bs - n;
    let tl = tag_len(s);
    let end = (n + CANARY_SPAN).min(bs - tl);
    // SAFETY: every offset written is below `bs`.
    unsafe {
        span_write(p, key, n, end);
        write_tag(p, bs, s, key);
    }
}

/// Write the tag of slack `s` at the end of the block of `bs` bytes at `p`.
///
/// # Safety
/// The last `tag_len(s)` bytes of the block are the caller's to write.
#[inline(always)]
pub(super) unsafe fn write_tag(p: *mut u8, bs: usize, s: usize, key: u64) {
    // SAFETY: per the contract.
    unsafe {
        if s < 255 {
            *p.add(bs - 1) = s as u8 ^ pattern(key, bs - 1);
        } else {
            *p.add(bs - 1) = 255 ^ pattern(key, bs - 1);
            (p.add(bs - 9) as *mut u64).write_unaligned(s as u64 ^ key);
        }
    }
}

/// [`write_canary`] for a block just handed out, whose requested bytes hold nothing yet: with
/// at most 16 bytes of slack, the last 16 bytes of the block are written whole (two stores,
/// no branch on the length), the requested bytes among them included.
///
/// # Safety
/// `p` is a block of ours of `bs >= 16` bytes (a multiple of 8) that was just allocated.
#[inline(always)]
pub(super) unsafe fn write_canary_fresh(p: *mut u8, bs: usize, n: usize) {
    debug_assert!(n < bs && bs >= 16 && bs % 8 == 0);
    if NO_CANARY {
        return;
    }
    let key = block_key(p as usize);
    let s = bs - n;
    // SAFETY: every offset written is below `bs`; bytes below `n` are not the caller's yet.
    unsafe {
        if s <= 16 {
            // Offsets `bs - 16` and `bs - 8` are multiples of 8: their pattern word is `key`,
            // and the tag is the top byte of the second word.
            (p.add(bs - 16) as *mut u64).write_unaligned(key);
            (p.add(bs - 8) as *mut u64).write_unaligned(key ^ ((s as u64) << 56));
        } else if s < 255 {
            let w = pattern_word(key, n);
            (p.add(n) as *mut u64).write_unaligned(w);
            (p.add(n + 8) as *mut u64).write_unaligned(w);
            *p.add(bs - 1) = s as u8 ^ pattern(key, bs - 1);
        } else {
            write_canary(p, bs, n);
        }
    }
}

/// `x`, hidden from the optimiser: it cannot branch on a value it knows nothing of.
#[inline(always)]
pub(super) fn opaque(x: usize) -> usize {
    os::opaque(x)
}

/// The 16-byte canary window of a block of `bs` bytes with slack `s` (1..=254): its offset,
/// the tag bits in its second word (the top byte when the window ends at the block's end,
/// that is for `s <= 16`), and how many requested bytes it starts with. Computed with masks,
/// not branches: on `free` the slack comes from a tag that is often still on its way from
/// memory, and a mispredicted branch on it cost more than the rest of the check.
#[inline(always)]
pub(super) fn window(bs: usize, s: usize) -> (usize, u64, usize) {
    debug_assert!((1..255).contains(&s) && s <= bs && bs >= 16);
    // All ones when s <= 16; opaque, or the compiler splits the code on it again.
    let short = opaque(((s as isize - 17) >> (isize::BITS - 1)) as usize);
    let user = 16usize.wrapping_sub(s) & short;
    let tag = ((s as u64) << 56) & short as u64;
    (bs - s - user, tag, user)
}

/// The requested size of the block of `bs` bytes at `p`, if its slack is intact.
///
/// The block is usually cold when it is freed, so the tag arrives late: apart from the rare
/// long forms, nothing branches on it. Both short forms are one 16-byte window compared with
/// its expected pattern (the block's last 16 bytes for slack up to 16, with the requested
/// bytes among them shifted out; else the 16 bytes at the requested size).
///
/// # Safety
/// `p` is a live block of ours of `bs >= 16` bytes (a multiple of 8).
#[inline(always)]
pub(super) unsafe fn read_canary(p: *const u8, bs: usize) -> Option<usize> {
    debug_assert!(bs >= 16 && bs % 8 == 0);
    if NO_CANARY {
        return Some(bs - 1);
    }
    let key = block_key(p as usize);
    // SAFETY: every offset read is below `bs`.
    unsafe {
        let t = (*p.add(bs - 1) ^ pattern(key, bs - 1)) as usize;
        // A zero tag, or one larger than the block (an overflow changed it), is corrupt: no
        // read past the block's start. 255 marks the long form. (One compare: the bound is
        // known before the tag arrives.)
        if t.wrapping_sub(1) >= bs.min(254) {
            return read_canary_long(p, bs, t, key);
        }
        let (a, tag, user) = window(bs, t);
        // Offsets `a` and `a + 8` have the same pattern word.
        let w = pattern_word(key, a);
        let lo = (p.add(a) as *const u64).read_unaligned() ^ w;
        let hi = (p.add(a + 8) as *const u64).read_unaligned() ^ w ^ tag;
        // The window's requested bytes (slack below 16) are shifted out.
        let diff = ((hi as u128) << 64 | lo as u128) >> (8 * user);
        (diff == 0).then_some(bs - t)
    }
}

/// [`read_canary`] for a zero tag or one larger than the block (always corrupt), or slack of
/// 255 bytes and more (tag 255).
///
/// # Safety
/// As for [`read_canary`].
#[cold]
#[inline(never)]
pub(super) unsafe fn read_canary_long(
    p: *const u8,
    bs: usize,
    t: usize,
    key: u64,
) -> Option<usize> {
    if t != 255 {
        return None;
    }
    // SAFETY: every offset read is below `bs`.
    unsafe {
        let s = (p.add(bs - 9) as *const u64).read_unaligned() ^ key;
        if s < 255 || s > bs as u64 {
            return None;
        }
        let n = bs - s as usize;
        let end = (n + CANARY_SPAN).min(bs - 9);
        span_ok(p, key, n, end).then_some(n)
    }
}

#[cold]
#[inline(never)]
pub(super) fn overflow(p: usize) -> ! {
    os::fatal_ptr("heap overflow past the end of the block at", p)
}

/// Clear a freed block of `bs` bytes at `p` holding `n` requested bytes: the whole block when
/// it has at most [`ZERO_LIMIT`] bytes, else its first `ZERO_LIMIT` bytes and the canary and
/// tag of its slack; nothing under `MAPALLOC_STRICT_ZERO=0`. Afterwards a block of up to
/// `ZERO_LIMIT` bytes reads as zero (unless something wrote beyond the canary). The common
/// case depends on the block size only, not on `n`, which comes from the block's (often cold)
/// tag.
///
/// # Safety
/// `p` is a block of ours of `bs` bytes (a multiple of 16, 16-byte aligned) that the caller
/// gives up, `n` its requested size.
#[inline(always)]
pub(super) unsafe fn clear(p: *mut u8, bs: usize, n: usize) {
    if !zeroing() {
        return;
    }
    // SAFETY: per the contract, all within the block.
    unsafe {
        if bs <= 64 {
            // A few stores, no call.
            zero_small(p, bs);
        } else if bs <= ZERO_LIMIT {
            ptr::write_bytes(p, 0, bs);
        } else {
            clear_big(p, bs, n);
        }
    }
}

/// Whether freed blocks are cleared: built with zeroing and not switched off by
/// `MAPALLOC_STRICT_ZERO=0`.
#[inline(always)]
pub(super) fn zeroing() -> bool {
    !NO_ZERO && config::strict_zero()
}

/// [`clear`] for a block of more than [`ZERO_LIMIT`] bytes.
///
/// # Safety
/// As for [`clear`].
#[inline(never)]
pub(super) unsafe fn clear_big(p: *mut u8, bs: usize, n: usize) {
    // SAFETY: per the contract, all within the block.
    unsafe {
        ptr::write_bytes(p, 0, n.min(ZERO_LIMIT));
        clear_slack(p, bs, n);
    }
}

/// Zero the `len` bytes at `p` (`len` 16, 32, 48 or 64) with 16-byte stores, overlapping
/// where `len` is 48, with one branch. The stores are volatile so that the compiler does not
/// turn them back into a `memset` call.
///
/// # Safety
/// `[p, p + len)` is writable and 16-byte aligned.
#[inline(always)]
pub(super) unsafe fn zero_small(p: *mut u8, len: usize) {
    debug_assert!(len % 16 == 0 && (16..=64).contains(&len) && p as usize % 16 == 0);
    type Chunk = os::Chunk16;
    // SAFETY: all-zero bits are a valid value of either type.
    let zero: Chunk = unsafe { core::mem::zeroed() };
    // SAFETY: per the contract, every store lies in [p, p + len) and is 16-byte aligned.
    unsafe {
        (p as *mut Chunk).write_volatile(zero);
        (p.add(len - 16) as *mut Chunk).write_volatile(zero);
        if len > 32 {
            (p.add(16) as *mut Chunk).write_volatile(zero);
            (p.add(len - 32) as *mut Chunk).write_volatile(zero);
        }
    }
}
