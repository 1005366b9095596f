//! The one `realloc` fallback, shared by every front: a new block, the bytes both blocks
//! hold copied, the old block freed.

use crate::big;
use core::ptr;

/// A big block first tries to change size without a copy (`big::resize_in_place`) when the
/// new size is still big (`new > big_above`): `Ok` with the block, or `Err` with its usable
/// size for the copy. Aborts naming `realloc` if `p` is not a live big block of ours.
///
/// # Safety
/// `p` must not be a pool block, and not be used concurrently.
pub(crate) unsafe fn big_in_place(
    p: *mut u8,
    new: usize,
    big_above: usize,
) -> Result<*mut u8, usize> {
    let old = big::checked_usable_size("realloc", p);
    if new > big_above {
        // SAFETY: a live big block (checked just above).
        if let Some(q) = unsafe { big::resize_in_place(p, new) } {
            return Ok(q);
        }
    }
    Err(old)
}

/// Moves the first `min(old, new)` bytes of live block `p` (usable size `old`) to the
/// block `alloc` returns, then frees `p` with `free`. Null, with `p` untouched, when
/// `alloc` fails.
///
/// # Safety
/// `p` must be a live block of `old` usable bytes that `free` accepts; `alloc` must return
/// null or a live block of at least `new` bytes, distinct from `p`.
pub(crate) unsafe fn by_copy(
    p: *mut u8,
    old: usize,
    new: usize,
    alloc: impl FnOnce() -> *mut u8,
    free: impl FnOnce(*mut u8),
) -> *mut u8 {
    let q = alloc();
    if !q.is_null() {
        // SAFETY: both blocks are live and distinct, and each holds the bytes copied.
        unsafe { ptr::copy_nonoverlapping(p, q, old.min(new)) };
        free(p);
    }
    q
}
