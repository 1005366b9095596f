//! The C ABI's fast paths: what every `malloc` and `free` of `libhakmem.so` runs first.
//!
//! The thread's *fast heap* (`pool::heap::fast`) is its heap where the configuration lets
//! the pool serve with no further question (the front is not `reuse`, the checked mode is
//! off), null otherwise: one TLS load answers both. Then the pool's pop or push, inlined,
//! for sizes up to 4 KiB (one table load gives the size class); out of line, a page that
//! ran dry is refilled by the pool straight. Everything else leaves for the full path
//! (`api`): the first call of a thread, bigger sizes, a block of another thread, a page
//! that empties, a double free, out of memory (`errno`).
//! The call site's id is computed there too, from the return address the entry point
//! passes down: only the big-block path uses it, so small blocks never pay for the hash.
//!
//! Built with the `valgrind` feature, every call takes the full path, where the blocks are
//! announced to memcheck. In the sites mode (`HAKMEM_SITES=1`, the `reuse` front, so no
//! fast heap) every allocation and free of the C ABI is counted per call site too
//! (`census`), on the full path.

use crate::config;
use crate::front::{self, api, census};
use crate::pool;
use crate::site::Site;
use crate::size_class::{bin_of, TABLE_MAX};

/// Whether the inline paths are compiled in (not with memcheck's announcements).
const INLINE: bool = !cfg!(feature = "valgrind");

/// `malloc` called from code address `caller` (0: unknown). Null with `errno = ENOMEM`
/// when out of memory.
#[inline(always)]
pub fn malloc(size: usize, caller: usize) -> *mut u8 {
    if INLINE && size <= TABLE_MAX {
        // SAFETY: `bin_of` gives a valid bin for sizes up to 4 KiB; the fast heap is null
        // or this thread's heap.
        let p = unsafe { pool::alloc::alloc_fast(pool::heap::fast(), bin_of(size)) };
        if !p.is_null() {
            return p;
        }
    }
    malloc_slow(size, caller) // a tail call: the fast path saves no register
}

#[cold]
#[inline(never)]
fn malloc_slow(size: usize, caller: usize) -> *mut u8 {
    if INLINE && size <= TABLE_MAX && !pool::heap::fast().is_null() {
        // The fast heap's page of this class ran dry: the pool refills it without the
        // dispatch below (the fast heap already says the pool serves this call). Null only
        // when out of memory, which the full path handles.
        // SAFETY: `bin_of` gives a valid bin for sizes up to 4 KiB.
        let p = unsafe { pool::alloc::refill(bin_of(size)) };
        if !p.is_null() {
            return p;
        }
    }
    // One read of the configuration for the front and the sites mode.
    let c = config::get();
    let p = front::alloc(c.front, size, front::MIN_ALIGN, site(caller), false);
    if c.check {
        // SAFETY: a block just allocated here, not yet returned.
        unsafe { api::after_alloc(p) }; // the checked mode's exact check of the link followed
    }
    if c.sites {
        census::record_alloc(caller, size, p);
    }
    if p.is_null() {
        // SAFETY: errno is this thread's and always writable.
        unsafe { *libc::__errno_location() = libc::ENOMEM };
    }
    p
}

/// The call site of return address `caller` (0: unknown).
#[inline]
pub fn site(caller: usize) -> Site {
    Site::of_caller(caller)
}

/// `free`: null does nothing; a pointer that is not a live block of ours aborts.
///
/// # Safety
/// `p` must be null or a live block of this allocator, not used afterwards.
#[inline(always)]
pub unsafe fn free(p: *mut u8) {
    // SAFETY: forwarded; `free_fast` changes nothing unless `p` is a block of the fast
    // heap, which is null or this thread's.
    if INLINE && unsafe { pool::free::free_fast(pool::heap::fast(), p) } {
        return;
    }
    // SAFETY: forwarded.
    unsafe { free_slow(p) }
}

#[cold]
#[inline(never)]
unsafe fn free_slow(p: *mut u8) {
    // One read of the configuration, one test for the sites mode and the checked mode.
    let c = config::get();
    // SAFETY: forwarded.
    unsafe {
        if c.free_hooks {
            return free_hooked(c, p);
        }
        front::free(c.front, p)
    }
}

/// `free` without the sites mode's census: for `realloc`, which counted the free itself.
///
/// # Safety
/// As `free`.
#[cold]
pub unsafe fn free_uncounted(p: *mut u8) {
    let c = config::get();
    // SAFETY: forwarded.
    unsafe {
        if c.check {
            return front::free_checked(c.front, p);
        }
        front::free(c.front, p)
    }
}

/// `free` in the sites mode or the checked mode.
///
/// # Safety
/// As `free`.
#[cold]
unsafe fn free_hooked(c: &config::Config, p: *mut u8) {
    // SAFETY: forwarded.
    unsafe {
        if c.sites {
            census::record_free(p);
        }
        if c.check {
            return front::free_checked(c.front, p);
        }
        front::free(c.front, p)
    }
}
