//! Pool blocks for the fronts: the pool's fast path, inlined; on a thread's first pool
//! allocation (the pool returns null: no heap yet) the thread's heap is attached
//! (`init::attach_thread`) and the allocation retried, out of line. The null test after the
//! fast path costs nothing there: the pool returns only a block it has tested non-null.

use crate::size_class::bin_of;
use crate::{init, pool};
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

#[cold]
#[inline(never)]
fn attach_and_retry(bin: usize) -> *mut u8 {
    if pool::heap::current().is_null() && init::attach_thread() {
        // SAFETY: `bin` came from a valid size or bin.
        return unsafe { pool::alloc_bin(bin) };
    }
    ptr::null_mut()
}
