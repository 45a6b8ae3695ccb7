//! The PPO objective: `total = policy + vf_coef * value - entropy_coeff * entropy`.

use burn::tensor::Tensor;

use super::entropy::{masked_entropy, masked_entropy_ref};
use super::masked::masked_mean;
use super::policy_loss::{PolicyLoss, PolicyTrace, policy_loss, policy_loss_ref};
use super::value_loss::{ValueLoss, ValueTrace, value_loss, value_loss_ref};

/// Coefficients of the objective.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LossCoeffs {
    /// `eps` of the policy clip band `[1 - eps, 1 + eps]`.
    pub clip_ratio: f32,
    /// `c`: how far the new value may move from the old one before clipping.
    pub clip_range_value: f32,
    pub vf_coef: f32,
    pub entropy_coeff: f32,
}

/// The `[B, T]` (logits `[B, T, V]`) inputs of one minibatch.
pub struct LossInputs {
    pub logprobs_new: Tensor<2>,
    pub logprobs_old: Tensor<2>,
    pub advantages: Tensor<2>,
    pub values_new: Tensor<2>,
    pub values_old: Tensor<2>,
    pub returns: Tensor<2>,
    pub response_mask: Tensor<2>,
    /// Without logits the entropy term is left out (entropy is `None`).
    pub logits: Option<Tensor<3>>,
    /// `[B, T]`: each token's entropy where the forward pass already computed it from the logits
    /// ([`ResponseOutputs::entropy`](crate::rollout::generate::ResponseOutputs::entropy)); the
    /// reference entropy piece then averages it instead of recomputing it.
    pub token_entropy: Option<Tensor<2>>,
}

/// Every loss and diagnostic, each a one-element tensor; `total` carries the gradient.
pub struct Losses {
    pub total: Tensor<1>,
    pub policy: Tensor<1>,
    pub value: Tensor<1>,
    pub entropy: Option<Tensor<1>>,
    pub policy_clip_frac: Tensor<1>,
    pub value_clip_frac: Tensor<1>,
    pub approx_kl: Tensor<1>,
}

/// The three pieces the objective is made of (exercises 1-3): the reference's, or the
/// student's where written (the `pieces` of a [`Functions`](super::Functions) table).
#[derive(Clone, Copy)]
pub struct Pieces {
    pub policy_loss: fn(Tensor<2>, Tensor<2>, Tensor<2>, Tensor<2>, f32) -> PolicyLoss,
    pub value_loss: fn(Tensor<2>, Tensor<2>, Tensor<2>, Tensor<2>, f32) -> ValueLoss,
    /// `(logits, response_mask, token_entropy)`: the token entropies are the forward pass's,
    /// when it computed them (see [`LossInputs::token_entropy`]).
    pub masked_entropy: fn(Tensor<3>, Tensor<2>, Option<Tensor<2>>) -> Tensor<1>,
}

/// The reference pieces of `src/ppo/`.
pub const REFERENCE_PIECES: Pieces = Pieces {
    policy_loss,
    value_loss,
    masked_entropy: reference_masked_entropy,
};

/// The reference entropy piece: the mean of the forward pass's token entropies where it has
/// them, else [`masked_entropy`] of the logits (the same value; tested in `fused_scores`).
pub fn reference_masked_entropy(
    logits: Tensor<3>,
    response_mask: Tensor<2>,
    token_entropy: Option<Tensor<2>>,
) -> Tensor<1> {
    match token_entropy {
        Some(entropy) => masked_mean(entropy, response_mask),
        None => masked_entropy(logits, response_mask),
    }
}

/// The objective from the reference pieces.
pub fn ppo_losses(inputs: LossInputs, coeffs: LossCoeffs) -> Losses {
    ppo_losses_with(&REFERENCE_PIECES, inputs, coeffs)
}

/// The objective from the given pieces.
pub fn ppo_losses_with(pieces: &Pieces, inputs: LossInputs, coeffs: LossCoeffs) -> Losses {
    let mask = inputs.response_mask;
    let policy = (pieces.policy_loss)(
        inputs.logprobs_new,
        inputs.logprobs_old,
        inputs.advantages,
        mask.clone(),
        coeffs.clip_ratio,
    );
    let value = (pieces.value_loss)(
        inputs.values_new,
        inputs.values_old,
        inputs.returns,
        mask.clone(),
        coeffs.clip_range_value,
    );
    let token_entropy = inputs.token_entropy;
    let entropy = inputs
        .logits
        .map(|logits| (pieces.masked_entropy)(logits, mask, token_entropy));

    // The entropy bonus is subtracted: higher entropy lowers the loss.
    let mut total = policy.loss.clone() + value.loss.clone() * coeffs.vf_coef;
    if let Some(entropy) = &entropy {
        total = total - entropy.clone() * coeffs.entropy_coeff;
    }
    Losses {
        total,
        policy: policy.loss,
        value: value.loss,
        entropy,
        policy_clip_frac: policy.clip_frac,
        value_clip_frac: value.clip_frac,
        approx_kl: policy.approx_kl,
    }
}

