//! Large blocks: requests of [`LARGE_FROM`](crate::size_class::LARGE_FROM) bytes or more (above 64
//! KiB in hardened builds), or with an alignment above 64 KiB.
//!
//! **Layout.** Each large block has pages of its own, mapped by [`os::map_guarded`] with a
//! guard page directly before and after them, and the block is the *end* of its pages: its
//! usable size is the request rounded up to 16 bytes (or to the requested alignment), and its
//! last byte touches the trailing guard, so that a write one byte past
//! `malloc_usable_size(p)` faults, as does an underflow past the front of its pages. With
//! guard markers (Linux 6.13+) the guards split no mapping, so blocks mapped next to each other
//! share one entry of `/proc/self/maps` and thousands of live blocks stay far below
//! `vm.max_map_count`. Pages in front of the block that it does not reach (after a shrink, or a
//! reuse of a bigger cached block) are `PROT_NONE`.
//!
//! Large blocks are found from their address in a hash table (`table.rs`). A pointer that is in
//! neither a segment nor this table is not ours: freeing it aborts as an invalid free, and
//! nothing is ever read in front of it.
//!
//! **Cache.** A freed block stays mapped, but `PROT_NONE` (a use after free faults), in a
//! small FIFO, so that a loop of large `malloc`/`free` costs two `mprotect`s instead of a
//! fault per page; a later request reuses a cached block when it fits in its pages with at
//! most 50% slack and the alignment holds. Freeing a cached block again is reported as a
//! double free. The cache is bounded by count and bytes (`MAPALLOC_LARGE_CACHE_MB`); the
//! oldest entry is unmapped first, and an entry cached for longer than the purge delay
//! (`MAPALLOC_PURGE_DELAY_MS`) is unmapped by [`decay`], which the freeing thread's heap runs
//! on its purge schedule ([`free`] says when a block was cached); every large `free` also
//! evicts what is past the delay. Where the pages cannot be closed (no mapping left to split),
//! the block is unmapped instead of cached.
//!
//! **Growth.** `realloc` moves the block within its pages when they have room in front, and
//! otherwise reserves a new guarded range and moves the pages there with `mremap`; the data
//! then moves by less than a page inside them only when the new size's offset in its page
//! differs (never for sizes that are multiples of the page size). A shrink moves the data to
//! the end and closes the pages left in front.

use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use crate::os;

mod table;

use table::{CACHE_MAX, Entry, LARGE, State, internal};

/// Blocks freed last that a request may not take from the cache (0: any; strict mode sets
/// [`STRICT_REUSE_DELAY`] through [`delay_reuse`]).
static REUSE_DELAY: AtomicUsize = AtomicUsize::new(0);

/// The reuse delay strict mode asks for: the address just freed does not come back for the
/// next requests of its size, as small blocks wait in the quarantine.
pub const STRICT_REUSE_DELAY: usize = 4;

/// Keep the `n` blocks freed last out of reach of new requests (the policy of the layer
/// above: strict mode's delayed reuse). Blocks past the cache's bounds are unmapped as before.
pub fn delay_reuse(n: usize) {
    REUSE_DELAY.store(n.min(CACHE_MAX), Relaxed);
}

/// The guard size: one OS page (none in the `unhardened` measurement build).
#[inline]
fn guard() -> usize {
    os::guard_size()
}

/// Round `n` up to a multiple of `to` (a power of two); `None` on overflow.
fn round_up(n: usize, to: usize) -> Option<usize> {
    Some(n.checked_add(to - 1)? & !(to - 1))
}

/// The usable size of a large block for a request of `size` bytes aligned to `align`: the
/// request rounded up to 16 or to the alignment. `None` when it cannot be represented.
pub fn usable_for(size: usize, align: usize) -> Option<usize> {
    let u = round_up(size.max(1), align.max(16))?;
    (u <= isize::MAX as usize / 2).then_some(u)
}

/// The usable size and the bytes of pages of a block for `size` bytes aligned to `align`.
fn block_for(size: usize, align: usize) -> Option<(usize, usize)> {
    let usable = usable_for(size, align)?;
    Some((usable, os::page_round_up(usable)?))
}

