//! Layer 5: learning. Decides the big-block threshold per allocation from a cached choice
//! (one atomic counter and a load), and does the real work — ELO selection and rating,
//! UCB1 per site, the lifecycle — on sampled calls and on the heavy tick every 1024 big
//! allocations. Small (pool) allocations never come here.
//!
//! - `rng`, `p2`, `ucb1`, `elo`, `lifecycle`: pure logic, unit-tested (and run under Miri).
//! - `sites`: the call-site table.

pub mod elo;
pub mod lifecycle;
pub mod p2;
pub mod rng;
pub mod sites;
pub mod ucb1;

use crate::config::{self, FIXED_THRESHOLD};
use crate::lock::{rank, SpinLock};
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::Relaxed};
use elo::{Elo, Sample};
use lifecycle::{Lifecycle, LifecycleParams, Phase, Transition, HIST_BUCKETS};
use ucb1::{Ucb1, Ucb1Params};

/// UCB1 explores on one big allocation in this many (offset from ELO's selections).
pub const UCB1_EXPLORE_EVERY: u64 = 8;
/// The reuse front's small path refreshes its per-thread copy of the decision this often.
pub const SMALL_REFRESH: u32 = 256;
/// The heavy tick (ELO update, UCB1 hysteresis, lifecycle window, cache ageing).
pub const HEAVY_TICK_EVERY: u64 = 1024;
/// In CANARY, one decision in this many tries the candidate (5 %).
const CANARY_EVERY: u64 = 20;
const NONE: u8 = u8::MAX;

/// What the learner decided for one big allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub threshold: usize,
    /// The ELO strategy that decided (or NONE).
    pub strategy: u8,
    /// The UCB1 arm that decided (or NONE).
    pub arm: u8,
    pub canary: bool,
    /// Time this call and feed the cost back.
    pub sample: bool,
    /// The call's sequence number among big allocations.
    pub seq: u64,
}

impl Decision {
    const fn fixed(seq: u64) -> Decision {
        Decision {
            threshold: FIXED_THRESHOLD,
            strategy: NONE,
            arm: NONE,
            canary: false,
            sample: false,
            seq,
        }
    }
}

struct Brain {
    elo: Option<Elo>,
    rng: rng::Rng,
}

impl Brain {
    fn elo(&mut self) -> &mut Elo {
        if self.elo.is_none() {
            self.elo = Some(Elo::default());
            self.rng = rng::Rng::new(config::get().seed);
        }
        self.elo.as_mut().unwrap()
    }
}

struct Life {
    lc: Option<Lifecycle>,
    start_ns: u64,
    start_calls: u64,
    p99: p2::P2,
    p99_canary: p2::P2,
    changed: bool,
}

static BRAIN: SpinLock<Brain> = SpinLock::new(rank::BRAIN, Brain {
    elo: None,
    rng: rng::Rng::new(0),
});
static UCB: [SpinLock<Ucb1>; sites::SITES + 1] =
    [const { SpinLock::new(rank::UCB, Ucb1::new(Ucb1Params::DEFAULT)) }; sites::SITES + 1];
static LIFE: SpinLock<Life> = SpinLock::new(rank::LIFE, Life {
    lc: None,
    start_ns: 0,
    start_calls: 0,
    p99: p2::P2::EMPTY_P99,
    p99_canary: p2::P2::EMPTY_P99,
    changed: false,
});

/// Big allocations seen (drives sampling and the heavy tick).
static CALLS: AtomicU64 = AtomicU64::new(0);
/// The ELO choice in use between selections: strategy index.
static CHOICE: AtomicU8 = AtomicU8::new(0);
static PHASE: AtomicU8 = AtomicU8::new(0); // 0 LEARN, 1 FROZEN, 2 CANARY
static FROZEN_CHOICE: AtomicU8 = AtomicU8::new(0);
static CANARY_CHOICE: AtomicU8 = AtomicU8::new(0);
static WINDOW_HIST: [AtomicU64; HIST_BUCKETS] = [const { AtomicU64::new(0) }; HIST_BUCKETS];
static UCB_IN_USE: [AtomicBool; sites::SITES + 1] =
    [const { AtomicBool::new(false) }; sites::SITES + 1];

fn strategy_threshold(i: u8) -> usize {
    elo::thresholds()[i as usize % elo::STRATEGIES]
}

fn elo_decision(i: u8, seq: u64, sample: bool) -> Decision {
    Decision {
        threshold: strategy_threshold(i),
        strategy: i,
        arm: NONE,
        canary: false,
        sample,
        seq,
    }
}

