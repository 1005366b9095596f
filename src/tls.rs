//! The thread-local slots: this thread's pool heap (read on every fast path), and a flag
//! saying that the thread's exit destructor has already run (read on the slow path only).
//!
//! In a `cdylib`, `std`'s `thread_local!` goes through the general-dynamic TLS model: a
//! call to `__tls_get_addr` on every access, which may even allocate on a thread's first
//! access (see ARCHITECTURE.md, "Pitfalls"). On x86-64 Linux the slots are instead `.tbss`
//! objects read through the initial-exec model: two instructions, in the preload library
//! and in plain executables alike. Elsewhere (and under Miri) `thread_local!` serves.

use crate::pool::heap::Heap;

#[cfg(all(target_arch = "x86_64", target_os = "linux", not(miri)))]
mod imp {
    use super::Heap;

    core::arch::global_asm!(
        ".pushsection .tbss,\"awT\",@nobits",
        ".p2align 3",
        ".globl __hakmem_rs_tls_heap",
        ".hidden __hakmem_rs_tls_heap",
        ".type __hakmem_rs_tls_heap, @object",
        ".size __hakmem_rs_tls_heap, 8",
        "__hakmem_rs_tls_heap:",
        ".zero 8",
        ".globl __hakmem_rs_tls_exited",
        ".hidden __hakmem_rs_tls_exited",
        ".type __hakmem_rs_tls_exited, @object",
        ".size __hakmem_rs_tls_exited, 8",
        "__hakmem_rs_tls_exited:",
        ".zero 8",
        ".popsection",
    );

    #[inline(always)]
    pub fn heap() -> *mut Heap {
        let p: *mut Heap;
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
    pub fn set_heap(h: *mut Heap) {
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
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux", not(miri))))]
mod imp {
    use super::Heap;
    use core::cell::Cell;

    std::thread_local! {
        static HEAP: Cell<*mut Heap> = const { Cell::new(core::ptr::null_mut()) };
        static EXITED: Cell<bool> = const { Cell::new(false) };
    }

    #[inline(always)]
    pub fn heap() -> *mut Heap {
        HEAP.with(|h| h.get())
    }

    #[inline(always)]
    pub fn set_heap(h: *mut Heap) {
        HEAP.with(|c| c.set(h))
    }

    pub fn exited() -> bool {
        EXITED.with(|c| c.get())
    }

    pub fn set_exited() {
        EXITED.with(|c| c.set(true))
    }
}

/// `heap()`: this thread's heap (null: none yet, or parked at exit); `exited()`: whether
/// the thread's exit destructor has run (a heap attached after that is a "late" heap).
pub use imp::{exited, heap, set_exited, set_heap};
