//! UCB1 per call site: which mmap threshold ("arm") serves this site best. Exploration
//! follows UCB1 (mean reward + c·sqrt(ln N / n)); the threshold the site *uses* changes
//! only with hysteresis: a candidate must beat it by at least 8 % in three evaluations in
//! a row, and after a change the site keeps it for a 180 s cooldown. Pure logic (the
//! caller passes the time): runs under Miri.

use super::math;

pub const ARMS: [usize; 6] = [64 << 10, 128 << 10, 256 << 10, 512 << 10, 1 << 20, 2 << 20];

#[derive(Clone, Copy, Debug)]
pub struct Ucb1Params {
    pub exploration: f64,
    pub min_improvement: f64,
    pub streak: u32,
    pub cooldown_ns: u64,
}

impl Ucb1Params {
    pub const DEFAULT: Ucb1Params = Ucb1Params {
        exploration: 2.0,
        min_improvement: 0.08,
        streak: 3,
        cooldown_ns: 180_000_000_000,
    };
}

impl Default for Ucb1Params {
    fn default() -> Self {
        Ucb1Params::DEFAULT
    }
}

#[derive(Clone, Debug)]
pub struct Ucb1 {
    pub params: Ucb1Params,
    pub pulls: [u64; 6],
    pub reward_sum: [f64; 6],
    pub total: u64,
    /// The arm in use (starts at 2 MiB, the fixed default).
    pub adopted: usize,
    streak_arm: usize,
    streak: u32,
    last_adoption_ns: Option<u64>,
    pub adoptions: u64,
}

impl Default for Ucb1 {
    fn default() -> Self {
        Ucb1::new(Ucb1Params::DEFAULT)
    }
}

impl Ucb1 {
    pub const fn new(params: Ucb1Params) -> Ucb1 {
        Ucb1 {
            params,
            pulls: [0; 6],
            reward_sum: [0.0; 6],
            total: 0,
            adopted: ARMS.len() - 1,
            streak_arm: usize::MAX,
            streak: 0,
            last_adoption_ns: None,
            adoptions: 0,
        }
    }

    pub fn mean(&self, arm: usize) -> f64 {
        if self.pulls[arm] == 0 {
            0.0
        } else {
            self.reward_sum[arm] / self.pulls[arm] as f64
        }
    }

    /// UCB1 score of `arm` (infinite for an arm never tried).
    pub fn score(&self, arm: usize) -> f64 {
        self.score_with(arm, math::ln(self.total as f64))
    }

    fn score_with(&self, arm: usize, ln_total: f64) -> f64 {
        if self.pulls[arm] == 0 {
            return f64::INFINITY;
        }
        let n = self.pulls[arm] as f64;
        self.mean(arm) + self.params.exploration * (ln_total / n).sqrt()
    }

    /// The arm to try next: untried arms first (lowest index), then the best UCB1 score;
    /// scores equal to within 1e-9 count as a tie, won by the lower arm (so the choice does
    /// not hang on the last bit of a logarithm: Miri, which varies it, found that).
    pub fn select(&self) -> usize {
        let ln_total = math::ln(self.total as f64);
        let mut best = 0;
        let mut best_score = self.score_with(0, ln_total);
        for arm in 1..ARMS.len() {
            let s = self.score_with(arm, ln_total);
            if s > best_score + 1e-9 {
                best = arm;
                best_score = s;
            }
        }
        best
    }

    /// Records a reward in [0, 1] (higher is better) for `arm`.
    pub fn record(&mut self, arm: usize, reward: f64) {
        self.pulls[arm] += 1;
        self.reward_sum[arm] += reward;
        self.total += 1;
    }

