//! The thread-local heap: one per thread, owning segments and pages. The fast paths (a
//! pop and a push on a page's free list) are a few inlined lines; everything else is the
//! out-of-line slow path below them.
//!
//! Heaps are immortal: when a thread exits its heap gives back every empty page and is
//! *parked*; the next new thread adopts it, pages, pending remote frees and all. So a
//! segment's `owner` pointer never dangles, and thread churn does not grow memory.
//!
//! The pool does not attach heaps to threads by itself: its allocation returns null on a
//! thread that has none, and the layer above (`init::attach_thread`, through the front)
//! attaches one (`attach`) and parks it at thread exit (`detach`).

use super::list::List;
use super::page;
use super::page::{Block, Page, PageQueue};
use super::segment::{self, PageKind, Segment, KINDS};
use crate::lock::SpinLock;
use crate::size_class::{bin_of, bin_size, NBINS};
use crate::{os, tls};
use core::cell::UnsafeCell;
use core::ptr;
use core::sync::atomic::{
    AtomicBool, AtomicPtr, AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};

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

/// A thread's heap. The owner's state sits in `local`, reached only through
/// `Heap::local` by the owning thread; what other threads touch (the remote-free flag, the
/// counters the stats read, the list links under the heap-list lock) lies outside it. So
/// the owner's `&mut Local` never covers a byte another thread reads or writes (a
/// `&mut Heap` would, which Rust's aliasing rules forbid).
#[repr(C)]
pub struct Heap {
    local: UnsafeCell<Local>,
    /// Set by other threads when they free into a page on `full`.
    pub remote_full_pending: AtomicBool,
    pub stats: HeapStats,
    /// The next heap on `ALL_HEAPS`: set once, before the heap is published there.
    next_all: *mut Heap,
    // The rest changes under the heap-list lock only.
    next_parked: *mut Heap,
    /// The process and thread the heap is attached to (0, 0: parked, or never attached).
    owner_pid: libc::pid_t,
    owner_tid: libc::pid_t,
    /// On the list of late heaps (attached after the thread's exit destructor had run).
    late: bool,
    next_late: *mut Heap,
}

/// The owner-only part of a heap.
#[repr(C)]
pub struct Local {
    /// The page each size class allocates from (`EMPTY_PAGE` when none): the fast path.
    pub pages: [*mut Page; NBINS],
    /// Every non-full page of each size class, the current one included.
    pub queues: [PageQueue; NBINS],
    /// Pages with no free block left.
    pub full: PageQueue,
    /// Per page kind: segments with at least one free page slot.
    pub segments: [List<Segment>; KINDS],
    /// Per page kind: recently emptied segments, kept so a program that frees and then
    /// allocates again reuses them without map, unmap or page faults (mimalloc's delayed
    /// purge); older than `PURGE_NS` or beyond `MAX_EMPTY`, they are unmapped.
    pub empty: [List<Segment>; KINDS],
}

impl Heap {
    /// The owner-only part of `heap`.
    ///
    /// # Safety
    /// `heap` must be live; only its owning thread may use the result.
    #[inline(always)]
    pub unsafe fn local(heap: *mut Heap) -> *mut Local {
        // SAFETY: a raw projection to the cell and its contents: no reference is made.
        UnsafeCell::raw_get(unsafe { &raw const (*heap).local })
    }
}

/// Empty segments kept per kind at most, and for at most this long.
pub const MAX_EMPTY: usize = 8;
pub const PURGE_NS: u64 = 200_000_000;

