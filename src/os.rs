//! Layer 1: the operating system. Every `mmap`, `munmap`, `madvise` and `mremap` the
//! allocator makes goes through here and is counted, so "syscall counts" need no strace.

use core::ptr;
use core::sync::atomic::{
    AtomicPtr, AtomicU64, AtomicUsize,
    Ordering::{Acquire, Relaxed, Release},
};

/// The base page size. x86-64 and aarch64 Linux both use 4 KiB base pages for anonymous
/// mappings unless configured otherwise; `init` checks it against `sysconf`.
pub const PAGE: usize = 4096;
/// A transparent huge page (x86-64's and arm64's PMD with 4 KiB pages).
pub const HUGE_PAGE: usize = 2 << 20;

static MMAP: AtomicU64 = AtomicU64::new(0);
static MUNMAP: AtomicU64 = AtomicU64::new(0);
static MADVISE: AtomicU64 = AtomicU64::new(0);
static MREMAP: AtomicU64 = AtomicU64::new(0);
static MMAP_FAILED: AtomicU64 = AtomicU64::new(0);
static MUNMAP_FAILED: AtomicU64 = AtomicU64::new(0);
static MADVISE_FAILED: AtomicU64 = AtomicU64::new(0);

/// How many of each memory syscall this process's allocator has made, how many the kernel
/// refused, and the ranges whose unmap is still pending (see `unmap`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyscallCounts {
    pub mmap: u64,
    pub munmap: u64,
    pub madvise: u64,
    pub mremap: u64,
    pub mmap_failed: u64,
    pub munmap_failed: u64,
    pub madvise_failed: u64,
    /// Ranges whose `munmap` failed and that are still mapped (their pages given back),
    /// waiting for a later retry; and their bytes.
    pub unmap_pending: u64,
    pub unmap_pending_bytes: u64,
}

pub fn syscall_counts() -> SyscallCounts {
    SyscallCounts {
        mmap: MMAP.load(Relaxed),
        munmap: MUNMAP.load(Relaxed),
        madvise: MADVISE.load(Relaxed),
        mremap: MREMAP.load(Relaxed),
        mmap_failed: MMAP_FAILED.load(Relaxed),
        munmap_failed: MUNMAP_FAILED.load(Relaxed),
        madvise_failed: MADVISE_FAILED.load(Relaxed),
        unmap_pending: PENDING_RANGES.load(Relaxed),
        unmap_pending_bytes: PENDING_BYTES.load(Relaxed),
    }
}

#[inline]
/// Calls `f` with the address of each resident page of `[p, p + len)` (widened to whole
/// pages), asking the kernel with `mincore` 1024 pages at a time (no allocation). A part the
/// kernel refuses (not mapped) has no resident page.
pub fn for_each_resident_page(p: *const u8, len: usize, mut f: impl FnMut(usize)) {
    if len == 0 {
        return;
    }
    let mut at = p as usize & !(PAGE - 1);
    let end = round_up(p as usize + len, PAGE);
    let mut vec = [0u8; 1024];
    while at < end {
        let n = ((end - at) / PAGE).min(vec.len());
        // SAFETY: mincore only reads the page tables of `[at, at + n pages)` and writes one
        // byte per page into `vec`, which has room for `n`.
        let r = unsafe { libc::mincore(at as *mut libc::c_void, n * PAGE, vec.as_mut_ptr()) };
        if r == 0 {
            for (k, &b) in vec[..n].iter().enumerate() {
                if b & 1 != 0 {
                    f(at + k * PAGE);
                }
            }
        }
        at += n * PAGE;
    }
}

/// Resident bytes of `[p, p + len)`, in whole pages (see `for_each_resident_page`).
pub fn resident(p: *const u8, len: usize) -> usize {
    let mut n = 0;
    for_each_resident_page(p, len, |_| n += PAGE);
    n
}

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
        MMAP_FAILED.fetch_add(1, Relaxed);
        ptr::null_mut()
    } else {
        p as *mut u8
    }
}

