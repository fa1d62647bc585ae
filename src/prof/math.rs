//! The little floating-point arithmetic sampling needs, without `libm` (the library links no
//! `std`): the natural logarithm that draws exponential intervals, and the exponential that
//! scales samples back to estimates.

const LN_2: f64 = core::f64::consts::LN_2;

/// ln(x) for a finite x > 0 (accurate to about 1e-12).
pub fn ln(x: f64) -> f64 {
    debug_assert!(x > 0.0 && x.is_finite());
    let bits = x.to_bits();
    let mut e = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & ((1u64 << 52) - 1)) | (1023u64 << 52));
    if e == -1023 {
        // Subnormal: scale up first.
        return ln(x * (1u64 << 54) as f64) - 54.0 * LN_2;
    }
    // m in [1, 2): move it to [sqrt(1/2), sqrt(2)) for a faster series.
    if m > core::f64::consts::SQRT_2 {
        m /= 2.0;
        e += 1;
    }
    // ln(m) = 2 atanh(z), z = (m - 1) / (m + 1), |z| < 0.172.
    let z = (m - 1.0) / (m + 1.0);
    let z2 = z * z;
    let mut term = z;
    let mut sum = 0.0;
    let mut k = 1.0;
    while k < 40.0 {
        sum += term / k;
        term *= z2;
        k += 2.0;
    }
    e as f64 * LN_2 + 2.0 * sum
}

/// e^-x for x >= 0.
pub fn exp_neg(x: f64) -> f64 {
    debug_assert!(x >= 0.0);
    if x > 745.0 {
        return 0.0;
    }
    // e^-x = 2^-k e^-r with r in [0, ln 2).
    let k = (x / LN_2) as i64;
    let r = x - k as f64 * LN_2;
    let mut term = 1.0;
    let mut sum = 1.0;
    let mut n = 1.0;
    while n < 25.0 {
        term *= -r / n;
        sum += term;
        n += 1.0;
    }
    let mut v = sum;
    let mut k = k;
    while k >= 60 {
        v /= (1u64 << 60) as f64;
        k -= 60;
    }
    v / (1u64 << k) as f64
}

/// The next sampling distance in bytes: exponential with mean `period`, at least 1 and at
/// most 40 periods (the tail beyond has a probability of e^-40). Advances the generator.
pub fn next_interval(rng: &mut u64, period: usize) -> i64 {
    // xorshift64*
    let mut x = *rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *rng = x;
    let r = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
    // u in (0, 1]
    let u = ((r >> 11) + 1) as f64 / (1u64 << 53) as f64;
    let d = -ln(u) * period as f64;
    (d.min(40.0 * period as f64) as i64).max(1)
}

/// Estimates from raw samples: `count` sampled blocks of `bytes` bytes in all, taken every
/// `period` bytes on average, stand for `count * s` blocks and `bytes * s` bytes, where
/// `s = 1 / (1 - e^(-avg / period))` and `avg = bytes / count` (pprof's `scaleHeapSample`,
/// which reads the files this module writes, does the same). No scaling for a period of 1.
pub fn scale(count: u64, bytes: u64, period: usize) -> (u64, u64) {
    if count == 0 || bytes == 0 || period <= 1 {
        return (count, bytes);
    }
    let avg = bytes as f64 / count as f64;
    let p = 1.0 - exp_neg(avg / period as f64);
    if p <= 0.0 {
        return (count, bytes);
    }
    ((count as f64 / p) as u64, (bytes as f64 / p) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_and_exp_match_std() {
        for &x in &[
            1e-300, 1e-10, 0.001, 0.3, 0.5, 0.9999, 1.0, 1.5, 2.0, 10.0, 12345.678, 1e300,
        ] {
            let (a, b) = (ln(x), x.ln());
            assert!(
                (a - b).abs() <= 1e-10 * b.abs().max(1.0),
                "ln({x}) = {a}, std {b}"
            );
        }
        for &x in &[0.0, 1e-9, 0.1, 0.69, 1.0, 3.3, 20.0, 100.0, 700.0] {
            let (a, b) = (exp_neg(x), (-x).exp());
            assert!((a - b).abs() <= 1e-10 * b, "exp(-{x}) = {a}, std {b}");
        }
    }

    #[test]
    #[cfg_attr(miri, ignore)] // 200,000 draws: minutes under Miri
    fn intervals_are_exponential_with_the_mean() {
        let mut rng = 0x1234_5678_9abc_def1u64;
        let n = 200_000;
        let mut sum = 0f64;
        let mut below_mean = 0;
        for _ in 0..n {
            let d = next_interval(&mut rng, 524_288);
            assert!(d >= 1);
            sum += d as f64;
            if d < 524_288 {
                below_mean += 1;
            }
        }
        let mean = sum / n as f64;
        assert!((mean / 524_288.0 - 1.0).abs() < 0.02, "mean {mean}");
        // P(X < mean) = 1 - 1/e = 0.632 for an exponential distribution.
        let frac = below_mean as f64 / n as f64;
        assert!(
            (frac - 0.632).abs() < 0.01,
            "fraction below the mean {frac}"
        );
    }

    #[test]
    fn scaling() {
        assert_eq!(scale(3, 300, 1), (3, 300));
        assert_eq!(scale(0, 0, 512), (0, 0));
        // A block much larger than the period is always sampled: no scaling.
        assert_eq!(scale(2, 2 << 30, 524_288), (2, 2 << 30));
        // 1 KiB blocks at 512 KiB: each sampled with p = 1 - e^(-1/512).
        let (c, b) = scale(10, 10_240, 524_288);
        assert!((c as f64 / 5120.5 - 1.0).abs() < 0.01, "{c}");
        assert!((b as f64 / (5120.5 * 1024.0) - 1.0).abs() < 0.01, "{b}");
    }
}
