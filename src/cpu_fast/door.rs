//! The one door the model comes through. Every function here either does the work in a kernel
//! and returns `Some`, or returns `None`, and the caller runs burn's own op in its place:
//!
//! ```ignore
//! cpu_fast::linear(&x, &weight, bias.as_ref()).unwrap_or_else(|| layer.forward(x))
//! ```
//!
//! `None` comes when the kernel's switch is off ([`Kernel`]), when the tensors are not f32 on
//! plain flex (WebGPU, CUDA, autodiff, bf16), when the shapes are not the kernel's, and always on
//! wasm32, where the page's model runs burn's ops only. The model names only what is here: two
//! opaque types it keeps in its KV cache ([`FastWeights`], [`FastKv`]), the plain view of its
//! weights the fused step reads ([`DecoderWeights`]), and the functions below.

use burn::tensor::{Device, Int, Tensor};
#[cfg(not(target_arch = "wasm32"))]
use std::sync::Arc;

#[cfg(not(target_arch = "wasm32"))]
use super::few_rows::{FEW_ROWS, Panels};
pub use super::model_view::{DecoderWeights, LayerWeights};
#[cfg(not(target_arch = "wasm32"))]
use super::native_kv::NativeKv;
#[cfg(not(target_arch = "wasm32"))]
use super::{Kernel, on, take};

/// `x [.., K] @ weight [K, N] (+ bias [N])`: with few rows (decoding) in
/// [`few_rows`](super::few_rows), with many (a forward or backward pass) through
/// [`gemm_linear`](super::gemm_linear).
#[cfg_attr(target_arch = "wasm32", allow(unused_variables))]
pub fn linear<const N: usize>(
    x: &Tensor<N>,
    weight: &Tensor<2>,
    bias: Option<&Tensor<1>>,
) -> Option<Tensor<N>> {
    #[cfg(not(target_arch = "wasm32"))]
    return take(Kernel::FewRows, || super::few_rows::linear(x, weight, bias)).or_else(|| {
        take(Kernel::GemmLinear, || {
            super::gemm_linear::linear(x, weight, bias, false)
        })
    });
    #[cfg(target_arch = "wasm32")]
    None
}

/// Several products that read the same `x` (q, k and v; gate and up) in one call, with few rows.
#[cfg_attr(target_arch = "wasm32", allow(unused_variables))]
pub fn linears<const N: usize, const W: usize>(
    x: &Tensor<N>,
    layers: [(&Tensor<2>, Option<&Tensor<1>>); W],
) -> Option<[Tensor<N>; W]> {
    #[cfg(not(target_arch = "wasm32"))]
    return take(Kernel::FewRows, || super::few_rows::linear_many(x, layers));
    #[cfg(target_arch = "wasm32")]
    None
}

/// The tied LM head: `x [M, D] @ embed^T` for the embedding `embed [V, D]`, read in place.
#[cfg_attr(target_arch = "wasm32", allow(unused_variables))]
pub fn tied_head(x: &Tensor<2>, embed: &Tensor<2>) -> Option<Tensor<2>> {
    #[cfg(not(target_arch = "wasm32"))]
    return take(Kernel::FewRows, || {
        super::few_rows::linear(x, &embed.clone().transpose(), None)
    })
    .or_else(|| {
        take(Kernel::GemmLinear, || {
            super::gemm_linear::linear(x, embed, None, true)
        })
    });
    #[cfg(target_arch = "wasm32")]
    None
}

/// Which of a decoder layer's seven Linear weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proj {
    Q,
    K,
    V,
    O,
    Gate,
    Up,
    Down,
}

/// A decoder layer's Linear weights, in [`Proj`]'s order.
pub type LayerProjs = [Tensor<2>; 7];

/// The model's Linear weights prepared for decoding's few-row products (natively: packed in
/// panels, so each tile of columns is one contiguous block: the layers' products measured 15-20%
/// faster than reading 256 bytes from every row of the `[K, N]` weights). Made once per
/// generation by [`FastWeights::for_decoding`], read at every step; clones share them.
#[derive(Clone)]
pub struct FastWeights {
    #[cfg(not(target_arch = "wasm32"))]
    layers: Arc<Vec<[Panels; 7]>>,
    #[cfg(target_arch = "wasm32")]
    never: std::convert::Infallible,
}

