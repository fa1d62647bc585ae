//! Segments: 4 MiB regions aligned to 4 MiB, carved into pages of one size class each.
//!
//! Layout of a segment (OS page size P, guard stride S = 512 KiB; offsets from the segment
//! base; `#` is a guard):
//!
//! ```text
//! [ header + pages | bitmap ][#][ pages ... ][#][ pages ... ][#] ... [ pages ... ][#]
//! 0                 meta_end    data_start   S-P S            2S-P    7S           8S-P
//! ```
//!
//! - **Metadata apart from data.** The header, the page descriptors and the bitmap sit at the
//!   start of the segment, fenced from the blocks by a guard; an underflow off the first page
//!   or an overflow off the last faults instead of reaching metadata or the next segment.
//! - **No accessible run longer than the stride** (issue 20, item 3: an overflow or underflow
//!   that runs far, a loop or a `memcpy`). In hardened builds the last OS page of every
//!   [`GUARD_STRIDE`] (512 KiB) of the segment is a guard (the last one is the end guard): a
//!   linear overflow or underflow of 512 KiB from any block faults. A page whose end is a
//!   stride's end loses that OS page from its block area ([`Segment::page_bounds`] ends
//!   before it): a medium page of 64 KiB blocks holds 7, a small page of 8 KiB blocks 7 when
//!   it ends a stride. The layout is fixed (the same for every kind, every segment), so the
//!   reserved OS pages are never handed out, purged or reopened, whether their guard is
//!   installed or not: they are installed with the segment's other guards when its arena is
//!   mapped (guard markers: one call for sixteen segments), and a reused segment keeps them
//!   (markers survive purges and `fork`). With the `mprotect` fallback each costs two
//!   mappings, so they are installed within [`INTERIOR_GUARD_BUDGET`]; past it fresh segments
//!   get only the metadata and end guards (their reserved pages stay unused).
//! - **Pointer to metadata from the address alone.** `p & !(SEGMENT_SIZE - 1)` is the segment
//!   base, but it is only read after the global *segment map* (one bit per 4 MiB of address
//!   space, a static bitmap covering 48-bit addresses) says that a segment of ours is mapped
//!   there. A foreign pointer is never dereferenced.
//! - **The live-block bitmap** has one bit per 16-byte granule of the segment; a bit is set
//!   exactly while a block *starts* there and is allocated. `free` checks and clears it, so a
//!   double free, an interior pointer or a pointer into metadata or a guard is caught from
//!   metadata alone, without a header in front of the block.
//! - A segment has one *kind*, which fixes its page size: small (64 KiB pages, blocks up to
//!   8 KiB), medium (512 KiB pages, blocks up to 72 KiB) or big (one page per segment, blocks
//!   up to 512 KiB; only in the `unhardened` measurement build, see [`Kind::has_segments`]).
//!   The first data byte is 64 KiB-aligned, so a class whose size is a multiple of
//!   `A <= 64 KiB` has every block `A`-aligned.
//! - A segment belongs to one heap (thread); all its pages do too. Other threads only push
//!   to a page's atomic remote-free list and clear bits of the blocks they free, with atomic RMWs
//!   (see `heap::free::free_remote`).
//!
//! `cache.rs` holds the segment cache and the arenas fresh segments are carved from.

use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};

use crate::remote::{Block, NOT_FULL};
use crate::sync::atomic::{AtomicPtr as SyncPtr, AtomicU8 as SyncU8};

#[cfg(test)]
use crate::size_class::MAX_MEDIUM_SIZE;
use crate::size_class::MAX_SMALL_SIZE;

/// Largest block size on pages of the medium kind: 72 KiB, one class above the largest
/// default-mode class there (64 KiB), so that strict mode's 64 KiB requests (which take the
/// class of `n + 1` for their canary) stay size-class blocks; a 512 KiB page holds 7 blocks of
/// 72 KiB. (As large blocks, a 64 KiB malloc/free loop cost two `mprotect`s per pair: 8x on
/// one thread and 30x on two on `benches/compare`'s `mixed`.)
pub const MEDIUM_KIND_MAX: usize = 72 * 1024;
use crate::sync::SpinLock;
use crate::{emergency, os};

mod cache;
mod tail_guards;

pub use cache::*;