/// The page holding the first byte of `addr`.
#[inline]
fn page_floor(addr: usize) -> usize {
    addr & !(os::page_size() - 1)
}

/// Allocate a large block of `size` bytes aligned to `align` (a power of two). Null when out
/// of memory or when the size cannot be represented.
pub fn alloc(size: usize, align: usize) -> *mut u8 {
    alloc_impl(size, align, false)
}

/// As [`alloc`], with the first `size` bytes zeroed: fresh mappings are zero already, so only
/// a reused cached block is cleared.
pub fn alloc_zeroed(size: usize, align: usize) -> *mut u8 {
    alloc_impl(size, align, true)
}

fn alloc_impl(size: usize, align: usize, zero: bool) -> *mut u8 {
    crate::init::ensure();
    let ps = os::page_size();
    let align = align.max(16);
    let Some((usable, len)) = block_for(size, align) else {
        return ptr::null_mut();
    };
    if let Some(p) = reuse_cached(size, usable, len, align, zero) {
        return p;
    }
    if let Some(p) = grow_cached(size, usable, len, align, zero) {
        return p;
    }
    // A block of `usable < len` bytes ends at the end of its pages; it is `align`-aligned
    // because `len` and `usable` are multiples of it when `align > ps`, and the page is
    // aligned enough otherwise.
    let base = os::map_guarded(len, guard(), align.max(ps));
    if base.is_null() {
        return base;
    }
    let e = Entry {
        addr: base as usize + len - usable,
        base: base as usize,
        len,
        usable,
        req: size,
        state: State::Live,
    };
    let mut l = LARGE.lock();
    if !l.insert(e) {
        drop(l);
        // SAFETY: the mapping was just made and is unknown to anyone else.
        unsafe { unmap(&e) };
        return ptr::null_mut();
    }
    l.live_bytes += len;
    l.allocs += 1;
    e.addr as *mut u8
}

/// The best cached block for `usable` bytes (`len` bytes of pages) aligned to `align`:
/// its pages hold them with at most 50% slack (or, with `grow`, they are smaller, but at
/// least half), and the block's end minus `usable` is aligned; the blocks freed last are
/// skipped while a reuse delay is set ([`delay_reuse`]). Returns its index in the cache.
fn pick(l: &table::Large, usable: usize, len: usize, align: usize, grow: bool) -> Option<usize> {
    let mut best: Option<(usize, usize)> = None;
    let eligible = l.cache_len.saturating_sub(REUSE_DELAY.load(Relaxed));
    for k in 0..eligible {
        let e = l.get(l.find(l.cached(k)).unwrap_or_else(|| internal()));
        let fits = if grow {
            e.len < len && e.len >= len / 2
        } else {
            e.len >= len && e.len - len <= len / 2 && (e.end() - usable) % align == 0
        };
        // Reuse: the tightest fit; growth: the largest block.
        let better = match best {
            None => true,
            Some((_, b)) => (e.len < b) != grow,
        };
        if fits && better {
            best = Some((k, e.len));
        }
    }
    best.map(|(k, _)| k)
}

/// A cached block whose pages hold the request: taken, opened and (if `zero`) cleared.
fn reuse_cached(
    req: usize,
    usable: usize,
    len: usize,
    align: usize,
    zero: bool,
) -> Option<*mut u8> {
    let mut l = LARGE.lock();
    let k = pick(&l, usable, len, align, false)?;
    let e = l.take_cached(k, usable, req);
    drop(l);
    // SAFETY: the block was just taken from the cache; nobody else knows it.
    if !unsafe { open(&e) } {
        drop_taken(&e);
        return None;
    }
    if zero {
        // SAFETY: the block is live, ours, and `usable` bytes long.
        unsafe { ptr::write_bytes(e.addr as *mut u8, 0, usable) };
    }
    Some(e.addr as *mut u8)
}

