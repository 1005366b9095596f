//! The public allocation API over the configured front end (`HAKMEM_FRONT`, default
//! `auto`): what `Hakmem` (GlobalAlloc), the C ABI and `alloc_at` call. Each entry reads
//! the configuration once.

use crate::config;
use crate::front::{self, census};
use crate::site::Site;
use core::alloc::Layout;
use core::panic::Location;
use core::ptr;

pub use crate::front::MIN_ALIGN;

/// `malloc`: `size` bytes, 16-byte aligned; `size == 0` gives a unique minimum block.
#[inline(always)]
pub fn malloc(size: usize) -> *mut u8 {
    malloc_at(size, Site::UNKNOWN)
}

#[inline(always)]
pub fn malloc_at(size: usize, site: Site) -> *mut u8 {
    alloc_checked(size, MIN_ALIGN, site, false)
}

/// `size` bytes aligned to `align` (a power of two). Null when out of memory.
#[inline]
pub fn malloc_aligned(size: usize, align: usize, site: Site) -> *mut u8 {
    alloc_checked(size, align, site, false)
}

/// Zeroed memory for `n * m` bytes; null (no allocation) if the product overflows.
pub fn calloc_at(n: usize, m: usize, site: Site) -> *mut u8 {
    match n.checked_mul(m) {
        Some(size) => alloc_checked(size, MIN_ALIGN, site, true),
        None => ptr::null_mut(),
    }
}

/// An allocation through the configured front; in the checked mode (`HAKMEM_CHECK=1`)
/// the free-list link it followed is checked exactly (`after_alloc`).
#[inline(always)]
fn alloc_checked(size: usize, align: usize, site: Site, zero: bool) -> *mut u8 {
    let c = config::get();
    let p = front::alloc(c.front, size, align, site, zero);
    if c.check {
        // SAFETY: a block just allocated here, not yet returned.
        unsafe { after_alloc(p) };
    }
    p
}

/// The checked mode's work on a block just allocated, before the program sees it: the
/// link its pop followed must lead to null or a block start of the same page
/// (`pool::free::check_popped`; the default check bounds it to the page's 1 MiB region),
/// and its freed mark goes (`pool::free::forget_freed`). Every C-ABI allocation runs it in
/// the checked mode (whose `malloc` always takes this path).
///
/// # Safety
/// `p` is null or a block this thread just allocated, not yet handed to the program.
#[cold]
#[inline(never)]
pub unsafe fn after_alloc(p: *mut u8) {
    use crate::pool::free;
    // SAFETY: per the caller.
    unsafe {
        free::check_popped(p);
        if config::get().front != config::Front::Reuse {
            free::forget_freed(p); // (the reuse front's blocks carry a header instead)
        }
    }
}

pub fn calloc(n: usize, m: usize) -> *mut u8 {
    calloc_at(n, m, Site::UNKNOWN)
}

/// `free`: null does nothing; a pointer that is not a live block of ours aborts.
///
/// # Safety
/// `p` must be null or a block from this allocator, not used afterwards.
#[inline(always)]
pub unsafe fn free(p: *mut u8) {
    // One read of the configuration for both questions (the C ABI's hot path).
    let c = config::get();
    if c.check {
        // SAFETY: forwarded.
        return unsafe { front::free_checked(c.front, p) };
    }
    // SAFETY: forwarded.
    unsafe { front::free(c.front, p) }
}

/// Usable bytes of block `p` (0 for null).
///
/// # Safety
/// `p` must be null or a live block of this allocator.
pub unsafe fn usable_size(p: *mut u8) -> usize {
    // SAFETY: forwarded.
    unsafe { front::usable_size(config::get().front, p) }
}

/// `realloc`: null `p` allocates; otherwise the contents up to the smaller size move to a
/// block of `new` bytes (in place where possible). Null when out of memory, `p` untouched.
/// `new == 0` is served as a minimum block (the C ABI frees instead).
///
/// # Safety
/// `p` must be null or a live block of this allocator.
pub unsafe fn realloc_at(p: *mut u8, new: usize, site: Site) -> *mut u8 {
    let c = config::get();
    // SAFETY: forwarded.
    let q = unsafe { front::realloc(c.front, p, new, site) };
    if c.check && q != p {
        // The link check only: `q` holds the program's bytes already.
        // SAFETY: `q` is null or a block this thread just allocated.
        unsafe { crate::pool::free::check_popped(q) };
    }
    q
}

/// # Safety
/// As `realloc_at`.
pub unsafe fn realloc(p: *mut u8, new: usize) -> *mut u8 {
    // SAFETY: forwarded.
    unsafe { realloc_at(p, new, Site::UNKNOWN) }
}

/// Allocates for `layout` on behalf of call site `site`. Null when out of memory. In the
/// sites mode the site is named by the source location that called `alloc_at`.
#[inline]
#[track_caller]
pub fn alloc_at(layout: Layout, site: Site) -> *mut u8 {
    let c = config::get();
    let p = front::alloc(c.front, layout.size(), layout.align(), site, false);
    if c.check {
        // SAFETY: a block just allocated here, not yet returned.
        unsafe { after_alloc(p) };
    }
    if c.sites {
        census::record_located(site, Location::caller(), layout.size(), p);
    }
    p
}

/// Frees a block from `alloc_at`.
///
/// # Safety
/// `p` must come from this allocator and be live.
#[inline]
pub unsafe fn free_at(p: *mut u8, _layout: Layout) {
    if config::get().sites {
        // SAFETY: forwarded.
        unsafe { census::record_free(p) };
    }
    // SAFETY: forwarded.
    unsafe { free(p) }
}
