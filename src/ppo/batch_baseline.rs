//! Baselines over the whole batch: REINFORCE's mean reward, and the normalisation RLOO may add.
//!
//! For the `B` scores of a batch (any prompts, no groups needed):
//! ```text
//! mean = (1/B) sum_i r_i
//! A_i  = r_i - mean                                   REINFORCE with a batch-mean baseline
//! std  = sqrt( sum_i (A_i - mean_A)^2 / (B - 1) )     (the sample std, as torch.std)
//! A'_i = (A_i - mean_A) / (std + eps)                 normalised over the batch (TRL RLOO's
//!                                                     normalize_advantages, eps = 1e-4)
//! ```
//! A baseline that does not depend on the response leaves the policy gradient unbiased and only
//! lowers its variance. The batch mean mixes prompts, so an easy prompt's responses all look good
//! and a hard one's all look bad: the group baselines (GRPO's mean, RLOO's leave-one-out) compare
//! each response with others to the same prompt instead. The mean here includes `r_i` itself, a
//! bias of order `1/B`.

use burn::tensor::Tensor;

/// Added to the batch's std before dividing (TRL's RLOOTrainer).
pub const BATCH_EPS: f32 = 1e-4;

/// The tensor form of `A_i = r_i - mean(r)`, `[B]` to `[B]`.
pub fn batch_mean_advantages(scores: Tensor<1>) -> Tensor<1> {
    let mean = scores.clone().mean();
    scores - mean
}

/// The tensor form of `(A - mean(A)) / (std(A) + eps)` over the batch, `[B]` to `[B]`
/// (`B >= 2`).
pub fn normalise_over_batch(advantages: Tensor<1>) -> Tensor<1> {
    let [b] = advantages.dims();
    let centred = advantages.clone() - advantages.mean();
    let var = centred.clone().powf_scalar(2.0).sum() / (b as f32 - 1.0);
    centred / (var.sqrt() + BATCH_EPS)
}

/// The scalar form, every step kept.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BatchTrace {
    pub rewards: Vec<f32>,
    pub mean: f32,
    /// `r_i - mean`.
    pub advantages: Vec<f32>,
}

/// The scalar form of [`batch_mean_advantages`].
pub fn batch_mean_ref(scores: &[f32]) -> Result<BatchTrace, String> {
    if scores.is_empty() {
        return Err("a batch-mean baseline needs at least one response".to_string());
    }
    let mean = scores.iter().sum::<f32>() / scores.len() as f32;
    Ok(BatchTrace {
        rewards: scores.to_vec(),
        mean,
        advantages: scores.iter().map(|r| r - mean).collect(),
    })
}

/// The scalar form of [`normalise_over_batch`]: `(normalised, mean, std)`.
pub fn normalise_over_batch_ref(advantages: &[f32]) -> Result<(Vec<f32>, f32, f32), String> {
    let n = advantages.len();
    if n < 2 {
        return Err(format!(
            "normalising over the batch needs at least 2 responses, found {n}"
        ));
    }
    let mean = advantages.iter().sum::<f32>() / n as f32;
    let var = advantages
        .iter()
        .map(|a| (a - mean) * (a - mean))
        .sum::<f32>()
        / (n as f32 - 1.0);
    let std = var.sqrt();
    let out = advantages
        .iter()
        .map(|a| (a - mean) / (std + BATCH_EPS))
        .collect();
    Ok((out, mean, std))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::{Compute, block_on, read_f32};
    use crate::ppo::group_advantages::scores_tensor;

    #[test]
    fn hand_worked_batch() {
        // Mean 0.25: the one success gets 0.75, each failure -0.25, whatever prompt it came from.
        let t = batch_mean_ref(&[1.0, 0.0, 0.0, 0.0]).unwrap();
        assert_eq!(t.mean, 0.25);
        assert_eq!(t.advantages, vec![0.75, -0.25, -0.25, -0.25]);
        // Normalised: sample std sqrt((0.5625 + 3 * 0.0625) / 3) = 0.5.
        let (n, mean, std) = normalise_over_batch_ref(&t.advantages).unwrap();
        assert_eq!(mean, 0.0);
        assert!((std - 0.5).abs() < 1e-7);
        assert!((n[0] - 0.75 / 0.5001).abs() < 1e-6);
        assert!(batch_mean_ref(&[]).is_err());
        assert!(
            normalise_over_batch_ref(&[1.0])
                .unwrap_err()
                .contains("found 1")
        );
    }

    #[test]
    fn tensor_forms_equal_the_scalar_forms() {
        let device = Compute::flex().device;
        let scores = [0.3, 0.9, 0.1, 1.0, 0.0, 0.5];
        let want = batch_mean_ref(&scores).unwrap().advantages;
        let got = block_on(read_f32(batch_mean_advantages(scores_tensor(
            &scores, &device,
        ))))
        .unwrap();
        let (want_n, _, _) = normalise_over_batch_ref(&want).unwrap();
        let got_n = block_on(read_f32(normalise_over_batch(scores_tensor(
            &want, &device,
        ))))
        .unwrap();
        assert_eq!((got.len(), got_n.len()), (want.len(), want_n.len()));
        for (g, w) in got.iter().zip(&want).chain(got_n.iter().zip(&want_n)) {
            assert!((g - w).abs() < 1e-6, "{g} vs {w}");
        }
    }
}
