//! Masked whitening of advantages: shift to mean 0 and scale to standard deviation 1 over the
//! real tokens of the whole batch.
//!
//! `mean = masked_mean(x)`, `var = sum(m (x - mean)^2) / (sum(m) - 1)` (unbiased), and
//! `whitened = (x - mean) / sqrt(var + 1e-8)`, set to 0 on padding: the convention of TRL and
//! verl. Raw advantages change scale as the critic and the rewards change; whitening keeps the
//! policy gradient's step size steady.
//!
//! Mean 0 is not median 0: whitening does not make half the tokens positive. With a sparse
//! score at the end of each response the advantages are often lopsided, and many more (or
//! fewer) than half the tokens end up with a positive whitened advantage. Subtracting the mean
//! can also flip a sign: with a positive batch mean, a token with `0 < A < mean` gets a negative
//! whitened advantage and is pushed down; with a negative mean, a token with `mean < A < 0` is
//! pushed up.

use burn::tensor::Tensor;

use super::masked::{masked_mean, masked_sum};

/// Added to the variance before the square root.
pub const WHITEN_EPS: f32 = 1e-8;

/// Whitens `[B, T]` values over the real tokens of the whole batch. Needs at least two real
/// tokens (the unbiased variance divides by `count - 1`); callers check inputs first.
pub fn masked_whiten(x: Tensor<2>, response_mask: Tensor<2>) -> Tensor<2> {
    let count = response_mask.clone().sum(); // [1]
    let mean = masked_mean(x.clone(), response_mask.clone()).reshape([1, 1]);
    let centered = x - mean;
    let var = masked_sum(centered.clone().powf_scalar(2.0), response_mask.clone()) / (count - 1.0);
    let std = (var + WHITEN_EPS).sqrt().reshape([1, 1]);
    centered / std * response_mask
}

/// The scalar form, with the statistics the page shows.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WhitenTrace {
    pub count: usize,
    pub mean: f32,
    pub var: f32,
    pub std: f32,
    pub whitened: Vec<f32>,
}

/// Scalar whitening of flat values (one sequence, or a whole batch laid end to end).
pub fn masked_whiten_ref(x: &[f32], response_mask: &[f32]) -> Result<WhitenTrace, String> {
    let count = response_mask.iter().filter(|&&m| m == 1.0).count();
    if count < 2 {
        return Err(format!(
            "whitening needs at least two real tokens for an unbiased variance; the mask has {count}"
        ));
    }
    let n = count as f32;
    let mean = x.iter().zip(response_mask).map(|(v, m)| v * m).sum::<f32>() / n;
    let var = x
        .iter()
        .zip(response_mask)
        .map(|(v, m)| m * (v - mean) * (v - mean))
        .sum::<f32>()
        / (n - 1.0);
    let std = (var + WHITEN_EPS).sqrt();
    let whitened = x
        .iter()
        .zip(response_mask)
        .map(|(v, m)| (v - mean) / std * m)
        .collect();
    Ok(WhitenTrace {
        count,
        mean,
        var,
        std,
        whitened,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::{Compute, block_on, read_f32};
    use crate::ppo::testutil::Lcg;
    use burn::tensor::TensorData;

    #[test]
    fn hand_worked_whitening() {
        // Real values [1, 2, 3, 6]: mean 3, squared deviations 4 + 1 + 0 + 9 = 14, var 14/3.
        let trace =
            masked_whiten_ref(&[1.0, 2.0, 3.0, 6.0, 40.0], &[1.0, 1.0, 1.0, 1.0, 0.0]).unwrap();
        assert_eq!(trace.count, 4);
        assert_eq!(trace.mean, 3.0);
        assert!((trace.var - 14.0 / 3.0).abs() < 1e-6);
        let std = (14.0f32 / 3.0).sqrt();
        let want = [-2.0 / std, -1.0 / std, 0.0, 3.0 / std, 0.0];
        assert_eq!(trace.whitened.len(), want.len());
        for (got, want) in trace.whitened.iter().zip(want) {
            assert!((got - want).abs() < 1e-6);
        }
        assert!(
            masked_whiten_ref(&[1.0, 2.0], &[1.0, 0.0])
                .unwrap_err()
                .contains("has 1")
        );
    }

    #[test]
    fn whitened_batch_has_masked_mean_zero_and_unbiased_std_one() {
        let mut rng = Lcg(7);
        let device = Compute::flex().device;
        let (batch, len) = (3, 7);
        let x: Vec<f32> = (0..batch * len).map(|_| rng.range(-3.0, 5.0)).collect();
        let lens = [7, 2, 5];
        let mask: Vec<f32> = (0..batch * len)
            .map(|i| if i % len < lens[i / len] { 1.0 } else { 0.0 })
            .collect();

        let tensor = masked_whiten(
            Tensor::from_data(TensorData::new(x.clone(), [batch, len]), &device),
            Tensor::from_data(TensorData::new(mask.clone(), [batch, len]), &device),
        );
        let w = block_on(read_f32(tensor)).unwrap();

        let real: Vec<f32> = w
            .iter()
            .zip(&mask)
            .filter(|(_, m)| **m == 1.0)
            .map(|(v, _)| *v)
            .collect();
        let n = real.len() as f32;
        let mean = real.iter().sum::<f32>() / n;
        let var = real.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / (n - 1.0);
        assert!(mean.abs() < 1e-5, "{mean}");
        assert!((var.sqrt() - 1.0).abs() < 1e-5, "{var}");
        assert!(w.iter().zip(&mask).all(|(v, m)| *m == 1.0 || *v == 0.0));

        let scalar = masked_whiten_ref(&x, &mask).unwrap();
        assert_eq!(w.len(), scalar.whitened.len());
        for (a, b) in w.iter().zip(&scalar.whitened) {
            assert!((a - b).abs() < 1e-5);
        }
    }
}
