//! Sampled allocation stacks for the sites mode: who holds the memory when the call site
//! is a wrapper (`xmalloc`, sqlite's `sqlite3MemMalloc`) that every caller shares.
//!
//! As jemalloc's heap profiler does, allocations are sampled by bytes: each byte allocated
//! is a sample point with probability 1/R (R = `HAKMEM_SAMPLE_BYTES`, 256 KiB by default),
//! drawn as exponential gaps on one countdown that every thread spends. An allocation of
//! `s` bytes is then sampled with probability p = 1 − e^(−s/R), and stands for 1/p
//! allocations and s/p bytes: the unbiased estimate (jemalloc's `prof_unbias`), computed
//! from the size alone, so a free subtracts exactly what its allocation added without the
//! block storing a weight. R = 1 samples every allocation with p = 1: every figure of a
//! stack is then exact (heaptrack's way, at heaptrack's cost of one unwind per call).
//!
//! The sampled block carries its stack's index in its header (`AllocHeader::stack`), so
//! its free, its being live at the heap's peak, a temporary free and a leak at exit are
//! charged to the stack that allocated it. Counts are kept in 1/65536ths (`FX`).
//! One thread samples at a time; a thread that finds the sampler busy leaves the sample to
//! the next allocation. Nothing here allocates.

use super::math;
use super::rng::Rng;
use core::cell::UnsafeCell;
use core::sync::atomic::{
    AtomicBool, AtomicI64, AtomicU64, AtomicUsize,
    Ordering::{Acquire, Relaxed, Release},
};

/// The default mean bytes between two samples (jemalloc's default is 512 KiB).
pub const INTERVAL: usize = 256 << 10;
/// Frames kept per sampled stack.
pub const DEPTH: usize = 32;
/// Distinct stacks kept; later ones add their weight to `DROPPED`.
pub const STACKS: usize = 1024;
/// Counts are fixed-point: `FX` stands for one allocation.
pub const FX: u64 = 1 << 16;

/// What one stack holds: estimates (exact when every allocation is sampled).
pub struct StackEntry {
    /// Samples taken at it (0: a free entry).
    pub samples: AtomicU64,
    /// Allocations (× `FX`) and bytes made through it.
    pub allocs: AtomicU64,
    pub bytes: AtomicU64,
    /// Allocations (× `FX`) and bytes of it live now: at exit, its leaks.
    pub live: AtomicI64,
    pub live_bytes: AtomicI64,
    /// Its live bytes at the last snapshot of the heap's peak.
    pub at_peak: AtomicI64,
    /// Allocations (× `FX`) freed by their thread before it allocated again.
    pub temporary: AtomicU64,
    /// Return addresses, innermost (the caller of `malloc`) first; 0 past the end.
    pub frames: [AtomicUsize; DEPTH],
}

pub static TABLE: [StackEntry; STACKS] = [const {
    StackEntry {
        samples: AtomicU64::new(0),
        allocs: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        live: AtomicI64::new(0),
        live_bytes: AtomicI64::new(0),
        at_peak: AtomicI64::new(0),
        temporary: AtomicU64::new(0),
        frames: [const { AtomicUsize::new(0) }; DEPTH],
    }
}; STACKS];
/// The bytes (estimated) of samples that found the table full.
pub static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Bytes left before the next sample point (shared by every thread). It starts spent, so
/// the first allocation draws the first point (at the configured interval, not a fixed
/// one: a fixed start would leave the first bytes unsampled).
static COUNTDOWN: AtomicI64 = AtomicI64::new(0);
/// Whether the first point was drawn.
static STARTED: AtomicBool = AtomicBool::new(false);
static SAMPLING: AtomicBool = AtomicBool::new(false);

/// The sampler's generator, touched only by the thread holding `SAMPLING`.
struct Jitter(UnsafeCell<Rng>);
// SAFETY: only the holder of `SAMPLING` (one thread at a time) touches the generator.
unsafe impl Sync for Jitter {}
static JITTER: Jitter = Jitter(UnsafeCell::new(Rng::new(0x5EED_57AC)));

