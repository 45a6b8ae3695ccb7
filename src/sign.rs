//! The sign of a number as the page and the trainer's log write it: a real minus sign (U+2212,
//! not the hyphen Rust prints), and never "−0" or "−0.00" for a negative number that rounds to
//! zero. `explain::format` and `health` both write numbers this way; `health` cannot import
//! `explain` (explain sits above lab, which sits above health), so the rule lives here, below both.

/// `s`, a number Rust formatted, with a real minus sign, and without its sign where every digit
/// printed is 0.
pub fn real_minus(s: String) -> String {
    match s.strip_prefix('-') {
        Some(rest) if rest.chars().all(|c| c == '0' || c == '.') => rest.to_string(),
        _ => s.replace('-', "−"),
    }
}

#[cfg(test)]
mod tests {
    use super::real_minus;

    #[test]
    fn minus_is_real_and_never_on_zero() {
        assert_eq!(real_minus(format!("{:.3}", -0.0004f64)), "0.000");
        assert_eq!(real_minus(format!("{:.2}", -0.25f64)), "−0.25");
        assert_eq!(real_minus(format!("{:.2}", 0.25f64)), "0.25");
        assert_eq!(real_minus((-0.0f32).to_string()), "0");
        // An exponent's sign is a minus too.
        assert_eq!(real_minus(format!("{:.1e}", -1.5e-5f64)), "−1.5e−5");
    }
}