/// Unmaps `[p, p + len)`. Never loses the range: when the kernel refuses (`ENOMEM`: the
/// unmap would split a mapping and the process is at `vm.max_map_count`), its pages are
/// given back at once with `MADV_DONTNEED` and the range waits on the pending list, to be
/// unmapped by a later call that succeeds (`retry_pending`). Both are counted.
///
/// # Safety
/// The range must be one this allocator mapped and nobody uses any more.
pub unsafe fn unmap(p: *mut u8, len: usize) {
    MUNMAP.fetch_add(1, Relaxed);
    // SAFETY: the caller guarantees the range is ours and dead.
    if unsafe { libc::munmap(p as *mut libc::c_void, len) } != 0 {
        // SAFETY: forwarded.
        return unsafe { unmap_failed(p, len) };
    }
    if !PENDING.load(Relaxed).is_null() {
        retry_pending();
    }
}

/// A range whose unmap failed: linked into the pending list through its own first bytes
/// (so the list needs no memory of its own and has no bound: one page of each pending
/// range stays resident for its link). `check` seals the other two with a per-process
/// random key: a stray write into a dead range (a use-after-free of a big block) must not
/// make a later retry unmap an address the writer chose.
#[repr(C)]
struct PendingRange {
    next: *mut PendingRange,
    len: usize,
    check: usize,
}

impl PendingRange {
    fn seal(at: *mut PendingRange, next: *mut PendingRange, len: usize) -> PendingRange {
        PendingRange {
            next,
            len,
            check: at as usize ^ next as usize ^ len.rotate_left(17) ^ pending_key(),
        }
    }
}

/// The key that seals pending ranges (random, chosen at the first refusal).
fn pending_key() -> usize {
    static KEY: AtomicUsize = AtomicUsize::new(0);
    let k = KEY.load(Relaxed);
    if k != 0 {
        return k;
    }
    let _ = KEY.compare_exchange(0, random_u64() as usize | 1, Relaxed, Relaxed);
    KEY.load(Relaxed)
}

/// The pending ranges, a lock-free stack (pushes by CAS; a retry takes the whole list).
static PENDING: AtomicPtr<PendingRange> = AtomicPtr::new(ptr::null_mut());
static PENDING_RANGES: AtomicU64 = AtomicU64::new(0);
static PENDING_BYTES: AtomicU64 = AtomicU64::new(0);

#[cold]
#[inline(never)]
unsafe fn unmap_failed(p: *mut u8, len: usize) {
    MUNMAP_FAILED.fetch_add(1, Relaxed);
    // The memory goes back now; only the address range waits (`madvise` splits nothing).
    // SAFETY: the range is ours and dead (the caller's guarantee for `unmap`).
    unsafe { advise(p, len, libc::MADV_DONTNEED) };
    PENDING_RANGES.fetch_add(1, Relaxed);
    PENDING_BYTES.fetch_add(len as u64, Relaxed);
    // SAFETY: as above; `len` is at least a page, room for the link.
    unsafe { push_pending(p as *mut PendingRange, len) };
}

/// Links the dead range `r` of `len` bytes into the pending list.
///
/// # Safety
/// `r` is a mapped, dead range of ours of at least `size_of::<PendingRange>()` bytes.
unsafe fn push_pending(r: *mut PendingRange, len: usize) {
    let mut head = PENDING.load(Relaxed);
    loop {
        // SAFETY: per the caller, the range's first bytes are ours to write.
        unsafe { r.write(PendingRange::seal(r, head, len)) };
        match PENDING.compare_exchange_weak(head, r, Release, Relaxed) {
            Ok(_) => return,
            Err(now) => head = now,
        }
    }
}

