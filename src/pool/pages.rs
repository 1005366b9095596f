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
/// How long a page given back to a segment still in use keeps its memory: taken again
/// within this time it is still resident (no page faults); after it, its memory goes back
/// to the system (`MADV_DONTNEED`), so a page slot that served several size classes in
/// turn does not keep every page any of them ever touched.
pub const PAGE_PURGE_NS: u64 = 10_000_000;

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

/// How long a size class keeps its spare page (an empty page beside its current one)
/// before giving it back to its segment.
pub const SPARE_NS: u64 = 100_000_000;

/// `purge_idle` on this thread's heap, for no size class in particular (the big-block
/// thermal policy's clock tick, from big-block calls and pool refills).
pub fn purge_idle_of_this_thread() {
    let h = current();
    if !h.is_null() {
        // SAFETY: this thread's own heap.
        unsafe { purge_idle(&mut *Heap::local(h), NO_BIN) };
    }
}

/// `purge_idle`'s class argument when no size class is asking for a page.
pub const NO_BIN: usize = usize::MAX;

/// How many refills that need no new page go by between two looks at what waits
/// (`alloc::alloc_slow`): a program whose refills are fed by other threads' frees, or by
/// carving its current pages, still gives back what waited too long, without a clock
/// read on every refill.
pub const REFILLS_PER_IDLE_CHECK: u32 = 16;

/// Unmaps every cached empty segment of this thread (out of memory: see
/// `big::release_reserves`), and purges its retired pages on the way. Whether any segment
/// was unmapped: purging pages gives back memory but no address space or commit charge,
/// so it alone is no reason to retry a failed map.
pub fn purge_all_empty_segments_of_this_thread() -> bool {
    let h = current();
    if h.is_null() {
        return false;
    }
    // SAFETY: this thread's own heap, its own empty segments and retired pages.
    unsafe {
        let local = &mut *Heap::local(h);
        let any = local.empty.iter().any(|e| e.len != 0);
        for e in local.empty.iter_mut() {
            purge(e, 0, true);
        }
        purge_retired(local, 0, true);
        any
    }
}

/// Gives back what waited too long: spare pages empty for `SPARE_NS` go back to their
/// segments (but the spare of `asking`, the size class that needs a page now, or
/// `NO_BIN`), retired pages older than `PAGE_PURGE_NS` are purged, cached empty segments
/// older than `PURGE_NS` unmapped. Called when a size class needs another page, on every
/// `REFILLS_PER_IDLE_CHECK`-th other refill (`alloc`) and on the big-block policy's clock
/// tick, so a program that freed a large working set gives it back as it goes on; one test
/// when nothing waits, a clock read when something does.
///
/// # Safety
/// `h` is the calling thread's heap.
pub unsafe fn purge_idle(h: &mut Local, asking: usize) {
    if h.purge_due_ns == u64::MAX {
        return;
    }
    let now = os::now_coarse_ns();
    if now < h.purge_due_ns {
        return;
    }
    h.purge_due_ns = u64::MAX; // each step below sets it again for what it leaves
                               // SAFETY: the heap's own pages and segments.
    unsafe {
        release_idle_spares(h, now, asking);
        purge_retired(h, now, false);
        for k in 0..h.empty.len() {
            purge(&mut h.empty[k], now, false);
            let oldest = h.empty[k].last;
            if !oldest.is_null() {
                due_at(h, (*oldest).emptied_at_ns + PURGE_NS + 1);
            }
        }
    }
}

/// Notes that something waiting in `h` is due at `t`.
fn due_at(h: &mut Local, t: u64) {
    h.purge_due_ns = h.purge_due_ns.min(t);
}