    /// One hysteresis evaluation at time `now_ns`; returns the newly adopted arm, if any.
    pub fn evaluate(&mut self, now_ns: u64) -> Option<usize> {
        let best = (0..ARMS.len())
            .filter(|&a| self.pulls[a] > 0)
            .max_by(|&a, &b| self.mean(a).total_cmp(&self.mean(b)))?;
        let current = self.mean(self.adopted);
        let improves = best != self.adopted
            && (self.pulls[self.adopted] == 0
                || self.mean(best) >= current * (1.0 + self.params.min_improvement));
        if !improves {
            self.streak = 0;
            return None;
        }
        if self.streak_arm == best {
            self.streak += 1;
        } else {
            self.streak_arm = best;
            self.streak = 1;
        }
        let cooled = match self.last_adoption_ns {
            None => true,
            Some(t) => now_ns.saturating_sub(t) >= self.params.cooldown_ns,
        };
        if self.streak >= self.params.streak && cooled {
            self.adopted = best;
            self.streak = 0;
            self.last_adoption_ns = Some(now_ns);
            self.adoptions += 1;
            return Some(best);
        }
        None
    }

    pub fn threshold(&self) -> usize {
        ARMS[self.adopted]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untried_arms_first_then_hand_computed_ucb_scores() {
        let mut u = Ucb1::default();
        for arm in 0..6 {
            assert_eq!(u.select(), arm);
            u.record(arm, if arm == 2 { 0.9 } else { 0.5 });
        }
        // N = 6, each n = 1: score = mean + 2 * sqrt(ln 6) = mean + 2.677132.
        let bonus = 2.0 * (6f64).ln().sqrt();
        assert!((u.score(2) - (0.9 + bonus)).abs() < 1e-12);
        assert!((bonus - 2.677_132).abs() < 1e-6);
        assert_eq!(u.select(), 2);
        u.record(2, 0.9);
        // N = 7: arm 2 has n = 2: 0.9 + 2*sqrt(ln 7 / 2) = 2.872770;
        // the others 0.5 + 2*sqrt(ln 7) = 3.289918, so arm 0 (the first best) wins.
        assert!((u.score(2) - 2.872_770).abs() < 1e-5, "{}", u.score(2));
        assert!((u.score(0) - 3.289_918).abs() < 1e-5, "{}", u.score(0));
        assert_eq!(u.select(), 0);
    }

    #[test]
    fn adoption_needs_three_improvements_in_a_row() {
        let mut u = Ucb1::default();
        u.record(5, 0.50); // the adopted 2 MiB arm
        u.record(1, 0.56); // +12 %
        assert_eq!(u.evaluate(1), None);
        assert_eq!(u.evaluate(2), None);
        assert_eq!(u.evaluate(3), Some(1));
        assert_eq!(u.threshold(), 128 << 10);
    }

    #[test]
    fn small_improvements_and_broken_streaks_do_not_adopt() {
        let mut u = Ucb1::default();
        u.record(5, 0.50);
        u.record(0, 0.53); // +6 %: below the 8 % bar
        for t in 0..10 {
            assert_eq!(u.evaluate(t), None);
        }
        u.record(0, 0.70); // arm 0 mean now 0.615: +23 %
        assert_eq!(u.evaluate(11), None);
        assert_eq!(u.evaluate(12), None);
        u.record(5, 0.80); // the adopted arm recovers (mean 0.65): streak broken
        assert_eq!(u.evaluate(13), None);
        u.record(5, 0.20); // mean back to 0.5
        assert_eq!(u.evaluate(14), None);
        assert_eq!(u.evaluate(15), None);
        assert_eq!(u.evaluate(16), Some(0), "three fresh improvements in a row");
    }

    #[test]
    fn cooldown_holds_a_new_arm_for_180_seconds() {
        let mut u = Ucb1::default();
        u.record(5, 0.5);
        u.record(1, 0.6);
        let s = 1_000_000_000u64;
        for t in 1..=3 {
            u.evaluate(t * s);
        }
        assert_eq!(u.adopted, 1);
        u.record(3, 0.9); // a better arm appears at once
        for t in 4..=10 {
            assert_eq!(u.evaluate(t * s), None, "cooldown at {t} s");
        }
        assert_eq!(
            u.evaluate(183 * s),
            Some(3),
            "after 180 s the streak may adopt"
        );
    }
}
