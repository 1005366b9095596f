//! Layer 8: `GlobalAlloc`, so a Rust program can say `#[global_allocator] static A: Hakmem`.
//! Uses the front chosen by `HAKMEM_FRONT` (default `auto`).

use crate::config;
use crate::front;
use crate::site::Site;
use core::alloc::{GlobalAlloc, Layout};

/// The hakmem allocator as a Rust global allocator.
#[derive(Clone, Copy, Debug, Default)]
pub struct Hakmem;

// SAFETY: every method returns blocks of at least `layout.size()` bytes aligned to
// `layout.align()`, or null; blocks stay valid until freed; nothing unwinds.
unsafe impl GlobalAlloc for Hakmem {
    #[inline(always)]
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        front::alloc(
            config::get().front,
            l.size(),
            l.align(),
            Site::UNKNOWN,
            false,
        )
    }

    #[inline(always)]
    unsafe fn dealloc(&self, p: *mut u8, _l: Layout) {
        // SAFETY: `p` came from this allocator (GlobalAlloc contract).
        unsafe { crate::api::free(p) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        front::alloc(
            config::get().front,
            l.size(),
            l.align(),
            Site::UNKNOWN,
            true,
        )
    }

    #[inline]
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        // SAFETY: `p` is a live block of ours allocated with `l` (GlobalAlloc contract).
        unsafe { front::realloc_layout(config::get().front, p, l, new) }
    }
}
