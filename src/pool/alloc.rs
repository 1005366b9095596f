//! Allocating a pool block: the fast path pops the current page of the size class (a few
//! inlined lines); the slow path, out of line, refills: it sends this thread's outboxes,
//! collects its inbox, and finds a page with a free block (the current one extended, the
//! next of the queue, a new one); when the class needs another page, it first gives back
//! what waited too long (`pages::purge_idle`; also every few refills).

use super::collect;
use super::free::flush_outbox;
use super::heap::{current, empty_page, Heap};
use super::page::Page;
use super::pages::{move_to_full, new_page, purge_idle, REFILLS_PER_IDLE_CHECK};
use crate::size_class::bin_of;
use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering::Relaxed};

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

/// What a layer above runs on every pool refill (`alloc_slow`): the big-block thermal
/// policy, set by `init`, so that a program that stopped making big allocations still
/// gives its idle cached big blocks back as it goes on. Null: nothing.
static ON_REFILL: AtomicPtr<()> = AtomicPtr::new(ptr::null_mut());

/// Sets the function every pool refill runs (it must be cheap when there is nothing to do).
pub fn set_on_refill(f: fn()) {
    ON_REFILL.store(f as *mut (), Relaxed);
}

/// The refill alone, for a caller whose pop (`alloc_fast`) just found the current page of
/// `bin` empty: a block of `bin`, or null (no heap, or out of memory).
///
/// # Safety
/// `bin < NBINS`.
#[inline(always)]
pub unsafe fn refill(bin: usize) -> *mut u8 {
    // SAFETY: forwarded.
    unsafe { alloc_slow(bin) }
}

#[cold]
#[inline(never)]
unsafe fn alloc_slow(bin: usize) -> *mut u8 {
    let heap = current();
    if heap.is_null() {
        return ptr::null_mut(); // no heap yet: the caller attaches one (see `thread`)
    }
    let on_refill = ON_REFILL.load(Relaxed);
    if !on_refill.is_null() {
        // SAFETY: only `set_on_refill` stores here, and it stores a `fn()`.
        unsafe { core::mem::transmute::<*mut (), fn()>(on_refill)() };
    }
    // SAFETY: `heap` is this thread's live heap.
    unsafe {
        // Blocks this thread freed for other heaps go to them; blocks others freed for
        // this one come back (perhaps into the page about to be refilled).
        flush_outbox(heap);
        if collect::pending(heap) {
            collect::collect(heap);
        }
        // What waits to be given back is looked at when a class needs a new page
        // (`choose_page`), and here on every few refills that may need none.
        let h = &mut *Heap::local(heap);
        if h.purge_due_ns != u64::MAX {
            h.refills_since_idle_check += 1;
            if h.refills_since_idle_check >= REFILLS_PER_IDLE_CHECK {
                h.refills_since_idle_check = 0;
                purge_idle(h, bin);
            }
        }
        let page = debug_check(find_page(heap, bin));
        if page.is_null() {
            return ptr::null_mut();
        }
        let block = (*page).pop();
        (*heap).stats.allocs.bump();
        block as *mut u8
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

/// Makes `heap.pages[bin]` a page with a free block and returns it (null: out of memory,
/// and the size class has no current page).
unsafe fn find_page(heap: *mut Heap, bin: usize) -> *mut Page {
    // SAFETY: `heap` is the calling thread's live heap.
    unsafe {
        let page = choose_page(heap, bin);
        let h = &mut *Heap::local(heap);
        h.pages[bin] = if page.is_null() { empty_page() } else { page };
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
            // The current page ran dry: blocks collected into it, or more to carve.
            if !(*current).free.get().is_null() || (*current).extend() {
                return current;
            }
            move_to_full(h, current);
        }
        // The class needs another page: the time to give back what waited too long (but
        // this class's spare, which the walk below is about to take).
        purge_idle(h, bin);
        let mut p = h.queues[bin].first;
        while !p.is_null() {
            let next = (*p).next.get();
            if !(*p).free.get().is_null() || (*p).extend() {
                return p;
            }
            move_to_full(h, p);
            p = next;
        }
        let p = new_page(heap, h, bin);
        if p.is_null() {
            return p;
        }
        h.queues[bin].push_front(p);
        if (*p).free.get().is_null() {
            (*p).extend(); // (a resident slot of this class comes carved: `new_page`)
        }
        p
    }
}
