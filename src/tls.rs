//! The thread-local slots, at the bottom of the layers (they know no allocator type):
//! - `heap`: the thread's pool heap, type-erased (read on every fast path);
//! - `fast_heap`: the same heap where the C ABI's inline paths may use it, else null (one
//!   slot answers both "is there a heap" and "may the pool serve without questions");
//! - `exited`: whether the thread's exit destructor has already run (slow path only);
//! - `cache`: four words of per-thread cache for the reuse front (its learner decision and
//!   last call site), so the learner's per-thread state needs no heap;
//! - `last_alloc`: the sites mode's last block this thread allocated (a free of it before
//!   any other allocation is a *temporary* allocation, as heaptrack counts them).
//!
//! In a `cdylib`, `std`'s `thread_local!` goes through the general-dynamic TLS model: a
//! call to `__tls_get_addr` on every access, which may even allocate on a thread's first
//! access (see ARCHITECTURE.md, "Pitfalls"). On x86-64 Linux the slots are instead `.tbss`
//! objects read through the initial-exec model: two instructions, in the preload library
//! and in plain executables alike. Elsewhere (and under Miri) `thread_local!` serves.

/// Words in the `cache` slot.
pub const CACHE_WORDS: usize = 4;

#[cfg(all(target_arch = "x86_64", target_os = "linux", not(miri)))]
mod imp {
    use super::CACHE_WORDS;

    core::arch::global_asm!(
        ".pushsection .tbss,\"awT\",@nobits",
        ".p2align 3",
        ".globl __hakmem_rs_tls_heap",
        ".hidden __hakmem_rs_tls_heap",
        ".type __hakmem_rs_tls_heap, @object",
        ".size __hakmem_rs_tls_heap, 8",
        "__hakmem_rs_tls_heap:",
        ".zero 8",
        ".globl __hakmem_rs_tls_fast_heap",
        ".hidden __hakmem_rs_tls_fast_heap",
        ".type __hakmem_rs_tls_fast_heap, @object",
        ".size __hakmem_rs_tls_fast_heap, 8",
        "__hakmem_rs_tls_fast_heap:",
        ".zero 8",
        ".globl __hakmem_rs_tls_exited",
        ".hidden __hakmem_rs_tls_exited",
        ".type __hakmem_rs_tls_exited, @object",
        ".size __hakmem_rs_tls_exited, 8",
        "__hakmem_rs_tls_exited:",
        ".zero 8",
        ".globl __hakmem_rs_tls_last_alloc",
        ".hidden __hakmem_rs_tls_last_alloc",
        ".type __hakmem_rs_tls_last_alloc, @object",
        ".size __hakmem_rs_tls_last_alloc, 8",
        "__hakmem_rs_tls_last_alloc:",
        ".zero 8",
        ".globl __hakmem_rs_tls_cache",
        ".hidden __hakmem_rs_tls_cache",
        ".type __hakmem_rs_tls_cache, @object",
        ".size __hakmem_rs_tls_cache, 32",
        "__hakmem_rs_tls_cache:",
        ".zero 32",
        ".popsection",
    );

    #[inline(always)]
    pub fn heap() -> *mut () {
        let p: *mut ();
        // SAFETY: reads this thread's 8-byte slot at fs:[tpoff]; the slot exists in every
        // thread's static TLS block and is zero until set.
        unsafe {
            core::arch::asm!(
                "mov {p}, qword ptr [rip + __hakmem_rs_tls_heap@GOTTPOFF]",
                "mov {p}, qword ptr fs:[{p}]",
                p = out(reg) p,
                options(nostack, readonly, preserves_flags, pure),
            );
        }
        p
    }

    #[inline(always)]
    pub fn set_heap(h: *mut ()) {
        // SAFETY: writes this thread's own slot (see `heap`).
        unsafe {
            core::arch::asm!(
                "mov {o}, qword ptr [rip + __hakmem_rs_tls_heap@GOTTPOFF]",
                "mov qword ptr fs:[{o}], {h}",
                o = out(reg) _,
                h = in(reg) h,
                options(nostack, preserves_flags),
            );
        }
    }

    #[inline(always)]
    pub fn fast_heap() -> *mut () {
        let p: *mut ();
        // SAFETY: as `heap`, for the 8-byte fast-heap slot.
        unsafe {
            core::arch::asm!(
                "mov {p}, qword ptr [rip + __hakmem_rs_tls_fast_heap@GOTTPOFF]",
                "mov {p}, qword ptr fs:[{p}]",
                p = out(reg) p,
                options(nostack, readonly, preserves_flags, pure),
            );
        }
        p
    }

    #[inline(always)]
    pub fn set_fast_heap(h: *mut ()) {
        // SAFETY: writes this thread's own slot (see `heap`).
        unsafe {
            core::arch::asm!(
                "mov {o}, qword ptr [rip + __hakmem_rs_tls_fast_heap@GOTTPOFF]",
                "mov qword ptr fs:[{o}], {h}",
                o = out(reg) _,
                h = in(reg) h,
                options(nostack, preserves_flags),
            );
        }
    }

