//! Large blocks: requests above the largest size class (or with an alignment above 64 KiB).
//!
//! Each large block is mapped by [`os::map_guarded`] with a guard page directly before and
//! after it: an overflow or underflow off the block faults at once. With guard markers
//! (Linux 6.13+) the guards split no mapping, so blocks mapped next to each other share one
//! entry of `/proc/self/maps` and thousands of live blocks stay far below `vm.max_map_count`.
//!
//! Large blocks are found from their address in a hash table (open addressing, linear probing,
//! backward-shift deletion) held in mapped memory under one spin lock. A pointer that is in
//! neither a segment nor this table is not ours: freeing it aborts as an invalid free, and
//! nothing is ever read in front of it.
//!
//! **Cache.** A freed block stays mapped (its table entry says `Cached`) in a small FIFO so that
//! a loop of large `malloc`/`free` costs no syscall; a later request reuses a cached block
//! when it fits in it with at most 50% slack and the alignment holds. Freeing a cached block
//! again is reported as a double free. The cache is bounded by count and bytes
//! (`MAPALLOC_LARGE_CACHE_MB`); the oldest entry is unmapped first, and an entry cached for
//! longer than the purge delay (`MAPALLOC_PURGE_DELAY_MS`) is unmapped by [`decay`], which the
//! freeing thread's heap runs on its purge schedule; every large `free` also evicts what is past
//! the delay.
//!
//! **Growth.** `realloc` to a larger size first uses the slack of the block's pages; beyond
//! that it reserves a new guarded range and moves the pages there with `mremap`, so the data is
//! never copied.

use core::ptr;

use crate::os;
use crate::sync::SpinLock;

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Empty,
    Live,
    Cached,
}

#[derive(Clone, Copy)]
struct Entry {
    /// Start of the block (0 when empty).
    addr: usize,
    /// Usable bytes (a multiple of the page size); the guard follows.
    usable: usize,
    state: State,
}

const EMPTY: Entry = Entry {
    addr: 0,
    usable: 0,
    state: State::Empty,
};

const CACHE_MAX: usize = 32;
/// Addresses of the last blocks unmapped (see `Large::released`).
const RELEASED_MAX: usize = 64;

struct Large {
    table: *mut Entry,
    cap: usize,
    len: usize,
    /// Cached blocks (addresses), oldest first, and when each was freed (`os::now_ms`).
    cache: [usize; CACHE_MAX],
    cache_time: [u64; CACHE_MAX],
    cache_len: usize,
    cache_bytes: usize,
    /// Ring of the addresses of the last blocks unmapped (or moved away by `resize`): a free
    /// of one of them is reported as a double free, not as an invalid free, even after the
    /// block left the cache. An address mapped again is found in the table first.
    released: [usize; RELEASED_MAX],
    released_next: usize,
    live_bytes: usize,
    allocs: u64,
    frees: u64,
    /// The table being replaced while [`Large::grow`] copies it (null otherwise): a `fork`
    /// child that finds the copy half done rebuilds from both tables.
    growing: *mut Entry,
    growing_cap: usize,
}

// SAFETY: the table memory is owned by the structure and only touched under the lock.
unsafe impl Send for Large {}

static LARGE: SpinLock<Large> = SpinLock::new(Large {
    table: ptr::null_mut(),
    cap: 0,
    len: 0,
    cache: [0; CACHE_MAX],
    cache_time: [0; CACHE_MAX],
    cache_len: 0,
    cache_bytes: 0,
    released: [0; RELEASED_MAX],
    released_next: 0,
    live_bytes: 0,
    allocs: 0,
    frees: 0,
    growing: ptr::null_mut(),
    growing_cap: 0,
});

/// Entries of the first table, in static memory: a process with few large blocks maps no
/// table (one `mmap` less).
const FIRST_CAP: usize = 1024;

struct FirstTable(core::cell::UnsafeCell<[Entry; FIRST_CAP]>);

// SAFETY: only touched under the `LARGE` lock, as the table it becomes.
unsafe impl Sync for FirstTable {}

static FIRST_TABLE: FirstTable = FirstTable(core::cell::UnsafeCell::new([EMPTY; FIRST_CAP]));

#[inline]
fn hash(addr: usize, cap: usize) -> usize {
    ((addr >> 12).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 7) & (cap - 1)
}

