//! FreeBSD `mmap` flag arithmetic, apart from `freebsd.rs` so that it builds and is tested
//! on Linux as well (no FreeBSD machine is available to the project).

/// `MAP_ALIGNED(n)`: the mapping is aligned to 2^n bytes. `mmap(2)`: "`MAP_ALIGNED(n)` ...
/// the mapping will be aligned to a boundary of 2^n bytes"; `<sys/mman.h>` stores `n` in the
/// bits from `MAP_ALIGNMENT_SHIFT` (24) on. `align` is a power of two of at least the page
/// size.
pub const fn aligned(align: usize) -> i32 {
    (align.trailing_zeros() as i32) << MAP_ALIGNMENT_SHIFT
}

/// `MAP_ALIGNMENT_SHIFT` of `<sys/mman.h>`.
const MAP_ALIGNMENT_SHIFT: i32 = 24;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_flags() {
        // A 4 MiB segment: MAP_ALIGNED(22), as FreeBSD's header computes it.
        assert_eq!(aligned(4 << 20), 22 << 24);
        assert_eq!(aligned(4096), 12 << 24);
        // The field is the 8 bits from bit 24: every shift a 64-bit address can need fits.
        assert_eq!(aligned(1 << 47) >> 24, 47);
        assert_eq!(aligned(1 << 47) & 0xff_ffff, 0);
    }
}
