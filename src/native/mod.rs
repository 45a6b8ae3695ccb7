//! Native face of ppo-lens: the command line and what only runs outside a browser.

pub mod bench;
pub mod bench_recipe;
pub mod cli;
pub mod config;
pub mod doctor;
pub mod findings;
pub mod gae_quiz;
pub mod inputs;
pub mod members;
pub mod model_dir;
pub mod plots;
pub mod ppo_cmd;
pub mod recipe;
pub mod run_files;
pub mod score;
pub mod tiny;
pub mod train;

/// One line per exercise: whether it is written, whether it passes the graded checks, and which
/// code a run of this build uses for it. The bool says whether all five pass.
pub fn exercises_report() -> (Vec<String>, bool) {
    report_for(&crate::exercises::STUDENT)
}

/// [`exercises_report`] for `student`'s functions. A function that panics (a shape mistake in
/// burn, an index out of range) is reported on its exercise's line, with the panic's message,
/// and the others are still graded.
fn report_for(student: &crate::exercises::Implementation) -> (Vec<String>, bool) {
    use crate::exercises::grade::{Outcome, grade};
    use crate::exercises::{ENABLED, EXERCISES};
    let mut lines = vec![if ENABLED {
        "exercises on (--features exercises): runs use your functions where written".to_string()
    } else {
        "exercises off: runs use the reference; build with --features exercises to run yours"
            .to_string()
    }];
    let mut all_pass = true;
    for ex in &EXERCISES {
        let outcome = match doctor::guarded(|| crate::compute::block_on(grade(ex.number, student)))
        {
            Ok(outcome) => outcome,
            Err(panic) => {
                all_pass = false;
                let runs = if ENABLED {
                    "yours runs"
                } else {
                    "the reference runs"
                };
                lines.push(format!(
                    "exercise {} {:<17} {runs:<18}  PANICKED: {panic}",
                    ex.number, ex.function
                ));
                continue;
            }
        };
        all_pass &= outcome.passed();
        let runs = match (&outcome, ENABLED) {
            (Outcome::NotWritten(_), _) | (_, false) => "the reference runs",
            _ => "yours runs",
        };
        let state = match &outcome {
            Outcome::Pass { checks } => format!("passes ({checks} values checked)"),
            Outcome::NotWritten(_) => format!("not written yet ({})", ex.file),
            Outcome::Fail(failure) => {
                format!("FAILS\n    {}", failure.to_string().replace('\n', "\n    "))
            }
        };
        lines.push(format!(
            "exercise {} {:<17} {runs:<18}  {state}",
            ex.number, ex.function
        ));
    }
    (lines, all_pass)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exercises::{Implementation, REFERENCE};

    /// A student's function that panics is named on its exercise's line with the panic's
    /// message; the other exercises are still graded.
    #[test]
    fn a_panicking_exercise_is_reported_not_a_crash() {
        let student = Implementation {
            policy_loss: |_, _, _, _, _| panic!("shapes [2, 3] and [3, 2] do not match"),
            ..REFERENCE
        };
        let (lines, all_pass) = report_for(&student);
        assert!(!all_pass);
        let first = lines.iter().find(|l| l.starts_with("exercise 1")).unwrap();
        assert!(
            first.contains("PANICKED: shapes [2, 3] and [3, 2] do not match"),
            "{first}"
        );
        for n in 2..=5 {
            let line = lines
                .iter()
                .find(|l| l.starts_with(&format!("exercise {n}")))
                .unwrap();
            assert!(line.contains("passes"), "{line}");
        }
    }
}