/// Prepared weights above this many bytes are not made (a model that large decodes from its
/// weights as they lie rather than hold a second copy).
#[cfg(not(target_arch = "wasm32"))]
const FAST_WEIGHTS_MAX: usize = 1 << 30;

impl FastWeights {
    /// Every layer's Linear weights (which `layers` lists, in [`Proj`]'s order) prepared for a
    /// generation of `rows` rows, or `None`: when decoding's kernels are off, the rows are too
    /// many for few-row products, the weights are not f32 on plain flex, or they would take over
    /// 1 GiB.
    #[cfg_attr(target_arch = "wasm32", allow(unused_variables))]
    pub fn for_decoding(
        rows: usize,
        layers: impl FnOnce() -> Vec<LayerProjs>,
    ) -> Option<FastWeights> {
        #[cfg(not(target_arch = "wasm32"))]
        {
            if rows > FEW_ROWS || !(on(Kernel::FewRows) || on(Kernel::DecodeStep)) {
                return None;
            }
            let layers = layers();
            let values: usize = layers
                .iter()
                .flatten()
                .map(|w| w.dims().iter().product::<usize>())
                .sum();
            if values * 4 > FAST_WEIGHTS_MAX {
                return None;
            }
            // One core copies at about half of what memory gives: the weights are packed in
            // parallel (the 50M model's 120 MB in 15-19 ms, against 37 one at a time).
            use rayon::prelude::*;
            let weights: Vec<&Tensor<2>> = layers.iter().flatten().collect();
            let packed: Vec<Panels> = weights
                .par_iter()
                .map(|w| Panels::of(w))
                .collect::<Option<_>>()?;
            let mut packed = packed.into_iter();
            let layers = (0..layers.len())
                .map(|_| std::array::from_fn(|_| packed.next().expect("7 weights per layer")))
                .collect();
            Some(FastWeights {
                layers: Arc::new(layers),
            })
        }
        #[cfg(target_arch = "wasm32")]
        None
    }

    /// `x @ W (+ bias)` for each of layer `layer`'s weights `which`, with few rows.
    #[cfg_attr(target_arch = "wasm32", allow(unused_variables))]
    pub fn linears<const N: usize, const W: usize>(
        &self,
        layer: usize,
        which: [Proj; W],
        x: &Tensor<N>,
        biases: [Option<&Tensor<1>>; W],
    ) -> Option<[Tensor<N>; W]> {
        #[cfg(not(target_arch = "wasm32"))]
        {
            let panels = self.layers.get(layer)?;
            let layers = std::array::from_fn(|i| (&panels[which[i] as usize], biases[i]));
            take(Kernel::FewRows, || {
                super::few_rows::linear_panels(x, layers)
            })
        }
        #[cfg(target_arch = "wasm32")]
        match self.never {}
    }

    /// How many layers it holds.
    pub fn layers(&self) -> usize {
        #[cfg(not(target_arch = "wasm32"))]
        return self.layers.len();
        #[cfg(target_arch = "wasm32")]
        match self.never {}
    }

    #[cfg(test)]
    pub(crate) fn panels(&self) -> &[[Panels; 7]] {
        &self.layers
    }

    /// Whether `self` and `other` share one copy.
    pub fn same(&self, other: &FastWeights) -> bool {
        #[cfg(not(target_arch = "wasm32"))]
        return Arc::ptr_eq(&self.layers, &other.layers);
        #[cfg(target_arch = "wasm32")]
        match (self.never, other).0 {}
    }
}

impl std::fmt::Debug for FastWeights {
    #[cfg_attr(target_arch = "wasm32", allow(unused_variables))]
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        #[cfg(not(target_arch = "wasm32"))]
        {
            let bytes: usize = self.layers.iter().flatten().map(Panels::bytes).sum();
            write!(
                f,
                "FastWeights({} layers, {bytes} bytes)",
                self.layers.len()
            )
        }
        #[cfg(target_arch = "wasm32")]
        match self.never {}
    }
}

