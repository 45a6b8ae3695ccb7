//! The plain view of a decoder's weights that the fused decoding step reads
//! ([`decode_step`](super::decode_step)): sizes and burn tensors, so that the step knows nothing
//! of the model's types. The model fills it in; it exists on every target, so the model's code
//! needs no target of its own.

use burn::tensor::Tensor;

/// What the fused decoding step reads of the model: its sizes and its weights (burn tensors,
/// which the step reads in place when they are f32 on flex; Linear weights `[in, out]`, as burn
/// keeps them; the Linear weights of the layers come as [`FastWeights`]).
pub struct DecoderWeights {
    pub hidden_size: usize,
    pub vocab_size: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub intermediate_size: usize,
    /// The rotary embedding's inverse frequencies, `[head_dim / 2]`, as the model computes them.
    pub inv_freq: Vec<f32>,
    /// The token embedding `[V, D]`.
    pub embed: Tensor<2>,
    /// The LM head's weight `[D, V]` and bias; `None` when it is tied to the embedding.
    pub lm_head: Option<(Tensor<2>, Option<Tensor<1>>)>,
    pub layers: Vec<LayerWeights>,
    /// The final RMSNorm's weight `[D]` and epsilon.
    pub final_norm: (Tensor<1>, f32),
    /// The value head's weight `[D, 1]` and bias `[1]`.
    pub value_head: (Tensor<2>, Option<Tensor<1>>),
}

/// A decoder layer's small parameters.
pub struct LayerWeights {
    /// RMSNorm before attention: weight `[D]`, epsilon.
    pub input_norm: (Tensor<1>, f32),
    /// RMSNorm before the MLP: weight `[D]`, epsilon.
    pub post_norm: (Tensor<1>, f32),
    /// The q, k and v projections' biases.
    pub qkv_bias: [Option<Tensor<1>>; 3],
}
