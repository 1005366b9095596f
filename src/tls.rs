//! The one thread-local slot: this thread's pool heap.
//!
//! In a `cdylib`, `std`'s `thread_local!` costs a call to `__tls_get_addr` on every access
//! (see PITFALLS.md). On x86-64 Linux the slot is instead an 8-byte `.tbss` object read
//! through the initial-exec model: two instructions, in the preload library and in plain
//! executables alike. Elsewhere (and under Miri) `thread_local!` serves.

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
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux", not(miri))))]
mod imp {
    use super::Heap;
    use core::cell::Cell;

    std::thread_local! {
        static HEAP: Cell<*mut Heap> = const { Cell::new(core::ptr::null_mut()) };
    }

    #[inline(always)]
    pub fn heap() -> *mut Heap {
        HEAP.with(|h| h.get())
    }

    #[inline(always)]
    pub fn set_heap(h: *mut Heap) {
        HEAP.with(|c| c.set(h))
    }
}

pub use imp::{heap, set_heap};
