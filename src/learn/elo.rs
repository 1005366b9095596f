//! The ELO selector: 12 threshold strategies (geometric, 512 KiB … 32 MiB) rated by
//! pairwise comparison of their measured cost. Selection is epsilon-greedy (ε = 0.1) on
//! the ratings; a strategy takes part in an update once it has ≥ 50 samples; after every
//! strategy has been compared, only the top 6 stay active. Cost per sample is the
//! composite 0.4·CPU time + 0.3·page faults + 0.3·memory, each normalised between the
//! two strategies compared. Pure logic: runs under Miri.

use super::math;
use super::rng::Rng;

pub const STRATEGIES: usize = 12;
/// Composite costs closer than this fraction of the larger one make a draw.
pub const DRAW_MARGIN: f64 = 0.05;

/// Thresholds 512 KiB · 64^(i/11), rounded to 4 KiB: 512 KiB … 32 MiB.
pub const THRESHOLDS: [usize; STRATEGIES] = {
    let mut t = [0; STRATEGIES];
    let mut i = 0;
    while i < STRATEGIES {
        let x = (512 << 10) as f64 * math::pow(64.0, i as f64 / 11.0);
        t[i] = ((x / 4096.0 + 0.5) as usize) * 4096; // rounded to the nearest page
        i += 1;
    }
    t
};

/// The thresholds (`THRESHOLDS`).
pub const fn thresholds() -> [usize; STRATEGIES] {
    THRESHOLDS
}

#[derive(Clone, Copy, Debug)]
pub struct EloParams {
    pub k: f64,
    pub initial: f64,
    pub epsilon: f64,
    pub min_samples: u64,
    pub survivors: usize,
    pub w_cpu: f64,
    pub w_faults: f64,
    pub w_memory: f64,
}

impl Default for EloParams {
    fn default() -> Self {
        EloParams {
            k: 32.0,
            initial: 1500.0,
            epsilon: 0.1,
            min_samples: 50,
            survivors: 6,
            w_cpu: 0.4,
            w_faults: 0.3,
            w_memory: 0.3,
        }
    }
}

/// What one allocation under a strategy cost.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sample {
    pub cpu_ns: f64,
    pub faults: f64,
    pub memory: f64,
}

#[derive(Clone, Debug)]
pub struct Strategy {
    pub threshold: usize,
    pub rating: f64,
    pub wins: u64,
    pub losses: u64,
    pub draws: u64,
    /// Samples over the strategy's life.
    pub samples: u64,
    pub active: bool,
    /// Sums since the last update it took part in.
    pending: u64,
    sum: Sample,
}

impl Strategy {
    fn mean(&self) -> Sample {
        let n = self.pending.max(1) as f64;
        Sample {
            cpu_ns: self.sum.cpu_ns / n,
            faults: self.sum.faults / n,
            memory: self.sum.memory / n,
        }
    }
    pub fn games(&self) -> u64 {
        self.wins + self.losses + self.draws
    }
}

#[derive(Clone, Debug)]
pub struct Elo {
    pub params: EloParams,
    pub strategies: [Strategy; STRATEGIES],
    pub updates: u64,
}

impl Default for Elo {
    fn default() -> Self {
        Elo::new(EloParams::default())
    }
}

/// Expected score of a player rated `ra` against one rated `rb`.
pub fn expected(ra: f64, rb: f64) -> f64 {
    1.0 / (1.0 + math::pow(10.0, (rb - ra) / 400.0))
}

impl Elo {
    pub fn new(params: EloParams) -> Elo {
        // No Vec: this runs inside the allocator, which must not allocate.
        let t = thresholds();
        let strategies = core::array::from_fn(|i| Strategy {
            threshold: t[i],
            rating: params.initial,
            wins: 0,
            losses: 0,
            draws: 0,
            samples: 0,
            active: true,
            pending: 0,
            sum: Sample::default(),
        });
        Elo {
            params,
            strategies,
            updates: 0,
        }
    }

    /// The best active strategy: highest rating, ties to the lower threshold.
    pub fn best(&self) -> usize {
        let mut best = usize::MAX;
        for (i, s) in self.strategies.iter().enumerate() {
            if s.active && (best == usize::MAX || s.rating > self.strategies[best].rating) {
                best = i;
            }
        }
        best
    }

    /// The best active strategy other than `not`.
    pub fn runner_up(&self, not: usize) -> Option<usize> {
        (0..self.strategies.len())
            .filter(|&i| i != not && self.strategies[i].active)
            .max_by(|&a, &b| {
                let (ra, rb) = (self.strategies[a].rating, self.strategies[b].rating);
                ra.total_cmp(&rb).then(b.cmp(&a))
            })
    }

