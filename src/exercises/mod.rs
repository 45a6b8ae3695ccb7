//! The five exercises: the student's own versions of the PPO pieces.
//!
//! The student edits the files in `exercises/` at the top of the repository; each holds one
//! function with the same inputs as the reference in `src/ppo/`, returning `Result<_, Todo>`.
//! As shipped, every function returns `Err(Todo)`, which says what to write.
//!
//! | # | function | file | reference (the solution) |
//! |---|---|---|---|
//! | 1 | `policy_loss` | `exercises/ex1_policy_loss.rs` | [`crate::ppo::policy_loss::policy_loss`] |
//! | 2 | `value_loss` | `exercises/ex2_value_loss.rs` | [`crate::ppo::value_loss::value_loss`] |
//! | 3 | `masked_entropy` | `exercises/ex3_entropy.rs` | [`crate::ppo::entropy::masked_entropy`] |
//! | 4 | `gae` | `exercises/ex4_gae.rs` | [`crate::ppo::gae::gae`] |
//! | 5 | `minibatch_losses` | `exercises/ex5_minibatch.rs` | [`crate::ppo::update::minibatch_losses`] |
//!
//! [`grade`] checks a set of the five against hand-worked and reference values and names the
//! first wrong element. [`functions`] is the table the trainer and the page hand to the PPO
//! code ([`crate::ppo::Functions`]): with the `exercises` cargo feature it is [`active`]'s, which
//! runs the student's function and falls back to the reference only for an exercise still
//! returning `Todo`; without the feature it is the reference ([`crate::ppo::REFERENCE`]).

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};

use burn::tensor::Tensor;

use crate::model::Qwen2Model;
use crate::ppo::Functions;
use crate::ppo::gae::{Gae, GaeParams};
use crate::ppo::losses::Losses;
use crate::ppo::policy_loss::PolicyLoss;
use crate::ppo::update::{MiniBatch, UpdateConfig};
use crate::ppo::value_loss::ValueLoss;

#[path = "../../exercises/ex1_policy_loss.rs"]
pub mod ex1_policy_loss;
#[path = "../../exercises/ex2_value_loss.rs"]
pub mod ex2_value_loss;
#[path = "../../exercises/ex3_entropy.rs"]
pub mod ex3_entropy;
#[path = "../../exercises/ex4_gae.rs"]
pub mod ex4_gae;
#[path = "../../exercises/ex5_minibatch.rs"]
pub mod ex5_minibatch;

pub mod compare;
pub mod grade;

/// Whether this build runs the student's functions (the `exercises` cargo feature).
pub const ENABLED: bool = cfg!(feature = "exercises");

/// The five functions the trainer and the page run: the student's where written (with the
/// `exercises` feature), else the reference.
pub fn functions() -> &'static Functions {
    if ENABLED {
        &active::FUNCTIONS
    } else {
        &crate::ppo::REFERENCE
    }
}

/// One exercise: its number, function, file, and what to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exercise {
    pub number: u8,
    pub function: &'static str,
    pub file: &'static str,
    /// What to write, in one sentence.
    pub task: &'static str,
}

pub const EXERCISES: [Exercise; 5] = [
    Exercise {
        number: 1,
        function: "policy_loss",
        file: "exercises/ex1_policy_loss.rs",
        task: "the clipped surrogate loss masked_mean(max(-A * ratio, -A * clip(ratio, 1 - eps, \
               1 + eps))) with ratio = exp(logprobs_new - logprobs_old), its clip fraction and \
               approx_kl = 0.5 * masked_mean((logprobs_new - logprobs_old)^2)",
    },
    Exercise {
        number: 2,
        function: "value_loss",
        file: "exercises/ex2_value_loss.rs",
        task: "the clipped value loss 0.5 * masked_mean(max((V_new - R)^2, (v_clip - R)^2)) with \
               v_clip = V_old + clip(V_new - V_old, -c, c), and its clip fraction",
    },
    Exercise {
        number: 3,
        function: "masked_entropy",
        file: "exercises/ex3_entropy.rs",
        task: "the mean over real tokens of the entropy -sum p log p of softmax(logits), computed \
               stably as logsumexp(z) - sum softmax(z) * z",
    },
    Exercise {
        number: 4,
        function: "gae",
        file: "exercises/ex4_gae.rs",
        task: "deltas, advantages and returns by the reverse sweep delta_t = r_t + gamma * V_{t+1} \
               * m_{t+1} - V_t, A_t = delta_t + gamma * lam * m_{t+1} * A_{t+1}, R_t = A_t + V_t, \
               all 0 on padding",
    },
    Exercise {
        number: 5,
        function: "minibatch_losses",
        file: "exercises/ex5_minibatch.rs",
        task: "one teacher-forced pass over the mini-batch (the logits at prompt_len - 1 + t, \
               divided by the temperature, score response token t), then the PPO objective \
               policy + vf_coef * value - entropy_coeff * entropy from exercises 1-3",
    },
];