/// What a sampled allocation of `size` bytes stands for at mean interval `interval`:
/// (allocations × `FX`, bytes), i.e. 1/p and size/p with p = 1 − e^(−size/interval).
pub fn weight(size: usize, interval: usize) -> (u64, u64) {
    let s = size.max(1) as f64;
    if interval <= 1 {
        return (FX, s as u64);
    }
    let p = 1.0 - math::exp(-s / interval as f64);
    if p >= 1.0 {
        return (FX, s as u64);
    }
    ((FX as f64 / p + 0.5) as u64, (s / p + 0.5) as u64)
}

/// A sample being taken: holds the sampler until dropped.
pub struct Sample {
    size: usize,
    interval: usize,
}

/// Counts an allocation of `size` bytes against the countdown of mean `interval` bytes;
/// the sample it is due, if any (the caller unwinds its stack and hands it to
/// `Sample::record`).
#[inline]
pub fn due(size: usize, interval: usize) -> Option<Sample> {
    let spent = size.max(1) as i64;
    if interval > 1 && COUNTDOWN.fetch_sub(spent, Relaxed) - spent > 0 {
        return None;
    }
    if SAMPLING.swap(true, Acquire) {
        return None; // busy: the next allocation finds the countdown still spent
    }
    if interval > 1 {
        // The next sample point: an exponential gap of mean `interval` (the points of a
        // Poisson process, which is what makes 1/p the right weight).
        // SAFETY: this thread holds `SAMPLING`.
        let rng = unsafe { &mut *JITTER.0.get() };
        let u = 1.0 - rng.next_f64(); // (0, 1]
        let gap = (-math::ln(u) * interval as f64).clamp(1.0, (interval as f64) * 64.0) as i64;
        if !STARTED.swap(true, Relaxed) && gap > spent {
            // The first point, drawn from the start: past this allocation.
            COUNTDOWN.store(gap - spent, Relaxed);
            SAMPLING.store(false, Release);
            return None;
        }
        COUNTDOWN.store(gap, Relaxed);
    }
    Some(Sample { size, interval })
}

impl Sample {
    /// Adds the sample at the stack `frames` from the return address `addr` outwards
    /// (`addr` alone when the unwind did not reach it). The stack's index + 1, which the
    /// block keeps (0: the table was full).
    pub fn record(self, addr: usize, frames: &[usize]) -> u16 {
        let only = [addr];
        let stack = match frames.iter().position(|&f| f == addr) {
            Some(k) => &frames[k..],
            None => &only[..],
        };
        let stack = &stack[..stack.len().min(DEPTH)];
        let (n, bytes) = weight(self.size, self.interval);
        let Some(i) = find_or_claim(stack) else {
            DROPPED.fetch_add(bytes, Relaxed);
            return 0;
        };
        let e = &TABLE[i];
        e.allocs.fetch_add(n, Relaxed);
        e.bytes.fetch_add(bytes, Relaxed);
        e.live.fetch_add(n as i64, Relaxed);
        e.live_bytes.fetch_add(bytes as i64, Relaxed);
        i as u16 + 1
    }
}

impl Drop for Sample {
    fn drop(&mut self) {
        SAMPLING.store(false, Release);
    }
}

/// The free of a block of `size` bytes that stack `stack` (index + 1, as `record` gave
/// it) allocated at mean interval `interval`; `temporary`: freed by its thread before it
/// allocated again.
pub fn on_free(stack: u16, size: usize, interval: usize, temporary: bool) {
    let Some(e) = (stack as usize).checked_sub(1).and_then(|i| TABLE.get(i)) else {
        return;
    };
    let (n, bytes) = weight(size, interval);
    e.live.fetch_sub(n as i64, Relaxed);
    e.live_bytes.fetch_sub(bytes as i64, Relaxed);
    if temporary {
        e.temporary.fetch_add(n, Relaxed);
    }
}

/// Copies each stack's live bytes to `at_peak` (called inside the heap's peak snapshot).
pub fn snapshot_at_peak() {
    for e in &TABLE {
        if e.samples.load(Relaxed) != 0 {
            e.at_peak.store(e.live_bytes.load(Relaxed), Relaxed);
        }
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
        if e.samples.load(Relaxed) == 0 {
            for (slot, f) in e.frames.iter().enumerate() {
                f.store(stack.get(slot).copied().unwrap_or(0), Relaxed);
            }
            e.samples.store(1, Release);
            return Some(i);
        }
        let same = e
            .frames
            .iter()
            .enumerate()
            .all(|(slot, f)| f.load(Relaxed) == stack.get(slot).copied().unwrap_or(0));
        if same {
            e.samples.fetch_add(1, Relaxed);
            return Some(i);
        }
    }
    None
}