/// No cached block holds the request: move the pages of the largest cached one that is
/// smaller (at least half the request) into a new guarded range with `mremap`, so that its
/// resident pages serve the new block instead of a fresh mapping being faulted in page by page
/// (a few system calls instead of a fault per page). `None` when there is no such block; the
/// caller then maps a fresh block.
fn grow_cached(req: usize, usable: usize, len: usize, align: usize, zero: bool) -> Option<*mut u8> {
    let mut l = LARGE.lock();
    let k = pick(&l, usable, len, align, true)?;
    let whole = l.get(l.find(l.cached(k)).unwrap_or_else(|| internal())).len;
    let old = l.take_cached(k, whole, whole);
    drop(l);
    // The old pages go to the end of the new ones; what they held does not matter.
    let new = Entry { usable, req, ..old };
    // SAFETY: the block was just taken from the cache; nobody else knows it.
    let e = unsafe { relocate(&old, old.base, len, len - old.len, &new, align, true) }?;
    if zero {
        // SAFETY: the block is live, ours, and `usable` bytes long.
        unsafe { ptr::write_bytes(e.addr as *mut u8, 0, usable) };
    }
    Some(e.addr as *mut u8)
}

/// Open the pages of a block taken from the cache, from the one holding its first byte to
/// its end (those in front stay closed). False when the kernel cannot (no mapping left).
///
/// # Safety
/// `e` is a block the caller has just taken from the cache.
unsafe fn open(e: &Entry) -> bool {
    let lo = page_floor(e.addr);
    // SAFETY: per the contract, the pages are ours and hold nothing live.
    !os::HARDENED || unsafe { os::protect_rw(lo as *mut u8, e.end() - lo) }
}

/// Give up a block just taken from the cache with `take_cached` that cannot be handed out
/// after all: out of the table, counted as never allocated, and unmapped.
fn drop_taken(e: &Entry) {
    forget(e);
    // SAFETY: out of the table; the mapping is ours alone.
    unsafe { unmap(e) };
}

/// Take a block just taken from the cache out of the table, counted as never allocated.
fn forget(e: &Entry) {
    let mut l = LARGE.lock();
    let i = l.find(e.addr).unwrap_or_else(|| internal());
    l.remove_at(i);
    l.note_released(e.addr);
    l.live_bytes -= e.len;
    l.allocs -= 1;
}

/// Unmap a large block's pages with their guards.
///
/// # Safety
/// The block is ours, dead and out of the table.
unsafe fn unmap(e: &Entry) {
    let g = guard();
    // SAFETY: [base - g, end + g) is exactly the block's mapping.
    unsafe { os::release((e.base - g) as *mut u8, e.len + 2 * g) };
}

/// Move the pages `[from, old.end())` of the block `old` (live, or taken from the cache when
/// `cached`) into a new guarded range of `len` bytes of pages, at offset `at` in it, and make
/// it the block of `new.usable` bytes (`new.req` requested) at the end of the new pages (the
/// data is where the pages put it: the caller moves it, see [`resize`]). Returns the new entry, in the table. `None`
/// when the kernel cannot: a live block is then as it was, a cached one is dropped.
///
/// # Safety
/// `old` is a block of ours that only the caller uses; `[from, old.end())` are whole pages of
/// it, `at + (old.end() - from) <= len`, `new.usable <= len` and aligned as `align` says.
unsafe fn relocate(
    old: &Entry,
    from: usize,
    len: usize,
    at: usize,
    new: &Entry,
    align: usize,
    cached: bool,
) -> Option<Entry> {
    let usable = new.usable;
    let ps = os::page_size();
    let g = guard();
    let drop_old = || {
        if cached {
            drop_taken(old);
        }
        None
    };
    let target = os::reserve_guarded(len, g, align.max(ps));
    if target.is_null() {
        return drop_old();
    }
    let base = target as usize;
    let e = Entry {
        addr: base + len - usable,
        base,
        len,
        usable,
        req: new.req,
        state: State::Live,
    };
    let lo = page_floor(e.addr);
    // Without guard markers the reservation's middle is `PROT_NONE`: open the part in front of
    // the moved pages that the block covers.
    if os::HARDENED && !os::guard_markers() && lo < base + at {
        // SAFETY: pages of the reservation just made.
        if !unsafe { os::protect_rw(lo as *mut u8, base + at - lo) } {
            // SAFETY: our own unused reservation.
            unsafe { os::release(target.sub(g), len + 2 * g) };
            return drop_old();
        }
    }
    let moved = old.end() - from;
    // SAFETY: `[from, old.end())` holds only this block's pages (the caller's contract); the
    // target lies inside the reservation just made. The moved pages are grown by the kernel up
    // to the end of the new pages (fresh zero pages with the moved pages' protection).
    let ok = unsafe { os::remap_to(from as *mut u8, moved, len - at, target.add(at)) };
    if !ok {
        // SAFETY: our own unused reservation.
        unsafe { os::release(target.sub(g), len + 2 * g) };
        return drop_old();
    }
    // Cached pages are `PROT_NONE`: open what the block covers.
    // SAFETY: the new block's pages, ours alone.
    if os::HARDENED && cached && !unsafe { os::protect_rw(lo as *mut u8, e.end() - lo) } {
        // No mapping left: give the new range (with the old pages in it) up.
        // SAFETY: the new mapping is ours and holds nothing live.
        unsafe { os::release(target.sub(g), len + 2 * g) };
        forget(old);
        // SAFETY: what is left of the old mapping holds nothing.
        unsafe { release_remnants(old, from) };
        return None;
    }
    // Re-key the table before the old guards go: while they stand, nothing new can be mapped
    // at the old address itself, so the old entry cannot be confused with another block's.
    let mut l = LARGE.lock();
    let i = l.find(old.addr).unwrap_or_else(|| internal());
    l.rekey(i, e);
    l.live_bytes = l.live_bytes - old.len + len;
    drop(l);
    // SAFETY: what is left of the old mapping holds nothing.
    unsafe { release_remnants(old, from) };
    Some(e)
}

