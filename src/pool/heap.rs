//! The thread-local heap: one per thread, owning segments and pages. The fast paths (a
//! pop and a push on a page's free list) are a few inlined lines; everything else is the
//! out-of-line slow path below them.
//!
//! Heaps are immortal: when a thread exits its heap gives back every empty page and is
//! *parked*; the next new thread adopts it, pages, pending remote frees and all. So a
//! segment's `owner` pointer never dangles, and thread churn does not grow memory.

use super::page::{Block, Page, PageQueue};
use super::segment::{self, PageKind, Segment, KINDS};
use crate::lock::SpinLock;
use crate::size_class::{bin_of, bin_size, NBINS};
use crate::{os, tls};
use core::cell::UnsafeCell;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::Release};

/// A counter written by one thread (plain load + store, no atomic read-modify-write, so
/// the fast path stays lock-free and cheap) and read by anyone for the stats.
#[derive(Default)]
pub struct OwnerCounter(AtomicU64);

impl OwnerCounter {
    #[inline(always)]
    pub fn bump(&self) {
        self.0.store(self.0.load(Relaxed) + 1, Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

#[derive(Default)]
pub struct HeapStats {
    pub allocs: OwnerCounter,
    pub frees: OwnerCounter,
    /// Frees this thread made of blocks owned by another heap.
    pub remote_frees: OwnerCounter,
}

#[repr(C)]
pub struct Heap {
    /// The page each size class allocates from (`EMPTY_PAGE` when none): the fast path.
    pub pages: [*mut Page; NBINS],
    /// Every non-full page of each size class, the current one included.
    pub queues: [PageQueue; NBINS],
    /// Pages with no free block left.
    pub full: PageQueue,
    /// Per page kind: segments with at least one free page slot.
    pub segments: [*mut Segment; KINDS],
    /// Per page kind: recently emptied segments, kept so a program that frees and then
    /// allocates again reuses them without map, unmap or page faults (mimalloc's delayed
    /// purge); older than `PURGE_NS` or beyond `MAX_EMPTY`, they are unmapped.
    pub empty: [EmptySegments; KINDS],
    /// The learning layer's per-thread cache of its decision (see `learn::decide_small`).
    pub learner: LearnerCache,
    /// Set by other threads when they free into a page on `full`.
    pub remote_full_pending: AtomicBool,
    pub stats: HeapStats,
    next_all: *mut Heap,
    next_parked: *mut Heap,
}

/// Per-thread cache of the learner's decision: lets the reuse front consult the learner
/// with a TLS read instead of a shared atomic (refreshed every `countdown` calls).
#[derive(Clone, Copy, Default)]
pub struct LearnerCache {
    pub countdown: u32,
    pub threshold: usize,
    /// The last call site this thread looked up, and its site-table slot (+1; 0 = none).
    pub last_site: u32,
    pub last_slot: usize,
}

/// Empty segments of one kind, newest first (a doubly linked list through `next`/`prev`).
#[derive(Clone, Copy)]
pub struct EmptySegments {
    newest: *mut Segment,
    oldest: *mut Segment,
    count: usize,
}

/// Empty segments kept per kind at most, and for at most this long.
pub const MAX_EMPTY: usize = 8;
pub const PURGE_NS: u64 = 200_000_000;

impl EmptySegments {
    const NONE: EmptySegments = EmptySegments {
        newest: ptr::null_mut(),
        oldest: ptr::null_mut(),
        count: 0,
    };

    /// # Safety
    /// `seg` must be an empty segment of the heap, on no list.
    unsafe fn push(&mut self, seg: *mut Segment, now: u64) {
        // SAFETY: `seg` and the list's segments are live, empty segments of this heap.
        unsafe {
            (*seg).emptied_at_ns = now;
            (*seg).prev = ptr::null_mut();
            (*seg).next = self.newest;
            if self.newest.is_null() {
                self.oldest = seg;
            } else {
                (*self.newest).prev = seg;
            }
        }
        self.newest = seg;
        self.count += 1;
    }

    /// The most recently emptied segment (its pages are the likeliest to be resident).
    unsafe fn pop_newest(&mut self) -> *mut Segment {
        let seg = self.newest;
        if !seg.is_null() {
            // SAFETY: a live segment on this list.
            unsafe {
                self.newest = (*seg).next;
                if self.newest.is_null() {
                    self.oldest = ptr::null_mut();
                } else {
                    (*self.newest).prev = ptr::null_mut();
                }
                (*seg).next = ptr::null_mut();
            }
            self.count -= 1;
        }
        seg
    }

    /// Unmaps the segments that waited too long, or are too many; all of them if `all`.
    unsafe fn purge(&mut self, now: u64, all: bool) {
        // SAFETY: segments on this list are empty, live and ours.
        unsafe {
            while !self.oldest.is_null()
                && (all
                    || self.count > MAX_EMPTY
                    || now.saturating_sub((*self.oldest).emptied_at_ns) > PURGE_NS)
            {
                let seg = self.oldest;
                self.oldest = (*seg).prev;
                if self.oldest.is_null() {
                    self.newest = ptr::null_mut();
                } else {
                    (*self.oldest).next = ptr::null_mut();
                }
                self.count -= 1;
                segment::destroy(seg);
            }
        }
    }
}

/// The page every empty slot of `Heap::pages` points to: its free list is always empty,
/// so the fast path needs no null check on the page.
struct EmptyPage(UnsafeCell<Page>);
// SAFETY: nobody ever writes to the empty page: the fast path only writes to a page whose
// free list is non-empty, and the slow path recognises and skips it.
unsafe impl Sync for EmptyPage {}
static EMPTY_PAGE: EmptyPage = EmptyPage(UnsafeCell::new(Page::EMPTY));

#[inline(always)]
fn empty_page() -> *mut Page {
    EMPTY_PAGE.0.get()
}

// ---------------------------------------------------------------------------------------
// Fast paths
// ---------------------------------------------------------------------------------------

/// Allocates `size` bytes (`size <= POOL_MAX`) from this thread's heap.
///
/// # Safety
/// `size <= POOL_MAX`.
#[inline(always)]
pub unsafe fn alloc(size: usize) -> *mut u8 {
    // SAFETY: `bin_of` returns a valid bin for sizes up to POOL_MAX.
    unsafe { alloc_bin(bin_of(size)) }
}

/// Allocates one block of size class `bin`.
///
/// # Safety
/// `bin < NBINS`.
#[inline(always)]
pub unsafe fn alloc_bin(bin: usize) -> *mut u8 {
    let heap = tls::heap();
    if !heap.is_null() {
        // SAFETY: a non-null slot is this thread's live heap; `bin < NBINS`; `pages[bin]`
        // is a live page or the empty page, whose `free` is null.
        unsafe {
            let page = *(*heap).pages.get_unchecked(bin);
            let block = (*page).pop();
            if !block.is_null() {
                (*heap).stats.allocs.bump();
                return block as *mut u8;
            }
        }
    }
    // SAFETY: forwarded precondition.
    unsafe { alloc_slow(bin) }
}

/// Frees a block of a pool segment.
///
/// # Safety
/// `p` must be a live block returned by `alloc`/`alloc_bin` (so inside a pool segment).
#[inline(always)]
pub unsafe fn free(p: *mut u8) {
    let seg = segment::segment_of(p);
    // SAFETY: `p` is a live block, so its segment and page records are live.
    unsafe {
        let page = segment::page_of(seg, p);
        let heap = tls::heap();
        if (*seg).owner == heap {
            if p as *mut Block == (*page).free {
                // The block on top of its page's free list is being freed again.
                double_free(p);
            }
            (*heap).stats.frees.bump();
            // Push onto the owner's list: two stores, no atomics.
            (*page).push(p as *mut Block);
            // Out of line only when the page left the full list, or emptied and is not the
            // one this size class allocates from (a malloc/free pair loop stays inline).
            if ((*page).used == 0 || (*page).in_full)
                && ((*page).in_full || *(*heap).pages.get_unchecked((*page).bin as usize) != page)
            {
                free_local_slow(heap, page);
            }
        } else {
            free_remote(seg, page, p);
        }
    }
}

#[cold]
#[inline(never)]
fn double_free(p: *mut u8) -> ! {
    crate::diag::fatal_pointer("free", p, "double free (the block is already free)")
}

/// The usable size of pool block `p`.
///
/// # Safety
/// `p` must point into a live pool segment.
#[inline]
pub unsafe fn usable_size(p: *const u8) -> usize {
    // SAFETY: per the caller.
    unsafe { (*segment::page_of(segment::segment_of(p), p)).block_size }
}

// ---------------------------------------------------------------------------------------
// Slow paths
// ---------------------------------------------------------------------------------------

#[cold]
#[inline(never)]
unsafe fn alloc_slow(bin: usize) -> *mut u8 {
    let mut heap = tls::heap();
    if heap.is_null() {
        heap = attach_thread();
        if heap.is_null() {
            return ptr::null_mut();
        }
    }
    // SAFETY: `heap` is this thread's live heap.
    unsafe {
        purge_idle_segments(&mut *heap);
        let page = find_page(heap, bin);
        if page.is_null() {
            return ptr::null_mut();
        }
        let block = (*page).pop();
        (*heap).stats.allocs.bump();
        block as *mut u8
    }
}

/// Unmaps this thread's cached empty segments that have waited longer than `PURGE_NS`
/// (called from slow paths: pool refills, big-block frees).
pub fn purge_idle_segments_of_this_thread() {
    let h = tls::heap();
    if !h.is_null() {
        // SAFETY: this thread's own heap.
        unsafe { purge_idle_segments(&mut *h) };
    }
}

/// Unmaps cached empty segments that have waited longer than `PURGE_NS` (checked on the
/// slow path, so a program that freed a large working set gives it back as it goes on).
unsafe fn purge_idle_segments(h: &mut Heap) {
    if h.empty.iter().all(|e| e.count == 0) {
        return;
    }
    let now = os::now_coarse_ns();
    for e in h.empty.iter_mut() {
        // SAFETY: the heap's own empty segments.
        unsafe { e.purge(now, false) };
    }
}

/// Makes `heap.pages[bin]` a page with a free block and returns it (null: out of memory).
unsafe fn find_page(heap: *mut Heap, bin: usize) -> *mut Page {
    // SAFETY: `heap` is the calling thread's live heap; every page on its lists is live.
    unsafe {
        let h = &mut *heap;
        let current = h.pages[bin];
        if current != empty_page() {
            // The current page ran dry: take back remote frees, or carve more blocks.
            if (*current).collect_remote() > 0 || (*current).extend() {
                return current;
            }
            h.pages[bin] = empty_page();
            if move_to_full(h, current) {
                h.pages[bin] = current; // blocks came back while we looked
                return current;
            }
        }
        if h.remote_full_pending.load(Relaxed) {
            h.remote_full_pending.store(false, Relaxed);
            reclaim_full_pages(h);
        }
        let mut p = h.queues[bin].first;
        while !p.is_null() {
            let next = (*p).next;
            if !(*p).free.is_null() || (*p).collect_remote() > 0 || (*p).extend() {
                h.pages[bin] = p;
                return p;
            }
            if move_to_full(h, p) {
                h.pages[bin] = p;
                return p;
            }
            p = next;
        }
        let p = new_page(h, bin);
        if p.is_null() {
            return p;
        }
        h.queues[bin].push_front(p);
        (*p).extend();
        h.pages[bin] = p;
        p
    }
}

/// Moves an exhausted page from its queue to the full list. Returns true if instead
/// other threads' frees arrived meanwhile (the page stays queued, with free blocks).
unsafe fn move_to_full(h: &mut Heap, p: *mut Page) -> bool {
    // SAFETY: `p` is a live page of `h`, on its bin's queue, with an empty free list.
    unsafe {
        if !(*p).try_mark_full() {
            return true;
        }
        h.queues[(*p).bin as usize].remove(p);
        (*p).in_full = true;
        h.full.push_front(p);
        false
    }
}

/// Brings pages on the full list that other threads freed into back to their queues.
unsafe fn reclaim_full_pages(h: &mut Heap) {
    // SAFETY: pages on `h.full` are live pages of `h`.
    unsafe {
        let mut p = h.full.first;
        while !p.is_null() {
            let next = (*p).next;
            if (*p).collect_remote() > 0 {
                // collect_remote cleared FULL_BIT with its swap.
                h.full.remove(p);
                (*p).in_full = false;
                h.queues[(*p).bin as usize].push_front(p);
            }
            p = next;
        }
    }
}

/// A local free left its page empty, or freed into a full page.
#[cold]
#[inline(never)]
unsafe fn free_local_slow(heap: *mut Heap, page: *mut Page) {
    // SAFETY: `heap` owns `page`; both are live.
    unsafe {
        let h = &mut *heap;
        if (*page).in_full {
            h.full.remove(page);
            (*page).in_full = false;
            (*page).clear_full_bit();
            h.queues[(*page).bin as usize].push_front(page);
        }
        // Keep the current page even when empty: a malloc/free pair loop must not
        // release and re-carve it on every iteration.
        if (*page).used == 0 && h.pages[(*page).bin as usize] != page {
            h.queues[(*page).bin as usize].remove(page);
            release_page(h, page);
        }
    }
}

/// Frees a block that another heap owns: push it on the page's atomic list.
#[inline(never)]
unsafe fn free_remote(seg: *mut Segment, page: *mut Page, p: *mut u8) {
    // SAFETY: the block is live, so its segment is too until the push below publishes it;
    // the owner is read first because after the push the owner may free the segment.
    // Heaps are immortal, so `owner` stays valid.
    unsafe {
        let owner = (*seg).owner;
        if (*page).push_remote(p as *mut Block) {
            (*owner).remote_full_pending.store(true, Release);
        }
        let me = tls::heap();
        if me.is_null() {
            REMOTE_FREES_WITHOUT_HEAP.fetch_add(1, Relaxed);
        } else {
            (*me).stats.remote_frees.bump();
        }
    }
}

static REMOTE_FREES_WITHOUT_HEAP: AtomicU64 = AtomicU64::new(0);

/// A fresh page for `bin` from one of the heap's segments (mapping one if needed).
unsafe fn new_page(h: &mut Heap, bin: usize) -> *mut Page {
    let block_size = bin_size(bin);
    let kind = PageKind::for_block(block_size);
    let k = kind as usize;
    // SAFETY: segments on the heap's lists are live and owned by it.
    unsafe {
        let mut seg = h.segments[k];
        if seg.is_null() {
            seg = h.empty[k].pop_newest();
            if seg.is_null() {
                h.empty[k].purge(os::now_coarse_ns(), false);
                seg = segment::create(kind, h);
            }
            if seg.is_null() {
                return ptr::null_mut();
            }
            push_segment(h, seg);
        }
        let (page, start, len) = segment::take_page(seg);
        if segment::is_full(seg) {
            remove_segment(h, seg);
        }
        (*page).init(bin, block_size, start, len);
        page
    }
}

/// Gives an empty page (already off every list) back to its segment.
unsafe fn release_page(h: &mut Heap, page: *mut Page) {
    let seg = segment::segment_of(page as *const u8);
    // SAFETY: `page` belongs to the live segment `seg`, owned by `h`.
    unsafe {
        (*page).in_use = false;
        if !(*seg).in_free_list {
            push_segment(h, seg);
        }
        (*seg).used_pages -= 1;
        if (*seg).used_pages == 0 {
            remove_segment(h, seg);
            let k = (*seg).kind as usize;
            let now = os::now_coarse_ns();
            h.empty[k].push(seg, now);
            h.empty[k].purge(now, false);
        }
    }
}

unsafe fn push_segment(h: &mut Heap, seg: *mut Segment) {
    let k = unsafe { (*seg).kind as usize };
    // SAFETY: `seg` and the list's head are live segments of `h`.
    unsafe {
        (*seg).prev = ptr::null_mut();
        (*seg).next = h.segments[k];
        if !h.segments[k].is_null() {
            (*h.segments[k]).prev = seg;
        }
        (*seg).in_free_list = true;
    }
    h.segments[k] = seg;
}

unsafe fn remove_segment(h: &mut Heap, seg: *mut Segment) {
    // SAFETY: `seg` is on `h`'s list for its kind; its neighbours are live.
    unsafe {
        let k = (*seg).kind as usize;
        let (prev, next) = ((*seg).prev, (*seg).next);
        if prev.is_null() {
            h.segments[k] = next;
        } else {
            (*prev).next = next;
        }
        if !next.is_null() {
            (*next).prev = prev;
        }
        (*seg).in_free_list = false;
        (*seg).next = ptr::null_mut();
        (*seg).prev = ptr::null_mut();
    }
}

// ---------------------------------------------------------------------------------------
// Thread attach and exit
// ---------------------------------------------------------------------------------------

struct Heaps {
    all: *mut Heap,
    parked: *mut Heap,
    arena: *mut u8,
    arena_left: usize,
}
// SAFETY: the raw pointers are only followed under the lock.
unsafe impl Send for Heaps {}

static HEAPS: SpinLock<Heaps> = SpinLock::new(Heaps {
    all: ptr::null_mut(),
    parked: ptr::null_mut(),
    arena: ptr::null_mut(),
    arena_left: 0,
});

/// Gives the calling thread a heap: a parked one if any, else a new one.
#[cold]
fn attach_thread() -> *mut Heap {
    crate::init::ensure();
    let (heap, adopted) = {
        let mut g = HEAPS.lock();
        if g.parked.is_null() {
            (new_heap(&mut g), false)
        } else {
            let h = g.parked;
            // SAFETY: parked heaps are live and on the parked list under the lock.
            g.parked = unsafe { (*h).next_parked };
            (h, true)
        }
    };
    if heap.is_null() {
        return heap;
    }
    if adopted {
        // Its pages may hold frees other threads made while it was parked.
        // SAFETY: we own the heap now.
        unsafe { (*heap).remote_full_pending.store(true, Relaxed) };
    }
    tls::set_heap(heap);
    crate::init::register_thread_heap(heap as *mut libc::c_void);
    heap
}

/// Where a heap sits inside its 4 KiB-aligned slot. Blocks at the start of a page (and of
/// any 4 KiB boundary) are the commonest hot blocks; a heap at offset 0 would put
/// `pages[0..]` at the same address modulo 4096, and the free path's store to the block's
/// link would then falsely delay its load of `pages[bin]` (4K aliasing).
const HEAP_OFFSET: usize = 1024;
const HEAP_SLOT: usize = os::round_up(HEAP_OFFSET + core::mem::size_of::<Heap>(), 4096);

fn new_heap(g: &mut Heaps) -> *mut Heap {
    if g.arena_left < HEAP_SLOT {
        const ARENA: usize = 256 * 1024;
        let a = os::map(0, ARENA);
        if a.is_null() {
            return ptr::null_mut();
        }
        g.arena = a;
        g.arena_left = ARENA;
    }
    let heap = g.arena.wrapping_add(HEAP_OFFSET) as *mut Heap;
    g.arena = g.arena.wrapping_add(HEAP_SLOT);
    g.arena_left -= HEAP_SLOT;
    // SAFETY: `heap` is fresh, zeroed arena memory, 64-byte aligned, with room for a Heap.
    unsafe {
        heap.write(Heap {
            pages: [empty_page(); NBINS],
            queues: [PageQueue::EMPTY; NBINS],
            full: PageQueue::EMPTY,
            segments: [ptr::null_mut(); KINDS],
            empty: [EmptySegments::NONE; KINDS],
            learner: LearnerCache {
                countdown: 0,
                threshold: 0,
                last_site: 0,
                last_slot: 0,
            },
            remote_full_pending: AtomicBool::new(false),
            stats: HeapStats::default(),
            next_all: g.all,
            next_parked: ptr::null_mut(),
        });
    }
    g.all = heap;
    heap
}

/// The thread-exit destructor (registered with `pthread_key_create`): give back what is
/// empty, then park the heap for the next thread.
///
/// # Safety
/// `value` must be the exiting thread's heap.
pub unsafe extern "C" fn on_thread_exit(value: *mut libc::c_void) {
    let heap = value as *mut Heap;
    // SAFETY: the heap belongs to this (exiting) thread until parked.
    unsafe {
        release_empty_pages(&mut *heap);
        tls::set_heap(ptr::null_mut());
        let mut g = HEAPS.lock();
        (*heap).next_parked = g.parked;
        g.parked = heap;
    }
}

/// Takes back remote frees and releases every empty page and every empty segment.
unsafe fn release_empty_pages(h: &mut Heap) {
    // SAFETY: every page on `h`'s lists is live and owned by `h`, i.e. this thread.
    unsafe {
        reclaim_full_pages(h);
        for bin in 0..NBINS {
            h.pages[bin] = empty_page();
            let mut p = h.queues[bin].first;
            while !p.is_null() {
                let next = (*p).next;
                (*p).collect_remote();
                if (*p).used == 0 {
                    h.queues[bin].remove(p);
                    release_page(h, p);
                }
                p = next;
            }
        }
        for k in 0..KINDS {
            h.empty[k].purge(0, true);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Stats and fork
// ---------------------------------------------------------------------------------------

/// This thread's heap (null before its first pool allocation, or after it exited).
#[inline(always)]
pub fn current() -> *mut Heap {
    tls::heap()
}

/// Pool counters summed over every heap.
#[derive(Clone, Copy, Debug, Default)]
pub struct PoolTotals {
    pub allocs: u64,
    pub frees: u64,
    pub remote_frees: u64,
    pub heaps: u64,
}

pub fn totals() -> PoolTotals {
    let g = HEAPS.lock();
    let mut t = PoolTotals {
        remote_frees: REMOTE_FREES_WITHOUT_HEAP.load(Relaxed),
        ..Default::default()
    };
    let mut h = g.all;
    while !h.is_null() {
        // SAFETY: heaps on `all` are immortal; their counters are atomics.
        unsafe {
            t.allocs += (*h).stats.allocs.get();
            t.frees += (*h).stats.frees.get();
            t.remote_frees += (*h).stats.remote_frees.get();
            t.heaps += 1;
            h = (*h).next_all;
        }
    }
    t
}

/// Fork: hold the heap list lock across `fork` so the child never sees it half-updated.
pub fn lock_for_fork() {
    HEAPS.lock_forever();
}

/// After fork, in parent and child.
///
/// # Safety
/// Only after `lock_for_fork` on this thread.
pub unsafe fn unlock_after_fork() {
    // SAFETY: forwarded.
    unsafe { HEAPS.force_unlock() };
}
