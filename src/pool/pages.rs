//! A heap's pages and segments: the queues of each size class, the full list, the lists of
//! segments with free page slots and of emptied segments kept for reuse; new pages cut
//! from segments, empty pages given back, idle segments unmapped. Owner only: every
//! function here works on the calling thread's own heap.

use super::heap::{current, empty_page, Heap, Local};
use super::list::List;
use super::page::Page;
use super::segment::{self, PageKind, Segment};
use crate::os;
use crate::size_class::{bin_size, NBINS};
use core::ptr;

/// Empty segments kept per kind at most, and for at most this long.
pub const MAX_EMPTY: usize = 8;
pub const PURGE_NS: u64 = 200_000_000;

/// Unmaps the cached empty segments (newest first on `list`) that waited longer than
/// `PURGE_NS`, or are more than `MAX_EMPTY`; all of them if `all`.
///
/// # Safety
/// `list` must be one of the calling thread's heap's lists of empty segments.
pub unsafe fn purge(list: &mut List<Segment>, now: u64, all: bool) {
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
///
/// # Safety
/// `h` is the calling thread's heap.
pub unsafe fn purge_idle_segments(h: &mut Local) {
    if h.empty.iter().all(|e| e.len == 0) {
        return;
    }
    let now = os::now_coarse_ns();
    for e in h.empty.iter_mut() {
        // SAFETY: the heap's own empty segments.
        unsafe { purge(e, now, false) };
    }
}

/// Moves an exhausted page from its queue to the full list. (Only the owner changes a
/// page's free list: other threads' frees come back through the heap's inbox, and a free
/// into a full page moves it back, `free::free_local_slow`.)
///
/// # Safety
/// `p` is a live page of `h`, on its bin's queue, with an empty free list.
pub unsafe fn move_to_full(h: &mut Local, p: *mut Page) {
    // SAFETY: per the caller.
    unsafe {
        h.queues[(*p).bin as usize].remove(p);
        (*p).in_full.set(true);
        h.full.push_front(p);
    }
}

/// A fresh page for `bin` from one of the heap's segments (mapping one if needed).
///
/// # Safety
/// `owner` is the calling thread's heap and `h` its local part.
pub unsafe fn new_page(owner: *mut Heap, h: &mut Local, bin: usize) -> *mut Page {
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
///
/// # Safety
/// `page` is an empty page of `h`'s heap, on no list.
pub unsafe fn release_page(h: &mut Local, page: *mut Page) {
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

/// Releases every empty page and every empty segment of the heap (thread exit): the
/// current pages are dropped, the full pages stay.
///
/// # Safety
/// `h` is the calling thread's heap.
pub unsafe fn release_empty_pages(h: &mut Local) {
    // SAFETY: every page on `h`'s lists is live and owned by `h`, i.e. this thread.
    unsafe {
        for bin in 0..NBINS {
            h.pages[bin] = empty_page();
            let mut p = h.queues[bin].first;
            while !p.is_null() {
                let next = (*p).next.get();
                if (*p).used.get() == 0 {
                    h.queues[bin].remove(p);
                    release_page(h, p);
                }
                p = next;
            }
        }
        for k in 0..h.empty.len() {
            purge(&mut h.empty[k], 0, true);
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