/// Unmaps the pending ranges now (called after an unmap that succeeded: mappings can be
/// split again). At the first refusal, it and the rest go back on the list for the next
/// try: a process stuck at the limit pays one failed call per unmap, not one per range.
#[cold]
#[inline(never)]
fn retry_pending() {
    let mut r = PENDING.swap(ptr::null_mut(), Acquire);
    let mut refused = false;
    while !r.is_null() {
        // SAFETY: a pending range is ours, mapped and dead; its link was written before it
        // was published (Release/Acquire), and only this taker reads it now.
        let seen = unsafe { r.read() };
        let PendingRange { next, len, .. } = seen;
        if seen.check != PendingRange::seal(r, next, len).check {
            const MSG: &[u8] =
                b"hakmem: munmap retry: a pending range was overwritten after it was freed\n";
            // SAFETY: a static message to fd 2 (this layer is below `diag`); then abort.
            unsafe {
                libc::write(2, MSG.as_ptr().cast(), MSG.len());
                libc::abort();
            }
        }
        if !refused {
            MUNMAP.fetch_add(1, Relaxed);
            // SAFETY: as above.
            if unsafe { libc::munmap(r as *mut libc::c_void, len) } == 0 {
                PENDING_RANGES.fetch_sub(1, Relaxed);
                PENDING_BYTES.fetch_sub(len as u64, Relaxed);
                r = next;
                continue;
            }
            MUNMAP_FAILED.fetch_add(1, Relaxed);
            refused = true;
        }
        // SAFETY: as above.
        unsafe { push_pending(r, len) };
        r = next;
    }
}

