//! The evolution lifecycle: LEARN → FROZEN → CANARY → LEARN. Time comes in as an
//! argument (the clock is injected), so tests drive a 180-second freeze in microseconds.
//! Pure logic: runs under Miri.
//!
//! - LEARN: learners choose. Once the window metric (p99 latency) has stayed within 1 %
//!   for 3 windows in a row and 180 s have passed since that stability began, FREEZE.
//! - FROZEN: the threshold is fixed and the learners are not consulted. A 20 % slowdown
//!   over 3 windows in a row, or a size-distribution shift of 0.25 (total variation
//!   distance from the histogram at freezing), sends it back to LEARN. Every
//!   `canary_every` windows it tries a CANARY.
//! - CANARY: a candidate serves 5 % of decisions for one window. If it beats the frozen
//!   threshold the lifecycle goes back to LEARN; otherwise FROZEN again.

pub const HIST_BUCKETS: usize = 8;
pub type Histogram = [f64; HIST_BUCKETS];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    Learn,
    Frozen,
    Canary,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Learn => "LEARN",
            Phase::Frozen => "FROZEN",
            Phase::Canary => "CANARY",
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct LifecycleParams {
    pub freeze_after_ns: u64,
    pub stable_tolerance: f64,
    pub stable_windows: u32,
    pub slowdown: f64,
    pub slowdown_windows: u32,
    pub shift: f64,
    pub canary_fraction: f64,
    pub canary_every: u32,
    pub window_ops: u64,
    pub window_ns: u64,
}

impl Default for LifecycleParams {
    fn default() -> Self {
        LifecycleParams {
            freeze_after_ns: 180_000_000_000,
            stable_tolerance: 0.01,
            stable_windows: 3,
            slowdown: 0.20,
            slowdown_windows: 3,
            shift: 0.25,
            canary_fraction: 0.05,
            canary_every: 10,
            window_ops: 10_000,
            window_ns: 2_000_000_000,
        }
    }
}

/// Why the phase changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    Freeze,
    RelearnSlowdown,
    RelearnShift,
    StartCanary,
    CanaryWon,
    CanaryLost,
}

/// What one closed window measured.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub now_ns: u64,
    /// The window's p99 latency (ns) on the main traffic.
    pub metric: f64,
    /// Normalised size histogram of the window.
    pub hist: Histogram,
    /// Whether the learners changed the threshold during the window.
    pub threshold_changed: bool,
    /// During CANARY: the p99 of the candidate's traffic.
    pub canary_metric: Option<f64>,
}

#[derive(Clone, Debug)]
pub struct Lifecycle {
    pub params: LifecycleParams,
    pub phase: Phase,
    pub windows: u64,
    pub transitions: u64,
    stable: u32,
    stable_since_ns: u64,
    last_metric: Option<f64>,
    baseline: f64,
    baseline_hist: Histogram,
    slow: u32,
    frozen_windows: u32,
}

/// Total variation distance between two normalised histograms.
pub fn shift(a: &Histogram, b: &Histogram) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f64>() / 2.0
}

impl Lifecycle {
    pub fn new(params: LifecycleParams) -> Lifecycle {
        Lifecycle {
            params,
            phase: Phase::Learn,
            windows: 0,
            transitions: 0,
            stable: 0,
            stable_since_ns: 0,
            last_metric: None,
            baseline: 0.0,
            baseline_hist: [0.0; HIST_BUCKETS],
            slow: 0,
            frozen_windows: 0,
        }
    }

    /// Whether a window that began at `start_ns` with `ops` operations is over.
    pub fn window_over(&self, start_ns: u64, now_ns: u64, ops: u64) -> bool {
        ops >= self.params.window_ops || now_ns.saturating_sub(start_ns) >= self.params.window_ns
    }

    /// Feeds one closed window; returns the transition it caused, if any.
    pub fn on_window(&mut self, w: &Window) -> Option<Transition> {
        self.windows += 1;
        let t = match self.phase {
            Phase::Learn => self.learn(w),
            Phase::Frozen => self.frozen(w),
            Phase::Canary => self.canary(w),
        };
        if t.is_some() {
            self.transitions += 1;
        }
        t
    }

    fn learn(&mut self, w: &Window) -> Option<Transition> {
        let steady = match self.last_metric {
            Some(prev) if !w.threshold_changed && prev > 0.0 => {
                ((w.metric - prev) / prev).abs() <= self.params.stable_tolerance
            }
            _ => false,
        };
        self.last_metric = Some(w.metric);
        if !steady {
            self.stable = 0;
            self.stable_since_ns = w.now_ns;
            return None;
        }
        self.stable += 1;
        if self.stable >= self.params.stable_windows
            && w.now_ns.saturating_sub(self.stable_since_ns) >= self.params.freeze_after_ns
        {
            self.phase = Phase::Frozen;
            self.baseline = w.metric;
            self.baseline_hist = w.hist;
            self.slow = 0;
            self.frozen_windows = 0;
            return Some(Transition::Freeze);
        }
        None
    }

    fn relearn(&mut self, w: &Window, why: Transition) -> Option<Transition> {
        self.phase = Phase::Learn;
        self.stable = 0;
        self.stable_since_ns = w.now_ns;
        self.last_metric = Some(w.metric);
        Some(why)
    }

