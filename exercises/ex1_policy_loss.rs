//! Exercise 1: the clipped surrogate policy loss.
//!
//! Inputs, all `[B, T]` (B sequences, T response tokens):
//! - `logprobs_new`: log pi_new(token) from the model being trained (gradients flow through it);
//! - `logprobs_old`: log pi_old(token), kept from the rollout;
//! - `advantages`: A for each token (whitened when whitening is on, the default: then positive
//!   when the token's raw advantage is above the batch mean);
//! - `response_mask`: 1 on real response tokens, 0 on padding after the end.
//!
//! Write, per token, then averaged over the real tokens only:
//! ```text
//! ratio     = exp(logprobs_new - logprobs_old)
//! unclipped = -A * ratio
//! clipped   = -A * clip(ratio, 1 - clip_ratio, 1 + clip_ratio)
//! loss      = masked_mean(max(unclipped, clipped))
//! ```
//! and two diagnostics, both without gradient (`.detach()`):
//! - `clip_frac`: the share of real tokens where `clipped > unclipped` (strictly);
//! - `approx_kl = 0.5 * masked_mean((logprobs_new - logprobs_old)^2)`, how far the policy being
//!   trained has moved from the one that sampled (not the KL to the reference).
//!
//! Why the max: we minimise the negative objective, so the larger term is the more pessimistic
//! one. Once a token's probability has moved past the band in the direction its advantage asks,
//! the clipped term wins, it no longer depends on `logprobs_new`, and the token's own term stops
//! pulling. That is all the clip does: the token's probability can still move, through weights
//! it shares with other tokens.
//!
//! Useful burn calls: `Tensor::exp`, `clamp(min, max)`, `max_pair`, `greater(..).float()`,
//! `powf_scalar(2.0)`, and `crate::ppo::masked_mean(x, mask)` (sum of x * mask over the sum of
//! mask). Each result is a one-element tensor `[1]`.
//!
//! Check it: `cargo test --features exercises --test exercises ex1`.
//! The solution is `src/ppo/policy_loss.rs`; the page shows each token's terms on stage 5.

use burn::tensor::Tensor;

use crate::exercises::Todo;
use crate::ppo::policy_loss::PolicyLoss;

pub fn policy_loss(
    logprobs_new: Tensor<2>,
    logprobs_old: Tensor<2>,
    advantages: Tensor<2>,
    response_mask: Tensor<2>,
    clip_ratio: f32,
) -> Result<PolicyLoss, Todo> {
    // Replace these two lines with your code, ending in
    // Ok(PolicyLoss { loss, clip_frac, approx_kl })
    let _ = (
        logprobs_new,
        logprobs_old,
        advantages,
        response_mask,
        clip_ratio,
    );
    Err(Todo::new(1))
}