impl Large {
    fn get(&self, i: usize) -> Entry {
        debug_assert!(i < self.cap);
        // SAFETY: `i < cap` and the table has `cap` entries; the lock gives exclusive access.
        unsafe { *self.table.add(i) }
    }

    fn slot(&mut self, i: usize) -> &mut Entry {
        debug_assert!(i < self.cap);
        // SAFETY: as in `get`.
        unsafe { &mut *self.table.add(i) }
    }

    fn find(&self, addr: usize) -> Option<usize> {
        if self.cap == 0 {
            return None;
        }
        let mut i = hash(addr, self.cap);
        loop {
            let e = self.get(i);
            if e.state == State::Empty {
                return None;
            }
            if e.addr == addr {
                return Some(i);
            }
            i = (i + 1) & (self.cap - 1);
        }
    }

    /// Insert a new entry; false when the table cannot grow.
    fn insert(&mut self, e: Entry) -> bool {
        if (self.len + 1) * 2 > self.cap && !self.grow() {
            return false;
        }
        let mut i = hash(e.addr, self.cap);
        while self.get(i).state != State::Empty {
            if self.get(i).addr == e.addr {
                // Two blocks at one address: the mappings and the table disagree.
                internal();
            }
            i = (i + 1) & (self.cap - 1);
        }
        *self.slot(i) = e;
        self.len += 1;
        true
    }

    fn grow(&mut self) -> bool {
        if self.cap == 0 {
            // The first table is static, and empty already.
            self.table = FIRST_TABLE.0.get().cast();
            self.cap = FIRST_CAP;
            return true;
        }
        let new_cap = self.cap * 2;
        let bytes = new_cap * core::mem::size_of::<Entry>();
        let Some(bytes) = os::page_round_up(bytes) else {
            return false;
        };
        let t = os::map(bytes, true) as *mut Entry;
        if t.is_null() {
            return false;
        }
        let (old, old_cap) = (self.table, self.cap);
        self.growing = old;
        self.growing_cap = old_cap;
        self.table = t;
        self.cap = new_cap;
        self.len = 0;
        // Fresh mapped memory is zero, which reads as `EMPTY` entries only if Empty is 0:
        // write them explicitly instead of relying on the enum layout.
        for i in 0..new_cap {
            *self.slot(i) = EMPTY;
        }
        for i in 0..old_cap {
            // SAFETY: `i < old_cap`, the old table is still mapped.
            let e = unsafe { *old.add(i) };
            if e.state != State::Empty {
                let mut j = hash(e.addr, self.cap);
                while self.get(j).state != State::Empty {
                    j = (j + 1) & (self.cap - 1);
                }
                *self.slot(j) = e;
                self.len += 1;
            }
        }
        self.growing = ptr::null_mut();
        self.growing_cap = 0;
        if old != FIRST_TABLE.0.get().cast() {
            let old_bytes = os::page_round_up(old_cap * core::mem::size_of::<Entry>())
                .unwrap_or_else(|| internal());
            // SAFETY: the old table is ours and no longer used.
            unsafe { os::release(old.cast(), old_bytes) };
        }
        true
    }

    /// Rebuild the table, the cache list and the counters from the entries left by a thread
    /// interrupted in the middle of an update (for the child of `fork`): a fresh table gets
    /// every well-formed entry of the current one and, if a [`grow`](Self::grow) was copying,
    /// of the one it replaced, each address once (a backward shift or a copy in progress
    /// leaves an entry in two slots); the cache list is made of the cached entries, as if
    /// freed now. Every entry's mapping still exists (blocks are unmapped only after leaving
    /// the table). When no table can be mapped, the cache list alone is emptied: lookups may
    /// then miss a block whose entry was being moved, which makes its free abort.
    fn rebuild(&mut self) {
        let ps = os::page_size();
        let sources = [(self.table, self.cap), (self.growing, self.growing_cap)];
        let entries = self.cap + self.growing_cap;
        self.cache_len = 0;
        self.cache_bytes = 0;
        if entries == 0 {
            return;
        }
        let new_cap = (2 * entries).next_power_of_two().max(FIRST_CAP);
        let t = os::page_round_up(new_cap * core::mem::size_of::<Entry>())
            .map_or(ptr::null_mut(), |bytes| os::map(bytes, true) as *mut Entry);
        if t.is_null() {
            return;
        }
        // The old tables stay mapped and unused: the child may be short of memory already.
        self.table = t;
        self.cap = new_cap;
        self.len = 0;
        self.growing = ptr::null_mut();
        self.growing_cap = 0;
        self.live_bytes = 0;
        for i in 0..new_cap {
            *self.slot(i) = EMPTY;
        }
        let now = os::now_ms();
        for (table, cap) in sources {
            for i in 0..cap {
                // SAFETY: `i < cap` of a table that is still mapped.
                let e = unsafe { *table.add(i) };
                let well_formed = e.state != State::Empty
                    && e.addr != 0
                    && e.addr % ps == 0
                    && e.usable != 0
                    && e.usable % ps == 0;
                if !well_formed || self.find(e.addr).is_some() {
                    continue;
                }
                let mut j = hash(e.addr, self.cap);
                while self.get(j).state != State::Empty {
                    j = (j + 1) & (self.cap - 1);
                }
                *self.slot(j) = e;
                self.len += 1;
                match e.state {
                    State::Live => self.live_bytes += e.usable,
                    _ if self.cache_len < CACHE_MAX => {
                        self.cache_push(e.addr, now);
                        self.cache_bytes += e.usable;
                    }
                    // No room in the list: never reused, still known as freed.
                    _ => {}
                }
            }
        }
    }

