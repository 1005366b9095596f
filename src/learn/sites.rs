//! The call-site table: 256 sites with per-site counts, bytes, live bytes, a size
//! histogram and the threshold last chosen for them. A site that finds no free entry
//! within 8 probes shares the "other" entry: never a crash, never an allocation.

use super::lifecycle::HIST_BUCKETS;
use crate::site::Site;
use core::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};

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
/// Per entry, the most bytes the site had live at once.
pub static PEAK: [AtomicI64; SITES + 1] = [const { AtomicI64::new(0) }; SITES + 1];

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

/// Keeps `addr` as site `i`'s return address if it has none yet.
pub fn note_addr(i: usize, addr: usize) {
    if ADDR[i].load(Relaxed) == 0 {
        let _ = ADDR[i].compare_exchange(0, addr, Relaxed, Relaxed);
    }
}

pub fn on_free(i: usize, size: usize) {
    TABLE[i].live.fetch_sub(size as i64, Relaxed);
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