    /// Epsilon-greedy: with probability ε a uniformly random active strategy, else the best.
    pub fn select(&self, rng: &mut Rng) -> usize {
        if rng.next_f64() < self.params.epsilon {
            let active: usize = self.strategies.iter().filter(|s| s.active).count();
            let pick = rng.below(active);
            return (0..self.strategies.len())
                .filter(|&i| self.strategies[i].active)
                .nth(pick)
                .unwrap();
        }
        self.best()
    }

    pub fn record(&mut self, i: usize, s: Sample) {
        let st = &mut self.strategies[i];
        st.samples += 1;
        st.pending += 1;
        st.sum.cpu_ns += s.cpu_ns;
        st.sum.faults += s.faults;
        st.sum.memory += s.memory;
    }

    /// Composite cost of `a` and `b` (lower is better), each metric normalised by the
    /// larger of the two so the weights compare like with like.
    pub fn composite(&self, a: Sample, b: Sample) -> (f64, f64) {
        let p = &self.params;
        let norm = |x: f64, y: f64| {
            let m = x.max(y);
            if m > 0.0 {
                (x / m, y / m)
            } else {
                (0.0, 0.0)
            }
        };
        let (ca, cb) = norm(a.cpu_ns, b.cpu_ns);
        let (fa, fb) = norm(a.faults, b.faults);
        let (ma, mb) = norm(a.memory, b.memory);
        (
            p.w_cpu * ca + p.w_faults * fa + p.w_memory * ma,
            p.w_cpu * cb + p.w_faults * fb + p.w_memory * mb,
        )
    }

    /// One rating round: every pair of active strategies with ≥ `min_samples` pending
    /// samples plays one game. Returns whether any game was played.
    pub fn update(&mut self) -> bool {
        let mut ready = [0usize; STRATEGIES];
        let mut means = [Sample::default(); STRATEGIES];
        let mut n = 0;
        for (i, s) in self.strategies.iter().enumerate() {
            if s.active && s.pending >= self.params.min_samples {
                ready[n] = i;
                means[n] = s.mean();
                n += 1;
            }
        }
        if n < 2 {
            return false;
        }
        let ready = &ready[..n];
        for x in 0..n {
            for y in x + 1..n {
                let (a, b) = (ready[x], ready[y]);
                let (sa, sb) = self.composite(means[x], means[y]);
                // Within the noise (5 % of the larger cost) a game is a draw: strategies
                // that cost the same must not drift apart by chance.
                let score = if (sa - sb).abs() <= DRAW_MARGIN * sa.max(sb) {
                    0.5
                } else if sa < sb {
                    1.0
                } else {
                    0.0
                };
                self.play(a, b, score);
            }
        }
        for &i in ready {
            self.strategies[i].pending = 0;
            self.strategies[i].sum = Sample::default();
        }
        self.updates += 1;
        self.survive();
        true
    }

    /// One game: `score` is a's result (1 win, 0.5 draw, 0 loss).
    pub fn play(&mut self, a: usize, b: usize, score: f64) {
        let (ra, rb) = (self.strategies[a].rating, self.strategies[b].rating);
        let ea = expected(ra, rb);
        let k = self.params.k;
        self.strategies[a].rating = ra + k * (score - ea);
        self.strategies[b].rating = rb + k * ((1.0 - score) - (1.0 - ea));
        if score > 0.5 {
            self.strategies[a].wins += 1;
            self.strategies[b].losses += 1;
        } else if score < 0.5 {
            self.strategies[a].losses += 1;
            self.strategies[b].wins += 1;
        } else {
            self.strategies[a].draws += 1;
            self.strategies[b].draws += 1;
        }
    }

