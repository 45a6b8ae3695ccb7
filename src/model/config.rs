//! The model's shape, read from (and written back to) a Hugging Face `config.json`.
//!
//! Field names mirror `config.json`. Two dialects exist in the wild and both load:
//! - the older one, which Qwen1.5's own files use: top-level `rope_theta` and `torch_dtype`;
//! - the newer one recent transformers writes: `rope_parameters.rope_theta` and `dtype`.
//!
//! Keys ppo-lens does not need (`initializer_range`, `use_cache`, `transformers_version`, ...) are
//! kept as they are and written back on save, so a round trip loses nothing.

use serde_json::{Map, Value};

use super::ModelError;

/// The one architecture ppo-lens runs, by its Hugging Face class name.
pub const ARCHITECTURE: &str = "Qwen2ForCausalLM";

/// Which `config.json` dialect a file was written in (kept so a saved copy matches the original).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigDialect {
    /// Top-level `rope_theta`, `torch_dtype` (Qwen1.5's files).
    Legacy,
    /// `rope_parameters: {rope_type, rope_theta}`, `dtype` (transformers 5).
    RopeParameters,
}

/// The hyperparameters of a Qwen2-architecture decoder.
#[derive(Clone, Debug, PartialEq)]
pub struct Qwen2Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    /// Grouped-query attention: each KV head serves `num_attention_heads / num_key_value_heads`
    /// query heads.
    pub num_key_value_heads: usize,
    pub max_position_embeddings: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    /// When true there is no `lm_head.weight`: logits use `model.embed_tokens.weight`.
    pub tie_word_embeddings: bool,
    /// The dtype the checkpoint's weights are stored in (`float32`, `float16`, `bfloat16`).
    pub dtype: String,
    pub bos_token_id: Option<u32>,
    /// Qwen lists one or several end-of-sequence ids.
    pub eos_token_ids: Vec<u32>,
    pub dialect: ConfigDialect,
    /// Every other key of the file, written back unchanged.
    pub extra: Map<String, Value>,
}