pub const SEGMENT_SHIFT: usize = 22;
pub const SEGMENT_SIZE: usize = 1 << SEGMENT_SHIFT;
pub const SEGMENT_MASK: usize = SEGMENT_SIZE - 1;
/// Pages of the small kind: 64 KiB, also the alignment of the first data byte.
const SLICE_SHIFT: usize = 16;
const SLICE_SIZE: usize = 1 << SLICE_SHIFT;
pub const MAX_PAGES: usize = SEGMENT_SIZE >> SLICE_SHIFT;
/// The longest accessible run inside a segment's data area (hardened builds): the last OS
/// page of every stride is a guard (see the module doc).
pub const GUARD_STRIDE: usize = 1 << 19;
/// Guards inside the data area (the strides' last OS pages but the segment's last, which is
/// its end guard).
pub const INTERIOR_GUARDS: usize = SEGMENT_SIZE / GUARD_STRIDE - 1;
/// Interior guards all segments may have made with `mprotect` (no guard markers), each of
/// which splits a mapping in three (two more entries against `vm.max_map_count`, 65530 by
/// default): 8192 guards are 16384 mappings, a quarter of the default, for 4.5 GiB of
/// segments. Tail guards have a budget of their own (`tail_guards::TAIL_GUARD_BUDGET`).
/// Guard markers split nothing and are not counted.
pub const INTERIOR_GUARD_BUDGET: usize = 8192;
/// Bytes of address space covered by one bit of the live-block bitmap.
const GRANULE_SHIFT: usize = 4;
const BITMAP_WORDS: usize = SEGMENT_SIZE >> GRANULE_SHIFT >> 6;
/// Highest user-space address the segment map covers (x86_64 and arm64 with 4-level tables;
/// Linux never hands out addresses above 2^47 unless a mapping hint asks for them).
const ADDRESS_BITS: usize = 48;
const SEGMAP_WORDS: usize = 1 << (ADDRESS_BITS - SEGMENT_SHIFT - 6);

/// The heap that owns a segment and its pages, as this layer sees it: an address that it
/// stores and other layers compare, never dereferenced here (it is the `heap` layer's `Heap`;
/// the segment layer knows nothing of it).
pub enum Owner {}

/// Page kinds; the discriminant indexes per-kind arrays.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Kind {
    Small = 0,
    Medium = 1,
    Big = 2,
}

pub const NUM_KINDS: usize = 3;

impl Kind {
    pub const fn of_block_size(bs: usize) -> Kind {
        if bs <= MAX_SMALL_SIZE {
            Kind::Small
        } else if bs <= MEDIUM_KIND_MAX {
            Kind::Medium
        } else {
            Kind::Big
        }
    }

    const fn page_shift(self) -> usize {
        match self {
            Kind::Small => SLICE_SHIFT,
            Kind::Medium => 19,
            Kind::Big => SEGMENT_SHIFT,
        }
    }

    /// Whether segments of this kind are laid out. Not the big kind in hardened builds: its
    /// one page would span the interior guards, so [`alloc`] maps no segment for it and its
    /// blocks become large blocks of their own (`heap::large_fallback`), each between guards.
    pub const fn has_segments(self) -> bool {
        !(os::HARDENED && matches!(self, Kind::Big))
    }
}

// Pages of the small and medium kinds end on every stride's end, so a stride's last OS page
// is always the end of a page.
const _: () = assert!(GUARD_STRIDE % (1 << Kind::Small.page_shift()) == 0);
const _: () = assert!(GUARD_STRIDE == 1 << Kind::Medium.page_shift());
const _: () = assert!(SEGMENT_SIZE % GUARD_STRIDE == 0);

