//! Decoding one more token after a KV cache: [`Qwen2Model::decode`]. When the CPU fast path holds
//! the cache, it runs the step in its fused loops ([`cpu_fast::decode`]), handed the model's
//! weights as a [`DecoderWeights`]; otherwise, and whenever it declines, the step is the model's
//! own pass through burn.

use burn::nn::Linear;
use burn::tensor::{DType, Int, Tensor};

use super::qwen2::{ForwardOutput, Kv, KvCache, Qwen2Model, rope_inv_freq};
use crate::cpu_fast::{self, DecoderWeights, LayerWeights};

impl Qwen2Model {
    /// Feed the next tokens `ids [B, T]` (usually T = 1, all real) after what `cache` holds;
    /// the logits equal those of a full pass over the whole sequence.
    pub fn decode(&self, ids: Tensor<2, Int>, mut cache: KvCache) -> (ForwardOutput, KvCache) {
        if let (Kv::Fast(kv), Some(fast)) = (&mut cache.kv, &cache.fast) {
            if let Some((logits, values)) =
                cpu_fast::decode(fast, kv, &ids, || self.decoder_weights())
            {
                let attentions = None;
                return (
                    ForwardOutput {
                        logits,
                        values,
                        attentions,
                    },
                    cache,
                );
            }
        }
        let [b, t] = ids.dims();
        let device = ids.device();
        let KvCache { kv, fast } = cache;
        let past = kv.into_tensors(&device);
        let mask = Tensor::<2, Int>::ones([b, t], &device);
        let steps = Tensor::<1, Int>::arange(0..t as i64, &device).unsqueeze::<2>(); // [1, T]
        let positions = past.2.clone() + steps; // [B, T]
        self.run(
            ids,
            mask,
            positions,
            Some((past, fast)),
            (0, t),
            false,
            false,
        )
    }

    /// What the fused decoding step reads of the model, when it computes in f32.
    pub(crate) fn decoder_weights(&self) -> Option<DecoderWeights> {
        if self.dtype() != DType::F32 {
            return None;
        }
        let c = &self.config;
        let bias = |linear: &Linear| linear.bias.as_ref().map(|b| b.val());
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
