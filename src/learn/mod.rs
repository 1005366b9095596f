//! Learning: decides the big-block threshold per allocation and learns from the cost of
//! each one. In `balanced` mode a decision is an atomic counter and a load of the cached
//! ELO choice (re-selected under the ELO lock on 1 call in 100); with UCB1 on (`learning`,
//! `research`) it also takes the site's UCB1 lock. The real work — ELO rating, UCB1
//! hysteresis, the lifecycle — runs on the sampled costs and on the heavy tick every 1024
//! big allocations. Small (pool) allocations of the default front never come here.
//!
//! - `math`: `ln`, `exp`, `pow` without libm.
//! - `rng`, `p2`, `ucb1`, `elo`, `lifecycle`: pure logic, unit-tested (and run under Miri).
//! - `sites`: the call-site table.

pub mod elo;
pub mod lifecycle;
pub mod math;
pub mod p2;
pub mod rng;
pub mod sites;
pub mod stacks;
pub mod ucb1;

use crate::config;
use crate::lock::{rank, SpinLock};
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::Relaxed};
use elo::{Elo, Sample};
use lifecycle::{Lifecycle, LifecycleParams, Phase, Transition, HIST_BUCKETS};
use ucb1::{Ucb1, Ucb1Params};

/// UCB1 explores on one big allocation in this many (offset from ELO's selections).
pub const UCB1_EXPLORE_EVERY: u64 = 8;
/// The learner times 1 big allocation in this many (research mode: all of them).
pub const SAMPLE_EVERY: u64 = 8;
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
    /// Time this call and feed the cost back: 1 learned decision in `SAMPLE_EVERY` (every
    /// one in research mode), and every UCB1 exploration and canary decision, which exist
    /// to be measured. The others skip the two clock reads and the learners' locks, so a
    /// BigCache hit stays a few atomic operations. The fixed threshold learns nothing.
    pub sample: bool,
    /// The call's sequence number among big allocations.
    pub seq: u64,
}

