//! Sums and means over real tokens only: `x * mask`, summed over every position of the batch.
//!
//! A masked mean divides by the number of real tokens in the whole batch (not per sequence), so
//! every real token weighs the same: the convention of TRL and verl.

use burn::tensor::Tensor;

/// `sum(x * mask)` over all positions, as a one-element tensor.
pub fn masked_sum<const D: usize>(x: Tensor<D>, mask: Tensor<D>) -> Tensor<1> {
    (x * mask).sum()
}

/// `sum(x * mask) / sum(mask)`. NaN when the mask has no real token; callers check inputs first.
pub fn masked_mean<const D: usize>(x: Tensor<D>, mask: Tensor<D>) -> Tensor<1> {
    masked_sum(x, mask.clone()) / mask.sum()
}

/// Scalar form of [`masked_sum`].
pub fn masked_sum_ref(x: &[f32], mask: &[f32]) -> f32 {
    x.iter().zip(mask).map(|(v, m)| v * m).sum()
}

/// Scalar form of [`masked_mean`].
pub fn masked_mean_ref(x: &[f32], mask: &[f32]) -> f32 {
    masked_sum_ref(x, mask) / mask.iter().sum::<f32>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::{Compute, block_on, read_f32};

    #[test]
    fn padding_is_left_out_of_sums_and_means() {
        let device = Compute::flex().device;
        let x = Tensor::<2>::from_floats([[1.0, 2.0, 100.0], [3.0, 100.0, 100.0]], &device);
        let mask = Tensor::<2>::from_floats([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]], &device);
        let sum = block_on(read_f32(masked_sum(x.clone(), mask.clone()))).unwrap();
        let mean = block_on(read_f32(masked_mean(x, mask))).unwrap();
        assert_eq!(sum, vec![6.0]);
        assert_eq!(mean, vec![2.0]);
        assert_eq!(masked_sum_ref(&[1.0, 2.0, 100.0], &[1.0, 1.0, 0.0]), 3.0);
        assert_eq!(masked_mean_ref(&[1.0, 2.0, 100.0], &[1.0, 1.0, 0.0]), 1.5);
    }
}
