//! The call-site table: 256 sites with per-site counts, bytes, live bytes, a size
//! histogram and the threshold last chosen for them. A site that finds no free entry
//! within 8 probes shares the "other" entry: never a crash, never an allocation.
//!
//! The sites mode (`HAKMEM_SITES=1`) adds, beside the table, what a heap profiler reports:
//! each site's first return address and its stack (`note_first`), sizes by powers of two,
//! temporary allocations (freed before the thread's next allocation), and what each site
//! held live at the heap's peak (`on_heap_change`).

use super::lifecycle::HIST_BUCKETS;
use crate::site::Site;
use core::panic::Location;
use core::sync::atomic::{
    AtomicBool, AtomicI64, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize,
    Ordering::{Acquire, Relaxed, Release},
};

pub const SITES: usize = 256;
/// Index of the shared overflow entry.
pub const OTHER: usize = SITES;
const PROBES: usize = 8;
/// The stored id of `Site::UNKNOWN` (0 marks a free entry).
const UNKNOWN_ID: u32 = u32::MAX;

pub struct SiteEntry {
    pub id: AtomicU32,
    pub count: AtomicU64,
    pub bytes: AtomicU64,
    pub live: AtomicI64,
    pub hist: [AtomicU64; HIST_BUCKETS],
    pub threshold: AtomicUsize,
    /// BigCache hits for this site.
    pub hits: AtomicU64,
    /// Times a block of this site grew by `realloc`: a site whose blocks grow is handed a
    /// larger cached block whole (see `big::take_cached`).
    pub grows: AtomicU64,
}

impl SiteEntry {
    // Only ever an initializer (each use is a fresh value), never shared.
    #[allow(clippy::declare_interior_mutable_const)]
    const EMPTY: SiteEntry = SiteEntry {
        id: AtomicU32::new(0),
        count: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        live: AtomicI64::new(0),
        hist: [const { AtomicU64::new(0) }; HIST_BUCKETS],
        threshold: AtomicUsize::new(0),
        hits: AtomicU64::new(0),
        grows: AtomicU64::new(0),
    };

    /// The site id this entry holds (None: free; `Site::UNKNOWN` for unknown callers).
    pub fn site(&self) -> Option<Site> {
        match self.id.load(Relaxed) {
            0 => None,
            UNKNOWN_ID => Some(Site::UNKNOWN),
            id => Some(Site(id)),
        }
    }
}

pub static TABLE: [SiteEntry; SITES + 1] = [const { SiteEntry::EMPTY }; SITES + 1];

/// Per entry, the first return address seen for the site (C ABI, sites mode; 0: none):
/// what `hakprof sites` symbolizes. Beside the table, not in it: a larger entry made the
/// site lookup's indexing dearer (`site_hash` +8 % instructions in the gate).
pub static ADDR: [AtomicUsize; SITES + 1] = [const { AtomicUsize::new(0) }; SITES + 1];
/// Per entry, the site's reach: the largest size it asked for lately (each big allocation
/// of the site first lets it decay by 1/64, so a size not asked for again fades within a
/// hundred or so of the site's allocations), and how many times since it was set the site
/// asked for at least half of it again. A cached block within twice a reach the site has
/// come back to is handed to it whole: it will want that size again, and shrinking the
/// block now would only fault its pages in again later (`big::take_cached`). A size asked
/// for once (a start-up buffer) does not count: its block is split for smaller requests,
/// which may want to live at the same time.
pub static REACH: [AtomicUsize; SITES + 1] = [const { AtomicUsize::new(0) }; SITES + 1];
static REACH_AGAIN: [AtomicU32; SITES + 1] = [const { AtomicU32::new(0) }; SITES + 1];

/// Notes a big request of `size` bytes by site `i` in its reach. (Racy updates only age
/// the reach a little more or less.)
pub fn note_reach(i: usize, size: usize) {
    let r = REACH[i].load(Relaxed);
    REACH[i].store((r - r / 64).max(size), Relaxed);
    if size > 2 * r {
        REACH_AGAIN[i].store(0, Relaxed); // a new, larger size: not come back to yet
    } else if 2 * size >= r {
        let n = REACH_AGAIN[i].load(Relaxed);
        REACH_AGAIN[i].store(n.saturating_add(1), Relaxed);
    }
}

/// The site's reach (see `REACH`), if the site came back to it: 0 otherwise.
pub fn reach(i: usize) -> usize {
    if REACH_AGAIN[i].load(Relaxed) == 0 {
        return 0;
    }
    REACH[i].load(Relaxed)
}

