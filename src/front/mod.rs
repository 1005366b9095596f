//! The front ends (policy, over the pool, big-block and learning mechanisms). Each is
//! complete and honest on its own:
//!
//! - `auto` (default): the pool for small and medium sizes; big blocks through the learned
//!   threshold and the BigCache (`learned`). The small path never meets the learner.
//! - `pool`: the pool model alone; big blocks plainly mapped and released.
//! - `reuse`: the hakmem model for every size (`reuse.rs`).
//!
//! `api` serves the front chosen by `HAKMEM_FRONT` (what the C ABI and `Hakmem` call);
//! `cpath` is the C ABI's inline fast path in front of it;
//! `global` puts each front behind a `GlobalAlloc`.

pub mod api;
pub mod census;
pub mod cpath;
mod learned;
mod resize;
pub mod reuse;
mod small;

pub use crate::size_class::MIN_ALIGN;

use crate::config::Front;
use crate::pool::segment;
use crate::site::Site;
use crate::size_class::{bin_for_aligned, POOL_MAX};
use crate::{big, init, pool, track};
use core::alloc::Layout;
use core::ptr;

/// Allocates through `front`. Null when out of memory (after giving back what the
/// allocator kept for reuse and trying once more: `big::or_after_releasing`).
#[inline(always)]
pub fn alloc(front: Front, size: usize, align: usize, site: Site, zero: bool) -> *mut u8 {
    if front == Front::Reuse && align <= MIN_ALIGN && !zero {
        return reuse::alloc(size, site);
    }
    if front != Front::Reuse && size <= POOL_MAX && align <= MIN_ALIGN {
        let p = small::alloc(size);
        if !p.is_null() {
            track::malloc_like(p, size, false);
            if zero {
                // SAFETY: the block holds `size` bytes.
                unsafe { ptr::write_bytes(p, 0, size) };
            }
        }
        return p;
    }
    alloc_slow(front, size, align, site, zero)
}

#[cold]
fn alloc_slow(front: Front, size: usize, align: usize, site: Site, zero: bool) -> *mut u8 {
    // A process whose first allocations are big blocks has attached no heap yet: set the
    // process up (fork handlers) here too.
    init::ensure();
    let p = match front {
        Front::Reuse => reuse::alloc_aligned(size, align, site),
        _ => match bin_for_aligned(size, align) {
            Some(bin) if align > MIN_ALIGN => {
                let p = small::alloc_bin(bin);
                if !p.is_null() {
                    track::malloc_like(p, size, false);
                }
                p
            }
            _ if front == Front::Auto => return learned::alloc(size, align, site, zero),
            _ => {
                let p = big::alloc(size, align, site.0); // fresh: already zero
                return big::or_after_releasing(p, || big::alloc(size, align, site.0));
            }
        },
    };
    if zero && !p.is_null() {
        // SAFETY: the block holds `size` bytes.
        unsafe { ptr::write_bytes(p, 0, size) };
    }
    p
}

/// Frees through `front`.
///
/// # Safety
/// `p` must be null or a live block of `front`.
#[inline(always)]
pub unsafe fn free(front: Front, p: *mut u8) {
    if front == Front::Reuse {
        // SAFETY: forwarded.
        return unsafe { reuse::free(p) };
    }
    if segment::is_pool(p) {
        track::free_like(p);
        // SAFETY: the segment map says `p` lies in a pool segment.
        unsafe { pool::free(p) }
    } else if !p.is_null() {
        // SAFETY: forwarded; big::free proves ownership before touching anything.
        unsafe { big::free(p) }
    }
}

/// `free` with the checked mode's validation first (`HAKMEM_CHECK=1`): a pool block must
/// be a block start in a page in use and not already free; big blocks are always checked.
///
/// # Safety
/// As `free`; a pointer that fails a check aborts instead of being freed.
#[cold]
#[inline(never)]
pub unsafe fn free_checked(front: Front, p: *mut u8) {
    if front != Front::Reuse && segment::is_pool(p) {
        // SAFETY: the segment map says `p` lies in a live pool segment.
        unsafe { pool::free::check_free(p) };
    }
    // SAFETY: forwarded.
    unsafe { free(front, p) }
}

/// Usable bytes of `p` (0 for null).
///
/// # Safety
/// `p` must be null or a live block of `front`.
pub unsafe fn usable_size(front: Front, p: *mut u8) -> usize {
    if front == Front::Reuse {
        // SAFETY: forwarded.
        return unsafe { reuse::usable_size(p) };
    }
    if p.is_null() {
        0
    } else if segment::is_pool(p) {
        // SAFETY: `p` lies in a pool segment.
        unsafe { pool::usable_size(p) }
    } else {
        big::usable_size(p)
    }
}