impl Qwen2Config {
    /// Per-head width: `hidden_size / num_attention_heads`.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// A config built in code (tests, the tiny model, benchmarks), in the newer dialect.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        vocab_size: usize,
        hidden_size: usize,
        intermediate_size: usize,
        num_hidden_layers: usize,
        num_attention_heads: usize,
        num_key_value_heads: usize,
        tie_word_embeddings: bool,
    ) -> Result<Self, ModelError> {
        let config = Self {
            vocab_size,
            hidden_size,
            intermediate_size,
            num_hidden_layers,
            num_attention_heads,
            num_key_value_heads,
            max_position_embeddings: 4096,
            rms_norm_eps: 1e-6,
            rope_theta: 10_000.0,
            tie_word_embeddings,
            dtype: "float32".into(),
            bos_token_id: None,
            eos_token_ids: Vec::new(),
            dialect: ConfigDialect::RopeParameters,
            extra: Map::new(),
        };
        config.validate("config")?;
        Ok(config)
    }

    /// Parse `config.json`; `file` names it in errors.
    pub fn from_json(text: &str, file: &str) -> Result<Self, ModelError> {
        let bad = |key: &str, why: String| ModelError::Config {
            file: file.to_string(),
            key: key.to_string(),
            message: why,
        };
        let value: Value = serde_json::from_str(text).map_err(|e| ModelError::Config {
            file: file.to_string(),
            key: String::new(),
            message: format!("not valid JSON: {e}"),
        })?;
        let Value::Object(mut map) = value else {
            return Err(bad("", "the file must hold a JSON object".into()));
        };

        // Refuse other architectures by name before reading any shape.
        match map.get("architectures") {
            Some(Value::Array(archs)) => {
                let names: Vec<&str> = archs.iter().filter_map(Value::as_str).collect();
                if !names.contains(&ARCHITECTURE) {
                    return Err(bad(
                        "architectures",
                        format!(
                            "{names:?} is not supported: ppo-lens runs the {ARCHITECTURE} architecture"
                        ),
                    ));
                }
            }
            Some(other) => {
                return Err(bad(
                    "architectures",
                    format!("must be a list of class names, found {other}"),
                ));
            }
            None => {}
        }
        if let Some(model_type) = map.get("model_type") {
            if model_type.as_str() != Some("qwen2") {
                return Err(bad(
                    "model_type",
                    format!("{model_type} is not supported: ppo-lens runs model_type \"qwen2\""),
                ));
            }
        }
        if let Some(act) = map.get("hidden_act") {
            if act.as_str() != Some("silu") {
                return Err(bad(
                    "hidden_act",
                    format!("{act} is not supported (Qwen2 uses \"silu\")"),
                ));
            }
        }
        if matches!(map.get("use_sliding_window"), Some(Value::Bool(true))) {
            return Err(bad(
                "use_sliding_window",
                "sliding-window attention is not supported; set it to false".into(),
            ));
        }
        if let Some(scaling) = map.get("rope_scaling") {
            if !scaling.is_null() {
                return Err(bad(
                    "rope_scaling",
                    format!("{scaling} is not supported (only plain RoPE)"),
                ));
            }
        }

        let take_usize = |map: &mut Map<String, Value>, key: &str| -> Result<usize, ModelError> {
            match map.remove(key) {
                Some(v) => v
                    .as_u64()
                    .filter(|&n| n > 0)
                    .map(|n| n as usize)
                    .ok_or_else(|| bad(key, format!("must be a positive integer, found {v}"))),
                None => Err(bad(key, "is missing".into())),
            }
        };
        let vocab_size = take_usize(&mut map, "vocab_size")?;
        let hidden_size = take_usize(&mut map, "hidden_size")?;
        let intermediate_size = take_usize(&mut map, "intermediate_size")?;
        let num_hidden_layers = take_usize(&mut map, "num_hidden_layers")?;
        let num_attention_heads = take_usize(&mut map, "num_attention_heads")?;
        let num_key_value_heads = if map.contains_key("num_key_value_heads") {
            take_usize(&mut map, "num_key_value_heads")?
        } else {
            num_attention_heads
        };
        let max_position_embeddings = if map.contains_key("max_position_embeddings") {
            take_usize(&mut map, "max_position_embeddings")?
        } else {
            32_768
        };
        if let Some(hd) = map.get("head_dim") {
            if !hd.is_null()
                && hd.as_u64() != Some((hidden_size / num_attention_heads.max(1)) as u64)
            {
                return Err(bad(
                    "head_dim",
                    format!(
                        "{hd} differs from hidden_size / num_attention_heads = {}; Qwen2 ties the two",
                        hidden_size / num_attention_heads.max(1)
                    ),
                ));
            }
        }

        let rms_norm_eps = match map.remove("rms_norm_eps") {
            Some(v) => v.as_f64().filter(|&e| e > 0.0).ok_or_else(|| {
                bad(
                    "rms_norm_eps",
                    format!("must be a positive number, found {v}"),
                )
            })?,
            None => 1e-6,
        };

        // The two dialects: top-level rope_theta, or rope_parameters.rope_theta.
        let (rope_theta, dialect) = match (map.remove("rope_theta"), map.remove("rope_parameters"))
        {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "rope_theta",
                    "both rope_theta and rope_parameters are set; keep one".into(),
                ));
            }
            (Some(v), None) => (
                v.as_f64().filter(|&t| t > 0.0).ok_or_else(|| {
                    bad(
                        "rope_theta",
                        format!("must be a positive number, found {v}"),
                    )
                })?,
                ConfigDialect::Legacy,
            ),
            (None, Some(Value::Object(params))) => {
                if let Some(kind) = params.get("rope_type") {
                    if kind.as_str() != Some("default") {
                        return Err(bad(
                            "rope_parameters.rope_type",
                            format!("{kind} is not supported (only \"default\")"),
                        ));
                    }
                }
                let theta = params
                    .get("rope_theta")
                    .and_then(Value::as_f64)
                    .filter(|&t| t > 0.0);
                let theta = theta.ok_or_else(|| {
                    bad(
                        "rope_parameters.rope_theta",
                        format!(
                            "must be a positive number, found {:?}",
                            params.get("rope_theta")
                        ),
                    )
                })?;
                (theta, ConfigDialect::RopeParameters)
            }
            (None, Some(other)) => {
                return Err(bad(
                    "rope_parameters",
                    format!("must be an object, found {other}"),
                ));
            }
            (None, None) => (10_000.0, ConfigDialect::RopeParameters),
        };
        let dtype = match (map.remove("torch_dtype"), map.remove("dtype")) {
            // Newer transformers write `dtype`; a file with both must not say two things.
            (Some(old), Some(new)) if old != new => {
                return Err(bad(
                    "dtype",
                    format!("is {new} but torch_dtype is {old}: keep one, or make them agree"),
                ));
            }
            (Some(v), _) | (None, Some(v)) if v.is_string() => {
                v.as_str().unwrap_or_default().to_string()
            }
            (None, None) => "float32".to_string(),
            (Some(v), _) | (None, Some(v)) => {
                return Err(bad(
                    "dtype",
                    format!("must be a string such as \"bfloat16\", found {v}"),
                ));
            }
        };
        if !matches!(dtype.as_str(), "float32" | "float16" | "bfloat16") {
            return Err(bad(
                "dtype",
                format!("\"{dtype}\" is not one of float32, float16, bfloat16"),
            ));
        }
        let tie_word_embeddings = match map.remove("tie_word_embeddings") {
            Some(Value::Bool(b)) => b,
            Some(v) => {
                return Err(bad(
                    "tie_word_embeddings",
                    format!("must be true or false, found {v}"),
                ));
            }
            None => false,
        };
        let token_id = |v: &Value, key: &str| -> Result<u32, ModelError> {
            v.as_u64()
                .filter(|&n| n < vocab_size as u64)
                .map(|n| n as u32)
                .ok_or_else(|| {
                    bad(
                        key,
                        format!("must be a token id below vocab_size {vocab_size}, found {v}"),
                    )
                })
        };
        let bos_token_id = match map.remove("bos_token_id") {
            None | Some(Value::Null) => None,
            Some(v) => Some(token_id(&v, "bos_token_id")?),
        };
        let eos_token_ids = match map.remove("eos_token_id") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| token_id(v, "eos_token_id"))
                .collect::<Result<_, _>>()?,
            Some(v) => vec![token_id(&v, "eos_token_id")?],
        };

        let config = Self {
            vocab_size,
            hidden_size,
            intermediate_size,
            num_hidden_layers,
            num_attention_heads,
            num_key_value_heads,
            max_position_embeddings,
            rms_norm_eps,
            rope_theta,
            tie_word_embeddings,
            dtype,
            bos_token_id,
            eos_token_ids,
            dialect,
            extra: map,
        };
        config.validate(file)?;
        Ok(config)
    }

    fn validate(&self, file: &str) -> Result<(), ModelError> {
        let bad = |key: &str, message: String| ModelError::Config {
            file: file.to_string(),
            key: key.to_string(),
            message,
        };
        if self.hidden_size % self.num_attention_heads != 0 {
            return Err(bad(
                "num_attention_heads",
                format!(
                    "{} does not divide hidden_size {}",
                    self.num_attention_heads, self.hidden_size
                ),
            ));
        }
        if self.head_dim() % 2 != 0 {
            return Err(bad(
                "hidden_size",
                format!(
                    "head_dim {} must be even for rotary embeddings",
                    self.head_dim()
                ),
            ));
        }
        if self.num_attention_heads % self.num_key_value_heads != 0 {
            return Err(bad(
                "num_key_value_heads",
                format!(
                    "{} does not divide num_attention_heads {}",
                    self.num_key_value_heads, self.num_attention_heads
                ),
            ));
        }
        Ok(())
    }

    /// The file's JSON again (same dialect, unknown keys kept), pretty-printed.
    pub fn to_json(&self) -> String {
        let mut map = self.extra.clone();
        let mut put = |k: &str, v: Value| {
            map.insert(k.to_string(), v);
        };
        put("architectures", Value::from(vec![ARCHITECTURE]));
        put("model_type", Value::from("qwen2"));
        put("hidden_act", Value::from("silu"));
        put("vocab_size", Value::from(self.vocab_size));
        put("hidden_size", Value::from(self.hidden_size));
        put("intermediate_size", Value::from(self.intermediate_size));
        put("num_hidden_layers", Value::from(self.num_hidden_layers));
        put("num_attention_heads", Value::from(self.num_attention_heads));
        put("num_key_value_heads", Value::from(self.num_key_value_heads));
        put(
            "max_position_embeddings",
            Value::from(self.max_position_embeddings),
        );
        put("rms_norm_eps", Value::from(self.rms_norm_eps));
        put("tie_word_embeddings", Value::from(self.tie_word_embeddings));
        put("use_sliding_window", Value::from(false));
        put(
            "bos_token_id",
            self.bos_token_id.map_or(Value::Null, Value::from),
        );
        put(
            "eos_token_id",
            match self.eos_token_ids.as_slice() {
                [] => Value::Null,
                [one] => Value::from(*one),
                many => Value::from(many.to_vec()),
            },
        );
        match self.dialect {
            ConfigDialect::Legacy => {
                put("rope_theta", Value::from(self.rope_theta));
                put("torch_dtype", Value::from(self.dtype.clone()));
            }
            ConfigDialect::RopeParameters => {
                let mut rope = Map::new();
                rope.insert("rope_type".into(), Value::from("default"));
                rope.insert("rope_theta".into(), Value::from(self.rope_theta));
                put("rope_parameters", Value::Object(rope));
                put("dtype", Value::from(self.dtype.clone()));
            }
        }
        let mut text = serde_json::to_string_pretty(&Value::Object(map)).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Number of parameters of the trunk and LM head (the value head adds `hidden_size + 1`).
    pub fn num_parameters(&self) -> usize {
        let (d, i, v) = (self.hidden_size, self.intermediate_size, self.vocab_size);
        let kv = self.num_key_value_heads * self.head_dim();
        let attn = d * d + d + 2 * (d * kv + kv) + d * d;
        let mlp = 3 * d * i;
        let layer = attn + mlp + 2 * d;
        let head = if self.tie_word_embeddings { 0 } else { v * d };
        v * d + self.num_hidden_layers * layer + d + head
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEGACY: &str = r#"{
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_act": "silu",
        "vocab_size": 151936, "hidden_size": 2048, "intermediate_size": 5504,
        "num_hidden_layers": 24, "num_attention_heads": 16, "num_key_value_heads": 16,
        "max_position_embeddings": 32768, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
        "tie_word_embeddings": false, "torch_dtype": "bfloat16", "use_sliding_window": false,
        "bos_token_id": 151643, "eos_token_id": 151645, "initializer_range": 0.02
    }"#;

    fn edited(from: &str, to: &str) -> String {
        assert!(LEGACY.contains(from), "{from}");
        LEGACY.replace(from, to)
    }

    fn err(text: &str) -> String {
        Qwen2Config::from_json(text, "m/config.json")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn qwen15_config_reads_and_counts_1_8b_parameters() {
        let c = Qwen2Config::from_json(LEGACY, "config.json").unwrap();
        assert_eq!(
            (c.hidden_size, c.head_dim(), c.num_hidden_layers),
            (2048, 128, 24)
        );
        assert_eq!(c.eos_token_ids, vec![151645]);
        assert_eq!(c.dialect, ConfigDialect::Legacy);
        assert_eq!(c.extra.get("initializer_range"), Some(&Value::from(0.02)));
        // Qwen1.5-1.8B has 1.84 billion parameters (untied embeddings).
        let n = c.num_parameters() as f64 / 1e9;
        assert!((1.83..1.85).contains(&n), "{n}");
    }

    #[test]
    fn to_json_round_trips_in_both_dialects() {
        let legacy = Qwen2Config::from_json(LEGACY, "config.json").unwrap();
        assert_eq!(
            Qwen2Config::from_json(&legacy.to_json(), "again").unwrap(),
            legacy
        );
        let newer = edited(
            "\"rope_theta\": 1000000.0",
            "\"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 1000000.0}",
        )
        .replace("torch_dtype", "dtype");
        let newer = Qwen2Config::from_json(&newer, "config.json").unwrap();
        assert_eq!(newer.dialect, ConfigDialect::RopeParameters);
        assert_eq!(newer.rope_theta, 1e6);
        assert!(newer.to_json().contains("\"rope_parameters\""));
        assert_eq!(
            Qwen2Config::from_json(&newer.to_json(), "again").unwrap(),
            newer
        );
    }

    #[test]
    fn bad_configs_name_the_key() {
        let cases = [
            (
                "Qwen2ForCausalLM",
                "LlamaForCausalLM",
                "key `architectures` [\"LlamaForCausalLM\"] is not supported",
            ),
            (
                "\"hidden_size\": 2048",
                "\"hidden_size\": \"big\"",
                "key `hidden_size` must be a positive integer, found \"big\"",
            ),
            ("\"hidden_size\": 2048,", "", "key `hidden_size` is missing"),
            (
                "\"num_key_value_heads\": 16",
                "\"num_key_value_heads\": 5",
                "key `num_key_value_heads` 5 does not divide num_attention_heads 16",
            ),
            (
                "\"hidden_act\": \"silu\"",
                "\"hidden_act\": \"gelu\"",
                "key `hidden_act`",
            ),
            (
                "\"use_sliding_window\": false",
                "\"use_sliding_window\": true",
                "key `use_sliding_window`",
            ),
            (
                "\"torch_dtype\": \"bfloat16\"",
                "\"torch_dtype\": \"int8\"",
                "key `dtype` \"int8\" is not one of",
            ),
            (
                "\"torch_dtype\": \"bfloat16\"",
                "\"torch_dtype\": \"bfloat16\", \"dtype\": \"float32\"",
                "key `dtype` is \"float32\" but torch_dtype is \"bfloat16\"",
            ),
            (
                "\"eos_token_id\": 151645",
                "\"eos_token_id\": 999999",
                "key `eos_token_id` must be a token id below vocab_size 151936",
            ),
        ];
        for (from, to, message) in cases {
            let e = err(&edited(from, to));
            assert!(
                e.starts_with("m/config.json: ") && e.contains(message),
                "{to}: {e}"
            );
        }
        assert!(err("[1, 2]").contains("must hold a JSON object"));
        assert!(err("{ not json").contains("not valid JSON"));
    }
}
