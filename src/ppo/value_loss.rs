//! The clipped value loss.
//!
//! Per token, the larger of two squared errors counts:
//! ```text
//! v_clip = V_old + clip(V_new - V_old, -c, c)
//! loss   = 0.5 * masked_mean( max((V_new - R)^2, (v_clip - R)^2) )
//! ```
//! Inside the band `[V_old - c, V_old + c]` the two errors are equal and the value head learns
//! as usual. Outside it `v_clip` is the band's edge, which does not change with `V_new`, so when
//! the clipped error is the larger the token's value gradient is 0. That happens exactly when
//! `V_new` left the band moving toward the return `R` (so `R` lies beyond the edge it crossed)
//! and has not overshot `R` by more than that edge's distance from `R`. Outside the band on the
//! side away from `R`, or after a larger overshoot, the unclipped error is the larger and its
//! gradient pulls `V_new` back toward `R`.
//!
//! So the clip does not cap how far the value moves: it removes the incentive to move a token's
//! value more than `c` toward `R` in one rollout's update. `V_new` can still end up further than
//! `c` from `V_old`, moved by other tokens' gradients through the weights they share, or by
//! AdamW's momentum.
//!
//! `value_clip_frac` is the share of real tokens where the clipped error is strictly larger.

use burn::tensor::Tensor;

use super::masked::{masked_mean, masked_mean_ref};

/// What [`value_loss`] returns, each a one-element tensor.
pub struct ValueLoss {
    pub loss: Tensor<1>,
    pub clip_frac: Tensor<1>,
}

/// The loss over a batch; every input is `[B, T]`. Gradients flow through `values_new` only.
pub fn value_loss(
    values_new: Tensor<2>,
    values_old: Tensor<2>,
    returns: Tensor<2>,
    response_mask: Tensor<2>,
    clip_range_value: f32,
) -> ValueLoss {
    let v_clip = values_old.clone()
        + (values_new.clone() - values_old).clamp(-clip_range_value, clip_range_value);
    let unclipped = (values_new - returns.clone()).powf_scalar(2.0);
    let clipped = (v_clip - returns).powf_scalar(2.0);
    let loss = masked_mean(
        unclipped.clone().max_pair(clipped.clone()),
        response_mask.clone(),
    ) * 0.5;
    let was_clipped = clipped.detach().greater(unclipped.detach()).float();
    ValueLoss {
        loss,
        clip_frac: masked_mean(was_clipped, response_mask),
    }
}

/// One real token of the scalar form.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ValueToken {
    pub t: usize,
    pub value_old: f32,
    pub value_new: f32,
    pub ret: f32,
    pub v_clip: f32,
    /// `(V_new - R)^2`.
    pub unclipped: f32,
    /// `(v_clip - R)^2`.
    pub clipped: f32,
    /// Whether the clipped error was the larger and so the one that counts.
    pub was_clipped: bool,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ValueTrace {
    pub tokens: Vec<ValueToken>,
    pub loss: f32,
    pub clip_frac: f32,
}

/// Scalar form over one sequence (or a batch laid end to end).
pub fn value_loss_ref(
    values_new: &[f32],
    values_old: &[f32],
    returns: &[f32],
    response_mask: &[f32],
    clip_range_value: f32,
) -> ValueTrace {
    let n = response_mask.len();
    let (mut terms, mut flags) = (vec![0.0; n], vec![0.0; n]);
    let mut tokens = Vec::new();
    for t in 0..n {
        let v_clip = values_old[t]
            + (values_new[t] - values_old[t]).clamp(-clip_range_value, clip_range_value);
        let unclipped = (values_new[t] - returns[t]).powi(2);
        let clipped = (v_clip - returns[t]).powi(2);
        terms[t] = unclipped.max(clipped);
        flags[t] = f32::from(u8::from(clipped > unclipped));
        if response_mask[t] == 1.0 {
            tokens.push(ValueToken {
                t,
                value_old: values_old[t],
                value_new: values_new[t],
                ret: returns[t],
                v_clip,
                unclipped,
                clipped,
                was_clipped: clipped > unclipped,
            });
        }
    }
    ValueTrace {
        tokens,
        loss: 0.5 * masked_mean_ref(&terms, response_mask),
        clip_frac: masked_mean_ref(&flags, response_mask),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::{Compute, block_on, read_f32};

    #[test]
    fn hand_worked_value_loss() {
        // c = 0.2.
        // Token 0: V_old 1, V_new 2, R 2: v_clip 1.2; errors 0 and 0.64 -> 0.64, clipped.
        // Token 1: V_old 0, V_new 0.1, R 1: v_clip 0.1; errors 0.81 and 0.81 -> 0.81, not clipped.
        // Token 2: V_old 0, V_new -1, R 0: v_clip -0.2; errors 1 and 0.04 -> 1, not clipped.
        let new = [2.0, 0.1, -1.0, 5.0];
        let old = [1.0, 0.0, 0.0, 0.0];
        let ret = [2.0, 1.0, 0.0, -5.0];
        let mask = [1.0, 1.0, 1.0, 0.0];
        let trace = value_loss_ref(&new, &old, &ret, &mask, 0.2);
        assert!((trace.loss - 0.5 * (0.64 + 0.81 + 1.0) / 3.0).abs() < 1e-6);
        assert!((trace.clip_frac - 1.0 / 3.0).abs() < 1e-7);
        assert!(trace.tokens[0].was_clipped && !trace.tokens[2].was_clipped);

        let device = Compute::flex().device;
        let out = value_loss(
            Tensor::from_floats([new], &device),
            Tensor::from_floats([old], &device),
            Tensor::from_floats([ret], &device),
            Tensor::from_floats([mask], &device),
            0.2,
        );
        let read = |t| block_on(read_f32(t)).unwrap()[0];
        assert!((read(out.loss) - trace.loss).abs() < 1e-6);
        assert!((read(out.clip_frac) - trace.clip_frac).abs() < 1e-7);
    }
}
