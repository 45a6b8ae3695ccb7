//! AdamW, with burn's arithmetic, in one pass over memory on flex.
//!
//! burn's `AdamW` updates a parameter with about a dozen tensor operations (the two moments, the
//! bias corrections, the square root, the division, the step), each a pass over the whole
//! parameter on one thread; for the 50M model that is a dozen passes over 191 MB per optimizer
//! step. On flex (f32, dense) this optimizer reads the parameter, its gradient and both moments
//! once, computes the same operations in the same order for each value, and writes the results
//! back in place where the buffers are not shared (copy-on-write where they are), on every core.
//! Elsewhere (WebGPU, CUDA, other dtypes) it hands the step to burn's `AdamW`.
//!
//! Its state is burn's `AdamWState`, so checkpoints written with either optimizer load in the
//! other, and the numbers are the same bit for bit (tested in `tests::fused_steps_equal_burns`).

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::optim::{
    AdamWConfig, AdamWState, AdaptiveMomentumState, LearningRate, ModuleOptimizer, Optimizer,
};
use burn::tensor::{DType, Device, Tensor};

use crate::cpu_fast::Kernel;

/// AdamW (decoupled weight decay, bias-corrected moments, no AMSGrad) with burn's defaults:
/// betas 0.9 and 0.999, epsilon 1e-5.
#[derive(Clone)]
pub struct AdamW {
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
    weight_decay: f32,
    /// The same optimizer in burn, for tensors the fused pass does not take.
    burn: burn::optim::AdamW,
}

impl AdamW {
    pub fn new(weight_decay: f32) -> Self {
        let config = AdamWConfig::new().with_weight_decay(weight_decay);
        AdamW {
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-5,
            weight_decay,
            burn: config.build(),
        }
    }

    /// A whole-module optimizer, used like `AdamWConfig::init()`.
    pub fn init(self) -> ModuleOptimizer {
        ModuleOptimizer::from(self)
    }
}

impl Optimizer for AdamW {
    type State<const D: usize> = AdamWState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let on_flex = |t: &Tensor<D>| {
            t.dtype() == DType::F32 && t.clone().try_into_primitive::<Flex>().is_ok()
        };
        let fused = on_flex(&tensor)
            && on_flex(&grad)
            && tensor.shape() == grad.shape()
            && state.as_ref().is_none_or(|s| {
                let m = &s.momentum;
                m.max_moment_2.is_none()
                    && on_flex(&m.moment_1)
                    && on_flex(&m.moment_2)
                    && m.moment_1.shape() == tensor.shape()
                    && m.moment_2.shape() == tensor.shape()
            });
        if !fused || crate::cpu_fast::take(Kernel::AdamW, || Some(())).is_none() {
            return self.burn.step(lr, tensor, grad, state);
        }
        let (tensor, state) = self.fused_step(lr, tensor, grad, state.map(|s| s.momentum));
        (tensor, Some(AdamWState::new(state)))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        <burn::optim::AdamW as Optimizer>::to_device(state, device)
    }
}

/// The constants of one step, as burn's `AdamW` computes them.
#[derive(Clone, Copy)]
struct StepConstants {
    beta_1: f32,
    beta_2: f32,
    /// `1 - beta`, the weight of the new gradient in each moment.
    factor_1: f32,
    factor_2: f32,
    /// The bias corrections `1 - beta^t`.
    correction_1: f32,
    correction_2: f32,
    epsilon: f32,
    /// `1 - lr * weight_decay`, or `None` without weight decay.
    decay: Option<f32>,
    lr: f32,
    /// The first step: the moments start from this gradient alone.
    first: bool,
}

