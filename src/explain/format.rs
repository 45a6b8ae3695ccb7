//! Numbers and tokens as the page writes them: precision by size, a real minus sign, tokens
//! with their white space made visible, counts with their nouns.

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
    signed(s)
}

/// `x` with `decimals` decimals, with [`num`]'s sign rules.
pub fn fixed(x: f32, decimals: usize) -> String {
    signed(format!("{x:.decimals$}"))
}

/// A formatted number with a real minus sign, and never "−0".
fn signed(s: String) -> String {
    if s.starts_with('-') && s[1..].chars().all(|c| c == '0' || c == '.') {
        s[1..].to_string()
    } else {
        s.replace('-', "−")
    }
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

/// A number inside a formula: negative ones in parentheses, so `− (−0.5)` reads right.
pub(super) fn operand(x: f32) -> String {
    if num(x).starts_with('−') {
        format!("({})", num(x))
    } else {
        num(x)
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
}