/// Looks an exercise up by its number (1 to 5).
pub fn exercise(number: u8) -> &'static Exercise {
    &EXERCISES[usize::from(number.clamp(1, 5)) - 1]
}

/// What an unwritten exercise returns: the exercise's number. Its message says what to write
/// and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Todo {
    pub exercise: u8,
}

impl Todo {
    pub fn new(exercise: u8) -> Self {
        Todo { exercise }
    }
}

impl fmt::Display for Todo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ex = exercise(self.exercise);
        write!(
            f,
            "exercise {} ({}) is not written yet: in {}, return {} (docs/exercises.md)",
            ex.number, ex.function, ex.file, ex.task
        )
    }
}

impl std::error::Error for Todo {}

pub type PolicyLossFn =
    fn(Tensor<2>, Tensor<2>, Tensor<2>, Tensor<2>, f32) -> Result<PolicyLoss, Todo>;
pub type ValueLossFn =
    fn(Tensor<2>, Tensor<2>, Tensor<2>, Tensor<2>, f32) -> Result<ValueLoss, Todo>;
pub type EntropyFn = fn(Tensor<3>, Tensor<2>) -> Result<Tensor<1>, Todo>;
pub type GaeFn = fn(Tensor<2>, Tensor<2>, Tensor<2>, GaeParams) -> Result<Gae, Todo>;
pub type MinibatchLossesFn = fn(&Qwen2Model, MiniBatch, &UpdateConfig) -> Result<Losses, Todo>;

/// One implementation of the five functions: the student's or the reference.
#[derive(Clone, Copy)]
pub struct Implementation {
    pub policy_loss: PolicyLossFn,
    pub value_loss: ValueLossFn,
    pub masked_entropy: EntropyFn,
    pub gae: GaeFn,
    pub minibatch_losses: MinibatchLossesFn,
}

/// The functions in `exercises/`.
pub const STUDENT: Implementation = Implementation {
    policy_loss: ex1_policy_loss::policy_loss,
    value_loss: ex2_value_loss::value_loss,
    masked_entropy: ex3_entropy::masked_entropy,
    gae: ex4_gae::gae,
    minibatch_losses: ex5_minibatch::minibatch_losses,
};

/// The reference in `src/ppo/`: the solutions.
pub const REFERENCE: Implementation = Implementation {
    policy_loss: |new, old, adv, mask, eps| {
        Ok(crate::ppo::policy_loss::policy_loss(
            new, old, adv, mask, eps,
        ))
    },
    value_loss: |new, old, ret, mask, c| {
        Ok(crate::ppo::value_loss::value_loss(new, old, ret, mask, c))
    },
    masked_entropy: |logits, mask| Ok(crate::ppo::entropy::masked_entropy(logits, mask)),
    gae: |rewards, values, mask, params| Ok(crate::ppo::gae::gae(rewards, values, mask, params)),
    minibatch_losses: |model, minibatch, config| {
        Ok(crate::ppo::update::minibatch_losses(
            model, minibatch, config,
        ))
    },
};

/// Which code last ran for an exercise in this process (shown by the page and the trainer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ran {
    /// Not called yet.
    NotYet,
    /// The student's function.
    Yours,
    /// The reference, because the student's function returned `Todo`.
    Reference,
}

static RAN: [AtomicU8; 5] = [const { AtomicU8::new(0) }; 5];

fn mark(exercise: u8, ran: Ran) {
    let code = match ran {
        Ran::NotYet => 0,
        Ran::Yours => 1,
        Ran::Reference => 2,
    };
    RAN[usize::from(exercise) - 1].store(code, Ordering::Relaxed);
}

/// Which code last ran for exercise `number` (1 to 5).
pub fn last_ran(number: u8) -> Ran {
    match RAN[usize::from(number.clamp(1, 5)) - 1].load(Ordering::Relaxed) {
        1 => Ran::Yours,
        2 => Ran::Reference,
        _ => Ran::NotYet,
    }
}

