//! Freeing a pool block. The block's segment says which heap owns it:
//!
//! - **Local** (this thread's heap): push it on its page's free list, a few inlined lines
//!   (`free`, `free_fast`); out of line only when the page left the full list or emptied
//!   (`free_local_slow`).
//! - **Remote** (another heap's block): no shared write per block. The block joins this
//!   thread's outbox for that heap, a chain through the blocks themselves (`Outbox`); a
//!   full batch goes to the owner's inbox with one compare-and-swap (snmalloc's remote
//!   queues, a batch per destination), and the owner frees the blocks as its own when it
//!   next refills (`collect`). A thread sends what it holds on its own refills and at
//!   exit too, so a batch waits at most until then.
//!
//! The checked mode's validations (`HAKMEM_CHECK=1`) sit at the end.

use super::heap::{current, empty_page, Heap, Outbox, OUTBOX, REMOTE_FREES_WITHOUT_HEAP, SKIP};
use super::page::{self, Block, Page};
use super::pages::{keep_as_spare, release_page};
use super::segment::{self, PageKind, Segment};
use crate::{os, track};
use core::ptr;
use core::sync::atomic::{
    AtomicPtr,
    Ordering::{Relaxed, Release},
};

/// Frees a block of a pool segment.
///
/// # Safety
/// `p` must be a live block returned by the pool's `alloc` (so inside a pool segment).
#[inline(always)]
pub unsafe fn free(p: *mut u8) {
    let seg = segment::segment_of(p);
    // SAFETY: `p` is a live block, so its segment and page records are live.
    unsafe {
        let heap = current();
        if (*seg).owner == heap as *mut () {
            let page = segment::page_of(seg, p);
            let top = (*page).free.get();
            if p as *mut Block == top {
                // The block on top of its page's free list is being freed again.
                double_free(p);
            }
            (*heap).stats.frees.bump();
            free_into(heap, page, p, top);
        } else {
            free_remote(heap, seg, p);
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
        // A live segment's owner is never null, so a null `heap` never matches. The owner
        // first: another heap's page record is a line its owner writes on every pop, and a
        // remote free must not read it (the owner's next pop would miss).
        if (*seg).owner != heap as *mut () {
            return false; // another heap's block (or no heap)
        }
        let page = segment::page_of(seg, p);
        let top = (*page).free.get();
        if p as *mut Block == top {
            return false; // a double free
        }
        (*heap).stats.frees.bump();
        free_into(heap, page, p, top);
    }
    true
}

/// Pushes `p` onto its page's local free list, whose head is `top`: the local free,
/// uncounted (the callers count: a local free, or a block collected from the inbox).
///
/// # Safety
/// `heap` is this thread's heap and owns `page`, a live page holding the live block `p`;
/// `top` is the page's free-list head.
#[inline(always)]
pub(super) unsafe fn free_into(heap: *mut Heap, page: *mut Page, p: *mut u8, top: *mut Block) {
    // SAFETY: per the caller.
    unsafe {
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
            h.queues[(*page).bin as usize].push_front(page);
        }
        // Keep the current page even when empty: a malloc/free pair loop must not
        // release and re-carve it on every iteration. Keep one more, the class's spare,
        // when it has no other page besides the current one (see `keep_as_spare`).
        let bin = (*page).bin as usize;
        if (*page).used.get() == 0 && h.pages[bin] != page {
            // The queue holds the current page too, when the class has one.
            let others = h.queues[bin].len - usize::from(h.pages[bin] != empty_page());
            if others > 1 {
                h.queues[bin].remove(page);
                release_page(h, page);
            } else {
                keep_as_spare(h, page);
            }
        }
    }
}