    /// Remove entry `i` with backward-shift deletion.
    fn remove_at(&mut self, mut i: usize) {
        let mask = self.cap - 1;
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            let e = self.get(j);
            if e.state == State::Empty {
                break;
            }
            let home = hash(e.addr, self.cap);
            // Move `e` into the hole at `i` unless its home lies cyclically in (i, j].
            let in_between = if i <= j {
                i < home && home <= j
            } else {
                i < home || home <= j
            };
            if !in_between {
                *self.slot(i) = e;
                i = j;
            }
        }
        *self.slot(i) = EMPTY;
        self.len -= 1;
    }

    /// Remember that the block at `addr` was freed and is no longer in the table.
    fn note_released(&mut self, addr: usize) {
        let k = self.released_next % RELEASED_MAX;
        *self.released.get_mut(k).unwrap_or_else(|| internal()) = addr;
        self.released_next = self.released_next.wrapping_add(1);
    }

    /// Whether `addr` is not a live block but was one: cached, or recently unmapped.
    fn was_freed(&self, addr: usize) -> bool {
        match self.find(addr) {
            Some(i) => self.get(i).state != State::Live,
            None => addr != 0 && self.released.contains(&addr),
        }
    }

    /// Take the `k`th cached block, of `usable` bytes, out of the cache as a live block;
    /// returns its address.
    fn take_cached(&mut self, k: usize, usable: usize) -> usize {
        let addr = self.cached(k);
        self.cache_remove(k);
        let i = self.find(addr).unwrap_or_else(|| internal());
        self.slot(i).state = State::Live;
        self.live_bytes += usable;
        self.allocs += 1;
        addr
    }

    /// The `k`th cached block (`k < cache_len`).
    fn cached(&self, k: usize) -> usize {
        *self.cache.get(k).unwrap_or_else(|| internal())
    }

    /// Take the oldest cached block out of the cache and the table: (address, usable).
    fn evict_oldest(&mut self) -> (usize, usize) {
        let old = self.cached(0);
        self.cache_remove(0);
        let j = self.find(old).unwrap_or_else(|| internal());
        let usable = self.get(j).usable;
        self.remove_at(j);
        self.note_released(old);
        (old, usable)
    }

    fn cache_push(&mut self, addr: usize, now: u64) {
        let n = self.cache_len;
        *self.cache.get_mut(n).unwrap_or_else(|| internal()) = addr;
        *self.cache_time.get_mut(n).unwrap_or_else(|| internal()) = now;
        self.cache_len += 1;
    }

    fn cache_remove(&mut self, k: usize) {
        let addr = self.cached(k);
        for j in k + 1..self.cache_len {
            let a = self.cached(j);
            let t = *self.cache_time.get(j).unwrap_or_else(|| internal());
            *self.cache.get_mut(j - 1).unwrap_or_else(|| internal()) = a;
            *self.cache_time.get_mut(j - 1).unwrap_or_else(|| internal()) = t;
        }
        self.cache_len -= 1;
        let i = self.find(addr).unwrap_or_else(|| internal());
        self.cache_bytes -= self.get(i).usable;
    }
}

