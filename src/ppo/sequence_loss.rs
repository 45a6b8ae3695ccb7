//! A whole response as one action: the clipped surrogate on the ratio of the response's
//! probability, as REINFORCE and RLOO treat it (TRL's RLOOTrainer).
//!
//! Per response `i` with advantage `A_i`, over its real tokens:
//! ```text
//! log_ratio_i = sum_t m_it (logp_new_it - logp_old_it)      (the response's log-probability ratio)
//! ratio_i     = exp(log_ratio_i)
//! pg_i        = max(-A_i * ratio_i, -A_i * clip(ratio_i, 1 - eps_low, 1 + eps_high))
//! loss        = (1/B) sum_i pg_i
//! ```
//! Without a clip (REINFORCE, [`ClipRange::NONE`]), `pg_i = -A_i * ratio_i`. At the first step of an update the new
//! policy is the old one, `ratio_i = 1`, and the gradient is `-(1/B) sum_i A_i grad sum_t logp`:
//! exactly REINFORCE's. Where PPO and GRPO give every token its own ratio and clip, here one
//! ratio covers the response: a response of 30 tokens that each moved by 1% has a ratio of
//! about 1.35 and is clipped as a whole.

use burn::tensor::Tensor;

use super::clip_range::ClipRange;
use super::policy_loss::PolicyClip;

/// What [`sequence_loss`] returns, each a one-element tensor.
pub struct SequenceLoss {
    pub loss: Tensor<1>,
    /// The share of responses whose clipped term is strictly larger.
    pub clip_frac: Tensor<1>,
}

/// The tensor form: `logprobs_*` and `response_mask` `[B, T]`, `advantages` `[B]`. Gradients flow
/// through `logprobs_new`.
pub fn sequence_loss(
    logprobs_new: Tensor<2>,
    logprobs_old: Tensor<2>,
    advantages: Tensor<1>,
    response_mask: Tensor<2>,
    clip: impl Into<ClipRange>,
) -> SequenceLoss {
    let [b, _] = response_mask.dims();
    let log_ratio = ((logprobs_new - logprobs_old) * response_mask)
        .sum_dim(1)
        .reshape([b]);
    let ratio = log_ratio.exp();
    let unclipped = -advantages.clone() * ratio.clone();
    let clipped = -advantages * clip.into().clamp_tensor(ratio);
    let was_clipped = clipped.clone().detach().greater(unclipped.clone().detach());
    SequenceLoss {
        loss: unclipped.max_pair(clipped).mean(),
        clip_frac: was_clipped.float().mean(),
    }
}

/// One response of the scalar form.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SequenceStep {
    pub log_ratio: f32,
    pub ratio: f32,
    pub advantage: f32,
    /// `max(-A * ratio, -A * clip(ratio))`, or `-A * ratio` without a clip.
    pub pg: f32,
    pub clip: PolicyClip,
}

/// The scalar form over a batch, every response's step kept.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SequenceTrace {
    pub rows: Vec<SequenceStep>,
    pub loss: f32,
    pub clip_frac: f32,
}

