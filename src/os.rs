//! Layer 1: the operating system. Every `mmap`, `munmap`, `madvise` and `mremap` the
//! allocator makes goes through here and is counted, so "syscall counts" need no strace.

use core::ptr;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// The base page size. x86-64 and aarch64 Linux both use 4 KiB base pages for anonymous
/// mappings unless configured otherwise; `init` checks it against `sysconf`.
pub const PAGE: usize = 4096;

static MMAP: AtomicU64 = AtomicU64::new(0);
static MUNMAP: AtomicU64 = AtomicU64::new(0);
static MADVISE: AtomicU64 = AtomicU64::new(0);
static MREMAP: AtomicU64 = AtomicU64::new(0);

/// How many of each memory syscall this process's allocator has made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyscallCounts {
    pub mmap: u64,
    pub munmap: u64,
    pub madvise: u64,
    pub mremap: u64,
}

pub fn syscall_counts() -> SyscallCounts {
    SyscallCounts {
        mmap: MMAP.load(Relaxed),
        munmap: MUNMAP.load(Relaxed),
        madvise: MADVISE.load(Relaxed),
        mremap: MREMAP.load(Relaxed),
    }
}

#[inline]
pub const fn round_up(n: usize, align: usize) -> usize {
    (n + align - 1) & !(align - 1)
}

