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
}