/// Per entry, how densely the site writes its big blocks, for its transparent huge pages
/// (`config::HugePages::PerSite`): the resident part of what was measured (a probe's
/// small-page chunk, or the chunks of a plain block being freed), in 1/256 (low 16 bits,
/// an average that gives the newest measure 1/4), and how many were measured (high 16
/// bits). A huge page makes all of its 2 MiB
/// resident at the first write, so a site whose blocks are written only in part loses
/// them: there they would hold memory nobody wrote (a 4 MiB buffer filled to 800 KiB:
/// 2 MiB resident instead of 800 KiB).
static DENSITY: [AtomicU32; SITES + 1] = [const { AtomicU32::new(0) }; SITES + 1];
/// Per entry, frees of blocks that could be measured: the first few are, then one in 16.
static DENSITY_FREES: [AtomicU32; SITES + 1] = [const { AtomicU32::new(0) }; SITES + 1];
/// Per entry, fresh blocks of a huge page or more mapped: one in `PROBE_EVERY` (the first
/// included) keeps one 2 MiB chunk on small pages, to be measured (a huge page reads
/// resident whole, so only small pages tell how much the site writes).
static HUGE_CANDIDATES: [AtomicU32; SITES + 1] = [const { AtomicU32::new(0) }; SITES + 1];
pub const PROBE_EVERY: u32 = 32;
/// Dense: at least 7/8 of the chunks resident (a huge page then wastes at most 1/8).
pub const DENSE: u32 = 224;

/// Whether site `i`'s free of a measurable block should measure it (a `mincore` call):
/// the site's first 4 such frees, then one in 16, so that a site whose blocks stop being
/// written densely loses its huge pages again, and a sparse one that starts gets them.
pub fn density_due(i: usize) -> bool {
    let n = DENSITY_FREES[i].fetch_add(1, Relaxed);
    n < 4 || n.is_multiple_of(16)
}

/// Notes that `resident` of `len` bytes of a block site `i` freed were resident.
pub fn note_density(i: usize, resident: usize, len: usize) {
    if len == 0 {
        return;
    }
    let f = (resident.min(len) as u64 * 256 / len as u64) as u32;
    let v = DENSITY[i].load(Relaxed);
    let (n, d) = (v >> 16, v & 0xffff);
    let d = if n == 0 { f } else { (3 * d + f) / 4 };
    DENSITY[i].store(((n + 1).min(0xffff) << 16) | d, Relaxed);
}

/// How site `i`'s next fresh block of a huge page or more is mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HugeChoice {
    /// With transparent huge pages.
    Huge,
    /// With small pages: the site writes its blocks sparsely.
    Plain,
    /// With huge pages but for one chunk on small pages, to be measured (`set_probe`).
    Probe,
}

/// How site `i`'s next fresh block of a huge page or more is mapped: a probe (one in
/// `PROBE_EVERY`, the first included), else with huge pages unless the site wrote its last
/// measured blocks sparsely. A site is presumed dense, as mimalloc marks every arena for
/// huge pages: a big block is most often written whole (a buffer filled, an array built).
/// `can_probe`: the request covers a whole 2 MiB chunk (else there is nothing to measure,
/// and the block does not count towards the next probe).
pub fn huge_pages_for_next(i: usize, can_probe: bool) -> HugeChoice {
    if can_probe
        && HUGE_CANDIDATES[i]
            .fetch_add(1, Relaxed)
            .is_multiple_of(PROBE_EVERY)
    {
        HugeChoice::Probe
    } else if dense(i) {
        HugeChoice::Huge
    } else {
        HugeChoice::Plain
    }
}

/// Per entry, the site's probe not measured yet: the start of its small-page range with,
/// in the low 12 bits, its length in 2 MiB chunks (at most 4095 counted). 0: none.
static PROBE: [AtomicUsize; SITES + 1] = [const { AtomicUsize::new(0) }; SITES + 1];

/// Notes site `i`'s new probe: `chunks` bytes from `base` (page-aligned; a multiple of
/// 2 MiB) on small pages, to be measured at the site's next fresh block or at the free of
/// the block that holds them.
pub fn set_probe(i: usize, base: usize, chunks: usize) {
    let n = (chunks >> 21).min(0xfff);
    PROBE[i].store(base | n, Relaxed);
}

