//! The actor-critic: a Qwen2-architecture decoder with a value head on the same trunk.
//!
//! One file, top to bottom: RMSNorm, rotary embeddings, grouped-query attention with an optional
//! KV cache, the SwiGLU MLP, the decoder layer, the trunk, the LM head and the value head.
//! Shapes are written next to the lines that change them. B = batch, T = new positions in this
//! call, P = positions already in the KV cache, S = P + T, D = hidden_size, H = query heads,
//! K = KV heads, hd = head_dim, V = vocab_size.
//!
//! The same code runs the page's tiny model (f32 on WebGPU or flex) and Qwen1.5-1.8B-Chat in the
//! trainer (bf16 on CUDA).

use burn::module::{Module, Param};
use burn::nn::{Embedding, Linear};
use burn::tensor::activation::{silu, softmax};
use burn::tensor::{DType, Device, Int, Tensor};

use super::config::Qwen2Config;
use crate::cpu_fast::{self, FastKv, FastWeights, LayerProjs, PastTensors, Proj};

/// Added to the score of a key a query may not see. Finite, so a row with nothing to see (a pad
/// query in a left-padded batch) becomes a harmless uniform average instead of NaN.
const MASKED: f32 = -1.0e9;

/// Root-mean-square norm: `x / sqrt(mean(x^2) + eps) * weight`, computed in f32.
#[derive(Module, Debug)]
pub struct RmsNorm {
    /// `[D]`
    pub weight: Param<Tensor<1>>,
    pub eps: f64,
}

impl RmsNorm {
    pub fn forward<const N: usize>(&self, x: Tensor<N>) -> Tensor<N> {
        let dtype = x.dtype();
        let x = to_f32(x);
        let inv_rms = x
            .clone()
            .powf_scalar(2.0)
            .mean_dim(N - 1)
            .add_scalar(self.eps)
            .sqrt()
            .recip();
        let normed = (x * inv_rms).cast(dtype); // back to the compute dtype, as transformers does
        normed * cast_to(self.weight.val(), dtype).unsqueeze()
    }
}

/// Keys and values of every layer for the positions seen so far, plus what the next step needs.
/// A cache belongs to the model that made it.
#[derive(Clone, Debug)]
pub struct KvCache {
    pub(crate) kv: Kv,
    /// The model's Linear weights prepared by [`Qwen2Model::prefill`] for the CPU fast path's
    /// decoding steps, when it takes them (see [`cpu_fast`]).
    pub(crate) fast: Option<FastWeights>,
}

#[derive(Clone, Debug)]
pub(crate) enum Kv {
    /// As burn tensors.
    Tensors(PastTensors),
    /// Held by the CPU fast path, which decodes the next tokens in place.
    Fast(FastKv),
}

impl KvCache {
    /// The same cache as burn tensors, without the fast path's weights: the next steps then run
    /// through burn's ops (for tests that compare the two paths).
    #[cfg(test)]
    pub(crate) fn through_burn(self, device: &Device) -> KvCache {
        KvCache {
            kv: Kv::Tensors(self.kv.into_tensors(device)),
            fast: None,
        }
    }

    /// The cache's tensors (for tests).
    #[cfg(test)]
    pub(crate) fn tensors_for_test(self) -> PastTensors {
        self.kv.into_tensors(&Device::flex())
    }

    /// Whether the next one-token steps run in the CPU fast path's fused step.
    #[cfg(test)]
    pub(crate) fn is_fast(&self) -> bool {
        matches!(self.kv, Kv::Fast(_)) && self.fast.is_some()
    }