impl AdamW {
    fn fused_step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<AdaptiveMomentumState<D>>,
    ) -> (Tensor<D>, AdaptiveMomentumState<D>) {
        let flex = |t: Tensor<D>| dense(t.try_into_primitive::<Flex>().expect("checked: flex"));
        let n = tensor.shape().num_elements();
        let shape = tensor.shape();
        let mut param = flex(tensor);
        let grad = flex(grad);
        let (time, moments) = match state {
            Some(s) => (s.time + 1, Some((flex(s.moment_1), flex(s.moment_2)))),
            None => (1, None),
        };
        let first = moments.is_none();
        let (mut moment_1, mut moment_2) = moments.unwrap_or_else(|| {
            (
                FlexTensor::zeros(shape.clone(), DType::F32),
                FlexTensor::zeros(shape.clone(), DType::F32),
            )
        });
        let decay_rate = lr * self.weight_decay as f64;
        let constants = StepConstants {
            beta_1: self.beta_1,
            beta_2: self.beta_2,
            factor_1: 1.0 - self.beta_1,
            factor_2: 1.0 - self.beta_2,
            correction_1: 1f32 - self.beta_1.powi(time as i32),
            correction_2: 1f32 - self.beta_2.powi(time as i32),
            epsilon: self.epsilon,
            decay: (decay_rate != 0.0).then_some((1.0 - decay_rate) as f32),
            lr: lr as f32,
            first,
        };
        {
            let g = &grad.storage::<f32>()[..n];
            let p = &mut param.storage_mut::<f32>()[..n];
            let m = &mut moment_1.storage_mut::<f32>()[..n];
            let v = &mut moment_2.storage_mut::<f32>()[..n];
            update(p, g, m, v, constants);
        }
        let back = |t: FlexTensor| Tensor::<D>::from_primitive::<Flex>(t);
        let state = AdaptiveMomentumState {
            time,
            moment_1: back(moment_1),
            moment_2: back(moment_2),
            max_moment_2: None,
        };
        (back(param), state)
    }
}

/// `sum(t^2)` in f64, in one pass on every core, for an f32 tensor on flex (`None` elsewhere):
/// the gradient-norm's sum without a squared copy of every gradient.
pub fn sum_of_squares<const D: usize>(t: &Tensor<D>) -> Option<f64> {
    if t.dtype() != DType::F32 || !crate::cpu_fast::on(Kernel::AdamW) {
        return None;
    }
    let t = t.clone().try_into_primitive::<Flex>().ok()?;
    let t = dense(t);
    let values = &t.storage::<f32>()[..t.layout().num_elements()];
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        Some(values.par_chunks(CHUNK).map(squares).sum())
    }
    #[cfg(target_arch = "wasm32")]
    Some(squares(values))
}

/// `t * s` (gradient clipping's scale): on flex (f32) in place on every core, as burn's
/// `mul_scalar` computes it (`x * (s as f32)`); elsewhere `mul_scalar` itself.
pub fn scale<const D: usize>(t: Tensor<D>, s: f64) -> Tensor<D> {
    if t.dtype() != DType::F32
        || !crate::cpu_fast::on(Kernel::AdamW)
        || t.clone().try_into_primitive::<Flex>().is_err()
    {
        return t.mul_scalar(s);
    }
    let mut t = dense(t.try_into_primitive::<Flex>().expect("checked: flex"));
    let n = t.layout().num_elements();
    let s = s as f32;
    let values = &mut t.storage_mut::<f32>()[..n];
    let part = |c: &mut [f32]| c.iter_mut().for_each(|x| *x *= s);
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        values.par_chunks_mut(CHUNK).for_each(part);
    }
    #[cfg(target_arch = "wasm32")]
    part(values);
    Tensor::from_primitive::<Flex>(t)
}

/// A flex tensor whose storage is exactly its values in order (a copy when it was a view).
pub(crate) fn dense(t: FlexTensor) -> FlexTensor {
    let n = t.layout().num_elements();
    if t.layout().contiguous_offsets() == Some((0, n)) && t.storage::<f32>().len() == n {
        t
    } else {
        t.to_contiguous()
    }
}

/// Values per task when the update is shared out between threads.
#[cfg(not(target_arch = "wasm32"))]
const CHUNK: usize = 1 << 16;

/// The step for every value, on every core natively (in the page, on its one thread).
fn update(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], c: StepConstants) {
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        p.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .zip(m.par_chunks_mut(CHUNK))
            .zip(v.par_chunks_mut(CHUNK))
            .for_each(|(((p, g), m), v)| update_values(p, g, m, v, c));
    }
    #[cfg(target_arch = "wasm32")]
    update_values(p, g, m, v, c);
}

