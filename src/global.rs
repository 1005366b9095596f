//! Layer 8: `GlobalAlloc`, so a Rust program can say `#[global_allocator] static A: Hakmem`.

use crate::api::{self, MIN_ALIGN};
use crate::site::Site;
use crate::size_class::POOL_MAX;
use core::alloc::{GlobalAlloc, Layout};
use core::ptr;

/// The hakmem allocator as a Rust global allocator.
#[derive(Clone, Copy, Debug, Default)]
pub struct Hakmem;

// SAFETY: every method returns blocks of at least `layout.size()` bytes aligned to
// `layout.align()`, or null; blocks stay valid until freed; nothing unwinds.
unsafe impl GlobalAlloc for Hakmem {
    #[inline(always)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() <= POOL_MAX && layout.align() <= MIN_ALIGN {
            // SAFETY: size in the pool's range.
            unsafe { crate::pool::alloc(layout.size()) }
        } else {
            api::malloc_aligned(layout.size(), layout.align(), Site::UNKNOWN)
        }
    }

    #[inline(always)]
    unsafe fn dealloc(&self, p: *mut u8, _layout: Layout) {
        // SAFETY: `p` came from this allocator (GlobalAlloc contract).
        unsafe { api::free(p) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= MIN_ALIGN {
            return api::calloc(1, layout.size());
        }
        // SAFETY: forwarded contract.
        let p = unsafe { self.alloc(layout) };
        if !p.is_null() {
            // SAFETY: the block holds `layout.size()` bytes.
            unsafe { ptr::write_bytes(p, 0, layout.size()) };
        }
        p
    }

    #[inline]
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= MIN_ALIGN {
            // SAFETY: `p` is a live block of ours (GlobalAlloc contract).
            return unsafe { api::realloc(p, new_size) };
        }
        // Over-aligned: keep the alignment by allocating anew.
        // SAFETY: the new layout is valid per the GlobalAlloc contract.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: as above.
        let q = unsafe { self.alloc(new_layout) };
        if !q.is_null() {
            // SAFETY: both blocks are live and distinct and hold the copied bytes.
            unsafe {
                ptr::copy_nonoverlapping(p, q, layout.size().min(new_size));
                api::free(p);
            }
        }
        q
    }
}
