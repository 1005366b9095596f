//! Layer 7 (front): routing between the pool and big blocks, and the public Rust API.
//! Requests up to `POOL_MAX` with alignment up to 16 go to the pool's fast path; bigger
//! ones (or over-aligned ones no pool size class can honour) are big blocks. `free`
//! routes by address: the segment map says pool, anything else must be a big block.

use crate::pool::segment;
use crate::site::Site;
use crate::size_class::{bin_for_aligned, POOL_MAX};
use crate::{big, diag, pool};
use core::alloc::Layout;
use core::ptr;

/// Every block is at least this aligned.
pub const MIN_ALIGN: usize = 16;

/// `malloc`: `size` bytes, 16-byte aligned; `size == 0` gives a unique minimum block.
/// Null when out of memory.
#[inline(always)]
pub fn malloc(size: usize) -> *mut u8 {
    if size <= POOL_MAX {
        // SAFETY: size is in the pool's range.
        unsafe { pool::alloc(size) }
    } else {
        big::alloc(size, MIN_ALIGN, Site::UNKNOWN.0)
    }
}

/// `size` bytes aligned to `align` (a power of two). Null when out of memory.
#[inline]
pub fn malloc_aligned(size: usize, align: usize, site: Site) -> *mut u8 {
    if align <= MIN_ALIGN {
        if size <= POOL_MAX {
            // SAFETY: size is in the pool's range.
            return unsafe { pool::alloc(size) };
        }
        return big::alloc(size, MIN_ALIGN, site.0);
    }
    malloc_overaligned(size, align, site)
}

#[cold]
fn malloc_overaligned(size: usize, align: usize, site: Site) -> *mut u8 {
    match bin_for_aligned(size, align) {
        // SAFETY: bin_for_aligned returns a valid bin.
        Some(bin) => unsafe { pool::alloc_bin(bin) },
        None => big::alloc(size, align, site.0),
    }
}

/// Zeroed memory for `n * m` bytes; null (no allocation) if the product overflows.
pub fn calloc(n: usize, m: usize) -> *mut u8 {
    let Some(size) = n.checked_mul(m) else {
        return ptr::null_mut();
    };
    if size <= POOL_MAX {
        // SAFETY: size is in the pool's range.
        let p = unsafe { pool::alloc(size) };
        if !p.is_null() {
            // SAFETY: the block holds at least `size` bytes.
            unsafe { ptr::write_bytes(p, 0, size) };
        }
        p
    } else {
        big::alloc(size, MIN_ALIGN, Site::UNKNOWN.0) // fresh mappings are already zero
    }
}

/// `free`: null does nothing; a pointer that is not a live block of ours aborts.
///
/// # Safety
/// `p` must be null or a block from this allocator, not used afterwards.
#[inline(always)]
pub unsafe fn free(p: *mut u8) {
    if segment::is_pool(p) {
        // SAFETY: the segment map says `p` lies in a pool segment.
        unsafe { pool::free(p) }
    } else if !p.is_null() {
        // SAFETY: forwarded; big::free verifies ownership before touching anything.
        unsafe { big::free(p) }
    }
}

/// Usable bytes of block `p` (0 for null).
///
/// # Safety
/// `p` must be null or a live block of this allocator.
pub unsafe fn usable_size(p: *mut u8) -> usize {
    if p.is_null() {
        0
    } else if segment::is_pool(p) {
        // SAFETY: `p` lies in a pool segment.
        unsafe { pool::usable_size(p) }
    } else {
        big::usable_size(p)
    }
}

/// `realloc`: null `p` allocates; otherwise the contents up to the smaller size move
/// to a block of `new` bytes (in place where possible). Null when out of memory, with `p`
/// left untouched. `new == 0` is served as a minimum block (the C ABI frees instead).
///
/// # Safety
/// `p` must be null or a live block of this allocator.
pub unsafe fn realloc(p: *mut u8, new: usize) -> *mut u8 {
    if p.is_null() {
        return malloc(new);
    }
    if segment::is_pool(p) {
        // SAFETY: `p` lies in a pool segment.
        let usable = unsafe { pool::usable_size(p) };
        if new <= usable && new >= usable / 2 {
            return p; // fits, and does not waste more than half the block
        }
        let q = malloc(new);
        if !q.is_null() {
            // SAFETY: both blocks are live and distinct; each holds the copied bytes.
            unsafe {
                ptr::copy_nonoverlapping(p, q, usable.min(new));
                pool::free(p);
            }
        }
        return q;
    }
    if !crate::registry::contains(p) {
        diag::fatal_pointer("realloc", p, "not allocated by hakmem, or already freed");
    }
    if new > POOL_MAX {
        // SAFETY: `p` is a live big block.
        return unsafe { big::realloc(p, new) };
    }
    let q = malloc(new);
    if !q.is_null() {
        // SAFETY: `p` is live with at least `new` usable bytes (> POOL_MAX >= new).
        unsafe {
            ptr::copy_nonoverlapping(p, q, new);
            big::free(p);
        }
    }
    q
}

/// Allocates for `layout` on behalf of call site `site`. Null when out of memory.
#[inline]
pub fn alloc_at(layout: Layout, site: Site) -> *mut u8 {
    malloc_aligned(layout.size(), layout.align(), site)
}

/// Frees a block from `alloc_at`.
///
/// # Safety
/// `p` must come from `alloc_at` (or any allocation of this allocator) and be live.
#[inline]
pub unsafe fn free_at(p: *mut u8, _layout: Layout) {
    // SAFETY: forwarded.
    unsafe { free(p) }
}
