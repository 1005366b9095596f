//! The owner's side of remote frees: the heap's inbox, where other threads post the
//! blocks of this heap they freed, in batches (`free`), taken whole with one swap and each
//! block freed here as a local free. Runs on the owner's refills (`alloc`) and at its
//! thread's exit: it visits only blocks that came back, never the heap's pages.

use super::free::{double_free, free_into};
use super::heap::Heap;
use super::page::{Block, FREED_MARK};
use super::segment;
use crate::track;
use core::ptr;
use core::sync::atomic::Ordering::{Acquire, Relaxed};

/// Whether `heap`'s inbox holds blocks (one load of the shared word).
///
/// # Safety
/// `heap` is live.
#[inline]
pub unsafe fn pending(heap: *mut Heap) -> bool {
    // SAFETY: heaps are immortal.
    !unsafe { (*heap).inbox.head.load(Relaxed) }.is_null()
}

/// Takes `heap`'s inbox and frees every block in it into its page. Returns how many.
///
/// # Safety
/// `heap` is this thread's heap.
pub unsafe fn collect(heap: *mut Heap) -> u64 {
    // SAFETY: this thread owns `heap`; the chains' links were written before they were
    // published (the posters' Release, this Acquire).
    unsafe {
        let mut b = (*heap).inbox.head.swap(ptr::null_mut(), Acquire);
        if b.is_null() {
            return 0;
        }
        let (mut blocks, mut pages) = (0u64, 0u64);
        let mark = FREED_MARK.load(Relaxed);
        let mut last_page = ptr::null_mut();
        while !b.is_null() {
            let next = Block::next_of(b);
            // The walk is a chain of cache misses (the blocks were last written on the
            // freeing threads' cores): start the one `SKIP` blocks ahead now.
            let hint = (b as *mut *const u8).add(1);
            track::defined(hint as *const u8, 8);
            prefetch(hint.read());
            if mark != 0 {
                hint.write(mark as *const u8); // the checked mode's freed mark, back
            }
            track::no_access(hint as *const u8, 8);
            // Every block posted here is one of this heap's: anything else was written
            // over in transit (a use after free) and is not freed.
            let seg = segment::segment_of(b as *const u8);
            if !segment::is_pool(b as *const u8) || (*seg).owner != heap as *mut () {
                corrupt_inbox(b);
            }
            let page = segment::page_of(seg, b as *const u8);
            if page != last_page {
                pages += 1;
                last_page = page;
            }
            let top = (*page).free.get();
            if b == top {
                double_free(b as *mut u8);
            }
            free_into(heap, page, b as *mut u8, top);
            blocks += 1;
            b = next;
        }
        let s = &(*heap).stats;
        s.collections.bump();
        s.collected_blocks.add(blocks);
        s.collected_pages.add(pages);
        blocks
    }
}

/// Asks the processor to fetch the line at `p` for writing; any address is fine (a hint).
#[inline(always)]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults, whatever the address.
    unsafe {
        core::arch::x86_64::_mm_prefetch(p as *const i8, core::arch::x86_64::_MM_HINT_T0)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cold]
#[inline(never)]
fn corrupt_inbox(b: *mut Block) -> ! {
    crate::diag::eprint_line(format_args!(
        "hakmem: free(): corrupted remote-free batch: {b:p} is not a block of the heap it was sent to (overwritten after it was freed)"
    ));
    // SAFETY: abort has no preconditions.
    unsafe { libc::abort() }
}
