//! The sites mode's census (`HAKMEM_SITES=1`): every allocation and free through the C ABI
//! and `alloc_at` counted per call site, beside the allocator's own work (callers check the
//! mode; nothing here runs otherwise). A pool block is counted here, a big block by the
//! learner's path (`learn::sites::on_alloc`); here too its size bucket, the heap's total
//! (for the peak snapshot), the thread's last block (for temporaries), and where the site
//! is: a C caller's return address with the stack of its first allocation and the stacks
//! sampled by bytes, or a Rust caller's source location. Out of line: the paths that call
//! it stay as lean as without the mode.

use crate::big;
use crate::header::{AllocHeader, State, MAGIC};
use crate::learn::{sites, stacks};
use crate::pool::segment;
use crate::site::Site;
use crate::tls;
use core::panic::Location;
use core::sync::atomic::Ordering::Relaxed;

/// An allocation of `size` bytes at `p` (null: none) made from code address `caller` (the
/// C ABI; 0: unknown).
#[cold]
#[inline(never)]
pub fn record_alloc(caller: usize, size: usize, p: *mut u8) {
    if p.is_null() {
        return;
    }
    let slot = sites::slot(Site::of_caller(caller));
    // A site's first allocation keeps its stack; a sampled one (by bytes) adds its stack
    // to the sampled stacks. One unwind serves both.
    let first = caller != 0 && sites::note_first(slot, caller);
    let sample = stacks::due(size);
    if first || sample.is_some() {
        let mut frames = [0usize; stacks::DEPTH + 8]; // + our own frames
        let n = crate::os::backtrace(&mut frames);
        if first {
            sites::set_stack(slot, caller, &frames[..n]);
        }
        if let Some(s) = sample {
            s.record(caller, &frames[..n]);
        }
    }
    count(slot, size, p);
}

/// An allocation by `alloc_at` from the Rust source location `at`, for `site`. Rust code
/// names its sites by location, so no stack is taken.
#[cold]
#[inline(never)]
pub fn record_located(site: Site, at: &'static Location<'static>, size: usize, p: *mut u8) {
    if p.is_null() {
        return;
    }
    let slot = sites::slot(site);
    sites::note_location(slot, at);
    count(slot, size, p);
}

fn count(slot: usize, size: usize, p: *mut u8) {
    if segment::is_pool(p) {
        sites::on_small_alloc(slot, size);
    }
    sites::on_sized(slot, size);
    sites::on_heap_change(size as i64);
    tls::set_last_alloc(p as usize);
}

/// A free: a pool block's site and size come from its header (the sites mode runs the
/// `reuse` front; big blocks count their site themselves); the heap's total; a temporary
/// allocation when `p` is the thread's last block.
///
/// # Safety
/// `p` must be null or a live block of this allocator.
#[cold]
pub unsafe fn record_free(p: *mut u8) {
    let last = tls::last_alloc() == p as usize;
    if last {
        tls::set_last_alloc(0);
    }
    let pool = segment::is_pool(p) && segment::in_block_area(p);
    if !pool && !big::registry::contains(p) {
        return; // null, or not ours: `free` reports it
    }
    // SAFETY: a live block of ours (a pool block of the reuse front or a big block, by the
    // checks above) has its header in the 32 bytes before it.
    let h = unsafe { &*AllocHeader::of(p) };
    if h.magic != MAGIC || h.state != State::Live {
        return;
    }
    let slot = sites::slot(Site(h.site));
    if pool {
        sites::on_free(slot, h.size as usize);
    }
    if last {
        sites::TEMPORARY[slot].fetch_add(1, Relaxed);
    }
    sites::on_heap_change(-(h.size as i64));
}
