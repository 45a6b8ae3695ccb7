//! Numbers and tokens as the page writes them: precision by size, a real minus sign, tokens
//! with their white space made visible, counts with their nouns.

use crate::sign::real_minus;

/// A number for people, with the precision it needs: 3 decimals from 0.01 up, 3 significant
/// digits below (so a KL of 0.00042 does not read 0.000), an exponent below 10⁻⁵; a real minus
/// sign, and never "−0".
pub fn num(x: f32) -> String {
    let a = x.abs();
    let s = if a == 0.0 || !a.is_finite() || a >= 0.01 {
        format!("{x:.3}")
    } else if a >= 1e-5 {
        let decimals = (2 - a.log10().floor() as i32).clamp(3, 7) as usize;
        format!("{x:.decimals$}")
    } else {
        format!("{x:.2e}")
    };
    real_minus(s)
}

/// `x` with `decimals` decimals, with [`num`]'s sign rules.
pub fn fixed(x: f32, decimals: usize) -> String {
    real_minus(format!("{x:.decimals$}"))
}

/// `x` as an operand of arithmetic whose result is printed as `result`: with at least as many
/// decimals as that result (and never fewer than [`num`] gives it), so that a student who works
/// the arithmetic from the printed operands gets the printed result. `−0.05 × 0.012` would give
/// −0.0006 against a printed −0.000617; `−0.05 × 0.01234` gives it.
pub fn operand_for(x: f32, result: &str) -> String {
    operand_to(x, decimals_for(result))
}

/// A setting as an operand of arithmetic printed as `result`: as typed ("0.05") when that is
/// exact to [`operand_for`]'s digits or fewer, otherwise to those digits (an adaptive β of
/// 0.06381406 reads 0.06381 where the result has 5 decimals).
pub fn setting_operand(x: f32, result: &str) -> String {
    // f32's Display writes no exponent: "0.000005", the shortest digits that read back as x.
    let exact = real_minus(x.to_string());
    let rounded = operand_for(x, result);
    if decimals(&exact) <= decimals(&rounded) {
        exact
    } else {
        rounded
    }
}

/// The most decimals an operand is printed with: about where an f32 near 10⁻³ stops.
pub const OPERAND_DECIMALS: usize = 10;

/// `x` with at least `decimals` decimals (at most [`OPERAND_DECIMALS`]) and 3 significant
/// digits, or as [`num`] prints it where that has more; one printed with an exponent keeps it,
/// its mantissa getting the digits down to that decimal.
pub fn operand_to(x: f32, decimals: usize) -> String {
    // At least 3 significant digits: 0.0186, not num's 0.019.
    let decimals = if (0.01..0.1).contains(&x.abs()) {
        decimals.max(4)
    } else {
        decimals
    }
    .min(OPERAND_DECIMALS);
    let own = num(x);
    if own.contains('e') {
        with_exponent(x, (decimals as i32 + exponent(x)).max(2) as usize)
    } else if self::decimals(&own) >= decimals {
        own
    } else {
        fixed(x, decimals)
    }
}

/// `x` as [`num`] prints it, but to no decimal past [`OPERAND_DECIMALS`]: the result of a
/// difference of two operands, which cannot be given finer than they are (a KL of −7.45e−9
/// between two log-probabilities near −0.001 reads −7.5e−9).
pub fn num_within_operands(x: f32) -> String {
    let own = num(x);
    if decimals_for(&own) <= OPERAND_DECIMALS {
        return own;
    }
    match OPERAND_DECIMALS as i32 + exponent(x) {
        digits if digits >= 0 => with_exponent(x, digits as usize),
        _ => fixed(x, OPERAND_DECIMALS),
    }
}

/// The power of ten of `x`'s leading digit: −9 for 7.45e−9.
fn exponent(x: f32) -> i32 {
    x.abs().log10().floor() as i32
}

/// `x` with an exponent and `digits` digits after its mantissa's point, with [`num`]'s signs.
fn with_exponent(x: f32, digits: usize) -> String {
    real_minus(format!("{x:.digits$e}"))
}

/// The decimals the operands of a result printed as `result` need to reach its last digit:
/// "0.123" needs 3, "3.47e−7" needs 9.
pub fn decimals_for(result: &str) -> usize {
    match result.split_once('e') {
        Some((mantissa, exponent)) => {
            let exponent: i32 = exponent.replace('−', "-").parse().unwrap_or(0);
            (decimals(mantissa) as i32 - exponent).max(0) as usize
        }
        None => decimals(result),
    }
}

/// How many decimals a printed number has.
fn decimals(printed: &str) -> usize {
    let mantissa = printed.split('e').next().unwrap_or(printed);
    mantissa.split_once('.').map_or(0, |(_, d)| d.len())
}