/// The scalar form of [`sequence_loss`] over rows `[B][T]`.
pub fn sequence_loss_ref(
    logprobs_new: &[Vec<f32>],
    logprobs_old: &[Vec<f32>],
    advantages: &[f32],
    response_mask: &[Vec<f32>],
    clip: impl Into<ClipRange>,
) -> SequenceTrace {
    let c = clip.into();
    let rows: Vec<SequenceStep> = advantages
        .iter()
        .enumerate()
        .map(|(i, &a)| {
            let log_ratio: f32 = (logprobs_new[i].iter().zip(&logprobs_old[i]))
                .zip(&response_mask[i])
                .map(|((new, old), m)| (new - old) * m)
                .sum();
            let ratio = log_ratio.exp();
            let unclipped = -a * ratio;
            let clipped = -a * c.clamp(ratio);
            let clip = match (clipped > unclipped, ratio > 1.0) {
                (false, _) => PolicyClip::No,
                (true, true) => PolicyClip::AboveBand,
                (true, false) => PolicyClip::BelowBand,
            };
            let pg = unclipped.max(clipped);
            SequenceStep {
                log_ratio,
                ratio,
                advantage: a,
                pg,
                clip,
            }
        })
        .collect();
    let b = rows.len().max(1) as f32;
    SequenceTrace {
        loss: rows.iter().map(|r| r.pg).sum::<f32>() / b,
        clip_frac: rows.iter().filter(|r| r.clip != PolicyClip::No).count() as f32 / b,
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::{Compute, block_on, read_f32};
    use crate::ppo::group_advantages::scores_tensor;
    use burn::tensor::TensorData;

    /// Response 0 (A = 1): two tokens, each 1.2 times as likely: ratio 1.44. Response 1 (A = -1):
    /// one token half as likely: ratio 0.5. Response 2 (A = 0.5): unchanged.
    fn case() -> [Vec<Vec<f32>>; 3] {
        let ln = f32::ln;
        [
            vec![
                vec![ln(0.6), ln(0.3), 5.0],
                vec![ln(0.1), 5.0, 5.0],
                vec![ln(0.7), ln(0.7), ln(0.7)],
            ],
            vec![
                vec![ln(0.5), ln(0.25), 0.0],
                vec![ln(0.2), 0.0, 0.0],
                vec![ln(0.7), ln(0.7), ln(0.7)],
            ],
            vec![
                vec![1.0, 1.0, 0.0],
                vec![1.0, 0.0, 0.0],
                vec![1.0, 1.0, 1.0],
            ],
        ]
    }

    #[test]
    fn hand_worked_responses() {
        let [new, old, mask] = case();
        let adv = [1.0, -1.0, 0.5];
        let t = sequence_loss_ref(&new, &old, &adv, &mask, ClipRange::symmetric(0.2));
        assert!((t.rows[0].ratio - 1.44).abs() < 1e-5);
        // Clipped at 1.2 as a whole, though each token moved by a ratio of only 1.2.
        assert_eq!(t.rows[0].clip, PolicyClip::AboveBand);
        assert!((t.rows[0].pg + 1.2).abs() < 1e-5);
        assert_eq!(t.rows[1].clip, PolicyClip::BelowBand);
        assert!((t.rows[1].pg - 0.8).abs() < 1e-5);
        assert!((t.rows[2].ratio - 1.0).abs() < 1e-6 && (t.rows[2].pg + 0.5).abs() < 1e-6);
        assert!((t.loss - (-1.2 + 0.8 - 0.5) / 3.0).abs() < 1e-5);
        assert!((t.clip_frac - 2.0 / 3.0).abs() < 1e-6);
        // DAPO's wider top: 1.44 is still over 1.28.
        let dapo = sequence_loss_ref(&new, &old, &adv, &mask, ClipRange::new(0.2, 0.28).unwrap());
        assert!((dapo.rows[0].pg + 1.28).abs() < 1e-5);
        // No clip (REINFORCE): every response's -A * ratio.
        let plain = sequence_loss_ref(&new, &old, &adv, &mask, ClipRange::NONE);
        assert!((plain.loss - (-1.44 + 0.5 - 0.5) / 3.0).abs() < 1e-5);
        assert_eq!(plain.clip_frac, 0.0);
    }

    #[test]
    fn tensor_form_equals_the_scalar_form() {
        let device = Compute::flex().device;
        let [new, old, mask] = case();
        let adv = [1.0, -1.0, 0.5];
        let t2 = |rows: &[Vec<f32>]| {
            let flat: Vec<f32> = rows.iter().flatten().copied().collect();
            Tensor::<2>::from_data(TensorData::new(flat, [3, 3]), &device)
        };
        for clip in [
            ClipRange::NONE,
            ClipRange::symmetric(0.2),
            ClipRange::new(0.1, 0.5).unwrap(),
        ] {
            let want = sequence_loss_ref(&new, &old, &adv, &mask, clip);
            let got = sequence_loss(
                t2(&new),
                t2(&old),
                scores_tensor(&adv, &device),
                t2(&mask),
                clip,
            );
            let read = |x: Tensor<1>| block_on(read_f32(x)).unwrap()[0];
            assert!((read(got.loss) - want.loss).abs() < 1e-5, "{clip:?}");
            assert!(
                (read(got.clip_frac) - want.clip_frac).abs() < 1e-6,
                "{clip:?}"
            );
        }
    }
}