/// burn's `AdamW` step for each value, operation for operation (f32 throughout):
/// ```text
/// m = m * beta_1 + g * (1 - beta_1)             (first step: m = g * (1 - beta_1))
/// v = v * beta_2 + (g * g) * (1 - beta_2)       (first step: v = (g * g) * (1 - beta_2))
/// delta = (m / (1 - beta_1^t)) / (sqrt(v / (1 - beta_2^t)) + epsilon)
/// p = p * (1 - lr * weight_decay) - delta * lr  (no decay term without weight decay)
/// ```
/// Every operation is one IEEE operation per value (no fused multiply-add), so the vector
/// versions below give the same bits as burn's tensor operations.
fn update_values(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], c: StepConstants) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F.
            return unsafe { update_avx512(p, g, m, v, c) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2.
            return unsafe { update_avx2(p, g, m, v, c) };
        }
    }
    update_any(p, g, m, v, c);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn update_avx512(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], c: StepConstants) {
    update_any(p, g, m, v, c);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn update_avx2(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], c: StepConstants) {
    update_any(p, g, m, v, c);
}

/// One loop per case, so that each loop body has no branch and compiles to vector code.
#[inline(always)]
fn update_any(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], c: StepConstants) {
    match (c.first, c.decay) {
        (true, None) => update_loop::<true, false>(p, g, m, v, c, 1.0),
        (true, Some(d)) => update_loop::<true, true>(p, g, m, v, c, d),
        (false, None) => update_loop::<false, false>(p, g, m, v, c, 1.0),
        (false, Some(d)) => update_loop::<false, true>(p, g, m, v, c, d),
    }
}

#[inline(always)]
fn update_loop<const FIRST: bool, const DECAY: bool>(
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    c: StepConstants,
    decay: f32,
) {
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let squared = g * g;
        if FIRST {
            *m = g * c.factor_1;
            *v = squared * c.factor_2;
        } else {
            *m = *m * c.beta_1 + g * c.factor_1;
            *v = *v * c.beta_2 + squared * c.factor_2;
        }
        let delta = (*m / c.correction_1) / ((*v / c.correction_2).sqrt() + c.epsilon);
        let decayed = if DECAY { *p * decay } else { *p };
        *p = decayed - delta * c.lr;
    }
}

