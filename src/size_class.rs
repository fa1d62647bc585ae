//! Size classes: one `const` table, computed by a `const fn`, that every other per-class value
//! derives from.
//!
//! - Classes 0..8 step by 16 bytes (16, 32, ..., 128): 16 bytes is the minimum alignment, so
//!   no finer step is possible and the waste is at most 15 bytes.
//! - From 128 bytes on there are eight classes per power of two (144, 160, ..., 256, 288, ...),
//!   so a request wastes less than 12.5% of its class.
//! - The largest class is [`MAX_CLASS_SIZE`] (512 KiB); bigger requests are *large* blocks
//!   (see `large`).
//!
//! Each class also fixes the *page kind* its blocks are carved from (see `segment`): small
//! classes use 64 KiB pages, medium classes 512 KiB pages, big classes one page per segment.

/// Number of size classes.
pub const NUM_CLASSES: usize = 104;
/// The largest block size served from size-class pages.
pub const MAX_CLASS_SIZE: usize = 512 * 1024;
/// Requests of this many bytes or more are *large* blocks (see `large`), each between guards
/// of its own, in hardened builds: just above 64 KiB (the largest class of the medium kind),
/// so that a use after free of a block that big faults and a write one byte past its usable
/// size reaches a guard. A request of exactly 64 KiB stays a size-class block: with large
/// blocks from 64 KiB on, a workload with a seventh of its requests at 64 KiB (`mixed` of
/// `benches/compare`) ran 8x slower on one thread and 40x on two, each malloc/free pair then
/// costing two `mprotect`s that contend for the process's mappings. The classes above serve
/// only the `unhardened` measurement build, where large blocks start above the largest class.
pub const LARGE_FROM: usize = if cfg!(feature = "unhardened") {
    MAX_CLASS_SIZE + 1
} else {
    MAX_MEDIUM_SIZE + 1
};
/// Largest block size on small (64 KiB) pages.
pub const MAX_SMALL_SIZE: usize = 8 * 1024;
/// Largest block size on medium (512 KiB) pages.
pub const MAX_MEDIUM_SIZE: usize = 64 * 1024;
/// Minimum alignment of every block.
pub const MIN_ALIGN: usize = 16;

/// Block size of class `c`, computed (the table below is built from this).
const fn compute_size(c: usize) -> usize {
    if c < 8 {
        (c + 1) * 16
    } else {
        let k = c - 8; // 0-based index above 128
        let e = 7 + k / 8; // floor(log2) of the group's lower bound
        let m = 8 + k % 8 + 1; // 9..=16
        m << (e - 3)
    }
}

const fn build_table() -> [u32; NUM_CLASSES] {
    let mut t = [0u32; NUM_CLASSES];
    let mut c = 0;
    while c < NUM_CLASSES {
        t[c] = compute_size(c) as u32;
        c += 1;
    }
    t
}

/// Block size of every class.
pub static CLASS_SIZE: [u32; NUM_CLASSES] = build_table();
const TABLE: [u32; NUM_CLASSES] = build_table();

// Compile-time checks of the table's invariants.
const _: () = {
    assert!(TABLE[0] as usize == MIN_ALIGN);
    assert!(TABLE[NUM_CLASSES - 1] as usize == MAX_CLASS_SIZE);
    let mut c = 0;
    while c < NUM_CLASSES {
        let s = TABLE[c] as usize;
        assert!(s % MIN_ALIGN == 0, "every class is a multiple of 16");
        if c > 0 {
            let p = TABLE[c - 1] as usize;
            assert!(s > p, "classes increase");
            // The worst request for class c is p + 1: waste is s - p - 1.
            assert!(
                (s - p - 1) * 8 < s || s - p == MIN_ALIGN,
                "waste below 12.5% or one alignment step"
            );
        }
        c += 1;
    }
    assert!(TABLE[7] == 128 && TABLE[8] == 144 && TABLE[15] == 256 && TABLE[16] == 288);
};

/// The class for a request of `size` bytes (`size <= MAX_CLASS_SIZE`). `0` maps to class 0.
#[inline(always)]
pub const fn class_of(size: usize) -> usize {
    if size <= 128 {
        // 0..=16 -> 0, 17..=32 -> 1, ...
        size.div_ceil(16) - (size != 0) as usize
    } else {
        let s = size - 1;
        let e = (usize::BITS - 1 - s.leading_zeros()) as usize; // >= 7
        let m = s >> (e - 3); // 8..=15
        8 + (e - 7) * 8 + (m - 8)
    }
}