impl Decision {
    const fn fixed(seq: u64, threshold: usize) -> Decision {
        Decision {
            threshold,
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

static BRAIN: SpinLock<Brain> = SpinLock::new(
    rank::BRAIN,
    Brain {
        elo: None,
        rng: rng::Rng::new(0),
    },
);
static UCB: [SpinLock<Ucb1>; sites::SITES + 1] =
    [const { SpinLock::new(rank::UCB, Ucb1::new(Ucb1Params::DEFAULT)) }; sites::SITES + 1];
static LIFE: SpinLock<Life> = SpinLock::new(
    rank::LIFE,
    Life {
        lc: None,
        start_ns: 0,
        start_calls: 0,
        p99: p2::P2::EMPTY_P99,
        p99_canary: p2::P2::EMPTY_P99,
        changed: false,
    },
);

/// Big allocations seen (drives sampling and the heavy tick).
static CALLS: AtomicU64 = AtomicU64::new(0);
/// The ELO choice in use between selections: strategy index.
static CHOICE: AtomicU8 = AtomicU8::new(0);
/// The lifecycle phase, as `Phase as u8`.
static PHASE: AtomicU8 = AtomicU8::new(Phase::Learn as u8);
static FROZEN_CHOICE: AtomicU8 = AtomicU8::new(0);
static CANARY_CHOICE: AtomicU8 = AtomicU8::new(0);
static WINDOW_HIST: [AtomicU64; HIST_BUCKETS] = [const { AtomicU64::new(0) }; HIST_BUCKETS];
static UCB_IN_USE: [AtomicBool; sites::SITES + 1] =
    [const { AtomicBool::new(false) }; sites::SITES + 1];
/// The lifecycle's windows and transitions, copied out of `LIFE` on each window, so the
/// exit report reads them without the lock.
static LIFE_WINDOWS: AtomicU64 = AtomicU64::new(0);
static LIFE_TRANSITIONS: AtomicU64 = AtomicU64::new(0);

/// How long the exit report waits for a learner lock (see `SpinLock::try_lock_within`):
/// far longer than any holder keeps one, unless the holder is the thread a signal handler
/// interrupted to call `_exit`.
pub const REPORT_WAIT_NS: u64 = 20_000_000;

fn strategy_threshold(i: u8) -> usize {
    elo::thresholds()[i as usize % elo::STRATEGIES]
}

/// Whether call `seq` is timed (see `Decision::sample`).
fn sampled(seq: u64) -> bool {
    seq.is_multiple_of(SAMPLE_EVERY) || config::get().mode == config::Mode::Research
}

fn elo_decision(i: u8, seq: u64) -> Decision {
    Decision {
        threshold: strategy_threshold(i),
        strategy: i,
        arm: NONE,
        canary: false,
        sample: sampled(seq),
        seq,
    }
}

fn ucb1_decision(arm: usize, seq: u64, sample: bool) -> Decision {
    Decision {
        threshold: ucb1::ARMS[arm],
        strategy: NONE,
        arm: arm as u8,
        canary: false,
        sample,
        seq,
    }
}

/// The threshold for a big allocation of `size` bytes at site-table slot `slot`.
pub fn decide(slot: usize, size: usize) -> Decision {
    let cfg = config::get();
    let seq = CALLS.fetch_add(1, Relaxed);
    if !cfg.elo && !cfg.ucb1 {
        return Decision::fixed(seq, cfg.fixed_threshold);
    }
    WINDOW_HIST[sites::bucket(size)].fetch_add(1, Relaxed);
    if cfg.lifecycle {
        match phase() {
            Phase::Frozen => return elo_decision(FROZEN_CHOICE.load(Relaxed), seq),
            Phase::Canary if seq.is_multiple_of(CANARY_EVERY) => {
                let mut d = elo_decision(CANARY_CHOICE.load(Relaxed), seq);
                d.canary = true;
                d.sample = true;
                return d;
            }
            Phase::Canary => return elo_decision(FROZEN_CHOICE.load(Relaxed), seq),
            Phase::Learn => {}
        }
    }
    if cfg.ucb1 {
        // UCB1 explores on its own sampled calls (offset from ELO's), and once the site has
        // adopted an arm, that arm decides for it.
        UCB_IN_USE[slot].store(true, Relaxed);
        let u = UCB[slot].lock();
        if seq % UCB1_EXPLORE_EVERY == UCB1_EXPLORE_EVERY / 2 {
            return ucb1_decision(u.select(), seq, true);
        }
        if u.adoptions > 0 {
            return ucb1_decision(u.adopted, seq, sampled(seq));
        }
    }
    if !cfg.elo {
        return Decision::fixed(seq, cfg.fixed_threshold);
    }
    if seq.is_multiple_of(cfg.select_every as u64) {
        let mut b = BRAIN.lock();
        let mut rng = b.rng.clone();
        let i = b.elo().select(&mut rng) as u8;
        b.rng = rng;
        CHOICE.store(i, Relaxed);
        return elo_decision(i, seq);
    }
    elo_decision(CHOICE.load(Relaxed), seq)
}

/// Reward in (0, 1] for UCB1 from a sample's cost (cheaper is better).
pub fn reward(s: &Sample) -> f64 {
    1.0 / (1.0 + s.cpu_ns / 1000.0 + s.faults / 64.0)
}

/// Feeds a sampled call's cost back to whichever learner decided it (`slot`: the site's
/// table slot).
pub fn record(slot: usize, d: &Decision, cost: Sample) {
    if !d.sample {
        return;
    }
    if d.strategy != NONE {
        BRAIN.lock().elo().record(d.strategy as usize, cost);
    }
    if d.arm != NONE {
        UCB[slot].lock().record(d.arm as usize, reward(&cost));
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
    let lc = l.lc.as_mut().unwrap();
    let t = lc.on_window(&w);
    LIFE_WINDOWS.store(lc.windows, Relaxed);
    LIFE_TRANSITIONS.store(lc.transitions, Relaxed);
    let next = match t {
        Some(Transition::Freeze) => {
            FROZEN_CHOICE.store(best, Relaxed);
            Phase::Frozen
        }
        Some(Transition::StartCanary) => {
            let frozen = FROZEN_CHOICE.load(Relaxed) as usize;
            let cand = BRAIN.lock().elo().runner_up(frozen).unwrap_or(frozen) as u8;
            CANARY_CHOICE.store(cand, Relaxed);
            Phase::Canary
        }
        Some(Transition::CanaryLost) => Phase::Frozen,
        Some(_) => Phase::Learn,
        None => phase(),
    };
    PHASE.store(next as u8, Relaxed);
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
        p if p == Phase::Frozen as u8 => Phase::Frozen,
        p if p == Phase::Canary as u8 => Phase::Canary,
        _ => Phase::Learn,
    }
}

/// Windows closed and transitions made by the lifecycle (no lock taken).
pub fn lifecycle_counts() -> (u64, u64) {
    (LIFE_WINDOWS.load(Relaxed), LIFE_TRANSITIONS.load(Relaxed))
}

/// A copy of the ELO leaderboard; None when its lock stayed held for `REPORT_WAIT_NS`
/// (the exit report inside a signal handler that interrupted its holder).
pub fn elo_snapshot() -> Option<Elo> {
    let mut b = BRAIN.try_lock_within(REPORT_WAIT_NS)?;
    Some(b.elo().clone())
}

/// Site `i`'s UCB1 state: None if the site never used it; `Some(None)` when its lock
/// stayed held (as for `elo_snapshot`).
pub fn ucb1_snapshot(i: usize) -> Option<Option<Ucb1>> {
    if UCB_IN_USE[i].load(Relaxed) {
        Some(UCB[i].try_lock_within(REPORT_WAIT_NS).map(|u| u.clone()))
    } else {
        None
    }
}

/// Test hook: runs `f` while this thread holds the learner's lifecycle, ELO and UCB1 locks
/// of site slot 0, as a thread interrupted inside `record` does.
#[cfg(test)]
pub(crate) fn with_learner_locks_held<R>(f: impl FnOnce() -> R) -> R {
    let _life = LIFE.lock();
    let _brain = BRAIN.lock();
    UCB_IN_USE[0].store(true, Relaxed);
    let _ucb = UCB[0].lock();
    f()
}

/// In a fork child (one thread): the sampler's and the peak snapshot's busy flags, which a
/// thread of the parent may have held, are free.
pub fn after_fork_in_child() {
    stacks::after_fork_in_child();
    sites::after_fork_in_child();
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
