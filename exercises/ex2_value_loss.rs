//! Exercise 2: the clipped value loss.
//!
//! Inputs, all `[B, T]`:
//! - `values_new`: the value head's predictions now (gradients flow through it);
//! - `values_old`: its predictions during the rollout;
//! - `returns`: the targets R = A + V from GAE (before whitening);
//! - `response_mask`: 1 on real response tokens, 0 on padding.
//!
//! Write:
//! ```text
//! v_clip = values_old + clip(values_new - values_old, -c, c)        c = clip_range_value
//! loss   = 0.5 * masked_mean(max((values_new - R)^2, (v_clip - R)^2))
//! ```
//! and `clip_frac`, without gradient: the share of real tokens where the clipped error is
//! strictly larger than the unclipped one.
//!
//! Why: the critic may not jump further than `c` from what it predicted during the rollout in
//! one update; taking the larger error means a jump past `c` earns no reward for the critic.
//! The 0.5 makes the gradient `V_new - R`.
//!
//! Useful burn calls: `clamp`, `powf_scalar(2.0)`, `max_pair`, `greater(..).float()`,
//! `detach`, `crate::ppo::masked_mean`.
//!
//! Check it: `cargo test --features exercises --test exercises ex2`.
//! The solution is `src/ppo/value_loss.rs`.

use burn::tensor::Tensor;

use crate::exercises::Todo;
use crate::ppo::value_loss::ValueLoss;

pub fn value_loss(
    values_new: Tensor<2>,
    values_old: Tensor<2>,
    returns: Tensor<2>,
    response_mask: Tensor<2>,
    clip_range_value: f32,
) -> Result<ValueLoss, Todo> {
    // Replace these two lines with your code, ending in Ok(ValueLoss { loss, clip_frac })
    let _ = (
        values_new,
        values_old,
        returns,
        response_mask,
        clip_range_value,
    );
    Err(Todo::new(2))
}