/// The table lost an entry it must have: the allocator's own state is broken.
#[cold]
fn internal() -> ! {
    os::internal("large-block table inconsistent")
}

/// The guard size: one OS page (none in the `unhardened` measurement build).
#[inline]
fn guard() -> usize {
    os::guard_size()
}

/// Allocate a large block of at least `size` bytes aligned to `align` (a power of two; values
/// up to the page size need nothing special). Null when out of memory or when the size
/// cannot be represented.
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
    let align = align.max(ps);
    let Some(usable) = os::page_round_up(size.max(1)) else {
        return ptr::null_mut();
    };
    if usable > isize::MAX as usize / 2 {
        return ptr::null_mut();
    }
    {
        let mut l = LARGE.lock();
        // Best fit among cached blocks with at most 50% slack.
        let mut best = usize::MAX;
        let mut best_k = 0;
        for k in 0..l.cache_len {
            let addr = l.cached(k);
            let e = l.get(l.find(addr).unwrap_or_else(|| internal()));
            if e.usable >= usable
                && e.usable - usable <= usable / 2
                && addr % align == 0
                && e.usable < best
            {
                best = e.usable;
                best_k = k;
            }
        }
        if best != usize::MAX {
            let addr = l.take_cached(best_k, best);
            drop(l);
            if crate::config::strict()
                // SAFETY: the block was just taken from the cache; nobody else knows it.
                && !unsafe { crate::strict::reopen_large(addr as *mut u8, best) }
            {
                drop_taken(addr, best);
                return ptr::null_mut();
            }
            if zero {
                // SAFETY: the block is live, ours, and at least `size` bytes long.
                unsafe { ptr::write_bytes(addr as *mut u8, 0, size) };
            }
            return addr as *mut u8;
        }
    }
    if let Some(p) = grow_cached(size, usable, align, zero) {
        return p;
    }
    let p = os::map_guarded(usable, guard(), align);
    if p.is_null() {
        return p;
    }
    let mut l = LARGE.lock();
    if !l.insert(Entry {
        addr: p as usize,
        usable,
        state: State::Live,
    }) {
        drop(l);
        // SAFETY: the mapping was just made and is unknown to anyone else.
        unsafe { unmap(p as usize, usable) };
        return ptr::null_mut();
    }
    l.live_bytes += usable;
    l.allocs += 1;
    p
}

/// No cached block fits: grow the largest cached one that is smaller (at least half the
/// request) to `usable` bytes with `mremap`, so that its resident pages serve the new block
/// instead of a fresh mapping being faulted in page by page (a few system calls instead of a
/// fault per page). In strict mode the cached block is opened first (it is `PROT_NONE` while
/// cached). `None` when there is no such block; the caller then maps a fresh block.
fn grow_cached(size: usize, usable: usize, align: usize, zero: bool) -> Option<*mut u8> {
    let mut l = LARGE.lock();
    let mut best = 0;
    let mut best_k = 0;
    for k in 0..l.cache_len {
        let addr = l.cached(k);
        let e = l.get(l.find(addr).unwrap_or_else(|| internal()));
        if e.usable < usable && e.usable >= usable / 2 && addr % align == 0 && e.usable > best {
            best = e.usable;
            best_k = k;
        }
    }
    if best == 0 {
        return None;
    }
    let addr = l.take_cached(best_k, best);
    drop(l);
    if crate::config::strict()
        // SAFETY: the block was just taken from the cache; nobody else knows it.
        && !unsafe { crate::strict::reopen_large(addr as *mut u8, best) }
    {
        drop_taken(addr, best);
        return None;
    }
    let p = resize(addr as *mut u8, size, align);
    if p.is_null() {
        // The kernel could not move it: drop the block, map afresh.
        drop_taken(addr, best);
        return None;
    }
    if zero {
        // SAFETY: the block is live, ours, and at least `size` bytes long.
        unsafe { ptr::write_bytes(p, 0, size) };
    }
    Some(p)
}

/// Give up a block just taken from the cache with [`Large::take_cached`] that cannot be
/// handed out after all: out of the table, counted as never allocated, and unmapped.
fn drop_taken(addr: usize, usable: usize) {
    let mut l = LARGE.lock();
    let i = l.find(addr).unwrap_or_else(|| internal());
    l.remove_at(i);
    l.note_released(addr);
    l.live_bytes -= usable;
    l.allocs -= 1;
    drop(l);
    // SAFETY: out of the table; the mapping is ours alone.
    unsafe { unmap(addr, usable) };
}