/// Keeps `page`, just emptied and not its class's current page, on its queue as the
/// class's spare (the class has no other page besides the current one): a class whose
/// blocks come and go around a page's worth takes it back with its memory resident where
/// its blocks start. Released, its slot could go to another class, which would purge it
/// and fault in its own pages. It goes back to its segment once empty for `SPARE_NS`.
///
/// # Safety
/// `page` is an empty page on its class's queue in `h`, the calling thread's heap.
pub unsafe fn keep_as_spare(h: &mut Local, page: *mut Page) {
    let now = os::now_coarse_ns();
    // SAFETY: per the caller.
    unsafe { (*page).retired_at_ns.set(now) };
    h.spares = true;
    due_at(h, now + SPARE_NS + 1);
}

/// Releases the spare pages that stayed empty longer than `SPARE_NS`, but the spare of
/// `asking` (the class about to walk its queue for a page: its spare is what it needs).
/// A walk of every size class's queue; while spares wait, the next walk is due no sooner
/// than `SPARE_NS / 8` from now (an earlier `purge_idle` for a retired page or an empty
/// segment walks them again).
///
/// # Safety
/// `h` is the calling thread's heap.
unsafe fn release_idle_spares(h: &mut Local, now: u64, asking: usize) {
    if !h.spares {
        return;
    }
    let mut next_due = u64::MAX;
    // SAFETY: every page on `h`'s queues is live and owned by `h`.
    unsafe {
        for bin in 0..NBINS {
            let mut p = h.queues[bin].first;
            while !p.is_null() {
                let next = (*p).next.get();
                if (*p).used.get() == 0 && h.pages[bin] != p {
                    let due = (*p).retired_at_ns.get() + SPARE_NS + 1;
                    if now >= due && bin != asking {
                        h.queues[bin].remove(p);
                        release_page(h, p);
                        // Idle for `SPARE_NS` already: its memory goes now, not after
                        // another purge delay (unless its segment emptied and took it).
                        if (*p).purge_pending.get() {
                            purge_now(h, p);
                        }
                    } else {
                        next_due = next_due.min(due);
                    }
                }
                p = next;
            }
        }
    }
    h.spares = next_due != u64::MAX;
    if h.spares {
        due_at(h, next_due.max(now + SPARE_NS / 8));
    }
}

/// Gives back the memory of the retired pages (oldest last on each `h.retired` list) that
/// waited longer than `PAGE_PURGE_NS`; of all of them if `all`.
///
/// # Safety
/// `h` is the calling thread's heap.
unsafe fn purge_retired(h: &mut Local, now: u64, all: bool) {
    // SAFETY: pages on `retired` are out of use, in live segments of this heap.
    unsafe {
        for k in 0..h.retired.len() {
            while !h.retired[k].last.is_null() {
                let page = h.retired[k].last;
                let due = (*page).retired_at_ns.get() + PAGE_PURGE_NS + 1;
                if !all && now < due {
                    due_at(h, due);
                    break;
                }
                purge_now(h, page);
            }
        }
    }
}

/// Takes a retired page off its list and gives its memory back now.
///
/// # Safety
/// `page` is on one of `h.retired`'s lists.
unsafe fn purge_now(h: &mut Local, page: *mut Page) {
    // SAFETY: per the caller.
    unsafe {
        forget_retired(h, page);
        purge_slot(page);
    }
}

/// Gives the memory of an out-of-use page's slot back to the system.
///
/// # Safety
/// `page` is an out-of-use record of a live segment of the calling thread's heap.
unsafe fn purge_slot(page: *mut Page) {
    // SAFETY: the record's `start` is its slot's first byte (`new_page`), in a live
    // segment; the slot is out of use, so nothing in it is anybody's block.
    unsafe {
        let seg = segment::segment_of(page as *const u8);
        os::advise((*page).start, (*seg).kind.page_size(), libc::MADV_DONTNEED);
    }
}

