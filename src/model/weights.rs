//! Weights in the Hugging Face safetensors layout: read from bytes into a [`Qwen2Model`], and
//! written back with the same tensor names.
//!
//! Names: `model.embed_tokens.weight`, `model.layers.N.input_layernorm.weight`,
//! `model.layers.N.self_attn.{q,k,v}_proj.{weight,bias}`, `model.layers.N.self_attn.o_proj.weight`,
//! `model.layers.N.post_attention_layernorm.weight`, `model.layers.N.mlp.{gate,up,down}_proj.weight`,
//! `model.norm.weight`, `lm_head.weight` (absent when embeddings are tied). The value head lives in
//! its own file, `value_head.safetensors`: `v_head.summary.weight [1, D]`, `v_head.summary.bias [1]`.
//! Linear weights are stored `[out, in]` as in PyTorch; burn's `Linear` keeps `[in, out]`, so
//! they are transposed on the way in and out.

use std::collections::HashMap;

use burn::module::{Param, ParamId};
use burn::nn::{Embedding, Linear};
use burn::tensor::{DType, Device, Tensor, TensorData, bf16, f16};
use safetensors::tensor::{Dtype as StDtype, SafeTensors, TensorView};

use super::ModelError;
use super::config::Qwen2Config;
use super::qwen2::{Attention, DecoderLayer, Mlp, Qwen2Model, RmsNorm, ValueHead};
use crate::rng::Rng;

/// How a new value head starts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ValueHeadInit {
    /// All zeros: every value starts at 0, so the first advantages are GAE's discounted sums of
    /// the rewards alone (A_t = Σ_k (γλ)^k r_{t+k}), with no baseline subtracted.
    Zeros,
    /// Normal weights with this std (bias 0).
    Normal { std: f64 },
}

/// The dtypes a model stores its weights in and computes in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// f32 everywhere (the CPU, the page, and all parity tests).
    F32,
    /// Weights and activations in bf16, norms and softmax in f32: for models that are never
    /// trained (the frozen reference on CUDA). Half the memory of f32.
    Bf16,
    /// Mixed precision for a model being trained: f32 weights (the master copy AdamW updates,
    /// with f32 gradients and moments) cast to bf16 for every matmul, bf16 activations, norms
    /// and softmax in f32. bf16 weights could not take the update: with 8 significant bits, a
    /// weight near 0.02 moves in steps of about 1e-4, and an AdamW step at lr 1e-6 rounds away.
    MixedBf16,
}

impl Precision {
    /// The dtype of the weights.
    pub fn dtype(self) -> DType {
        match self {
            Self::F32 | Self::MixedBf16 => DType::F32,
            Self::Bf16 => DType::BF16,
        }
    }

    /// The dtype of the activations and matmuls.
    pub fn compute_dtype(self) -> DType {
        match self {
            Self::F32 => DType::F32,
            Self::Bf16 | Self::MixedBf16 => DType::BF16,
        }
    }
}

/// The weight files of one model, each with the name errors should use.
pub struct WeightFiles<'a> {
    files: Vec<(String, SafeTensors<'a>)>,
}