/// Unmaps the cached empty segments (newest first on `list`) that waited longer than
/// `PURGE_NS`, or are more than `MAX_EMPTY`; all of them if `all`.
///
/// # Safety
/// `list` must be one of the calling thread's heap's lists of empty segments.
unsafe fn purge(list: &mut List<Segment>, now: u64, all: bool) {
    // SAFETY: segments on this list are empty, live and ours.
    unsafe {
        while !list.last.is_null()
            && (all
                || list.len > MAX_EMPTY
                || now.saturating_sub((*list.last).emptied_at_ns) > PURGE_NS)
        {
            let seg = list.last;
            list.remove(seg);
            segment::destroy(seg);
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
    let heap = current();
    if !heap.is_null() {
        // SAFETY: a non-null slot is this thread's live heap; `bin < NBINS`; `pages[bin]`
        // is a live page or the empty page, whose `free` is null.
        unsafe {
            let page = *(*Heap::local(heap)).pages.get_unchecked(bin);
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

/// The pop alone: a block of size class `bin` from `heap`'s current page, or null (no
/// heap, or the page's free list is empty) with nothing changed.
///
/// # Safety
/// `bin < NBINS`; `heap` is null or this thread's heap.
#[inline(always)]
pub unsafe fn alloc_fast(heap: *mut Heap, bin: usize) -> *mut u8 {
    if heap.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: a non-null slot is this thread's live heap; `bin < NBINS`; `pages[bin]` is a
    // live page or the empty page, whose `free` is null.
    unsafe {
        let page = *(*Heap::local(heap)).pages.get_unchecked(bin);
        let block = (*page).pop();
        if !block.is_null() {
            (*heap).stats.allocs.bump();
        }
        block as *mut u8
    }
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
        let heap = current();
        if (*seg).owner == heap as *mut () {
            let top = (*page).free.get();
            if p as *mut Block == top {
                // The block on top of its page's free list is being freed again.
                double_free(p);
            }
            push_local(heap, page, p, top);
        } else {
            free_remote(seg, page, p);
        }
    }
}

/// The local free alone, for any pointer: true when `p` was a block of `heap` and is
/// freed; false, with nothing changed, when it is anything else (null, not a pool block,
/// another heap's block, any block when `heap` is null, the block on top of its free list:
/// a double free), which the caller's full path sorts out.
///
/// # Safety
/// `heap` is null or this thread's heap; `p` is null, foreign, or a live block of ours.
#[inline(always)]
pub unsafe fn free_fast(heap: *mut Heap, p: *mut u8) -> bool {
    if !segment::is_pool(p) {
        return false;
    }
    let seg = segment::segment_of(p);
    // SAFETY: the map says `p` lies in a live pool segment, so its page record is live;
    // an owner equal to our non-null heap makes the page ours.
    unsafe {
        let page = segment::page_of(seg, p);
        let top = (*page).free.get();
        // A live segment's owner is never null, so a null `heap` never matches.
        if (*seg).owner != heap as *mut () || p as *mut Block == top {
            return false; // another heap's block (or no heap), or a double free
        }
        push_local(heap, page, p, top);
    }
    true
}

/// Pushes `p` onto its page's local free list, whose head is `top`.
///
/// # Safety
/// `heap` is this thread's heap and owns `page`, a live page holding the live block `p`;
/// `top` is the page's free-list head.
#[inline(always)]
unsafe fn push_local(heap: *mut Heap, page: *mut Page, p: *mut u8, top: *mut Block) {
    // SAFETY: per the caller.
    unsafe {
        (*heap).stats.frees.bump();
        // Push onto the owner's list: the encoded link and two stores, no atomics.
        (*page).push_onto(p as *mut Block, top);
        // Out of line only when the page left the full list, or emptied and is not the
        // one this size class allocates from (a malloc/free pair loop stays inline).
        // A page record out of use (segment metadata, a free page slot) holds
        // `UNUSED_SENTINEL`, so a stray pointer into it lands here too, and aborts.
        if ((*page).used.get() == 0
            && *(*Heap::local(heap))
                .pages
                .get_unchecked((*page).bin as usize)
                != page)
            || (*page).in_full.get()
        {
            free_local_slow(heap, page, p);
        }
    }
}

#[cold]
#[inline(never)]
fn double_free(p: *mut u8) -> ! {
    crate::diag::fatal_pointer("free", p, "double free (the block is already free)")
}

#[cold]
#[inline(never)]
fn not_a_block(p: *mut u8) -> ! {
    crate::diag::fatal_pointer(
        "free",
        p,
        "not a block: segment metadata or a page out of use",
    )
}

/// Arms the checked mode's freed mark (`page::FREED_MARK`, glibc's tcache key): from now
/// on a free block's second word holds a per-process random value, written when a page
/// carves blocks and by `check_free`, cleared by `forget_freed` when the block is handed
/// out. `check_free` looks for a block that holds it on the page's lists. A program's own
/// data equal to it by chance costs a walk, never a false report (the walk decides).
/// `init` calls it in the checked mode, before the first block is carved.
pub fn arm_freed_mark() {
    let _ = page::FREED_MARK.compare_exchange(0, os::random_u64() as usize | 1, Relaxed, Relaxed);
}

fn freed_key() -> usize {
    page::FREED_MARK.load(Relaxed)
}

/// The checked mode's validation of a free (`HAKMEM_CHECK=1`): `p` must be the start of a
/// block carved from a page in use, and (when this thread owns the page) not already on
/// its free lists. Aborts naming `p` otherwise. A block marked freed (`freed_key`) costs a
/// walk of the page's lists: O(free blocks); any other, two words.
///
/// # Safety
/// `p` must point into a live pool segment.
pub unsafe fn check_free(p: *mut u8) {
    let seg = segment::segment_of(p);
    // SAFETY: `p` lies in a live segment, so its page record is live.
    unsafe {
        let page = segment::page_of(seg, p);
        if !(*page).in_use.get() {
            not_a_block(p);
        }
        // Only the owner may read what it changes (the carved count, its free list); frees
        // from other threads are checked against the page's slots alone.
        let owner = (*seg).owner == current() as *mut ();
        let start = if owner {
            (*page).is_block_start(p)
        } else {
            (*page).is_block_slot(p)
        };
        if !start {
            crate::diag::fatal_pointer("free", p, "not the start of a block (an interior pointer)");
        }
        // Only a block marked freed is looked for on the lists, so a live block costs a
        // load. (Every block holds two words: the smallest class is 16 bytes.)
        let mark = (p as *mut usize).add(1);
        let key = freed_key();
        if owner && key != 0 && *mark == key && (*page).holds_free(p as *mut Block) {
            double_free(p);
        }
        *mark = key;
    }
}

/// Clears the checked mode's freed mark (`freed_key`) of a block just handed out, before
/// the program sees it (a block it frees unwritten then costs no walk).
///
/// # Safety
/// `p` is null or a block this thread just allocated, not yet handed to the program.
pub unsafe fn forget_freed(p: *mut u8) {
    if segment::is_pool(p) {
        // SAFETY: a fresh pool block of at least 16 bytes, ours until returned.
        unsafe { (p as *mut usize).add(1).write(0) };
    }
}

/// The checked mode's check of an allocation (`HAKMEM_CHECK=1`): `p` (any pointer into the
/// block just handed out; null or a big block: nothing to check) was popped from its page's
/// free list, and the link it held, now the list's head, must be null or a block start of
/// the same page. The pop's own check bounds it to the page's 1 MiB region only.
///
/// # Safety
/// `p` is null or a block this thread just allocated.
pub unsafe fn check_popped(p: *mut u8) {
    if !segment::is_pool(p) {
        return;
    }
    // SAFETY: `p` lies in a live pool segment, in a page this thread owns (it just
    // allocated from it), so its record and free list are ours to read.
    unsafe {
        let page = segment::page_of(segment::segment_of(p), p);
        let head = (*page).free.get();
        if !head.is_null() && !(*page).is_block_start(head as *const u8) {
            super::page::corrupt_next(page, head);
        }
    }
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

/// What a layer above runs on every pool refill (`alloc_slow`): the big-block thermal
/// policy, set by `init`, so that a program that stopped making big allocations still
/// gives its idle cached big blocks back as it goes on. Null: nothing.
static ON_REFILL: AtomicPtr<()> = AtomicPtr::new(ptr::null_mut());

/// Sets the function every pool refill runs (it must be cheap when there is nothing to do).
pub fn set_on_refill(f: fn()) {
    ON_REFILL.store(f as *mut (), Relaxed);
}

#[cold]
#[inline(never)]
unsafe fn alloc_slow(bin: usize) -> *mut u8 {
    let heap = current();
    if heap.is_null() {
        return ptr::null_mut(); // no heap yet: the caller attaches one (see the module doc)
    }
    let on_refill = ON_REFILL.load(Relaxed);
    if !on_refill.is_null() {
        // SAFETY: only `set_on_refill` stores here, and it stores a `fn()`.
        unsafe { core::mem::transmute::<*mut (), fn()>(on_refill)() };
    }
    // SAFETY: `heap` is this thread's live heap.
    unsafe {
        purge_idle_segments(&mut *Heap::local(heap));
        let page = debug_check(find_page(heap, bin));
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
    let h = current();
    if !h.is_null() {
        // SAFETY: this thread's own heap.
        unsafe { purge_idle_segments(&mut *Heap::local(h)) };
    }
}

/// Unmaps every cached empty segment of this thread (out of memory: see
/// `big::release_reserves`). Whether there was any.
pub fn purge_all_empty_segments_of_this_thread() -> bool {
    let h = current();
    if h.is_null() {
        return false;
    }
    // SAFETY: this thread's own heap and its own empty segments.
    unsafe {
        let local = &mut *Heap::local(h);
        let any = local.empty.iter().any(|e| e.len != 0);
        for e in local.empty.iter_mut() {
            purge(e, 0, true);
        }
        any
    }
}

/// Unmaps cached empty segments that have waited longer than `PURGE_NS` (checked on the
/// slow path, so a program that freed a large working set gives it back as it goes on).
unsafe fn purge_idle_segments(h: &mut Local) {
    if h.empty.iter().all(|e| e.len == 0) {
        return;
    }
    let now = os::now_coarse_ns();
    for e in h.empty.iter_mut() {
        // SAFETY: the heap's own empty segments.
        unsafe { purge(e, now, false) };
    }
}

/// Makes `heap.pages[bin]` a page with a free block and returns it (null: out of memory,
/// and the size class has no current page).
unsafe fn find_page(heap: *mut Heap, bin: usize) -> *mut Page {
    // SAFETY: `heap` is the calling thread's live heap.
    unsafe {
        let page = choose_page(heap, bin);
        let h = &mut *Heap::local(heap);
        let current = if page.is_null() { empty_page() } else { page };
        h.pages[bin] = current;
        page
    }
}

/// The page `find_page` makes current: the current one refilled, or another of the size
/// class's queue, or a new one.
unsafe fn choose_page(heap: *mut Heap, bin: usize) -> *mut Page {
    // SAFETY: `heap` is the calling thread's live heap; every page on its lists is live.
    unsafe {
        let h = &mut *Heap::local(heap);
        let current = h.pages[bin];
        if current != empty_page() {
            // The current page ran dry: take back remote frees, or carve more blocks.
            if (*current).collect_remote() > 0 || (*current).extend() {
                return current;
            }
            if move_to_full(h, current) {
                return current; // blocks came back while we looked
            }
        }
        if (*heap).remote_full_pending.load(Relaxed) {
            (*heap).remote_full_pending.store(false, Relaxed);
            reclaim_full_pages(h);
        }
        let mut p = h.queues[bin].first;
        while !p.is_null() {
            let next = (*p).next.get();
            if !(*p).free.get().is_null() || (*p).collect_remote() > 0 || (*p).extend() {
                return p;
            }
            if move_to_full(h, p) {
                return p;
            }
            p = next;
        }
        let p = new_page(heap, h, bin);
        if p.is_null() {
            return p;
        }
        h.queues[bin].push_front(p);
        (*p).extend();
        p
    }
}

/// Debug builds check every page the slow path hands out.
#[inline]
unsafe fn debug_check(page: *mut Page) -> *mut Page {
    if cfg!(debug_assertions) && !page.is_null() {
        // SAFETY: a live page of this thread's heap.
        unsafe { (*page).check() };
    }
    page
}

/// Moves an exhausted page from its queue to the full list. Returns true if instead
/// other threads' frees arrived meanwhile (the page stays queued, with free blocks).
unsafe fn move_to_full(h: &mut Local, p: *mut Page) -> bool {
    // SAFETY: `p` is a live page of `h`, on its bin's queue, with an empty free list.
    unsafe {
        if !(*p).try_mark_full() {
            return true;
        }
        h.queues[(*p).bin as usize].remove(p);
        (*p).in_full.set(true);
        h.full.push_front(p);
        false
    }
}

/// Brings pages on the full list that other threads freed into back to their queues.
unsafe fn reclaim_full_pages(h: &mut Local) {
    // SAFETY: pages on `h.full` are live pages of `h`.
    unsafe {
        let mut p = h.full.first;
        while !p.is_null() {
            let next = (*p).next.get();
            if (*p).collect_remote() > 0 {
                // collect_remote cleared FULL_BIT with its swap.
                h.full.remove(p);
                (*p).in_full.set(false);
                h.queues[(*p).bin as usize].push_front(p);
            }
            p = next;
        }
    }
}

/// A local free left its page empty, or freed into a full page; or `p` was no block at
/// all (a page record out of use: abort).
#[cold]
#[inline(never)]
unsafe fn free_local_slow(heap: *mut Heap, page: *mut Page, p: *mut u8) {
    // SAFETY: `heap` owns `page`; both are live.
    unsafe {
        if !(*page).in_use.get() {
            not_a_block(p);
        }
        let h = &mut *Heap::local(heap);
        if (*page).in_full.get() {
            h.full.remove(page);
            (*page).in_full.set(false);
            (*page).clear_full_bit();
            h.queues[(*page).bin as usize].push_front(page);
        }
        // Keep the current page even when empty: a malloc/free pair loop must not
        // release and re-carve it on every iteration.
        if (*page).used.get() == 0 && h.pages[(*page).bin as usize] != page {
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
        if !(*page).in_use.get() {
            not_a_block(p);
        }
        let owner = (*seg).owner as *mut Heap;
        if (*page).push_remote(p as *mut Block) {
            (*owner).remote_full_pending.store(true, Release);
        }
        let me = current();
        if me.is_null() {
            REMOTE_FREES_WITHOUT_HEAP.fetch_add(1, Relaxed);
        } else {
            (*me).stats.remote_frees.bump();
        }
    }
}

static REMOTE_FREES_WITHOUT_HEAP: AtomicU64 = AtomicU64::new(0);

/// A fresh page for `bin` from one of the heap's segments (mapping one if needed).
unsafe fn new_page(owner: *mut Heap, h: &mut Local, bin: usize) -> *mut Page {
    let block_size = bin_size(bin);
    let kind = PageKind::for_block(block_size);
    let k = kind as usize;
    // SAFETY: segments on the heap's lists are live and owned by it.
    unsafe {
        let mut seg = h.segments[k].first;
        if seg.is_null() {
            // The most recently emptied segment first: its pages are the likeliest resident.
            seg = h.empty[k].pop_front();
            if seg.is_null() {
                purge(&mut h.empty[k], os::now_coarse_ns(), false);
                seg = segment::create(kind, owner as *mut ());
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
        Page::init(page, bin, block_size, start, len);
        page
    }
}

/// Gives an empty page (already off every list) back to its segment.
unsafe fn release_page(h: &mut Local, page: *mut Page) {
    let seg = segment::segment_of(page as *const u8);
    // SAFETY: `page` belongs to the live segment `seg`, owned by `h`.
    unsafe {
        (*page).retire();
        if !(*seg).in_free_list {
            push_segment(h, seg);
        }
        (*seg).used_pages -= 1;
        if (*seg).used_pages == 0 {
            remove_segment(h, seg);
            let k = (*seg).kind as usize;
            let now = os::now_coarse_ns();
            (*seg).emptied_at_ns = now;
            h.empty[k].push_front(seg);
            purge(&mut h.empty[k], now, false);
        }
    }
}

/// Puts `seg` on the heap's list of segments with free page slots for its kind.
unsafe fn push_segment(h: &mut Local, seg: *mut Segment) {
    // SAFETY: `seg` is a live segment of `h`, on no list.
    unsafe {
        h.segments[(*seg).kind as usize].push_front(seg);
        (*seg).in_free_list = true;
    }
}

/// Takes `seg` off the heap's list of segments with free page slots.
unsafe fn remove_segment(h: &mut Local, seg: *mut Segment) {
    // SAFETY: `seg` is on `h`'s list for its kind.
    unsafe {
        h.segments[(*seg).kind as usize].remove(seg);
        (*seg).in_free_list = false;
    }
}

// ---------------------------------------------------------------------------------------
// Thread attach and exit
// ---------------------------------------------------------------------------------------

/// Every heap ever made, newest first: a list that only grows (heaps are immortal), pushed
/// under the heap-list lock and read without it (the stats, the exit report: a report
/// written from `_exit` in a signal handler must not wait for a lock the interrupted
/// thread may hold).
static ALL_HEAPS: AtomicPtr<Heap> = AtomicPtr::new(ptr::null_mut());

struct Heaps {
    parked: *mut Heap,
    /// Heaps attached after their thread's exit destructor had run. glibc runs destructors
    /// in at most 4 rounds; a thread that allocates in the last one gets a heap that no
    /// destructor parks. Such heaps are parked once their thread is gone (`reclaim`).
    late: *mut Heap,
    /// Attaches since `reclaim` last checked every attached heap, and how many to wait for
    /// before the next check (a thread whose *first* pool allocation came in its last
    /// destructor round has an ordinary-looking heap that no destructor parks either).
    /// Waiting as many attaches as there were attached heaps keeps the checks' syscalls at
    /// one per attach on average.
    attaches: usize,
    scan_after: usize,
    arena: *mut u8,
    arena_left: usize,
}
// SAFETY: the raw pointers are only followed under the lock.
unsafe impl Send for Heaps {}

/// Attaches between two checks of every attached heap, at least.
const SCAN_EVERY: usize = 64;

static HEAPS: SpinLock<Heaps> = SpinLock::new(
    crate::lock::rank::HEAPS,
    Heaps {
        parked: ptr::null_mut(),
        late: ptr::null_mut(),
        attaches: 0,
        scan_after: SCAN_EVERY,
        arena: ptr::null_mut(),
        arena_left: 0,
    },
);

/// Gives the calling thread a heap, a parked one if any, else a new one, and makes it the
/// thread's current heap. `late`: the thread's exit destructor has already run, so no
/// destructor may park this heap (see `Heaps::late`). Null when out of memory.
pub fn attach(late: bool) -> *mut Heap {
    let (pid, tid) = (process_id(), this_thread_id());
    let (heap, adopted) = {
        let mut g = HEAPS.lock();
        g.attaches += 1;
        if g.parked.is_null() {
            reclaim(&mut g, pid);
        }
        let taken = if g.parked.is_null() {
            (new_heap(&mut g), false)
        } else {
            let h = g.parked;
            // SAFETY: parked heaps are live and on the parked list under the lock.
            g.parked = unsafe { (*h).next_parked };
            (h, true)
        };
        if !taken.0.is_null() {
            // SAFETY: the heap is ours; its owner fields and the late list change under the
            // lock.
            unsafe {
                (*taken.0).owner_pid = pid;
                (*taken.0).owner_tid = tid;
                if late {
                    (*taken.0).late = true;
                    (*taken.0).next_late = g.late;
                    g.late = taken.0;
                }
            }
        }
        taken
    };
    if heap.is_null() {
        return heap;
    }
    if adopted {
        // Its pages may hold frees other threads made while it was parked.
        // SAFETY: we own the heap now.
        unsafe { (*heap).remote_full_pending.store(true, Relaxed) };
    }
    set_current(heap);
    heap
}

/// Makes `heap` (null: none) this thread's heap, and its fast heap where the configuration
/// lets the C ABI's inline paths use the pool (`config::pool_fast`).
fn set_current(heap: *mut Heap) {
    tls::set_heap(heap as *mut ());
    let fast = if crate::config::pool_fast() {
        heap
    } else {
        ptr::null_mut()
    };
    tls::set_fast_heap(fast as *mut ());
}

fn this_thread_id() -> libc::pid_t {
    // SAFETY: gettid has no preconditions and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as libc::pid_t }
}

fn process_id() -> libc::pid_t {
    // SAFETY: getpid has no preconditions and cannot fail.
    unsafe { libc::getpid() }
}

/// Whether the thread `tid` of this process has exited (its id is gone). Keeps `errno`.
fn thread_is_gone(pid: libc::pid_t, tid: libc::pid_t) -> bool {
    // SAFETY: errno is this thread's; tgkill with signal 0 only checks that `tid` exists.
    unsafe {
        let saved = *libc::__errno_location();
        let r = libc::syscall(libc::SYS_tgkill, pid, tid, 0);
        let gone = r != 0 && *libc::__errno_location() == libc::ESRCH;
        *libc::__errno_location() = saved;
        gone
    }
}

/// Parks heaps whose threads have exited without a destructor parking them: the late
/// heaps at once, and every attached heap once `scan_after` attaches have passed. A heap is
/// parked only if it belongs to this process (`pid`) and its thread id is gone: a new
/// thread that reused the id only delays this, never makes it early. Heaps inherited
/// through `fork` from the parent's other threads (another pid) are never reused: their
/// threads may have stopped halfway through an operation.
fn reclaim(g: &mut Heaps, pid: libc::pid_t) {
    let mut link: *mut *mut Heap = &mut g.late;
    // SAFETY: heaps are immortal; their lists and owner fields change only under the lock,
    // which the caller holds.
    unsafe {
        while !(*link).is_null() {
            let h = *link;
            let foreign = (*h).owner_pid != pid;
            if foreign || thread_is_gone(pid, (*h).owner_tid) {
                *link = (*h).next_late;
                (*h).late = false;
                (*h).next_late = ptr::null_mut();
                if !foreign {
                    park(g, h);
                }
            } else {
                link = &raw mut (*h).next_late;
            }
        }
        if !g.parked.is_null() || g.attaches < g.scan_after {
            return;
        }
        let mut attached = 0;
        let mut h = ALL_HEAPS.load(Acquire);
        while !h.is_null() {
            let mine = (*h).owner_tid != 0 && !(*h).late && (*h).owner_pid == pid;
            if mine && thread_is_gone(pid, (*h).owner_tid) {
                park(g, h);
            } else if mine {
                attached += 1;
            }
            h = (*h).next_all;
        }
        g.attaches = 0;
        g.scan_after = attached.max(SCAN_EVERY);
    }
}

/// Puts `h` (attached to no live thread, on no late list) on the parked list.
///
/// # Safety
/// The caller holds the lock.
unsafe fn park(g: &mut Heaps, h: *mut Heap) {
    // SAFETY: per the caller.
    unsafe {
        (*h).owner_pid = 0;
        (*h).owner_tid = 0;
        (*h).next_parked = g.parked;
    }
    g.parked = h;
}

/// Takes `heap` off the late list, if it is there.
fn unlist_late(g: &mut Heaps, heap: *mut Heap) {
    let mut link: *mut *mut Heap = &mut g.late;
    // SAFETY: as in `reclaim`.
    unsafe {
        while !(*link).is_null() {
            if *link == heap {
                *link = (*heap).next_late;
                (*heap).late = false;
                (*heap).next_late = ptr::null_mut();
                return;
            }
            link = &raw mut (**link).next_late;
        }
    }
}

/// In a child after `fork`: the calling thread's heap now belongs to this process and
/// thread (its ids changed). The parent's other heaps keep the parent's pid: never reused.
pub fn after_fork_in_child() {
    let heap = current();
    if heap.is_null() {
        return;
    }
    let _g = HEAPS.lock();
    // SAFETY: this thread's heap; its owner fields change under the lock.
    unsafe {
        (*heap).owner_pid = process_id();
        (*heap).owner_tid = this_thread_id();
    }
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
            local: UnsafeCell::new(Local {
                pages: [empty_page(); NBINS],
                queues: [PageQueue::EMPTY; NBINS],
                full: PageQueue::EMPTY,
                segments: [List::EMPTY; KINDS],
                empty: [List::EMPTY; KINDS],
            }),
            remote_full_pending: AtomicBool::new(false),
            stats: HeapStats::default(),
            next_all: ALL_HEAPS.load(Relaxed),
            next_parked: ptr::null_mut(),
            owner_pid: 0,
            owner_tid: 0,
            late: false,
            next_late: ptr::null_mut(),
        });
    }
    ALL_HEAPS.store(heap, Release);
    heap
}

/// Detaches the exiting thread's heap: gives back what is empty, then parks the heap for
/// the next thread.
///
/// # Safety
/// `heap` must be the calling thread's heap, and the thread must be exiting.
pub unsafe fn detach(heap: *mut Heap) {
    // SAFETY: the heap belongs to this (exiting) thread until parked.
    unsafe {
        release_empty_pages(&mut *Heap::local(heap));
        set_current(ptr::null_mut());
        let mut g = HEAPS.lock();
        if (*heap).late {
            unlist_late(&mut g, heap);
        }
        park(&mut g, heap);
    }
}

/// Checks the calling thread's heap and panics naming the first broken invariant (a no-op
/// on a thread without a heap). The stress tests call it; debug builds check each page the
/// slow path hands out.
pub fn check_current() {
    let heap = current();
    if !heap.is_null() {
        // SAFETY: this thread's own heap.
        unsafe { check(heap) };
    }
}

/// Every page on the heap's lists is in use, of its list's class, consistent
/// (`Page::check`); each size class's current page is on its queue; every segment with
/// free slots is the heap's, in the segment map, with `used_pages` right; cached empty
/// segments are empty.
///
/// # Safety
/// `heap` must be the calling thread's heap.
unsafe fn check(heap: *mut Heap) {
    // SAFETY: the owner's own state; every page and segment on its lists is live.
    unsafe {
        let h = &*Heap::local(heap);
        for bin in 0..NBINS {
            let mut p = h.queues[bin].first;
            while !p.is_null() {
                assert!(
                    (*p).bin as usize == bin && !(*p).in_full.get(),
                    "page {p:p} on queue {bin}: bin {}, in_full {}",
                    (*p).bin,
                    (*p).in_full.get()
                );
                (*p).check();
                p = (*p).next.get();
            }
            let current = h.pages[bin];
            assert!(
                current == empty_page() || h.queues[bin].contains(current),
                "current page {current:p} of class {bin} is not on its queue"
            );
        }
        let mut p = h.full.first;
        while !p.is_null() {
            assert!(
                (*p).in_full.get(),
                "page {p:p} on the full list is not marked full"
            );
            (*p).check();
            p = (*p).next.get();
        }
        for k in 0..KINDS {
            let mut seg = h.segments[k].first;
            while !seg.is_null() {
                segment::check(seg, heap as *mut ());
                assert!(
                    (*seg).in_free_list && !segment::is_full(seg),
                    "segment {seg:p}"
                );
                seg = (*seg).next;
            }
            let mut seg = h.empty[k].first;
            while !seg.is_null() {
                segment::check(seg, heap as *mut ());
                assert_eq!((*seg).used_pages, 0, "cached empty segment {seg:p} in use");
                seg = (*seg).next;
            }
        }
    }
}

/// Takes back remote frees and releases every empty page and every empty segment.
unsafe fn release_empty_pages(h: &mut Local) {
    // SAFETY: every page on `h`'s lists is live and owned by `h`, i.e. this thread.
    unsafe {
        reclaim_full_pages(h);
        for bin in 0..NBINS {
            h.pages[bin] = empty_page();
            let mut p = h.queues[bin].first;
            while !p.is_null() {
                let next = (*p).next.get();
                (*p).collect_remote();
                if (*p).used.get() == 0 {
                    h.queues[bin].remove(p);
                    release_page(h, p);
                }
                p = next;
            }
        }
        for k in 0..KINDS {
            purge(&mut h.empty[k], 0, true);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Stats and fork
// ---------------------------------------------------------------------------------------

/// This thread's heap (null before its first pool allocation, or after it exited).
#[inline(always)]
pub fn current() -> *mut Heap {
    tls::heap() as *mut Heap
}

/// This thread's heap where the C ABI's inline paths may use it (see `set_current`); null
/// otherwise, which sends them to the full path.
#[inline(always)]
pub fn fast() -> *mut Heap {
    tls::fast_heap() as *mut Heap
}

/// Pool counters summed over every heap.
#[derive(Clone, Copy, Debug, Default)]
pub struct PoolTotals {
    pub allocs: u64,
    pub frees: u64,
    pub remote_frees: u64,
    pub heaps: u64,
}

/// Takes no lock (see `ALL_HEAPS`).
pub fn totals() -> PoolTotals {
    let mut t = PoolTotals {
        remote_frees: REMOTE_FREES_WITHOUT_HEAP.load(Relaxed),
        ..Default::default()
    };
    let mut h = ALL_HEAPS.load(Acquire);
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