/// A page descriptor: the metadata of one page (a run of memory holding blocks of one class).
/// Fields without atomics are touched only by the owning thread.
///
/// The fields sit on three cache lines by who writes them, so that a remote free does not
/// take the owner's line away from it (measured on `benches/compare`'s larson with two
/// threads: with one line, the remote freer's CAS on `thread_free` spent most of its time
/// fetching the line the owner had just written `free` and `used` on):
/// 1. set when the page is handed out, then read by every thread (`heap`, `block_size`, ...);
/// 2. written by the owner on every allocation and free (`free`, `used`, the queue links);
/// 3. written by the other threads' frees (`thread_free`, `full_state`, `notify_next`).
#[repr(C, align(64))]
pub struct Page {
    // Line 1: read by every thread.
    /// Owning heap.
    pub heap: AtomicPtr<Owner>,
    /// Address of the first block.
    pub start: *mut u8,
    /// Blocks the page can hold.
    pub capacity: u32,
    pub block_size: u32,
    pub class: u8,
    pub in_use: bool,
    /// Sampled blocks of the heap profile on this page (see `prof`; saturates, any thread).
    pub prof_samples: core::sync::atomic::AtomicU16,
    _line1: [u8; 36],
    // Line 2: the owner's.
    /// Local free list (owner only).
    pub free: *mut Block,
    /// Blocks handed out and not yet returned to `free` (remote frees still count until the
    /// owner collects them).
    pub used: u32,
    /// Blocks carved so far (the rest of the page has never been touched).
    pub built: u32,
    /// The page's memory may be resident: it was used since the segment was mapped or since
    /// it was last purged (owner only).
    pub dirty: bool,
    /// On the heap's full list rather than its class queue (owner only).
    pub in_full: bool,
    /// Links in the heap's class queue or full list, or the segment's free-page stack.
    pub next: *mut Page,
    pub prev: *mut Page,
    /// When the page was last returned to its segment (`os::now_ms`; owner only).
    pub freed_at: u64,
    /// Strict mode's free list (links encoded, see `strict`); `free` stays null then.
    pub strict_free: *mut Block,
    _line2: [u8; 8],
    // Line 3: written by the other threads.
    /// Blocks freed by other threads, collected by the owner.
    pub thread_free: SyncPtr<Block>,
    /// Link in the owner's notify stack.
    pub notify_next: SyncPtr<Page>,
    /// See `remote`: NOT_FULL, FULL or NOTIFIED.
    pub full_state: SyncU8,
}

#[cfg(not(loom))]
const _: () = assert!(core::mem::offset_of!(Page, free) == 64);
#[cfg(not(loom))]
const _: () = assert!(core::mem::offset_of!(Page, strict_free) < 128);
#[cfg(not(loom))]
const _: () = assert!(core::mem::offset_of!(Page, thread_free) == 128);
#[cfg(not(loom))]
const _: () = assert!(core::mem::size_of::<Page>() == 192);

/// The segment header, at the base of every segment.
#[repr(C)]
pub struct Segment {
    pub kind: Kind,
    page_shift: u8,
    /// Pages handed to the heap.
    pub used_pages: u32,
    first_page: u32,
    num_pages: u32,
    /// Offset of the first data byte and of the end guard.
    data_start: u32,
    data_end: u32,
    pub heap: *mut Owner,
    /// Stack of unused pages (linked through `Page::next`).
    free_pages: *mut Page,
    /// Links in the heap's list of segments with unused pages.
    pub next: *mut Segment,
    pub prev: *mut Segment,
    pub in_heap_list: bool,
    /// Bytes of this segment that may be resident: the metadata plus every dirty page.
    dirty_bytes: usize,
    /// Strict mode's guards (see `strict`): bytes at the end of every page that are a guard
    /// (0 or the OS page size), the kind they were laid out for (kind + 1, 0: none), and
    /// their count.
    pub page_tail: u32,
    pub guard_kind: u8,
    pub guards: u32,
    /// The interior guards (see the module doc): `INTERIOR_NONE`, `INTERIOR_MARKERS` or
    /// `INTERIOR_COUNTED` (made with `mprotect`, counted in [`INTERIOR_GUARD_BUDGET`]). Set
    /// once, when the fresh segment is carved; kept through reuse.
    interior: u8,
    pub pages: [Page; MAX_PAGES],
}

/// [`Segment::interior`]: not installed (budget spent, or the `unhardened` build).
const INTERIOR_NONE: u8 = 0;
/// Installed as guard markers: they cost no mapping.
const INTERIOR_MARKERS: u8 = 1;
/// Installed with `mprotect`: counted in `INTERIOR_USED` until the segment is unmapped.
const INTERIOR_COUNTED: u8 = 2;

const BITMAP_OFFSET: usize = (core::mem::size_of::<Segment>() + 63) & !63;
const META_SIZE: usize = BITMAP_OFFSET + BITMAP_WORDS * 8;
const _: () = assert!(META_SIZE < SEGMENT_SIZE / 8);

// ---------------------------------------------------------------------------------------------
// The segment map

/// One bit per 4 MiB of the 48-bit address space: 8 MiB of zero-initialised memory of which
/// only the few pages covering the addresses in use are ever touched.
static SEGMAP: [AtomicU64; SEGMAP_WORDS] = [const { AtomicU64::new(0) }; SEGMAP_WORDS];

