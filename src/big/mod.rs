//! Layer 5: big blocks, above the pool range. Each is its own mapping with the 32-byte
//! AllocHeader in front of the user pointer, recorded in the registry so that `free` can
//! prove ownership before it reads the header.
//!
//! The mechanisms: `alloc` (a plain mapping, released on free), `take_cached` (a BigCache
//! hit) and `map` (a fresh block, cacheable or not). The hakmem decision order that picks
//! among them is policy, and lives in the front (`front::learned`).
//!
//! On free, a cacheable block goes to the BigCache (keeping its mapping and its registry
//! entry, state `Cached`); everything else is released through the madvise batch.

pub mod cache;
pub mod madvise;
pub mod registry;

use crate::config::{self, HugePages};
use crate::header::{AllocHeader, Method, State, HEADER_SIZE, MAGIC};
use crate::learn::sites::{self, HugeChoice};
use crate::site::Site;
use crate::size_class::MIN_ALIGN;
use crate::{diag, os, track};
use core::ptr;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static FREES: AtomicU64 = AtomicU64::new(0);
static SPLITS: AtomicU64 = AtomicU64::new(0);
static HUGE_MAPS: AtomicU64 = AtomicU64::new(0);
static LAST_AGE_NS: AtomicU64 = AtomicU64::new(0);

#[derive(Clone, Copy, Debug, Default)]
pub struct BigTotals {
    pub allocs: u64,
    pub frees: u64,
    /// Cached blocks split: the head handed out, the tail cached (`resize_cached`).
    pub splits: u64,
    /// Fresh blocks mapped for transparent huge pages (`map_huge`).
    pub huge_maps: u64,
}

pub fn totals() -> BigTotals {
    BigTotals {
        allocs: ALLOCS.load(Relaxed),
        frees: FREES.load(Relaxed),
        splits: SPLITS.load(Relaxed),
        huge_maps: HUGE_MAPS.load(Relaxed),
    }
}

/// Largest size we try to serve; bigger requests fail with ENOMEM without a syscall.
pub const MAX_SIZE: usize = isize::MAX as usize / 2;
/// Cached blocks idle this long get `MADV_FREE` (warm); this long, they leave (cold).
pub const WARM_NS: u64 = 250_000_000;
pub const COLD_NS: u64 = 2_000_000_000;
/// A cached block is split only while the cache holds less than this (tails included):
/// a reserve of resident pages for the next requests, not a second working set.
pub const SPLIT_RESERVE: usize = 64 << 20;
/// Smallest request the BigCache serves: every big block. The original kept blocks of
/// 512 KiB (its smallest class) and up, which left requests between the pool's largest
/// class (256 KiB) and 512 KiB to a fresh mapping and its faults on every call (the
/// learning study's server: 84 000 of its 98 000 faults); they are filed in the 512 KiB
/// class, whose pages beyond the request are never touched, so never resident.
pub const CACHE_MIN: usize = crate::size_class::POOL_MAX + 1;

/// Maps a block of `capacity` usable bytes (≥ `size`) aligned to `align`; writes its header.
/// `huge` (not `Plain`): a block spanning a huge page or more starts on a 2 MiB boundary,
/// with `MADV_HUGEPAGE` (see `map_huge`); a `Probe` keeps its first chunk on small pages.
fn map_block(
    size: usize,
    capacity: usize,
    align: usize,
    method: Method,
    site: u32,
    huge: HugeChoice,
) -> *mut u8 {
    let align = align.max(MIN_ALIGN);
    if capacity > MAX_SIZE || align > MAX_SIZE {
        return ptr::null_mut();
    }
    // Layout: [base .. header | user .. user + size .. base + span)
    let Some((base, user, span)) = (if align <= os::PAGE {
        if huge != HugeChoice::Plain && capacity >= os::HUGE_PAGE - HEADER_SIZE {
            map_huge(capacity, align, size, huge == HugeChoice::Probe)
        } else {
            map_default(capacity, align)
        }
    } else {
        map_over_aligned(capacity, align)
    }) else {
        return ptr::null_mut();
    };
    let offset = user as usize - base as usize;
    // SAFETY: the header's 32 bytes lie in our fresh mapping, right before `user`.
    unsafe { AllocHeader::write(user, AllocHeader::new(method, site, offset, size, span)) };
    if !registry::insert(user) {
        // SAFETY: the mapping was never handed out.
        unsafe { os::unmap(base, span) };
        return ptr::null_mut();
    }
    ALLOCS.fetch_add(1, Relaxed);
    user
}

