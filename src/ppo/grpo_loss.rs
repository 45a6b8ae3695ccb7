//! GRPO's objective: PPO's clipped surrogate on group-relative advantages, with the KL to the
//! frozen reference as a loss term instead of a reward penalty, and no value loss.
//!
//! Per real token, with `ratio = exp(logp_new - logp_old)` and `log_r = ref_logp - logp_new`:
//! ```text
//! pg_t   = max(-A * ratio, -A * clip(ratio, 1 - eps, 1 + eps))   (the PPO policy term)
//! kl_t   = exp(log_r) - log_r - 1                                  (k3, >= 0, has a gradient)
//! loss_t = pg_t + beta * kl_t
//! ```
//! and the tokens are aggregated as [`LossAgg`] says: `seq-mean-token-mean` (TRL `grpo`, the
//! paper's), `token-mean` (TRL `bnpo`, DAPO's) or `seq-mean-token-sum-norm` (TRL `dr_grpo`).
//! The clip band may be decoupled, `[1 - eps_low, 1 + eps_high]` ([`ClipRange`], DAPO's
//! clip-higher); `eps` alone is the symmetric band.
//!
//! Diagnostics without gradient, as in [`policy_loss`](super::policy_loss): `clip_frac`, the
//! share of real tokens whose clipped term is strictly larger, and
//! `approx_kl = 0.5 * masked_mean((logp_new - logp_old)^2)`.

use burn::tensor::Tensor;

use super::clip_range::ClipRange;
pub use super::loss_agg::LossAgg;
use super::masked::masked_mean;
use super::policy_loss::PolicyClip;

/// The critic-free members' own coefficients of the update (GRPO, Dr. GRPO, DAPO, RLOO,
/// REINFORCE: see [`family`](super::family)).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GrpoCoeffs {
    /// The weight of the k3 KL term in the loss (0: no KL term in the loss).
    pub beta: f32,
    /// How token terms become one loss (with one ratio per token).
    pub agg: LossAgg,
    /// The clip band ([`ClipRange::NONE`]: no clip, REINFORCE).
    pub clip: ClipRange,
    /// One ratio per response ([`sequence_loss`](super::sequence_loss), REINFORCE and RLOO)
    /// instead of one per token; `agg` and `beta` are then unused (their KL is in the score).
    pub per_response: bool,
}

impl GrpoCoeffs {
    /// GRPO's: one ratio per token, clipped to `clip`.
    pub fn grpo(beta: f32, agg: LossAgg, clip: ClipRange) -> Self {
        Self {
            beta,
            agg,
            clip,
            per_response: false,
        }
    }
}

/// What [`grpo_loss`] returns, each a one-element tensor; `loss = policy + beta * kl`.
pub struct GrpoLoss {
    pub loss: Tensor<1>,
    /// The clipped surrogate alone, aggregated like the loss.
    pub policy: Tensor<1>,
    /// The k3 KL to the reference, aggregated like the loss.
    pub kl: Tensor<1>,
    pub clip_frac: Tensor<1>,
    pub approx_kl: Tensor<1>,
}

/// The loss over a batch; every input is `[B, T]`. Gradients flow through `logprobs_new` (in the
/// surrogate and in the KL term).
pub fn grpo_loss(
    logprobs_new: Tensor<2>,
    logprobs_old: Tensor<2>,
    ref_logprobs: Tensor<2>,
    advantages: Tensor<2>,
    response_mask: Tensor<2>,
    clip: impl Into<ClipRange>,
    beta: f32,
    agg: LossAgg,
) -> GrpoLoss {
    let clip = clip.into();
    let log_ratio = logprobs_new.clone() - logprobs_old;
    let ratio = log_ratio.clone().exp();
    let unclipped = -advantages.clone() * ratio.clone();
    let clipped = -advantages * clip.clamp_tensor(ratio);
    let pg = unclipped.clone().max_pair(clipped.clone());
    let log_r = ref_logprobs - logprobs_new;
    let kl = log_r.clone().exp() - log_r - 1.0;
    let per_token = pg.clone() + kl.clone() * beta;

    let was_clipped = clipped.detach().greater(unclipped.detach()).float();
    GrpoLoss {
        loss: agg.apply(per_token, response_mask.clone()),
        policy: agg.apply(pg.detach(), response_mask.clone()),
        kl: agg.apply(kl.detach(), response_mask.clone()),
        clip_frac: masked_mean(was_clipped, response_mask.clone()),
        approx_kl: masked_mean(log_ratio.detach().powf_scalar(2.0), response_mask) * 0.5,
    }
}