/// Unmap what is left of a block's mapping after its pages from `from` on moved away: the
/// front guard and the pages in front of `from`, and the trailing guard.
///
/// # Safety
/// Those parts are ours and hold nothing.
unsafe fn release_remnants(old: &Entry, from: usize) {
    let g = guard();
    // SAFETY: per the contract.
    unsafe {
        if from - old.base + g != 0 {
            os::release((old.base - g) as *mut u8, from - old.base + g);
        }
        if g != 0 {
            os::release(old.end() as *mut u8, g);
        }
    }
}

/// Free a large block. Aborts when `p` is not a live large block of ours, or when `size`
/// (the caller's claim of what it allocated; 0 for none) exceeds the block. Returns when the
/// block went into the cache (`os::now_ms`), so that the caller schedules its decay.
pub fn free(p: *mut u8, size: usize) -> Option<u64> {
    let addr = p as usize;
    let mut l = LARGE.lock();
    let Some(i) = l.find(addr).filter(|&i| l.get(i).state == State::Live) else {
        let freed = l.was_freed(addr);
        drop(l);
        os::fatal_ptr(
            if freed {
                "double free of"
            } else {
                "invalid free of"
            },
            addr,
        );
    };
    let e = l.get(i);
    if size > e.usable {
        drop(l);
        os::fatal_ptr("sized free with a size larger than the block at", addr);
    }
    l.live_bytes -= e.len;
    l.frees += 1;
    let max_bytes = crate::config::large_cache_bytes();
    if e.len > max_bytes / 4 {
        l.remove_at(i);
        l.note_released(addr);
        drop(l);
        // SAFETY: removed from the table; the caller's pointer was the last reference.
        unsafe { unmap(&e) };
        return None;
    }
    // Freed from now on (a second free is a double free), but not in the cache list yet, so
    // that nobody takes it while its pages are being closed.
    l.slot(i).state = State::Cached;
    drop(l);
    let lo = page_floor(addr);
    // SAFETY: the caller gives the block up; [lo, end) are its open pages.
    let closed = !os::HARDENED || unsafe { os::protect_none(lo as *mut u8, e.end() - lo) };
    let now = os::now_ms();
    let mut l = LARGE.lock();
    let i = l.find(addr).unwrap_or_else(|| internal());
    if !closed {
        // No mapping left to split: unmap instead of caching.
        l.remove_at(i);
        l.note_released(addr);
        drop(l);
        // SAFETY: removed from the table, dead.
        unsafe { unmap(&e) };
        return None;
    }
    // Make room: evict the oldest blocks until this one fits, and those past the delay.
    let cutoff = now.saturating_sub(crate::config::purge_delay_ms() as u64);
    let mut evicted = [table::EMPTY; CACHE_MAX];
    let mut n_ev = 0;
    while l.cache_len > 0
        && (l.cache_len == CACHE_MAX
            || l.cache_bytes + e.len > max_bytes
            || l.cache_time[0] <= cutoff)
    {
        *evicted.get_mut(n_ev).unwrap_or_else(|| internal()) = l.evict_oldest();
        n_ev += 1;
    }
    l.cache_push(addr, now);
    l.cache_bytes += e.len;
    drop(l);
    for ev in evicted.get(..n_ev).unwrap_or(&[]) {
        // SAFETY: evicted blocks are out of the table and dead.
        unsafe { unmap(ev) };
    }
    Some(now)
}