/// `[header | block]` in one mapping; the user pointer `round_up(32, align)` past its start.
fn map_default(capacity: usize, align: usize) -> Option<(*mut u8, *mut u8, usize)> {
    let offset = os::round_up(HEADER_SIZE, align);
    let span = os::round_up(offset + capacity, os::PAGE);
    let base = os::map(0, span);
    (!base.is_null()).then(|| (base, base.wrapping_add(offset), span))
}

/// `[header | block]` in one mapping that starts on a 2 MiB boundary, the 2 MiB chunks the
/// request of `size` bytes covers (`chunks_of`) marked `MADV_HUGEPAGE`: where the kernel's
/// transparent huge pages are `always` or `madvise`, each is one huge page at its first
/// write (one fault, not 512; mimalloc gets the same by marking its arenas). The chunk the
/// request ends in keeps small pages: as a huge page it would be resident whole, past the
/// request's end too (20 live blocks of 5–25 MiB: 1 MiB each). Without transparent huge
/// pages the advice changes nothing. `probe`: the first chunk stays on small pages (the one
/// written first, and the most: a buffer is filled from its start), marked before the
/// header's write could fault a huge page in there.
fn map_huge(
    capacity: usize,
    align: usize,
    size: usize,
    probe: bool,
) -> Option<(*mut u8, *mut u8, usize)> {
    let offset = os::round_up(HEADER_SIZE, align);
    let span = os::round_up(offset + capacity, os::PAGE);
    let chunks = chunks_of(size, span);
    let base = os::map_aligned(span, os::HUGE_PAGE);
    if base.is_null() {
        return None;
    }
    // SAFETY: the chunks lie inside the mapping just made, which nobody else holds and
    // nothing has written yet.
    unsafe {
        let small = if probe { os::HUGE_PAGE.min(chunks) } else { 0 };
        if chunks > small {
            os::advise(
                base.wrapping_add(small),
                chunks - small,
                libc::MADV_HUGEPAGE,
            );
            HUGE_MAPS.fetch_add(1, Relaxed);
        }
        if small != 0 {
            // Small pages even where transparent huge pages are `always`.
            os::advise(base, small, libc::MADV_NOHUGEPAGE);
        }
    }
    Some((base, base.wrapping_add(offset), span))
}

/// Alignments above a page: over-map by `align`, then trim both ends so that exactly one
/// page (holding the header) precedes the aligned user pointer. The header's offset is then
/// always one page, whatever the alignment (2^33 included), and the block keeps no slack.
fn map_over_aligned(capacity: usize, align: usize) -> Option<(*mut u8, *mut u8, usize)> {
    let body = os::round_up(capacity, os::PAGE);
    let over = body.checked_add(align)?.checked_add(os::PAGE)?;
    let p = os::map(0, over);
    if p.is_null() {
        return None;
    }
    let user = os::round_up(p as usize + os::PAGE, align);
    let base = user - os::PAGE;
    let span = os::PAGE + body;
    let (head, tail) = (base - p as usize, p as usize + over - (base + span));
    // SAFETY: both trimmed pieces lie inside the mapping just made and are handed to nobody.
    unsafe {
        if head > 0 {
            os::unmap(p, head);
        }
        if tail > 0 {
            os::unmap((base + span) as *mut u8, tail);
        }
    }
    Some((base as *mut u8, user as *mut u8, span))
}

