//! `ppo-lens gae --quiz`: the reverse sweep of one sequence as a faded worked example.
//!
//! Pass 1 shows the whole sweep, worked. Each later pass blanks one more of its last steps (the
//! advantages computed last, at the first tokens) for the student to type in, in the order the
//! sweep computes them ([`crate::faded`], shared with the page's GAE stage). Each answer is
//! checked against the scalar trace to a unit of the third decimal; a miss gets a hint that
//! points at the two cells A_t is made of, then the arithmetic. It ends with the tally.

use std::fmt::Write as _;
use std::io::{BufRead, Write};

use anyhow::{Result, bail};

use crate::faded::{self, Check};
use crate::ppo::gae::{GaeParams, GaeTrace, gae_ref};

/// The quiz's tally.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub right: usize,
    pub asked: usize,
    pub skipped: usize,
}

/// Runs the quiz on the first sequence with a real token, reading answers from `input` (one
/// per line; an empty line skips) and writing to `out`, which repeats each answer when `echo`
/// (input from a file or a pipe, not typed). Ends early, with the tally so far, when `input`
/// ends.
pub fn gae_quiz(
    rewards: &[Vec<f32>],
    values: &[Vec<f32>],
    mask: &[Vec<f32>],
    params: GaeParams,
    mut input: impl BufRead,
    mut out: impl Write,
    echo: bool,
) -> Result<Tally> {
    let Some((row, trace)) = rewards
        .iter()
        .zip(values)
        .zip(mask)
        .map(|((r, v), m)| gae_ref(r, v, m, params))
        .enumerate()
        .find(|(_, trace)| !trace.steps.is_empty())
    else {
        bail!("no sequence has a real token (mask 1) to quiz on");
    };
    let n = trace.steps.len();
    writeln!(
        out,
        "GAE quiz on sequence {row} ({n} real token{}; gamma = {}, lambda = {}).\n\
         The sweep runs from the last real token back to the first:\n  \
         A_t = delta_t + gamma * lambda * m_(t+1) * A_(t+1)\n\
         Pass 1 is worked; each pass after it leaves one more of the sweep's last steps to you.\n\
         Type each A_t to 3 decimals; an empty line skips it.",
        if n == 1 { "" } else { "s" },
        params.gamma,
        params.lam
    )?;
    let mut tally = Tally::default();
    for blanks in 0..faded::passes(&trace) {
        writeln!(
            out,
            "\nPass {} of {}: {}",
            blanks + 1,
            n + 1,
            match blanks {
                0 => "the whole sweep, worked".to_string(),
                1 => format!("you compute A_{}", trace.steps[n - 1].t),
                _ => format!(
                    "you compute A_{} down to A_{}",
                    trace.steps[n - blanks].t,
                    trace.steps[n - 1].t
                ),
            }
        )?;
        out.write_all(sweep_table(&trace, blanks, false).as_bytes())?;
        if blanks == 0 {
            for step in &trace.steps {
                writeln!(out, "  {}", step.advantage_formula(params))?;
            }
            continue;
        }
        // The student's last answer, as the A_{t+1} their next step may build on.
        let mut own_next: Option<(usize, f32)> = None;
        for step in faded::blank_steps(&trace, blanks) {
            write!(out, "A_{} = ", step.t)?;
            out.flush()?;
            let mut line = String::new();
            if input.read_line(&mut line)? == 0 {
                writeln!(out, "\n(no more answers)")?;
                return finish(tally, out);
            }
            let answer = line.trim();
            if echo {
                writeln!(out, "{answer}")?;
            }
            let own = own_next
                .take()
                .filter(|&(t, _)| t == step.t + 1)
                .map(|(_, a)| a);
            own_next = crate::predict::parse_number(answer).map(|a| (step.t, a));
            if answer.is_empty() {
                tally.skipped += 1;
                writeln!(out, "  skipped: {}", step.advantage_formula(params))?;
                continue;
            }
            tally.asked += 1;
            // Checked as a step from the student's own A_{t+1} where they answered it (a slip is
            // marked once), or against the batch's A_t, which the worked step after each answer
            // shows.
            let expected = faded::expected(step, params, own);
            match faded::check(step, expected, answer, "delta") {
                Check::Right => {
                    tally.right += 1;
                    writeln!(out, "  right: {}", step.advantage_formula(params))?;
                }
                Check::Wrong(hint) => writeln!(
                    out,
                    "  not quite: you wrote {answer}. {hint}\n  {}",
                    step.advantage_formula(params)
                )?,
                Check::NotANumber(hint) => writeln!(
                    out,
                    "  `{answer}` is not a number. {hint}\n  {}",
                    step.advantage_formula(params)
                )?,
            }
        }
    }
    finish(tally, out)
}

fn finish(tally: Tally, mut out: impl Write) -> Result<Tally> {
    writeln!(
        out,
        "\n{} of {} right{}.",
        tally.right,
        tally.asked,
        match tally.skipped {
            0 => String::new(),
            s => format!(", {s} skipped"),
        }
    )?;
    Ok(tally)
}

