//! `ppo-lens score`: per-token logprobs and values of a text or of ids under a model directory.

use std::path::Path;

use anyhow::{Context, Result, bail};
use burn::tensor::{Int, Tensor, TensorData};
use serde_json::{Value, json};

use super::model_dir::{load_dir, open_device, precision_for, read_config};
use crate::compute::{block_on, read_f32};
use crate::model::ValueHeadInit;
use crate::ppo::entropy::logsumexp;

/// What to score.
pub enum ScoreInput {
    Text(String),
    Ids(String),
}

/// Parse `1,2,3` (spaces allowed) into ids.
pub fn parse_ids(text: &str) -> Result<Vec<u32>> {
    let ids = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u32>()
                .with_context(|| format!("--ids: `{s}` is not a token id (a non-negative integer)"))
        })
        .collect::<Result<Vec<_>>>()?;
    if ids.is_empty() {
        bail!("--ids: give at least one id, e.g. --ids 1,2,3");
    }
    Ok(ids)
}

/// Run the model once over the ids and return `{"ids", "tokens", "logprobs", "values"}`, where
/// `logprobs[0]` is null and `logprobs[t]` = log p(ids[t] | ids[<t]).
pub fn score_command(model_dir: &Path, input: ScoreInput, device: &str) -> Result<Value> {
    let compute = open_device(device, "--device")?;
    let device = compute.device.clone();
    let precision = precision_for(compute.kind, &read_config(model_dir)?);
    let loaded = load_dir(model_dir, precision, ValueHeadInit::Zeros, 0, &device)?;
    let ids = match input {
        ScoreInput::Ids(text) => parse_ids(&text)?,
        ScoreInput::Text(text) => match &loaded.tokenizer {
            Some(tok) => tok.encode(&text)?,
            None => bail!(
                "{}: no tokenizer.json, so --text cannot be used; pass --ids",
                model_dir.display()
            ),
        },
    };
    if ids.is_empty() {
        bail!("--text: the text has no tokens");
    }
    let vocab = loaded.model.config.vocab_size;
    if let Some(bad) = ids.iter().find(|&&id| id as usize >= vocab) {
        bail!("--ids: token id {bad} is outside the vocabulary (vocab_size {vocab})");
    }
    let t = ids.len();
    let id_data: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
    let id_tensor = Tensor::<2, Int>::from_data(TensorData::new(id_data, [1, t]), &device);
    let mask = Tensor::<2, Int>::ones([1, t], &device);
    let out = loaded.model.forward(id_tensor.clone(), mask, false);

    // log p(ids[t] | ids[<t]) = logits[t-1, ids[t]] - logsumexp(logits[t-1]).
    let logps = if t > 1 {
        let logits = out.logits.narrow(1, 0, t - 1); // [1, T-1, V]
        let next = id_tensor.narrow(1, 1, t - 1).unsqueeze_dim::<3>(2); // [1, T-1, 1]
        let picked = logits.clone().gather(2, next); // [1, T-1, 1]
        block_on(read_f32(picked - logsumexp(logits))).map_err(anyhow::Error::msg)?
    } else {
        Vec::new()
    };
    let values = block_on(read_f32(out.values)).map_err(anyhow::Error::msg)?;

    let tokens: Vec<Value> = ids
        .iter()
        .map(|&id| {
            loaded
                .tokenizer
                .as_ref()
                .and_then(|tok| tok.token(id))
                .map_or(Value::Null, Value::from)
        })
        .collect();
    let logprobs: Vec<Value> = std::iter::once(Value::Null)
        .chain(logps.iter().map(|&v| json!(v)))
        .collect();
    Ok(json!({ "ids": ids, "tokens": tokens, "logprobs": logprobs, "values": values }))
}