/// A plain big block (released on free, never cached). Zeroed: fresh from the OS.
pub fn alloc(size: usize, align: usize, site: u32) -> *mut u8 {
    let p = map_block(size, size, align, Method::Heap, site, HugeChoice::Plain);
    announce(p, size, true);
    p
}

/// Tells memcheck (`valgrind` feature) about a block handed out: the block, and its header
/// as no-access.
pub fn announce(p: *mut u8, size: usize, zeroed: bool) {
    if !p.is_null() {
        track::malloc_like(p, size, zeroed);
        track::no_access(p.wrapping_sub(HEADER_SIZE), HEADER_SIZE);
    }
}

/// Takes a cached block of `class` for `site` (table slot `slot`) from the BigCache and
/// makes it live for `size` bytes; null on a miss. A block of another class (the site's
/// nearest, or another site's) is resized to this class with `mremap` (its pages that stay
/// keep their frames: no faults), unless it holds `size` with at most 2× to spare, the
/// site's blocks grow by `realloc`, or the site holds one block at a time and asked for
/// sizes near this block's lately (its reach: `sites::REACH`). Then the whole block is
/// handed out, and the growth or the next larger request finds its pages resident: no
/// `mremap`, no copy, no fault.
/// A hit makes the block hot: it stays cacheable whatever the threshold says later (the
/// thermal policy's "hot → keep"). With the block, the bytes of it that are not resident
/// yet (grown by `mremap`: their first touch faults), for the learner's cost.
pub fn take_cached(slot: usize, class: usize, site: Site, size: usize) -> (*mut u8, usize) {
    let Some((v, found)) = cache::take(slot, class) else {
        return (ptr::null_mut(), 0);
    };
    let mut p = v as *mut u8;
    // A block of another class is resized to this one, unless it is larger by at most 2×,
    // the site's blocks grow, or the site reached sizes near it lately: then it is handed
    // out whole (its pages stay resident and the next, larger request needs no fault), as
    // `resize_in_place` keeps a block that `new` still half fills, or that grows within its
    // mapping. A site whose requests climb from 512 KiB to 8 MiB and start again (the
    // learning study's site C) otherwise shrinks its 8 MiB block and faults it back in.
    let span = span_of(v);
    let capacity = span - HEADER_SIZE;
    let whole = || {
        (size..=2 * size).contains(&capacity)
            || capacity >= size
                && (sites::grows(slot) || one_at_a_time_within_reach(slot, capacity))
    };
    let mut cold = 0;
    if found != class && !whole() {
        p = resize_cached(p, cache::CLASSES[class], slot);
        if p.is_null() {
            return (p, 0);
        }
        cold = span_of(p as usize).saturating_sub(span);
    }
    // SAFETY: a cached block is a live mapping of ours with its header; we hold it now.
    unsafe {
        let h = &mut *AllocHeader::of(p);
        h.state = State::Live;
        h.method = Method::Map;
        h.size = size as u64;
        h.site = site.0;
        h.stack = 0;
    }
    sites::TABLE[slot].hits.fetch_add(1, Relaxed);
    ALLOCS.fetch_add(1, Relaxed);
    (p, cold)
}

/// Whether site `slot` holds no other big block live and came back lately to sizes of at
/// least half of `capacity` (its reach): handing it the whole block then keeps no memory
/// from anyone (the site frees it before it asks again), while shrinking it would fault it
/// back in at the site's next large request. A site with other blocks live (20 blocks of
/// 5–25 MiB replaced one at a time) gets a split instead, whose tail serves its next one.
fn one_at_a_time_within_reach(slot: usize, capacity: usize) -> bool {
    sites::TABLE[slot].live.load(Relaxed) <= 0 && capacity <= 2 * sites::reach(slot)
}

