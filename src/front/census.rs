//! The sites mode's census (`HAKMEM_SITES=1`): every allocation and free through the C ABI
//! and `alloc_at` counted per call site, beside the allocator's own work (callers check the
//! mode; nothing here runs otherwise). A pool block is counted here, a big block by the
//! learner's path (`learn::sites::on_alloc`); here too its size bucket, the heap's total
//! (for the peak snapshot), the thread's and the process's last block (for the two
//! definitions of a temporary allocation), and where the site is: a C caller's return
//! address with the stack of its first allocation and the stacks sampled by bytes (the
//! sampled block keeps its stack's index in its header, so its free is charged there
//! too), or a Rust caller's source location. Out of line: the paths that call it stay as
//! lean as without the mode.

use crate::big;
use crate::config;
use crate::header::{AllocHeader, State, MAGIC};
use crate::learn::{sites, stacks};
use crate::pool::segment;
use crate::site::Site;
use crate::tls;
use core::panic::Location;
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// The process's last allocated block (0: freed since, or none): heaptrack's definition of
/// a temporary allocation is a free of this block, and every free clears it.
static LAST_IN_PROCESS: AtomicUsize = AtomicUsize::new(0);

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
    let sample = stacks::due(size, config::get().sample_bytes);
    if first || sample.is_some() {
        let mut frames = [0usize; stacks::DEPTH + 8]; // + our own frames
        let n = crate::os::backtrace(&mut frames);
        if first {
            sites::set_stack(slot, caller, &frames[..n]);
        }
        if let Some(s) = sample {
            let stack = s.record(caller, &frames[..n]);
            if let Some((h, _)) = live_header(p) {
                h.stack = stack;
            }
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
    sites::on_heap_change(size as i64, stacks::snapshot_at_peak);
    tls::set_last_alloc(p as usize);
    LAST_IN_PROCESS.store(p as usize, Relaxed);
}

/// The header of `p` if it is a live block of ours with one (a pool block of the `reuse`
/// front, which the sites mode runs, or a big block), and whether it is a pool block; None
/// for null or a foreign pointer.
fn live_header<'a>(p: *mut u8) -> Option<(&'a mut AllocHeader, bool)> {
    let pool = segment::is_pool(p) && segment::in_block_area(p);
    if !pool && !big::registry::contains(p) {
        return None;
    }
    // SAFETY: a block of ours of the reuse front or a big block (the checks above) has its
    // header in the 32 bytes before it; the caller owns the block (allocating or freeing
    // it), so no other thread writes the header now.
    let h = unsafe { &mut *AllocHeader::of(p) };
    (h.magic == MAGIC && h.state == State::Live).then_some((h, pool))
}

/// A big block's site counts its live bytes in the allocator (`big::free`), so in a
/// `realloc` the new block's allocation would count while the old one still does. This
/// takes the old block `p` out of its site's live bytes until `put_back`, just before its
/// free, so the site's peak never holds both (a pool block's site is counted here, by
/// `record_free`, already in that order). None for a pool block or a foreign pointer.
pub fn lend_big(p: *mut u8) -> Option<(usize, usize)> {
    if p.is_null() || segment::is_pool(p) {
        return None; // most reallocs: a pool block, counted by `record_free`
    }
    let (h, _) = live_header(p)?;
    let (slot, size) = (sites::slot(Site(h.site)), h.size as usize);
    sites::on_free(slot, size);
    Some((slot, size))
}

/// Gives back what `lend_big` took (without a peak: the block is about to be freed).
pub fn put_back(lent: Option<(usize, usize)>) {
    if let Some((slot, size)) = lent {
        sites::add_live(slot, size as i64);
    }
}

/// A free: a pool block's site and size come from its header (the sites mode runs the
/// `reuse` front; big blocks count their site themselves); its sampled stack's share; the
/// heap's total; a temporary allocation when `p` is the thread's last block (this
/// report's definition) or the process's (heaptrack's).
///
/// # Safety
/// `p` must be null or a live block of this allocator.
#[cold]
pub unsafe fn record_free(p: *mut u8) {
    let last = tls::last_alloc() == p as usize;
    if last {
        tls::set_last_alloc(0);
    }
    // Every free clears the process's last block; read first, so that frees in a row
    // (another thread's too) do not all write this shared word.
    let last_in_process =
        LAST_IN_PROCESS.load(Relaxed) != 0 && LAST_IN_PROCESS.swap(0, Relaxed) == p as usize;
    let Some((h, pool)) = live_header(p) else {
        return; // null, or not ours: `free` reports it
    };
    let slot = sites::slot(Site(h.site));
    if pool {
        sites::on_free(slot, h.size as usize);
    }
    if last {
        sites::TEMPORARY[slot].fetch_add(1, Relaxed);
    }
    if last_in_process {
        sites::TEMPORARY_PROCESS[slot].fetch_add(1, Relaxed);
    }
    let interval = config::get().sample_bytes;
    stacks::on_free(h.stack, h.size as usize, interval, last);
    sites::on_heap_change(-(h.size as i64), stacks::snapshot_at_peak);
}
