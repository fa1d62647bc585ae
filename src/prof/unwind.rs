//! The stack of a sampled allocation, from the unwinder of the platform's C ABI
//! (`_Unwind_Backtrace`, the Itanium C++ ABI's unwinding interface, which jemalloc's profiler
//! uses too). It reads the `.eh_frame` tables that every Linux object carries, so programs
//! built without frame pointers (Debian's) still give whole stacks.
//!
//! Where it comes from: the Rust face links it from `libgcc_s`, which every Rust program
//! links; `libmapalloc.so` links a private copy of libgcc's unwinder (`libgcc_eh.a`, see
//! `cdylib/build.rs`), hidden behind the library's export list, so that the preloaded library
//! still needs no `libgcc_s`. It finds each frame's unwind table with `dl_iterate_phdr` and
//! does not call `malloc`; if a future unwinder did, the nested allocation is served as any
//! other, because the calling thread is marked busy first (see `prof`) and no allocator lock
//! is held while the stack is walked. Frames without unwind tables (JIT-compiled code) end
//! the walk there.
//!
//! The allocator's own frames are left out: the entry frame that holds the marker
//! (`prof::allocated`'s caller passes the address of one of its locals) and those it called,
//! whose stack pointers are at or below the marker (`_Unwind_GetCFA` gives a frame's stack
//! pointer at its call, the callee's canonical frame address, as backtrace-rs reads it too),
//! and, when mapalloc is a shared library of its own (the preload), the leading frames inside
//! it (`malloc`, `operator new`). Frame addresses are return addresses.

use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use super::table::MAX_FRAMES;

#[repr(C)]
struct UnwindContext {
    _private: [u8; 0],
}

type Trace = unsafe extern "C" fn(*mut UnwindContext, *mut c_void) -> c_int;

unsafe extern "C" {
    fn _Unwind_Backtrace(trace: Trace, arg: *mut c_void) -> c_int;
    fn _Unwind_GetIP(ctx: *mut UnwindContext) -> usize;
    fn _Unwind_GetCFA(ctx: *mut UnwindContext) -> usize;
}

/// The ELF program header flag of an executable segment (the same on every ELF system; the
/// `libc` crate names it only for some).
const PF_X: u32 = 1;

/// `_URC_NO_REASON`: go on; anything else stops the walk.
const CONTINUE: c_int = 0;
const STOP: c_int = 5;

/// The executable range of the shared object mapalloc's code is in, when that object is not
/// the main program; `OWN_LO == 1` while not yet looked up.
static OWN_LO: AtomicUsize = AtomicUsize::new(1);
static OWN_HI: AtomicUsize = AtomicUsize::new(0);

struct Walk {
    frames: [usize; MAX_FRAMES],
    n: usize,
    marker: usize,
    own_lo: usize,
    own_hi: usize,
}

/// The unwinder's callback, one call per frame.
///
/// # Safety
/// `ctx` is the unwinder's context of the frame and `arg` the `Walk` that [`capture`] passed.
unsafe extern "C" fn step(ctx: *mut UnwindContext, arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `Walk` that `capture` passed, alive for the whole walk; `ctx` is
    // the unwinder's context for this frame.
    let (w, ip, sp) = unsafe {
        (
            &mut *arg.cast::<Walk>(),
            _Unwind_GetIP(ctx),
            _Unwind_GetCFA(ctx),
        )
    };
    if ip == 0 {
        return STOP;
    }
    if w.n == 0 && sp <= w.marker {
        // The entry frame or one it called.
        return CONTINUE;
    }
    if w.n == 0 && ip >= w.own_lo && ip < w.own_hi {
        return CONTINUE;
    }
    match w.frames.get_mut(w.n) {
        Some(slot) => {
            *slot = ip;
            w.n += 1;
            if w.n == MAX_FRAMES { STOP } else { CONTINUE }
        }
        None => STOP,
    }
}

/// Walk the calling thread's stack into `out`: the number of frames written (innermost
/// first). `marker` is the address of a local of the allocator's entry frame.
pub fn capture(marker: usize, out: &mut [usize; MAX_FRAMES]) -> usize {
    if OWN_LO.load(Relaxed) == 1 {
        find_own_object();
    }
    let mut w = Walk {
        frames: [0; MAX_FRAMES],
        n: 0,
        marker,
        own_lo: OWN_LO.load(Relaxed),
        own_hi: OWN_HI.load(Relaxed),
    };
    // SAFETY: `step` only touches `w`, which outlives the call.
    unsafe { _Unwind_Backtrace(step, (&raw mut w).cast()) };
    *out = w.frames;
    w.n
}

/// `dl_iterate_phdr`'s callback: records the executable range of the object holding `arg`.
///
/// # Safety
/// `info` is the loader's record of one loaded object, valid for the call.
unsafe extern "C" fn find_in(
    info: *mut libc::dl_phdr_info,
    _size: usize,
    arg: *mut c_void,
) -> c_int {
    // SAFETY: the loader passes a valid `dl_phdr_info` whose program headers are mapped.
    let info = unsafe { &*info };
    let anchor = arg as usize;
    let mut lo = usize::MAX;
    let mut hi = 0;
    let mut holds = false;
    for i in 0..info.dlpi_phnum as usize {
        // SAFETY: `dlpi_phdr` has `dlpi_phnum` entries.
        let ph = unsafe { &*info.dlpi_phdr.add(i) };
        if ph.p_type != libc::PT_LOAD || ph.p_flags & PF_X == 0 {
            continue;
        }
        let start = info.dlpi_addr as usize + ph.p_vaddr as usize;
        let end = start + ph.p_memsz as usize;
        holds |= (start..end).contains(&anchor);
        lo = lo.min(start);
        hi = hi.max(end);
    }
    if !holds {
        return 0;
    }
    // The main program's name is empty: mapalloc is linked into it (the Rust face), and its
    // code is the program's, so no range is left out.
    // SAFETY: `dlpi_name` is null or a NUL-terminated string.
    let named = !info.dlpi_name.is_null() && unsafe { *info.dlpi_name } != 0;
    if named {
        OWN_HI.store(hi, Relaxed);
        OWN_LO.store(lo, Relaxed);
    } else {
        OWN_LO.store(0, Relaxed);
    }
    1
}

#[cold]
fn find_own_object() {
    let anchor = capture as fn(usize, &mut [usize; MAX_FRAMES]) -> usize as usize;
    // SAFETY: `find_in` only reads the loader's records and writes two atomics.
    let found = unsafe { libc::dl_iterate_phdr(Some(find_in), anchor as *mut c_void) };
    if found == 0 {
        OWN_LO.store(0, Relaxed);
    }
}
