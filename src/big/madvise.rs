//! Batch madvise: released big blocks are collected and given back together, to cut TLB
//! shootdowns. A block is queued whole (it stays mapped); the flush, at 256 blocks or 8 MiB,
//! first `madvise(MADV_DONTNEED)`s every queued block and only then unmaps them. Nothing
//! queued is ever unmapped before its flush (the original's bug). Blocks under 64 KiB skip
//! the queue.

use crate::lock::SpinLock;
use crate::os;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

pub const MAX_BLOCKS: usize = 256;
pub const FLUSH_BYTES: usize = 8 << 20;
pub const MIN_BLOCK: usize = 64 << 10;

struct Batch {
    blocks: [(usize, usize); MAX_BLOCKS],
    len: usize,
    bytes: usize,
}

static BATCH: SpinLock<Batch> = SpinLock::new(
    crate::lock::rank::MADVISE_BATCH,
    Batch {
        blocks: [(0, 0); MAX_BLOCKS],
        len: 0,
        bytes: 0,
    },
);
static FLUSHES: AtomicU64 = AtomicU64::new(0);

/// Batches flushed so far.
pub fn flushes() -> u64 {
    FLUSHES.load(Relaxed)
}

/// Blocks and bytes waiting for the next flush.
pub fn pending() -> (usize, usize) {
    let b = BATCH.lock();
    (b.len, b.bytes)
}

/// Releases the mapping `[base, base + span)`: queued, or unmapped at once when small.
///
/// # Safety
/// The range must be a whole mapping of ours that nobody uses any more.
pub unsafe fn release(base: *mut u8, span: usize) {
    if span < MIN_BLOCK {
        // SAFETY: per the caller.
        unsafe { os::unmap(base, span) };
        return;
    }
    let mut b = BATCH.lock();
    let i = b.len;
    b.blocks[i] = (base as usize, span);
    b.len += 1;
    b.bytes += span;
    if b.len == MAX_BLOCKS || b.bytes >= FLUSH_BYTES {
        flush_locked(&mut b);
    }
}

/// Flushes whatever is queued.
pub fn flush() {
    flush_locked(&mut BATCH.lock());
}

fn flush_locked(b: &mut Batch) {
    if b.len == 0 {
        return;
    }
    for &(base, span) in &b.blocks[..b.len] {
        // SAFETY: queued blocks are whole mappings of ours, dead since queued. (A refusal
        // is counted and costs nothing more: the unmap below gives the pages back.)
        unsafe { os::advise(base as *mut u8, span, libc::MADV_DONTNEED) };
    }
    for &(base, span) in &b.blocks[..b.len] {
        // SAFETY: as above; each is unmapped exactly once, here.
        unsafe { os::unmap(base as *mut u8, span) };
    }
    b.len = 0;
    b.bytes = 0;
    FLUSHES.fetch_add(1, Relaxed);
}

pub fn lock_for_fork() {
    BATCH.lock_forever();
}

/// # Safety
/// Only after `lock_for_fork` on this thread.
pub unsafe fn unlock_after_fork() {
    // SAFETY: forwarded.
    unsafe { BATCH.force_unlock() };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapped(p: usize, len: usize) -> bool {
        let mut v = [0u8; 1];
        // mincore fails with ENOMEM for an unmapped range.
        unsafe { libc::mincore(p as *mut libc::c_void, len.min(4096), v.as_mut_ptr()) == 0 }
    }

    #[test]
    fn queued_blocks_stay_mapped_until_the_8_mib_flush() {
        flush();
        let f0 = flushes();
        let unmaps0 = os::syscall_counts().munmap;
        let mut blocks = Vec::new();
        for _ in 0..3 {
            let p = os::map(0, 2 << 20);
            unsafe { *p = 1 };
            blocks.push(p as usize);
            unsafe { release(p, 2 << 20) };
        }
        assert_eq!(pending(), (3, 6 << 20));
        assert_eq!(flushes(), f0);
        for &p in &blocks {
            assert!(
                mapped(p, 2 << 20),
                "queued block {p:#x} was unmapped before its flush"
            );
        }
        // Other tests may unmap concurrently; ours must not have added any.
        let p = os::map(0, 2 << 20);
        unsafe { release(p, 2 << 20) }; // 8 MiB: flush
        assert_eq!(flushes(), f0 + 1);
        assert_eq!(pending(), (0, 0));
        for &p in blocks.iter().chain([p as usize].iter()) {
            assert!(!mapped(p, 2 << 20), "flushed block {p:#x} still mapped");
        }
        assert!(os::syscall_counts().munmap >= unmaps0 + 4);
    }
}