/// The table's place (`.bss`): for the footprint.
pub fn region() -> (*const u8, usize) {
    (TABLE.as_ptr() as *const u8, core::mem::size_of_val(&TABLE))
}

/// In a fork child: no other thread exists to be sampling.
pub fn after_fork_in_child() {
    SAMPLING.store(false, Release);
}

/// The entries in use, with their stacks: what the exit report writes.
pub fn for_each(mut f: impl FnMut(&StackEntry)) {
    for e in &TABLE {
        if e.samples.load(Acquire) != 0 {
            f(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_weight_of_a_sample_is_the_unbiased_estimate() {
        // Every allocation sampled: exact.
        assert_eq!(weight(200, 1), (FX, 200));
        assert_eq!(weight(0, 1), (FX, 1));
        // Far above the interval: sampled always, stands for itself.
        assert_eq!(weight(64 << 20, INTERVAL), (FX, 64 << 20));
        // Far below: stands for about interval/size allocations and `interval` bytes.
        let (n, b) = weight(16, INTERVAL);
        assert!(
            (n as f64 / FX as f64 - INTERVAL as f64 / 16.0).abs() < 1.0,
            "{n}"
        );
        assert!((b as f64 - INTERVAL as f64).abs() < 16.0, "{b}");
    }

    #[test]
    fn sampled_estimates_add_up_to_what_was_allocated_and_frees_take_it_back() {
        // One test drives the global sampler (tests run in threads: a second one would
        // share its countdown).
        let interval = 4096;
        // About 80 000 samples (200 under Miri, which is slow): estimates within a few
        // percent (a third).
        let (n, tolerance) = if cfg!(miri) {
            (800, 0.34)
        } else {
            (200_000, 0.05)
        };
        let (mut bytes, mut count) = (0u64, 0u64);
        let mut kept = Vec::new();
        for k in 0..n {
            let size = 16 + (k % 7) * 100;
            bytes += size as u64;
            count += 1;
            if let Some(s) = due(size, interval) {
                let at = 0x1000 + k % 3;
                let idx = s.record(at, &[0x10, 0x20, at, 0x2000, 0x3000]);
                assert!(idx != 0);
                kept.push((idx, size));
            }
        }
        let (mut got_bytes, mut got_count, mut live) = (0u64, 0u64, 0i64);
        let mut seen = Vec::new();
        for_each(|e| {
            let f0 = e.frames[0].load(Relaxed);
            if (0x1000..0x1003).contains(&f0) {
                assert_eq!(e.frames[1].load(Relaxed), 0x2000, "from the return address");
                seen.push(f0);
                got_bytes += e.bytes.load(Relaxed);
                got_count += e.allocs.load(Relaxed);
                live += e.live_bytes.load(Relaxed);
            }
        });
        seen.sort();
        assert_eq!(seen, [0x1000, 0x1001, 0x1002], "three stacks kept apart");
        let err = |got: f64, want: f64| (got / want - 1.0).abs();
        assert!(
            err(got_bytes as f64, bytes as f64) < tolerance,
            "{got_bytes} vs {bytes}"
        );
        assert!(err(got_count as f64 / FX as f64, count as f64) < tolerance);
        assert_eq!(live, got_bytes as i64);
        // Freeing every sampled block takes back exactly what it added.
        for &(idx, size) in &kept {
            on_free(idx, size, interval, true);
        }
        for_each(|e| {
            if (0x1000..0x1003).contains(&e.frames[0].load(Relaxed)) {
                assert_eq!(e.live_bytes.load(Relaxed), 0);
                assert_eq!(e.live.load(Relaxed), 0);
                assert_eq!(e.temporary.load(Relaxed), e.allocs.load(Relaxed));
            }
        });
        // An allocation of many intervals is always sampled, and counted whole.
        let s = due(64 * interval, interval).expect("a big allocation is sampled");
        let idx = s.record(0x4000, &[0x4000]);
        assert_eq!(
            TABLE[idx as usize - 1].bytes.load(Relaxed),
            64 * interval as u64
        );
    }
}
