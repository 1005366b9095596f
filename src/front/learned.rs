//! The hakmem decision order for a big block (policy, over the `big` and `learn`
//! mechanisms): 1. the learner picks the threshold; 2. the BigCache is tried; 3. a fresh
//! block is mapped, kept on free (`Map`) when the size reaches the threshold, or when this
//! (site, class) released a block moments ago (its ghost says caching pays), else released
//! on free (`Heap`). Sampled calls feed their cost back to the learner.

use crate::big::{self, cache, CACHE_MIN};
use crate::header::Method;
use crate::learn::{self, elo::Sample, sites, Decision};
use crate::size_class::MIN_ALIGN;
use crate::{config, footprint, init, os, site::Site};
use core::ptr;

/// A big block for `size` bytes at `site`. `zero` asks for zeroed memory (a cache hit is
/// cleared; a fresh mapping already is). Null when out of memory.
pub fn alloc(size: usize, align: usize, site: Site, zero: bool) -> *mut u8 {
    init::ensure(); // the fork handlers must be in place before a learner lock is taken
    let slot = sites::slot(site);
    let d = learn::decide(slot, size); // 1. the threshold
    let t0 = if d.sample { os::now_ns() } else { 0 };
    let cfg = config::get();
    let class = cache::class_for_request(size)
        .filter(|_| cfg.bigcache && align <= MIN_ALIGN && size >= CACHE_MIN);
    // 2. the BigCache
    let (cached, cold) = class.map_or((ptr::null_mut(), 0), |c| {
        big::take_cached(slot, c, site, size)
    });
    let fresh = cached.is_null();
    let p = if fresh {
        let p = map_fresh(size, align, site, slot, class, &d); // 3.
        big::or_after_releasing(p, || map_fresh(size, align, site, slot, class, &d))
    } else {
        cached
    };
    if p.is_null() {
        return p;
    }
    sites::on_alloc(slot, size, d.threshold);
    sites::note_reach(slot, size);
    if d.sample {
        let cold = if fresh {
            big::span_of(p as usize)
        } else {
            cold
        };
        learn::record(slot, &d, cost(p, cold, t0));
    }
    learn::maybe_tick(d.seq);
    if d.seq.is_multiple_of(learn::HEAVY_TICK_EVERY) {
        big::age_cache(os::now_coarse_ns());
    }
    big::announce(p, size, fresh);
    footprint::note_progress();
    if zero && !fresh {
        // SAFETY: the block holds `size` bytes.
        unsafe { ptr::write_bytes(p, 0, size) };
    }
    p
}

/// 3. map (cacheable, sized to its class) or heap (exact, released on free).
fn map_fresh(
    size: usize,
    align: usize,
    site: Site,
    slot: usize,
    class: Option<usize>,
    d: &Decision,
) -> *mut u8 {
    let (method, capacity) = match class {
        Some(c)
            if size >= d.threshold || cache::recently_released(slot, c, os::now_coarse_ns()) =>
        {
            (Method::Map, cache::CLASSES[c])
        }
        _ => (Method::Heap, size),
    };
    big::map(size, capacity, align, method, site, slot)
}

/// The sampled cost of one big allocation: time, the page faults its first touches will
/// take (`cold` bytes not resident: a fresh mapping, or a cached block grown by `mremap`;
/// these land after the call, so they are counted from the decision, not timed), and the
/// bytes mapped.
fn cost(p: *mut u8, cold: usize, t0: u64) -> Sample {
    Sample {
        cpu_ns: (os::now_ns() - t0) as f64,
        faults: (cold / os::PAGE) as f64,
        memory: big::span_of(p as usize) as f64,
    }
}