#[cold]
#[inline(never)]
pub(super) fn double_free(p: *mut u8) -> ! {
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

// ---------------------------------------------------------------------------------------
// Remote frees: the outbox and the batches
// ---------------------------------------------------------------------------------------

/// What a block weighs in a batch, by its page kind (read from the segment, so the sender
/// never touches the page record the owner writes); a batch goes at `BATCH_FULL`: 32 small
/// blocks (≤ 8 KiB), 4 medium ones (≤ 64 KiB) or 1 large one (≤ 256 KiB), or a mix. So a
/// batch holds at most about 256 KiB, and what waits in a thread's outboxes stays under
/// 4 MiB however large the blocks (16 entries), and under 32 KiB for blocks of 64 bytes.
const fn batch_weight(kind: PageKind) -> u32 {
    match kind {
        PageKind::Small => 1,
        PageKind::Medium => 8,
        PageKind::Large => 32,
    }
}

const BATCH_FULL: u32 = 32;

/// The outbox entry for blocks of `dest`.
#[inline(always)]
fn outbox_slot(dest: *mut Heap) -> usize {
    // Heaps lie in slots a few KiB apart: the bits above 12 tell them apart.
    ((dest as usize >> 12) ^ (dest as usize >> 16)) % OUTBOX
}

/// What a thread without a heap runs before a remote free, to get one without waiting
/// (set by `init`, which attaches heaps): a thread that only frees then batches its frees
/// like any other. It never waits for the heap-list lock: a free may run inside another
/// library's fork handler, after ours took that lock on the same thread; the free then
/// goes alone.
static ATTACH: AtomicPtr<()> = AtomicPtr::new(ptr::null_mut());

/// Sets the function that gives the calling thread a heap (true when it has one after).
pub fn set_attach(f: fn() -> bool) {
    ATTACH.store(f as *mut (), Relaxed);
}

/// Frees `p`, a block of the heap that owns `seg` (not `me`, this thread's heap or null):
/// into this thread's outbox for that heap; the batch goes when full.
#[inline(never)]
unsafe fn free_remote(mut me: *mut Heap, seg: *mut Segment, p: *mut u8) {
    if !segment::in_block_area(p) {
        not_a_block(p); // the segment's header page: never a block
    }
    // SAFETY: the segment is live while `p` is; heaps are immortal, so `owner` stays valid
    // after the batch is sent (when the owner may free the segment).
    let owner = unsafe { (*seg).owner } as *mut Heap;
    if me.is_null() {
        me = attach_for_free();
        if me.is_null() {
            // No heap to batch in (out of memory): the block goes alone.
            // SAFETY: `p` is a live block of `owner`, given up by the caller.
            unsafe { post(owner, p as *mut Block, p as *mut Block, None) };
            REMOTE_FREES_WITHOUT_HEAP.fetch_add(1, Relaxed);
            return;
        }
        if owner == me {
            // The thread adopted the block's own (parked) heap.
            // SAFETY: `p` is now a live block of this thread's heap.
            return unsafe { free(p) };
        }
    }
    // SAFETY: `me` is this thread's heap; the outbox is owner-only.
    unsafe {
        let h = &mut *Heap::local(me);
        let o = &mut h.outbox[outbox_slot(owner)];
        if o.dest != owner {
            if o.count != 0 {
                send(me, o);
                h.outbox_used -= 1;
            }
            o.dest = owner;
        }
        // Push on the chain: the block's first word links to the previous newest, its
        // second word names the block pushed `SKIP` before it (a prefetch hint for the
        // collector: a stale one costs nothing).
        Block::set_next(p as *mut Block, o.first);
        let r = o.count as usize % SKIP;
        let hint = (p as *mut *mut Block).add(1);
        track::undefined(hint as *const u8, 8); // free memory, to memcheck, but for this
        hint.write(o.recent[r]);
        track::no_access(hint as *const u8, 8);
        o.recent[r] = p as *mut Block;
        if o.first.is_null() {
            o.last = p as *mut Block;
            h.outbox_used += 1;
        }
        o.first = p as *mut Block;
        o.count += 1;
        o.weight += batch_weight((*seg).kind);
        (*me).stats.remote_frees.bump();
        if o.weight >= BATCH_FULL {
            send(me, o);
            h.outbox_used -= 1;
        }
    }
}

#[cold]
fn attach_for_free() -> *mut Heap {
    let f = ATTACH.load(Relaxed);
    if !f.is_null() {
        // SAFETY: only `set_attach` stores here, and it stores a `fn() -> bool`.
        unsafe { core::mem::transmute::<*mut (), fn() -> bool>(f)() };
    }
    current()
}

/// Sends the batch `o` of `me` (this thread's heap) to its destination and empties it.
///
/// # Safety
/// `o` is an entry of `me`'s outbox holding at least one block.
#[cold]
#[inline(never)]
unsafe fn send(me: *mut Heap, o: &mut Outbox) {
    // SAFETY: the chain's blocks are given up; `me` is this thread's heap.
    unsafe {
        post(o.dest, o.first, o.last, Some(me));
        (*me).stats.remote_batches.bump();
    }
    o.first = ptr::null_mut();
    o.last = ptr::null_mut();
    o.count = 0;
    o.weight = 0;
}

/// Pushes the chain `first ..= last` (linked through the blocks) onto `dest`'s inbox with
/// one compare-and-swap, retried while other posters win; the retries are counted on
/// `counter`'s heap (this thread's; None: not counted).
///
/// # Safety
/// Every block of the chain is a block of `dest` given up by the caller.
unsafe fn post(dest: *mut Heap, first: *mut Block, last: *mut Block, counter: Option<*mut Heap>) {
    // SAFETY: heaps are immortal; the inbox is the heap's shared word.
    let inbox = unsafe { &(*dest).inbox.head };
    let mut head = inbox.load(Relaxed);
    loop {
        // SAFETY: `last` is ours until the push publishes it (Release below).
        unsafe { Block::set_next(last, head) };
        match inbox.compare_exchange_weak(head, first, Release, Relaxed) {
            Ok(_) => return,
            Err(now) => {
                head = now;
                if let Some(me) = counter {
                    // SAFETY: this thread's heap; its counters are owner-written.
                    unsafe { (*me).stats.remote_cas_retries.bump() };
                }
            }
        }
    }
}

/// Sends every batch this thread holds (its own refills, and thread exit), so blocks
/// freed here go back to their owners within a refill.
///
/// # Safety
/// `me` is this thread's heap.
pub unsafe fn flush_outbox(me: *mut Heap) {
    // SAFETY: the outbox is owner-only.
    unsafe {
        let h = &mut *Heap::local(me);
        if h.outbox_used == 0 {
            return;
        }
        for o in h.outbox.iter_mut() {
            if o.count != 0 {
                send(me, o);
            }
        }
        h.outbox_used = 0;
    }
}

// ---------------------------------------------------------------------------------------
// The checked mode (HAKMEM_CHECK=1) and sizes
// ---------------------------------------------------------------------------------------

/// Arms the checked mode's freed mark (`page::FREED_MARK`, glibc's tcache key): from now
/// on a free block's second word holds a per-process random value, written when a page
/// carves blocks and by `check_free`, cleared by `forget_freed` when the block is handed
/// out. `check_free` looks for a block that holds it on the page's list. A program's own
/// data equal to it by chance costs a walk, never a false report (the walk decides).
/// `init` calls it in the checked mode, before the first block is carved.
pub fn arm_freed_mark() {
    let _ = page::FREED_MARK.compare_exchange(0, os::random_u64() as usize | 1, Relaxed, Relaxed);
}

/// The checked mode's validation of a free: `p` must be the start of a block carved from
/// a page in use, and (when this thread owns the page) not already on its free list.
/// Aborts naming `p` otherwise. A block marked freed (`arm_freed_mark`) costs a walk of
/// the page's list: O(free blocks); any other, two words. (A block freed by another
/// thread and still on its way back to its owner, in an outbox or inbox, is not on the
/// list yet: such a double free goes unseen.)
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
        // Only a block marked freed is looked for on the list, so a live block costs a
        // load. (Every block holds two words: the smallest class is 16 bytes.)
        let mark = (p as *mut usize).add(1);
        let key = page::FREED_MARK.load(Relaxed);
        if owner && key != 0 && *mark == key && (*page).holds_free(p as *mut Block) {
            double_free(p);
        }
        *mark = key;
    }
}

/// Clears the checked mode's freed mark of a block just handed out, before the program
/// sees it (a block it frees unwritten then costs no walk).
///
/// # Safety
/// `p` is null or a block this thread just allocated, not yet handed to the program.
pub unsafe fn forget_freed(p: *mut u8) {
    if segment::is_pool(p) {
        // SAFETY: a fresh pool block of at least 16 bytes, ours until returned.
        unsafe { (p as *mut usize).add(1).write(0) };
    }
}

/// The checked mode's check of an allocation: `p` (any pointer into the block just handed
/// out; null or a big block: nothing to check) was popped from its page's free list, and
/// the link it held, now the list's head, must be null or a block start of the same page.
/// The pop's own check bounds it to the page's 1 MiB region only.
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
            page::corrupt_next(page, head);
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
