//! The C ABI's fast paths: what every `malloc` and `free` of `libhakmem.so` runs first.
//!
//! The thread's *fast heap* (`pool::heap::fast`) is its heap where the configuration lets
//! the pool serve with no further question (the front is not `reuse`, the checked mode is
//! off), null otherwise: one TLS load answers both. Then the pool's pop or push, inlined,
//! for sizes up to 4 KiB (one table load gives the size class). Everything else leaves
//! for the full path (`api`), out of line: the first call of a thread, bigger sizes, a
//! block of another thread, a page that empties, a double free, out of memory (`errno`).
//! The call site's id is computed there too, from the return address the entry point
//! passes down: only the big-block path uses it, so small blocks never pay for the hash.
//!
//! Built with the `valgrind` feature, every call takes the full path, where the blocks are
//! announced to memcheck. In the sites mode (`HAKMEM_SITES=1`, the `reuse` front, so no
//! fast heap) every allocation and free of the C ABI is counted per call site here too
//! (`record_alloc`, `record_free`), on the full path.

use crate::big;
use crate::config;
use crate::front;
use crate::header::{AllocHeader, State, MAGIC};
use crate::learn::{sites, stacks};
use crate::pool::{self, segment};
use crate::site::Site;
use crate::size_class::{bin_of, TABLE_MAX};
use crate::tls;
use core::sync::atomic::Ordering::Relaxed;

/// Whether the inline paths are compiled in (not with memcheck's announcements).
const INLINE: bool = !cfg!(feature = "valgrind");

/// `malloc` called from code address `caller` (0: unknown). Null with `errno = ENOMEM`
/// when out of memory.
#[inline(always)]
pub fn malloc(size: usize, caller: usize) -> *mut u8 {
    if INLINE && size <= TABLE_MAX {
        // SAFETY: `bin_of` gives a valid bin for sizes up to 4 KiB; the fast heap is null
        // or this thread's heap.
        let p = unsafe { pool::heap::alloc_fast(pool::heap::fast(), bin_of(size)) };
        if !p.is_null() {
            return p;
        }
    }
    malloc_slow(size, caller) // a tail call: the fast path saves no register
}

#[cold]
#[inline(never)]
fn malloc_slow(size: usize, caller: usize) -> *mut u8 {
    // One read of the configuration for the front and the sites mode.
    let c = config::get();
    let p = front::alloc(c.front, size, front::MIN_ALIGN, site(caller), false);
    if c.sites {
        record_alloc(caller, size, p);
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
    if caller == 0 {
        Site::UNKNOWN
    } else {
        Site::from_return_address(caller)
    }
}

/// `free`: null does nothing; a pointer that is not a live block of ours aborts.
///
/// # Safety
/// `p` must be null or a live block of this allocator, not used afterwards.
#[inline(always)]
pub unsafe fn free(p: *mut u8) {
    // SAFETY: forwarded; `free_fast` changes nothing unless `p` is a block of the fast
    // heap, which is null or this thread's.
    if INLINE && unsafe { pool::heap::free_fast(pool::heap::fast(), p) } {
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

/// `free` in the sites mode or the checked mode.
///
/// # Safety
/// As `free`.
#[cold]
unsafe fn free_hooked(c: &config::Config, p: *mut u8) {
    // SAFETY: forwarded.
    unsafe {
        if c.sites {
            record_free(p);
        }
        if c.check {
            return front::free_checked(c.front, p);
        }
        front::free(c.front, p)
    }
}

/// The sites mode's count of a C-ABI allocation (callers check the mode): a pool block
/// is counted here, a big block by the learner's path; here too its size bucket, the
/// heap's total (for the peak snapshot), the thread's last block (for temporaries), and on
/// a site's first allocation its return address and stack, and a sampled stack every
/// `stacks::INTERVAL` bytes on average. Out of line: `malloc_slow`
/// stays as lean as without the mode.
#[cold]
#[inline(never)]
pub fn record_alloc(caller: usize, size: usize, p: *mut u8) {
    if p.is_null() {
        return;
    }
    let slot = sites::slot(site(caller));
    // A site's first allocation keeps its stack; a sampled one (by bytes) adds its stack
    // to the sampled stacks. One unwind serves both.
    let first = sites::note_first(slot, caller);
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
    if segment::is_pool(p) {
        sites::on_small_alloc(slot, size);
    }
    sites::on_sized(slot, size);
    sites::on_heap_change(size as i64);
    tls::set_last_alloc(p as usize);
}

/// The sites mode's count of a free (callers check the mode): a pool block's site and size
/// come from its header (the sites mode runs the `reuse` front; big blocks count their
/// site themselves); the heap's total; a temporary allocation when `p` is the thread's
/// last block.
///
/// # Safety
/// `p` must be null or a live block of this allocator.
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