/// Resizes a block just taken from the cache to `capacity` usable bytes: a larger block is
/// split (its tail cached for site slot `slot`, pages and all, as a page heap splits a
/// span), or shrunk with `mremap` when the tail is too small to cache; a smaller one grows
/// with `mremap` (moving its pages if it must). Null when the kernel refused (the block is
/// then released).
fn resize_cached(p: *mut u8, capacity: usize, slot: usize) -> *mut u8 {
    // SAFETY: cached blocks have the default layout (header right before `p`); we hold it.
    let (base, span) = unsafe { ((*AllocHeader::of(p)).base(p), span_of(p as usize)) };
    let new_span = os::round_up(HEADER_SIZE + capacity, os::PAGE);
    if new_span < span && split_tail(base, new_span, span, slot) {
        // SAFETY: the block is ours; it now ends where the tail starts.
        unsafe { (*AllocHeader::of(p)).span = new_span as u64 };
        return p;
    }
    let q = registry::relocate(p, || {
        // SAFETY: `[base, base + span)` is exactly the block's mapping, and nobody else
        // holds the block.
        let moved = unsafe { os::remap(base, span, new_span) };
        if moved.is_null() {
            moved
        } else {
            moved.wrapping_add(HEADER_SIZE)
        }
    });
    if q.is_null() {
        // SAFETY: the block is ours and dead (still `Cached`).
        unsafe { release(p) };
        return q;
    }
    // SAFETY: the header moved with the mapping.
    unsafe { (*AllocHeader::of(q)).span = new_span as u64 };
    q
}

/// Cuts `[base + keep, base + span)` off a cached block we hold and caches it as a block of
/// its own for site slot `slot` (released if the cache is full). False, with nothing
/// changed, when the tail is below the smallest class or the registry is full.
fn split_tail(base: *mut u8, keep: usize, span: usize, slot: usize) -> bool {
    let tail_span = span - keep;
    if cache::bytes() + tail_span > SPLIT_RESERVE {
        return false;
    }
    let Some(class) = cache::class_for_block(tail_span - HEADER_SIZE) else {
        return false;
    };
    let user = base.wrapping_add(keep + HEADER_SIZE);
    // SAFETY: the tail's first page lies inside the mapping of the block we hold, and nobody
    // else can reach it until the registry and the cache have it.
    unsafe {
        AllocHeader::write(
            user,
            AllocHeader::new(Method::Map, 0, HEADER_SIZE, 0, tail_span),
        );
        (*AllocHeader::of(user)).state = State::Cached;
    }
    track::no_access(user.wrapping_sub(HEADER_SIZE), HEADER_SIZE);
    if !registry::insert(user) {
        return false;
    }
    let cfg = config::get();
    let (cap, site_cap) = (cfg.bigcache_cap, cache::site_share(cfg.bigcache_cap));
    let now = os::now_coarse_ns();
    if cache::put(slot, class, user as usize, tail_span, now, cap, site_cap).is_err() {
        // SAFETY: the tail is a registered block of ours that nobody else holds.
        unsafe { release(user) };
    }
    SPLITS.fetch_add(1, Relaxed);
    true
}

/// A fresh big block: `Method::Map` (kept in the BigCache on free, sized to its class's
/// `capacity`) or `Method::Heap` (exact, released on free), with transparent huge pages as
/// `config::HugePages` says for site slot `slot`. Zeroed; null when out of memory.
pub fn map(
    size: usize,
    capacity: usize,
    align: usize,
    method: Method,
    site: Site,
    slot: usize,
) -> *mut u8 {
    let choice = match config::get().huge_pages {
        // Too small for a huge page, or too large to map at all (`map_block` refuses it).
        _ if !(os::HUGE_PAGE - HEADER_SIZE..=MAX_SIZE).contains(&capacity) => HugeChoice::Plain,
        HugePages::Off => HugeChoice::Plain,
        HugePages::On => HugeChoice::Huge,
        HugePages::PerSite => {
            measure_probe(slot);
            let span = os::round_up(HEADER_SIZE + capacity, os::PAGE);
            sites::huge_pages_for_next(slot, chunks_of(size, span) != 0)
        }
    };
    let p = map_block(size, capacity, align, method, site.0, choice);
    if choice == HugeChoice::Probe && !p.is_null() {
        // The probe: its first chunk stayed on small pages, to be measured.
        // SAFETY: `p` is the fresh block just mapped, its header in front.
        let (base, span) = unsafe {
            let h = &*AllocHeader::of(p);
            (h.base(p) as usize, h.span as usize)
        };
        if chunks_of(size, span) != 0 {
            sites::set_probe(slot, base, os::HUGE_PAGE);
        }
    }
    p
}