/// Maps `len` bytes of zeroed, read-write, private anonymous memory near `hint`
/// (0: anywhere). Returns null on failure.
///
/// No `MAP_NORESERVE`: every mapping is charged against the kernel's commit limit, so the
/// overcommit policy (`vm.overcommit_memory`) refuses impossible requests here, as it does
/// for glibc's `malloc`, instead of handing out memory that cannot be backed.
pub fn map(hint: usize, len: usize) -> *mut u8 {
    MMAP.fetch_add(1, Relaxed);
    // SAFETY: an anonymous private mapping without MAP_FIXED never replaces an existing
    // mapping; the kernel picks the address (using `hint` only as a hint).
    let p = unsafe {
        libc::mmap(
            hint as *mut libc::c_void,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        ptr::null_mut()
    } else {
        p as *mut u8
    }
}

/// Unmaps `[p, p + len)`.
///
/// # Safety
/// The range must be one this allocator mapped and nobody uses any more.
pub unsafe fn unmap(p: *mut u8, len: usize) {
    MUNMAP.fetch_add(1, Relaxed);
    // SAFETY: the caller guarantees the range is ours and dead.
    unsafe { libc::munmap(p as *mut libc::c_void, len) };
}

/// `madvise(p, len, advice)`; returns whether the kernel accepted it.
///
/// # Safety
/// The range must be mapped by this allocator; with `MADV_DONTNEED` its contents are lost.
pub unsafe fn advise(p: *mut u8, len: usize, advice: libc::c_int) -> bool {
    MADVISE.fetch_add(1, Relaxed);
    // SAFETY: the caller guarantees the range is ours.
    unsafe { libc::madvise(p as *mut libc::c_void, len, advice) == 0 }
}

/// Grows or shrinks the mapping `[p, p + old)` to `new` bytes, moving it if needed.
/// Returns the (possibly new) address, or null if the kernel refused.
///
/// # Safety
/// The range must be a whole mapping made by this allocator.
pub unsafe fn remap(p: *mut u8, old: usize, new: usize) -> *mut u8 {
    MREMAP.fetch_add(1, Relaxed);
    // SAFETY: the caller guarantees the range is one of our mappings.
    let q = unsafe { libc::mremap(p as *mut libc::c_void, old, new, libc::MREMAP_MAYMOVE) };
    if q == libc::MAP_FAILED {
        ptr::null_mut()
    } else {
        q as *mut u8
    }
}

/// Where the next aligned mapping is asked for. Asking at an aligned address above the
/// region libraries use usually gets an aligned mapping in one syscall (mimalloc's trick).
static ALIGNED_HINT: AtomicUsize = AtomicUsize::new(HINT_START);
const HINT_START: usize = 0x1000_0000_0000; // 16 TiB
const HINT_END: usize = 0x3000_0000_0000; // 48 TiB

/// Maps `len` bytes aligned to `align` (a power of two ≥ PAGE). Null on failure.
pub fn map_aligned(len: usize, align: usize) -> *mut u8 {
    if len.checked_add(align).is_none() {
        return ptr::null_mut();
    }
    let hint = ALIGNED_HINT.fetch_add(round_up(len, align), Relaxed);
    if (HINT_START..HINT_END).contains(&hint) {
        let p = map(hint, len);
        if p.is_null() {
            return p;
        }
        if (p as usize) & (align - 1) == 0 {
            return p;
        }
        // SAFETY: we just mapped it and handed it to nobody.
        unsafe { unmap(p, len) };
    }
    // Over-map and trim both ends.
    let Some(over) = len.checked_add(align) else {
        return ptr::null_mut();
    };
    let p = map(0, over);
    if p.is_null() {
        return p;
    }
    let start = round_up(p as usize, align);
    let head = start - p as usize;
    let tail = over - head - len;
    // SAFETY: both trimmed pieces lie inside the mapping just made and are not handed out.
    unsafe {
        if head > 0 {
            unmap(p, head);
        }
        if tail > 0 {
            unmap((start + len) as *mut u8, tail);
        }
    }
    start as *mut u8
}

fn clock(id: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; clock_gettime goes through the vDSO.
    unsafe { libc::clock_gettime(id, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Monotonic time in ns (precise; for timing sampled calls).
pub fn now_ns() -> u64 {
    clock(libc::CLOCK_MONOTONIC)
}

/// Monotonic time in ns at tick resolution (cheap; for ageing cached blocks).
pub fn now_coarse_ns() -> u64 {
    clock(libc::CLOCK_MONOTONIC_COARSE)
}

/// The return addresses of the calling thread's stack, innermost first, into `out`; the
/// number written. A DWARF unwind by the unwinder `std` already links (`libgcc_s`'s
/// `_Unwind_Backtrace`), which reads the `.eh_frame` tables every x86-64 object carries, so
/// it works without frame pointers. Costly (microseconds): the sites mode calls it once per
/// call site. One thread unwinds at a time and a nested call (the unwinder may allocate)
/// returns 0 at once: never a deadlock, never a recursion.
pub fn backtrace(out: &mut [usize]) -> usize {
    imp_backtrace::backtrace(out)
}

#[cfg(all(target_os = "linux", target_env = "gnu", not(miri)))]
mod imp_backtrace {
    use core::ffi::{c_int, c_void};
    use core::sync::atomic::{AtomicBool, Ordering};

    #[repr(C)]
    struct UnwindContext {
        _private: [u8; 0],
    }

    const URC_NO_REASON: c_int = 0;
    const URC_NORMAL_STOP: c_int = 4;

    extern "C" {
        fn _Unwind_Backtrace(
            trace: extern "C" fn(*mut UnwindContext, *mut c_void) -> c_int,
            arg: *mut c_void,
        ) -> c_int;
        fn _Unwind_GetIP(ctx: *mut UnwindContext) -> usize;
    }

    /// Held while a thread unwinds.
    static BUSY: AtomicBool = AtomicBool::new(false);

    struct Walk<'a> {
        out: &'a mut [usize],
        n: usize,
    }

    extern "C" fn step(ctx: *mut UnwindContext, arg: *mut c_void) -> c_int {
        // SAFETY: `arg` is the `Walk` that `backtrace` passed, alive for the whole unwind
        // and touched by nothing else meanwhile.
        let w = unsafe { &mut *arg.cast::<Walk>() };
        if w.n == w.out.len() {
            return URC_NORMAL_STOP;
        }
        // SAFETY: `ctx` is the live context the unwinder hands its callback.
        let ip = unsafe { _Unwind_GetIP(ctx) };
        if ip == 0 {
            return URC_NORMAL_STOP;
        }
        w.out[w.n] = ip;
        w.n += 1;
        URC_NO_REASON
    }

    pub fn backtrace(out: &mut [usize]) -> usize {
        if BUSY.swap(true, Ordering::Acquire) {
            return 0;
        }
        let mut w = Walk { out, n: 0 };
        // SAFETY: `step` matches the unwinder's callback type and reads `w` only during
        // this call.
        unsafe { _Unwind_Backtrace(step, (&mut w as *mut Walk).cast()) };
        BUSY.store(false, Ordering::Release);
        w.n
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu", not(miri))))]
mod imp_backtrace {
    /// No unwinder linked: no stacks (the sites report then keeps one frame per site).
    pub fn backtrace(_out: &mut [usize]) -> usize {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore)]
    fn a_backtrace_sees_its_callers() {
        #[inline(never)]
        fn inner(out: &mut [usize]) -> usize {
            backtrace(out)
        }
        let mut out = [0usize; 32];
        let n = inner(&mut out);
        assert!(n >= 3, "frames: {n}");
        // This test function's own code is among the return addresses.
        let here = a_backtrace_sees_its_callers as *const () as usize;
        assert!(
            out[..n].iter().any(|&ip| ip > here && ip < here + 4096),
            "{:x?} vs {here:#x}",
            &out[..n]
        );
        let mut two = [0usize; 2];
        assert_eq!(inner(&mut two), 2, "bounded by the buffer");
    }

    #[test]
    fn aligned_mappings_are_aligned_and_counted() {
        for align in [PAGE, 64 << 10, 4 << 20, 32 << 20] {
            let before = syscall_counts();
            let p = map_aligned(align, align);
            assert!(!p.is_null());
            assert_eq!(p as usize % align, 0, "align {align}");
            unsafe {
                p.write(7);
                p.add(align - 1).write(9);
                unmap(p, align);
            }
            let after = syscall_counts();
            assert!(after.mmap > before.mmap && after.munmap > before.munmap);
        }
        assert!(
            map_aligned(usize::MAX - PAGE, 1 << 30).is_null(),
            "overflow: null"
        );
    }

    #[test]
    fn remap_grows_a_mapping_and_keeps_its_bytes() {
        let p = map(0, PAGE);
        unsafe {
            p.write(42);
            let q = remap(p, PAGE, 64 * PAGE);
            assert!(!q.is_null());
            assert_eq!(q.read(), 42);
            q.add(64 * PAGE - 1).write(1);
            unmap(q, 64 * PAGE);
        }
    }
}
