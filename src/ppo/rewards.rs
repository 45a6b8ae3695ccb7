//! Token rewards: a KL penalty on every response token, plus the task's score on the last one.
//!
//! `r_t = -kl_coeff * kl_t` for each real token `t`, and the sequence's score is added to `r_t`
//! of its last real token. `kl_t` estimates the KL divergence from the frozen reference model at
//! token `t`, from the sampled token's log-probability under the policy (`logp`) and under the
//! reference (`ref_logp`). With `log r = ref_logp - logp` (samples come from the policy):
//! - `k1 = logp - ref_logp = -log r`: unbiased, can be negative per token (the default);
//! - `k2 = (log r)^2 / 2`: always >= 0, biased, low variance;
//! - `k3 = (r - 1) - log r`: always >= 0 and unbiased (Schulman's estimator).

use burn::tensor::Tensor;

/// Which per-token KL estimator the penalty uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum KlEstimator {
    #[default]
    K1,
    K2,
    K3,
}

impl KlEstimator {
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "k1" => Ok(KlEstimator::K1),
            "k2" => Ok(KlEstimator::K2),
            "k3" => Ok(KlEstimator::K3),
            other => Err(format!(
                "unknown KL estimator `{other}`: expected k1, k2 or k3"
            )),
        }
    }

    /// One token's estimate from its log-probabilities.
    pub fn estimate(self, logp: f32, ref_logp: f32) -> f32 {
        let log_r = ref_logp - logp;
        match self {
            KlEstimator::K1 => -log_r,
            KlEstimator::K2 => 0.5 * log_r * log_r,
            KlEstimator::K3 => log_r.exp() - 1.0 - log_r,
        }
    }
}

/// Per-token KL estimates `[B, T]` (not masked).
pub fn kl_per_token(
    logprobs: Tensor<2>,
    ref_logprobs: Tensor<2>,
    estimator: KlEstimator,
) -> Tensor<2> {
    let log_r = ref_logprobs - logprobs;
    match estimator {
        KlEstimator::K1 => -log_r,
        KlEstimator::K2 => log_r.powf_scalar(2.0) * 0.5,
        KlEstimator::K3 => log_r.clone().exp() - 1.0 - log_r,
    }
}

/// What [`token_rewards`] returns; both `[B, T]` and 0 on padding.
pub struct TokenRewards {
    pub rewards: Tensor<2>,
    pub kl: Tensor<2>,
}

/// Token rewards for a batch. `scores` is `[B]`, the rest `[B, T]`.
pub fn token_rewards(
    scores: Tensor<1>,
    logprobs: Tensor<2>,
    ref_logprobs: Tensor<2>,
    response_mask: Tensor<2>,
    kl_coeff: f32,
    estimator: KlEstimator,
) -> TokenRewards {
    let [batch, len] = response_mask.dims();
    let kl = kl_per_token(logprobs, ref_logprobs, estimator) * response_mask.clone();

    // The last real token is where the mask steps from 1 to 0: mask_t - mask_{t+1}, with the
    // mask taken as 0 past the end. A row with no real token has no last token and no score.
    let past_end = Tensor::zeros([batch, 1], &response_mask.device());
    let next_mask = if len > 1 {
        Tensor::cat(
            vec![response_mask.clone().narrow(1, 1, len - 1), past_end],
            1,
        )
    } else {
        past_end
    };
    let is_last = response_mask - next_mask; // [B, T], one 1 per non-empty row
    let rewards = kl.clone() * (-kl_coeff) + is_last * scores.reshape([batch, 1]);
    TokenRewards { rewards, kl }
}

/// One token of the scalar form, with each number that went into its reward.
#[derive(Clone, Debug, PartialEq)]
pub struct RewardStep {
    pub t: usize,
    pub logp: f32,
    pub ref_logp: f32,
    pub kl: f32,
    /// `-kl_coeff * kl`.
    pub kl_penalty: f32,
    /// The score, on the last real token; 0 elsewhere.
    pub score: f32,
    pub reward: f32,
}

