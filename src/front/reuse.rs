//! The reuse front end: the hakmem model exactly as the original ran it, for every size,
//! so that its cost can be measured step by step against the pool front:
//!
//! 1. call-site hash → site table entry;
//! 2. learner selection → threshold;
//! 3. BigCache lookup (big sizes);
//! 4. the block: a pool block with room for the header (small), or a big block;
//! 5. header write; on free, header read and magic check route the block back.

use super::{learned, resize, small};
use crate::header::{AllocHeader, Method, State, HEADER_SIZE, MAGIC};
use crate::learn::{self, sites};
use crate::pool::segment;
use crate::site::Site;
use crate::size_class::{bin_for_aligned, bin_size, MIN_ALIGN, POOL_MAX};
use crate::{big, diag, pool, tls, track};

/// Largest request served from a pool block (the header takes 32 bytes of it).
pub const SMALL_MAX: usize = POOL_MAX - HEADER_SIZE;

/// The hakmem model's own steps, as bits of `alloc_steps`/`free_steps`' `STEPS`: the real
/// path takes them all (`ALL`); the profiler's subtraction probes take one out, so that a
/// step's time is the full path's minus the path without it (`hakprof steps`). One
/// definition for both: the steps left out fold away at compile time.
pub const SITE_HASH: u8 = 1;
pub const LEARNER: u8 = 2;
pub const HEADER: u8 = 4;
pub const ALL: u8 = SITE_HASH | LEARNER | HEADER;

/// Allocates `size` bytes for `site` (alignment up to 16). Null when out of memory.
#[inline(always)]
pub fn alloc(size: usize, site: Site) -> *mut u8 {
    alloc_steps::<ALL>(size, site)
}

/// `alloc` with only the model's steps in `STEPS`: without `SITE_HASH` the site's table
/// slot is the shared "other" entry, without `LEARNER` nothing small goes big, without
/// `HEADER` no header is written (a block only `free_steps` without `HEADER` may free).
#[inline(always)]
pub fn alloc_steps<const STEPS: u8>(size: usize, site: Site) -> *mut u8 {
    if size > SMALL_MAX {
        return alloc_big(size, site);
    }
    // 1. site hash (per-thread one-entry cache)
    let slot = if STEPS & SITE_HASH != 0 {
        site_slot(site)
    } else {
        sites::OTHER
    };
    // 2. learner (per-thread copy)
    let threshold = if STEPS & LEARNER != 0 {
        decide_small(slot, size)
    } else {
        usize::MAX
    };
    if size >= threshold {
        // 3. at or above the threshold (UCB1's arms start at 64 KiB): the map path, which
        // tries the BigCache first.
        return alloc_big(size, site);
    }
    // 4. a pool block with the header in front
    let block = small::alloc(size + HEADER_SIZE); // size + 32 <= POOL_MAX
    if block.is_null() {
        return block;
    }
    let user = block.wrapping_add(HEADER_SIZE);
    if STEPS & HEADER != 0 {
        // SAFETY: the block holds header + size bytes. 5. the header
        unsafe {
            AllocHeader::write(
                user,
                AllocHeader::new(Method::Pool, site.0, HEADER_SIZE, size, size + HEADER_SIZE),
            )
        };
    }
    track::malloc_like(user, size, false);
    track::no_access(block, HEADER_SIZE);
    user
}

#[cold]
#[inline(never)]
fn alloc_big(size: usize, site: Site) -> *mut u8 {
    learned::alloc(size, MIN_ALIGN, site, false)
}

/// Over-aligned requests. Small ones come from a pool block of a class whose blocks are
/// `align`-aligned, holding `align` bytes before the user pointer (the header in their
/// last 32), as mimalloc serves small aligned blocks from its size classes; the rest are
/// big blocks (the header right before the aligned pointer). Never a mapping per small
/// block: `posix_memalign(64, 48)` in a loop must not exhaust `vm.max_map_count`.
pub fn alloc_aligned(size: usize, align: usize, site: Site) -> *mut u8 {
    if align <= MIN_ALIGN {
        return alloc(size, site);
    }
    // align >= 32 = HEADER_SIZE: the header fits in the `align` bytes before `user`.
    let bin = size
        .checked_add(align)
        .filter(|&need| need <= POOL_MAX)
        .and_then(|need| bin_for_aligned(need, align));
    let Some(bin) = bin else {
        return learned::alloc(size, align, site, false);
    };
    let block = small::alloc_bin(bin);
    if block.is_null() {
        return block;
    }
    let user = block.wrapping_add(align);
    let span = bin_size(bin);
    // SAFETY: the block holds `align + size` bytes; the header's 32 end at `user`.
    unsafe {
        AllocHeader::write(
            user,
            AllocHeader::new(Method::PoolAligned, site.0, align, size, span),
        )
    };
    track::malloc_like(user, size, false);
    track::no_access(block, align);
    user
}

/// Frees a reuse-front block: header read, magic check, route by method.
///
/// # Safety
/// `p` must be null or a block of the reuse front, not used afterwards.
#[inline(always)]
pub unsafe fn free(p: *mut u8) {
    // SAFETY: forwarded.
    unsafe { free_steps::<ALL>(p) }
}