/// `exercises run: policy_loss reference, ..., gae yours, ...`: which code last ran for each.
pub fn ran_summary() -> String {
    let parts: Vec<String> = EXERCISES
        .iter()
        .map(|ex| {
            let ran = match last_ran(ex.number) {
                Ran::NotYet => "not called",
                Ran::Yours => "yours",
                Ran::Reference => "reference",
            };
            format!("{} {ran}", ex.function)
        })
        .collect();
    format!("exercises run: {}", parts.join(", "))
}

/// The student's table ([`FUNCTIONS`](active::FUNCTIONS)). With the `exercises` feature, each
/// function tries the student's version first and uses the reference only when it returns
/// `Todo`; without it, each is the reference. Inputs are cloned for the fallback: a burn tensor
/// clone shares its buffer.
pub mod active {
    use super::*;
    use crate::ppo::losses::Pieces;

    /// Runs `student` when exercises are on; the reference when they are off or it is `Todo`.
    fn dispatch<T>(
        number: u8,
        student: impl FnOnce() -> Result<T, Todo>,
        reference: impl FnOnce() -> T,
    ) -> T {
        if ENABLED {
            match student() {
                Ok(value) => {
                    mark(number, Ran::Yours);
                    return value;
                }
                Err(_) => mark(number, Ran::Reference),
            }
        }
        reference()
    }

    pub fn policy_loss(
        logprobs_new: Tensor<2>,
        logprobs_old: Tensor<2>,
        advantages: Tensor<2>,
        response_mask: Tensor<2>,
        clip_ratio: f32,
    ) -> PolicyLoss {
        let args = (logprobs_new, logprobs_old, advantages, response_mask);
        let copy = args.clone();
        dispatch(
            1,
            || ex1_policy_loss::policy_loss(copy.0, copy.1, copy.2, copy.3, clip_ratio),
            || crate::ppo::policy_loss::policy_loss(args.0, args.1, args.2, args.3, clip_ratio),
        )
    }

    pub fn value_loss(
        values_new: Tensor<2>,
        values_old: Tensor<2>,
        returns: Tensor<2>,
        response_mask: Tensor<2>,
        clip_range_value: f32,
    ) -> ValueLoss {
        let args = (values_new, values_old, returns, response_mask);
        let copy = args.clone();
        dispatch(
            2,
            || ex2_value_loss::value_loss(copy.0, copy.1, copy.2, copy.3, clip_range_value),
            || crate::ppo::value_loss::value_loss(args.0, args.1, args.2, args.3, clip_range_value),
        )
    }

    /// Exercise 3 on the logits; the reference uses the forward pass's token entropies where
    /// it has them.
    pub fn masked_entropy(
        logits: Tensor<3>,
        response_mask: Tensor<2>,
        token_entropy: Option<Tensor<2>>,
    ) -> Tensor<1> {
        let copy = (logits.clone(), response_mask.clone());
        dispatch(
            3,
            || ex3_entropy::masked_entropy(copy.0, copy.1),
            || crate::ppo::losses::reference_masked_entropy(logits, response_mask, token_entropy),
        )
    }

    pub fn gae(
        rewards: Tensor<2>,
        values: Tensor<2>,
        response_mask: Tensor<2>,
        params: GaeParams,
    ) -> Gae {
        let args = (rewards, values, response_mask);
        let copy = args.clone();
        dispatch(
            4,
            || ex4_gae::gae(copy.0, copy.1, copy.2, params),
            || crate::ppo::gae::gae(args.0, args.1, args.2, params),
        )
    }

    /// Exercises 1-3 as the objective's pieces: the student's where written.
    pub const PIECES: Pieces = Pieces {
        policy_loss,
        value_loss,
        masked_entropy,
    };

    /// Exercise 5. Its fallback builds the objective from `functions.pieces`: here the
    /// student's exercises 1-3 where they are written.
    pub fn minibatch_losses(
        functions: &Functions,
        model: &Qwen2Model,
        minibatch: MiniBatch,
        config: &UpdateConfig,
    ) -> Losses {
        let copy = minibatch.clone();
        dispatch(
            5,
            || ex5_minibatch::minibatch_losses(model, copy, config),
            || {
                crate::ppo::update::minibatch_losses_with(
                    &functions.pieces,
                    model,
                    minibatch,
                    config,
                )
            },
        )
    }

    /// The five, each the student's where written.
    pub const FUNCTIONS: Functions = Functions {
        pieces: PIECES,
        gae,
        minibatch_losses,
    };
}
