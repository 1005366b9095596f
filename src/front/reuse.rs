//! The reuse front end: the hakmem model exactly as the original ran it, for every size,
//! so that its cost can be measured step by step against the pool front:
//!
//! 1. call-site hash → site table entry;
//! 2. learner selection → threshold;
//! 3. BigCache lookup (big sizes);
//! 4. the block: a pool block with room for the header (small), or a big block;
//! 5. header write; on free, header read and magic check route the block back.

use crate::header::{AllocHeader, Method, State, HEADER_SIZE, MAGIC};
use crate::learn;
use crate::pool::segment;
use crate::site::Site;
use crate::size_class::POOL_MAX;
use crate::{big, diag, pool, track};
use core::ptr;

/// Largest request served from a pool block (the header takes 32 bytes of it).
pub const SMALL_MAX: usize = POOL_MAX - HEADER_SIZE;

/// Allocates `size` bytes for `site` (alignment up to 16). Null when out of memory.
#[inline(always)]
pub fn alloc(size: usize, site: Site) -> *mut u8 {
    if size > SMALL_MAX {
        return alloc_big(size, site);
    }
    let slot = learn::site_slot(site); // 1. site hash (per-thread one-entry cache)
    let threshold = learn::decide_small(slot, size); // 2. learner (per-thread copy)
    if size >= threshold {
        // 3. at or above the threshold (UCB1's arms start at 64 KiB): the map path, which
        // tries the BigCache first.
        return alloc_big(size, site);
    }
    // 4. a pool block with the header in front
    // SAFETY: size + 32 <= POOL_MAX.
    let block = unsafe { pool::alloc(size + HEADER_SIZE) };
    if block.is_null() {
        return block;
    }
    let user = block.wrapping_add(HEADER_SIZE);
    // SAFETY: the block holds header + size bytes. 5. the header
    unsafe {
        AllocHeader::write(
            user,
            AllocHeader::new(Method::Pool, site.0, HEADER_SIZE, size, size + HEADER_SIZE),
        )
    };
    track::malloc_like(user, size, false);
    track::no_access(block, HEADER_SIZE);
    user
}

#[cold]
#[inline(never)]
fn alloc_big(size: usize, site: Site) -> *mut u8 {
    big::alloc_learned(size, 16, site, false)
}

/// Over-aligned requests: a big block (its header sits right before the aligned pointer).
pub fn alloc_aligned(size: usize, align: usize, site: Site) -> *mut u8 {
    if align <= 16 {
        alloc(size, site)
    } else {
        big::alloc_learned(size, align, site, false)
    }
}

/// Frees a reuse-front block: header read, magic check, route by method.
///
/// # Safety
/// `p` must be null or a block of the reuse front, not used afterwards.
#[inline(always)]
pub unsafe fn free(p: *mut u8) {
    if !segment::is_pool(p) || !segment::in_block_area(p) {
        // SAFETY: forwarded.
        return unsafe { free_other(p) };
    }
    // SAFETY: `p` lies past page 0 of a pool segment, so the 32 bytes before it are ours.
    let h = unsafe { &mut *AllocHeader::of(p) };
    if h.magic != MAGIC || h.method != Method::Pool || h.state != State::Live {
        diag::fatal_pointer(
            "free",
            p,
            "no live hakmem header (not allocated by hakmem, or already freed)",
        );
    }
    h.state = State::Freed;
    track::free_like(p);
    // SAFETY: the block starts at the header.
    unsafe { pool::free(p.wrapping_sub(HEADER_SIZE)) };
}

/// Null, big blocks, and pointers into a segment's header page.
#[cold]
#[inline(never)]
unsafe fn free_other(p: *mut u8) {
    if p.is_null() {
        return;
    }
    if segment::is_pool(p) {
        diag::fatal_pointer("free", p, "points into a segment header");
    }
    // SAFETY: big::free proves ownership before touching anything.
    unsafe { big::free(p) }
}

/// Usable bytes of reuse-front block `p`.
///
/// # Safety
/// `p` must be null or a live reuse-front block.
pub unsafe fn usable_size(p: *mut u8) -> usize {
    if p.is_null() {
        0
    } else if segment::is_pool(p) {
        // SAFETY: a pool block with its header in front.
        unsafe { pool::usable_size(p.wrapping_sub(HEADER_SIZE)) - HEADER_SIZE }
    } else {
        big::usable_size(p)
    }
}

/// `realloc` for the reuse front: a new block and a copy (big blocks use `mremap`).
///
/// # Safety
/// `p` must be null or a live reuse-front block.
pub unsafe fn realloc(p: *mut u8, new: usize, site: Site) -> *mut u8 {
    if p.is_null() {
        return alloc(new, site);
    }
    if !segment::is_pool(p) && new > SMALL_MAX {
        // SAFETY: forwarded.
        return unsafe { big::realloc(p, new) };
    }
    let old = if segment::is_pool(p) {
        // SAFETY: a pool block with its header in front.
        unsafe { usable_size(p) }
    } else {
        big::checked_usable_size("realloc", p)
    };
    let q = alloc(new, site);
    if !q.is_null() {
        // SAFETY: both blocks live and distinct.
        unsafe {
            ptr::copy_nonoverlapping(p, q, old.min(new));
            free(p);
        }
    }
    q
}