/// The threshold for a big allocation of `size` bytes at site table entry `site`.
pub fn decide(site: usize, size: usize) -> Decision {
    let cfg = config::get();
    let seq = CALLS.fetch_add(1, Relaxed);
    if !cfg.elo && !cfg.ucb1 {
        return Decision::fixed(seq);
    }
    WINDOW_HIST[sites::bucket(size)].fetch_add(1, Relaxed);
    // Big allocations cost a syscall or a cache lookup (≥ 100 ns): timing each one (two vDSO
    // clock reads) is cheap beside that, and learning needs the samples.
    let sample = true;
    if cfg.lifecycle {
        match PHASE.load(Relaxed) {
            1 => return elo_decision(FROZEN_CHOICE.load(Relaxed), seq, sample),
            2 if seq % CANARY_EVERY == 0 => {
                let mut d = elo_decision(CANARY_CHOICE.load(Relaxed), seq, true);
                d.canary = true;
                return d;
            }
            2 => return elo_decision(FROZEN_CHOICE.load(Relaxed), seq, sample),
            _ => {}
        }
    }
    let select = seq % cfg.select_every as u64 == 0;
    if cfg.ucb1 {
        // UCB1 explores on its own sampled calls (offset from ELO's), and once the site has
        // adopted an arm, that arm decides for it.
        UCB_IN_USE[site].store(true, Relaxed);
        let u = UCB[site].lock();
        if seq % UCB1_EXPLORE_EVERY == UCB1_EXPLORE_EVERY / 2 {
            let arm = u.select();
            return Decision {
                threshold: ucb1::ARMS[arm],
                strategy: NONE,
                arm: arm as u8,
                canary: false,
                sample: true,
                seq,
            };
        }
        if u.adoptions > 0 {
            let arm = u.adopted;
            return Decision {
                threshold: ucb1::ARMS[arm],
                strategy: NONE,
                arm: arm as u8,
                canary: false,
                sample,
                seq,
            };
        }
    }
    if !cfg.elo {
        return Decision::fixed(seq);
    }
    if select {
        let mut b = BRAIN.lock();
        let mut rng = b.rng.clone();
        let i = b.elo().select(&mut rng) as u8;
        b.rng = rng;
        CHOICE.store(i, Relaxed);
        return elo_decision(i, seq, true);
    }
    elo_decision(CHOICE.load(Relaxed), seq, sample)
}

/// The decision for a small (pool-sized) allocation of the reuse front: the same learner,
/// consulted through this thread's copy of its decision (a TLS read), refreshed every
/// `SMALL_REFRESH` calls. A small block is always below the threshold, so nothing is
/// sampled.
#[inline]
pub fn decide_small(site: usize, size: usize) -> usize {
    let heap = crate::pool::heap::current();
    if !heap.is_null() {
        // SAFETY: this thread's own heap; the learner cache is owner-only plain data.
        let c = unsafe { &mut (*crate::pool::heap::Heap::local(heap)).learner };
        if c.countdown > 0 {
            c.countdown -= 1;
            return c.threshold;
        }
        let t = decide(site, size).threshold;
        c.countdown = SMALL_REFRESH;
        c.threshold = t;
        return t;
    }
    decide(site, size).threshold
}

/// The site-table slot of `site`, through this thread's one-entry cache (a call site
/// allocating in a loop hashes once).
#[inline]
pub fn site_slot(site: crate::site::Site) -> usize {
    let heap = crate::pool::heap::current();
    if heap.is_null() {
        return sites::slot(site);
    }
    // SAFETY: this thread's own heap; the learner cache is owner-only plain data.
    let c = unsafe { &mut (*crate::pool::heap::Heap::local(heap)).learner };
    if c.last_slot != 0 && c.last_site == site.0 {
        return c.last_slot - 1;
    }
    let slot = sites::slot(site);
    c.last_site = site.0;
    c.last_slot = slot + 1;
    slot
}

/// Reward in (0, 1] for UCB1 from a sample's cost (cheaper is better).
pub fn reward(s: &Sample) -> f64 {
    1.0 / (1.0 + s.cpu_ns / 1000.0 + s.faults / 64.0)
}

/// Feeds a sampled call's cost back to whichever learner decided it.
pub fn record(site: usize, d: &Decision, cost: Sample) {
    if !d.sample {
        return;
    }
    if d.strategy != NONE {
        BRAIN.lock().elo().record(d.strategy as usize, cost);
    }
    if d.arm != NONE {
        UCB[site].lock().record(d.arm as usize, reward(&cost));
    }
    if config::get().lifecycle {
        let mut l = LIFE.lock();
        if d.canary {
            l.p99_canary.add(cost.cpu_ns);
        } else {
            l.p99.add(cost.cpu_ns);
        }
    }
}

