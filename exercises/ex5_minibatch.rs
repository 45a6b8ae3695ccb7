//! Exercise 5: the objective of one mini-batch of the PPO update.
//!
//! `ppo_update` (src/ppo/update.rs) shuffles the batch into mini-batches for several epochs and
//! calls this function for each; it then runs backward on `total`, clips the gradient norm and
//! takes the AdamW step. Your part is the forward half:
//!
//! 1. One teacher-forced pass: `model.forward(minibatch.ids, minibatch.attention_mask, false)`
//!    gives `logits` `[B, P + R, V]` and `values` `[B, P + R]` for every position at once.
//! 2. Align: the logits at position `P - 1 + t` predict response token `t` (position `P + t`),
//!    so take `R` positions starting at `P - 1` (`narrow(1, P - 1, R)`), for the logits and
//!    the values alike. `P` is `minibatch.prompt_len`, `R` the response length.
//! 3. Divide those logits by `config.temperature`: the rollout sampled from the tempered
//!    distribution, and the ratio must compare like with like.
//! 4. logprobs_new = the log-softmax at the sampled ids: `gather(2, ids[:, P..] as [B, R, 1])`
//!    minus `crate::ppo::entropy::logsumexp(logits)`, squeezed to `[B, R]`.
//! 5. The objective from exercises 1-3, through `crate::exercises::active::{policy_loss,
//!    value_loss, masked_entropy}` (your versions where written, the reference otherwise):
//!    `total = policy + vf_coef * value - entropy_coeff * entropy` (`config.coeffs`).
//!
//! Return every loss and diagnostic in `Losses` (entropy as `Some`).
//!
//! Check it: `cargo test --features exercises --test exercises ex5` (it uses your exercises
//! 1-3: make those pass first). The solution is `minibatch_losses` in src/ppo/update.rs; the
//! page's stage 6 shows why one pass reproduces the rollout's logprobs (up to float rounding).

use crate::exercises::Todo;
use crate::model::Qwen2Model;
use crate::ppo::losses::Losses;
use crate::ppo::update::{MiniBatch, UpdateConfig};

pub fn minibatch_losses(
    model: &Qwen2Model,
    minibatch: MiniBatch,
    config: &UpdateConfig,
) -> Result<Losses, Todo> {
    // Replace these two lines with your code, ending in Ok(Losses { total, policy, ... })
    let _ = (model, minibatch, config);
    Err(Todo::new(5))
}