#[inline(always)]
fn segmap_index(base: usize) -> (usize, u64) {
    let idx = base >> SEGMENT_SHIFT;
    (idx >> 6, 1u64 << (idx & 63))
}

/// The segment containing `p`, if `p` lies in a segment of ours.
#[inline(always)]
pub fn segment_of(p: usize) -> Option<*mut Segment> {
    if p >> ADDRESS_BITS != 0 {
        return None;
    }
    let base = p & !SEGMENT_MASK;
    let (w, bit) = segmap_index(base);
    if SEGMAP[w].load(Ordering::Acquire) & bit != 0 {
        Some(base as *mut Segment)
    } else {
        None
    }
}

fn segmap_set(base: usize, on: bool) {
    let (w, bit) = segmap_index(base);
    // Our mappings lie below 2^48 (see ADDRESS_BITS); the mask only spares a bounds check.
    let w = w & (SEGMAP_WORDS - 1);
    if on {
        SEGMAP[w].fetch_or(bit, Ordering::Release);
    } else {
        SEGMAP[w].fetch_and(!bit, Ordering::Release);
    }
}

// ---------------------------------------------------------------------------------------------
// Segment lifecycle

fn layout() -> (usize, usize) {
    let ps = os::page_size();
    let meta_end = (META_SIZE + ps - 1) & !(ps - 1);
    let data_start = (meta_end + ps + SLICE_SIZE - 1) & !(SLICE_SIZE - 1);
    (meta_end, data_start)
}

/// Bytes reserved at the end of every stride but the last for its interior guard: one OS
/// page in hardened builds, none in the `unhardened` build.
#[inline]
fn interior_slot() -> usize {
    os::guard_size()
}

/// Offsets of the interior guards of a segment, lowest first.
fn interior_offsets() -> impl Iterator<Item = usize> {
    let slot = interior_slot();
    (1..=INTERIOR_GUARDS).map(move |k| k * GUARD_STRIDE - slot)
}

/// Bytes of a segment's data area that blocks may use (every kind): the pages without the
/// interior guards' slots.
fn data_bytes() -> usize {
    let (_, data_start) = layout();
    SEGMENT_SIZE - os::page_size() - data_start - INTERIOR_GUARDS * interior_slot()
}

/// Map a fresh segment (or take a cached one) for `heap`, set up for pages of `kind`, with a
/// guard at the end of every page when `tail_guards` (strict mode's policy; see
/// `tail_guards.rs`). Null when out of memory.
pub fn alloc(heap: *mut Owner, kind: Kind, tail_guards: bool) -> *mut Segment {
    if !kind.has_segments() {
        return ptr::null_mut();
    }
    let (cached, (base, interior)) = {
        let mut c = SEG_CACHE.lock();
        let cached = c.pop();
        // Mapping a new arena under the lock: once per `ARENA_SEGMENTS` segments, and a
        // thread that waits for it would have mapped one itself.
        // A page of the big kind takes a whole segment for one size class: under an
        // address-space limit that is 4 MiB of the budget for a few blocks, so no segment is
        // mapped for it and its blocks become large blocks of their own (see
        // `heap::large_fallback`), which cost their size and two guard pages.
        let frugal = kind == Kind::Big && c.arena_next == c.arena_end;
        let fresh = if cached.is_null() && !(frugal && os::address_space_limited()) {
            c.carve()
        } else {
            (ptr::null_mut(), INTERIOR_NONE)
        };
        (cached, fresh)
    };
    let seg = if cached.is_null() && base.is_null() {
        if kind == Kind::Big && os::address_space_limited() {
            return ptr::null_mut();
        }
        emergency_segment()
    } else if cached.is_null() {
        let (meta_end, _) = layout();
        segmap_set(base as usize, true);
        MAPPED.fetch_add(1, Ordering::Relaxed);
        COMMITTED.fetch_add(meta_end, Ordering::Relaxed);
        let seg = base;
        // SAFETY: fresh zeroed metadata of our own segment.
        unsafe {
            (*seg).dirty_bytes = meta_end;
            (*seg).interior = interior;
        }
        seg
    } else {
        CACHED.fetch_sub(1, Ordering::Relaxed);
        cached
    };
    if seg.is_null() {
        return seg;
    }
    // SAFETY: `seg` is a segment of ours that no heap uses: its header is ours to (re)write.
    unsafe { init(seg, heap, kind) };
    if tail_guards {
        // SAFETY: as for `init`: no page of the segment is in use.
        unsafe { tail_guards::lay(seg) };
    }
    seg
}