/// Runs the heavy tick when `seq` is due.
pub fn maybe_tick(seq: u64) {
    if seq % HEAVY_TICK_EVERY == HEAVY_TICK_EVERY - 1 {
        heavy_tick(crate::os::now_ns());
    }
}

/// ELO update, UCB1 hysteresis, lifecycle window.
#[cold]
pub fn heavy_tick(now_ns: u64) {
    let cfg = config::get();
    if cfg.elo {
        BRAIN.lock().elo().update();
    }
    let mut changed = false;
    if cfg.ucb1 {
        for (i, used) in UCB_IN_USE.iter().enumerate() {
            if used.load(Relaxed) && UCB[i].lock().evaluate(now_ns).is_some() {
                changed = true;
            }
        }
    }
    if cfg.lifecycle && cfg.elo {
        lifecycle_tick(now_ns, changed);
    }
}

fn lifecycle_tick(now_ns: u64, ucb_changed: bool) {
    let calls = CALLS.load(Relaxed);
    let mut l = LIFE.lock();
    if l.lc.is_none() {
        l.lc = Some(Lifecycle::new(LifecycleParams::default()));
        l.start_ns = now_ns;
        l.start_calls = calls;
    }
    l.changed |= ucb_changed;
    let (start, ops) = (l.start_ns, calls - l.start_calls);
    if !l.lc.as_ref().unwrap().window_over(start, now_ns, ops) {
        return;
    }
    let Some(metric) = l.p99.quantile() else {
        return;
    };
    let mut hist = [0.0; HIST_BUCKETS];
    let total: u64 = WINDOW_HIST.iter().map(|h| h.load(Relaxed)).sum();
    for (i, h) in WINDOW_HIST.iter().enumerate() {
        hist[i] = h.swap(0, Relaxed) as f64 / total.max(1) as f64;
    }
    let best = BRAIN.lock().elo().best() as u8;
    let changed = l.changed || best != CHOICE.load(Relaxed);
    let w = lifecycle::Window {
        now_ns,
        metric,
        hist,
        threshold_changed: changed,
        canary_metric: l.p99_canary.quantile(),
    };
    let t = l.lc.as_mut().unwrap().on_window(&w);
    match t {
        Some(Transition::Freeze) => {
            FROZEN_CHOICE.store(best, Relaxed);
            PHASE.store(1, Relaxed);
        }
        Some(Transition::StartCanary) => {
            let frozen = FROZEN_CHOICE.load(Relaxed) as usize;
            let cand = BRAIN.lock().elo().runner_up(frozen).unwrap_or(frozen) as u8;
            CANARY_CHOICE.store(cand, Relaxed);
            PHASE.store(2, Relaxed);
        }
        Some(Transition::CanaryLost) => PHASE.store(1, Relaxed),
        Some(_) => PHASE.store(0, Relaxed),
        None => {}
    }
    l.start_ns = now_ns;
    l.start_calls = calls;
    l.p99 = p2::P2::EMPTY_P99;
    l.p99_canary = p2::P2::EMPTY_P99;
    l.changed = false;
}

// ---------------------------------------------------------------------------------------
// Reports
// ---------------------------------------------------------------------------------------

pub fn phase() -> Phase {
    match PHASE.load(Relaxed) {
        1 => Phase::Frozen,
        2 => Phase::Canary,
        _ => Phase::Learn,
    }
}

/// Windows closed and transitions made by the lifecycle.
pub fn lifecycle_counts() -> (u64, u64) {
    let l = LIFE.lock();
    l.lc.as_ref()
        .map_or((0, 0), |lc| (lc.windows, lc.transitions))
}

/// A copy of the ELO leaderboard.
pub fn elo_snapshot() -> Elo {
    BRAIN.lock().elo().clone()
}

/// A copy of site `i`'s UCB1 state, if the site used it.
pub fn ucb1_snapshot(i: usize) -> Option<Ucb1> {
    if UCB_IN_USE[i].load(Relaxed) {
        Some(UCB[i].lock().clone())
    } else {
        None
    }
}

pub fn big_calls() -> u64 {
    CALLS.load(Relaxed)
}

/// Fork: every learner lock, in the lock order (LIFE, BRAIN, then each site's UCB1).
pub fn lock_for_fork() {
    LIFE.lock_forever();
    BRAIN.lock_forever();
    for u in &UCB {
        u.lock_forever();
    }
}

/// # Safety
/// Only after `lock_for_fork` on this thread.
pub unsafe fn unlock_after_fork() {
    // SAFETY: forwarded.
    unsafe {
        for u in UCB.iter().rev() {
            u.force_unlock();
        }
        BRAIN.force_unlock();
        LIFE.force_unlock();
    }
}