/// One real token of the scalar form.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GrpoToken {
    pub t: usize,
    pub ratio: f32,
    pub advantage: f32,
    /// `max(-A * ratio, -A * clip(ratio))`.
    pub pg: f32,
    /// `exp(log_r) - log_r - 1`.
    pub kl: f32,
    /// `pg + beta * kl`.
    pub term: f32,
    pub clip: PolicyClip,
}

/// The scalar form over a batch, every token's step kept.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GrpoTrace {
    /// Per response, its real tokens.
    pub rows: Vec<Vec<GrpoToken>>,
    pub loss: f32,
    pub policy: f32,
    pub kl: f32,
    pub clip_frac: f32,
    pub approx_kl: f32,
}

/// The inputs of the scalar form, rows `[B][T]`.
pub struct GrpoRows<'a> {
    pub logprobs_new: &'a [Vec<f32>],
    pub logprobs_old: &'a [Vec<f32>],
    pub ref_logprobs: &'a [Vec<f32>],
    pub advantages: &'a [Vec<f32>],
    pub response_mask: &'a [Vec<f32>],
}

pub fn grpo_loss_ref(
    x: &GrpoRows,
    clip: impl Into<ClipRange>,
    beta: f32,
    agg: LossAgg,
) -> GrpoTrace {
    let clip = clip.into();
    let b = x.response_mask.len();
    let mut rows = Vec::with_capacity(b);
    let (mut pg_rows, mut kl_rows, mut term_rows) = (Vec::new(), Vec::new(), Vec::new());
    let (mut clipped_tokens, mut sq_log_ratio, mut real) = (0f32, 0f32, 0f32);
    for i in 0..b {
        let n = x.response_mask[i].len();
        let (mut pg_row, mut kl_row, mut term_row) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        let mut tokens = Vec::new();
        for t in 0..n {
            if x.response_mask[i][t] == 0.0 {
                continue;
            }
            let (new, old) = (x.logprobs_new[i][t], x.logprobs_old[i][t]);
            let ratio = (new - old).exp();
            let a = x.advantages[i][t];
            let unclipped = -a * ratio;
            let clipped = -a * clip.clamp(ratio);
            let pg = unclipped.max(clipped);
            let log_r = x.ref_logprobs[i][t] - new;
            let kl = log_r.exp() - log_r - 1.0;
            let term = pg + beta * kl;
            let clip = match (clipped > unclipped, ratio > 1.0) {
                (false, _) => PolicyClip::No,
                (true, true) => PolicyClip::AboveBand,
                (true, false) => PolicyClip::BelowBand,
            };
            clipped_tokens += f32::from(u8::from(clip != PolicyClip::No));
            sq_log_ratio += (new - old) * (new - old);
            real += 1.0;
            (pg_row[t], kl_row[t], term_row[t]) = (pg, kl, term);
            tokens.push(GrpoToken {
                t,
                ratio,
                advantage: a,
                pg,
                kl,
                term,
                clip,
            });
        }
        rows.push(tokens);
        pg_rows.push(pg_row);
        kl_rows.push(kl_row);
        term_rows.push(term_row);
    }
    let mask = x.response_mask;
    GrpoTrace {
        rows,
        loss: agg.apply_ref(&term_rows, mask),
        policy: agg.apply_ref(&pg_rows, mask),
        kl: agg.apply_ref(&kl_rows, mask),
        clip_frac: clipped_tokens / real,
        approx_kl: 0.5 * sq_log_ratio / real,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::{Compute, block_on, read_f32};
    use burn::tensor::TensorData;

    fn t2(rows: &[Vec<f32>], device: &burn::tensor::Device) -> Tensor<2> {
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        Tensor::from_data(TensorData::new(flat, [rows.len(), rows[0].len()]), device)
    }

    /// Two responses, one of 1 token, one of 3 (its last position padding of width 4).
    fn case() -> [Vec<Vec<f32>>; 5] {
        let ln = f32::ln;
        [
            // new
            vec![
                vec![ln(0.5), 0.0, 0.0, 0.0],
                vec![ln(0.3), ln(0.2), ln(0.9), 0.0],
            ],
            // old
            vec![
                vec![ln(0.4), 0.0, 0.0, 0.0],
                vec![ln(0.3), ln(0.4), ln(0.6), 0.0],
            ],
            // ref
            vec![
                vec![ln(0.5), 0.0, 0.0, 0.0],
                vec![ln(0.6), ln(0.2), ln(0.45), 0.0],
            ],
            // advantages: response 0 good, response 1 bad
            vec![vec![1.0, 0.0, 0.0, 0.0], vec![-1.0, -1.0, -1.0, 0.0]],
            // mask
            vec![vec![1.0, 0.0, 0.0, 0.0], vec![1.0, 1.0, 1.0, 0.0]],
        ]
    }

    #[test]
    fn hand_worked_terms_and_both_aggregations() {
        let [new, old, reference, adv, mask] = case();
        let rows = GrpoRows {
            logprobs_new: &new,
            logprobs_old: &old,
            ref_logprobs: &reference,
            advantages: &adv,
            response_mask: &mask,
        };
        let trace = grpo_loss_ref(&rows, 0.2, 0.1, LossAgg::SeqMeanTokenMean);
        // Response 0: ratio 1.25 > 1.2 with A = 1: clipped, pg = -1.2; same as the reference: kl 0.
        let t0 = &trace.rows[0][0];
        assert!((t0.ratio - 1.25).abs() < 1e-6 && (t0.pg + 1.2).abs() < 1e-6);
        assert_eq!(t0.clip, PolicyClip::AboveBand);
        assert!(t0.kl.abs() < 1e-7);
        // Response 1, token 0: ratio 1, pg = 1; log_r = ln 2: kl = 2 - ln 2 - 1 = 0.306853.
        let t = &trace.rows[1];
        assert!((t[0].pg - 1.0).abs() < 1e-6 && (t[0].kl - 0.306_853).abs() < 1e-5);
        // Token 1: ratio 0.5 < 0.8 with A = -1: clipped, pg = 0.8; log_r = 0: kl 0.
        assert_eq!(t[1].clip, PolicyClip::BelowBand);
        assert!((t[1].pg - 0.8).abs() < 1e-6 && t[1].kl.abs() < 1e-7);
        // Token 2: ratio 1.5, A = -1: never clipped (wrong way), pg = 1.5; log_r = ln 0.5:
        // kl = 0.5 + ln 2 - 1 = 0.193147.
        assert_eq!(t[2].clip, PolicyClip::No);
        assert!((t[2].pg - 1.5).abs() < 1e-6 && (t[2].kl - 0.193_147).abs() < 1e-5);
        // Sequence means: response 0: -1.2; response 1: (1 + 0.8 + 1.5) / 3 + 0.1 * 0.5/3.
        let r1 = 3.3 / 3.0 + 0.1 * (0.306_853 + 0.193_147) / 3.0;
        assert!(
            (trace.loss - (-1.2 + r1) / 2.0).abs() < 1e-5,
            "{}",
            trace.loss
        );
        assert!((trace.clip_frac - 0.5).abs() < 1e-6);
        // Token mean: (-1.2 + 3.3 + 0.1 * 0.5) / 4.
        let tm = grpo_loss_ref(&rows, 0.2, 0.1, LossAgg::TokenMean);
        assert!((tm.loss - (2.1 + 0.05) / 4.0).abs() < 1e-5, "{}", tm.loss);
        assert!((tm.kl - 0.5 / 4.0).abs() < 1e-6);
        // The short good response weighs half of the loss per sequence, a quarter per token.
        assert!(trace.loss < tm.loss);
    }

    #[test]
    fn tensor_form_equals_the_scalar_form() {
        let device = Compute::flex().device;
        let [new, old, reference, adv, mask] = case();
        let rows = GrpoRows {
            logprobs_new: &new,
            logprobs_old: &old,
            ref_logprobs: &reference,
            advantages: &adv,
            response_mask: &mask,
        };
        for agg in [LossAgg::TokenMean, LossAgg::SeqMeanTokenMean] {
            let want = grpo_loss_ref(&rows, 0.2, 0.04, agg);
            let got = grpo_loss(
                t2(&new, &device),
                t2(&old, &device),
                t2(&reference, &device),
                t2(&adv, &device),
                t2(&mask, &device),
                0.2,
                0.04,
                agg,
            );
            let read = |x: Tensor<1>| block_on(read_f32(x)).unwrap()[0];
            for (g, w) in [
                (read(got.loss), want.loss),
                (read(got.policy), want.policy),
                (read(got.kl), want.kl),
                (read(got.clip_frac), want.clip_frac),
                (read(got.approx_kl), want.approx_kl),
            ] {
                assert!((g - w).abs() < 1e-6, "{agg:?}: {g} vs {w}");
            }
        }
        assert_eq!(
            LossAgg::parse("seq-mean-token-mean"),
            Ok(LossAgg::SeqMeanTokenMean)
        );
        assert!(LossAgg::parse("grpo").unwrap_err().contains("token-mean"));
    }
}
