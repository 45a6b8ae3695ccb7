//! The KL to the reference as a penalty on a whole response's score, for the objectives that
//! treat a response as one action (REINFORCE, RLOO).
//!
//! Per response `i`, over its real tokens, with the log-probabilities of the policy that sampled
//! it (`old`) and of the frozen reference:
//! ```text
//! kl_i = sum_t m_it (logp_old_it - ref_logp_it)     (k1 summed over the response)
//! r'_i = r_i - beta * kl_i
//! ```
//! and the baseline is then taken over the penalised scores `r'`. This is what TRL's RLOOTrainer
//! does (following Ahmadian et al. 2024). The k1 estimate can be negative on a token and on a
//! response (it is unbiased for the KL only in expectation); PPO puts the same k1 on each token
//! as a reward ([`rewards`](super::rewards)), GRPO puts k3 (never negative) in the loss
//! ([`grpo_loss`](super::grpo_loss)).

use burn::tensor::Tensor;

/// The tensor form: `scores` `[B]`, the rest `[B, T]`; returns `(r', kl)`, both `[B]`.
pub fn kl_penalised_scores(
    scores: Tensor<1>,
    logprobs_old: Tensor<2>,
    ref_logprobs: Tensor<2>,
    response_mask: Tensor<2>,
    beta: f32,
) -> (Tensor<1>, Tensor<1>) {
    let [b, _] = response_mask.dims();
    let kl = ((logprobs_old - ref_logprobs) * response_mask)
        .sum_dim(1)
        .reshape([b]);
    (scores - kl.clone() * beta, kl)
}

/// One response of the scalar form.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PenalisedScore {
    pub score: f32,
    /// `sum_t m (logp_old - ref_logp)`.
    pub kl: f32,
    /// `score - beta * kl`.
    pub penalised: f32,
}

/// The scalar form over rows `[B][T]`.
pub fn kl_penalised_scores_ref(
    scores: &[f32],
    logprobs_old: &[Vec<f32>],
    ref_logprobs: &[Vec<f32>],
    response_mask: &[Vec<f32>],
    beta: f32,
) -> Vec<PenalisedScore> {
    scores
        .iter()
        .enumerate()
        .map(|(i, &score)| {
            let kl: f32 = (logprobs_old[i].iter().zip(&ref_logprobs[i]))
                .zip(&response_mask[i])
                .map(|((old, r), m)| (old - r) * m)
                .sum();
            PenalisedScore {
                score,
                kl,
                penalised: score - beta * kl,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::{Compute, block_on, read_f32};
    use crate::ppo::group_advantages::scores_tensor;
    use burn::tensor::TensorData;

    #[test]
    fn hand_worked_and_tensor_form() {
        let ln = f32::ln;
        // Response 0 is twice as likely under the policy on its one token: kl = ln 2.
        // Response 1: ln(0.5/0.25) + ln(0.2/0.4) = 0 over its two tokens; padding ignored.
        let old = vec![vec![ln(0.5), 7.0, 7.0], vec![ln(0.5), ln(0.2), 7.0]];
        let reference = vec![vec![ln(0.25), 0.0, 0.0], vec![ln(0.25), ln(0.4), 0.0]];
        let mask = vec![vec![1.0, 0.0, 0.0], vec![1.0, 1.0, 0.0]];
        let scores = [1.0, 1.0];
        let rows = kl_penalised_scores_ref(&scores, &old, &reference, &mask, 0.1);
        assert!((rows[0].kl - ln(2.0)).abs() < 1e-6);
        assert!((rows[0].penalised - (1.0 - 0.1 * ln(2.0))).abs() < 1e-6);
        assert!(rows[1].kl.abs() < 1e-6 && (rows[1].penalised - 1.0).abs() < 1e-6);

        let device = Compute::flex().device;
        let t2 = |rows: &[Vec<f32>]| {
            let flat: Vec<f32> = rows.iter().flatten().copied().collect();
            Tensor::<2>::from_data(TensorData::new(flat, [2, 3]), &device)
        };
        let (penalised, kl) = kl_penalised_scores(
            scores_tensor(&scores, &device),
            t2(&old),
            t2(&reference),
            t2(&mask),
            0.1,
        );
        let (penalised, kl) = (
            block_on(read_f32(penalised)).unwrap(),
            block_on(read_f32(kl)).unwrap(),
        );
        for (i, row) in rows.iter().enumerate() {
            assert!((penalised[i] - row.penalised).abs() < 1e-6);
            assert!((kl[i] - row.kl).abs() < 1e-6);
        }
    }
}
