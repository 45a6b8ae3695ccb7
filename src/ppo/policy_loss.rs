//! The clipped surrogate policy loss.
//!
//! With `ratio = exp(logp_new - logp_old)` per response token and advantage `A`:
//! ```text
//! loss = masked_mean( max(-A * ratio, -A * clip(ratio, 1 - eps, 1 + eps)) )
//! ```
//! `A` is the advantage as the update uses it. With whitening on it is `(A_raw - mean) / std`
//! over the batch, positive when the token's raw advantage `A_raw` is above the batch mean (not
//! when it is above 0); under GRPO it is the response's group advantage.
//!
//! Minimising the larger (more pessimistic) of the two terms means a token stops pulling once
//! its probability has moved far enough in the direction its advantage asks for: when `A > 0`
//! and `ratio > 1 + eps`, or `A < 0` and `ratio < 1 - eps`, the clipped term wins, it does not
//! depend on `logp_new`, and the gradient of this token's term is zero. The clip is one-sided
//! and is not a cap: the token's probability can still move further, through the weights it
//! shares with other tokens and AdamW's momentum. Moves in the wrong direction are never
//! clipped, so their gradient always pulls them back.
//!
//! Diagnostics, both without gradient: `policy_clip_frac`, the share of real tokens where the
//! clipped term is strictly larger; `approx_kl = 0.5 * masked_mean((logp_new - logp_old)^2)`,
//! an estimate of the KL between the policy that sampled the batch and the policy being
//! trained (a measure of the update's step size, not the KL to the reference).

use burn::tensor::Tensor;

use super::clip_range::ClipRange;
use super::masked::{masked_mean, masked_mean_ref};

/// What [`policy_loss`] returns, each a one-element tensor.
pub struct PolicyLoss {
    pub loss: Tensor<1>,
    pub clip_frac: Tensor<1>,
    pub approx_kl: Tensor<1>,
}

/// The loss over a batch; every input is `[B, T]`. Gradients flow through `logprobs_new` only.
pub fn policy_loss(
    logprobs_new: Tensor<2>,
    logprobs_old: Tensor<2>,
    advantages: Tensor<2>,
    response_mask: Tensor<2>,
    clip_ratio: f32,
) -> PolicyLoss {
    let log_ratio = logprobs_new - logprobs_old;
    let ratio = log_ratio.clone().exp();
    let unclipped = -advantages.clone() * ratio.clone();
    let clipped = -advantages * ratio.clamp(1.0 - clip_ratio, 1.0 + clip_ratio);
    let loss = masked_mean(
        unclipped.clone().max_pair(clipped.clone()),
        response_mask.clone(),
    );

    let was_clipped = clipped.detach().greater(unclipped.detach()).float();
    let clip_frac = masked_mean(was_clipped, response_mask.clone());
    let approx_kl = masked_mean(log_ratio.detach().powf_scalar(2.0), response_mask) * 0.5;
    PolicyLoss {
        loss,
        clip_frac,
        approx_kl,
    }
}

/// Why a token's clipped term won, or that it did not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PolicyClip {
    /// The unclipped term counts: the token's gradient flows.
    No,
    /// `A > 0` and `ratio > 1 + eps`: the token's probability rose past the band, so its term
    /// no longer rewards raising it.
    AboveBand,
    /// `A < 0` and `ratio < 1 - eps`: the token's probability fell past the band, so its term
    /// no longer rewards lowering it.
    BelowBand,
}

/// One real token of the scalar form.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PolicyToken {
    pub t: usize,
    pub logp_old: f32,
    pub logp_new: f32,
    pub ratio: f32,
    pub advantage: f32,
    /// `-A * ratio`.
    pub unclipped: f32,
    /// `-A * clip(ratio, 1 - eps, 1 + eps)`.
    pub clipped: f32,
    /// The larger of the two: this token's share of the loss.
    pub term: f32,
    pub clip: PolicyClip,
}

/// Scalar form over one sequence (or a batch laid end to end).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PolicyTrace {
    pub tokens: Vec<PolicyToken>,
    pub loss: f32,
    pub clip_frac: f32,
    pub approx_kl: f32,
}