impl<'a> WeightFiles<'a> {
    /// Parse safetensors files (a single `model.safetensors` or every shard of an index).
    pub fn parse(files: &[(String, &'a [u8])]) -> Result<Self, ModelError> {
        let files = files
            .iter()
            .map(|(name, bytes)| {
                SafeTensors::deserialize(bytes)
                    .map(|st| (name.clone(), st))
                    .map_err(|e| ModelError::File {
                        file: name.clone(),
                        message: format!("not a readable safetensors file: {e}"),
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { files })
    }

    fn find(&self, name: &str) -> Option<TensorView<'_>> {
        self.files.iter().find_map(|(_, st)| st.tensor(name).ok())
    }

    /// Whether any file holds `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.find(name).is_some()
    }

    /// Tensor `name` as f32 values, after checking it has `shape`.
    pub fn read(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, ModelError> {
        let view = self.find(name).ok_or_else(|| ModelError::MissingTensor {
            name: name.to_string(),
            files: self.files.iter().map(|(f, _)| f.clone()).collect(),
        })?;
        if view.shape() != shape {
            return Err(ModelError::Shape {
                name: name.to_string(),
                expected: shape.to_vec(),
                found: view.shape().to_vec(),
            });
        }
        decode(name, view.dtype(), view.data())
    }
}

fn decode(name: &str, dtype: StDtype, bytes: &[u8]) -> Result<Vec<f32>, ModelError> {
    let two = |b: &[u8]| u16::from_le_bytes([b[0], b[1]]);
    Ok(match dtype {
        StDtype::F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        StDtype::BF16 => bytes
            .chunks_exact(2)
            .map(|b| bf16::from_bits(two(b)).to_f32())
            .collect(),
        StDtype::F16 => bytes
            .chunks_exact(2)
            .map(|b| f16::from_bits(two(b)).to_f32())
            .collect(),
        other => {
            return Err(ModelError::Dtype {
                name: name.to_string(),
                found: format!("{other:?}"),
            });
        }
    })
}

/// Where a model's parameters come from: a checkpoint or a seeded random init. `read` gets a
/// tensor by its HF name and HF shape.
pub(crate) trait Source {
    fn read(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, ModelError>;
}

/// Reading never changes the files, so a shared reference is a source.
impl Source for &WeightFiles<'_> {
    fn read(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, ModelError> {
        WeightFiles::read(self, name, shape)
    }
}

/// Build a model from `source`: the one place that knows every tensor's name and shape.
pub(crate) fn build(
    config: &Qwen2Config,
    source: &mut dyn Source,
    value_head: ValueHeadSource<'_>,
    precision: Precision,
    device: &Device,
) -> Result<Qwen2Model, ModelError> {
    let dtype = precision.dtype();
    let (d, i, v) = (
        config.hidden_size,
        config.intermediate_size,
        config.vocab_size,
    );
    let hd = config.head_dim();
    let (qd, kvd) = (
        config.num_attention_heads * hd,
        config.num_key_value_heads * hd,
    );

    let tensor1 = |name: &str, data: Vec<f32>, n: usize| -> Param<Tensor<1>> {
        named_param(
            name,
            Tensor::from_data(TensorData::new(data, [n]), (device, dtype)),
        )
    };
    // `[out, in]` in the file, `[in, out]` in burn.
    let linear = |source: &mut dyn Source, prefix: &str, d_in: usize, d_out: usize, bias: bool| {
        let w = source.read(&format!("{prefix}.weight"), &[d_out, d_in])?;
        let w = transpose(&w, d_out, d_in);
        let weight = named_param(
            &format!("{prefix}.weight"),
            Tensor::from_data(TensorData::new(w, [d_in, d_out]), (device, dtype)),
        );
        let bias = if bias {
            let name = format!("{prefix}.bias");
            Some(tensor1(&name, source.read(&name, &[d_out])?, d_out))
        } else {
            None
        };
        Ok::<_, ModelError>(Linear { weight, bias })
    };
    let norm = |source: &mut dyn Source, name: &str| -> Result<RmsNorm, ModelError> {
        Ok(RmsNorm {
            weight: tensor1(name, source.read(name, &[d])?, d),
            eps: config.rms_norm_eps,
        })
    };

    let embed = source.read("model.embed_tokens.weight", &[v, d])?;
    let embed_tokens = Embedding {
        weight: named_param(
            "model.embed_tokens.weight",
            Tensor::from_data(TensorData::new(embed, [v, d]), (device, dtype)),
        ),
    };
    let mut layers = Vec::with_capacity(config.num_hidden_layers);
    for n in 0..config.num_hidden_layers {
        let p = format!("model.layers.{n}");
        layers.push(DecoderLayer {
            input_layernorm: norm(source, &format!("{p}.input_layernorm.weight"))?,
            self_attn: Attention {
                q_proj: linear(source, &format!("{p}.self_attn.q_proj"), d, qd, true)?,
                k_proj: linear(source, &format!("{p}.self_attn.k_proj"), d, kvd, true)?,
                v_proj: linear(source, &format!("{p}.self_attn.v_proj"), d, kvd, true)?,
                o_proj: linear(source, &format!("{p}.self_attn.o_proj"), qd, d, false)?,
                num_heads: config.num_attention_heads,
                num_kv_heads: config.num_key_value_heads,
                head_dim: hd,
            },
            post_attention_layernorm: norm(
                source,
                &format!("{p}.post_attention_layernorm.weight"),
            )?,
            mlp: Mlp {
                gate_proj: linear(source, &format!("{p}.mlp.gate_proj"), d, i, false)?,
                up_proj: linear(source, &format!("{p}.mlp.up_proj"), d, i, false)?,
                down_proj: linear(source, &format!("{p}.mlp.down_proj"), i, d, false)?,
            },
        });
    }
    let norm = norm(source, "model.norm.weight")?;
    let lm_head = if config.tie_word_embeddings {
        None
    } else {
        Some(linear(source, "lm_head", d, v, false)?)
    };

    let summary = match value_head {
        ValueHeadSource::File(files) => linear(&mut { files }, "v_head.summary", d, 1, true)?,
        ValueHeadSource::Init(init, seed) => {
            let mut rng = Rng::new(seed);
            let w: Vec<f32> = match init {
                ValueHeadInit::Zeros => vec![0.0; d],
                ValueHeadInit::Normal { std } => {
                    (0..d).map(|_| (rng.normal() * std) as f32).collect()
                }
            };
            Linear {
                weight: named_param(
                    "v_head.summary.weight",
                    Tensor::from_data(TensorData::new(w, [d, 1]), (device, dtype)),
                ),
                bias: Some(tensor1("v_head.summary.bias", vec![0.0], 1)),
            }
        }
    };

    Ok(Qwen2Model {
        embed_tokens,
        layers,
        norm,
        lm_head,
        v_head: ValueHead { summary },
        config: config.clone(),
        compute_dtype: precision.compute_dtype(),
    })
}

/// A parameter's id from its Hugging Face tensor name (64-bit FNV-1a), so the same weight has the
/// same id in every process: optimizer state saved in a checkpoint is keyed by these ids and
/// finds its parameters again after `--resume`.
pub fn param_id(name: &str) -> ParamId {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    });
    ParamId::from(hash)
}

/// A trainable parameter whose id is [`param_id`] of `name`.
fn named_param<const D: usize>(name: &str, value: Tensor<D>) -> Param<Tensor<D>> {
    let mut param = Param::from_tensor(value);
    param.id = param_id(name);
    param
}

/// Where the value head comes from.
pub enum ValueHeadSource<'r> {
    /// `value_head.safetensors` of a trained critic.
    File(&'r WeightFiles<'r>),
    /// A fresh head (zeros, or normal with a std), seeded.
    Init(ValueHeadInit, u64),
}

/// Load a model from parsed weight files. Without a value-head file the head is initialised by
/// `value_init` (seeded by `seed`).
pub fn load_model(
    config: &Qwen2Config,
    weights: &WeightFiles<'_>,
    value_head: Option<&WeightFiles<'_>>,
    value_init: ValueHeadInit,
    seed: u64,
    precision: Precision,
    device: &Device,
) -> Result<Qwen2Model, ModelError> {
    let head = match value_head {
        Some(files) => ValueHeadSource::File(files),
        None => ValueHeadSource::Init(value_init, seed),
    };
    build(config, &mut { weights }, head, precision, device)
}

fn transpose(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; data.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = data[r * cols + c];
        }
    }
    out
}

