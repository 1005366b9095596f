//! `ln`, `exp` and `pow` for the learners, in plain arithmetic. `f64::ln` and `f64::powf`
//! call the C library's `log` and `pow`, which live in `libm`: using them made
//! `libhakmem.so` depend on `libm.so.6`, one more object for the loader to map at every
//! process start. Relative error below 1e-12 over the learners' ranges (tested against
//! the standard library). `const fn`, so constant tables (ELO's thresholds) are computed
//! at compile time. Pure logic: runs under Miri.

const LN2: f64 = core::f64::consts::LN_2;

/// Evaluates `c[0] + x·(c[1] + x·(c[2] + …))`.
const fn horner(x: f64, c: &[f64]) -> f64 {
    let mut acc = 0.0;
    let mut i = c.len();
    while i > 0 {
        i -= 1;
        acc = acc * x + c[i];
    }
    acc
}

/// 1/1, 1/3, 1/5, …, 1/23: ln m = 2·atanh(s) = 2·s·Σ s²ᵏ/(2k + 1).
const ATANH: [f64; 12] = {
    let mut c = [0.0; 12];
    let mut k = 0;
    while k < 12 {
        c[k] = 1.0 / (2 * k + 1) as f64;
        k += 1;
    }
    c
};

/// 1/n! for n = 0 … 17: e^r = Σ rⁿ/n!.
const EXP: [f64; 18] = {
    let mut c = [1.0; 18];
    let mut n = 1;
    while n < 18 {
        c[n] = c[n - 1] / n as f64;
        n += 1;
    }
    c
};

/// Natural logarithm of `x` (NaN for negative or NaN, -inf for 0, inf for inf).
pub const fn ln(x: f64) -> f64 {
    if x.is_nan() || x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 {
        return f64::NEG_INFINITY;
    }
    if x.is_infinite() {
        return x;
    }
    // x = m · 2^e with m in [1, 2) (subnormals scaled up first).
    let (x, bias) = if x < f64::MIN_POSITIVE {
        (x * (1u64 << 54) as f64, -54)
    } else {
        (x, 0)
    };
    let bits = x.to_bits();
    let mut e = ((bits >> 52) & 0x7ff) as i64 - 1023 + bias;
    let mut m = f64::from_bits((bits & ((1u64 << 52) - 1)) | (1023u64 << 52));
    if m > core::f64::consts::SQRT_2 {
        m /= 2.0; // m in [√½, √2): the series converges fast there
        e += 1;
    }
    // s = (m − 1)/(m + 1), |s| < 0.172: twelve terms reach below 1e-17.
    let s = (m - 1.0) / (m + 1.0);
    e as f64 * LN2 + 2.0 * s * horner(s * s, &ATANH)
}

/// e to the power `x` (0 below -745, inf above 709.8).
pub const fn exp(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x > 709.78 {
        return f64::INFINITY;
    }
    if x < -745.0 {
        return 0.0;
    }
    // x = k·ln 2 + r, |r| ≤ ln 2 / 2; e^x = 2^k · e^r (|r|¹⁸/18! < 1e-22).
    let k = (x / LN2 + if x < 0.0 { -0.5 } else { 0.5 }) as i64;
    let r = x - k as f64 * LN2;
    // 2^k in two steps, so that k down to -1074 and up to 1023 stays representable.
    let half = k / 2;
    horner(r, &EXP) * pow2(half) * pow2(k - half)
}

/// 2^k for -1022 ≤ k ≤ 1023 (0 or inf beyond).
const fn pow2(k: i64) -> f64 {
    if k < -1022 {
        return 0.0;
    }
    if k > 1023 {
        return f64::INFINITY;
    }
    f64::from_bits(((k + 1023) as u64) << 52)
}

/// `base` to the power `y`, for `base > 0`.
pub const fn pow(base: f64, y: f64) -> f64 {
    exp(y * ln(base))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        a == b || ((a - b) / b).abs() < rel
    }

    #[test]
    fn ln_matches_the_standard_library() {
        let mut x = 1e-300;
        while x < 1e300 {
            assert!(
                close(ln(x), x.ln(), 1e-12)
                    || (x.ln().abs() < 1e-3 && (ln(x) - x.ln()).abs() < 1e-15),
                "ln({x}) = {} vs {}",
                ln(x),
                x.ln()
            );
            x *= 1.37;
        }
        for n in [1u64, 2, 3, 10, 1000, 123_456_789, u64::MAX] {
            assert!(close(ln(n as f64), (n as f64).ln(), 1e-12), "ln({n})");
        }
        assert_eq!(ln(1.0), 0.0);
        assert!(ln(-1.0).is_nan() && ln(f64::NAN).is_nan());
        assert_eq!(ln(0.0), f64::NEG_INFINITY);
        assert_eq!(ln(f64::INFINITY), f64::INFINITY);
        assert!(close(ln(5e-324), (5e-324f64).ln(), 1e-12)); // subnormal
    }

    #[test]
    fn exp_and_pow_match_the_standard_library() {
        let mut x = -700.0;
        while x < 700.0 {
            assert!(
                close(exp(x), x.exp(), 1e-12),
                "exp({x}) = {} vs {}",
                exp(x),
                x.exp()
            );
            x += 0.731;
        }
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(1000.0), f64::INFINITY);
        assert_eq!(exp(-1000.0), 0.0);
        // The learners' uses: ELO's expected score and the thresholds' geometric steps.
        for d in [-800.0, -400.0, -1.0, 0.0, 3.5, 400.0, 800.0] {
            assert!(
                close(pow(10.0, d / 400.0), 10f64.powf(d / 400.0), 1e-12),
                "10^({d}/400)"
            );
        }
        for i in 0..12 {
            let y = i as f64 / 11.0;
            assert!(close(pow(64.0, y), 64f64.powf(y), 1e-12), "64^{y}");
        }
    }
}