    /// Number of cached positions P.
    pub fn len(&self) -> usize {
        match &self.kv {
            Kv::Tensors((_, mask, _)) => mask.dims()[1],
            Kv::Fast(kv) => kv.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Kv {
    /// The keys, values, mask and next positions as tensors on `device`.
    pub(super) fn into_tensors(self, device: &Device) -> PastTensors {
        match self {
            Kv::Tensors(past) => past,
            Kv::Fast(kv) => kv.to_tensors(device),
        }
    }
}

/// What one forward pass returns.
#[derive(Clone, Debug)]
pub struct ForwardOutput {
    /// `[B, T, V]`: logits for the token after each position (`[B, L, V]` for the L positions
    /// of [`Qwen2Model::forward_window`], `[B, 1, V]` after [`Qwen2Model::prefill`]).
    pub logits: Tensor<3>,
    /// `[B, T]`: the critic's estimate of the return from each position's state.
    pub values: Tensor<2>,
    /// When asked for: per layer `[B, H, T, S]` attention probabilities (rows sum to 1; the
    /// masked upper triangle is exactly 0).
    pub attentions: Option<Vec<Tensor<4>>>,
}

/// Grouped-query self-attention with rotary position embeddings.
#[derive(Module, Debug)]
pub struct Attention {
    /// `[D] -> [H * hd]`, with bias
    pub q_proj: Linear,
    /// `[D] -> [K * hd]`, with bias
    pub k_proj: Linear,
    /// `[D] -> [K * hd]`, with bias
    pub v_proj: Linear,
    /// `[H * hd] -> [D]`, no bias
    pub o_proj: Linear,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
}

impl Attention {
    /// `x [B, T, D]`, `rope` cos/sin `[B, 1, T, hd]`, `bias [B, 1, T, S]` (0 or MASKED);
    /// `past` keys/values `[B, K, P, hd]`. Returns the output `[B, T, D]`, the keys and values
    /// for the cache `[B, K, S, hd]`, and the attention probabilities when asked.
    fn forward(
        &self,
        x: Tensor<3>,
        rope: &(Tensor<4>, Tensor<4>),
        bias: Tensor<4>,
        past: Option<&(Tensor<4>, Tensor<4>)>,
        want_probs: bool,
        fast: Option<(&FastWeights, usize)>,
    ) -> (Tensor<3>, (Tensor<4>, Tensor<4>), Option<Tensor<4>>) {
        let [b, t, _] = x.dims();
        let (h, k, hd) = (self.num_heads, self.num_kv_heads, self.head_dim);

        let [q, key, value] = linears(
            [&self.q_proj, &self.k_proj, &self.v_proj],
            x,
            fast.map(|f| (f, [Proj::Q, Proj::K, Proj::V])),
        );
        let q = q.reshape([b, t, h, hd]).swap_dims(1, 2); // [B, H, T, hd]
        let key = key.reshape([b, t, k, hd]).swap_dims(1, 2); // [B, K, T, hd]
        let value = value.reshape([b, t, k, hd]).swap_dims(1, 2); // [B, K, T, hd]

        let q = apply_rope(q, rope);
        let key = apply_rope(key, rope);
        let (key, value) = match past {
            Some((pk, pv)) => (
                Tensor::cat(vec![pk.clone(), key], 2), // [B, K, S, hd]
                Tensor::cat(vec![pv.clone(), value], 2),
            ),
            None => (key, value),
        };
        let s = key.dims()[2];

        // Each KV head serves rep = H / K query heads: head j reads KV head j / rep. The query
        // heads of one group are adjacent, so [B, H, T, hd] is [B, K, rep * T, hd] and each group
        // multiplies its own KV head directly (no copies of the keys and values).
        let rep = h / k;
        let grouped = q.reshape([b, k, rep * t, hd]);
        let scores = grouped
            .matmul(key.clone().swap_dims(2, 3)) // [B, K, rep * T, S]
            .reshape([b, h, t, s])
            .div_scalar((hd as f64).sqrt()); // [B, H, T, S]
        let dtype = scores.dtype();
        let scores = to_f32(scores) + bias; // softmax in f32, as transformers does
        let probs = softmax(scores, 3); // [B, H, T, S]
        let out = probs
            .clone()
            .cast(dtype)
            .reshape([b, k, rep * t, s])
            .matmul(value.clone()) // [B, K, rep * T, hd]
            .reshape([b, h, t, hd]);
        let out = out.swap_dims(1, 2).reshape([b, t, h * hd]); // [B, T, H * hd]
        let [out] = linears([&self.o_proj], out, fast.map(|f| (f, [Proj::O])));
        (out, (key, value), want_probs.then_some(probs))
    }
}

/// The SwiGLU feed-forward block: `down(silu(gate(x)) * up(x))`.
#[derive(Module, Debug)]
pub struct Mlp {
    /// `[D] -> [I]`
    pub gate_proj: Linear,
    /// `[D] -> [I]`
    pub up_proj: Linear,
    /// `[I] -> [D]`
    pub down_proj: Linear,
}

impl Mlp {
    /// `fast`: the CPU fast path's weights for decoding, and this layer's index.
    fn forward(&self, x: Tensor<3>, fast: Option<(&FastWeights, usize)>) -> Tensor<3> {
        let [gate, up] = linears(
            [&self.gate_proj, &self.up_proj],
            x,
            fast.map(|f| (f, [Proj::Gate, Proj::Up])),
        ); // [B, T, I] each
        let hidden = silu(gate) * up;
        let [out] = linears([&self.down_proj], hidden, fast.map(|f| (f, [Proj::Down])));
        out // [B, T, D]
    }
}

/// Pre-norm decoder layer: `x + attn(norm(x))`, then `x + mlp(norm(x))`.
#[derive(Module, Debug)]
pub struct DecoderLayer {
    pub input_layernorm: RmsNorm,
    pub self_attn: Attention,
    pub post_attention_layernorm: RmsNorm,
    pub mlp: Mlp,
}

/// The critic: one Linear from the final normed hidden state to a scalar per position.
#[derive(Module, Debug)]
pub struct ValueHead {
    /// `[D] -> [1]`, with bias (stored as `v_head.summary.weight` / `.bias`, as TRL names them).
    pub summary: Linear,
}

/// The actor-critic model.
#[derive(Module, Debug)]
pub struct Qwen2Model {
    /// `[V, D]`
    pub embed_tokens: Embedding,
    pub layers: Vec<DecoderLayer>,
    pub norm: RmsNorm,
    /// `[D] -> [V]`, no bias; `None` when tied to `embed_tokens`.
    pub lm_head: Option<Linear>,
    pub v_head: ValueHead,
    #[module(skip)]
    pub config: Qwen2Config,
    /// The dtype of activations and matmuls; weights of another dtype are cast per use (see
    /// [`Precision`](super::Precision)).
    #[module(skip)]
    pub compute_dtype: DType,
}

impl Qwen2Model {
    /// The device the weights live on.
    pub fn device(&self) -> Device {
        self.embed_tokens.weight.val().device()
    }

    /// The dtype the model computes in (f32, or bf16 where the device has it).
    pub fn dtype(&self) -> DType {
        self.compute_dtype
    }

    /// The dtype the weights are stored in (f32 for a mixed-precision model).
    pub fn param_dtype(&self) -> DType {
        self.embed_tokens.weight.val().dtype()
    }

    /// Every layer's Linear weights in [`Proj`]'s order: q, k, v, o, gate, up, down.
    fn projs(&self) -> Vec<LayerProjs> {
        let projs = |l: &DecoderLayer| {
            let (a, m) = (&l.self_attn, &l.mlp);
            [
                &a.q_proj,
                &a.k_proj,
                &a.v_proj,
                &a.o_proj,
                &m.gate_proj,
                &m.up_proj,
                &m.down_proj,
            ]
            .map(|p| p.weight.val())
        };
        self.layers.iter().map(projs).collect()
    }

    /// One full pass over `ids [B, T]` with `attention_mask [B, T]` (1 = real, 0 = left padding).
    /// Position ids follow the mask (`cumsum(mask) - 1`), so left padding does not move the real
    /// tokens. With `want_attentions`, also returns every layer's attention probabilities (the
    /// page's causal-mask view; keep it off for training).
    pub fn forward(
        &self,
        ids: Tensor<2, Int>,
        attention_mask: Tensor<2, Int>,
        want_attentions: bool,
    ) -> ForwardOutput {
        let t = ids.dims()[1];
        let positions = (attention_mask.clone().cumsum(1) - 1).clamp_min(0); // [B, T]
        let (out, _) = self.run(
            ids,
            attention_mask,
            positions,
            None,
            (0, t),
            want_attentions,
            false,
        );
        out
    }

    /// [`Self::forward`] with logits only for the `len` positions from `from`: `logits` is
    /// `[B, len, V]`, `values` still `[B, T]`. A PPO pass needs logits only for the response, and
    /// the LM head (vocab x hidden per position) is the largest product of a small model, so
    /// leaving out the prompt's positions saves a good part of the pass, forward and backward.
    pub fn forward_window(
        &self,
        ids: Tensor<2, Int>,
        attention_mask: Tensor<2, Int>,
        from: usize,
        len: usize,
    ) -> ForwardOutput {
        let positions = (attention_mask.clone().cumsum(1) - 1).clamp_min(0); // [B, T]
        let (out, _) = self.run(
            ids,
            attention_mask,
            positions,
            None,
            (from, len),
            false,
            false,
        );
        out
    }

    /// Prefill for incremental decoding: the KV cache, every position's value, and the logits of
    /// the last position only (`[B, 1, V]`, the first token to sample).
    pub fn prefill(
        &self,
        ids: Tensor<2, Int>,
        attention_mask: Tensor<2, Int>,
    ) -> (ForwardOutput, KvCache) {
        let t = ids.dims()[1];
        let positions = (attention_mask.clone().cumsum(1) - 1).clamp_min(0); // [B, T]
        self.run(
            ids,
            attention_mask,
            positions,
            None,
            (t - 1, 1),
            false,
            true,
        )
    }

    pub(super) fn run(
        &self,
        ids: Tensor<2, Int>,
        new_mask: Tensor<2, Int>,
        positions: Tensor<2, Int>,
        cache: Option<(PastTensors, Option<FastWeights>)>,
        (logits_from, logits_len): (usize, usize),
        want_attentions: bool,
        pack_for_decoding: bool,
    ) -> (ForwardOutput, KvCache) {
        let [b, t] = ids.dims();
        let device = ids.device();
        // The fast path's weights for decoding: the cache's, or made now for the steps after a
        // prefill.
        let (cache, fast) = match cache {
            Some((past, fast)) => (Some(past), fast),
            None if pack_for_decoding => (None, FastWeights::for_decoding(b, || self.projs())),
            None => (None, None),
        };
        let past = cache.as_ref().map_or(0, |(_, mask, _)| mask.dims()[1]);
        let s = past + t;

        // Attention bias [B, 1, T, S]: query i (absolute position past + i) sees key j when
        // j <= past + i and key j is a real token.
        let key_mask = match &cache {
            Some((_, mask, _)) => Tensor::cat(vec![mask.clone(), new_mask.clone()], 1),
            None => new_mask.clone(),
        }; // [B, S]
        let query_index =
            Tensor::<1, Int>::arange(past as i64..s as i64, &device).reshape([1, 1, t, 1]); // [1, 1, T, 1]
        let key_index = Tensor::<1, Int>::arange(0..s as i64, &device).reshape([1, 1, 1, s]);
        let causal = key_index
            .expand([1, 1, t, s])
            .lower_equal(query_index.expand([1, 1, t, s]))
            .float(); // [1, 1, T, S]
        let visible = causal * key_mask.clone().float().reshape([b, 1, 1, s]); // [B, 1, T, S]
        let bias = visible.neg().add_scalar(1.0).mul_scalar(MASKED); // 0 where visible, else MASKED

        let rope = rope_tables(
            &positions,
            self.config.head_dim(),
            self.config.rope_theta,
            self.dtype(),
        );
        let mut x = cast_to(self.embed_tokens.forward(ids), self.compute_dtype); // [B, T, D]
        let mut new_layers = Vec::with_capacity(self.layers.len());
        let mut attentions = want_attentions.then(Vec::new);
        for (i, layer) in self.layers.iter().enumerate() {
            let past_kv = cache.as_ref().map(|(layers, _, _)| &layers[i]);
            let layer_fast = fast.as_ref().map(|f| (f, i));
            let (attn, kv, probs) = layer.self_attn.forward(
                layer.input_layernorm.forward(x.clone()),
                &rope,
                bias.clone(),
                past_kv,
                want_attentions,
                layer_fast,
            );
            x = x + attn;
            x = x.clone()
                + layer
                    .mlp
                    .forward(layer.post_attention_layernorm.forward(x), layer_fast);
            new_layers.push(kv);
            if let (Some(all), Some(p)) = (attentions.as_mut(), probs) {
                all.push(p);
            }
        }
        let hidden = self.norm.forward(x); // [B, T, D]
        let head_in = if (logits_from, logits_len) == (0, t) {
            hidden.clone()
        } else {
            hidden.clone().narrow(1, logits_from, logits_len) // [B, L, D]
        };
        let logits = match &self.lm_head {
            Some(head) => linear(head, head_in),
            None => {
                let d = hidden.dims()[2];
                let flat = head_in.reshape([b * logits_len, d]); // [B * L, D]
                let embed = cast_to(self.embed_tokens.weight.val(), self.compute_dtype);
                let logits = cpu_fast::tied_head(&flat, &embed)
                    .unwrap_or_else(|| flat.matmul(embed.transpose())); // [B * L, V]
                logits.reshape([b, logits_len, self.config.vocab_size])
            }
        }; // [B, L, V]
        let values = linear(&self.v_head.summary, hidden).reshape([b, t]); // [B, T]

        let next_position = positions.narrow(1, t - 1, 1) + 1; // [B, 1]
        let past = (new_layers, key_mask, next_position);
        // With the fast path's weights, it holds the cache for the next steps too.
        let kv = match fast.as_ref().and_then(|_| FastKv::of(&past)) {
            Some(kv) => Kv::Fast(kv),
            None => Kv::Tensors(past),
        };
        let cache = KvCache { kv, fast };
        let out = ForwardOutput {
            logits: to_f32(logits),
            values: to_f32(values),
            attentions,
        };
        (out, cache)
    }
}

/// Cos and sin tables `[B, 1, T, hd]` for the given position ids `[B, T]`:
/// angle(p, i) = p * theta^(-2i / hd) for i < hd/2, repeated for the second half (the
/// "rotate half" layout transformers uses, not interleaved pairs).
fn rope_tables(
    positions: &Tensor<2, Int>,
    head_dim: usize,
    theta: f64,
    dtype: DType,
) -> (Tensor<4>, Tensor<4>) {
    let [b, t] = positions.dims();
    let device = positions.device();
    let half = head_dim / 2;
    let inv_freq = rope_inv_freq(head_dim, theta);
    let inv_freq = Tensor::<1>::from_floats(inv_freq.as_slice(), &device).reshape([1, 1, half]);
    let angles = positions.clone().float().reshape([b, t, 1]) * inv_freq; // [B, T, hd/2]
    let angles = Tensor::cat(vec![angles.clone(), angles], 2).reshape([b, 1, t, head_dim]);
    (angles.clone().cos().cast(dtype), angles.sin().cast(dtype))
}

/// The rotary frequencies theta^(-2i / hd) for i < hd/2, in f32.
pub(super) fn rope_inv_freq(head_dim: usize, theta: f64) -> Vec<f32> {
    (0..head_dim / 2)
        .map(|i| (1.0 / theta.powf((2 * i) as f64 / head_dim as f64)) as f32)
        .collect()
}

/// `x * cos + rotate_half(x) * sin`, with rotate_half([x1, x2]) = [-x2, x1]; `x [B, N, T, hd]`.
fn apply_rope(x: Tensor<4>, (cos, sin): &(Tensor<4>, Tensor<4>)) -> Tensor<4> {
    let hd = x.dims()[3];
    let half = hd / 2;
    let x1 = x.clone().narrow(3, 0, half);
    let x2 = x.clone().narrow(3, half, half);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
    x * cos.clone() + rotated * sin.clone()
}

/// `x` in `dtype` (no op when it already is).
fn cast_to<const N: usize>(x: Tensor<N>, dtype: DType) -> Tensor<N> {
    if x.dtype() == dtype { x } else { x.cast(dtype) }
}

/// A Linear layer applied in `x`'s dtype: weights stored in another dtype (f32 master weights
/// under mixed precision) are cast first, so gradients flow back to them in their own dtype.
fn linear<const N: usize>(layer: &Linear, x: Tensor<N>) -> Tensor<N> {
    let dtype = x.dtype();
    let bias = layer.bias.as_ref().map(Param::val);
    if layer.weight.val().dtype() == dtype {
        return cpu_fast::linear(&x, &layer.weight.val(), bias.as_ref())
            .unwrap_or_else(|| layer.forward(x));
    }
    burn::tensor::module::linear(
        x,
        layer.weight.val().cast(dtype),
        bias.map(|b| b.cast(dtype)),
    )
}

/// Several Linear layers on the same input (q, k and v; gate and up): in one call of the CPU fast
/// path when it takes them, from its own weights `fast` (this layer's) when given, else one
/// [`linear`] each.
fn linears<const N: usize, const W: usize>(
    layers: [&Linear; W],
    x: Tensor<N>,
    fast: Option<((&FastWeights, usize), [Proj; W])>,
) -> [Tensor<N>; W] {
    let biases = layers.map(|l| l.bias.as_ref().map(Param::val));
    let biases = std::array::from_fn(|i| biases[i].as_ref());
    if let Some(ys) = fast.and_then(|((f, layer), which)| f.linears(layer, which, &x, biases)) {
        return ys;
    }
    if layers.iter().all(|l| l.weight.val().dtype() == x.dtype()) {
        let weights = layers.map(|l| l.weight.val());
        if let Some(ys) = cpu_fast::linears(&x, std::array::from_fn(|i| (&weights[i], biases[i]))) {
            return ys;
        }
    }
    layers.map(|l| linear(l, x.clone()))
}

fn to_f32<const N: usize>(x: Tensor<N>) -> Tensor<N> {
    if x.dtype() == DType::F32 {
        x
    } else {
        x.cast(DType::F32)
    }
}