/// Takes site `i`'s probe waiting to be measured: (base, bytes of whole chunks).
pub fn take_probe(i: usize) -> Option<(usize, usize)> {
    let v = PROBE[i].swap(0, Relaxed);
    (v != 0).then_some((v & !0xfff, (v & 0xfff) << 21))
}

/// Puts a probe taken with `take_probe` back (it was not written yet), unless the site
/// has a newer one.
pub fn put_back_probe(i: usize, base: usize, chunks: usize) {
    let v = base | (chunks >> 21).min(0xfff);
    let _ = PROBE[i].compare_exchange(0, v, Relaxed, Relaxed);
}

/// Takes site `i`'s waiting probe if it lies in `[base, base + span)` (a block being
/// freed): its range, to be measured now.
pub fn take_probe_within(i: usize, base: usize, span: usize) -> Option<(usize, usize)> {
    let v = PROBE[i].load(Relaxed);
    let start = v & !0xfff;
    let inside = v != 0 && (base..base + span).contains(&start);
    (inside && PROBE[i].compare_exchange(v, 0, Relaxed, Relaxed).is_ok())
        .then_some((start, (v & 0xfff) << 21))
}

/// Whether site `i` is (presumed) dense: nothing measured yet, or its average at least
/// `DENSE`.
pub fn dense(i: usize) -> bool {
    let v = DENSITY[i].load(Relaxed);
    v >> 16 == 0 || v & 0xffff >= DENSE
}

/// Per entry, the most bytes the site had live at once.
pub static PEAK: [AtomicI64; SITES + 1] = [const { AtomicI64::new(0) }; SITES + 1];

/// Frames kept per site in the sites mode: the stack of the site's first allocation,
/// from the return address into the caller outwards.
pub const STACK_DEPTH: usize = 32;
/// Per entry, the stack (return addresses, innermost first; 0 past its end).
pub static STACKS: [[AtomicUsize; STACK_DEPTH]; SITES + 1] =
    [const { [const { AtomicUsize::new(0) }; STACK_DEPTH] }; SITES + 1];

