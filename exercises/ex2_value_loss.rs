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
//! Why: as with the policy clip, the critic gets no reward for moving a token's value more than
//! `c` toward the return in one update. Once `values_new` has left the band
//! `[values_old - c, values_old + c]` moving toward `R` (and has not overshot `R` by more than
//! the band's edge is short of it), the clipped error is the larger; it does not depend on
//! `values_new`, so that token's gradient is 0. Outside the band on the side away from `R`, the
//! unclipped error is the larger and pulls `values_new` back toward `R`. It is not a cap:
//! `values_new` can still end up further than `c` from `values_old`.
//! The 0.5 makes the gradient of the unclipped error `V_new - R`.
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
