//! The profile's two tables, in memory mapped for them (never from the heap they describe):
//! the sampled blocks still live, keyed by address, and the distinct stacks with their
//! counters. Both are open-addressing hash tables with linear probing that double when half
//! full; the stacks' frames sit in an append-only array. All of it is guarded by the one lock
//! in `prof` (see there); nothing here locks or allocates through `malloc`.
//!
//! Counters are raw: a stack's `alloc_*` count every sampled allocation made from it, its
//! `inuse_*` the sampled blocks still live. Scaling to estimates is the reader's business
//! (see `prof::scale`).

use core::mem::size_of;
use core::ptr;

use crate::os;

/// The most frames a stack keeps (the innermost ones).
pub const MAX_FRAMES: usize = 64;

/// A sampled block still live: `addr` 0 marks an empty slot.
#[repr(C)]
#[derive(Clone, Copy)]
struct Live {
    addr: usize,
    size: usize,
    stack: u32,
}

/// A distinct stack and its raw counters.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Stack {
    hash: u64,
    /// Index of its first frame in the frame array, and how many it has.
    first: u32,
    depth: u32,
    pub inuse_count: u64,
    pub inuse_bytes: u64,
    pub alloc_count: u64,
    pub alloc_bytes: u64,
}

/// An array of `cap` elements of `T` in a mapping of its own (zeroed when mapped).
struct Region<T> {
    ptr: *mut T,
    cap: usize,
}

impl<T: Copy> Region<T> {
    const fn empty() -> Self {
        Region {
            ptr: ptr::null_mut(),
            cap: 0,
        }
    }

    fn bytes(cap: usize) -> usize {
        let ps = os::page_size();
        (cap * size_of::<T>()).div_ceil(ps) * ps
    }

    /// A zeroed region of `cap` elements; `None` when the kernel has no memory.
    fn map(cap: usize) -> Option<Self> {
        let p = os::map(Self::bytes(cap), true);
        if p.is_null() {
            return None;
        }
        Some(Region { ptr: p.cast(), cap })
    }

    fn release(&mut self) {
        if !self.ptr.is_null() {
            // SAFETY: our own mapping of `bytes(cap)` bytes, no longer referenced.
            unsafe { os::release(self.ptr.cast(), Self::bytes(self.cap)) };
        }
        *self = Region::empty();
    }

    /// # Safety
    /// `i < cap`.
    unsafe fn at(&self, i: usize) -> *mut T {
        debug_assert!(i < self.cap);
        // SAFETY: per the contract, inside the mapping.
        unsafe { self.ptr.add(i) }
    }
}

/// The tables. The zero value (all empty) is valid; the first insert maps them.
pub struct Tables {
    live: Region<Live>,
    live_len: usize,
    /// Slots of the stack index: 0 empty, else a stack's position plus one.
    index: Region<u32>,
    stacks: Region<Stack>,
    stacks_len: usize,
    frames: Region<usize>,
    frames_len: usize,
    /// Samples that could not be recorded (no memory for the tables).
    pub dropped: u64,
}

// SAFETY: the regions are private mappings used only under the profile's lock.
unsafe impl Send for Tables {}

const INITIAL_LIVE: usize = 4096;
const INITIAL_STACKS: usize = 1024;
const INITIAL_FRAMES: usize = 16 * 1024;

