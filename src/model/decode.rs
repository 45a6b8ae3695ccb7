//! Decoding one more token after a KV cache: [`Qwen2Model::decode`]. Natively on flex, when the
//! cache and the packed weights are held in plain memory, the step runs in
//! [`decode_step`](crate::cpu_fast::decode_step)'s loops, handed the model's weights as a
//! [`DecoderWeights`]; everywhere else, through burn
//! ([`Qwen2Model`]'s own pass). This file is the one place the model reaches that fast path.

use burn::tensor::{Int, Tensor};

use super::qwen2::{ForwardOutput, KvCache, Qwen2Model};
#[cfg(not(target_arch = "wasm32"))]
use super::qwen2::{Kv, rope_inv_freq};
#[cfg(not(target_arch = "wasm32"))]
use crate::cpu_fast::decode_step::{DecoderWeights, LayerWeights};

impl Qwen2Model {
    /// Feed the next tokens `ids [B, T]` (usually T = 1, all real) after what `cache` holds;
    /// the logits equal those of a full pass over the whole sequence.
    pub fn decode(&self, ids: Tensor<2, Int>, cache: KvCache) -> (ForwardOutput, KvCache) {
        let [b, t] = ids.dims();
        let device = ids.device();
        #[cfg(not(target_arch = "wasm32"))]
        let mut cache = cache;
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(out) = crate::cpu_fast::take(crate::cpu_fast::Kernel::DecodeStep, || {
            self.decode_step(&ids, &mut cache)
        }) {
            return (out, cache);
        }
        let KvCache { kv, decode_weights } = cache;
        let past = kv.into_tensors(&device);
        let mask = Tensor::<2, Int>::ones([b, t], &device);
        let steps = Tensor::<1, Int>::arange(0..t as i64, &device).unsqueeze::<2>(); // [1, T]
        let positions = past.2.clone() + steps; // [B, T]
        let cache = Some((past, decode_weights));
        self.run(ids, mask, positions, cache, (0, t), false, false)
    }

    /// A one-token step through [`decode_step`](crate::cpu_fast::decode_step) when the cache is held
    /// there (the cache then holds the new position), else `None` with the cache untouched.
    #[cfg(not(target_arch = "wasm32"))]
    fn decode_step(&self, ids: &Tensor<2, Int>, cache: &mut KvCache) -> Option<ForwardOutput> {
        let [b, t] = ids.dims();
        let (Kv::Native(kv), Some(weights)) = (&mut cache.kv, &cache.decode_weights) else {
            return None;
        };
        if t != 1 || ids.device() != self.device() {
            return None;
        }
        let ids: Vec<i64> = ids.to_data().iter::<i64>().collect();
        let view = self.decoder_weights()?;
        let out = crate::cpu_fast::decode_step::step(&view, &weights.layers, kv, &ids)?;
        let device = self.device();
        let v = self.config.vocab_size;
        Some(ForwardOutput {
            logits: Tensor::from_data(
                burn::tensor::TensorData::new(out.logits, [b, 1, v]),
                &device,
            ),
            values: Tensor::from_data(burn::tensor::TensorData::new(out.values, [b, 1]), &device),
            attentions: None,
        })
    }

    /// What the fast decoding step reads of the model, when it computes in f32.
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn decoder_weights(&self) -> Option<DecoderWeights> {
        if self.dtype() != burn::tensor::DType::F32 {
            return None;
        }
        let c = &self.config;
        let bias = |linear: &burn::nn::Linear| linear.bias.as_ref().map(|b| b.val());
        Some(DecoderWeights {
            hidden_size: c.hidden_size,
            vocab_size: c.vocab_size,
            heads: c.num_attention_heads,
            kv_heads: c.num_key_value_heads,
            head_dim: c.head_dim(),
            intermediate_size: c.intermediate_size,
            inv_freq: rope_inv_freq(c.head_dim(), c.rope_theta),
            embed: self.embed_tokens.weight.val(),
            lm_head: self.lm_head.as_ref().map(|h| (h.weight.val(), bias(h))),
            layers: self
                .layers
                .iter()
                .map(|l| LayerWeights {
                    input_norm: (l.input_layernorm.weight.val(), l.input_layernorm.eps as f32),
                    post_norm: (
                        l.post_attention_layernorm.weight.val(),
                        l.post_attention_layernorm.eps as f32,
                    ),
                    qkv_bias: [
                        bias(&l.self_attn.q_proj),
                        bias(&l.self_attn.k_proj),
                        bias(&l.self_attn.v_proj),
                    ],
                })
                .collect(),
            final_norm: (self.norm.weight.val(), self.norm.eps as f32),
            value_head: (self.v_head.summary.weight.val(), bias(&self.v_head.summary)),
        })
    }
}