/// The emergency segment (see `emergency`), when no segment can be mapped; null while another
/// heap has it. The first time, its guards are installed and it is entered in the segment
/// map, for good: it is never unmapped, so it never leaves the map.
#[cold]
fn emergency_segment() -> *mut Segment {
    let Some(fresh) = emergency::claim() else {
        return ptr::null_mut();
    };
    let base = emergency::frame();
    if fresh {
        // `.bss` takes guard markers as anonymous memory does, or `mprotect` where it has
        // none; the interior guards within their budget, as for an arena.
        let Some(interior) = guard_fresh(base, 1) else {
            emergency::give_back_unused();
            return ptr::null_mut();
        };
        let (meta_end, _) = layout();
        segmap_set(base, true);
        MAPPED.fetch_add(1, Ordering::Relaxed);
        COMMITTED.fetch_add(meta_end, Ordering::Relaxed);
        // SAFETY: the emergency frame is ours alone now; fresh zeroed metadata.
        unsafe {
            (*(base as *mut Segment)).dirty_bytes = meta_end;
            (*(base as *mut Segment)).interior = interior;
        }
    }
    base as *mut Segment
}

/// Set up the header of an unused segment for `kind`.
///
/// # Safety
/// `seg` is a mapped segment with no live blocks and no other user.
unsafe fn init(seg: *mut Segment, heap: *mut Owner, kind: Kind) {
    debug_assert!(kind.has_segments());
    let (_, data_start) = layout();
    let data_end = SEGMENT_SIZE - os::page_size();
    let shift = kind.page_shift();
    let num_pages = SEGMENT_SIZE >> shift;
    let first_page = data_start >> shift;
    // SAFETY: the caller owns the whole segment; the header lies in its metadata area.
    let s = unsafe { &mut *seg };
    s.kind = kind;
    s.page_shift = shift as u8;
    s.used_pages = 0;
    s.first_page = first_page as u32;
    s.num_pages = num_pages as u32;
    s.data_start = data_start as u32;
    s.data_end = data_end as u32;
    s.heap = heap;
    s.next = ptr::null_mut();
    s.prev = ptr::null_mut();
    s.in_heap_list = false;
    s.free_pages = ptr::null_mut();
    // A reused segment may change kind, and with it the page geometry: if any data may be
    // resident, count every page as dirty (the purge sorts it out page by page).
    let meta_end = layout().0;
    let dirty = s.dirty_bytes > meta_end;
    if dirty {
        let full = meta_end + data_bytes();
        COMMITTED.fetch_add(full - s.dirty_bytes, Ordering::Relaxed);
        s.dirty_bytes = full;
    }
    // Push pages in reverse so that the lowest address is handed out first.
    for i in (first_page..num_pages).rev() {
        let (lo, hi) = s.page_bounds(i);
        let page = &mut s.pages[i];
        if hi == lo {
            // All of it is the slot of an interior guard (OS pages of 64 KiB): never used.
            page.in_use = false;
            page.start = ptr::null_mut();
            page.built = 0;
            page.dirty = false;
            continue;
        }
        page.in_use = false;
        // No block of the segment's previous life counts as carved (see `held_block`).
        page.start = ptr::null_mut();
        page.built = 0;
        page.dirty = dirty;
        page.freed_at = 0;
        page.heap.store(heap, Ordering::Relaxed);
        page.thread_free.store(ptr::null_mut(), Ordering::Relaxed);
        page.full_state.store(NOT_FULL, Ordering::Relaxed);
        page.notify_next.store(ptr::null_mut(), Ordering::Relaxed);
        page.next = s.free_pages;
        s.free_pages = page;
    }
}

/// Return a segment with no pages in use to the cache, or to the OS when the cache is full.
///
/// # Safety
/// `seg` belongs to the calling heap, has `used_pages == 0`, and is on no heap list.
pub unsafe fn free(seg: *mut Segment, now: u64) {
    if emergency::is(seg as usize) {
        // Never cached nor unmapped: it waits for the next emergency.
        emergency::give_back();
        return;
    }
    let budget = crate::config::retain_bytes() / SEGMENT_SIZE;
    {
        let mut c = SEG_CACHE.lock();
        if c.len < budget && c.push(seg, now) {
            CACHED.fetch_add(1, Ordering::Relaxed);
            return;
        }
    }
    release(seg);
}

