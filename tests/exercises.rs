//! The graded tests of the five exercises, on the functions you wrote in `exercises/`.
//!
//! One exercise: `cargo test --features exercises --test exercises ex1` (ex1 to ex5).
//! All five: `cargo test --features exercises --test exercises`.
//! A failure names the case, the wrong element, the expected value and a hint.

use ppo_lens::compute::block_on;
use ppo_lens::exercises::grade::{Outcome, grade};
use ppo_lens::exercises::{STUDENT, exercise};

fn graded(number: u8) {
    let ex = exercise(number);
    match block_on(grade(number, &STUDENT)) {
        Outcome::Pass { checks } => {
            println!(
                "exercise {number} ({}) passes: {checks} values checked",
                ex.function
            )
        }
        outcome => panic!("\n\n{outcome}\n\n"),
    }
}

#[test]
fn ex1_policy_loss() {
    graded(1);
}

#[test]
fn ex2_value_loss() {
    graded(2);
}

#[test]
fn ex3_entropy() {
    graded(3);
}

#[test]
fn ex4_gae() {
    graded(4);
}

#[test]
fn ex5_minibatch_losses() {
    graded(5);
}
