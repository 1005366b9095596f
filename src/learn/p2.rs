//! The P² estimator (Jain & Chlamtac, 1985): a running quantile in five numbers, no
//! samples kept. The lifecycle tracks the p99 of sampled allocation latency with it.
//! Pure logic: runs under Miri.

#[derive(Clone, Debug)]
pub struct P2 {
    p: f64,
    count: usize,
    /// Marker heights.
    q: [f64; 5],
    /// Marker positions (1-based, as in the paper).
    n: [f64; 5],
    /// Desired positions and their increments.
    want: [f64; 5],
    step: [f64; 5],
}

impl P2 {
    /// A p99 estimator with no samples (a constant, for statics).
    pub const EMPTY_P99: P2 = P2::new(0.99);

    pub const fn new(p: f64) -> P2 {
        P2 {
            p,
            count: 0,
            q: [0.0; 5],
            n: [1.0, 2.0, 3.0, 4.0, 5.0],
            want: [1.0, 1.0 + 2.0 * p, 1.0 + 4.0 * p, 3.0 + 2.0 * p, 5.0],
            step: [0.0, p / 2.0, p, (1.0 + p) / 2.0, 1.0],
        }
    }

    pub fn count(&self) -> usize {
        self.count
    }

    pub fn add(&mut self, x: f64) {
        if self.count < 5 {
            self.q[self.count] = x;
            self.count += 1;
            if self.count == 5 {
                self.q.sort_by(|a, b| a.total_cmp(b));
            }
            return;
        }
        self.count += 1;
        let k = if x < self.q[0] {
            self.q[0] = x;
            0
        } else if x >= self.q[4] {
            self.q[4] = x;
            3
        } else {
            (0..4).find(|&i| x < self.q[i + 1]).unwrap_or(3)
        };
        for i in k + 1..5 {
            self.n[i] += 1.0;
        }
        for i in 0..5 {
            self.want[i] += self.step[i];
        }
        for i in 1..4 {
            let d = self.want[i] - self.n[i];
            if (d >= 1.0 && self.n[i + 1] - self.n[i] > 1.0)
                || (d <= -1.0 && self.n[i - 1] - self.n[i] < -1.0)
            {
                let d = d.signum();
                let qp = self.parabolic(i, d);
                self.q[i] = if self.q[i - 1] < qp && qp < self.q[i + 1] {
                    qp
                } else {
                    self.linear(i, d)
                };
                self.n[i] += d;
            }
        }
    }

    fn parabolic(&self, i: usize, d: f64) -> f64 {
        let (q, n) = (&self.q, &self.n);
        q[i] + d / (n[i + 1] - n[i - 1])
            * ((n[i] - n[i - 1] + d) * (q[i + 1] - q[i]) / (n[i + 1] - n[i])
                + (n[i + 1] - n[i] - d) * (q[i] - q[i - 1]) / (n[i] - n[i - 1]))
    }

    fn linear(&self, i: usize, d: f64) -> f64 {
        let j = if d > 0.0 { i + 1 } else { i - 1 };
        self.q[i] + d * (self.q[j] - self.q[i]) / (self.n[j] - self.n[i])
    }

    /// The current estimate (exact while fewer than five samples; None when empty).
    pub fn quantile(&self) -> Option<f64> {
        match self.count {
            0 => None,
            c if c < 5 => {
                let mut v = [0.0; 5];
                v[..c].copy_from_slice(&self.q[..c]);
                v[..c].sort_by(|a, b| a.total_cmp(b));
                let idx = ((self.p * c as f64).ceil() as usize).clamp(1, c) - 1;
                Some(v[idx])
            }
            _ => Some(self.q[2]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learn::rng::Rng;

    #[test]
    fn small_counts_are_exact() {
        let mut e = P2::new(0.99);
        assert_eq!(e.quantile(), None);
        for x in [5.0, 1.0, 3.0] {
            e.add(x);
        }
        assert_eq!(e.quantile(), Some(5.0));
    }

    #[test]
    fn p99_of_a_uniform_stream_is_close() {
        let mut e = P2::new(0.99);
        let mut r = Rng::new(7);
        let n = if cfg!(miri) { 2_000 } else { 100_000 };
        for _ in 0..n {
            e.add(r.next_f64() * 1000.0);
        }
        let q = e.quantile().unwrap();
        assert!((q - 990.0).abs() < 15.0, "p99 estimate {q}");
    }

    #[test]
    fn median_of_a_hand_checked_sequence() {
        // The paper's worked example (p = 0.5): after these 20 observations the median
        // marker sits at 4.44 (Jain & Chlamtac, Table I).
        let xs = [
            0.02, 0.15, 0.74, 3.39, 0.83, 22.37, 10.15, 15.43, 38.62, 15.92, 34.60, 10.28, 1.47,
            0.40, 0.05, 11.39, 0.27, 0.42, 0.09, 11.37,
        ];
        let mut e = P2::new(0.5);
        for x in xs {
            e.add(x);
        }
        assert!(
            (e.quantile().unwrap() - 4.44).abs() < 0.01,
            "{:?}",
            e.quantile()
        );
    }
}
