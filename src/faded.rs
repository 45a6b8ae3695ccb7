//! The reverse GAE sweep as a faded worked example, shared by the page's GAE stage and
//! `ppo-lens gae --quiz`.
//!
//! Pass 1 shows the whole sweep, worked. Each later pass leaves one more of the sweep's last
//! steps (the advantages computed last, at the first tokens) for the student to fill in, until
//! the last pass leaves them all (Renkl, Atkinson and Große 2004: fade the worked steps from the
//! end). An answer is checked against the scalar trace; a miss gets a hint that points at the
//! two cells A_t is made of.

use crate::ppo::gae::{GaeStep, GaeTrace};

/// How close an answer must be. The student's A_t is built on numbers shown to 4 decimals and on
/// their own A_(t+1), which they may have rounded to 3 (off by up to 0.0005, then times γλ ≤ 1);
/// rounding their own A_t to 3 decimals adds as much again. So a unit of the third decimal.
pub const TOLERANCE: f32 = 1e-3;

/// How many passes the sweep of `trace` has: the worked one, then one per step.
pub fn passes(trace: &GaeTrace) -> usize {
    trace.steps.len() + 1
}

/// Whether step `i` of the sweep (in the order computed, last token first) is left to the
/// student at pass `pass` (0: the worked pass, nothing left).
pub fn is_blank(trace: &GaeTrace, pass: usize, i: usize) -> bool {
    i + pass >= trace.steps.len()
}

/// The steps whose A_t pass `pass` leaves to the student, in the order the sweep computes them.
pub fn blank_steps(trace: &GaeTrace, pass: usize) -> &[GaeStep] {
    let n = trace.steps.len();
    &trace.steps[n - pass.min(n)..]
}

/// Their tokens `t`.
pub fn blanks(trace: &GaeTrace, pass: usize) -> Vec<usize> {
    blank_steps(trace, pass).iter().map(|s| s.t).collect()
}

/// Where the two numbers A_t is made of are, in the sweep's table; `delta` is how the table
/// writes δ (the page "δ", the terminal "delta").
pub fn hint(step: &GaeStep, delta: &str) -> String {
    let t = step.t;
    if step.next_mask == 0.0 {
        format!(
            "Token {t} is the last real one: nothing comes after it, so A_{t} is {delta}_{t} \
             (row t = {t}, column {delta}_t)."
        )
    } else {
        format!(
            "A_{t} is made of {delta}_{t} (row t = {t}, column {delta}_t) and A_{n} (row t = {n}, \
             column A_t, or your answer just before this one).",
            n = t + 1
        )
    }
}

/// What an answer typed for A_t was.
#[derive(Clone, Debug, PartialEq)]
pub enum Check {
    Right,
    /// A number, off by more than [`TOLERANCE`]; the hint.
    Wrong(String),
    /// Not a number; the hint.
    NotANumber(String),
}

impl Check {
    pub fn key(&self) -> &'static str {
        match self {
            Check::Right => "right",
            Check::Wrong(_) => "wrong",
            Check::NotANumber(_) => "not-a-number",
        }
    }
}

/// Checks `typed` as the student's A_t for `step` (a real minus sign and a decimal comma read);
/// `delta` as for [`hint`].
pub fn check(step: &GaeStep, typed: &str, delta: &str) -> Check {
    match crate::predict::parse_number(typed) {
        Some(x) if (x - step.advantage).abs() <= TOLERANCE => Check::Right,
        Some(_) => Check::Wrong(hint(step, delta)),
        None => Check::NotANumber(hint(step, delta)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ppo::gae::{GaeParams, gae_ref};

    /// The worked example: r = 1, 0, 2; V = 2, 2.5, 3; γ 0.9, λ 0.95. By hand: A_2 = δ_2 = −1;
    /// A_1 = 0.2 + 0.855 · (−1) = −0.655; A_0 = 1.25 + 0.855 · (−0.655) = 0.689975.
    fn worked() -> GaeTrace {
        gae_ref(
            &[1.0, 0.0, 2.0],
            &[2.0, 2.5, 3.0],
            &[1.0, 1.0, 1.0],
            GaeParams::new(0.9, 0.95).unwrap(),
        )
    }

    #[test]
    fn blanks_grow_from_the_sweeps_last_step() {
        let trace = worked();
        assert_eq!(passes(&trace), 4);
        assert_eq!(blanks(&trace, 0), Vec::<usize>::new());
        assert_eq!(blanks(&trace, 1), [0]);
        assert_eq!(blanks(&trace, 2), [1, 0]);
        assert_eq!(blanks(&trace, 3), [2, 1, 0]);
        assert_eq!(blanks(&trace, 9), [2, 1, 0]);
        // Steps are in sweep order: step 2 is t = 0.
        assert!(is_blank(&trace, 1, 2) && !is_blank(&trace, 1, 1));
    }

    #[test]
    fn answers_are_right_within_a_unit_of_the_third_decimal() {
        let trace = worked();
        let a0 = trace.steps.iter().find(|s| s.t == 0).unwrap();
        assert_eq!(check(a0, "0.690", "δ"), Check::Right);
        assert_eq!(check(a0, "0,69", "δ"), Check::Right);
        assert_eq!(check(a0, "0.6905", "δ"), Check::Right);
        assert_eq!(
            check(a0, "0.692", "δ"),
            Check::Wrong(
                "A_0 is made of δ_0 (row t = 0, column δ_t) and A_1 (row t = 1, column A_t, or \
                 your answer just before this one)."
                    .into()
            )
        );
        assert!(matches!(check(a0, "zero", "δ"), Check::NotANumber(_)));
        let a2 = trace.steps.iter().find(|s| s.t == 2).unwrap();
        assert_eq!(check(a2, "−1", "δ"), Check::Right);
        assert!(
            matches!(check(a2, "1", "delta"), Check::Wrong(h) if h.starts_with("Token 2 is the last real one: nothing comes after it, so A_2 is delta_2"))
        );
    }
}
