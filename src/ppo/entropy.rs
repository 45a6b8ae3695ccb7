//! Entropy of the policy's next-token distribution at each response position.
//!
//! From logits `z` over the vocabulary: `H(z) = logsumexp(z) - sum_i softmax(z)_i * z_i`, which
//! equals `-sum_i p_i log p_i` without ever taking the log of a tiny probability. The loss adds
//! `-entropy_coeff * masked_mean(H)`, a small push against collapsing onto one token too early.

use burn::tensor::Tensor;
use burn::tensor::activation::softmax;

use super::masked::{masked_mean, masked_mean_ref};

/// `log(sum(exp(z)))` along the last dimension (defined beside the rollout's logprobs, which
/// use it too; named here for exercises 3 and 5).
pub use crate::rollout::generate::logsumexp;

/// Per-position entropy `[B, T]` from logits `[B, T, V]`.
pub fn entropy_from_logits(logits: Tensor<3>) -> Tensor<2> {
    let probs = softmax(logits.clone(), 2);
    let expected_logit = (probs * logits.clone()).sum_dim(2); // [B, T, 1]
    (logsumexp(logits) - expected_logit).squeeze_dim(2)
}

/// Mean entropy over the real tokens of a batch.
pub fn masked_entropy(logits: Tensor<3>, response_mask: Tensor<2>) -> Tensor<1> {
    masked_mean(entropy_from_logits(logits), response_mask)
}

/// Scalar entropy of one position's logits.
pub fn entropy_ref(logits: &[f32]) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let logsumexp = max + logits.iter().map(|z| (z - max).exp()).sum::<f32>().ln();
    let expected_logit: f32 = logits.iter().map(|z| (z - logsumexp).exp() * z).sum();
    logsumexp - expected_logit
}

/// Scalar masked mean entropy of one sequence, `logits` given per position.
pub fn masked_entropy_ref(logits: &[Vec<f32>], response_mask: &[f32]) -> f32 {
    let per_position: Vec<f32> = logits.iter().map(|z| entropy_ref(z)).collect();
    masked_mean_ref(&per_position, response_mask)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::{Compute, block_on, read_f32};
    use burn::tensor::TensorData;

    #[test]
    fn uniform_logits_have_entropy_ln_v_and_a_sure_token_none() {
        for vocab in [2usize, 5, 151_936 / 1024] {
            assert!((entropy_ref(&vec![0.3; vocab]) - (vocab as f32).ln()).abs() < 1e-5);
        }
        assert!(entropy_ref(&[0.0, 100.0, 0.0]).abs() < 1e-6);

        let device = Compute::flex().device;
        let logits =
            Tensor::<3>::from_data(TensorData::new(vec![1.5f32; 2 * 3 * 7], [2, 3, 7]), &device);
        let h = block_on(read_f32(entropy_from_logits(logits))).unwrap();
        assert_eq!(h.len(), 6);
        assert!(h.iter().all(|v| (v - 7f32.ln()).abs() < 1e-5), "{h:?}");
    }

    #[test]
    fn tensor_and_scalar_entropy_agree_and_padding_is_ignored() {
        let device = Compute::flex().device;
        let rows = vec![
            vec![1.0, 2.0, 3.0],
            vec![-4.0, 0.5, 0.0],
            vec![50.0, 50.0, -50.0],
        ];
        let mask = [1.0, 1.0, 0.0];
        let logits = Tensor::<3>::from_data(TensorData::new(rows.concat(), [1, 3, 3]), &device);
        let got = block_on(read_f32(masked_entropy(
            logits,
            Tensor::from_floats([mask], &device),
        )))
        .unwrap()[0];
        let want = masked_entropy_ref(&rows, &mask);
        assert!((got - want).abs() < 1e-6);
        // H([1, 2, 3]) = 0.8323956 (worked in src/selfcheck.rs).
        assert!((entropy_ref(&rows[0]) - 0.832_395_6).abs() < 1e-6);
    }
}