impl Segment {
    /// Take an unused page, or null when none is left.
    pub fn take_page(&mut self) -> *mut Page {
        let p = self.free_pages;
        if !p.is_null() {
            // SAFETY: pages on the free stack are descriptors inside this header.
            self.free_pages = unsafe { (*p).next };
            self.used_pages += 1;
        }
        p
    }

    /// Put an unused page back.
    ///
    /// # Safety
    /// `page` is a descriptor of this segment with no live blocks.
    pub unsafe fn return_page(&mut self, page: *mut Page) {
        // SAFETY: per the contract, `page` is ours and unused.
        unsafe {
            self.clear_live_bits(&*page);
            (*page).in_use = false;
            (*page).next = self.free_pages;
        }
        self.free_pages = page;
        self.used_pages -= 1;
    }

    /// Purge the unused dirty pages freed at or before `cutoff`: adjacent ones form one range
    /// of `batch`, which the caller flushes before any of them may be used again (before it
    /// lets go of the segment, or takes one of its pages).
    /// Returns (when the oldest unused dirty page left was freed, or `u64::MAX`; bytes
    /// purged).
    ///
    /// Only the owner of the segment (or the holder of the cache lock, for a cached one) may
    /// call this.
    pub fn purge_pages(&mut self, cutoff: u64, batch: &mut os::PurgeBatch) -> (u64, usize) {
        let mut next = u64::MAX;
        let mut total = 0;
        let mut run: Option<(usize, usize)> = None;
        for i in self.first_page as usize..self.num_pages as usize {
            let (lo, hi) = self.page_bounds(i);
            let Some(page) = self.pages.get_mut(i) else {
                break;
            };
            let purge_it = !page.in_use && page.dirty && page.freed_at <= cutoff;
            if !page.in_use && page.dirty && !purge_it {
                next = next.min(page.freed_at);
            }
            if purge_it {
                page.dirty = false;
            }
            run = match (run, purge_it) {
                (Some((a, b)), true) if b == lo => Some((a, hi)),
                (r, true) => {
                    total += purge_range(r, batch);
                    Some((lo, hi))
                }
                (r, false) => {
                    total += purge_range(r, batch);
                    None
                }
            };
        }
        total += purge_range(run, batch);
        self.dirty_bytes -= total;
        COMMITTED.fetch_sub(total, Ordering::Relaxed);
        (next, total)
    }

    pub fn has_free_pages(&self) -> bool {
        !self.free_pages.is_null()
    }

    /// Indices of the first page and one past the last.
    pub fn page_range(&self) -> (usize, usize) {
        (self.first_page as usize, self.num_pages as usize)
    }

    /// Memory bounds (absolute addresses) of page `i`'s block area: the page without the
    /// metadata before the first data byte, and without the guard slot it ends in when it
    /// ends a stride (see the module doc). Empty (`lo == hi`) for a page that is all slot.
    pub fn page_bounds(&self, i: usize) -> (usize, usize) {
        let base = self as *const Segment as usize;
        let shift = self.page_shift as usize;
        let lo = (i << shift).max(self.data_start as usize);
        let end = (i + 1) << shift;
        let hi = if end >= SEGMENT_SIZE {
            self.data_end as usize
        } else if end % GUARD_STRIDE == 0 {
            end - interior_slot()
        } else {
            end
        };
        (base + lo, base + hi.max(lo))
    }

    /// Where strict mode's tail guard of page `i` goes (one OS page): `None` when a guard
    /// follows the page's block area already (the end guard, or an interior guard this
    /// segment has); `Some((addr, true))` for the last OS page of the block area, which the
    /// blocks then leave alone (`page_tail`); `Some((addr, false))` for the unused slot after
    /// a page whose blocks end at a stride's guard slot in a segment without interior guards
    /// (the budget was spent), which costs the page nothing. The blocks end at the slot for
    /// the page that ends a stride, and also, with OS pages as large as a page of this kind
    /// (64 KiB), for the page before it: the slot then took that last page whole.
    pub fn tail_guard(&self, i: usize) -> Option<(usize, bool)> {
        let (lo, hi) = self.page_bounds(i);
        let to_slot = hi - (self as *const Segment as usize) + interior_slot();
        let at_slot = os::HARDENED && to_slot % GUARD_STRIDE == 0;
        if hi == lo || (at_slot && (to_slot >= SEGMENT_SIZE || self.interior != INTERIOR_NONE)) {
            None
        } else if at_slot {
            Some((hi, false))
        } else {
            Some((hi - os::page_size(), true))
        }
    }