/// `free` with only the model's steps in `STEPS` (without `HEADER`: no header read or
/// check, the block goes straight back to the pool).
///
/// # Safety
/// As `free`; without `HEADER`, `p` must come from `alloc_steps` without `HEADER`.
#[inline(always)]
pub unsafe fn free_steps<const STEPS: u8>(p: *mut u8) {
    if !segment::is_pool(p) || !segment::in_block_area(p) {
        // SAFETY: forwarded.
        return unsafe { free_other(p) };
    }
    if STEPS & HEADER != 0 {
        // SAFETY: `p` lies past page 0 of a pool segment, so the 32 bytes before it are ours.
        let h = unsafe { &mut *AllocHeader::of(p) };
        if h.magic != MAGIC || h.method != Method::Pool || h.state != State::Live {
            // SAFETY: forwarded.
            return unsafe { free_aligned_or_abort(p, h) };
        }
        h.state = State::Freed;
    }
    track::free_like(p);
    // SAFETY: the block starts at the header.
    unsafe { pool::free(p.wrapping_sub(HEADER_SIZE)) };
}

/// A pool block whose header is not the plain one: an aligned block (its start `offset`
/// bytes before `p`), or no live block at all (abort).
///
/// # Safety
/// As `free`; `h` is the header in front of `p`, inside a pool page's block area.
#[cold]
#[inline(never)]
unsafe fn free_aligned_or_abort(p: *mut u8, h: &mut AllocHeader) {
    if h.magic != MAGIC || h.method != Method::PoolAligned || h.state != State::Live {
        diag::fatal_pointer(
            "free",
            p,
            "no live hakmem header (not allocated by hakmem, or already freed)",
        );
    }
    h.state = State::Freed;
    track::free_like(p);
    // SAFETY: an aligned pool block starts `offset` bytes before `p`.
    unsafe { pool::free(h.base(p)) };
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
        // SAFETY: a pool block with its header in front, `offset` bytes into the block.
        unsafe {
            let offset = (*AllocHeader::of(p)).offset as usize;
            pool::usable_size(p.wrapping_sub(offset)) - offset
        }
    } else {
        big::usable_size(p)
    }
}

/// `realloc` for the reuse front: a new block and a copy (big blocks grow or shrink with
/// `mremap` where they can).
///
/// # Safety
/// `p` must be null or a live reuse-front block.
pub unsafe fn realloc(p: *mut u8, new: usize, site: Site) -> *mut u8 {
    if p.is_null() {
        return alloc(new, site);
    }
    let old = if segment::is_pool(p) {
        // SAFETY: a pool block with its header in front.
        unsafe { usable_size(p) }
    } else {
        // SAFETY: not a pool block, so a big block (checked inside).
        match unsafe { resize::big_in_place(p, new, SMALL_MAX) } {
            Ok(q) => return q,
            Err(old) => old,
        }
    };
    // SAFETY: `p` is live with `old` usable bytes; the new block is distinct.
    unsafe { resize::by_copy(p, old, new, || alloc(new, site), |b| free(b)) }
}

// ---------------------------------------------------------------------------------------
// The per-thread caches of the learner's answers (in the thread's `tls::cache` words)
// ---------------------------------------------------------------------------------------

/// The reuse front refreshes its per-thread copy of the learner's threshold this often.
pub const SMALL_REFRESH: usize = 256;

/// This thread's cache: the threshold and how many calls it still serves, and the last
/// call site looked up with its table slot (+1; 0: none).
#[repr(C)]
struct ThreadCache {
    countdown: usize,
    threshold: usize,
    last_site: usize,
    last_slot: usize,
}

const _: () = assert!(core::mem::size_of::<ThreadCache>() == tls::CACHE_WORDS * 8);

#[inline(always)]
fn thread_cache() -> &'static mut ThreadCache {
    // SAFETY: the calling thread's own cache words, zero-initialised (a valid ThreadCache);
    // only this module uses them, and never holds two references at once.
    unsafe { &mut *tls::cache().cast::<ThreadCache>() }
}

/// The learner's threshold for a small (pool-sized) allocation at table slot `slot`:
/// the learner proper on one call in `SMALL_REFRESH`, this thread's copy otherwise (a TLS
/// read). A small block is always below the threshold, so nothing is sampled.
#[inline]
pub fn decide_small(slot: usize, size: usize) -> usize {
    let c = thread_cache();
    if c.countdown > 0 {
        c.countdown -= 1;
        return c.threshold;
    }
    let t = learn::decide(slot, size).threshold;
    c.countdown = SMALL_REFRESH;
    c.threshold = t;
    t
}

/// The site-table slot of `site`, through this thread's one-entry cache (a call site
/// allocating in a loop hashes once).
#[inline]
pub fn site_slot(site: Site) -> usize {
    let c = thread_cache();
    if c.last_slot != 0 && c.last_site == site.0 as usize {
        return c.last_slot - 1;
    }
    let slot = sites::slot(site);
    c.last_site = site.0 as usize;
    c.last_slot = slot + 1;
    slot
}