/// The sweep's rows in the order computed, under their header, with the advantages of its last
/// `blanks` steps (and where a row repeats one of them as A_(t+1)) left as `?`; the returns R_t
/// in a last column when `returns` (never with blanks: R_t = A_t + V_t would give A_t away).
pub fn sweep_table(trace: &GaeTrace, blanks: usize, returns: bool) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "{:>4} {:>9} {:>9} {:>9} {:>7} {:>9} {:>9} {:>9}",
        "t", "r_t", "V_t", "V_(t+1)", "m_(t+1)", "delta_t", "A_(t+1)", "A_t"
    );
    let returns = returns && blanks == 0;
    let _ = writeln!(
        s,
        "{}",
        if returns {
            format!(" {:>9}", "R_t")
        } else {
            String::new()
        }
    );
    let shown = |x: f32, hidden: bool| {
        if hidden {
            "?".to_string()
        } else {
            format!("{x:.4}")
        }
    };
    for (i, step) in trace.steps.iter().enumerate() {
        let hidden = faded::is_blank(trace, blanks, i);
        // A_(t+1) is the advantage the step before this one computed.
        let next_hidden = i > 0 && faded::is_blank(trace, blanks, i - 1);
        let _ = write!(
            s,
            "{:>4} {:>9.4} {:>9.4} {:>9.4} {:>7} {:>9.4} {:>9} {:>9}",
            step.t,
            step.reward,
            step.value,
            step.next_value,
            step.next_mask,
            step.delta,
            shown(step.next_advantage, next_hidden),
            shown(step.advantage, hidden)
        );
        let _ = writeln!(
            s,
            "{}",
            if returns {
                format!(" {:>9.4}", step.ret)
            } else {
                String::new()
            }
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of tests/data/gae_worked_example.json, first sequence: r = 1, 0, 2;
    /// V = 2, 2.5, 3; gamma 0.9, lambda 0.95. By hand: delta_2 = 2 − 3 = −1 = A_2;
    /// delta_1 = 0 + 0.9·3 − 2.5 = 0.2, A_1 = 0.2 + 0.855·(−1) = −0.655;
    /// delta_0 = 1 + 0.9·2.5 − 2 = 1.25, A_0 = 1.25 + 0.855·(−0.655) = 0.689975.
    fn run(answers: &str) -> (Tally, String) {
        let mut out = Vec::new();
        let tally = gae_quiz(
            &[vec![1.0, 0.0, 2.0]],
            &[vec![2.0, 2.5, 3.0]],
            &[vec![1.0, 1.0, 1.0]],
            GaeParams::new(0.9, 0.95).unwrap(),
            answers.as_bytes(),
            &mut out,
            true,
        )
        .unwrap();
        (tally, String::from_utf8(out).unwrap())
    }

    #[test]
    fn right_wrong_and_skipped_answers_are_told_apart() {
        // Pass 2 asks A_0; pass 3 A_1, A_0; pass 4 A_2, A_1, A_0.
        let (tally, out) = run("0.690\n-0.655\n0.7\n\n-0.655\n0.69\n");
        assert_eq!(
            tally,
            Tally {
                right: 4,
                asked: 5,
                skipped: 1
            },
            "{out}"
        );
        assert!(
            out.contains("right: A_0 = 1.250 + 0.9 × 0.95 × 1 × (-0.655) = 0.690"),
            "{out}"
        );
        assert!(out.contains("not quite: you wrote 0.7. A_0 is made of delta_0 (row t = 0"));
        assert!(out.contains("skipped: A_2 = -1.000"), "{out}");
        assert!(out.contains("4 of 5 right, 1 skipped."));
    }

    #[test]
    fn blanks_grow_from_the_sweeps_last_step() {
        let (_, out) = run("");
        // Pass 1 is worked: every A_t shown. Pass 2 hides A_0 only, and stops at the end of input.
        let pass2 = out.split("Pass 2 of 4").nth(1).unwrap();
        let rows: Vec<&str> = pass2.lines().skip(2).take(3).collect();
        assert!(
            rows[0].trim_start().starts_with("2 ") && !rows[0].contains('?'),
            "{rows:?}"
        );
        assert!(!rows[1].ends_with('?'), "{rows:?}");
        assert!(
            rows[2].trim_start().starts_with("0 ") && rows[2].ends_with('?'),
            "{rows:?}"
        );
        assert!(out.contains("(no more answers)"));
        assert!(out.ends_with("0 of 0 right.\n"), "{out}");
    }

    /// A slip in A_1 (−0.665 for −0.655) is marked once: A_0 built on it, 1.25 + 0.855 ×
    /// (−0.665) = 0.681425, is a right step, as the hint's "or your answer just before this one"
    /// promises.
    #[test]
    fn a_step_built_on_the_students_own_slip_is_right() {
        let (tally, out) = run("0.690\n-0.665\n0.681\n");
        assert_eq!(
            tally,
            Tally {
                right: 2,
                asked: 3,
                skipped: 0
            },
            "{out}"
        );
        assert!(out.contains("not quite: you wrote -0.665."), "{out}");
        // Without the student's A_1 (a skip), A_0 is the batch's.
        let (tally, out) = run("0.690\n\n0.681\n");
        assert_eq!(tally.right, 1, "{out}");
    }

    #[test]
    fn a_miss_on_the_last_real_token_says_there_is_nothing_after_it() {
        let (tally, out) = run("\n\n\n2\n");
        assert_eq!(tally.right, 0);
        assert!(out.contains("Token 2 is the last real one"), "{out}");
    }
}