/// Takes `page` off the retired list if it is on it (its slot is being used again, or its
/// segment emptied: an empty segment's memory is the segment cache's to keep or unmap).
///
/// # Safety
/// `page` is a record of one of `h`'s segments.
unsafe fn forget_retired(h: &mut Local, page: *mut Page) {
    // SAFETY: per the caller; a pending record is on its kind's `h.retired` list.
    unsafe {
        if (*page).purge_pending.get() {
            let seg = segment::segment_of(page as *const u8);
            h.retired[(*seg).kind as usize].remove(page);
            (*page).purge_pending.set(false);
        }
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
        // A page given back recently first: its memory is resident (a slot never used
        // would be faulted in).
        let resident = resident_slot(h, k, block_size);
        if !resident.is_null() {
            let seg = segment::segment_of(resident as *const u8);
            let (page, start, len) = segment::take_this_page(seg, resident);
            return init_page(h, seg, page, bin, block_size, start, len);
        }
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
        init_page(h, seg, page, bin, block_size, start, len)
    }
}

/// How many retired pages `resident_slot` looks at for one of the same block size.
const RESIDENT_SEARCH: usize = 8;

/// The retired page of kind `k` a new page of `block_size` should take, or null: the
/// newest, for blocks of at most a page (their carving writes every page of the slot, so
/// any resident page is reused); for larger blocks, the newest of the same block size
/// among the first `RESIDENT_SEARCH` (another class's pages would be purged first, see
/// `init_page`, so a slot never used serves as well without the system call).
///
/// # Safety
/// `h` is the calling thread's heap.
unsafe fn resident_slot(h: &Local, k: usize, block_size: usize) -> *mut Page {
    let mut p = h.retired[k].first;
    if block_size <= os::PAGE {
        return p;
    }
    // SAFETY: pages on `retired` are live records of this heap's segments.
    unsafe {
        for _ in 0..RESIDENT_SEARCH {
            if p.is_null() || (*p).block_size == block_size {
                return p;
            }
            p = (*p).next.get();
        }
    }
    ptr::null_mut()
}

/// Makes the slot just taken from `seg` a page of `bin`.
///
/// # Safety
/// `page` was just taken from `seg`, a live segment of `h`'s heap.
unsafe fn init_page(
    h: &mut Local,
    seg: *mut Segment,
    page: *mut Page,
    bin: usize,
    block_size: usize,
    start: *mut u8,
    len: usize,
) -> *mut Page {
    // SAFETY: per the caller.
    unsafe {
        if segment::is_full(seg) {
            remove_segment(h, seg);
        }
        let mut warm = 0;
        if (*page).purge_pending.get() {
            // Taken again before its purge: its pages are still resident. The same size
            // class finds its blocks' pages where it left them: the blocks it had carved
            // are carved again at once (no page fault, no refill for each 16 KiB). Another
            // class's blocks reuse them as it carves when its blocks are at most a page
            // (every page of the slot holds a block start); larger blocks touch only the
            // pages where theirs start, and the others would stay resident for nothing (a
            // 512 KiB slot that served several classes in turn), so they go now.
            forget_retired(h, page);
            if (*page).block_size == block_size {
                warm = (*page).capacity.get() as usize;
            } else if block_size > os::PAGE {
                purge_slot(page);
            }
        }
        Page::init(page, bin, block_size, start, len);
        if warm != 0 {
            (*page).extend_by(warm);
        }
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
        let now = os::now_coarse_ns();
        if (*seg).used_pages == 0 {
            remove_segment(h, seg);
            for i in 1..(*seg).kind.pages() {
                forget_retired(h, (&raw mut (*seg).pages).cast::<Page>().add(i));
            }
            let k = (*seg).kind as usize;
            (*seg).emptied_at_ns = now;
            h.empty[k].push_front(seg);
            purge(&mut h.empty[k], now, false);
            due_at(h, now + PURGE_NS + 1);
        } else {
            (*page).retired_at_ns.set(now);
            (*page).purge_pending.set(true);
            h.retired[(*seg).kind as usize].push_front(page);
            due_at(h, now + PAGE_PURGE_NS + 1);
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
        // The emptied pages wait on `retired` like any: a thread started soon after takes
        // this heap over with its pages resident; one started later purges them first.
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