/// Unmap a large block with its guards.
///
/// # Safety
/// The block at `addr` with `usable` bytes is ours, dead and out of the table.
unsafe fn unmap(addr: usize, usable: usize) {
    let g = guard();
    // SAFETY: [addr - g, addr + usable + g) is exactly the block's mapping.
    unsafe { os::release((addr - g) as *mut u8, usable + 2 * g) };
}

/// Free a large block. Aborts when `p` is not a live large block of ours, or when `size`
/// (the caller's claim of what it allocated; 0 for none) exceeds the block.
pub fn free(p: *mut u8, size: usize) {
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
    l.live_bytes -= e.usable;
    l.frees += 1;
    let max_bytes = crate::config::large_cache_bytes();
    let now = os::now_ms();
    if e.usable <= max_bytes / 4 {
        // Make room: evict the oldest blocks until this one fits, and those past the delay.
        let cutoff = now.saturating_sub(crate::config::purge_delay_ms() as u64);
        let mut evicted = [(0usize, 0usize); CACHE_MAX];
        let mut n_ev = 0;
        while l.cache_len > 0
            && (l.cache_len == CACHE_MAX
                || l.cache_bytes + e.usable > max_bytes
                || l.cache_time[0] <= cutoff)
        {
            *evicted.get_mut(n_ev).unwrap_or_else(|| internal()) = l.evict_oldest();
            n_ev += 1;
        }
        let i = l.find(addr).unwrap_or_else(|| internal());
        l.slot(i).state = State::Cached;
        l.cache_push(addr, now);
        l.cache_bytes += e.usable;
        drop(l);
        for &(a, u) in evicted.get(..n_ev).unwrap_or(&[]) {
            // SAFETY: evicted blocks are out of the table and dead.
            unsafe { unmap(a, u) };
        }
        crate::heap::large_freed(now);
        return;
    }
    l.remove_at(i);
    l.note_released(addr);
    drop(l);
    // SAFETY: removed from the table; the caller's pointer was the last reference.
    unsafe { unmap(addr, e.usable) };
}

/// Unmap the cached blocks freed at or before `cutoff`; add their bytes to `*bytes`. Returns
/// when the oldest block left was freed (`u64::MAX` when the cache is empty).
pub fn decay(cutoff: u64, bytes: &mut usize) -> u64 {
    let mut evicted = [(0usize, 0usize); CACHE_MAX];
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
    for &(a, u) in evicted.get(..n_ev).unwrap_or(&[]) {
        // SAFETY: evicted blocks are out of the table and dead.
        unsafe { unmap(a, u) };
        *bytes += u;
    }
    next
}

/// Whether `p`, which is not a live large block, was one that has been freed (it is cached,
/// or among the last blocks unmapped): the difference between a double and an invalid free.
pub fn was_freed(p: *const u8) -> bool {
    LARGE.lock().was_freed(p as usize)
}

/// Usable size of a live large block, or `None` if `p` is not one.
pub fn usable_size(p: *const u8) -> Option<usize> {
    let l = LARGE.lock();
    let i = l.find(p as usize)?;
    let e = l.get(i);
    (e.state == State::Live).then_some(e.usable)
}