/// One tensor ready to be written: HF name, HF shape, dtype and little-endian bytes.
struct Entry {
    name: String,
    shape: Vec<usize>,
    dtype: StDtype,
    bytes: Vec<u8>,
}

fn entry<const N: usize>(name: String, tensor: Tensor<N>, transpose_2d: bool) -> Entry {
    let data = tensor.into_data();
    let mut shape = data.shape().to_vec();
    let (dtype, mut bytes) = match data.dtype() {
        DType::BF16 => (StDtype::BF16, data.as_bytes().to_vec()),
        _ => {
            let values = data.convert::<f32>();
            (StDtype::F32, values.as_bytes().to_vec())
        }
    };
    if transpose_2d {
        let width = if dtype == StDtype::BF16 { 2 } else { 4 };
        let (rows, cols) = (shape[0], shape[1]);
        let mut out = vec![0u8; bytes.len()];
        for r in 0..rows {
            for c in 0..cols {
                let (src, dst) = ((r * cols + c) * width, (c * rows + r) * width);
                out[dst..dst + width].copy_from_slice(&bytes[src..src + width]);
            }
        }
        bytes = out;
        shape = vec![cols, rows];
    }
    Entry {
        name,
        shape,
        dtype,
        bytes,
    }
}

fn linear_entries(out: &mut Vec<Entry>, prefix: &str, linear: &Linear) {
    out.push(entry(format!("{prefix}.weight"), linear.weight.val(), true));
    if let Some(bias) = &linear.bias {
        out.push(entry(format!("{prefix}.bias"), bias.val(), false));
    }
}