/// The scalar objective over one sequence (or a batch laid end to end), with its traces.
#[derive(Clone, Debug, PartialEq)]
pub struct LossesTrace {
    pub policy: PolicyTrace,
    pub value: ValueTrace,
    pub entropy: Option<f32>,
    pub total: f32,
}

/// Scalar inputs of one sequence: per-token slices, logits per position when given.
pub struct LossInputsRef<'a> {
    pub logprobs_new: &'a [f32],
    pub logprobs_old: &'a [f32],
    pub advantages: &'a [f32],
    pub values_new: &'a [f32],
    pub values_old: &'a [f32],
    pub returns: &'a [f32],
    pub response_mask: &'a [f32],
    pub logits: Option<&'a [Vec<f32>]>,
}

pub fn ppo_losses_ref(inputs: &LossInputsRef<'_>, coeffs: LossCoeffs) -> LossesTrace {
    let mask = inputs.response_mask;
    let policy = policy_loss_ref(
        inputs.logprobs_new,
        inputs.logprobs_old,
        inputs.advantages,
        mask,
        coeffs.clip_ratio,
    );
    let value = value_loss_ref(
        inputs.values_new,
        inputs.values_old,
        inputs.returns,
        mask,
        coeffs.clip_range_value,
    );
    let entropy = inputs.logits.map(|logits| masked_entropy_ref(logits, mask));
    let total =
        policy.loss + coeffs.vf_coef * value.loss - coeffs.entropy_coeff * entropy.unwrap_or(0.0);
    LossesTrace {
        policy,
        value,
        entropy,
        total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::{Compute, block_on, read_f32};
    use crate::ppo::testutil::Lcg;
    use burn::tensor::TensorData;

    /// Property test: random batches, masks and coefficients; the tensor objective equals the
    /// scalar one computed over the batch laid end to end.
    #[test]
    fn tensor_and_scalar_objectives_agree() {
        let device = Compute::flex().device;
        let mut rng = Lcg(42);
        for case in 0..25 {
            let (batch, len, vocab) = (1 + rng.below(3), 1 + rng.below(6), 2 + rng.below(5));
            let n = batch * len;
            let mut draw = |lo, hi| (0..n).map(|_| rng.range(lo, hi)).collect::<Vec<f32>>();
            let (new, old, adv) = (draw(-3.0, 0.0), draw(-3.0, 0.0), draw(-2.0, 2.0));
            let (vnew, vold, ret) = (draw(-1.0, 1.0), draw(-1.0, 1.0), draw(-1.0, 1.0));
            let logits: Vec<Vec<f32>> = (0..n)
                .map(|_| (0..vocab).map(|_| rng.range(-4.0, 4.0)).collect())
                .collect();
            let lens: Vec<usize> = (0..batch).map(|_| 1 + rng.below(len)).collect();
            let mask: Vec<f32> = (0..n)
                .map(|i| f32::from(u8::from(i % len < lens[i / len])))
                .collect();
            let coeffs = LossCoeffs {
                clip_ratio: rng.range(0.05, 0.3),
                clip_range_value: rng.range(0.05, 0.5),
                vf_coef: rng.range(0.0, 1.0),
                entropy_coeff: rng.range(0.0, 0.05),
            };

            let t2 = |v: &Vec<f32>| {
                Tensor::<2>::from_data(TensorData::new(v.clone(), [batch, len]), &device)
            };
            let losses = ppo_losses(
                LossInputs {
                    logprobs_new: t2(&new),
                    logprobs_old: t2(&old),
                    advantages: t2(&adv),
                    values_new: t2(&vnew),
                    values_old: t2(&vold),
                    returns: t2(&ret),
                    response_mask: t2(&mask),
                    logits: Some(Tensor::from_data(
                        TensorData::new(logits.concat(), [batch, len, vocab]),
                        &device,
                    )),
                    token_entropy: None,
                },
                coeffs,
            );
            let trace = ppo_losses_ref(
                &LossInputsRef {
                    logprobs_new: &new,
                    logprobs_old: &old,
                    advantages: &adv,
                    values_new: &vnew,
                    values_old: &vold,
                    returns: &ret,
                    response_mask: &mask,
                    logits: Some(&logits),
                },
                coeffs,
            );
            let read = |t: Tensor<1>| block_on(read_f32(t)).unwrap()[0];
            let pairs = [
                (read(losses.total), trace.total),
                (read(losses.policy), trace.policy.loss),
                (read(losses.value), trace.value.loss),
                (read(losses.entropy.unwrap()), trace.entropy.unwrap()),
                (read(losses.policy_clip_frac), trace.policy.clip_frac),
                (read(losses.value_clip_frac), trace.value.clip_frac),
                (read(losses.approx_kl), trace.policy.approx_kl),
            ];
            for (i, (got, want)) in pairs.iter().enumerate() {
                assert!(
                    (got - want).abs() < 1e-5,
                    "case {case}, quantity {i}: {got} vs {want}"
                );
            }
        }
    }
}