    /// Once every active strategy has played, keep only the top `survivors`.
    fn survive(&mut self) {
        let active = self.strategies.iter().filter(|s| s.active).count();
        if active <= self.params.survivors
            || self.strategies.iter().any(|s| s.active && s.games() == 0)
        {
            return;
        }
        // Deactivate the weakest (lowest rating, ties: the higher threshold) until `survivors` remain.
        for _ in self.params.survivors..active {
            let mut worst = usize::MAX;
            for (i, s) in self.strategies.iter().enumerate() {
                if s.active && (worst == usize::MAX || s.rating <= self.strategies[worst].rating) {
                    worst = i;
                }
            }
            self.strategies[worst].active = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twelve_geometric_thresholds_from_512k_to_32m() {
        let t = thresholds();
        assert_eq!(t[0], 512 << 10);
        assert_eq!(t[11], 32 << 20);
        for i in 1..12 {
            let r = t[i] as f64 / t[i - 1] as f64;
            assert!((r - 1.459).abs() < 0.01, "ratio {r}");
        }
    }

    #[test]
    fn ratings_follow_the_hand_computed_elo_sequence() {
        let mut e = Elo::default();
        e.play(0, 1, 1.0); // equal ratings: expected 0.5, so ±16
        assert_eq!(
            (e.strategies[0].rating, e.strategies[1].rating),
            (1516.0, 1484.0)
        );
        e.play(0, 1, 1.0); // E = 1/(1+10^(-32/400)) = 0.545922; Δ = 32·0.454078 = 14.5305
        assert!((e.strategies[0].rating - 1_530.530_498).abs() < 1e-5);
        assert!((e.strategies[1].rating - 1_469.469_502).abs() < 1e-5);
        e.play(0, 1, 0.5); // a draw against a weaker player costs the favourite
        assert!(e.strategies[0].rating < 1530.53);
        assert_eq!(
            (
                e.strategies[0].wins,
                e.strategies[1].losses,
                e.strategies[0].draws
            ),
            (2, 2, 1)
        );
    }

    #[test]
    fn composite_weights_cpu_faults_and_memory() {
        let e = Elo::default();
        let a = Sample {
            cpu_ns: 100.0,
            faults: 0.0,
            memory: 1000.0,
        };
        let b = Sample {
            cpu_ns: 200.0,
            faults: 10.0,
            memory: 1000.0,
        };
        let (sa, sb) = e.composite(a, b);
        assert!((sa - (0.4 * 0.5 + 0.0 + 0.3)).abs() < 1e-12);
        assert!((sb - (0.4 + 0.3 + 0.3)).abs() < 1e-12);
    }

    #[test]
    fn updates_wait_for_fifty_samples_and_the_cheaper_strategy_wins() {
        let mut e = Elo::default();
        let cheap = Sample {
            cpu_ns: 50.0,
            faults: 0.0,
            memory: 2e6,
        };
        let dear = Sample {
            cpu_ns: 5000.0,
            faults: 512.0,
            memory: 2e6,
        };
        for _ in 0..49 {
            e.record(0, cheap);
            e.record(5, dear);
        }
        assert!(!e.update(), "49 samples are not enough");
        e.record(0, cheap);
        e.record(5, dear);
        assert!(e.update());
        assert_eq!(e.strategies[0].rating, 1516.0);
        assert_eq!(e.strategies[5].rating, 1484.0);
        assert_eq!(e.best(), 0);
        assert_eq!(
            e.runner_up(0),
            Some(1),
            "untouched 1500s tie; lowest threshold first"
        );
    }

    #[test]
    fn costs_within_five_percent_are_a_draw() {
        let mut e = Elo::default();
        for _ in 0..50 {
            e.record(
                0,
                Sample {
                    cpu_ns: 1000.0,
                    faults: 0.0,
                    memory: 1e6,
                },
            );
            e.record(
                1,
                Sample {
                    cpu_ns: 1040.0,
                    faults: 0.0,
                    memory: 1e6,
                },
            );
        }
        assert!(e.update());
        // Composite 0.4 + 0.3 vs 0.4·(1000/1040) + 0.3: 2.2 % apart → draw, ratings stay.
        assert_eq!(
            (e.strategies[0].rating, e.strategies[1].rating),
            (1500.0, 1500.0)
        );
        assert_eq!((e.strategies[0].draws, e.strategies[1].draws), (1, 1));
    }

    #[test]
    fn epsilon_greedy_explores_about_a_tenth_of_the_time() {
        let mut e = Elo::default();
        e.play(3, 4, 1.0);
        let mut rng = Rng::new(42);
        let n = 10_000;
        let explored = (0..n).filter(|_| e.select(&mut rng) != 3).count();
        // ε = 0.1, and an exploring pick lands on the best 1 time in 12.
        let expected = n as f64 * 0.1 * 11.0 / 12.0;
        assert!(
            (explored as f64 - expected).abs() < 0.2 * expected,
            "{explored}"
        );
    }

    #[test]
    fn only_the_top_six_survive_once_all_have_played() {
        let mut e = Elo::default();
        for round in 0..2 {
            for i in 0..STRATEGIES {
                for _ in 0..50 {
                    // Lower thresholds cost less here.
                    e.record(
                        i,
                        Sample {
                            cpu_ns: 100.0 * (i + 1) as f64,
                            faults: i as f64,
                            memory: 1e6,
                        },
                    );
                }
            }
            assert!(e.update(), "round {round}");
        }
        let active: Vec<usize> = (0..STRATEGIES)
            .filter(|&i| e.strategies[i].active)
            .collect();
        assert_eq!(active, vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(e.best(), 0);
    }
}
