//! Time per step by subtraction: the reuse path with every step (`full`) and the same path
//! without one step (`microbench::probes::REUSE_SUBTRACTION`, built from the allocator's own
//! `alloc_steps`/`free_steps`), timed interleaved in this process round after round. A
//! step's time is the median over rounds of (full − without) per operation, with a 95 %
//! confidence interval for that median from order statistics (distribution-free: ranks
//! n/2 ∓ 0.98·√n). Steps overlap on a real CPU, so the differences need not add up to the
//! path: the report prints what is left as a signed residual.

use microbench::probes::{self, Run};
use serde::Serialize;
use std::time::Instant;

#[derive(Clone, Debug, Serialize)]
pub struct StepTime {
    pub step: String,
    /// Median of full − without, ns per operation.
    pub ns: f64,
    /// 95 % confidence interval of that median.
    pub ns_ci: (f64, f64),
    pub rounds: usize,
}

/// ns per operation of one timed batch of `batches` runs (each `probes::OPS` operations).
fn time(run: &mut Run, batches: u32) -> f64 {
    let t = Instant::now();
    for _ in 0..batches {
        run();
    }
    t.elapsed().as_nanos() as f64 / (batches as f64 * probes::OPS as f64)
}

/// The median of `v` and its 95 % confidence interval (order statistics).
pub fn median_ci(v: &mut [f64]) -> (f64, (f64, f64)) {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return (f64::NAN, (f64::NAN, f64::NAN));
    }
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    let half = 0.98 * (n as f64).sqrt();
    let lo = ((n as f64 / 2.0 - half).floor().max(0.0)) as usize;
    let hi = ((n as f64 / 2.0 + half).ceil() as usize).min(n - 1);
    (median, (v[lo], v[hi]))
}

/// Times each step of the reuse path by subtraction over `rounds` rounds.
pub fn reuse_steps(rounds: usize, batches: u32) -> Vec<StepTime> {
    let s = probes::REUSE_SUBTRACTION;
    let mut full = (s.full)();
    let mut without: Vec<(&str, Run)> = s.without.iter().map(|(n, f)| (*n, f())).collect();
    let mut diffs: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); without.len()];
    for round in 0..rounds {
        // Alternate the order each round, so drift does not favour either side.
        for (k, (_, w)) in without.iter_mut().enumerate() {
            let (a, b) = if round % 2 == 0 {
                let a = time(&mut full, batches);
                (a, time(w, batches))
            } else {
                let b = time(w, batches);
                (time(&mut full, batches), b)
            };
            diffs[k].push(a - b);
        }
    }
    without
        .iter()
        .zip(diffs.iter_mut())
        .map(|((name, _), d)| {
            let (ns, ns_ci) = median_ci(d);
            StepTime {
                step: name.to_string(),
                ns,
                ns_ci,
                rounds,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_and_its_interval_come_from_order_statistics() {
        let mut v: Vec<f64> = (1..=25).rev().map(f64::from).collect();
        let (m, (lo, hi)) = median_ci(&mut v);
        assert_eq!(m, 13.0);
        // n = 25: ranks 12.5 ∓ 4.9 → indices 7 and 18 (values 8 and 19).
        assert_eq!((lo, hi), (8.0, 19.0));
        let (m, _) = median_ci(&mut [1.0, 3.0]);
        assert_eq!(m, 2.0);
        assert!(median_ci(&mut []).0.is_nan());
    }

    #[test]
    fn every_model_step_gets_a_time_with_an_interval_around_it() {
        let t = reuse_steps(3, 1);
        assert_eq!(t.len(), 3);
        for s in &t {
            assert!(
                s.ns.is_finite() && s.ns_ci.0 <= s.ns && s.ns <= s.ns_ci.1,
                "{s:?}"
            );
        }
    }
}