super::simd::simd_fn! {
    /// `sum(x^2)` of one chunk in f64, in 16 independent sums, compiled for AVX-512 or AVX2
    /// where the CPU has them (the baseline x86-64 build converts and adds two values per
    /// instruction). Over 192 MB on this project's 2 cores: 10-12 GB/s before, 11-14 after.
    fn squares(values: &[f32]) -> f64 {
        let mut sums = [0f64; 16];
        let blocks = values.chunks_exact(16);
        let rest = blocks.remainder();
        for block in blocks {
            for (s, &x) in sums.iter_mut().zip(block) {
                *s += (x as f64) * (x as f64);
            }
        }
        sums.iter().sum::<f64>() + rest.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::GradientsParams;
    use burn::tensor::Distribution;

    fn values(t: Tensor<2>) -> Vec<u32> {
        t.into_data().iter::<f32>().map(f32::to_bits).collect()
    }

    /// Five steps of this optimizer and of burn's AdamW on the same layer and gradients, with
    /// and without weight decay, with a layer large enough to be shared out between threads:
    /// the weights are the same bits after every step, and so is the saved state.
    #[test]
    fn fused_steps_equal_burns() {
        let device = Device::flex().autodiff();
        for weight_decay in [0.0, 0.1] {
            let start = LinearConfig::new(300, 700).init(&device);
            let mut ours = start.clone();
            let mut theirs = start;
            let mut fused = AdamW::new(weight_decay).init();
            let mut reference = AdamWConfig::new().with_weight_decay(weight_decay).init();
            for step in 0..5 {
                let x = Tensor::<2>::random([3, 300], Distribution::Default, &device);
                let target = Tensor::<2>::random([3, 700], Distribution::Default, &device);
                let loss = |layer: &Linear| {
                    (layer.forward(x.clone()) - target.clone())
                        .powi_scalar(2)
                        .mean()
                };
                let g_ours = GradientsParams::from_grads(loss(&ours).backward(), &ours);
                let g_theirs = GradientsParams::from_grads(loss(&theirs).backward(), &theirs);
                let lr = 1e-2 / (step + 1) as f64;
                ours = fused.step(lr, ours, g_ours);
                theirs = reference.step(lr, theirs, g_theirs);
                assert_eq!(
                    values(ours.weight.val().inner()),
                    values(theirs.weight.val().inner()),
                    "weights differ after step {} (weight decay {weight_decay})",
                    step + 1
                );
                let bias = |l: &Linear| l.bias.as_ref().map(|b| b.val().inner().unsqueeze::<2>());
                assert_eq!(values(bias(&ours).unwrap()), values(bias(&theirs).unwrap()));
            }
            // The saved state is burn's: burn's AdamW resumes from it and takes the same step.
            let bytes = fused.into_bytes().unwrap();
            let mut resumed = AdamWConfig::new()
                .with_weight_decay(weight_decay)
                .init()
                .from_bytes(bytes)
                .unwrap();
            let x = Tensor::<2>::random([3, 300], Distribution::Default, &device);
            let loss = |layer: &Linear| layer.forward(x.clone()).powi_scalar(2).mean();
            let g_ours = GradientsParams::from_grads(loss(&ours).backward(), &ours);
            let g_theirs = GradientsParams::from_grads(loss(&theirs).backward(), &theirs);
            ours = resumed.step(1e-3, ours, g_ours);
            theirs = reference.step(1e-3, theirs, g_theirs);
            assert_eq!(
                values(ours.weight.val().inner()),
                values(theirs.weight.val().inner())
            );
        }
    }

    /// The gradient-norm helpers: the sum of squares by hand, and the scale equal to
    /// `mul_scalar`'s bit for bit, for a tensor shared with another (left unchanged).
    #[test]
    fn sum_of_squares_and_scale_match_burn() {
        let device = Device::flex();
        let g = Tensor::<2>::random([300, 700], Distribution::Default, &device);
        let want: f64 = g
            .clone()
            .into_data()
            .iter::<f32>()
            .map(|x| (x as f64) * (x as f64))
            .sum();
        let got = sum_of_squares(&g).unwrap();
        assert!((got - want).abs() <= 1e-9 * want, "{got} vs {want}");
        let small = Tensor::<1>::from_floats([3.0, -4.0], &device);
        assert_eq!(sum_of_squares(&small), Some(25.0));
        let before = values(g.clone());
        let scaled = scale(g.clone(), 0.37); // shares g's buffer: copied, not overwritten
        assert_eq!(values(g.clone()), before);
        assert_eq!(values(scaled), values(g.mul_scalar(0.37)));
    }

    /// A parameter shared with another tensor (a `valid()` copy of the model, say) is not
    /// changed under the other tensor's feet: the step writes a new buffer.
    #[test]
    fn a_shared_parameter_is_copied_not_overwritten() {
        let device = Device::flex();
        let weight = Tensor::<2>::from_floats([[1.0, -2.0], [3.0, 4.0]], &device);
        let kept = weight.clone();
        let grad = Tensor::<2>::from_floats([[0.5, 0.5], [-0.5, 1.0]], &device);
        let optim = AdamW::new(0.0);
        let (stepped, state) = optim.step(0.1, weight, grad, None);
        let kept: Vec<f32> = kept.into_data().iter::<f32>().collect();
        assert_eq!(kept, vec![1.0, -2.0, 3.0, 4.0]);
        // First step: m = g * 0.1, v = g^2 * 0.001, so delta = g / (|g| + 1e-5 * ...) ≈ sign(g).
        let p: Vec<f32> = stepped.into_data().iter::<f32>().collect();
        for (got, want) in p.iter().zip([0.9, -2.1, 3.1, 3.9]) {
            assert!((got - want).abs() < 1e-4, "{p:?}");
        }
        assert_eq!(state.unwrap().momentum.time, 1);
    }
}