fn serialize(entries: &[Entry]) -> Result<Vec<u8>, ModelError> {
    let views: Vec<(String, TensorView<'_>)> = entries
        .iter()
        .map(|e| {
            TensorView::new(e.dtype, e.shape.clone(), &e.bytes)
                .map(|v| (e.name.clone(), v))
                .map_err(|err| {
                    ModelError::Other(format!("cannot write tensor `{}`: {err}", e.name))
                })
        })
        .collect::<Result<_, _>>()?;
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize(views, Some(metadata))
        .map_err(|e| ModelError::Other(format!("cannot write safetensors: {e}")))
}

/// The trunk and LM head as `model.safetensors` bytes, with HF names (no `lm_head.weight` when
/// tied), in the dtype the model computes in. Reads every weight back from the device.
pub fn save_model(model: &Qwen2Model) -> Result<Vec<u8>, ModelError> {
    serialize(&model_entries(model))
}

/// [`save_model`] with every weight rounded to IEEE half precision (F16, round to nearest even):
/// half the bytes, for a model shipped inside the page. Loading widens each weight back to f32
/// exactly, so the model then computes on the rounded weights.
pub fn save_model_f16(model: &Qwen2Model) -> Result<Vec<u8>, ModelError> {
    let entries = model_entries(model)
        .into_iter()
        .map(|e| {
            let values = decode(&e.name, e.dtype, &e.bytes)?;
            let bytes = values
                .iter()
                .flat_map(|&v| f16::from_f32(v).to_le_bytes())
                .collect();
            Ok(Entry {
                dtype: StDtype::F16,
                bytes,
                ..e
            })
        })
        .collect::<Result<Vec<_>, ModelError>>()?;
    serialize(&entries)
}

fn model_entries(model: &Qwen2Model) -> Vec<Entry> {
    let mut out = Vec::new();
    out.push(entry(
        "model.embed_tokens.weight".into(),
        model.embed_tokens.weight.val(),
        false,
    ));
    for (n, layer) in model.layers.iter().enumerate() {
        let p = format!("model.layers.{n}");
        out.push(entry(
            format!("{p}.input_layernorm.weight"),
            layer.input_layernorm.weight.val(),
            false,
        ));
        let attn = &layer.self_attn;
        linear_entries(&mut out, &format!("{p}.self_attn.q_proj"), &attn.q_proj);
        linear_entries(&mut out, &format!("{p}.self_attn.k_proj"), &attn.k_proj);
        linear_entries(&mut out, &format!("{p}.self_attn.v_proj"), &attn.v_proj);
        linear_entries(&mut out, &format!("{p}.self_attn.o_proj"), &attn.o_proj);
        out.push(entry(
            format!("{p}.post_attention_layernorm.weight"),
            layer.post_attention_layernorm.weight.val(),
            false,
        ));
        linear_entries(
            &mut out,
            &format!("{p}.mlp.gate_proj"),
            &layer.mlp.gate_proj,
        );
        linear_entries(&mut out, &format!("{p}.mlp.up_proj"), &layer.mlp.up_proj);
        linear_entries(
            &mut out,
            &format!("{p}.mlp.down_proj"),
            &layer.mlp.down_proj,
        );
    }
    out.push(entry(
        "model.norm.weight".into(),
        model.norm.weight.val(),
        false,
    ));
    if let Some(head) = &model.lm_head {
        linear_entries(&mut out, "lm_head", head);
    }
    out
}

/// The value head as `value_head.safetensors` bytes.
pub fn save_value_head(model: &Qwen2Model) -> Result<Vec<u8>, ModelError> {
    let mut out = Vec::new();
    linear_entries(&mut out, "v_head.summary", &model.v_head.summary);
    serialize(&out)
}

/// The config to save beside the weights: its dtype says what [`save_model`] writes.
pub fn saved_config(model: &Qwen2Model) -> Qwen2Config {
    let mut config = model.config.clone();
    config.dtype = if model.param_dtype() == DType::BF16 {
        "bfloat16"
    } else {
        "float32"
    }
    .to_string();
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stored_dtype_decodes_to_the_same_numbers() {
        let values = [1.5f32, -0.25, 3.0];
        let f32_bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let f16_bytes: Vec<u8> = values
            .iter()
            .flat_map(|&v| f16::from_f32(v).to_bits().to_le_bytes())
            .collect();
        let bf16_bytes: Vec<u8> = values
            .iter()
            .flat_map(|&v| bf16::from_f32(v).to_bits().to_le_bytes())
            .collect();
        assert_eq!(decode("w", StDtype::F32, &f32_bytes).unwrap(), values);
        assert_eq!(decode("w", StDtype::F16, &f16_bytes).unwrap(), values);
        assert_eq!(decode("w", StDtype::BF16, &bf16_bytes).unwrap(), values);
        let err = decode("model.norm.weight", StDtype::I8, &[1, 2]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "tensor `model.norm.weight` is stored as I8; ppo-lens reads F32, F16 and BF16"
        );
    }

    #[test]
    fn transpose_swaps_rows_and_columns() {
        // [[1, 2, 3], [4, 5, 6]] -> [[1, 4], [2, 5], [3, 6]]
        assert_eq!(
            transpose(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3),
            vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]
        );
    }
}
