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
    use crate::exercises::grade::{Outcome, grade};
    use crate::exercises::{ENABLED, EXERCISES, STUDENT};
    let mut lines = vec![if ENABLED {
        "exercises on (--features exercises): runs use your functions where written".to_string()
    } else {
        "exercises off: runs use the reference; build with --features exercises to run yours"
            .to_string()
    }];
    let mut all_pass = true;
    for ex in &EXERCISES {
        let outcome = crate::compute::block_on(grade(ex.number, &STUDENT));
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