    #[inline]
    pub fn exited() -> bool {
        let v: usize;
        // SAFETY: reads this thread's 8-byte exit flag, as `heap` reads its slot.
        unsafe {
            core::arch::asm!(
                "mov {v}, qword ptr [rip + __hakmem_rs_tls_exited@GOTTPOFF]",
                "mov {v}, qword ptr fs:[{v}]",
                v = out(reg) v,
                options(nostack, readonly, preserves_flags),
            );
        }
        v != 0
    }

    #[inline]
    pub fn set_exited() {
        // SAFETY: writes this thread's own exit flag.
        unsafe {
            core::arch::asm!(
                "mov {o}, qword ptr [rip + __hakmem_rs_tls_exited@GOTTPOFF]",
                "mov qword ptr fs:[{o}], 1",
                o = out(reg) _,
                options(nostack, preserves_flags),
            );
        }
    }

    #[inline]
    pub fn last_alloc() -> usize {
        let v: usize;
        // SAFETY: reads this thread's 8-byte slot, as `heap` reads its slot.
        unsafe {
            core::arch::asm!(
                "mov {v}, qword ptr [rip + __hakmem_rs_tls_last_alloc@GOTTPOFF]",
                "mov {v}, qword ptr fs:[{v}]",
                v = out(reg) v,
                options(nostack, readonly, preserves_flags),
            );
        }
        v
    }

    #[inline]
    pub fn set_last_alloc(p: usize) {
        // SAFETY: writes this thread's own slot (see `heap`).
        unsafe {
            core::arch::asm!(
                "mov {o}, qword ptr [rip + __hakmem_rs_tls_last_alloc@GOTTPOFF]",
                "mov qword ptr fs:[{o}], {p}",
                o = out(reg) _,
                p = in(reg) p,
                options(nostack, preserves_flags),
            );
        }
    }

    #[inline(always)]
    pub fn cache() -> *mut [usize; CACHE_WORDS] {
        let p: *mut [usize; CACHE_WORDS];
        // SAFETY: the thread pointer (fs:[0] on x86-64 Linux) plus the slot's offset is
        // this thread's 32-byte cache slot.
        unsafe {
            core::arch::asm!(
                "mov {p}, qword ptr [rip + __hakmem_rs_tls_cache@GOTTPOFF]",
                "add {p}, qword ptr fs:[0]",
                p = out(reg) p,
                options(nostack, readonly, pure),
            );
        }
        p
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux", not(miri))))]
mod imp {
    use super::CACHE_WORDS;
    use core::cell::{Cell, UnsafeCell};

    std::thread_local! {
        static HEAP: Cell<*mut ()> = const { Cell::new(core::ptr::null_mut()) };
        static FAST_HEAP: Cell<*mut ()> = const { Cell::new(core::ptr::null_mut()) };
        static EXITED: Cell<bool> = const { Cell::new(false) };
        static LAST_ALLOC: Cell<usize> = const { Cell::new(0) };
        static CACHE: UnsafeCell<[usize; CACHE_WORDS]> = const { UnsafeCell::new([0; CACHE_WORDS]) };
    }

    #[inline(always)]
    pub fn heap() -> *mut () {
        HEAP.with(|h| h.get())
    }

    #[inline(always)]
    pub fn set_heap(h: *mut ()) {
        HEAP.with(|c| c.set(h))
    }

    #[inline(always)]
    pub fn fast_heap() -> *mut () {
        FAST_HEAP.with(|h| h.get())
    }

    #[inline(always)]
    pub fn set_fast_heap(h: *mut ()) {
        FAST_HEAP.with(|c| c.set(h))
    }

    pub fn exited() -> bool {
        EXITED.with(|c| c.get())
    }

    pub fn set_exited() {
        EXITED.with(|c| c.set(true))
    }

    pub fn last_alloc() -> usize {
        LAST_ALLOC.with(|c| c.get())
    }

    pub fn set_last_alloc(p: usize) {
        LAST_ALLOC.with(|c| c.set(p))
    }

    #[inline(always)]
    pub fn cache() -> *mut [usize; CACHE_WORDS] {
        CACHE.with(|c| c.get())
    }
}

/// `heap()`: this thread's heap slot (null: none yet, or parked at exit); `fast_heap()`:
/// the same heap, or null where the C ABI's inline paths must not use it; `exited()`:
/// whether the thread's exit destructor has run (a heap attached after that is a "late"
/// heap); `cache()`: this thread's cache words (zero until written); `last_alloc()`: the
/// sites mode's last block allocated by this thread (0: none).
pub(crate) use imp::{
    cache, exited, fast_heap, heap, last_alloc, set_exited, set_fast_heap, set_heap, set_last_alloc,
};