/// The bytes of the 2 MiB chunks a request of `size` covers in its block (header first):
/// whole ones, and the one it ends in when it covers at least 7/8 of it (a huge page there
/// holds at most 256 KiB nobody asked for, the waste `sites::DENSE` allows; less covered,
/// that chunk keeps small pages); never past the block's `span` (a huge page needs its
/// whole 2 MiB mapped).
fn chunks_of(size: usize, span: usize) -> usize {
    let end = HEADER_SIZE + size;
    let whole = end & !(os::HUGE_PAGE - 1);
    let covered = if end - whole >= os::HUGE_PAGE / 8 * 7 {
        whole + os::HUGE_PAGE
    } else {
        whole
    };
    covered.min(span & !(os::HUGE_PAGE - 1))
}

/// Measures site slot `slot`'s probe, if one waits and it was written since it was handed
/// out: most blocks are written right after they are allocated, so the site's next fresh
/// block can already follow what the probe says (a program that maps 200 blocks before it
/// frees one would otherwise learn nothing in time). Only `mincore` touches the probe's
/// range, never its memory: another thread may have freed and unmapped it meanwhile (the
/// call then fails and counts nothing, or measures another mapping once: a heuristic's
/// noise, not a fault).
fn measure_probe(slot: usize) {
    let Some((base, chunks)) = sites::take_probe(slot) else {
        return;
    };
    let resident = os::resident(base as *const u8, chunks);
    if resident <= os::PAGE {
        // Only the header's page: not written yet, ask again later.
        sites::put_back_probe(slot, base, chunks);
    } else {
        sites::note_density(slot, resident, chunks);
    }
}

/// Measures how densely site slot `slot` wrote the block at `base` (`span` bytes mapped,
/// `size` asked for) that it frees now: its probe chunk if it holds the site's waiting
/// probe; else, when the per-site policy wants a measure (`sites::density_due`), the
/// resident part of the whole 2 MiB chunks the request covered (the class's slack past the
/// request is never written, and a huge page there is never faulted in either). A block
/// that starts on a 2 MiB boundary may have huge pages, which are resident whole whatever
/// was written: only its probe chunk is measured.
fn measure_density(slot: usize, base: usize, span: usize, size: usize) {
    if config::get().huge_pages != HugePages::PerSite {
        return;
    }
    let (start, len) = match sites::take_probe_within(slot, base, span) {
        Some(probe) => probe,
        None => {
            let chunks = chunks_of(size, span);
            if chunks == 0 || base & (os::HUGE_PAGE - 1) == 0 || !sites::density_due(slot) {
                return;
            }
            (base, chunks)
        }
    };
    sites::note_density(slot, os::resident(start as *const u8, len), len);
}

/// The mapped span of live big block `p`.
pub fn span_of(p: usize) -> usize {
    // SAFETY: callers pass blocks the registry or the cache holds: their header is mapped.
    unsafe { (*AllocHeader::of(p as *mut u8)).span as usize }
}

/// Checks that `p` is a live big block of ours and returns its header; aborts otherwise.
fn live_header(op: &str, p: *mut u8) -> &'static mut AllocHeader {
    if !registry::contains(p) {
        diag::fatal_pointer(op, p, "not allocated by hakmem, or already freed");
    }
    // SAFETY: the registry proved `p` is one of our big blocks, so its header is mapped.
    let h = unsafe { &mut *AllocHeader::of(p) };
    if h.magic != MAGIC {
        diag::fatal_pointer(op, p, "block header is corrupt");
    }
    if h.state != State::Live {
        diag::fatal_pointer(op, p, "double free (the block is already free)");
    }
    h
}

