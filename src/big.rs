//! Layer 4: big blocks, above the pool range. Each is its own mapping with the 32-byte
//! AllocHeader in front of the user pointer, recorded in the registry so that `free`
//! can prove ownership before it reads the header. `realloc` resizes in place with
//! `mremap` where that saves a copy.

use crate::header::{AllocHeader, Method, State, HEADER_SIZE, MAGIC};
use crate::{diag, os, registry};
use core::ptr;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static FREES: AtomicU64 = AtomicU64::new(0);

#[derive(Clone, Copy, Debug, Default)]
pub struct BigTotals {
    pub allocs: u64,
    pub frees: u64,
}

pub fn totals() -> BigTotals {
    BigTotals {
        allocs: ALLOCS.load(Relaxed),
        frees: FREES.load(Relaxed),
    }
}

/// Largest size we try to serve; bigger requests fail with ENOMEM without a syscall.
pub const MAX_SIZE: usize = isize::MAX as usize / 2;

/// Maps a big block of `size` bytes aligned to `align` (a power of two). The memory is
/// zeroed (fresh from the OS). Null when out of memory or `size` is absurd.
pub fn alloc(size: usize, align: usize, site: u32) -> *mut u8 {
    let align = align.max(16);
    if size > MAX_SIZE || align > MAX_SIZE {
        return ptr::null_mut();
    }
    // Layout: [base .. header | user .. user + size .. base + span)
    let (base, user, span) = if align <= os::PAGE {
        let offset = os::round_up(HEADER_SIZE, align);
        let span = os::round_up(offset + size, os::PAGE);
        let base = os::map(0, span);
        (base, base.wrapping_add(offset), span)
    } else {
        let span = os::round_up(size + align + os::PAGE, os::PAGE);
        let base = os::map(0, span);
        let user = os::round_up(base as usize + HEADER_SIZE, align) as *mut u8;
        (base, user, span)
    };
    if base.is_null() {
        return ptr::null_mut();
    }
    let offset = user as usize - base as usize;
    // SAFETY: the header's 32 bytes lie in our fresh mapping, right before `user`.
    unsafe {
        AllocHeader::write(
            user,
            AllocHeader::new(Method::Map, site, offset, size, span),
        )
    };
    if !registry::insert(user) {
        // SAFETY: the mapping was never handed out.
        unsafe { os::unmap(base, span) };
        return ptr::null_mut();
    }
    ALLOCS.fetch_add(1, Relaxed);
    user
}

/// Frees a big block; aborts with a clear message if `p` is not a live big block of ours.
///
/// # Safety
/// `p` must not be used after this call.
pub unsafe fn free(p: *mut u8) {
    if !registry::remove(p) {
        diag::fatal_pointer("free", p, "not allocated by hakmem, or already freed");
    }
    // SAFETY: the registry proved `p` is a live big block, so its header is mapped.
    unsafe {
        let h = &mut *AllocHeader::of(p);
        if h.magic != MAGIC || h.state != State::Live {
            diag::fatal_pointer("free", p, "block header is corrupt");
        }
        h.state = State::Freed;
        let (base, span) = (h.base(p), h.span as usize);
        os::unmap(base, span);
    }
    FREES.fetch_add(1, Relaxed);
}

/// Usable bytes of big block `p`; aborts if `p` is not one.
pub fn usable_size(p: *mut u8) -> usize {
    if !registry::contains(p) {
        diag::fatal_pointer(
            "malloc_usable_size",
            p,
            "not allocated by hakmem, or already freed",
        );
    }
    // SAFETY: the registry proved `p` is live, so its header is mapped.
    let h = unsafe { &*AllocHeader::of(p) };
    h.span as usize - h.offset as usize
}

/// Resizes big block `p` to `new` bytes (`new > POOL_MAX`). For default-aligned blocks the
/// mapping is grown or shrunk with `mremap` (no copy); otherwise a new block is made and
/// the contents copied. Null (with `p` untouched) when out of memory.
///
/// # Safety
/// `p` must be a live big block of ours, not used concurrently.
pub unsafe fn realloc(p: *mut u8, new: usize) -> *mut u8 {
    if !registry::contains(p) {
        diag::fatal_pointer("realloc", p, "not allocated by hakmem, or already freed");
    }
    if new > MAX_SIZE {
        return ptr::null_mut();
    }
    // SAFETY: `p` is a live big block, so its header is mapped and ours.
    let h = unsafe { *AllocHeader::of(p) };
    let (span, offset) = (h.span as usize, h.offset as usize);
    if offset == HEADER_SIZE {
        let new_span = os::round_up(HEADER_SIZE + new, os::PAGE);
        let base = h.base(p);
        if new_span == span {
            // SAFETY: as above.
            unsafe { (*AllocHeader::of(p)).size = new as u64 };
            return p;
        }
        // SAFETY: `[base, base + span)` is exactly the block's mapping.
        let moved = unsafe { os::remap(base, span, new_span) };
        if !moved.is_null() {
            let q = moved.wrapping_add(HEADER_SIZE);
            // SAFETY: the header moved with the mapping.
            unsafe {
                (*AllocHeader::of(q)).size = new as u64;
                (*AllocHeader::of(q)).span = new_span as u64;
            }
            if q != p {
                registry::replace(p, q);
            }
            return q;
        }
    }
    let q = alloc(new, 16, h.site);
    if q.is_null() {
        return q;
    }
    // SAFETY: both blocks are live, distinct, and hold at least the copied bytes.
    unsafe {
        ptr::copy_nonoverlapping(p, q, (h.size as usize).min(new));
        free(p);
    }
    q
}
