//! `GlobalAlloc`s, so a Rust program can say `#[global_allocator] static A: Hakmem`:
//! `Hakmem` serves the front chosen by `HAKMEM_FRONT` (default `auto`, with `HAKMEM_CHECK`
//! honoured); `AutoFront`, `PoolFront` and `ReuseFront` always use their own front (the
//! benches put them side by side).

use crate::config::{self, Front};
use crate::front::{self, api};
use crate::site::Site;
use core::alloc::{GlobalAlloc, Layout};

macro_rules! global_alloc {
    ($(#[$doc:meta])* $name:ident, front: $front:expr, free: |$p:ident| $free:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default)]
        pub struct $name;

        // SAFETY: blocks of at least `layout.size()` bytes aligned to `layout.align()`, or
        // null; valid until freed through the same front; nothing unwinds.
        unsafe impl GlobalAlloc for $name {
            #[inline(always)]
            unsafe fn alloc(&self, l: Layout) -> *mut u8 {
                front::alloc($front, l.size(), l.align(), Site::UNKNOWN, false)
            }
            #[inline(always)]
            unsafe fn dealloc(&self, $p: *mut u8, _l: Layout) {
                // SAFETY: `p` came from this allocator (GlobalAlloc contract).
                unsafe { $free }
            }
            #[inline]
            unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
                front::alloc($front, l.size(), l.align(), Site::UNKNOWN, true)
            }
            #[inline]
            unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
                // SAFETY: `p` is a live block of ours allocated with `l` (GlobalAlloc contract).
                unsafe { front::realloc_layout($front, p, l, new) }
            }
        }
    };
}

global_alloc!(
    /// The hakmem allocator as a Rust global allocator: the front `HAKMEM_FRONT` chose.
    Hakmem,
    front: config::get().front,
    free: |p| api::free(p)
);
global_alloc!(
    /// The default front (pool + learned big blocks), whatever `HAKMEM_FRONT` says.
    AutoFront,
    front: Front::Auto,
    free: |p| front::free(Front::Auto, p)
);
global_alloc!(
    /// The pool model alone, whatever `HAKMEM_FRONT` says.
    PoolFront,
    front: Front::Pool,
    free: |p| front::free(Front::Pool, p)
);
global_alloc!(
    /// The hakmem model for every size, whatever `HAKMEM_FRONT` says.
    ReuseFront,
    front: Front::Reuse,
    free: |p| front::free(Front::Reuse, p)
);