pub fn policy_loss_ref(
    logprobs_new: &[f32],
    logprobs_old: &[f32],
    advantages: &[f32],
    response_mask: &[f32],
    clip: impl Into<ClipRange>,
) -> PolicyTrace {
    let band = clip.into();
    let n = response_mask.len();
    let (mut terms, mut clipped_flags, mut sq_log_ratio) =
        (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    let mut tokens = Vec::new();
    for t in 0..n {
        let log_ratio = logprobs_new[t] - logprobs_old[t];
        let ratio = log_ratio.exp();
        let a = advantages[t];
        let unclipped = -a * ratio;
        let clipped = -a * band.clamp(ratio);
        let term = unclipped.max(clipped);
        let clip = if clipped > unclipped {
            if ratio > 1.0 {
                PolicyClip::AboveBand
            } else {
                PolicyClip::BelowBand
            }
        } else {
            PolicyClip::No
        };
        terms[t] = term;
        clipped_flags[t] = f32::from(u8::from(clip != PolicyClip::No));
        sq_log_ratio[t] = log_ratio * log_ratio;
        if response_mask[t] == 1.0 {
            tokens.push(PolicyToken {
                t,
                logp_old: logprobs_old[t],
                logp_new: logprobs_new[t],
                ratio,
                advantage: a,
                unclipped,
                clipped,
                term,
                clip,
            });
        }
    }
    PolicyTrace {
        tokens,
        loss: masked_mean_ref(&terms, response_mask),
        clip_frac: masked_mean_ref(&clipped_flags, response_mask),
        approx_kl: 0.5 * masked_mean_ref(&sq_log_ratio, response_mask),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::{Compute, block_on, read_f32};

    /// Gradient of the loss w.r.t. `logprobs_new` for one token per column.
    fn grad_wrt_new(new: [f32; 4], advantages: [f32; 4], eps: f32) -> Vec<f32> {
        let device = Compute::flex().device.autodiff();
        let logp_new = Tensor::<2>::from_floats([new], &device).require_grad();
        let zeros = Tensor::<2>::zeros([1, 4], &device);
        let out = policy_loss(
            logp_new.clone(),
            zeros.clone(),
            Tensor::from_floats([advantages], &device),
            Tensor::ones([1, 4], &device),
            eps,
        );
        let grads = out.loss.backward();
        block_on(read_f32(logp_new.grad(&grads).unwrap())).unwrap()
    }

    #[test]
    fn positive_advantage_stops_pulling_above_the_band() {
        // logp_old = 0, so ratio = e^{logp_new}: e^0.5 = 1.65 and e^0.3 = 1.35 are above 1.2,
        // e^0.1 = 1.105 is inside, e^-0.5 = 0.61 is below (wrong direction: never clipped).
        let g = grad_wrt_new([0.5, 0.3, 0.1, -0.5], [1.0; 4], 0.2);
        assert_eq!(g[0], 0.0);
        assert_eq!(g[1], 0.0);
        // Inside: d/dlogp of mean(-A e^logp) = -A e^logp / 4.
        assert!((g[2] - (-(0.1f32).exp() / 4.0)).abs() < 1e-6, "{g:?}");
        assert!((g[3] - (-(-0.5f32).exp() / 4.0)).abs() < 1e-6, "{g:?}");
    }

    #[test]
    fn negative_advantage_stops_pushing_below_the_band() {
        let g = grad_wrt_new([-0.5, -0.3, -0.1, 0.5], [-1.0; 4], 0.2);
        assert_eq!(g[0], 0.0);
        assert_eq!(g[1], 0.0);
        assert!((g[2] - ((-0.1f32).exp() / 4.0)).abs() < 1e-6, "{g:?}");
        assert!((g[3] - ((0.5f32).exp() / 4.0)).abs() < 1e-6, "{g:?}");
    }

    #[test]
    fn hand_worked_loss_clip_fraction_and_kl() {
        // Token 0: A = 2, ratio = e^0.5 = 1.6487 > 1.2: terms -3.2974 vs -2.4 -> -2.4, clipped.
        // Token 1: A = -1, ratio = 1: terms 1 and 1 -> 1, not clipped.
        // Token 2: padding.
        let new = [0.5, -1.0, 3.0];
        let old = [0.0, -1.0, 0.0];
        let adv = [2.0, -1.0, 9.0];
        let mask = [1.0, 1.0, 0.0];
        let trace = policy_loss_ref(&new, &old, &adv, &mask, 0.2);
        assert!((trace.loss - (-2.4 + 1.0) / 2.0).abs() < 1e-6);
        assert_eq!(trace.clip_frac, 0.5);
        assert!((trace.approx_kl - 0.5 * 0.25 / 2.0).abs() < 1e-7);
        assert_eq!(trace.tokens.len(), 2);
        assert_eq!(trace.tokens[0].clip, PolicyClip::AboveBand);
        assert_eq!(trace.tokens[1].clip, PolicyClip::No);

        let device = Compute::flex().device;
        let out = policy_loss(
            Tensor::from_floats([new], &device),
            Tensor::from_floats([old], &device),
            Tensor::from_floats([adv], &device),
            Tensor::from_floats([mask], &device),
            0.2,
        );
        let read = |t| block_on(read_f32(t)).unwrap()[0];
        assert!((read(out.loss) - trace.loss).abs() < 1e-6);
        assert_eq!(read(out.clip_frac), 0.5);
        assert!((read(out.approx_kl) - trace.approx_kl).abs() < 1e-7);
    }
}