/// The class index that stands for zero-size requests (see `zero`): past every real class,
/// within the heap's power-of-two queue array, whose queue for it stays empty.
pub const ZERO_CLASS: usize = NUM_CLASSES.next_power_of_two() - 1;
const _: () = assert!(ZERO_CLASS >= NUM_CLASSES);

/// [`class_of`], except that 0 gives [`ZERO_CLASS`]: `(size + 15) / 16 - 1` wraps for 0, and
/// the mask takes the wrapped value to `ZERO_CLASS` (sizes up to 128 are the classes 0..=7,
/// well below the mask).
#[inline(always)]
pub const fn class_or_zero(size: usize) -> usize {
    if size <= 128 {
        size.div_ceil(16).wrapping_sub(1) & ZERO_CLASS
    } else {
        class_of(size)
    }
}

/// The alignment every block of class `c` has: the largest power of two dividing its size,
/// at most [`MAX_MEDIUM_SIZE`] (a segment's first data byte is 64 KiB-aligned).
pub fn class_align(c: usize) -> usize {
    let size = class_size(c);
    (1usize << size.trailing_zeros()).min(MAX_MEDIUM_SIZE)
}

/// Block size of class `c`.
#[inline(always)]
pub fn class_size(c: usize) -> usize {
    match CLASS_SIZE.get(c) {
        Some(&s) => s as usize,
        None => crate::os::internal("size class index out of range"),
    }
}

/// The smallest class whose blocks hold `size` bytes and whose size is a multiple of `align`
/// (a power of two, at most 64 KiB). Pages start 64 KiB-aligned, so every block of such a
/// class is `align`-aligned. `None` when no class fits.
pub fn class_for_aligned(size: usize, align: usize) -> Option<usize> {
    debug_assert!(align.is_power_of_two());
    if size > MAX_CLASS_SIZE || align > MAX_MEDIUM_SIZE {
        return None;
    }
    let mut c = class_of(size.max(align));
    while c < NUM_CLASSES {
        if class_size(c) % align == 0 {
            return Some(c);
        }
        c += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walk_every_size() {
        let mut prev_class = 0;
        // Under Miri (thousands of times slower) every size near a class boundary, and a
        // sparse walk between them.
        let sizes: Vec<usize> = if cfg!(miri) {
            let mut v: Vec<usize> = (0..NUM_CLASSES)
                .flat_map(|c| {
                    let s = class_size(c);
                    [s - 1, s, s + 1]
                })
                .chain((0..=MAX_CLASS_SIZE).step_by(997))
                .chain([0, 1, MAX_CLASS_SIZE])
                .filter(|&s| s <= MAX_CLASS_SIZE)
                .collect();
            v.sort_unstable();
            v
        } else {
            (0..=MAX_CLASS_SIZE).collect()
        };
        for size in sizes {
            let c = class_of(size);
            let s = class_size(c);
            assert!(s >= size, "class {c} ({s}) too small for {size}");
            assert!(
                c == 0 || class_size(c - 1) < size,
                "{size} not in smallest class"
            );
            assert!(c >= prev_class, "class_of not monotonic at {size}");
            assert_eq!(s % MIN_ALIGN, 0);
            if size > 128 {
                assert!((s - size) * 8 < s, "waste at {size} >= 12.5%");
            } else {
                assert!(s - size.max(1) < MIN_ALIGN);
            }
            prev_class = c;
        }
        assert_eq!(class_of(MAX_CLASS_SIZE), NUM_CLASSES - 1);
    }

    #[test]
    fn aligned_classes() {
        let mut align = 16;
        while align <= MAX_MEDIUM_SIZE {
            for size in [
                1,
                align - 1,
                align,
                align + 1,
                3 * align,
                100_000,
                MAX_CLASS_SIZE + 1,
            ] {
                if let Some(c) = class_for_aligned(size, align) {
                    assert!(class_size(c) >= size);
                    assert_eq!(class_size(c) % align, 0);
                } else {
                    assert!(size > MAX_CLASS_SIZE, "no class for {size} at {align}");
                }
            }
            align *= 2;
        }
    }
}
