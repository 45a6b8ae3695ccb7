//! `e^x` in plain arithmetic that the compiler turns into SIMD (the C library's `expf` is one
//! value per call), and the element-wise loops that use it, compiled for AVX-512 or AVX2 where
//! the CPU has them (chosen at run time, like `model::few_rows`); in the page, plain wasm code.
//!
//! `e^x = 2^n e^r` with `n = round(x / ln 2)` and `r = x - n ln 2` (`ln 2` in two parts, so
//! that `r` is exact), `|r| <= ln 2 / 2`, and `e^r` from its Taylor series to `r^6`: the term left
//! out is below `0.35^7 / 7! = 1.3e-7` of the result, about one unit in the last place.
//! Below -87.3 (where `e^x` leaves f32's normal range) the result is 0; above 88 it is `e^88`;
//! NaN stays NaN.

const LOG2_E: f32 = std::f32::consts::LOG2_E;
/// `ln 2` split in two: the first part has few enough bits that `n * LN2_HI` is exact.
const LN2_HI: f32 = 0.693_145_75;
const LN2_LO: f32 = 1.428_606_8e-6;
/// `1.5 * 2^23`: adding it rounds an f32 of magnitude below 2^22 to an integer.
const ROUND: f32 = 12_582_912.0;
const LOWEST: f32 = -87.336_55;
const HIGHEST: f32 = 88.0;

/// `e^x` (see the module's notes), inlined into the loops that call it.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let clamped = x.clamp(LOWEST, HIGHEST);
    let shifted = clamped * LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = clamped - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // The integer n sits in the low bits of `shifted`; 2^n is its biased exponent.
    let n_int = shifted.to_bits() as i32 - ROUND.to_bits() as i32;
    let scale = f32::from_bits(((n_int + 127) as u32) << 23);
    if x < LOWEST { 0.0 } else { p * scale }
}

/// Compiles `$body` (a block over the parameters) three times: for AVX-512, for AVX2 with FMA,
/// and plain; `$name` calls the widest the CPU has.
macro_rules! simd_fn {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                unsafe fn avx512($($arg: $ty),*) $(-> $ret)? { body($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? { body($($arg),*) }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has AVX-512F.
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has AVX2 and FMA.
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}
pub(crate) use simd_fn;

simd_fn! {
    /// The largest value of `z` (NaN-free input; -inf when empty).
    pub fn max(z: &[f32]) -> f32 {
        let mut lanes = [f32::NEG_INFINITY; 16];
        let mut chunks = z.chunks_exact(16);
        for chunk in &mut chunks {
            for (m, &v) in lanes.iter_mut().zip(chunk) {
                *m = if v > *m { v } else { *m };
            }
        }
        let tail = chunks.remainder().iter().copied();
        lanes.into_iter().chain(tail).fold(f32::NEG_INFINITY, f32::max)
    }
}

simd_fn! {
    /// `(sum_i e^(z_i - shift), sum_i e^(z_i - shift) z_i)`, the sums in f64.
    pub fn exp_sums(z: &[f32], shift: f32) -> (f64, f64) {
        // 16 f32 sums over each block of 256 values, then added into f64: the f32 loop compiles
        // to SIMD (summing each value straight into f64 compiled to one value at a time, about
        // 10 ns a value), and no f32 sum takes more than 16 terms.
        let (mut sum, mut weight) = (0f64, 0f64);
        for block in z.chunks(256) {
            let (mut sums, mut weighted) = ([0f32; 16], [0f32; 16]);
            let mut chunks = block.chunks_exact(16);
            for chunk in &mut chunks {
                for l in 0..16 {
                    let e = exp(chunk[l] - shift);
                    sums[l] += e;
                    weighted[l] += e * chunk[l];
                }
            }
            for (l, &v) in chunks.remainder().iter().enumerate() {
                let e = exp(v - shift);
                sums[l] += e;
                weighted[l] += e * v;
            }
            sum += sums.iter().map(|&s| s as f64).sum::<f64>();
            weight += weighted.iter().map(|&w| w as f64).sum::<f64>();
        }
        (sum, weight)
    }
}

simd_fn! {
    /// `out_i = e^(z_i - shift)` for every value (`out` as long as `z`), and their sum in f64
    /// (summed as in [`exp_sums`]).
    pub fn exp_into(out: &mut [f32], z: &[f32], shift: f32) -> f64 {
        assert_eq!(out.len(), z.len(), "exp_into: out and z differ in length");
        let mut sum = 0f64;
        for (out, block) in out.chunks_mut(256).zip(z.chunks(256)) {
            let mut sums = [0f32; 16];
            let mut outs = out.chunks_exact_mut(16);
            let mut chunks = block.chunks_exact(16);
            for (o, chunk) in (&mut outs).zip(&mut chunks) {
                for l in 0..16 {
                    let e = exp(chunk[l] - shift);
                    o[l] = e;
                    sums[l] += e;
                }
            }
            let tail = outs.into_remainder().iter_mut().zip(chunks.remainder());
            for (l, (o, &v)) in tail.enumerate() {
                let e = exp(v - shift);
                *o = e;
                sums[l] += e;
            }
            sum += sums.iter().map(|&s| s as f64).sum::<f64>();
        }
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against f64's exp over the whole useful range: within 3e-7 of the value (about 2 units in
    /// the last place).
    #[test]
    fn exp_is_within_a_few_ulp() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = (x as f64).exp();
            let got = exp(x) as f64;
            worst = worst.max((got - want).abs() / want);
            x += 0.0137;
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert_eq!(exp(0.0), 1.0);
        assert!((exp(1.0) - std::f32::consts::E).abs() < 3e-7);
    }

    #[test]
    fn exp_at_the_edges() {
        assert_eq!(exp(-88.0), 0.0);
        assert_eq!(exp(-1.0e9), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert!(exp(f32::NAN).is_nan());
        let top = exp(1.0e9);
        assert!(top.is_finite() && (top as f64 - 88f64.exp()).abs() / 88f64.exp() < 3e-7);
        // Just above the flush: still the right value.
        let x = -87.3f32;
        assert!(((exp(x) as f64) - (x as f64).exp()).abs() / (x as f64).exp() < 1e-6);
    }

    #[test]
    fn max_and_sums_match_plain_loops() {
        let mut rng = crate::rng::Rng::new(9);
        for len in [0, 1, 7, 8, 17, 1003, 4099] {
            let z: Vec<f32> = (0..len).map(|_| rng.unit() as f32 * 20.0 - 10.0).collect();
            let want_max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(max(&z), want_max, "len {len}");
            let (s, w) = exp_sums(&z, 1.5);
            let want_s: f64 = z.iter().map(|&v| (v as f64 - 1.5).exp()).sum();
            let want_w: f64 = z.iter().map(|&v| (v as f64 - 1.5).exp() * v as f64).sum();
            assert!(
                (s - want_s).abs() <= 1e-6 * want_s.abs().max(1.0),
                "len {len}: {s} vs {want_s}"
            );
            assert!(
                (w - want_w).abs() <= 1e-6 * want_w.abs().max(1.0),
                "len {len}: {w} vs {want_w}"
            );
            let mut out = vec![f32::NAN; len];
            assert_eq!(exp_into(&mut out, &z, 1.5), s, "len {len}");
            for (o, &v) in out.iter().zip(&z) {
                // exp of the f32 difference, which is what was asked for.
                let want = ((v - 1.5) as f64).exp();
                assert!(((*o as f64) - want).abs() <= 3e-7 * want, "{o} vs {want}");
            }
        }
    }
}
