//! Pool blocks for the fronts: the pool's fast path, inlined; on a thread's first pool
//! allocation (the pool returns null: no heap yet) the thread's heap is attached
//! (`init::attach_thread`) and the allocation retried, out of line. The null test after the
//! fast path costs nothing there: the pool returns only a block it has tested non-null.

use crate::size_class::bin_of;
use crate::{big, init, pool};
use core::ptr;

/// A pool block of `size` bytes (`size <= POOL_MAX`); null when out of memory.
#[inline(always)]
pub fn alloc(size: usize) -> *mut u8 {
    alloc_bin(bin_of(size)) // the size class computed once, for the retry too
}

/// A pool block of size class `bin` (`bin < NBINS`); null when out of memory.
#[inline(always)]
pub fn alloc_bin(bin: usize) -> *mut u8 {
    // SAFETY: the caller passes a valid bin.
    let p = unsafe { pool::alloc_bin(bin) };
    if p.is_null() {
        return attach_and_retry(bin);
    }
    p
}

/// The pool gave null: attach the thread's heap if it has none and retry; out of memory,
/// retry once after giving back what the allocator keeps for reuse.
#[cold]
#[inline(never)]
fn attach_and_retry(bin: usize) -> *mut u8 {
    let mut p = ptr::null_mut();
    if pool::heap::current().is_null() {
        if !init::attach_thread() {
            return p;
        }
        // SAFETY: `bin` came from a valid size or bin.
        p = unsafe { pool::alloc_bin(bin) };
    }
    // SAFETY: as above.
    big::or_after_releasing(p, || unsafe { pool::alloc_bin(bin) })
}