/// Frees a big block; aborts with a clear message if `p` is not a live big block of ours.
///
/// # Safety
/// `p` must not be used after this call.
pub unsafe fn free(p: *mut u8) {
    let cfg = config::get();
    let h = live_header("free", p);
    track::free_like(p);
    let slot = sites::slot(Site(h.site));
    sites::on_free(slot, h.size as usize);
    FREES.fetch_add(1, Relaxed);
    if cfg.bigcache && h.offset as usize == HEADER_SIZE {
        let (span, size) = (h.span as usize, h.size as usize);
        measure_density(slot, p as usize - HEADER_SIZE, span, size);
        let ghost_class = cache::class_for_request(size).filter(|_| size >= CACHE_MIN);
        let now = os::now_coarse_ns();
        if let Some(class) = cache::class_for_block(span - HEADER_SIZE) {
            // Kept: a block mapped to be kept, or one whose (site, class) released a block
            // moments ago (its ghost: this site frees such blocks again and again).
            let ghost = ghost_class.is_some_and(|c| cache::recently_released(slot, c, now));
            if h.method == Method::Map || ghost {
                h.state = State::Cached;
                let (cap, site_cap) = (cfg.bigcache_cap, cache::site_share(cfg.bigcache_cap));
                if cache::put(slot, class, p as usize, span, now, cap, site_cap).is_err() {
                    // Over the cap: the block goes back to the OS.
                    // SAFETY: the block was not cached; we still own it.
                    unsafe { release(p) };
                }
                maybe_age(now);
                return;
            }
        }
        if let Some(c) = ghost_class {
            cache::note_release(slot, c, now);
        }
    }
    // SAFETY: `p` is ours and dead.
    unsafe { release(p) };
}

/// Gives a dead big block back to the OS: through the madvise batch when it is on.
///
/// # Safety
/// `p` must be a big block of ours that nobody uses (live or cached state).
unsafe fn release(p: *mut u8) {
    registry::remove(p);
    // SAFETY: the header stays mapped until the unmap below or the batch's flush.
    let (base, span) = unsafe {
        let h = &mut *AllocHeader::of(p);
        h.state = State::Freed;
        (h.base(p), h.span as usize)
    };
    if config::get().batch_madvise {
        // SAFETY: the whole mapping is dead.
        unsafe { madvise::release(base, span) };
    } else {
        // SAFETY: the whole mapping is dead.
        unsafe { os::unmap(base, span) };
    }
}

/// Runs the thermal policy if it is due and anything is cached (one load otherwise): the
/// pool runs this on its refills (`pool::alloc::set_on_refill`).
pub fn age_if_due() {
    if cache::bytes() != 0 {
        maybe_age(os::now_coarse_ns());
    }
}

/// Runs the thermal policy at most every 100 ms.
fn maybe_age(now: u64) {
    let last = LAST_AGE_NS.load(Relaxed);
    if now.saturating_sub(last) >= 100_000_000
        && LAST_AGE_NS
            .compare_exchange(last, now, Relaxed, Relaxed)
            .is_ok()
    {
        age_cache(now);
        // The same clock tick gives back this thread's idle pool segments.
        crate::pool::pages::purge_idle_of_this_thread();
    }
}

/// The thermal policy: hot blocks stay, warm ones get `MADV_FREE` (pages after the header
/// page may be reclaimed, the mapping stays cached), cold ones leave through the batch.
pub fn age_cache(now: u64) {
    cache::age(
        now,
        WARM_NS,
        COLD_NS,
        |p| {
            // Cached blocks have the default layout: base = p - 32, page aligned.
            let (base, span) = (p - HEADER_SIZE, span_of(p));
            if span > os::PAGE {
                let (body, len) = ((base + os::PAGE) as *mut u8, span - os::PAGE);
                // SAFETY: the pages after the header page belong to this cached (dead) block.
                // A kernel without `MADV_FREE` (before 4.5) refuses it: the pages then go
                // back at once instead, not never.
                unsafe {
                    if !os::advise(body, len, libc::MADV_FREE) {
                        os::advise(body, len, libc::MADV_DONTNEED);
                    }
                }
            }
        },
        |p| {
            // SAFETY: the block left the cache, so nobody holds it.
            unsafe { release(p as *mut u8) };
        },
    );
}