/// A KV cache as burn tensors: per layer `(keys, values)` `[B, K, P, hd]`, the mask `[B, P]` and
/// the next position ids `[B, 1]`.
pub type PastTensors = (Vec<(Tensor<4>, Tensor<4>)>, Tensor<2, Int>, Tensor<2, Int>);

/// A KV cache held in plain memory with room to grow, which [`decode`] writes in place.
#[derive(Clone, Debug)]
pub struct FastKv {
    #[cfg(not(target_arch = "wasm32"))]
    kv: NativeKv,
    #[cfg(target_arch = "wasm32")]
    never: std::convert::Infallible,
}

impl FastKv {
    /// The cache burn's pass made, moved to plain memory for [`decode`], or `None` when the
    /// step is off or the tensors are not f32 on plain flex.
    #[cfg_attr(target_arch = "wasm32", allow(unused_variables))]
    pub fn of(past: &PastTensors) -> Option<FastKv> {
        #[cfg(not(target_arch = "wasm32"))]
        {
            if !on(Kernel::DecodeStep) {
                return None;
            }
            let (layers, mask, next_position) = past;
            NativeKv::of(layers, mask, next_position).map(|kv| FastKv { kv })
        }
        #[cfg(target_arch = "wasm32")]
        None
    }

    /// Number of cached positions P.
    pub fn len(&self) -> usize {
        #[cfg(not(target_arch = "wasm32"))]
        return self.kv.len();
        #[cfg(target_arch = "wasm32")]
        match self.never {}
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The same cache as burn tensors on `device`.
    #[cfg_attr(target_arch = "wasm32", allow(unused_variables))]
    pub fn to_tensors(&self, device: &Device) -> PastTensors {
        #[cfg(not(target_arch = "wasm32"))]
        return self.kv.to_tensors(device);
        #[cfg(target_arch = "wasm32")]
        match self.never {}
    }

    #[cfg(test)]
    pub(crate) fn native(&mut self) -> &mut NativeKv {
        &mut self.kv
    }
}

/// One decoding step of the whole model in [`decode_step`](super::decode_step)'s loops: the next
/// token of each row (`ids [B, 1]`) after what `kv` holds, which then holds it too. Returns the
/// logits `[B, 1, V]` and the values `[B, 1]`. `None`, with
/// `kv` untouched, when the step is off, `model` gives no weights (`None`: not f32), the shapes
/// do not match or an id is outside the vocabulary; burn's path then runs the step.
#[cfg_attr(target_arch = "wasm32", allow(unused_variables))]
pub fn decode(
    weights: &FastWeights,
    kv: &mut FastKv,
    ids: &Tensor<2, Int>,
    model: impl FnOnce() -> Option<DecoderWeights>,
) -> Option<(Tensor<3>, Tensor<2>)> {
    #[cfg(not(target_arch = "wasm32"))]
    return take(Kernel::DecodeStep, || {
        let [b, t] = ids.dims();
        if t != 1 {
            return None;
        }
        let model = model()?;
        if ids.device() != model.embed.device() {
            return None;
        }
        let ids: Vec<i64> = ids.to_data().iter::<i64>().collect();
        let out = super::decode_step::step(&model, &weights.layers, &mut kv.kv, &ids)?;
        let device = model.embed.device();
        let logits = burn::tensor::TensorData::new(out.logits, [b, 1, model.vocab_size]);
        let values = burn::tensor::TensorData::new(out.values, [b, 1]);
        Some((
            Tensor::from_data(logits, &device),
            Tensor::from_data(values, &device),
        ))
    });
    #[cfg(target_arch = "wasm32")]
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Param;
    use burn::nn::Linear;
    use burn::tensor::{Distribution, Tolerance};

    fn close<const N: usize>(got: Tensor<N>, want: Tensor<N>) {
        got.into_data()
            .assert_approx_eq::<f32>(&want.into_data(), Tolerance::rel_abs(1e-5, 1e-4));
    }

    /// A decoding-sized product (4 rows through a 512 x 1536 weight with a bias), several at
    /// once, the same from prepared weights, and the tied LM head (`x @ E^T` with `E [V, D]`),
    /// all give burn's numbers on flex; weights on the autodiff device are not prepared.
    #[test]
    fn the_door_gives_burns_numbers_or_declines() {
        let device = Device::flex();
        let random = |dims: [usize; 2]| Tensor::<2>::random(dims, Distribution::Default, &device);
        let layer = Linear {
            weight: Param::from_tensor(random([512, 1536])),
            bias: Some(Param::from_tensor(random([1, 1536]).reshape([1536]))),
        };
        let (w, bias) = (layer.weight.val(), layer.bias.as_ref().unwrap().val());
        let x = Tensor::<3>::random([4, 1, 512], Distribution::Default, &device);
        let want = layer.forward(x.clone());
        close(
            linear(&x, &w, Some(&bias)).expect("few rows on flex"),
            want.clone(),
        );
        let [a, b] = linears(&x, [(&w, Some(&bias)), (&w, None)]).expect("few rows on flex");
        close(a, want.clone());
        close(b, burn::tensor::module::linear(x.clone(), w.clone(), None));
        // Many rows: through gemm.
        let rows = Tensor::<3>::random([4, 48, 512], Distribution::Default, &device);
        close(
            linear(&rows, &w, Some(&bias)).expect("gemm on flex"),
            layer.forward(rows),
        );

        let embed = random([1000, 512]);
        let flat = x.clone().reshape([4, 512]);
        close(
            tied_head(&flat, &embed).expect("the embedding read in place"),
            flat.clone().matmul(embed.clone().transpose()),
        );

        let projs: LayerProjs = std::array::from_fn(|_| w.clone());
        let fast = FastWeights::for_decoding(4, || vec![projs.clone()]).expect("f32 on flex");
        let [q, down] = fast
            .linears(0, [Proj::Q, Proj::Down], &x, [Some(&bias), Some(&bias)])
            .expect("few rows");
        close(q, want.clone());
        close(down, want);
        assert!(
            fast.linears(1, [Proj::Q], &x, [None]).is_none(),
            "no layer 1"
        );
        assert!(FastWeights::for_decoding(FEW_ROWS + 1, || vec![projs.clone()]).is_none());

        let ad = device.clone().autodiff();
        let w_ad = Tensor::<2>::random([512, 64], Distribution::Default, &ad).require_grad();
        assert!(
            FastWeights::for_decoding(4, || vec![std::array::from_fn(|_| w_ad.clone())]).is_none()
        );
    }

    /// A prefill on flex prepares the weights for decoding (when its rows are few enough) and
    /// hands the cache to the fused step; a decode step keeps the same weights.
    #[test]
    fn prefill_prepares_the_weights_for_decoding() {
        let config = crate::model::Qwen2Config::new(40, 32, 64, 2, 4, 2, true).unwrap();
        let device = Device::flex();
        let model = crate::model::init_random(
            &config,
            0,
            0.02,
            crate::model::ValueHeadInit::Zeros,
            crate::model::Precision::F32,
            &device,
        )
        .unwrap();
        let ids = |rows: usize| Tensor::<2, Int>::ones([rows, 3], &device);
        let (_, cache) = model.prefill(ids(2), ids(2));
        assert!(cache.is_fast());
        let fast = cache.fast.clone().expect("prepared on flex");
        assert_eq!(fast.layers(), 2);
        let (_, cache) = model.decode(Tensor::<2, Int>::ones([2, 1], &device), cache);
        assert!(fast.same(cache.fast.as_ref().unwrap()), "kept");
        let (_, many) = model.prefill(ids(FEW_ROWS + 1), ids(FEW_ROWS + 1));
        assert!(many.fast.is_none(), "decoded by gemm, not few-row products");
    }
}