/// `madvise(p, len, advice)`; returns whether the kernel accepted it (a refusal is counted:
/// callers that need the pages back fall back to another advice or to unmapping).
///
/// # Safety
/// The range must be mapped by this allocator; with `MADV_DONTNEED` its contents are lost.
pub unsafe fn advise(p: *mut u8, len: usize, advice: libc::c_int) -> bool {
    MADVISE.fetch_add(1, Relaxed);
    // SAFETY: the caller guarantees the range is ours.
    let ok = unsafe { libc::madvise(p as *mut libc::c_void, len, advice) == 0 };
    if !ok {
        MADVISE_FAILED.fetch_add(1, Relaxed);
    }
    ok
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

/// 8 random bytes from the kernel (`getrandom`, not blocking); from the clock and the pid
/// if it has none to give (early boot, a seccomp filter).
pub fn random_u64() -> u64 {
    let mut v = 0u64;
    // SAFETY: `v` is a writable 8-byte buffer.
    let n = unsafe {
        libc::syscall(
            libc::SYS_getrandom,
            &mut v as *mut u64,
            8usize,
            libc::GRND_NONBLOCK,
        )
    };
    if n == 8 {
        return v;
    }
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() } as u64;
    (now_ns() ^ pid.rotate_left(32)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Where the next aligned mapping is asked for (0: not chosen yet). Asking at an aligned
/// address above the region libraries use usually gets an aligned mapping in one syscall
/// (mimalloc's trick). The first hint is random, a multiple of 4 MiB in the first half of
/// the region, chosen once per process: pool segments (and so every small block) would
/// otherwise lie at the same addresses in every run, which would let a use-after-free
/// writer forge the free-list links that are encoded with a block's address
/// (`pool::page::Block`), as ASLR keeps glibc's heap from being predictable.
static ALIGNED_HINT: AtomicUsize = AtomicUsize::new(0);
const HINT_START: usize = 0x1000_0000_0000; // 16 TiB
const HINT_END: usize = 0x3000_0000_0000; // 48 TiB
const HINT_GRAIN: usize = 4 << 20;

fn next_hint(len: usize) -> usize {
    if ALIGNED_HINT.load(Relaxed) == 0 {
        let slots = ((HINT_END - HINT_START) / 2 / HINT_GRAIN) as u64;
        let first = HINT_START + (random_u64() % slots) as usize * HINT_GRAIN;
        let _ = ALIGNED_HINT.compare_exchange(0, first, Relaxed, Relaxed);
    }
    ALIGNED_HINT.fetch_add(len, Relaxed)
}

/// Maps `len` bytes aligned to `align` (a power of two ≥ PAGE). Null on failure.
pub fn map_aligned(len: usize, align: usize) -> *mut u8 {
    if len.checked_add(align).is_none() {
        return ptr::null_mut();
    }
    let hint = next_hint(round_up(len, align));
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

/// In a fork child (one thread): no other thread is unwinding.
pub fn after_fork_in_child() {
    imp_backtrace::after_fork_in_child();
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

    pub fn after_fork_in_child() {
        BUSY.store(false, Ordering::Release);
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

    pub fn after_fork_in_child() {}
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

    /// An unmap that needs a split while the process is at `vm.max_map_count` is refused
    /// (ENOMEM). The range must not be lost: its pages go back at once, it waits on the
    /// pending list, and the next unmap that succeeds unmaps it. Run in a child process
    /// (this binary again): filling the map count would fail other tests' mappings.
    #[test]
    fn an_unmap_the_kernel_refuses_is_given_back_and_unmapped_later() {
        const CASE: &str = "HAKMEM_TEST_UNMAP_CHILD";
        if std::env::var_os(CASE).is_none() {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "os::tests::an_unmap_the_kernel_refuses_is_given_back_and_unmapped_later",
                ])
                .args(["--nocapture", "--test-threads=1"])
                .env(CASE, "1")
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success() && text.contains("1 passed"), "{text}");
            return;
        }
        let resident = |p: *mut u8, pages: usize| -> Option<usize> {
            let mut v = [0u8; 16];
            // SAFETY: `v` holds a byte per page asked for; mincore fails on unmapped memory.
            let r = unsafe { libc::mincore(p.cast(), pages * PAGE, v.as_mut_ptr()) };
            (r == 0).then(|| v[..pages].iter().filter(|&&b| b & 1 != 0).count())
        };
        let ours = map(0, 16 * PAGE);
        unsafe { ours.write_bytes(7, 16 * PAGE) };
        let middle = ours.wrapping_add(8 * PAGE);
        // Fill the map count: a reservation whose every other page is made readable.
        let slots = 80_000;
        // SAFETY: a fresh reservation of our own, nothing committed.
        let region = unsafe {
            libc::mmap(
                ptr::null_mut(),
                2 * slots * PAGE,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        } as *mut u8;
        assert!(region as *mut libc::c_void != libc::MAP_FAILED);
        let mut split = 0;
        // SAFETY: pages of our reservation.
        while split < slots
            && unsafe { libc::mprotect(region.add(2 * split * PAGE).cast(), PAGE, libc::PROT_READ) }
                == 0
        {
            split += 1;
        }
        let before = syscall_counts();
        // SAFETY: four pages of our mapping, in its middle: unmapping them splits it.
        unsafe { unmap(middle, 4 * PAGE) };
        let refused = syscall_counts();
        let pending_resident = resident(middle, 4);
        // Room again: the reservation goes; the next unmap succeeds and retries the range.
        // SAFETY: our reservation, unused.
        unsafe { libc::munmap(region.cast(), 2 * slots * PAGE) };
        // SAFETY: the first four pages of our mapping, dead.
        unsafe { unmap(ours, 4 * PAGE) };
        let retried = syscall_counts();
        assert!(split < slots, "the map count never filled ({split} splits)");
        assert_eq!(refused.munmap_failed, before.munmap_failed + 1);
        assert_eq!(
            (refused.unmap_pending, refused.unmap_pending_bytes),
            (1, 4 * PAGE as u64)
        );
        assert_eq!(
            pending_resident,
            Some(1),
            "given back but the page with the link"
        );
        assert_eq!((retried.unmap_pending, retried.unmap_pending_bytes), (0, 0));
        assert_eq!(
            resident(middle, 4),
            None,
            "the pending range is unmapped now"
        );
        assert_eq!(
            resident(ours.wrapping_add(12 * PAGE), 4),
            Some(4),
            "the rest stays"
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