/// Resize the live large block at `p` to `new_size` bytes, keeping it `align`-aligned, without
/// copying when possible.
/// Returns the block's (possibly new) address, or null when it could not be resized in place
/// or moved by the kernel (the block is then unchanged and the caller copies). Aborts when
/// `p` is not a live large block.
pub fn resize(p: *mut u8, new_size: usize, align: usize) -> *mut u8 {
    let addr = p as usize;
    let Some(new_usable) = os::page_round_up(new_size.max(1)) else {
        return ptr::null_mut();
    };
    if new_usable > isize::MAX as usize / 2 {
        return ptr::null_mut();
    }
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
    if new_usable <= e.usable {
        // Shrinking: keep the block when it stays at least half used; otherwise let the
        // caller move it to a smaller home.
        return if new_usable >= e.usable / 2 {
            p
        } else {
            ptr::null_mut()
        };
    }
    drop(l);
    // Growing: reserve a new guarded range (aligned as the block must stay) and let the
    // kernel move the pages into its middle.
    let g = guard();
    let target = os::reserve_guarded(new_usable, g, align);
    if target.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: `p`'s usable part holds only this block's pages; the target lies inside the
    // reservation just made.
    let moved = unsafe { os::remap_to(p, e.usable, new_usable, target) };
    if !moved {
        // SAFETY: our own unused reservation.
        unsafe { os::release(target.sub(g), new_usable + 2 * g) };
        return ptr::null_mut();
    }
    // Re-key the table before the old guards go: while they stand, nothing new can be mapped
    // at `addr` itself (a mapping in the hole needs its own front guard inside it), so the old
    // entry cannot be confused with another block's. Releasing the guards first let another
    // thread map a block exactly at `addr` and its entry be removed in place of ours.
    let mut l = LARGE.lock();
    let i = l.find(addr).unwrap_or_else(|| internal());
    l.remove_at(i);
    l.note_released(addr);
    l.live_bytes += new_usable - e.usable;
    let ok = l.insert(Entry {
        addr: target as usize,
        usable: new_usable,
        state: State::Live,
    });
    drop(l);
    if !ok {
        // The table could not grow; the block cannot be tracked. Treat as out of memory:
        // nothing reasonable can be returned, so this is fatal rather than silent.
        os::fatal("mapalloc: out of memory for large-block metadata");
    }
    // Only the two old guards are still ours: the pages between them moved away.
    if g != 0 {
        // SAFETY: the guards are ours, holding nothing.
        unsafe {
            os::release((addr - g) as *mut u8, g);
            os::release((addr + e.usable) as *mut u8, g);
        }
    }
    target
}

/// Counters of the large-block layer.
pub struct Counters {
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
/// updated. Rebuild them from the table's entries (see [`Large::rebuild`]) and release the
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

#[cfg(test)]
mod tests {
    use super::*;

    fn empty() -> Large {
        Large {
            table: ptr::null_mut(),
            cap: 0,
            len: 0,
            cache: [0; CACHE_MAX],
            cache_time: [0; CACHE_MAX],
            cache_len: 0,
            cache_bytes: 0,
            released: [0; RELEASED_MAX],
            released_next: 0,
            live_bytes: 0,
            allocs: 0,
            frees: 0,
            growing: ptr::null_mut(),
            growing_cap: 0,
        }
    }

    fn entry(addr: usize, usable: usize, state: State) -> Entry {
        Entry {
            addr,
            usable,
            state,
        }
    }

    /// What a thread interrupted by `fork` in the middle of a grow and a backward shift leaves
    /// behind: an entry in two slots, a torn one, half the entries still in the old table, and
    /// a cache list that disagrees with the table. The rebuilt table has each block once.
    #[test]
    #[cfg_attr(miri, ignore)] // maps the new table
    fn rebuild_after_an_interrupted_update() {
        let ps = os::page_size();
        let (a, b, c, d) = (100 * ps, 200 * ps, 300 * ps, 400 * ps);
        let mut new_table = vec![EMPTY; 8];
        new_table[1] = entry(a, 4 * ps, State::Live);
        new_table[2] = entry(a, 4 * ps, State::Live);
        new_table[3] = entry(b, 2 * ps, State::Cached);
        new_table[5] = entry(d, 0, State::Live); // torn: no size
        let mut old_table = vec![EMPTY; 4];
        old_table[0] = entry(c, 8 * ps, State::Live);
        old_table[2] = entry(a, 4 * ps, State::Live);
        let mut l = empty();
        l.table = new_table.as_mut_ptr();
        l.cap = 8;
        l.len = 1;
        l.growing = old_table.as_mut_ptr();
        l.growing_cap = 4;
        l.cache_len = 3; // half-shifted list, naming a block that is not cached
        l.cache[..3].copy_from_slice(&[c, b, b]);
        l.live_bytes = 12345;
        l.rebuild();
        assert!(l.table != new_table.as_mut_ptr() && l.growing.is_null());
        assert_eq!(l.len, 3);
        for (addr, usable, state) in [
            (a, 4 * ps, State::Live),
            (b, 2 * ps, State::Cached),
            (c, 8 * ps, State::Live),
        ] {
            let e = l.get(l.find(addr).expect("entry kept"));
            assert!(e.usable == usable && e.state == state);
        }
        assert!(l.find(d).is_none(), "a torn entry is dropped");
        assert_eq!(l.live_bytes, 12 * ps);
        assert_eq!((l.cache_len, l.cached(0), l.cache_bytes), (1, b, 2 * ps));
    }
}