/// Out of memory: gives back everything kept for reuse (every BigCache block, the madvise
/// batch, this thread's cached empty pool segments), since kept mappings hold address space
/// and commit charge that a new mapping may need (`RLIMIT_AS`, strict overcommit). True if
/// anything went, so that a retry can succeed.
pub fn release_reserves() -> bool {
    let cached = cache::bytes() != 0;
    if cached {
        cache::age(
            os::now_coarse_ns(),
            u64::MAX,
            0,
            |_| {},
            |p| {
                // SAFETY: the block left the cache, so nobody holds it.
                unsafe { release(p as *mut u8) };
            },
        );
    }
    let batched = madvise::pending().0 != 0;
    madvise::flush();
    let segments = crate::pool::pages::purge_all_empty_segments_of_this_thread();
    cached || batched || segments
}

/// `p`, or, when it is null (out of memory), `again()` after `release_reserves` gave
/// anything back. The fronts call it where an allocation can fail, all off the fast
/// paths: a pool refill and the big blocks.
#[inline]
pub fn or_after_releasing(p: *mut u8, again: impl FnOnce() -> *mut u8) -> *mut u8 {
    if p.is_null() && release_reserves() {
        return again();
    }
    p
}

/// Usable bytes of big block `p`; aborts if `p` is not one.
pub fn usable_size(p: *mut u8) -> usize {
    checked_usable_size("malloc_usable_size", p)
}

/// Usable bytes of big block `p`; aborts naming `op` if `p` is not one.
pub fn checked_usable_size(op: &str, p: *mut u8) -> usize {
    let h = live_header(op, p);
    h.span as usize - h.offset as usize
}

/// Resizes big block `p` to `new` bytes (`new > POOL_MAX`) without a copy where it can:
/// a default-aligned block keeps its mapping when `new` still fills at least half of it or
/// grows within it, else its mapping grows or shrinks with `mremap` (moving if it must).
/// None when it cannot (an over-aligned block, or the kernel refused): the front then moves
/// it by copy.
///
/// # Safety
/// `p` must be a live big block of ours, not used concurrently.
pub unsafe fn resize_in_place(p: *mut u8, new: usize) -> Option<*mut u8> {
    let h = *live_header("realloc", p);
    let (span, offset) = (h.span as usize, h.offset as usize);
    if new > MAX_SIZE || offset != HEADER_SIZE {
        return None;
    }
    let capacity = span - HEADER_SIZE;
    if new <= capacity && (new >= capacity / 2 || new >= h.size as usize) {
        // SAFETY: live block; only its size field changes.
        unsafe { (*AllocHeader::of(p)).size = new as u64 };
        track::resize_in_place(p, h.size as usize, new);
        sites::on_resize(sites::slot(Site(h.site)), h.size as usize, new);
        return Some(p);
    }
    let new_span = os::round_up(HEADER_SIZE + new, os::PAGE);
    let q = registry::relocate(p, || {
        // SAFETY: `[base, base + span)` is exactly the block's mapping.
        let moved = unsafe { os::remap(h.base(p), span, new_span) };
        if moved.is_null() {
            moved
        } else {
            moved.wrapping_add(HEADER_SIZE)
        }
    });
    if q.is_null() {
        return None;
    }
    // SAFETY: the header moved with the mapping.
    unsafe {
        (*AllocHeader::of(q)).size = new as u64;
        (*AllocHeader::of(q)).span = new_span as u64;
    }
    sites::on_resize(sites::slot(Site(h.site)), h.size as usize, new);
    track::free_like(p);
    announce(q, new, true);
    Some(q)
}
