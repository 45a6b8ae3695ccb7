//! SwiGLU's gate, `silu(g) * u = g u / (1 + e^-g)`, in one pass forward and one backward on
//! flex natively, SIMD and on every core.
//!
//! burn's `silu(g) * u` is a sigmoid (one C-library `expf` per value), two products, and as
//! many passes backward, each a new tensor. With `s = 1 / (1 + e^-g)`:
//!
//! ```text
//! y     = g s u
//! dy/du = g s
//! dy/dg = u s (1 + g (1 - s))      (d(g s)/dg = s + g s (1 - s))
//! ```
//!
//! Anything else (WebGPU, CUDA, other dtypes, gradient checkpointing) gets `None` and runs
//! burn's ops as before; the tests hold the two equal, gradients included.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::tensor::{DType, Shape, Tensor, TensorData};
use rayon::prelude::*;

use crate::adamw::dense;
use crate::fast_exp::{exp, simd_fn};

/// Values per task when the work is shared between threads.
const CHUNK: usize = 1 << 14;

/// `silu(gate) * up` for tensors of one shape, f32 on flex (plain or `device.autodiff()`);
/// gradients flow to both where they are tracked. `None` elsewhere.
pub fn swiglu<const D: usize>(gate: &Tensor<D>, up: &Tensor<D>) -> Option<Tensor<D>> {
    if gate.dtype() != DType::F32 || up.dtype() != DType::F32 || gate.dims() != up.dims() {
        return None;
    }
    if let Ok(g) = gate.clone().try_into_primitive::<Flex>() {
        let u = dense(up.clone().try_into_primitive::<Flex>().ok()?);
        let y = forward(&dense(g), &u);
        return Some(Tensor::from_primitive::<Flex>(y));
    }
    let (g, g_node) = gate
        .clone()
        .try_into_primitive::<Autodiff<Flex>>()
        .ok()?
        .into_parts();
    let (u, u_node) = up
        .clone()
        .try_into_primitive::<Autodiff<Flex>>()
        .ok()?
        .into_parts();
    let (g, u) = (dense(g), dense(u));
    let y = forward(&g, &u);
    let out = match SwigluBackward
        .prepare::<NoCheckpointing>([g_node, u_node])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((g, u), y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Some(Tensor::from_primitive::<Autodiff<Flex>>(out))
}

fn values(t: &FlexTensor) -> &[f32] {
    &t.storage::<f32>()[..t.layout().num_elements()]
}

fn forward(g: &FlexTensor, u: &FlexTensor) -> FlexTensor {
    let shape: Shape = g.layout().shape().clone();
    let (g, u) = (values(g), values(u));
    let mut y = vec![0f32; g.len()];
    y.par_chunks_mut(CHUNK)
        .zip(g.par_chunks(CHUNK).zip(u.par_chunks(CHUNK)))
        .for_each(|(y, (g, u))| forward_chunk(y, g, u));
    FlexTensor::from_data(TensorData::new(y, shape))
}

simd_fn! {
    /// `y = silu(g) * u`, element by element.
    pub(crate) fn forward_chunk(y: &mut [f32], g: &[f32], u: &[f32]) {
        for ((y, &g), &u) in y.iter_mut().zip(g).zip(u) {
            *y = g * u / (1.0 + exp(-g));
        }
    }
}

simd_fn! {
    fn backward_chunk(dg: &mut [f32], du: &mut [f32], dy: &[f32], g: &[f32], u: &[f32]) {
        for ((((dg, du), &dy), &g), &u) in dg.iter_mut().zip(du.iter_mut()).zip(dy).zip(g).zip(u) {
            let s = 1.0 / (1.0 + exp(-g));
            *du = dy * g * s;
            *dg = dy * u * s * (1.0 + g * (1.0 - s));
        }
    }
}

#[derive(Debug)]
struct SwigluBackward;

impl Backward<Flex, 2> for SwigluBackward {
    /// The gate and the up projection, dense.
    type State = (FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = dense(grads.consume::<Flex>(&ops.node));
        let [g_parent, u_parent] = ops.parents;
        let (g, u) = ops.state;
        let shape: Shape = g.layout().shape().clone();
        let (dy, gs, us) = (values(&dy), values(&g), values(&u));
        let (mut dg, mut du) = (vec![0f32; gs.len()], vec![0f32; gs.len()]);
        dg.par_chunks_mut(CHUNK)
            .zip(du.par_chunks_mut(CHUNK))
            .zip(dy.par_chunks(CHUNK))
            .zip(gs.par_chunks(CHUNK).zip(us.par_chunks(CHUNK)))
            .for_each(|(((dg, du), dy), (g, u))| backward_chunk(dg, du, dy, g, u));
        let tensor = |v: Vec<f32>| FlexTensor::from_data(TensorData::new(v, shape.clone()));
        if let Some(parent) = g_parent {
            grads.register::<Flex>(parent.id, tensor(dg));
        }
        if let Some(parent) = u_parent {
            grads.register::<Flex>(parent.id, tensor(du));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::activation::silu;
    use burn::tensor::{Device, Distribution};

    fn flat<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().iter::<f32>().collect()
    }

    fn close(got: &[f32], want: &[f32], what: &str) {
        assert_eq!(got.len(), want.len());
        for (i, (a, b)) in got.iter().zip(want).enumerate() {
            assert!(
                (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                "{what}[{i}]: {a} vs {b}"
            );
        }
    }

    /// g = 0: s = 1/2, y = 0, dy/du = 0, dy/dg = u / 2. g = ln 3: s = 3/4, y = (3/4) ln 3 u.
    #[test]
    fn values_and_gradients_by_hand() {
        let device = Device::flex().autodiff();
        let ln3 = 3f32.ln();
        let g = Tensor::<1>::from_floats([0.0, ln3], &device).require_grad();
        let u = Tensor::<1>::from_floats([2.0, -1.0], &device).require_grad();
        let y = swiglu(&g, &u).expect("flex");
        close(&flat(y.clone().inner()), &[0.0, -0.75 * ln3], "y");
        let grads = y.sum().backward();
        close(&flat(u.grad(&grads).unwrap()), &[0.0, 0.75 * ln3], "du");
        // dy/dg at ln 3: u s (1 + g (1 - s)) = -(3/4)(1 + ln3 / 4)
        close(
            &flat(g.grad(&grads).unwrap()),
            &[1.0, -0.75 * (1.0 + ln3 / 4.0)],
            "dg",
        );
    }

    /// Against burn's `silu(g) * u`, values and both gradients, over a range that reaches the
    /// edges of exp (|g| up to 100) and a length that is not a multiple of the chunk.
    #[test]
    fn values_and_gradients_equal_burns() {
        let device = Device::flex().autodiff();
        let shape = [3, 7, CHUNK / 5];
        let g0 = Tensor::<3>::random(shape, Distribution::Uniform(-100.0, 100.0), &device);
        let u0 = Tensor::<3>::random(shape, Distribution::Normal(0.0, 2.0), &device);
        let upstream = Tensor::<3>::random(shape, Distribution::Normal(0.0, 1.0), &device);

        let (g, u) = (g0.clone().require_grad(), u0.clone().require_grad());
        let y = swiglu(&g, &u).expect("flex");
        let grads = (y.clone() * upstream.clone()).sum().backward();
        let (gr, ur) = (g0.require_grad(), u0.require_grad());
        let yr = silu(gr.clone()) * ur.clone();
        let grads_r = (yr.clone() * upstream).sum().backward();

        close(&flat(y.inner()), &flat(yr.inner()), "y");
        close(
            &flat(g.grad(&grads).unwrap()),
            &flat(gr.grad(&grads_r).unwrap()),
            "dg",
        );
        close(
            &flat(u.grad(&grads).unwrap()),
            &flat(ur.grad(&grads_r).unwrap()),
            "du",
        );
    }

    #[test]
    fn plain_flex_and_refusals() {
        let device = Device::flex();
        let g = Tensor::<2>::from_floats([[-1.0, 0.5]], &device);
        let u = Tensor::<2>::from_floats([[3.0, 2.0]], &device);
        let want = flat(silu(g.clone()) * u.clone());
        close(&flat(swiglu(&g, &u).expect("flex")), &want, "y");
        let other = Tensor::<2>::from_floats([[1.0], [2.0]], &device);
        assert!(swiglu(&g, &other).is_none(), "shapes differ");
        assert!(swiglu(&g.clone().cast(DType::F64), &u.cast(DType::F64)).is_none());
    }
}
