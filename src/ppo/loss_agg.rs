//! How per-token loss terms become one loss: the choice that sets how much each token weighs.
//!
//! With `m` the response mask, `B` responses and `L` a constant length, named as verl names them
//! (TRL's `loss_type` after):
//! ```text
//! token-mean               sum_i sum_t m x / sum_i sum_t m          (TRL bnpo; DAPO)
//! seq-mean-token-mean      (1/B) sum_i (sum_t m x / sum_t m)        (TRL grpo, GRPO's paper)
//! seq-mean-token-sum-norm  sum_i sum_t m x / (B * L)                (TRL dr_grpo, Dr. GRPO)
//! ```
//! - `token-mean`: every token weighs the same, so a long response counts more than a short one.
//! - `seq-mean-token-mean`: every response weighs the same, so each token of a long response
//!   counts less. Liu et al. (2025, Dr. GRPO) point out what that does to a wrong answer: its
//!   negative advantage is spread thinner the longer it is, so the update pushes less against
//!   long wrong answers than short ones, and responses grow.
//! - `seq-mean-token-sum-norm`: every token weighs `1 / (B * L)` whatever its response's length;
//!   `L` is a constant (the generation's `max_new_tokens`), not the batch's longest response, so
//!   the scale does not move from batch to batch.

use burn::tensor::Tensor;

use super::masked::masked_mean;

/// How token terms become one loss.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LossAgg {
    /// Over all real tokens of the batch (TRL `bnpo`).
    TokenMean,
    /// Per response over its tokens, then over responses (TRL `grpo`).
    #[default]
    SeqMeanTokenMean,
    /// The sum over every real token divided by `B * max_len` (TRL `dr_grpo`).
    SeqMeanTokenSumNorm { max_len: usize },
}

impl LossAgg {
    /// The names verl uses; `seq-mean-token-sum-norm` needs its constant length:
    /// [`LossAgg::parse_with_len`].
    pub fn parse(name: &str) -> Result<Self, String> {
        Self::parse_with_len(name, None)
    }