/// Unmap the cached blocks freed at or before `cutoff`; add their bytes to `*bytes`. Returns
/// when the oldest block left was freed (`u64::MAX` when the cache is empty).
pub fn decay(cutoff: u64, bytes: &mut usize) -> u64 {
    let mut evicted = [table::EMPTY; CACHE_MAX];
    let mut n_ev = 0;
    let next = {
        let mut l = LARGE.lock();
        while l.cache_len > 0 && l.cache_time[0] <= cutoff {
            *evicted.get_mut(n_ev).unwrap_or_else(|| internal()) = l.evict_oldest();
            n_ev += 1;
        }
        if l.cache_len > 0 {
            l.cache_time[0]
        } else {
            u64::MAX
        }
    };
    for ev in evicted.get(..n_ev).unwrap_or(&[]) {
        // SAFETY: evicted blocks are out of the table and dead.
        unsafe { unmap(ev) };
        *bytes += ev.len;
    }
    next
}

/// Whether `p`, which is not a live large block, was one that has been freed (it is cached,
/// or among the last blocks unmapped): the difference between a double and an invalid free.
pub fn was_freed(p: *const u8) -> bool {
    LARGE.lock().was_freed(p as usize)
}

/// Usable size and requested size of a live large block, or `None` if `p` is not one.
pub fn sizes(p: *const u8) -> Option<(usize, usize)> {
    let l = LARGE.lock();
    let i = l.find(p as usize)?;
    let e = l.get(i);
    (e.state == State::Live).then_some((e.usable, e.req))
}

/// Usable size of a live large block, or `None` if `p` is not one.
pub fn usable_size(p: *const u8) -> Option<usize> {
    let l = LARGE.lock();
    let i = l.find(p as usize)?;
    let e = l.get(i);
    (e.state == State::Live).then_some(e.usable)
}

