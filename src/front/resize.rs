//! The one `realloc` fallback, shared by every front: a new block, the bytes both blocks
//! hold copied, the old block freed.

use core::ptr;

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
