//! Each response token's logprob and entropy from its logits in one pass per row, on flex
//! natively, with its own backward.
//!
//! Written with burn's ops, `log_softmax(z)[target]` and the entropy
//! `logsumexp(z) - sum_i softmax(z)_i z_i` take about a dozen passes over the `[B, R, V]` logits
//! forward and as many backward, each allocating a new tensor as large as the logits (16 MiB for
//! the 50M model's mini-batch of 4 x 32 tokens over 32,000 ids), three of them with an `exp` per
//! value. Here each row of logits is read twice forward, its maximum first, then
//!
//! ```text
//! S = sum_i e^(z_i - max)      lse = max + ln S
//! logprob = z_target - lse     H = lse - (sum_i e^(z_i - max) z_i) / S
//! ```
//!
//! and once backward, where with `p_i = e^(z_i - lse)` and upstream gradients `g_lp`, `g_H`:
//!
//! ```text
//! d logprob / dz_i = 1[i = target] - p_i
//! dH / dz_i        = -p_i (ln p_i + H) = -p_i (z_i - lse + H)
//! dz_i = g_lp 1[i = target] - p_i (g_lp + g_H (z_i - lse + H))
//! ```
//!
//! The rows are shared out between the cores. Tensors elsewhere (WebGPU, CUDA, bf16, gradient
//! checkpointing) get `None`, and the caller composes burn's ops as before; the tests hold the
//! two equal, gradients included.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

use crate::cpu_fast::adamw::dense;

/// `[N, 2]`: each row's logprob of its target (column 0) and entropy (column 1), from logits
/// `[N, V]` (f32) and `targets` (N ids below V); gradients flow back to the logits when they are
/// tracked. `None` when the logits are not f32 on flex (plain or `device.autodiff()`).
pub fn logprobs_and_entropy(logits: &Tensor<2>, targets: &[u32]) -> Option<Tensor<2>> {
    let [n, v] = logits.dims();
    if logits.dtype() != DType::F32
        || targets.len() != n
        || targets.iter().any(|&t| t as usize >= v)
    {
        return None;
    }
    if let Ok(z) = logits.clone().try_into_primitive::<Flex>() {
        let z = dense(z);
        let (scores, _) = forward(&z, targets);
        return Some(Tensor::from_primitive::<Flex>(scores));
    }
    let tracked = logits.clone().try_into_primitive::<Autodiff<Flex>>().ok()?;
    let (z, node) = tracked.into_parts();
    let z = dense(z);
    let (scores, stats) = forward(&z, targets);
    let out = match FusedScores
        .prepare::<NoCheckpointing>([node])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(
            State {
                logits: z,
                targets: targets.to_vec(),
                stats,
            },
            scores,
        ),
        OpsKind::UnTracked(prep) => prep.finish(scores),
    };
    Some(Tensor::from_primitive::<Autodiff<Flex>>(out))
}

/// What the backward pass needs: the logits, the targets, and each row's `(lse, H)`.
#[derive(Clone, Debug)]
struct State {
    logits: FlexTensor,
    targets: Vec<u32>,
    stats: Vec<(f32, f32)>,
}

#[derive(Debug)]
struct FusedScores;

impl Backward<Flex, 1> for FusedScores {
    type State = State;

    fn backward(self, ops: Ops<State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [parent] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node); // [N, 2]
        let Some(parent) = parent else { return };
        let State {
            logits,
            targets,
            stats,
        } = ops.state;
        let grad = dense(grad);
        let g = &grad.storage::<f32>()[..2 * targets.len()];
        let shape = logits.layout().shape().clone();
        let v = shape[1];
        let z = &logits.storage::<f32>()[..targets.len() * v];
        let mut dz = vec![0f32; z.len()];
        dz.par_chunks_mut(v)
            .zip(z.par_chunks(v))
            .enumerate()
            .for_each(|(row, (dz, z))| {
                let (lse, entropy) = stats[row];
                row_backward(dz, z, (lse, entropy), (g[2 * row], g[2 * row + 1]));
                dz[targets[row] as usize] += g[2 * row];
            });
        let dz = FlexTensor::from_data(TensorData::new(dz, [targets.len(), v]));
        grads.register::<Flex>(parent.id, dz);
    }
}

/// `[N, 2]` scores and each row's `(lse, H)`, the rows on every core.
fn forward(logits: &FlexTensor, targets: &[u32]) -> (FlexTensor, Vec<(f32, f32)>) {
    let n = targets.len();
    let v = logits.layout().shape()[1];
    let z = &logits.storage::<f32>()[..n * v];
    let stats: Vec<(f32, f32)> = z.par_chunks(v).map(row_stats).collect();
    let scores: Vec<f32> = stats
        .iter()
        .zip(targets)
        .zip(z.chunks(v))
        .flat_map(|((&(lse, entropy), &t), z)| [z[t as usize] - lse, entropy])
        .collect();
    (
        FlexTensor::from_data(TensorData::new(scores, [n, 2])),
        stats,
    )
}

/// `(logsumexp(z), entropy of softmax(z))` of one row, the sums in f64.
fn row_stats(z: &[f32]) -> (f32, f32) {
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let (mut sum, mut weighted) = (0f64, 0f64);
    for &v in z {
        let e = (v - max).exp() as f64;
        sum += e;
        weighted += e * v as f64;
    }
    let lse = max as f64 + sum.ln();
    (lse as f32, (lse - weighted / sum) as f32)
}

