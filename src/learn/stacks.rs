//! Sampled allocation stacks for the sites mode: where a call site's bytes come from when
//! the site is a wrapper (`xmalloc`, sqlite's `sqlite3MemMalloc`) that every caller shares.
//!
//! jemalloc's heap profiler samples by bytes, and so does this: a countdown of bytes runs
//! across all threads, and the allocation that takes it below zero is sampled. Its stack
//! (unwound by the caller) goes into a fixed table of distinct stacks, weighted with the
//! bytes the countdown spent since the last sample, so the weights add up to the bytes
//! allocated (to within one interval) and a stack's weight estimates its bytes. Intervals
//! are jittered around `INTERVAL` so a periodic pattern of sizes cannot alias with them.
//! One thread samples at a time; a thread that finds the sampler busy leaves the sample to
//! the next allocation. Nothing here allocates.

use super::rng::Rng;
use core::cell::UnsafeCell;
use core::sync::atomic::{
    AtomicBool, AtomicI64, AtomicU64, AtomicUsize,
    Ordering::{Acquire, Relaxed, Release},
};

/// The mean bytes between two samples (jemalloc's default is 512 KiB).
pub const INTERVAL: i64 = 256 << 10;
/// Frames kept per sampled stack.
pub const DEPTH: usize = 32;
/// Distinct stacks kept; later ones add their weight to `DROPPED`.
pub const STACKS: usize = 1024;

pub struct StackEntry {
    /// The bytes this stack stands for (0: a free entry).
    pub weight: AtomicU64,
    /// Samples taken at it.
    pub samples: AtomicU64,
    /// Return addresses, innermost (the caller of `malloc`) first; 0 past the end.
    pub frames: [AtomicUsize; DEPTH],
}

pub static TABLE: [StackEntry; STACKS] = [const {
    StackEntry {
        weight: AtomicU64::new(0),
        samples: AtomicU64::new(0),
        frames: [const { AtomicUsize::new(0) }; DEPTH],
    }
}; STACKS];
/// The weight of samples that found the table full.
pub static DROPPED: AtomicU64 = AtomicU64::new(0);

static COUNTDOWN: AtomicI64 = AtomicI64::new(INTERVAL);
static SAMPLING: AtomicBool = AtomicBool::new(false);

/// The sampler's generator, touched only by the thread holding `SAMPLING`.
struct Jitter(UnsafeCell<Rng>);
// SAFETY: only the holder of `SAMPLING` (one thread at a time) touches the generator.
unsafe impl Sync for Jitter {}
static JITTER: Jitter = Jitter(UnsafeCell::new(Rng::new(0x5EED_57AC)));

/// A sample being taken: holds the sampler until dropped.
pub struct Sample {
    weight: u64,
}

/// Counts an allocation of `size` bytes; the sample it is due, if any (the caller unwinds
/// its stack and hands it to `Sample::record`).
#[inline]
pub fn due(size: usize) -> Option<Sample> {
    let size = size as i64;
    if COUNTDOWN.fetch_sub(size, Relaxed) - size > 0 {
        return None;
    }
    if SAMPLING.swap(true, Acquire) {
        return None; // busy: the next allocation finds the countdown still spent
    }
    // Refill the countdown by whole jittered intervals until it is positive again: their
    // sum is the bytes this sample stands for.
    // SAFETY: this thread holds `SAMPLING`.
    let rng = unsafe { &mut *JITTER.0.get() };
    let mut weight = 0;
    while COUNTDOWN.load(Relaxed) <= 0 {
        let step = INTERVAL / 2 + rng.below(INTERVAL as usize) as i64; // mean INTERVAL
        COUNTDOWN.fetch_add(step, Relaxed);
        weight += step as u64;
    }
    Some(Sample { weight })
}

impl Sample {
    /// Adds the sample at the stack `frames` from the return address `addr` outwards
    /// (`addr` alone when the unwind did not reach it).
    pub fn record(self, addr: usize, frames: &[usize]) {
        let only = [addr];
        let stack = match frames.iter().position(|&f| f == addr) {
            Some(k) => &frames[k..],
            None => &only[..],
        };
        let stack = &stack[..stack.len().min(DEPTH)];
        let i = match find_or_claim(stack) {
            Some(i) => i,
            None => {
                DROPPED.fetch_add(self.weight, Relaxed);
                return;
            }
        };
        TABLE[i].samples.fetch_add(1, Relaxed);
        TABLE[i].weight.fetch_add(self.weight, Relaxed);
    }
}

impl Drop for Sample {
    fn drop(&mut self) {
        SAMPLING.store(false, Release);
    }
}

/// The entry holding `stack`, claiming a free one (only the sampler writes the table).
fn find_or_claim(stack: &[usize]) -> Option<usize> {
    let hash = stack.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &f| {
        (h ^ f as u64).wrapping_mul(0x100_0000_01b3)
    });
    let home = (hash >> 40) as usize % STACKS;
    for k in 0..32 {
        let i = (home + k) % STACKS;
        let e = &TABLE[i];
        if e.weight.load(Relaxed) == 0 {
            for (slot, f) in e.frames.iter().enumerate() {
                f.store(stack.get(slot).copied().unwrap_or(0), Relaxed);
            }
            return Some(i);
        }
        let same = e
            .frames
            .iter()
            .enumerate()
            .all(|(slot, f)| f.load(Relaxed) == stack.get(slot).copied().unwrap_or(0));
        if same {
            return Some(i);
        }
    }
    None
}

/// In a fork child: no other thread exists to be sampling.
pub fn after_fork_in_child() {
    SAMPLING.store(false, Release);
}

/// The entries in use, with their stacks: what the exit report writes.
pub fn for_each(mut f: impl FnMut(&StackEntry)) {
    for e in &TABLE {
        if e.weight.load(Relaxed) != 0 {
            f(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampled_weights_add_up_to_the_bytes_allocated_and_stacks_are_kept_apart() {
        // One test drives the global sampler (tests run in threads: a second one would
        // share its countdown).
        let before = total();
        let mut bytes = 0u64;
        for k in 0..20_000usize {
            let size = 16 + (k % 7) * 100;
            bytes += size as u64;
            if let Some(s) = due(size) {
                let stack = [0x1000 + k % 3, 0x2000, 0x3000];
                s.record(0x1000 + k % 3, &[0x10, 0x20, stack[0], stack[1], stack[2]]);
            }
        }
        let got = total() - before;
        let err = got.abs_diff(bytes);
        assert!(err <= 2 * INTERVAL as u64, "weights {got} vs bytes {bytes}");
        // Three distinct stacks, each starting at its return address.
        let mut seen = Vec::new();
        for_each(|e| {
            let f0 = e.frames[0].load(Relaxed);
            if (0x1000..0x1003).contains(&f0) {
                assert_eq!(e.frames[1].load(Relaxed), 0x2000);
                seen.push(f0);
            }
        });
        seen.sort();
        assert_eq!(seen, [0x1000, 0x1001, 0x1002]);
        // An allocation of many intervals is always sampled, with its whole size.
        let before = total();
        let s = due(10 * INTERVAL as usize).expect("a big allocation is sampled");
        s.record(0x4000, &[0x4000]);
        assert!(total() - before >= 8 * INTERVAL as u64);
    }

    fn total() -> u64 {
        let mut t = DROPPED.load(Relaxed);
        for_each(|e| t += e.weight.load(Relaxed));
        t
    }
}