/// Resize the live large block at `p` to `new_size` bytes, keeping it `align`-aligned and its
/// end against its trailing guard, without a new block when possible; the block's data (up to
/// the smaller size) moves with it.
/// Returns the block's (possibly new) address, or null when it could not be resized in place
/// or moved by the kernel (the block is then unchanged and the caller copies). Aborts when
/// `p` is not a live large block.
pub fn resize(p: *mut u8, new_size: usize, align: usize) -> *mut u8 {
    let addr = p as usize;
    let ps = os::page_size();
    let align = align.max(16);
    let Some((new_usable, new_len)) = block_for(new_size, align) else {
        return ptr::null_mut();
    };
    let l = LARGE.lock();
    let Some(i) = l.find(addr).filter(|&i| l.get(i).state == State::Live) else {
        let freed = l.was_freed(addr);
        drop(l);
        os::fatal_ptr(
            if freed {
                "realloc of freed pointer"
            } else {
                "realloc of invalid pointer"
            },
            addr,
        );
    };
    let e = l.get(i);
    drop(l);
    if new_usable == e.usable {
        set_block(&e, addr, new_usable, new_size);
        return p;
    }
    let new_addr = e.end().wrapping_sub(new_usable);
    if new_usable < e.usable {
        // Shrinking: keep the pages when the block stays at least half of them, move the data
        // to their end and close the pages it left; otherwise let the caller move it to a
        // smaller home.
        if new_len < e.len / 2 || new_addr % align != 0 {
            return ptr::null_mut();
        }
        // SAFETY: both ranges lie in the caller's block; `memmove` semantics.
        unsafe { ptr::copy(p, new_addr as *mut u8, new_usable) };
        let (lo, hi) = (page_floor(addr), page_floor(new_addr));
        if os::HARDENED && hi > lo {
            // SAFETY: pages of the block in front of its new start: nothing live.
            unsafe {
                // Where the mapping cannot be split they stay open (still between the guards).
                let _ = os::protect_none(lo as *mut u8, hi - lo);
                os::purge(lo as *mut u8, hi - lo);
            }
        }
        set_block(&e, new_addr, new_usable, new_size);
        return new_addr as *mut u8;
    }
    if new_usable <= e.len && new_addr % align == 0 {
        // Growing within its pages (they have room in front): open what it reaches, move the
        // data down.
        let (lo, hi) = (page_floor(new_addr), page_floor(addr));
        // SAFETY: pages of the block's own mapping in front of it.
        if os::HARDENED && hi > lo && !unsafe { os::protect_rw(lo as *mut u8, hi - lo) } {
            return ptr::null_mut();
        }
        // SAFETY: both ranges lie in the block's open pages; `memmove` semantics. What the
        // move leaves behind past the data is cleared: grown parts read zero.
        unsafe {
            ptr::copy(p, new_addr as *mut u8, e.usable);
            ptr::write_bytes((new_addr + e.usable) as *mut u8, 0, addr - new_addr);
        }
        set_block(&e, new_addr, new_usable, new_size);
        return new_addr as *mut u8;
    }
    // Growing beyond its pages: move the pages from the one holding the block's first byte
    // into a new range, at the offset (0 or one page) that puts the data just after the new
    // start, then move the data down by less than a page (nothing when both sizes have the
    // same offset in their page).
    let from = page_floor(addr);
    let off = addr - from;
    let new_off = new_len - new_usable;
    let at = if new_off <= off { 0 } else { ps };
    let new = Entry {
        usable: new_usable,
        req: new_size,
        ..e
    };
    // SAFETY: the caller's live block; `at + (e.end() - from) <= new_len` because the block
    // grows (with `at` one page only when the new start lies further into its page).
    let Some(n) = (unsafe { relocate(&e, from, new_len, at, &new, align, false) }) else {
        return ptr::null_mut();
    };
    let data = n.base + at + off;
    if data != n.addr {
        // SAFETY: both ranges lie in the new block's open pages; `memmove` semantics. What the
        // move leaves behind past the data is cleared: grown parts read zero.
        unsafe {
            ptr::copy(data as *const u8, n.addr as *mut u8, e.usable);
            ptr::write_bytes((n.addr + e.usable) as *mut u8, 0, data - n.addr);
        }
    }
    n.addr as *mut u8
}

/// The live block `e` is now `usable` bytes (`req` requested) at `addr`, in the same pages.
fn set_block(e: &Entry, addr: usize, usable: usize, req: usize) {
    let mut l = LARGE.lock();
    let i = l.find(e.addr).unwrap_or_else(|| internal());
    l.rekey(
        i,
        Entry {
            addr,
            usable,
            req,
            ..*e
        },
    );
}

/// Counters of the large-block layer.
pub struct Counters {
    /// Bytes of pages of the live blocks.
    pub live_bytes: usize,
    pub cached_bytes: usize,
    pub allocs: u64,
    pub frees: u64,
    /// Blocks mapped (live and cached), each with two guard pages.
    pub blocks: usize,
}

pub fn counters() -> Counters {
    let l = LARGE.lock();
    Counters {
        live_bytes: l.live_bytes,
        cached_bytes: l.cache_bytes,
        allocs: l.allocs,
        frees: l.frees,
        blocks: l.len,
    }
}

/// Unmap every cached block. Returns the bytes released.
pub fn trim() -> usize {
    let mut bytes = 0;
    decay(u64::MAX, &mut bytes);
    bytes
}

/// In the child of `fork` (see `init`): if a thread that did not follow into the child held
/// the large-block lock, it may have left the table, the cache list or the counters half
/// updated. Rebuild them from the table's entries (see `Large::rebuild`) and release the
/// lock, so that the child can free every large block it inherited.
///
/// # Safety
/// The calling thread is the only thread of the process.
pub unsafe fn after_fork_child() {
    // SAFETY: per the contract.
    if let Some(mut l) = unsafe { LARGE.take_orphan() } {
        l.rebuild();
    }
}
