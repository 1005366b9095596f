//! BigCache: freed big blocks kept per (call site, size class) and handed back before the
//! OS is asked. Classes 512 KiB … 16 MiB (the original's v2); 256 site slots (the site's
//! table index, so a lookup is a direct index, no hash); a configurable number of ways.
//! Each slot is an atomic word: take and put are one CAS, no lock.

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering::AcqRel, Ordering::Relaxed};

pub use crate::size_class::{
    big_class_for_block as class_for_block, big_class_for_request as class_for_request,
    BIG_CLASSES as CLASSES,
};
pub const SITE_SLOTS: usize = 256;
pub const MAX_WAYS: usize = crate::config::MAX_WAYS;
const N: usize = SITE_SLOTS * CLASSES.len() * MAX_WAYS;

/// Cached blocks (user pointers; 0 = empty) and when each was put.
static SLOTS: [AtomicUsize; N] = [const { AtomicUsize::new(0) }; N];
static PUT_AT: [AtomicU64; N] = [const { AtomicU64::new(0) }; N];
/// Whether a cached block was already given `MADV_FREE` (warm).
static WARM: [AtomicUsize; N] = [const { AtomicUsize::new(0) }; N];

/// When a block of each (site, class) was last released instead of cached (a "ghost"):
/// a miss soon after means caching it would have paid.
static RELEASED_AT: [AtomicU64; SITE_SLOTS * CLASSES.len()] =
    [const { AtomicU64::new(0) }; SITE_SLOTS * CLASSES.len()];
/// How recent a release must be for the next miss to keep its block.
pub const GHOST_NS: u64 = 1_000_000_000;

static HITS: AtomicU64 = AtomicU64::new(0);
static MISSES: AtomicU64 = AtomicU64::new(0);
static EVICTIONS: AtomicU64 = AtomicU64::new(0);
static PUTS: AtomicU64 = AtomicU64::new(0);
/// Bytes held by cached blocks; above `MAX_BYTES` frees bypass the cache.
static BYTES: AtomicUsize = AtomicUsize::new(0);
pub const MAX_BYTES: usize = 1 << 30;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheTotals {
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
    pub puts: u64,
    pub bytes: u64,
}

pub fn totals() -> CacheTotals {
    CacheTotals {
        hits: HITS.load(Relaxed),
        misses: MISSES.load(Relaxed),
        evictions: EVICTIONS.load(Relaxed),
        puts: PUTS.load(Relaxed),
        bytes: BYTES.load(Relaxed) as u64,
    }
}

#[inline(always)]
fn base(site_slot: usize, class: usize) -> usize {
    ((site_slot % SITE_SLOTS) * CLASSES.len() + class) * MAX_WAYS
}

/// Takes a cached block for (site, class), most recently put first. Counts a hit or miss.
#[inline]
pub fn take(
    site_slot: usize,
    class: usize,
    ways: usize,
    span: impl Fn(usize) -> usize,
) -> Option<usize> {
    let b = base(site_slot, class);
    let mut best: Option<usize> = None;
    for w in 0..ways {
        if SLOTS[b + w].load(Relaxed) != 0
            && best.is_none_or(|x| PUT_AT[b + w].load(Relaxed) > PUT_AT[b + x].load(Relaxed))
        {
            best = Some(w);
        }
    }
    if let Some(w) = best {
        let v = SLOTS[b + w].swap(0, AcqRel);
        if v != 0 {
            BYTES.fetch_sub(span(v), Relaxed);
            HITS.fetch_add(1, Relaxed);
            return Some(v);
        }
    }
    MISSES.fetch_add(1, Relaxed);
    None
}