fn addr_hash(a: usize) -> u64 {
    ((a >> 4) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn stack_hash(frames: &[usize]) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for &f in frames {
        h = (h ^ f as u64).wrapping_mul(0x0000_0100_0000_01B3);
        h ^= h >> 29;
    }
    h
}

/// Slot of hash `h` in a power-of-two table of `cap` slots.
fn home(h: u64, cap: usize) -> usize {
    (h >> 17) as usize & (cap - 1)
}

impl Tables {
    pub const fn new() -> Self {
        Tables {
            live: Region::empty(),
            live_len: 0,
            index: Region::empty(),
            stacks: Region::empty(),
            stacks_len: 0,
            frames: Region::empty(),
            frames_len: 0,
            dropped: 0,
        }
    }

    /// Record the sampled block `addr` of `size` bytes allocated from `frames` (innermost
    /// first), which is not recorded yet (see [`Tables::remove`]). False when there was no
    /// memory for it.
    pub fn insert(&mut self, addr: usize, size: usize, frames: &[usize]) -> bool {
        debug_assert!(addr != 0);
        let frames = frames.get(..frames.len().min(MAX_FRAMES)).unwrap_or(&[]);
        let Some(stack) = self.stack_for(frames) else {
            self.dropped += 1;
            return false;
        };
        if (self.live_len + 1) * 2 > self.live.cap && !self.grow_live() {
            self.dropped += 1;
            return false;
        }
        let cap = self.live.cap;
        let mut i = home(addr_hash(addr), cap);
        // SAFETY: `i` stays below `cap`; the table is at most half full, so an empty slot
        // exists.
        unsafe {
            while (*self.live.at(i)).addr != 0 {
                i = (i + 1) & (cap - 1);
            }
            *self.live.at(i) = Live {
                addr,
                size,
                stack: stack as u32,
            };
            let s = &mut *self.stacks.at(stack);
            s.inuse_count += 1;
            s.inuse_bytes += size as u64;
            s.alloc_count += 1;
            s.alloc_bytes += size as u64;
        }
        self.live_len += 1;
        true
    }

    /// Forget the sampled block `addr`: its size, or `None` when it is not recorded.
    pub fn remove(&mut self, addr: usize) -> Option<usize> {
        let cap = self.live.cap;
        if cap == 0 {
            return None;
        }
        let mut i = home(addr_hash(addr), cap);
        // SAFETY: every index is masked below `cap`.
        unsafe {
            loop {
                let e = *self.live.at(i);
                if e.addr == 0 {
                    return None;
                }
                if e.addr == addr {
                    break;
                }
                i = (i + 1) & (cap - 1);
            }
            let e = *self.live.at(i);
            let s = &mut *self.stacks.at(e.stack as usize);
            s.inuse_count -= 1;
            s.inuse_bytes -= e.size as u64;
            // Backward-shift deletion: move later entries of the probe run into the hole, so
            // that no tombstones are needed.
            let mut hole = i;
            let mut j = (i + 1) & (cap - 1);
            loop {
                let f = *self.live.at(j);
                if f.addr == 0 {
                    break;
                }
                let h = home(addr_hash(f.addr), cap);
                // `f` may move into the hole when its home is not inside (hole, j].
                let between = if hole <= j {
                    hole < h && h <= j
                } else {
                    hole < h || h <= j
                };
                if !between {
                    *self.live.at(hole) = f;
                    hole = j;
                }
                j = (j + 1) & (cap - 1);
            }
            (*self.live.at(hole)).addr = 0;
            self.live_len -= 1;
            Some(e.size)
        }
    }

    /// The stack's position, added when new. `None` when there is no memory for it.
    fn stack_for(&mut self, frames: &[usize]) -> Option<usize> {
        let h = stack_hash(frames);
        if (self.stacks_len + 1) * 2 > self.index.cap && !self.grow_index() {
            return None;
        }
        let cap = self.index.cap;
        let mut i = home(h, cap);
        // SAFETY: indices are masked below the capacities; a stored position is below
        // `stacks_len`.
        unsafe {
            loop {
                let slot = *self.index.at(i);
                if slot == 0 {
                    break;
                }
                let s = *self.stacks.at(slot as usize - 1);
                if s.hash == h && self.frames_of(&s) == frames {
                    return Some(slot as usize - 1);
                }
                i = (i + 1) & (cap - 1);
            }
            if self.stacks_len == self.stacks.cap && !grow_copy(&mut self.stacks, self.stacks_len) {
                return None;
            }
            while self.frames_len + frames.len() > self.frames.cap {
                if !grow_copy(&mut self.frames, self.frames_len) {
                    return None;
                }
            }
            let first = self.frames_len;
            ptr::copy_nonoverlapping(frames.as_ptr(), self.frames.at(first), frames.len());
            self.frames_len += frames.len();
            let pos = self.stacks_len;
            *self.stacks.at(pos) = Stack {
                hash: h,
                first: first as u32,
                depth: frames.len() as u32,
                inuse_count: 0,
                inuse_bytes: 0,
                alloc_count: 0,
                alloc_bytes: 0,
            };
            self.stacks_len += 1;
            *self.index.at(i) = pos as u32 + 1;
            Some(pos)
        }
    }

    /// The frames of a stack of these tables.
    pub fn frames_of(&self, s: &Stack) -> &[usize] {
        if s.depth == 0 {
            return &[];
        }
        // SAFETY: `first..first+depth` was written when the stack was added.
        unsafe { core::slice::from_raw_parts(self.frames.at(s.first as usize), s.depth as usize) }
    }

    /// The stacks recorded so far.
    pub fn stacks(&self) -> &[Stack] {
        if self.stacks_len == 0 {
            return &[];
        }
        // SAFETY: the first `stacks_len` elements are initialised.
        unsafe { core::slice::from_raw_parts(self.stacks.ptr, self.stacks_len) }
    }

    /// Sampled blocks still live.
    #[cfg(test)]
    pub fn live_blocks(&self) -> usize {
        self.live_len
    }

    fn grow_live(&mut self) -> bool {
        let cap = (self.live.cap * 2).max(INITIAL_LIVE);
        let Some(new) = Region::<Live>::map(cap) else {
            return false;
        };
        for i in 0..self.live.cap {
            // SAFETY: `i` below the old capacity; positions in the new one are masked.
            unsafe {
                let e = *self.live.at(i);
                if e.addr != 0 {
                    let mut j = home(addr_hash(e.addr), cap);
                    while (*new.at(j)).addr != 0 {
                        j = (j + 1) & (cap - 1);
                    }
                    *new.at(j) = e;
                }
            }
        }
        self.live.release();
        self.live = new;
        true
    }

    fn grow_index(&mut self) -> bool {
        let cap = (self.index.cap * 2).max(2 * INITIAL_STACKS);
        let Some(new) = Region::<u32>::map(cap) else {
            return false;
        };
        for pos in 0..self.stacks_len {
            // SAFETY: `pos` below `stacks_len`; positions in the new index are masked.
            unsafe {
                let h = (*self.stacks.at(pos)).hash;
                let mut j = home(h, cap);
                while *new.at(j) != 0 {
                    j = (j + 1) & (cap - 1);
                }
                *new.at(j) = pos as u32 + 1;
            }
        }
        self.index.release();
        self.index = new;
        true
    }
}

/// Double `r` (or map its first capacity), keeping its first `len` elements.
fn grow_copy<T: Copy>(r: &mut Region<T>, len: usize) -> bool {
    let initial = if size_of::<T>() == size_of::<usize>() {
        INITIAL_FRAMES
    } else {
        INITIAL_STACKS
    };
    let cap = (r.cap * 2).max(initial);
    let Some(new) = Region::<T>::map(cap) else {
        return false;
    };
    if len > 0 {
        // SAFETY: both regions hold at least `len` elements and do not overlap.
        unsafe { ptr::copy_nonoverlapping(r.ptr, new.ptr, len) };
    }
    r.release();
    *r = new;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore)] // maps the tables
    fn insert_remove_and_counters() {
        let mut t = Tables::new();
        let a = [0x1000usize, 0x2000, 0x3000];
        let b = [0x1000usize, 0x2001];
        for i in 0..10_000usize {
            let frames: &[usize] = if i % 3 == 0 { &b } else { &a };
            assert!(t.insert(0x10_0000 + i * 16, 100 + i % 7, frames));
        }
        assert_eq!(t.stacks().len(), 2);
        assert_eq!(t.live_blocks(), 10_000);
        let total: u64 = t.stacks().iter().map(|s| s.inuse_bytes).sum();
        let want: u64 = (0..10_000u64).map(|i| 100 + i % 7).sum();
        assert_eq!(total, want);
        // Remove every other block; the rest must still be found.
        for i in (0..10_000usize).step_by(2) {
            assert_eq!(t.remove(0x10_0000 + i * 16), Some(100 + i % 7));
        }
        assert_eq!(t.remove(0x10_0000), None);
        for i in (1..10_000usize).step_by(2) {
            assert_eq!(t.remove(0x10_0000 + i * 16), Some(100 + i % 7));
        }
        assert_eq!(t.live_blocks(), 0);
        for s in t.stacks() {
            assert_eq!((s.inuse_count, s.inuse_bytes), (0, 0));
            assert!(s.alloc_count > 0);
        }
        let alloc: u64 = t.stacks().iter().map(|s| s.alloc_bytes).sum();
        assert_eq!(alloc, want);
        // The first block (i = 0) came from `b`.
        assert_eq!(t.frames_of(&t.stacks()[0]), &b[..]);
        assert_eq!(t.frames_of(&t.stacks()[1]), &a[..]);
    }

    #[test]
    #[cfg_attr(miri, ignore)] // maps the tables
    fn many_stacks_and_reinsert() {
        let mut t = Tables::new();
        for i in 0..5000usize {
            let f = [i, i + 1, i * 3];
            assert!(t.insert(16 * (i + 1), 8, &f));
        }
        assert_eq!(t.stacks().len(), 5000);
        assert_eq!(t.remove(16), Some(8));
        assert!(t.insert(16, 24, &[1, 2, 3]));
        assert_eq!(t.live_blocks(), 5000);
        assert_eq!(t.remove(16), Some(24));
        let deep = [7usize; 100];
        assert!(t.insert(0x999_0000, 1, &deep));
        let s = t.stacks().iter().find(|s| s.depth as usize == MAX_FRAMES);
        assert!(s.is_some());
    }
}
