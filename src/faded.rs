//! The reverse GAE sweep as a faded worked example, shared by the page's GAE stage and
//! `ppo-lens gae --quiz`.
//!
//! Pass 1 shows the whole sweep, worked. Each later pass leaves one more of the sweep's last
//! steps (the advantages computed last, at the first tokens) for the student to fill in, until
//! the last pass leaves them all (Renkl, Atkinson and Große 2004: fade the worked steps from the
//! end). An answer is checked as a step: against δ_t + γλ · A_{t+1} with the A_{t+1} it was built
//! on, the student's own where they computed it too, so that a slip is marked once and not again
//! in every step after it; a miss gets a hint that points at the two cells A_t is made of.

use crate::ppo::gae::{GaeParams, GaeStep, GaeTrace};

/// How close an answer must be to its step's A_t. The step is worked from δ_t and γλ shown to 4
/// decimals (off by up to 0.00005 each, times numbers below 1 here) and from the A_{t+1} it is
/// checked with; rounding the answer to 3 decimals adds up to 0.0005. So a unit of the third
/// decimal. (Checked against the batch's A_t instead, a chain of answers each rounded to 3
/// decimals could drift by 0.0005 / (1 − γλ), 0.01 at γλ = 0.95, and careful work be marked
/// wrong.)
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

/// The A_t an answer for `step` should give: δ_t + γλ · A_{t+1}, with `own_next` as A_{t+1}
/// where the student computed that too (None: the batch's, which the table shows).
pub fn expected(step: &GaeStep, params: GaeParams, own_next: Option<f32>) -> f32 {
    match own_next {
        // The mask is 0 or 1: past the last real token nothing is built on.
        Some(next) if step.next_mask != 0.0 => step.delta + params.gamma * params.lam * next,
        _ => step.advantage,
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

/// Checks `typed` as the student's A_t for `step`: right within [`TOLERANCE`] of `expected`
/// ([`expected`]: from their own A_{t+1} where they computed it) or of the batch's A_t. A real
/// minus sign and a decimal comma are read; `delta` as for [`hint`].
pub fn check(step: &GaeStep, expected: f32, typed: &str, delta: &str) -> Check {
    let near = |x: f32, a: f32| (x - a).abs() <= TOLERANCE;
    match crate::predict::parse_number(typed) {
        Some(x) if near(x, expected) || near(x, step.advantage) => Check::Right,
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
        let batch = |typed: &str, delta: &str| check(a0, a0.advantage, typed, delta);
        assert_eq!(batch("0.690", "δ"), Check::Right);
        assert_eq!(batch("0,69", "δ"), Check::Right);
        assert_eq!(batch("0.6905", "δ"), Check::Right);
        assert_eq!(
            batch("0.692", "δ"),
            Check::Wrong(
                "A_0 is made of δ_0 (row t = 0, column δ_t) and A_1 (row t = 1, column A_t, or \
                 your answer just before this one)."
                    .into()
            )
        );
        assert!(matches!(batch("zero", "δ"), Check::NotANumber(_)));
        let a2 = trace.steps.iter().find(|s| s.t == 2).unwrap();
        assert_eq!(check(a2, a2.advantage, "−1", "δ"), Check::Right);
        assert!(
            matches!(check(a2, a2.advantage, "1", "delta"), Check::Wrong(h) if h.starts_with("Token 2 is the last real one: nothing comes after it, so A_2 is delta_2"))
        );
    }

    /// A step is checked with the A_{t+1} the student built it on: after a slip in A_1
    /// (−0.665 for −0.655), A_0 = 1.25 + 0.855 × (−0.665) = 0.681425 is the right step; the
    /// batch's A_0 is right too; the last token has no A_{t+1} to build on.
    #[test]
    fn a_step_is_checked_with_the_students_own_next_advantage() {
        let trace = worked();
        let params = trace.params;
        let a0 = trace.steps.iter().find(|s| s.t == 0).unwrap();
        let own = expected(a0, params, Some(-0.665));
        assert!((own - 0.681425).abs() < 1e-6, "{own}");
        assert_eq!(expected(a0, params, None), a0.advantage);
        assert_eq!(check(a0, own, "0.681", "δ"), Check::Right);
        assert_eq!(check(a0, own, "0.690", "δ"), Check::Right);
        assert!(matches!(check(a0, own, "0.686", "δ"), Check::Wrong(_)));
        let a2 = trace.steps.iter().find(|s| s.t == 2).unwrap();
        assert_eq!(expected(a2, params, Some(5.0)), a2.advantage);
    }

    /// A student who cuts every answer to 3 decimals and carries it to the next step, on a long
    /// sweep (γλ = 0.95, one reward at the end): checked step by step every answer is right;
    /// checked against the batch's A_t, the cut builds up past the tolerance.
    #[test]
    fn a_chain_of_rounded_answers_is_right_step_by_step() {
        let n = 60;
        let mut rewards = vec![0.0; n];
        rewards[n - 1] = 1.0;
        let values: Vec<f32> = (0..n).map(|t| 0.3 + 0.0137 * (t % 7) as f32).collect();
        let params = GaeParams::new(1.0, 0.95).unwrap();
        let trace = gae_ref(&rewards, &values, &vec![1.0; n], params);
        let (mut own_next, mut drift) = (None, 0f32);
        for step in blank_steps(&trace, n) {
            let own = expected(step, params, own_next);
            let cut = (own * 1000.0).floor() / 1000.0;
            assert_eq!(
                check(step, own, &format!("{cut:.3}"), "δ"),
                Check::Right,
                "t = {}",
                step.t
            );
            drift = drift.max((cut - step.advantage).abs());
            own_next = Some(cut);
        }
        assert!(drift > 2.0 * TOLERANCE, "{drift}");
    }
}