/// One row's `dz_i = -p_i (g_lp + g_H (z_i - lse + H))`, `ln p_i = z_i - lse` (the target's
/// `+ g_lp` is added by the caller).
fn row_backward(dz: &mut [f32], z: &[f32], stats: (f32, f32), upstream: (f32, f32)) {
    let ((lse, entropy), (g_lp, g_h)) = (stats, upstream);
    for (d, &zi) in dz.iter_mut().zip(z) {
        let centred = zi - lse;
        *d = -centred.exp() * (g_lp + g_h * (centred + entropy));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ppo::entropy::{entropy_from_logits, logsumexp};
    use burn::tensor::{Device, Distribution, Int};

    /// The burn-ops composition this module replaces: `[N]` logprobs and `[N]` entropies.
    fn composed(logits: Tensor<2>, targets: &[u32]) -> (Tensor<1>, Tensor<1>) {
        let [n, _] = logits.dims();
        let device = logits.device();
        let ids: Vec<i64> = targets.iter().map(|&t| t as i64).collect();
        let ids = Tensor::<1, Int>::from_data(TensorData::new(ids, [n]), &device).reshape([n, 1]);
        let picked = logits.clone().gather(1, ids); // [N, 1]
        let logprobs = (picked - logsumexp(logits.clone())).reshape([n]);
        let entropy = entropy_from_logits(logits.unsqueeze_dim::<3>(0)).reshape([n]);
        (logprobs, entropy)
    }

    fn values(t: Tensor<1>) -> Vec<f32> {
        t.into_data().iter::<f32>().collect()
    }

    fn close(a: &[f32], b: &[f32], tol: f32) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= tol * (1.0 + y.abs()),
                "element {i}: {x} vs {y}"
            );
        }
    }

    /// By hand: logits [0, ln 2, ln 3, -inf-ish] give p = [1, 2, 3, 0] / 6.
    #[test]
    fn one_row_by_hand() {
        let device = Device::flex();
        let z = [0.0f32, 2f32.ln(), 3f32.ln(), -1.0e9];
        let logits = Tensor::<2>::from_data(TensorData::new(z.to_vec(), [1, 4]), &device);
        let out = logprobs_and_entropy(&logits, &[2]).expect("flex");
        let got: Vec<f32> = out.into_data().iter::<f32>().collect();
        let p = [1.0f64 / 6.0, 2.0 / 6.0, 3.0 / 6.0];
        let entropy: f64 = -p.iter().map(|p| p * p.ln()).sum::<f64>();
        close(&got, &[(0.5f64).ln() as f32, entropy as f32], 1e-6);
    }

    #[test]
    fn values_and_gradients_equal_burns_composition() {
        let device = Device::flex().autodiff();
        let (n, v) = (7, 1003);
        let mut rng = crate::rng::Rng::new(3);
        let targets: Vec<u32> = (0..n).map(|_| rng.below(v) as u32).collect();
        let base = Tensor::<2>::random([n, v], Distribution::Normal(0.0, 3.0), &device);
        // Upstream weights on both outputs, so each gradient term is exercised.
        let w_lp = Tensor::<1>::random([n], Distribution::Uniform(-1.0, 1.0), &device);
        let w_h = Tensor::<1>::random([n], Distribution::Uniform(-1.0, 1.0), &device);

        let z = base.clone().detach().require_grad();
        let scores = logprobs_and_entropy(&z, &targets).expect("flex autodiff");
        let lp = scores.clone().narrow(1, 0, 1).reshape([n]);
        let h = scores.narrow(1, 1, 1).reshape([n]);
        let loss = (lp.clone() * w_lp.clone()).sum() + (h.clone() * w_h.clone()).sum();
        let grads = loss.backward();
        let dz = z.grad(&grads).expect("tracked");

        let z_ref = base.detach().require_grad();
        let (lp_ref, h_ref) = composed(z_ref.clone(), &targets);
        let loss_ref = (lp_ref.clone() * w_lp).sum() + (h_ref.clone() * w_h).sum();
        let grads_ref = loss_ref.backward();
        let dz_ref = z_ref.grad(&grads_ref).expect("tracked");

        close(&values(lp.inner()), &values(lp_ref.inner()), 1e-5);
        close(&values(h.inner()), &values(h_ref.inner()), 1e-5);
        let flat = |t: Tensor<2>| t.into_data().iter::<f32>().collect::<Vec<_>>();
        let (got, want) = (flat(dz), flat(dz_ref));
        let scale = want.iter().fold(0f32, |m, x| m.max(x.abs()));
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            assert!((a - b).abs() <= 1e-5 * scale, "gradient {i}: {a} vs {b}");
        }
    }

    #[test]
    fn other_dtypes_views_and_bad_targets() {
        let device = Device::flex();
        let logits = Tensor::<2>::random([3, 5], Distribution::Default, &device);
        assert!(
            logprobs_and_entropy(&logits, &[0, 1]).is_none(),
            "one target per row"
        );
        assert!(
            logprobs_and_entropy(&logits, &[0, 1, 5]).is_none(),
            "targets below V"
        );
        // Only f32 data is read: bf16 logits go to burn's own ops.
        assert!(logprobs_and_entropy(&logits, &[0, 1, 2]).is_some());
        assert!(
            logprobs_and_entropy(&logits.clone().cast(DType::BF16), &[0, 1, 2]).is_none(),
            "bf16"
        );
        // A transposed view is read in row-major order.
        let t = Tensor::<2>::random([5, 3], Distribution::Default, &device).transpose();
        let got = logprobs_and_entropy(&t, &[4, 0, 2]).expect("flex");
        let (lp, h) = composed(t, &[4, 0, 2]);
        let got: Vec<f32> = got.into_data().iter::<f32>().collect();
        let want: Vec<f32> = values(lp)
            .into_iter()
            .zip(values(h))
            .flat_map(|(a, b)| [a, b])
            .collect();
        close(&got, &want, 1e-6);
    }
}