/// `realloc` through `front` (default alignment). Null when out of memory, `p` untouched.
///
/// # Safety
/// `p` must be null or a live block of `front`.
pub unsafe fn realloc(front: Front, p: *mut u8, new: usize, site: Site) -> *mut u8 {
    if front == Front::Reuse {
        // SAFETY: forwarded.
        return unsafe { reuse::realloc(p, new, site) };
    }
    if p.is_null() {
        return alloc(front, new, MIN_ALIGN, site, false);
    }
    let old = if segment::is_pool(p) {
        // SAFETY: `p` lies in a pool segment.
        let usable = unsafe { pool::usable_size(p) };
        if new <= usable && new >= usable / 2 {
            // Fits, and wastes at most half the block. (memcheck: the block's new size.)
            track::free_like(p);
            track::malloc_like(p, new, true);
            return p;
        }
        usable
    } else {
        // SAFETY: not a pool block, so a big block (checked inside).
        match unsafe { resize::big_in_place(p, new, POOL_MAX) } {
            Ok(q) => return q,
            Err(old) => old,
        }
    };
    // SAFETY: `p` is live with `old` usable bytes; the new block is distinct.
    unsafe {
        resize::by_copy(
            p,
            old,
            new,
            || alloc(front, new, MIN_ALIGN, site, false),
            |b| free(front, b),
        )
    }
}

/// `GlobalAlloc::realloc` for any front: over-aligned blocks move to a new aligned block.
///
/// # Safety
/// `p` must be a live block of `front` allocated with `l`.
pub unsafe fn realloc_layout(front: Front, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
    if l.align() <= MIN_ALIGN {
        // SAFETY: forwarded.
        return unsafe { realloc(front, p, new, Site::UNKNOWN) };
    }
    // SAFETY: `p` is live and holds at least `l.size()` bytes; the new block is distinct.
    unsafe {
        resize::by_copy(
            p,
            l.size(),
            new,
            || alloc(front, new, l.align(), Site::UNKNOWN, false),
            |b| free(front, b),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::big::registry;
    use crate::header::{AllocHeader, Method};

    /// Each front sends each size where its design says, and takes it back the same way.
    #[test]
    fn each_front_dispatches_sizes_to_the_pool_or_to_big_blocks() {
        let site = Site::here();
        for (front, size, align, pooled) in [
            (Front::Auto, 64, 16, true),
            (Front::Auto, 200 << 10, 16, true),
            (Front::Auto, 3 << 20, 16, false),
            (Front::Auto, 100, 4096, true), // an aligned pool class
            (Front::Pool, 3 << 20, 16, false),
            (Front::Reuse, 64, 16, true),
            (Front::Reuse, 3 << 20, 16, false),
            // Small over-aligned blocks: pool blocks in every front (a mapping each, before).
            (Front::Reuse, 48, 64, true),
            (Front::Reuse, 100, 4096, true),
            (Front::Reuse, 255 << 10, 4096, false), // + the alignment: over the pool's range
        ] {
            let p = alloc(front, size, align, site, false);
            assert!(
                !p.is_null() && (p as usize).is_multiple_of(align),
                "{front:?} {size}"
            );
            assert_eq!(segment::is_pool(p), pooled, "{front:?} {size}");
            assert_eq!(registry::contains(p), !pooled, "{front:?} {size}");
            unsafe {
                assert!(usable_size(front, p) >= size);
                if front == Front::Reuse || !pooled {
                    assert!(AllocHeader::verify(p), "{front:?} {size}: a header");
                }
                if front == Front::Pool && !pooled {
                    assert_eq!((*AllocHeader::of(p)).method, Method::Heap, "never cached");
                }
                p.write_bytes(0x5A, size);
                free(front, p);
            }
            if !pooled && registry::contains(p) {
                // Kept by the BigCache (its mapping and registry entry stay), never live.
                let state = unsafe { (*AllocHeader::of(p)).state };
                assert_eq!(state, crate::header::State::Cached, "{front:?} {size}");
                assert_ne!(front, Front::Pool, "the pool front never caches");
            }
        }
    }

    #[test]
    fn zeroed_allocations_are_zero_and_realloc_keeps_the_bytes() {
        for front in [Front::Auto, Front::Pool, Front::Reuse] {
            let p = alloc(front, 5000, 16, Site::UNKNOWN, false);
            unsafe {
                p.write_bytes(0xEE, 5000);
                free(front, p);
                let z = alloc(front, 5000, 16, Site::UNKNOWN, true);
                assert!(core::slice::from_raw_parts(z, 5000).iter().all(|&b| b == 0));
                z.write_bytes(3, 5000);
                let r = realloc(front, z, 1 << 20, Site::UNKNOWN);
                assert!(core::slice::from_raw_parts(r, 5000).iter().all(|&b| b == 3));
                free(front, r);
            }
        }
    }
}