    /// [`LossAgg::parse`], with the constant length `seq-mean-token-sum-norm` divides by.
    pub fn parse_with_len(name: &str, max_len: Option<usize>) -> Result<Self, String> {
        match name {
            "token-mean" => Ok(LossAgg::TokenMean),
            "seq-mean-token-mean" => Ok(LossAgg::SeqMeanTokenMean),
            "seq-mean-token-sum-norm" => match max_len {
                Some(max_len) if max_len > 0 => Ok(LossAgg::SeqMeanTokenSumNorm { max_len }),
                Some(_) => Err("seq-mean-token-sum-norm divides by a length of 0".to_string()),
                None => Err(
                    "seq-mean-token-sum-norm needs the constant length it divides by \
                     (the generation's max_new_tokens)"
                        .to_string(),
                ),
            },
            other => Err(format!(
                "unknown loss aggregation `{other}`: expected token-mean, seq-mean-token-mean \
                 or seq-mean-token-sum-norm"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            LossAgg::TokenMean => "token-mean",
            LossAgg::SeqMeanTokenMean => "seq-mean-token-mean",
            LossAgg::SeqMeanTokenSumNorm { .. } => "seq-mean-token-sum-norm",
        }
    }

    /// `x` `[B, T]` aggregated over the real tokens of `mask`.
    pub fn apply(self, x: Tensor<2>, mask: Tensor<2>) -> Tensor<1> {
        match self {
            LossAgg::TokenMean => masked_mean(x, mask),
            LossAgg::SeqMeanTokenMean => {
                let per_row = (x * mask.clone()).sum_dim(1) / mask.sum_dim(1).clamp_min(1.0);
                per_row.mean()
            }
            LossAgg::SeqMeanTokenSumNorm { max_len } => {
                let [b, _] = x.dims();
                (x * mask).sum() / (b * max_len) as f32
            }
        }
    }

    /// The scalar form over rows.
    pub fn apply_ref(self, x: &[Vec<f32>], mask: &[Vec<f32>]) -> f32 {
        let masked = |xs: &[f32], ms: &[f32]| xs.iter().zip(ms).map(|(v, m)| v * m).sum::<f32>();
        match self {
            LossAgg::TokenMean => {
                let sum: f32 = x.iter().zip(mask).map(|(xs, ms)| masked(xs, ms)).sum();
                sum / mask.iter().flatten().sum::<f32>()
            }
            LossAgg::SeqMeanTokenMean => {
                let rows: f32 = x
                    .iter()
                    .zip(mask)
                    .map(|(xs, ms)| masked(xs, ms) / ms.iter().sum::<f32>().max(1.0))
                    .sum();
                rows / x.len().max(1) as f32
            }
            LossAgg::SeqMeanTokenSumNorm { max_len } => {
                let sum: f32 = x.iter().zip(mask).map(|(xs, ms)| masked(xs, ms)).sum();
                sum / (x.len() * max_len) as f32
            }
        }
    }

    /// What one real token of response `row` weighs in the loss (the three weigh alike only when
    /// every response has the same length).
    pub fn token_weight(self, mask: &[Vec<f32>], row: usize) -> f32 {
        let b = mask.len() as f32;
        match self {
            LossAgg::TokenMean => 1.0 / mask.iter().flatten().sum::<f32>(),
            LossAgg::SeqMeanTokenMean => 1.0 / (b * mask[row].iter().sum::<f32>().max(1.0)),
            LossAgg::SeqMeanTokenSumNorm { max_len } => 1.0 / (b * max_len as f32),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::{Compute, block_on, read_f32};
    use burn::tensor::TensorData;

    /// A short response of 1 token and a long one of 3, in a width of 4.
    fn case() -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
        (
            vec![vec![2.0, 9.0, 9.0, 9.0], vec![1.0, 1.0, 4.0, 9.0]],
            vec![vec![1.0, 0.0, 0.0, 0.0], vec![1.0, 1.0, 1.0, 0.0]],
        )
    }

    #[test]
    fn hand_worked_aggregations() {
        let (x, mask) = case();
        // (2 + 1 + 1 + 4) / 4 tokens.
        assert_eq!(LossAgg::TokenMean.apply_ref(&x, &mask), 2.0);
        // (2 / 1 + 6 / 3) / 2 responses.
        assert_eq!(LossAgg::SeqMeanTokenMean.apply_ref(&x, &mask), 2.0);
        // 8 / (2 responses * 4 tokens).
        let dr = LossAgg::SeqMeanTokenSumNorm { max_len: 4 };
        assert_eq!(dr.apply_ref(&x, &mask), 1.0);
        // Each token's weight: the short response's one token weighs 1/2 per sequence, 1/4 per
        // token, 1/8 at a constant length; the long one's 1/6, 1/4, 1/8.
        assert_eq!(LossAgg::SeqMeanTokenMean.token_weight(&mask, 0), 0.5);
        assert!((LossAgg::SeqMeanTokenMean.token_weight(&mask, 1) - 1.0 / 6.0).abs() < 1e-7);
        assert_eq!(LossAgg::TokenMean.token_weight(&mask, 1), 0.25);
        assert_eq!(dr.token_weight(&mask, 0), 0.125);
        // The weights times the terms are the loss.
        for agg in [LossAgg::TokenMean, LossAgg::SeqMeanTokenMean, dr] {
            let by_weight: f32 = (0..2)
                .map(|i| {
                    let s: f32 = x[i].iter().zip(&mask[i]).map(|(v, m)| v * m).sum();
                    s * agg.token_weight(&mask, i)
                })
                .sum();
            assert!(
                (by_weight - agg.apply_ref(&x, &mask)).abs() < 1e-6,
                "{agg:?}"
            );
        }
    }

    #[test]
    fn tensor_form_equals_the_scalar_form() {
        let device = Compute::flex().device;
        let (x, mask) = case();
        let t2 = |rows: &[Vec<f32>]| {
            let flat: Vec<f32> = rows.iter().flatten().copied().collect();
            Tensor::<2>::from_data(TensorData::new(flat, [2, 4]), &device)
        };
        for agg in [
            LossAgg::TokenMean,
            LossAgg::SeqMeanTokenMean,
            LossAgg::SeqMeanTokenSumNorm { max_len: 6 },
        ] {
            let got = block_on(read_f32(agg.apply(t2(&x), t2(&mask)))).unwrap()[0];
            assert!(
                (got - agg.apply_ref(&x, &mask)).abs() < 1e-6,
                "{agg:?}: {got}"
            );
        }
    }

    #[test]
    fn names_and_errors() {
        for agg in [
            LossAgg::TokenMean,
            LossAgg::SeqMeanTokenMean,
            LossAgg::SeqMeanTokenSumNorm { max_len: 256 },
        ] {
            assert_eq!(LossAgg::parse_with_len(agg.name(), Some(256)), Ok(agg));
        }
        assert!(
            LossAgg::parse("seq-mean-token-sum-norm")
                .unwrap_err()
                .contains("max_new_tokens")
        );
        assert!(LossAgg::parse("dr_grpo").unwrap_err().contains("`dr_grpo`"));
    }
}