    fn frozen(&mut self, w: &Window) -> Option<Transition> {
        if shift(&w.hist, &self.baseline_hist) >= self.params.shift {
            return self.relearn(w, Transition::RelearnShift);
        }
        if w.metric > self.baseline * (1.0 + self.params.slowdown) {
            self.slow += 1;
            if self.slow >= self.params.slowdown_windows {
                return self.relearn(w, Transition::RelearnSlowdown);
            }
        } else {
            self.slow = 0;
        }
        self.frozen_windows += 1;
        if self.frozen_windows >= self.params.canary_every {
            self.phase = Phase::Canary;
            return Some(Transition::StartCanary);
        }
        None
    }

    fn canary(&mut self, w: &Window) -> Option<Transition> {
        match w.canary_metric {
            Some(c) if c < w.metric * (1.0 - self.params.stable_tolerance) => {
                self.relearn(w, Transition::CanaryWon)
            }
            _ => {
                self.phase = Phase::Frozen;
                self.frozen_windows = 0;
                Some(Transition::CanaryLost)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;
    const H: Histogram = [0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0];

    fn win(t: u64, metric: f64) -> Window {
        Window {
            now_ns: t * S,
            metric,
            hist: H,
            threshold_changed: false,
            canary_metric: None,
        }
    }

    fn frozen() -> (Lifecycle, u64) {
        let mut l = Lifecycle::new(LifecycleParams::default());
        let mut t = 0;
        while l.phase != Phase::Frozen {
            t += 2;
            l.on_window(&win(t, 1000.0));
        }
        (l, t)
    }

    #[test]
    fn freezes_after_180_seconds_of_stable_windows() {
        let mut l = Lifecycle::new(LifecycleParams::default());
        assert_eq!(l.on_window(&win(0, 1000.0)), None);
        // Stable (within 1 %) from t = 0 s; windows every 2 s.
        let mut t = 0;
        let mut froze_at = None;
        while t < 400 {
            t += 2;
            let m = if t % 4 == 0 { 1005.0 } else { 1000.0 };
            if l.on_window(&win(t, m)) == Some(Transition::Freeze) {
                froze_at = Some(t);
                break;
            }
        }
        assert_eq!(froze_at, Some(180));
        assert_eq!(l.phase, Phase::Frozen);
    }

    #[test]
    fn a_wobble_or_a_threshold_change_restarts_the_clock() {
        let mut l = Lifecycle::new(LifecycleParams::default());
        l.on_window(&win(0, 1000.0));
        for t in (2..=100).step_by(2) {
            l.on_window(&win(t, 1000.0));
        }
        l.on_window(&win(102, 1100.0)); // 10 % jump: unstable
        for t in (104..=280).step_by(2) {
            assert_eq!(l.on_window(&win(t, 1100.0)), None, "t = {t}");
        }
        assert_eq!(l.on_window(&win(282, 1100.0)), Some(Transition::Freeze));
        let mut l = Lifecycle::new(LifecycleParams::default());
        l.on_window(&win(0, 1000.0));
        let mut w = win(200, 1000.0);
        w.threshold_changed = true;
        assert_eq!(l.on_window(&w), None);
    }

    #[test]
    fn relearns_after_three_windows_twenty_percent_slower() {
        let (mut l, t) = frozen();
        assert_eq!(l.on_window(&win(t + 2, 1250.0)), None);
        assert_eq!(l.on_window(&win(t + 4, 1250.0)), None);
        assert_eq!(
            l.on_window(&win(t + 6, 1150.0)),
            None,
            "15 % resets the count"
        );
        assert_eq!(l.on_window(&win(t + 8, 1250.0)), None);
        assert_eq!(l.on_window(&win(t + 10, 1250.0)), None);
        assert_eq!(
            l.on_window(&win(t + 12, 1250.0)),
            Some(Transition::RelearnSlowdown)
        );
        assert_eq!(l.phase, Phase::Learn);
    }

    #[test]
    fn relearns_on_a_size_distribution_shift() {
        let (mut l, t) = frozen();
        let mut w = win(t + 2, 1000.0);
        w.hist = [0.0, 0.0, 0.7, 0.3, 0.0, 0.0, 0.0, 0.0]; // distance 0.3
        assert_eq!(l.on_window(&w), Some(Transition::RelearnShift));
    }

    #[test]
    fn canary_every_ten_frozen_windows_won_or_lost() {
        let (mut l, mut t) = frozen();
        for i in 0..9 {
            t += 2;
            assert_eq!(l.on_window(&win(t, 1000.0)), None, "window {i}");
        }
        t += 2;
        assert_eq!(l.on_window(&win(t, 1000.0)), Some(Transition::StartCanary));
        let mut w = win(t + 2, 1000.0);
        w.canary_metric = Some(1000.0);
        assert_eq!(l.on_window(&w), Some(Transition::CanaryLost));
        assert_eq!(l.phase, Phase::Frozen);
        for _ in 0..10 {
            t += 2;
            l.on_window(&win(t, 1000.0));
        }
        assert_eq!(l.phase, Phase::Canary);
        let mut w = win(t + 2, 1000.0);
        w.canary_metric = Some(800.0);
        assert_eq!(l.on_window(&w), Some(Transition::CanaryWon));
        assert_eq!(l.phase, Phase::Learn);
    }

    #[test]
    fn windows_close_at_ten_thousand_ops_or_two_seconds() {
        let l = Lifecycle::new(LifecycleParams::default());
        assert!(!l.window_over(0, S, 9_999));
        assert!(l.window_over(0, S, 10_000));
        assert!(l.window_over(0, 2 * S, 1));
    }
}