/// Files block `p` under (site, class). Returns the block it evicted, if the ways were
/// full (the oldest goes), or `Err(p)` when the cache is over its byte budget.
pub fn put(
    site_slot: usize,
    class: usize,
    ways: usize,
    p: usize,
    span: usize,
    now_ns: u64,
) -> Result<Option<usize>, usize> {
    if BYTES.load(Relaxed) + span > MAX_BYTES {
        return Err(p);
    }
    let b = base(site_slot, class);
    PUTS.fetch_add(1, Relaxed);
    BYTES.fetch_add(span, Relaxed);
    for w in 0..ways {
        if SLOTS[b + w].load(Relaxed) == 0
            && SLOTS[b + w].compare_exchange(0, p, AcqRel, Relaxed).is_ok()
        {
            PUT_AT[b + w].store(now_ns, Relaxed);
            WARM[b + w].store(0, Relaxed);
            return Ok(None);
        }
    }
    let mut oldest = 0;
    for w in 1..ways {
        if PUT_AT[b + w].load(Relaxed) < PUT_AT[b + oldest].load(Relaxed) {
            oldest = w;
        }
    }
    let old = SLOTS[b + oldest].swap(p, AcqRel);
    PUT_AT[b + oldest].store(now_ns, Relaxed);
    WARM[b + oldest].store(0, Relaxed);
    if old == 0 {
        return Ok(None);
    }
    EVICTIONS.fetch_add(1, Relaxed);
    Ok(Some(old))
}

/// Records that a block of (site, class) was just released rather than cached.
pub fn note_release(site_slot: usize, class: usize, now_ns: u64) {
    RELEASED_AT[(site_slot % SITE_SLOTS) * CLASSES.len() + class].store(now_ns.max(1), Relaxed);
}

/// Whether (site, class) released a block within `GHOST_NS` of `now_ns`.
pub fn recently_released(site_slot: usize, class: usize, now_ns: u64) -> bool {
    let t = RELEASED_AT[(site_slot % SITE_SLOTS) * CLASSES.len() + class].load(Relaxed);
    t != 0 && now_ns.saturating_sub(t) < GHOST_NS
}

/// Gives back the byte budget of an evicted or aged-out block.
pub fn forget_bytes(span: usize) {
    BYTES.fetch_sub(span, Relaxed);
}