/// A number as an exponent to two significant digits, "3e−5" or "1.5e−4" (0 as "0"), with a
/// real minus sign.
pub fn sci(x: f64) -> String {
    if x == 0.0 {
        return "0".into();
    }
    real_minus(format!("{x:.1e}").replacen(".0e", "e", 1))
}

/// `lo < x < hi` held on one line (no-break spaces around each `<`).
pub fn between(lo: &str, x: &str, hi: &str) -> String {
    format!("{lo}\u{a0}<\u{a0}{x}\u{a0}<\u{a0}{hi}")
}

/// A token as text, spaces made visible.
pub fn show_token(text: &str) -> String {
    match text {
        "\n" => "⏎".into(),
        t => t.replace(' ', "·"),
    }
}

/// `n` and the word for it: "1 token", "3 tokens".
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The word that agrees with a count: `agree(1, "has", "have")` is "has", as in "1 of 240
/// tokens has"; "3 of 240 tokens have".
pub fn agree(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

/// A clip band's edges as the page writes them: at least two decimals ("0.80", "1.28") and as
/// many as give each edge in full (ε = 0.123 gives "0.877" and "1.123", so a ratio of 1.121 is
/// not read as past "1.12"; ε = 0.004 gives "0.996", not "1.00"), with a real minus sign.
pub fn band_edges(lo: f32, hi: f32) -> (String, String) {
    // In full: the printed edge reads back as the same f32, up to the rounding that computed it
    // (1 − 0.123 is 0.87699997 in f32).
    let exact = |e: f32, d: usize| {
        !e.is_finite()
            || fixed(e, d)
                .replace('−', "-")
                .parse::<f32>()
                .is_ok_and(|back| (back - e).abs() <= f32::EPSILON * e.abs().max(1.0))
    };
    let decimals = (2..=8).find(|&d| exact(lo, d) && exact(hi, d)).unwrap_or(8);
    (fixed(lo, decimals), fixed(hi, decimals))
}

/// A ratio beside the clip band `[lo, hi]`: at least 3 decimals, and as many more as put the
/// printed ratio on the same side of each printed edge ([`band_edges`]) as the ratio itself, so
/// that 1.0003 beside [0.9999, 1.0001] is not printed 1.000, inside it.
pub fn ratio_beside(r: f32, lo: f32, hi: f32) -> String {
    let (printed_lo, printed_hi) = band_edges(lo, hi);
    let read = |s: &str| s.replace('−', "-").parse::<f64>().unwrap_or(f64::NAN);
    let (plo, phi) = (read(&printed_lo), read(&printed_hi));
    let same = |d: usize| {
        let x = read(&fixed(r, d));
        x.partial_cmp(&plo) == r.partial_cmp(&lo) && x.partial_cmp(&phi) == r.partial_cmp(&hi)
    };
    let decimals = (3..=8).find(|&d| same(d)).unwrap_or(8);
    fixed(r, decimals)
}

/// A clip band as the page writes it, "[0.80, 1.20]" ([`band_edges`]).
pub fn band(lo: f32, hi: f32) -> String {
    let (lo, hi) = band_edges(lo, hi);
    format!("[{lo}, {hi}]")
}

/// A number inside a formula whose result is printed as `result` ([`operand_for`]'s digits):
/// negative ones in parentheses, so `− (−0.5)` reads right.
pub(super) fn operand(x: f32, result: &str) -> String {
    fenced(operand_for(x, result))
}

/// A printed number, in parentheses when it is negative.
pub fn fenced(s: String) -> String {
    if s.starts_with('−') {
        format!("({s})")
    } else {
        s
    }
}

/// The adaptive KL controller's step written out, `β × (1 ± |error| × n / horizon) = β'`, with β
/// before and after to as many decimals as tell them apart (3 to 8), so that a step that lowers β
/// never reads `0.050 × (…) = 0.050`.
pub fn beta_step(before: f64, error: f64, n: usize, horizon: f64, after: f64) -> String {
    let decimals = (3..=8)
        .find(|&d| format!("{before:.d$}") != format!("{after:.d$}"))
        .unwrap_or(3);
    let sign = if error < 0.0 { "−" } else { "+" };
    let horizon = if horizon.fract() == 0.0 {
        format!("{horizon:.0}")
    } else {
        num(horizon as f32)
    };
    format!(
        "{before:.decimals$} × (1 {sign} {} × {n} / {horizon}) = {after:.decimals$}",
        num(error.abs() as f32)
    )
}

/// A response cut into plain text and GSM8K's calculator notes `<<13-2=11>>` (`true`), which the
/// page keeps whole on one line: a line broken after the `-` in one reads as two numbers.
pub fn calculator_notes(text: &str) -> Vec<(bool, &str)> {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("<<") {
        let Some(len) = rest[start..].find(">>") else {
            break;
        };
        let end = start + len + 2;
        if start > 0 {
            parts.push((false, &rest[..start]));
        }
        parts.push((true, &rest[start..end]));
        rest = &rest[end..];
    }
    if !rest.is_empty() {
        parts.push((false, rest));
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::num;

    #[test]
    fn numbers_get_the_precision_they_need() {
        assert_eq!(num(1.23456), "1.235");
        assert_eq!(num(-0.5), "−0.500");
        assert_eq!(num(0.00042), "0.000420");
        assert_eq!(num(-0.0031), "−0.00310");
        assert_eq!(num(-2e-7), "−2.00e−7");
        assert_eq!(num(-0.0), "0.000");
        assert_eq!(num(0.0), "0.000");
    }

    #[test]
    fn a_beta_step_shows_the_digits_that_change() {
        // 0.05 × (1 − 0.2 × 3 / 64) = 0.04953125: equal at 3 decimals, apart at 4.
        let after = 0.05 * (1.0 - 0.2 * 3.0 / 64.0);
        assert_eq!(
            super::beta_step(0.05, -0.2, 3, 64.0, after),
            "0.0500 × (1 − 0.200 × 3 / 64) = 0.0495"
        );
        // 0.1 × (1 + 0.2 × 16 / 10000) = 0.100032: apart at 5 decimals.
        assert_eq!(
            super::beta_step(0.1, 0.2, 16, 10_000.0, 0.100_032),
            "0.10000 × (1 + 0.200 × 16 / 10000) = 0.10003"
        );
        // A step that changes nothing keeps 3 decimals.
        assert_eq!(
            super::beta_step(0.05, 0.0, 4, 64.0, 0.05),
            "0.050 × (1 + 0.000 × 4 / 64) = 0.050"
        );
    }

    /// A ratio beside a band is printed on the side of each edge it lies on.
    #[test]
    fn ratios_beside_a_band_keep_their_side_of_each_edge() {
        use super::ratio_beside as beside;
        // 3 decimals where they do: 1.3 beside [0.80, 1.20].
        assert_eq!(beside(1.3, 0.8, 1.2), "1.300");
        assert_eq!(beside(1.0, 0.8, 1.2), "1.000");
        // 3 decimals would put these inside the band, or on its edge.
        assert_eq!(beside(1.0003, 0.9999, 1.0001), "1.0003");
        assert_eq!(beside(1.0012, 0.999, 1.001), "1.0012");
        assert_eq!(beside(0.99985, 0.9999, 1.0001), "0.9998");
        // Inside a narrow band, inside when printed: 1.00005 beside [0.9999, 1.0001].
        assert_eq!(beside(1.00005, 0.9999, 1.0001), "1.000");
        // 1.2004 is past 1.20 (as f32): not "1.200", the edge itself.
        assert_eq!(beside(1.2004, 0.8, 1.2), "1.2004");
    }

    #[test]
    fn bands_keep_their_edges_off_1() {
        assert_eq!(super::band(0.8, 1.2), "[0.80, 1.20]");
        assert_eq!(super::band(0.8, 1.28), "[0.80, 1.28]");
        // Two decimals would print [1.00, 1.00], or [0.88, 1.12] for ε = 0.123.
        assert_eq!(super::band(0.996, 1.004), "[0.996, 1.004]");
        assert_eq!(super::band(0.9999, 1.0001), "[0.9999, 1.0001]");
        assert_eq!(super::band(1.0 - 0.123, 1.0 + 0.123), "[0.877, 1.123]");
        assert_eq!(
            super::band(1.0 - 5e-7, 1.0 + 5e-7),
            "[0.9999995, 1.0000005]"
        );
        // ε = 0 is a band of width 0, and ε past 1 a negative lower edge with a real minus.
        assert_eq!(super::band(1.0, 1.0), "[1.00, 1.00]");
        assert_eq!(super::band(-9.0, 11.0), "[−9.00, 11.00]");
        assert_eq!(super::band_edges(0.8, 1.2), ("0.80".into(), "1.20".into()));
    }

    #[test]
    fn words_agree_with_their_count() {
        for (n, word) in [(0, "have"), (1, "has"), (2, "have")] {
            assert_eq!(super::agree(n, "has", "have"), word);
        }
        assert_eq!(super::count(1, "epoch", "epochs"), "1 epoch");
    }

    #[test]
    fn settings_print_as_typed_unless_rounded() {
        assert_eq!(super::setting_operand(0.05, "−0.000617"), "0.05");
        assert_eq!(super::setting_operand(0.063_814_06, "−0.00123"), "0.06381");
        assert_eq!(super::setting_operand(0.0, "0.000"), "0");
    }

    #[test]
    fn learning_rates_keep_two_digits() {
        assert_eq!(super::sci(3e-5), "3e−5");
        assert_eq!(super::sci(1.5e-4), "1.5e−4");
        assert_eq!(super::sci(1e-3 * 10.0), "1e−2");
        assert_eq!(super::sci(0.0), "0");
    }
}