/// Scalar form for one sequence: a step per real token, then the rewards with 0 on padding.
pub fn token_rewards_ref(
    score: f32,
    logprobs: &[f32],
    ref_logprobs: &[f32],
    response_mask: &[f32],
    kl_coeff: f32,
    estimator: KlEstimator,
) -> (Vec<f32>, Vec<RewardStep>) {
    let len = super::real_len(response_mask);
    let mut rewards = vec![0.0; response_mask.len()];
    let mut steps = Vec::with_capacity(len);
    for t in 0..len {
        let kl = estimator.estimate(logprobs[t], ref_logprobs[t]);
        let kl_penalty = -kl_coeff * kl;
        let score_here = if t + 1 == len { score } else { 0.0 };
        rewards[t] = kl_penalty + score_here;
        steps.push(RewardStep {
            t,
            logp: logprobs[t],
            ref_logp: ref_logprobs[t],
            kl,
            kl_penalty,
            score: score_here,
            reward: rewards[t],
        });
    }
    (rewards, steps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::{Compute, block_on, read_f32};

    #[test]
    fn estimators_match_their_formulas() {
        // logp = -1, ref = -2: log r = -1, r = e^-1.
        assert_eq!(KlEstimator::K1.estimate(-1.0, -2.0), 1.0);
        assert_eq!(KlEstimator::K2.estimate(-1.0, -2.0), 0.5);
        let k3 = KlEstimator::K3.estimate(-1.0, -2.0);
        assert!((k3 - ((-1f32).exp() - 1.0 + 1.0)).abs() < 1e-7);
        // Equal log-probabilities: no divergence under any estimator.
        for e in [KlEstimator::K1, KlEstimator::K2, KlEstimator::K3] {
            assert_eq!(e.estimate(-0.7, -0.7), 0.0);
        }
        assert!(KlEstimator::parse("k4").unwrap_err().contains("`k4`"));
    }

    #[test]
    fn k1_k2_and_k3_rewards_by_hand_in_both_forms_with_the_score_on_the_last_real_token() {
        let device = Compute::flex().device;
        let logp = [[-1.0, -0.5, -2.0, -3.0], [-0.1, -0.2, -0.3, -0.4]];
        let refp = [[-1.5, -0.5, -1.0, -9.0], [-0.1, -0.2, -0.3, -0.4]];
        let mask = [[1.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]];
        // log r = ref - logp: row 0 [-0.5, 0, 1] (its padding, log r = -6, must stay out),
        // row 1 all 0. r = -0.2 * kl, plus the score on the last real token: 1.0 at t = 2 of
        // row 0, 0.1 at t = 0 of row 1. By hand, for each estimator:
        let e = std::f32::consts::E;
        let hand = [
            (KlEstimator::K1, [0.5, 0.0, -1.0]),
            (KlEstimator::K2, [0.125, 0.0, 0.5]),
            (KlEstimator::K3, [(-0.5f32).exp() - 1.0 + 0.5, 0.0, e - 2.0]),
        ];
        for (estimator, kl_row0) in hand {
            let out = token_rewards(
                Tensor::<1>::from_floats([1.0, 0.1], &device),
                Tensor::from_floats(logp, &device),
                Tensor::from_floats(refp, &device),
                Tensor::from_floats(mask, &device),
                0.2,
                estimator,
            );
            let kl = block_on(read_f32(out.kl)).unwrap();
            let rewards = block_on(read_f32(out.rewards)).unwrap();
            let want_kl = [kl_row0[0], kl_row0[1], kl_row0[2], 0.0, 0.0, 0.0, 0.0, 0.0];
            let want = [
                -0.2 * kl_row0[0],
                -0.2 * kl_row0[1],
                -0.2 * kl_row0[2] + 1.0,
                0.0,
                0.1,
                0.0,
                0.0,
                0.0,
            ];
            for i in 0..8 {
                assert!((kl[i] - want_kl[i]).abs() < 1e-6, "{estimator:?} kl {kl:?}");
                assert!(
                    (rewards[i] - want[i]).abs() < 1e-6,
                    "{estimator:?} rewards {rewards:?}"
                );
            }
            // The scalar form the page uses gives the same numbers.
            for row in 0..2 {
                let (scalar, steps) = token_rewards_ref(
                    [1.0, 0.1][row],
                    &logp[row],
                    &refp[row],
                    &mask[row],
                    0.2,
                    estimator,
                );
                assert_eq!(steps.len(), [3, 1][row]);
                assert_eq!(scalar.len(), 4);
                for (got, want) in scalar.iter().zip(&rewards[4 * row..4 * row + 4]) {
                    assert!((got - want).abs() < 1e-6, "{estimator:?} row {row}");
                }
                for step in &steps {
                    assert!((step.kl - kl[4 * row + step.t]).abs() < 1e-6);
                }
            }
        }
    }
}