/// Per entry, the Rust source location that named the site (`alloc_at` in the sites mode;
/// null: none).
pub static LOCATION: [AtomicPtr<Location<'static>>; SITES + 1] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; SITES + 1];

/// Keeps `at` as site `i`'s source location if it has none yet.
pub fn note_location(i: usize, at: &'static Location<'static>) {
    if LOCATION[i].load(Relaxed).is_null() {
        let at = at as *const Location<'static> as *mut Location<'static>;
        let _ = LOCATION[i].compare_exchange(core::ptr::null_mut(), at, Relaxed, Relaxed);
    }
}

/// Site `i`'s source location, if a Rust caller named it.
pub fn location(i: usize) -> Option<&'static Location<'static>> {
    // SAFETY: a non-null entry was stored from a `&'static Location` and never changes.
    unsafe { LOCATION[i].load(Relaxed).as_ref() }
}

/// The table's statics, each as (start, bytes): what the footprint measures as the site
/// table (most of them are touched only in the sites mode).
pub fn regions() -> [(*const u8, usize); 13] {
    fn r<T>(x: &T) -> (*const u8, usize) {
        (x as *const T as *const u8, core::mem::size_of_val(x))
    }
    [
        r(&TABLE),
        r(&ADDR),
        r(&PEAK),
        r(&STACKS),
        r(&LOCATION),
        r(&SIZES),
        r(&TEMPORARY),
        r(&TEMPORARY_PROCESS),
        r(&LIVE_AT_PEAK),
        r(&REACH),
        r(&REACH_AGAIN),
        r(&HEAP_LIVE),
        r(&HEAP_PEAK),
    ]
}

/// Size buckets of the sites mode: bucket 0 holds sizes up to 16 bytes, bucket k sizes in
/// (2^(k+3), 2^(k+4)], the last one everything above 2^(SIZE_BUCKETS+2) (64 MiB).
pub const SIZE_BUCKETS: usize = 24;
pub static SIZES: [[AtomicU64; SIZE_BUCKETS]; SITES + 1] =
    [const { [const { AtomicU64::new(0) }; SIZE_BUCKETS] }; SITES + 1];
/// Per entry, temporary allocations: freed by their thread before it allocated again.
pub static TEMPORARY: [AtomicU64; SITES + 1] = [const { AtomicU64::new(0) }; SITES + 1];
/// Per entry, heaptrack's temporary allocations: freed before any other allocation or free
/// in the whole process (heaptrack's `lastAllocationPtr`, which every free clears).
pub static TEMPORARY_PROCESS: [AtomicU64; SITES + 1] = [const { AtomicU64::new(0) }; SITES + 1];
/// Per entry, the bytes live at the last snapshot of the heap's peak.
pub static LIVE_AT_PEAK: [AtomicI64; SITES + 1] = [const { AtomicI64::new(0) }; SITES + 1];

/// The heap's live bytes (sites mode: every C-ABI block), the total at the last peak
/// snapshot, and who is taking one.
static HEAP_LIVE: AtomicI64 = AtomicI64::new(0);
static HEAP_PEAK: AtomicI64 = AtomicI64::new(0);
/// The heap's most live bytes, exactly (the snapshot's total may trail it by 1/64).
static HEAP_MAX: AtomicI64 = AtomicI64::new(0);
static SNAPSHOTTING: AtomicBool = AtomicBool::new(false);

/// The size bucket of `size` (see `SIZE_BUCKETS`).
pub fn size_bucket(size: usize) -> usize {
    let log2_ceil = usize::BITS - size.max(1).saturating_sub(1).leading_zeros();
    (log2_ceil as usize).saturating_sub(4).min(SIZE_BUCKETS - 1)
}

/// The sites mode's record of an allocation of `size` bytes at site `i`: its size bucket.
pub fn on_sized(i: usize, size: usize) {
    SIZES[i][size_bucket(size)].fetch_add(1, Relaxed);
}

/// Keeps `addr` as site `i`'s return address and `stack` (innermost first, `addr`
/// somewhere in it) as its stack, if the site has none yet. Whether it had none: only the
/// first caller pays for the unwind that `stack` comes from.
pub fn note_first(i: usize, addr: usize) -> bool {
    ADDR[i].load(Relaxed) == 0 && ADDR[i].compare_exchange(0, addr, Relaxed, Relaxed).is_ok()
}

/// Stores site `i`'s stack: the frames of `frames` from `addr` outwards (just `addr` when
/// the unwind did not reach it).
pub fn set_stack(i: usize, addr: usize, frames: &[usize]) {
    let only = [addr];
    let kept = match frames.iter().position(|&f| f == addr) {
        Some(k) => &frames[k..],
        None => &only[..],
    };
    for (slot, &f) in STACKS[i].iter().zip(kept) {
        slot.store(f, Relaxed);
    }
}

/// The heap grew or shrank by `delta` bytes (sites mode). Each time it passes its last
/// peak snapshot by 1/64, every site's live bytes are copied to `LIVE_AT_PEAK` (and
/// `also` copies what the caller keeps beside, the sampled stacks'): so the copy shows
/// the heap within 1.6 % of its true peak, at a few hundred copies per run.
pub fn on_heap_change(delta: i64, also: fn()) {
    let live = HEAP_LIVE.fetch_add(delta, Relaxed) + delta;
    if delta > 0 {
        HEAP_MAX.fetch_max(live, Relaxed);
    }
    let peak = HEAP_PEAK.load(Relaxed);
    if delta <= 0 || live <= peak + peak / 64 {
        return;
    }
    // One snapshot at a time; a thread that finds one running leaves it (the next
    // allocation past the mark takes the next).
    if SNAPSHOTTING.swap(true, Acquire) {
        return;
    }
    for (at, e) in LIVE_AT_PEAK.iter().zip(&TABLE) {
        at.store(e.live.load(Relaxed), Relaxed);
    }
    also();
    HEAP_PEAK.store(live, Relaxed);
    SNAPSHOTTING.store(false, Release);
}

/// In a fork child: no other thread exists to be taking a snapshot.
pub fn after_fork_in_child() {
    SNAPSHOTTING.store(false, Release);
}

/// The heap's live bytes at its last peak snapshot (sites mode): what `LIVE_AT_PEAK`
/// adds up to.
pub fn heap_snapshot() -> i64 {
    HEAP_PEAK.load(Relaxed)
}

/// The heap's most live bytes (sites mode), exactly.
pub fn heap_peak() -> i64 {
    HEAP_MAX.load(Relaxed)
}

/// The heap's live bytes now (sites mode).
pub fn heap_live() -> i64 {
    HEAP_LIVE.load(Relaxed)
}

/// Allocations of size bucket `k` over every site (sites mode).
pub fn size_total(k: usize) -> u64 {
    SIZES.iter().map(|s| s[k].load(Relaxed)).sum()
}

/// The table index for `site`, claiming a free entry on first sight.
pub fn slot(site: Site) -> usize {
    let id = if site == Site::UNKNOWN {
        UNKNOWN_ID
    } else {
        site.0
    };
    let home = (id.wrapping_mul(0x9E37_79B1) >> 24) as usize; // 8 bits: 0..256
    for k in 0..PROBES {
        let i = (home + k) % SITES;
        let cur = TABLE[i].id.load(Relaxed);
        if cur == id {
            return i;
        }
        if cur == 0 {
            match TABLE[i].id.compare_exchange(0, id, Relaxed, Relaxed) {
                Ok(_) => return i,
                Err(now) if now == id => return i,
                Err(_) => continue,
            }
        }
    }
    OTHER
}

/// The histogram bucket of a size: the BigCache class it falls in; the last bucket takes
/// everything above 8 MiB.
pub fn bucket(size: usize) -> usize {
    crate::size_class::big_class_for_request(size)
        .map_or(HIST_BUCKETS - 1, |c| c.min(HIST_BUCKETS - 1))
}

pub fn on_alloc(i: usize, size: usize, threshold: usize) {
    on_small_alloc(i, size);
    TABLE[i].threshold.store(threshold, Relaxed);
}

/// An allocation of site `i` that no learner decided (a pool block in the sites mode).
pub fn on_small_alloc(i: usize, size: usize) {
    let e = &TABLE[i];
    e.count.fetch_add(1, Relaxed);
    e.bytes.fetch_add(size as u64, Relaxed);
    let live = e.live.fetch_add(size as i64, Relaxed) + size as i64;
    PEAK[i].fetch_max(live, Relaxed);
    e.hist[bucket(size)].fetch_add(1, Relaxed);
}

pub fn on_free(i: usize, size: usize) {
    TABLE[i].live.fetch_sub(size as i64, Relaxed);
}

/// Adds `bytes` to site `i`'s live bytes without a peak (the sites mode's `realloc` gives
/// back what it took out of the site while the new block was counted).
pub fn add_live(i: usize, bytes: i64) {
    TABLE[i].live.fetch_add(bytes, Relaxed);
}

/// A live block of site `i` changed size in place (`realloc` without a move or by mremap).
pub fn on_resize(i: usize, old: usize, new: usize) {
    TABLE[i].live.fetch_add(new as i64 - old as i64, Relaxed);
    if new > old {
        TABLE[i].grows.fetch_add(1, Relaxed);
    }
}

/// Whether blocks of site `i` have grown by `realloc`.
pub fn grows(i: usize) -> bool {
    TABLE[i].grows.load(Relaxed) != 0
}

/// Entries in use.
pub fn used() -> usize {
    TABLE
        .iter()
        .filter(|e| e.site().is_some() || e.count.load(Relaxed) > 0)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_pages_go_to_sites_that_write_their_blocks_densely() {
        let (dense_site, sparse) = (slot(Site(0xABCD_0301)), slot(Site(0xABCD_0302)));
        // Presumed dense; the first block and one in 32 after it are probes.
        let next: Vec<HugeChoice> = (0..64)
            .map(|_| huge_pages_for_next(dense_site, true))
            .collect();
        assert_eq!(next[0], HugeChoice::Probe);
        assert_eq!(next[32], HugeChoice::Probe);
        assert_eq!(next.iter().filter(|&&h| h == HugeChoice::Huge).count(), 62);
        // A block with no whole chunk to measure is not counted: the 65th is the probe.
        assert_eq!(huge_pages_for_next(dense_site, false), HugeChoice::Huge);
        assert_eq!(huge_pages_for_next(dense_site, true), HugeChoice::Probe);
        note_density(dense_site, (4 << 20) - (64 << 10), 4 << 20);
        assert!(dense(dense_site));
        note_density(sparse, 800 << 10, 4 << 20);
        assert!(!dense(sparse), "a fifth written");
        assert!((0..16).all(|_| huge_pages_for_next(sparse, true) != HugeChoice::Huge));
        // A probe waits for its measure: taken once; put back, it waits again; taken at
        // its free, it is gone.
        set_probe(sparse, 0x7000_0000_0000, 6 << 20);
        assert_eq!(take_probe(sparse), Some((0x7000_0000_0000, 6 << 20)));
        assert_eq!(take_probe(sparse), None);
        put_back_probe(sparse, 0x7000_0000_0000, 6 << 20);
        assert_eq!(take_probe_within(sparse, 0x7000_0020_0000, 8 << 20), None);
        assert_eq!(
            take_probe_within(sparse, 0x6fff_ffe0_0000, 8 << 20),
            Some((0x7000_0000_0000, 6 << 20))
        );
        assert_eq!(take_probe(sparse), None);
        // A dense site that starts writing its blocks sparsely loses them; one that
        // writes densely again gets them back.
        note_density(dense_site, 1 << 20, 4 << 20);
        assert!(!dense(dense_site));
        for _ in 0..3 {
            note_density(dense_site, 4 << 20, 4 << 20);
        }
        assert!(dense(dense_site));
        // The first frees are measured, then one in 16.
        let k = slot(Site(0xABCD_0303));
        let due: Vec<bool> = (0..40).map(|_| density_due(k)).collect();
        assert!(due[..4].iter().all(|&d| d));
        assert_eq!(due.iter().filter(|&&d| d).count(), 4 + 2);
    }

    #[test]
    fn a_reach_counts_once_the_site_comes_back_to_it_and_fades() {
        let i = slot(Site(0xABCD_0201));
        note_reach(i, 24 << 20);
        assert_eq!(reach(i), 0, "asked for once: not a reach yet");
        note_reach(i, 4 << 20);
        assert_eq!(reach(i), 0);
        note_reach(i, 20 << 20); // at least half of it again
        assert!(reach(i) > 23 << 20);
        // A climbing site (512 KiB … 8 MiB, again and again) keeps its 8 MiB reach.
        let j = slot(Site(0xABCD_0202));
        for _ in 0..50 {
            for k in 0..5 {
                note_reach(j, (512 << 10) << k);
            }
        }
        assert!(reach(j) >= 7 << 20, "{}", reach(j));
        // Not asked for again: it fades.
        for _ in 0..300 {
            note_reach(j, 512 << 10);
        }
        assert!(reach(j) < 1 << 20, "{}", reach(j));
    }

    #[test]
    fn sizes_fall_in_power_of_two_buckets() {
        assert_eq!(size_bucket(0), 0);
        assert_eq!(size_bucket(16), 0);
        assert_eq!(size_bucket(17), 1);
        assert_eq!(size_bucket(32), 1);
        assert_eq!(size_bucket(33), 2);
        assert_eq!(size_bucket(4096), 8);
        assert_eq!(size_bucket(64 << 20), SIZE_BUCKETS - 2);
        assert_eq!(size_bucket((64 << 20) + 1), SIZE_BUCKETS - 1);
        assert_eq!(size_bucket(usize::MAX), SIZE_BUCKETS - 1);
    }

    #[test]
    fn a_stack_starts_at_the_return_address_and_is_bounded() {
        let i = slot(Site(0xABCD_0101));
        let frames: Vec<usize> = (1..=40).collect();
        set_stack(i, 5, &frames);
        assert_eq!(STACKS[i][0].load(Relaxed), 5);
        assert_eq!(
            STACKS[i][STACK_DEPTH - 1].load(Relaxed),
            5 + STACK_DEPTH - 1
        );
        let j = slot(Site(0xABCD_0102));
        set_stack(j, 99, &frames);
        assert_eq!(
            STACKS[j][0].load(Relaxed),
            99,
            "not found: the address alone"
        );
        assert_eq!(STACKS[j][1].load(Relaxed), 0);
        assert!(note_first(j, 99) && !note_first(j, 100));
    }

    #[test]
    fn same_site_same_slot_and_overflow_goes_to_other() {
        // Sites in a high id range that other tests do not use.
        let a = slot(Site(0xABCD_0001));
        assert_eq!(slot(Site(0xABCD_0001)), a);
        assert_ne!(slot(Site(0xABCD_0002)), a);
        on_alloc(a, 3 << 20, 1 << 20);
        on_free(a, 3 << 20);
        assert_eq!(TABLE[a].count.load(Relaxed), 1);
        assert_eq!(TABLE[a].live.load(Relaxed), 0);
        assert_eq!(TABLE[a].hist[3].load(Relaxed), 1);
        // 300 more distinct sites cannot all fit: the rest share OTHER, without a crash.
        let slots: Vec<usize> = (0..300u32).map(|k| slot(Site(0x5000_0000 + k))).collect();
        assert!(slots.contains(&OTHER));
        assert!(slots.iter().all(|&s| s <= OTHER));
        assert_eq!(
            TABLE[OTHER].site(),
            None,
            "OTHER is never claimed by one site"
        );
    }
}
