//! The large-block table: blocks found from their address (open addressing, linear probing,
//! backward-shift deletion) in mapped memory under one spin lock, the FIFO of cached blocks,
//! and the ring of recently unmapped addresses. A part of `large`.

use core::ptr;

use crate::os;
use crate::sync::SpinLock;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum State {
    Empty,
    Live,
    Cached,
}

/// One block: its pages `[base, base + len)` between two guards, and the block itself, the
/// last `usable` bytes of them (`addr = base + len - usable`), so that its end touches the
/// trailing guard. The table is keyed by `addr`, the pointer the program holds.
#[derive(Clone, Copy, Debug)]
pub(super) struct Entry {
    /// Start of the block (0 when empty): the key.
    pub addr: usize,
    /// Start of the block's pages (page-aligned); the front guard lies just before.
    pub base: usize,
    /// Bytes of pages (a multiple of the page size); the trailing guard follows.
    pub len: usize,
    /// Bytes of the block: the request rounded up to 16 or to its alignment.
    pub usable: usize,
    /// Bytes requested (at most `usable`; strict mode's canary fills the difference).
    pub req: usize,
    pub state: State,
}

impl Entry {
    /// End of the block and of its pages: where the trailing guard starts.
    pub fn end(&self) -> usize {
        self.base + self.len
    }
}

pub(super) const EMPTY: Entry = Entry {
    addr: 0,
    base: 0,
    len: 0,
    usable: 0,
    req: 0,
    state: State::Empty,
};

pub(super) const CACHE_MAX: usize = 32;
/// Addresses of the last blocks unmapped (see `Large::released`).
pub(super) const RELEASED_MAX: usize = 64;

pub(super) struct Large {
    table: *mut Entry,
    cap: usize,
    /// Entries in the table (live and cached blocks).
    pub len: usize,
    /// Cached blocks (keys), oldest first, and when each was freed (`os::now_ms`).
    cache: [usize; CACHE_MAX],
    pub cache_time: [u64; CACHE_MAX],
    pub cache_len: usize,
    /// Bytes of pages of the cached blocks.
    pub cache_bytes: usize,
    /// Ring of the addresses of the last blocks unmapped (or moved away by `resize`): a free
    /// of one of them is reported as a double free, not as an invalid free, even after the
    /// block left the cache. An address mapped again is found in the table first.
    released: [usize; RELEASED_MAX],
    released_next: usize,
    /// Bytes of pages of the live blocks.
    pub live_bytes: usize,
    pub allocs: u64,
    pub frees: u64,
    /// The table being replaced while [`Large::grow`] copies it (null otherwise): a `fork`
    /// child that finds the copy half done rebuilds from both tables.
    growing: *mut Entry,
    growing_cap: usize,
}

// SAFETY: the table memory is owned by the structure and only touched under the lock.
unsafe impl Send for Large {}

pub(super) static LARGE: SpinLock<Large> = SpinLock::new(Large::new());

