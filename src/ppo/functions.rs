//! The five functions a student may write their own version of (`exercises/`), as a table the
//! trainer, the page and the update are handed by their caller: [`REFERENCE`] is this folder's
//! solutions, and `crate::exercises` builds the student's table (their function where written,
//! this one where not). The PPO code calls through the table and never reaches for a student's
//! code itself.

use burn::tensor::Tensor;

use super::gae::{Gae, GaeParams, gae};
use super::losses::{Losses, Pieces, REFERENCE_PIECES};
use super::update::{MiniBatch, UpdateConfig, minibatch_losses_with};
use crate::model::Qwen2Model;

/// Exercise 4's signature: rewards, values and the response mask (`[B, T]`) to deltas,
/// advantages and returns.
pub type GaeFn = fn(Tensor<2>, Tensor<2>, Tensor<2>, GaeParams) -> Gae;

/// Exercise 5's signature, with the table it belongs to: a version that builds the objective
/// from exercises 1-3 takes them from `functions.pieces`.
pub type MinibatchLossesFn =
    fn(functions: &Functions, &Qwen2Model, MiniBatch, &UpdateConfig) -> Losses;

/// One version of each of the five functions.
#[derive(Clone, Copy)]
pub struct Functions {
    /// Exercises 1-3: the clipped policy loss, the clipped value loss, the entropy.
    pub pieces: Pieces,
    /// Exercise 4: GAE, run by [`collect_experience`](super::iteration::collect_experience).
    pub gae: GaeFn,
    /// Exercise 5: one mini-batch's losses, run by [`ppo_update`](super::update::ppo_update).
    pub minibatch_losses: MinibatchLossesFn,
}

/// The solutions in `src/ppo/`.
pub const REFERENCE: Functions = Functions {
    pieces: REFERENCE_PIECES,
    gae,
    minibatch_losses: |functions, model, minibatch, config| {
        minibatch_losses_with(&functions.pieces, model, minibatch, config)
    },
};