/// The thermal policy over every cached block: those idle past `cold_ns` are taken out
/// and passed to `cold` (which hands them to the madvise batch); those idle past `warm_ns`
/// are passed once to `warm` (which gives their pages `MADV_FREE`); the rest stay hot.
///
/// Ownership: a block is advised or released only by whoever holds it. Both callbacks
/// run on a block this pass has taken out of its slot with a CAS, so no other thread can
/// take it meanwhile (and write to pages the kernel may then drop). A warm block goes back
/// to its slot afterwards; if the slot was refilled meanwhile, it is released as cold.
pub fn age(
    now_ns: u64,
    warm_ns: u64,
    cold_ns: u64,
    mut warm: impl FnMut(usize),
    mut cold: impl FnMut(usize),
) {
    if BYTES.load(Relaxed) == 0 {
        return;
    }
    for i in 0..N {
        let v = SLOTS[i].load(Relaxed);
        if v == 0 {
            continue;
        }
        let idle = now_ns.saturating_sub(PUT_AT[i].load(Relaxed));
        let is_cold = idle >= cold_ns;
        if !is_cold && (idle < warm_ns || WARM[i].load(Relaxed) != 0) {
            continue; // hot, or already advised
        }
        if SLOTS[i].compare_exchange(v, 0, AcqRel, Relaxed).is_err() {
            continue; // taken (or replaced) meanwhile: its new holder decides
        }
        // This pass holds `v` now.
        if is_cold {
            EVICTIONS.fetch_add(1, Relaxed);
            cold(v);
            continue;
        }
        warm(v);
        if SLOTS[i].compare_exchange(0, v, AcqRel, Relaxed).is_ok() {
            WARM[i].store(1, Relaxed);
        } else {
            EVICTIONS.fetch_add(1, Relaxed);
            cold(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: usize = 1 << 20;

    #[test]
    fn ghosts_of_released_blocks_expire_after_a_second() {
        assert!(!recently_released(99, 1, 10));
        note_release(99, 1, 5_000_000_000);
        assert!(recently_released(99, 1, 5_500_000_000));
        assert!(!recently_released(99, 2, 5_500_000_000), "per class");
        assert!(!recently_released(99, 1, 6_000_000_001), "expired");
    }

    #[test]
    fn classes_for_requests_and_blocks() {
        assert_eq!(class_for_request(100), Some(0));
        assert_eq!(class_for_request(512 << 10), Some(0));
        assert_eq!(class_for_request((512 << 10) + 1), Some(1));
        assert_eq!(class_for_request(2 * MB), Some(2));
        assert_eq!(class_for_request(5 * MB), Some(5));
        assert_eq!(class_for_request(16 * MB + 1), None);
        assert_eq!(class_for_block(300 << 10), None);
        assert_eq!(class_for_block(2 * MB + 4096), Some(2));
        assert_eq!(class_for_block(64 * MB), Some(7));
    }

    // One test drives the shared table so the hit/miss/eviction counts are its own.
    #[test]
    fn hit_miss_and_eviction_order() {
        let site = 77;
        let c = 2;
        let t0 = totals();
        assert_eq!(take(site, c, 4, |_| 0), None, "empty: a miss");
        for (i, p) in [0x1000usize, 0x2000, 0x3000, 0x4000]
            .into_iter()
            .enumerate()
        {
            assert_eq!(put(site, c, 4, p, MB, 10 + i as u64), Ok(None));
        }
        // Full: the oldest (0x1000, put at 10) is evicted.
        assert_eq!(put(site, c, 4, 0x5000, MB, 20), Ok(Some(0x1000)));
        forget_bytes(MB);
        // Takes come newest first.
        assert_eq!(take(site, c, 4, |_| MB), Some(0x5000));
        assert_eq!(take(site, c, 4, |_| MB), Some(0x4000));
        // Another site or class does not see them.
        assert_eq!(take(site + 1, c, 4, |_| MB), None);
        assert_eq!(take(site, c + 1, 4, |_| MB), None);
        // Ageing: 0x2000 (put at 11) and 0x3000 (12) are idle 100 at t = 112 → cold at 100.
        let (mut warm, mut cold) = (Vec::new(), Vec::new());
        age(111, 50, 100, |p| warm.push(p), |p| cold.push(p));
        assert_eq!((warm.clone(), cold.clone()), (vec![0x3000], vec![0x2000]));
        age(111, 50, 100, |p| warm.push(p), |p| cold.push(p));
        assert_eq!(warm, vec![0x3000], "warm advice is given once");
        age(112, 50, 100, |p| warm.push(p), |p| cold.push(p));
        assert_eq!(cold, vec![0x2000, 0x3000]);
        forget_bytes(2 * MB);
        let t1 = totals();
        assert_eq!(t1.hits - t0.hits, 2);
        assert_eq!(t1.misses - t0.misses, 3);
        assert_eq!(t1.evictions - t0.evictions, 3);
        assert_eq!(t1.bytes, t0.bytes);
        a_block_being_advised_is_out_of_the_cache_meanwhile();
    }

    /// The ageing pass may advise only a block it holds: while `warm` runs on a block, no
    /// other thread can take that block from the cache (it would write to pages the kernel
    /// is free to drop). Afterwards the block is back in its slot, marked warm.
    /// (Called from the test above: both drive the one shared table.)
    fn a_block_being_advised_is_out_of_the_cache_meanwhile() {
        let (site, c) = (91, 4);
        let p = 0x9000usize;
        assert_eq!(put(site, c, 2, p, MB, 1_000), Ok(None));
        let mut taken_during_warm = Vec::new();
        age(
            1_000 + 60,
            50,
            1_000_000,
            |v| {
                assert_eq!(v, p);
                // Another thread's allocation at this very moment:
                taken_during_warm.push(take(site, c, 2, |_| MB));
            },
            |_| panic!("not cold yet"),
        );
        assert_eq!(
            taken_during_warm,
            vec![None],
            "the advised block was handed out"
        );
        // The block is back, and is not advised twice.
        let mut again = 0;
        age(1_000 + 70, 50, 1_000_000, |_| again += 1, |_| {});
        assert_eq!(again, 0);
        assert_eq!(take(site, c, 2, |_| MB), Some(p));
    }
}