    /// Make `[lo, hi)`, a range of this segment's data area, readable and writable again but
    /// for the guard slots it crosses, which stay as they are: strict mode opens its tail
    /// guards this way, and an interior guard made with `mprotect` is never opened by
    /// accident. One `mprotect` per stride touched; false when the kernel refused one.
    ///
    /// # Safety
    /// The range lies in this segment's data area and holds no live block.
    pub unsafe fn reopen(&self, lo: usize, hi: usize) -> bool {
        let base = self as *const Segment as usize;
        let slot = interior_slot();
        let mut a = lo;
        while a < hi {
            let next = base + ((a - base) / GUARD_STRIDE + 1) * GUARD_STRIDE;
            let b = hi.min(next - slot);
            // SAFETY: per the contract; `[a, b)` stops short of the stride's guard slot.
            if b > a && !unsafe { os::protect_rw(a as *mut u8, b - a) } {
                return false;
            }
            a = next;
        }
        true
    }

    /// Index of the page containing the address `p` of this segment.
    #[inline(always)]
    pub fn page_index(&self, p: usize) -> usize {
        // The mask is a no-op for every page shift (>= 16) and lets the compiler drop the
        // bounds check of `pages[...]` on the free path.
        ((p & SEGMENT_MASK) >> self.page_shift) & (MAX_PAGES - 1)
    }

    /// The live-block bitmap word and bit for address `p` of this segment.
    #[inline(always)]
    /// Clear the live bits of the blocks `page` has built. They are all clear already when
    /// every block was freed, but for a remote free's clear that raced with the owner's plain
    /// store to the same word and was undone (see `heap::free::free_remote`): the page's next
    /// use, perhaps for another class, must not find a block start marked live.
    fn clear_live_bits(&self, page: &Page) {
        if !os::HARDENED || page.built == 0 {
            return;
        }
        let start = page.start as usize;
        let end = start + page.built as usize * page.block_size as usize;
        let (first, _) = bitmap_pos(start);
        let (last, _) = bitmap_pos(end - 1);
        for i in first..=last {
            let (w, _) = self.bit(i << (GRANULE_SHIFT + 6));
            // A page's blocks start at a multiple of 16 bytes and pages are 1 KiB-aligned: the
            // words of these granules hold only this page's bits.
            w.store(0, Ordering::Relaxed);
        }
    }

    pub fn bit(&self, p: usize) -> (&AtomicU64, u64) {
        let (w, bit) = bitmap_pos(p);
        let base = self as *const Segment as usize;
        // SAFETY: the bitmap lies inside the metadata area of every segment, after the header,
        // and is only accessed through atomics.
        let words = unsafe { &*((base + BITMAP_OFFSET) as *const [AtomicU64; BITMAP_WORDS]) };
        (&words[w], bit)
    }
}

/// Word index and bit mask, in a segment's live-block bitmap, of the granule holding `p`.
#[inline(always)]
pub const fn bitmap_pos(p: usize) -> (usize, u64) {
    let g = (p & SEGMENT_MASK) >> GRANULE_SHIFT;
    (g >> 6, 1u64 << (g & 63))
}

/// Account for a page whose memory is about to be touched again: it may be resident from now
/// on.
///
/// # Safety
/// `page` is a descriptor of `seg`, and the caller owns both.
pub unsafe fn mark_dirty(seg: *mut Segment, page: *mut Page) {
    // SAFETY: per the contract.
    unsafe {
        if !(*page).dirty {
            let idx =
                (page as usize - (*seg).pages.as_ptr() as usize) / core::mem::size_of::<Page>();
            let (lo, hi) = (*seg).page_bounds(idx);
            (*page).dirty = true;
            (*seg).dirty_bytes += hi - lo;
            COMMITTED.fetch_add(hi - lo, Ordering::Relaxed);
        }
    }
}

