//! A backend self-check with answers known in advance.
//!
//! It computes two PPO quantities on the device and compares them with the same maths done in
//! `f64` on the CPU:
//! - the entropy of a policy's next-token distribution, `H(z) = logsumexp(z) - sum_i softmax(z)_i z_i`;
//! - through autodiff, the gradient of `logsumexp(z)`, which must equal `softmax(z)`.
//!
//! The page runs it on WebGPU (or flex) at start-up and shows the numbers; `ppo-lens doctor`
//! runs it on every device that answers.

use burn::tensor::{Device, Tensor};

use crate::compute::read_f32;
use crate::ppo::entropy::{entropy_from_logits, logsumexp};

/// The logits the check uses: a peaked row and a uniform one (whose entropy is `ln 3`).
pub const LOGITS: [[f32; 3]; 2] = [[1.0, 2.0, 3.0], [0.5, 0.5, 0.5]];

/// Largest |device - f64 reference| accepted. f32 arithmetic on any backend is well inside it.
pub const TOLERANCE: f64 = 1e-5;

/// One row of logits with what the device computed and what it should have.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SelfCheckRow {
    pub logits: [f32; 3],
    pub entropy: f32,
    pub expected_entropy: f64,
    /// d logsumexp(z) / dz from the device's autodiff.
    pub grad_logsumexp: [f32; 3],
    /// softmax(z) in f64.
    pub expected_softmax: [f64; 3],
}

/// The outcome of [`run`].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SelfCheck {
    pub rows: Vec<SelfCheckRow>,
    /// The largest error over every entropy and every gradient entry.
    pub max_abs_error: f64,
}

impl SelfCheck {
    pub fn passed(&self) -> bool {
        self.max_abs_error <= TOLERANCE
    }
}

/// Runs the check on `device` (autodiff is switched on for it here).
pub async fn run(device: &Device) -> Result<SelfCheck, String> {
    let device = device.clone().autodiff();
    let z = Tensor::<2>::from_floats(LOGITS, &device).require_grad(); // [2, 3]

    // The same entropy code the PPO loss uses, on a batch of one sequence of two positions.
    let entropy = entropy_from_logits(z.clone().reshape([1, 2, 3])); // [1, 2]
    let grads = logsumexp(z.clone()).sum().backward();
    let grad = z
        .grad(&grads)
        .ok_or("autodiff returned no gradient for the logits")?; // [2, 3]

    let entropy = read_f32(entropy).await?;
    let grad = read_f32(grad).await?;

    let mut rows = Vec::with_capacity(LOGITS.len());
    let mut max_abs_error: f64 = 0.0;
    for (i, logits) in LOGITS.iter().enumerate() {
        let (expected_entropy, expected_softmax) = reference(logits);
        let grad_logsumexp = [grad[3 * i], grad[3 * i + 1], grad[3 * i + 2]];
        max_abs_error = max_abs_error.max((f64::from(entropy[i]) - expected_entropy).abs());
        for (g, p) in grad_logsumexp.iter().zip(expected_softmax) {
            max_abs_error = max_abs_error.max((f64::from(*g) - p).abs());
        }
        rows.push(SelfCheckRow {
            logits: *logits,
            entropy: entropy[i],
            expected_entropy,
            grad_logsumexp,
            expected_softmax,
        });
    }
    Ok(SelfCheck {
        rows,
        max_abs_error,
    })
}

/// Entropy and softmax of one row of logits, in f64.
fn reference(logits: &[f32; 3]) -> (f64, [f64; 3]) {
    let z = logits.map(f64::from);
    let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let logsumexp = max + z.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
    let softmax = z.map(|v| (v - logsumexp).exp());
    let entropy = logsumexp - softmax.iter().zip(z).map(|(p, v)| p * v).sum::<f64>();
    (entropy, softmax)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::{Compute, block_on};

    #[test]
    fn reference_matches_hand_worked_values() {
        // softmax([1, 2, 3]) = e^{z-3} / (e^-2 + e^-1 + 1) = [0.0900306, 0.2447285, 0.6652410],
        // logsumexp = 3 + ln(1.5032147) = 3.4076060, sum p z = 2.5752104, H = 0.8323956.
        let (h, p) = reference(&[1.0, 2.0, 3.0]);
        assert!((h - 0.832_395_58).abs() < 1e-8, "{h}");
        for (got, want) in p.iter().zip([0.090_030_57, 0.244_728_47, 0.665_240_96]) {
            assert!((got - want).abs() < 1e-8, "{got} vs {want}");
        }
        // A uniform row over three tokens has the largest possible entropy, ln 3.
        let (h, p) = reference(&[0.5, 0.5, 0.5]);
        assert!((h - 3f64.ln()).abs() < 1e-12);
        assert!(p.iter().all(|v| (v - 1.0 / 3.0).abs() < 1e-12));
    }

    #[test]
    fn flex_passes_the_self_check() {
        let check = block_on(run(&Compute::flex().device)).unwrap();
        assert!(check.passed(), "{check:?}");
        assert_eq!(check.rows.len(), 2);
        assert!((f64::from(check.rows[0].entropy) - 0.832_395_58).abs() < 1e-5);
        assert!((f64::from(check.rows[1].entropy) - 3f64.ln()).abs() < 1e-5);
    }
}