impl Large {
    pub(super) const fn new() -> Large {
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
}

/// Entries of the first table, in static memory: a process with few large blocks maps no
/// table (one `mmap` less).
const FIRST_CAP: usize = 1024;

struct FirstTable(core::cell::UnsafeCell<[Entry; FIRST_CAP]>);

// SAFETY: only touched under the `LARGE` lock, as the table it becomes.
unsafe impl Sync for FirstTable {}

static FIRST_TABLE: FirstTable = FirstTable(core::cell::UnsafeCell::new([EMPTY; FIRST_CAP]));

#[inline]
fn hash(addr: usize, cap: usize) -> usize {
    ((addr >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 7) & (cap - 1)
}

impl Large {
    pub(super) fn get(&self, i: usize) -> Entry {
        debug_assert!(i < self.cap);
        // SAFETY: `i < cap` and the table has `cap` entries; the lock gives exclusive access.
        unsafe { *self.table.add(i) }
    }

    pub(super) fn slot(&mut self, i: usize) -> &mut Entry {
        debug_assert!(i < self.cap);
        // SAFETY: as in `get`.
        unsafe { &mut *self.table.add(i) }
    }

    pub(super) fn find(&self, addr: usize) -> Option<usize> {
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
    pub(super) fn insert(&mut self, e: Entry) -> bool {
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
    pub(super) fn rebuild(&mut self) {
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
                    && e.base != 0
                    && e.base % ps == 0
                    && e.len != 0
                    && e.len % ps == 0
                    && e.usable != 0
                    && e.usable % 16 == 0
                    && e.usable <= e.len
                    && e.req <= e.usable
                    && e.addr == e.base + e.len - e.usable;
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
                    State::Live => self.live_bytes += e.len,
                    _ if self.cache_len < CACHE_MAX => {
                        self.cache_push(e.addr, now);
                        self.cache_bytes += e.len;
                    }
                    // No room in the list: never reused, still known as freed.
                    _ => {}
                }
            }
        }
    }

    /// Remove entry `i` with backward-shift deletion.
    pub(super) fn remove_at(&mut self, mut i: usize) {
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
    pub(super) fn note_released(&mut self, addr: usize) {
        let k = self.released_next % RELEASED_MAX;
        *self.released.get_mut(k).unwrap_or_else(|| internal()) = addr;
        self.released_next = self.released_next.wrapping_add(1);
    }

    /// Whether `addr` is not a live block but was one: cached, or recently unmapped.
    pub(super) fn was_freed(&self, addr: usize) -> bool {
        match self.find(addr) {
            Some(i) => self.get(i).state != State::Live,
            None => addr != 0 && self.released.contains(&addr),
        }
    }

    /// Take the `k`th cached block out of the cache as a live block of `usable` bytes (`req`
    /// requested) at the end of its pages, keyed by its new address (the old one is remembered as freed);
    /// returns the block's entry.
    pub(super) fn take_cached(&mut self, k: usize, usable: usize, req: usize) -> Entry {
        let key = self.cached(k);
        self.cache_remove(k);
        let i = self.find(key).unwrap_or_else(|| internal());
        let old = self.get(i);
        let e = Entry {
            addr: old.end() - usable,
            usable,
            req,
            state: State::Live,
            ..old
        };
        self.rekey(i, e);
        self.live_bytes += e.len;
        self.allocs += 1;
        e
    }

    /// Replace entry `i` with `e` (the same pages, maybe another address): the old address is
    /// remembered as freed. Never needs to grow the table.
    pub(super) fn rekey(&mut self, i: usize, e: Entry) {
        let old = self.get(i).addr;
        if old == e.addr {
            *self.slot(i) = e;
            return;
        }
        self.remove_at(i);
        self.note_released(old);
        if !self.insert(e) {
            internal();
        }
    }

    /// The `k`th cached block (`k < cache_len`).
    pub(super) fn cached(&self, k: usize) -> usize {
        *self.cache.get(k).unwrap_or_else(|| internal())
    }

    /// Take the oldest cached block out of the cache and the table; returns its entry.
    pub(super) fn evict_oldest(&mut self) -> Entry {
        let old = self.cached(0);
        self.cache_remove(0);
        let j = self.find(old).unwrap_or_else(|| internal());
        let e = self.get(j);
        self.remove_at(j);
        self.note_released(old);
        e
    }

    pub(super) fn cache_push(&mut self, addr: usize, now: u64) {
        let n = self.cache_len;
        *self.cache.get_mut(n).unwrap_or_else(|| internal()) = addr;
        *self.cache_time.get_mut(n).unwrap_or_else(|| internal()) = now;
        self.cache_len += 1;
    }

    pub(super) fn cache_remove(&mut self, k: usize) {
        let addr = self.cached(k);
        for j in k + 1..self.cache_len {
            let a = self.cached(j);
            let t = *self.cache_time.get(j).unwrap_or_else(|| internal());
            *self.cache.get_mut(j - 1).unwrap_or_else(|| internal()) = a;
            *self.cache_time.get_mut(j - 1).unwrap_or_else(|| internal()) = t;
        }
        self.cache_len -= 1;
        let i = self.find(addr).unwrap_or_else(|| internal());
        self.cache_bytes -= self.get(i).len;
    }
}

/// The table lost an entry it must have: the allocator's own state is broken.
#[cold]
pub(super) fn internal() -> ! {
    os::internal("large-block table inconsistent")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty() -> Large {
        Large::new()
    }

    /// A block that fills its pages.
    fn entry(addr: usize, len: usize, state: State) -> Entry {
        Entry {
            addr,
            base: addr,
            len,
            usable: len,
            req: len,
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
            assert!(e.len == usable && e.state == state);
        }
        assert!(l.find(d).is_none(), "a torn entry is dropped");
        assert_eq!(l.live_bytes, 12 * ps);
        assert_eq!((l.cache_len, l.cached(0), l.cache_bytes), (1, b, 2 * ps));
    }
}