/// Give the memory of an empty page that stays in its class queue back to the kernel, and
/// reset its free list (the links lived in that memory): its blocks are rebuilt from scratch
/// when it is used again. The memory goes into `batch`. Returns the bytes purged.
///
/// # Safety
/// The caller owns `seg` and `page`, which is in use, has no block out (`used == 0`) and no
/// remote free pending; it flushes `batch` before the page is used again.
pub unsafe fn purge_empty_page(
    seg: *mut Segment,
    page: *mut Page,
    batch: &mut os::PurgeBatch,
) -> usize {
    // SAFETY: per the contract; the page holds nothing live.
    unsafe {
        let p = &mut *page;
        if !p.dirty || p.built == 0 {
            return 0;
        }
        let idx = (page as usize - (*seg).pages.as_ptr() as usize) / core::mem::size_of::<Page>();
        let (lo, hi) = (*seg).page_bounds(idx);
        (*seg).clear_live_bits(p);
        p.free = ptr::null_mut();
        p.strict_free = ptr::null_mut();
        p.built = 0;
        p.dirty = false;
        let n = purge_range(Some((lo, hi)), batch);
        (*seg).dirty_bytes -= n;
        COMMITTED.fetch_sub(n, Ordering::Relaxed);
        n
    }
}

/// Add one run of unused pages to `batch`; returns its length.
fn purge_range(r: Option<(usize, usize)>, batch: &mut os::PurgeBatch) -> usize {
    match r {
        Some((lo, hi)) if hi > lo => {
            // SAFETY: the run covers unused pages of a segment of ours, holding nothing live;
            // its owner flushes the batch before the pages can be used again.
            unsafe { batch.add(lo as *mut u8, hi - lo) };
            hi - lo
        }
        _ => 0,
    }
}

/// Set up an unused page of `seg` for blocks of `block_size` bytes of class `class`.
///
/// # Safety
/// `page` was just taken from `seg` by its owner.
pub unsafe fn init_page(seg: *mut Segment, page: *mut Page, class: usize, block_size: usize) {
    // SAFETY: the caller owns the segment and the unused page; the shared borrows below end
    // before the page is borrowed mutably.
    let (lo, hi, tail, heap) = unsafe {
        let idx = (page as usize - (*seg).pages.as_ptr() as usize) / core::mem::size_of::<Page>();
        let (lo, hi) = (*seg).page_bounds(idx);
        mark_dirty(seg, page);
        // Strict mode's tail guard, where it takes the end of the block area.
        let tail = match (*seg).tail_guard(idx) {
            Some((_, true)) => (*seg).page_tail as usize,
            _ => 0,
        };
        (lo, hi, tail, (*seg).heap)
    };
    // SAFETY: the caller owns the unused page.
    let p = unsafe { &mut *page };
    p.free = ptr::null_mut();
    p.used = 0;
    p.capacity = ((hi - lo).saturating_sub(tail) / block_size) as u32;
    p.strict_free = ptr::null_mut();
    p.built = 0;
    p.freed_at = 0;
    p.block_size = block_size as u32;
    p.class = class as u8;
    p.in_use = true;
    p.in_full = false;
    p.start = lo as *mut u8;
    p.next = ptr::null_mut();
    p.prev = ptr::null_mut();
    p.heap.store(heap, Ordering::Relaxed);
    p.thread_free.store(ptr::null_mut(), Ordering::Relaxed);
    p.full_state.store(NOT_FULL, Ordering::Relaxed);
    debug_assert!(p.capacity > 0);
}

/// The segment a page descriptor lives in.
#[inline(always)]
pub fn segment_of_page(page: *const Page) -> *mut Segment {
    (page as usize & !SEGMENT_MASK) as *mut Segment
}

impl Segment {
    /// Whether `p`, an address of this segment that is not a live block, is the start of a
    /// block this page has carved (handed out, or built into its free list ahead of use),
    /// in its current class or, for a page given back to the segment, in the class it last
    /// held: so freeing it is a *double* free rather than an *invalid* one. Decided from the
    /// page descriptor alone; false for metadata, guards, interior pointers and memory no
    /// block was ever carved from.
    pub fn held_block(&self, p: usize) -> bool {
        let off = p & SEGMENT_MASK;
        if off < self.data_start as usize || off >= self.data_end as usize || p & 15 != 0 {
            return false;
        }
        let Some(page) = self.pages.get(self.page_index(p)) else {
            return false;
        };
        let (start, bs) = (page.start as usize, page.block_size as usize);
        if start == 0 || bs == 0 || p < start {
            return false;
        }
        (p - start) % bs == 0 && (p - start) / bs < page.built as usize
    }
}

#[cfg(test)]
mod tests;
