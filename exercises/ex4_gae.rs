//! Exercise 4: Generalized Advantage Estimation, from the last token back.
//!
//! Inputs, all `[B, T]`: `rewards` (the KL penalty on every token plus the score on the last
//! real one), `values` (the value of the state before each token), `response_mask` (1 on real
//! tokens, 0 on padding after the end); `params.gamma` and `params.lam`.
//!
//! For t = T-1 down to 0, with m the mask taken as 0 past the end:
//! ```text
//! delta_t = r_t + gamma * V_{t+1} * m_{t+1} - V_t
//! A_t     = delta_t + gamma * lam * m_{t+1} * A_{t+1}
//! R_t     = A_t + V_t
//! ```
//! Return `Gae { deltas, advantages, returns }`, each `[B, T]` and 0 on padding (multiply by the
//! mask at the end).
//!
//! Why backwards: A_t needs A_{t+1}. Start from "nothing follows" (V, m and A all 0 past the
//! end), so at the last real token delta = r - V and A = delta: that is what the recursion
//! gives, not a separate rule.
//!
//! Useful burn calls: `narrow(1, t, 1)` takes column t as `[B, 1]`; keep the carried V, m and A
//! as `[B, 1]` tensors; collect the columns and `Tensor::cat(columns, 1)` (reverse them first).
//! Whitening is not part of this exercise: the caller does it.
//!
//! Check it: `cargo test --features exercises --test exercises ex4`.
//! The solution is `src/ppo/gae.rs`; the page's stage 4 and its sandbox show the sweep.

use burn::tensor::Tensor;

use crate::exercises::Todo;
use crate::ppo::gae::{Gae, GaeParams};

pub fn gae(
    rewards: Tensor<2>,
    values: Tensor<2>,
    response_mask: Tensor<2>,
    params: GaeParams,
) -> Result<Gae, Todo> {
    // Replace these two lines with your code, ending in Ok(Gae { deltas, advantages, returns })
    let _ = (rewards, values, response_mask, params);
    Err(Todo::new(4))
}
