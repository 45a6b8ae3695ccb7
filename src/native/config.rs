//! Training configs: YAML files with sections `model`, `data`, `training`, `rollout`, `ppo`, one
//! per critic-free member (`grpo`, `dr_grpo`, `dapo`, `rloo`, `reinforce`), and the key
//! `algorithm`.
//!
//! A file may start with `inherit: other.yaml` (a path relative to it): the other file is read
//! first and this one's keys replace its keys, section by section (`configs/config_debug.yaml`
//! inherits `configs/config.yaml`). `key.sub=value` overrides from the command line are applied
//! last, with the value read as YAML (`ppo.epochs=2`, `training.device=cpu`). Unknown keys, wrong
//! types and out-of-range values are refused with the key's full name.

use blame::{names_key, strip_location, unknown_field};
use std::path::{Path, PathBuf};

use crate::ppo::family::Family;
use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use serde_yaml::{Mapping, Value};

pub use super::members::{
    AlgorithmName, DapoSection, DrGrpoSection, GrpoSection, ReinforceSection, RlooSection,
};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub model: ModelSection,
    pub data: DataSection,
    pub training: TrainingSection,
    pub rollout: RolloutSection,
    /// `ppo` (GAE on a learned critic), or a critic-free member: `grpo`, `dr_grpo`, `dapo`,
    /// `rloo`, `reinforce`.
    pub algorithm: AlgorithmName,
    pub ppo: PpoSection,
    /// Read when `algorithm` is `grpo`; each section below when `algorithm` names it.
    pub grpo: GrpoSection,
    pub dr_grpo: DrGrpoSection,
    pub dapo: DapoSection,
    pub rloo: RlooSection,
    pub reinforce: ReinforceSection,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// A Hugging Face model directory (config.json, safetensors, tokenizer.json).
    pub path: PathBuf,
    /// Std of the new value head's normal init; 0 starts it at zeros.
    pub value_head_std: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataSource {
    /// GSM8K jsonl at `data.path`.
    Gsm8k,
    /// The seeded generator (no file).
    GsmMini,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    pub source: DataSource,
    /// The GSM8K jsonl file (for `source: gsm8k`).
    pub path: Option<PathBuf>,
    /// How many problems to use (the first N, or N generated).
    pub num_samples: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingSection {
    /// cpu (flex), wgpu or cuda.
    pub device: String,
    /// float32 or bfloat16 (bfloat16 needs cuda).
    pub dtype: String,
    pub seed: u64,
    pub output_dir: PathBuf,
    pub total_ppo_steps: usize,
    /// Write a checkpoint and the plots every this many steps (0: only at the end).
    pub save_every: usize,
    /// On cpu: the hand-written kernels where they apply (src/cpu_fast/); false: burn's ops.
    pub fast_cpu: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutSection {
    /// Responses per iteration: prompts × the member's `group_size` (one per prompt for PPO and
    /// REINFORCE).
    pub batch_size: usize,
    pub max_new_tokens: usize,
    pub temperature: f32,
    /// 0: no top-k limit.
    pub top_k: usize,
    pub top_p: f32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdaptiveKl {
    /// The KL per sequence the controller steers towards.
    pub target: f64,
    /// Sequences over which the coefficient adapts: each iteration multiplies it by 1 + the
    /// clipped error × (the batch's sequences / horizon).
    pub horizon: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PpoSection {
    pub epochs: usize,
    pub mini_batch_size: usize,
    pub gradient_accumulation_steps: usize,
    pub learning_rate: f64,
    /// The learning rate of the value head's bias (the critic's level); null: `learning_rate`.
    #[serde(default)]
    pub value_bias_learning_rate: Option<f64>,
    pub weight_decay: f64,
    /// Global gradient-norm clip; null for none. Required: a file that leaves it out is refused
    /// rather than read as "no clipping".
    #[serde(deserialize_with = "Option::deserialize")]
    pub max_grad_norm: Option<f64>,
    pub gamma: f64,
    pub lam: f64,
    pub clip_ratio: f64,
    pub clip_range_value: f64,
    pub vf_coef: f64,
    pub entropy_coeff: f64,
    pub kl_coeff: f64,
    /// k1, k2 or k3.
    pub kl_estimator: String,
    /// Null for a fixed `kl_coeff`. Required, as `max_grad_norm` is.
    #[serde(deserialize_with = "Option::deserialize")]
    pub adaptive_kl: Option<AdaptiveKl>,
    pub whiten_advantages: bool,
    pub use_8bit_adam: bool,
}

impl TrainConfig {
    /// Responses sampled per prompt in one batch: the algorithm's `group_size`, 1 for PPO and
    /// REINFORCE.
    pub fn group_size(&self) -> usize {
        match self.algorithm {
            AlgorithmName::Ppo | AlgorithmName::Reinforce => 1,
            AlgorithmName::Grpo => self.grpo.group_size,
            AlgorithmName::DrGrpo => self.dr_grpo.group_size,
            AlgorithmName::Dapo => self.dapo.group_size,
            AlgorithmName::Rloo => self.rloo.group_size,
        }
    }
}

/// Read `path` with its `inherit` chain as one YAML mapping; `sources` gets each file of the
/// chain with the key paths it sets (`ppo.epochs`; a section set to null is one key), the
/// inherited file before the file that inherits it.
fn read_merged(
    path: &Path,
    chain: &mut Vec<PathBuf>,
    sources: &mut Vec<(PathBuf, Vec<String>)>,
) -> Result<Mapping> {
    let canonical = path
        .canonicalize()
        .with_context(|| format!("{}: cannot read", path.display()))?;
    if chain.contains(&canonical) {
        bail!(
            "{}: `inherit` loops back to a file already read",
            path.display()
        );
    }
    chain.push(canonical);
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    let value: Value = serde_yaml::from_str(&text)
        .map_err(|e| anyhow!("{}: not valid YAML: {e}", path.display()))?;
    let Value::Mapping(mut map) = value else {
        bail!(
            "{}: the file must be a mapping of sections (model, data, training, rollout, ppo)",
            path.display()
        );
    };
    let Some(parent) = map.remove("inherit") else {
        sources.push((path.to_path_buf(), key_paths(&map)));
        return Ok(map);
    };
    let parent = parent.as_str().ok_or_else(|| {
        anyhow!(
            "{}: key `inherit` must be a file path, found {parent:?}",
            path.display()
        )
    })?;
    let parent_path = path.parent().unwrap_or(Path::new(".")).join(parent);
    let mut base = read_merged(&parent_path, chain, sources)?;
    sources.push((path.to_path_buf(), key_paths(&map)));
    merge(&mut base, map);
    Ok(base)
}

/// The key paths a mapping sets to a value (not to a nested mapping): `ppo.epochs`.
fn key_paths(map: &Mapping) -> Vec<String> {
    let mut out = Vec::new();
    for (key, value) in map {
        let key = key
            .as_str()
            .map_or_else(|| format!("{key:?}"), str::to_string);
        match value {
            Value::Mapping(inner) => {
                out.extend(key_paths(inner).into_iter().map(|k| format!("{key}.{k}")))
            }
            _ => out.push(key),
        }
    }
    out
}

/// `base` with `over`'s keys replacing its own, recursively for nested mappings.
fn merge(base: &mut Mapping, over: Mapping) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(Value::Mapping(b)), Value::Mapping(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Apply one `a.b=value` override.
fn apply_override(map: &mut Mapping, text: &str) -> Result<()> {
    let (key, raw) = text
        .split_once('=')
        .ok_or_else(|| anyhow!("override `{text}`: expected key.sub=value, e.g. ppo.epochs=2"))?;
    let value: Value = serde_yaml::from_str(raw)
        .map_err(|e| anyhow!("override `{text}`: the value is not valid YAML: {e}"))?;
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        bail!("override `{text}`: `{key}` is not a key path like ppo.epochs");
    }
    let mut node = map;
    for (i, part) in parts.iter().enumerate() {
        let k = Value::from(*part);
        if i + 1 == parts.len() {
            if !node.contains_key(&k) {
                bail!("override `{text}`: unknown key `{key}`");
            }
            node.insert(k, value);
            return Ok(());
        }
        node = match node.get_mut(&k) {
            Some(Value::Mapping(m)) => m,
            // A section that is null here (`ppo.adaptive_kl: null`) is set whole.
            Some(Value::Null) => bail!(
                "override `{text}`: `{}` is null here; set it whole, e.g. `{}={{...}}`",
                parts[..=i].join("."),
                parts[..=i].join(".")
            ),
            _ => bail!("override `{text}`: unknown key `{}`", parts[..=i].join(".")),
        };
    }
    Ok(())
}

/// Load a config file with its `inherit` chain and `overrides`, then check every value.
pub fn load_config(path: &Path, overrides: &[String]) -> Result<TrainConfig> {
    let mut sources = Vec::new();
    let mut map = read_merged(path, &mut Vec::new(), &mut sources)?;
    for o in overrides {
        apply_override(&mut map, o)?;
    }
    let merged = Value::Mapping(map);
    // An error that names a key an override set names the override, not a file: the key
    // itself ("key `ppo.epochs` must ...", serde_yaml's "ppo.epochs: invalid type"), a key
    // inside a section the override set whole (`ppo.adaptive_kl={...}`), or the other key of a
    // conflict ("must be cuda for training.dtype bfloat16").
    let blame = |e: String| match overrides.iter().rev().find(|o| {
        o.split_once('=')
            .is_some_and(|(k, _)| names_key(&e, k.trim()))
    }) {
        Some(o) => anyhow!("override `{o}`: {e}"),
        // Otherwise the file that set the key it is about, the inheriting file first (its
        // values replace the inherited file's); the top file when none did.
        None => {
            // The key the error is about, not one it lists ("expected one of `algorithm`, ..."):
            // a range error's "key `ppo.epochs`", serde_yaml's "ppo.epochs: ".
            let about = |k: &String| {
                e.contains(&format!("key `{k}`"))
                    || e.starts_with(&format!("{k}: "))
                    || unknown_field(&e).is_some_and(|u| *k == u || k.starts_with(&format!("{u}.")))
            };
            let file = (sources.iter().rev())
                .find(|(_, keys)| keys.iter().any(about))
                .map_or(path, |(file, _)| file.as_path());
            anyhow!("{}: {e}", file.display())
        }
    };
    finite_numbers(&merged, &mut Vec::new()).map_err(blame)?;
    // Through text, so that serde_yaml's errors carry the key path (`ppo.epochs: invalid type`).
    let text = serde_yaml::to_string(&merged)?;
    let config: TrainConfig =
        serde_yaml::from_str(&text).map_err(|e| blame(strip_location(&e.to_string())))?;
    config.validate().map_err(blame)?;
    // A member's section is read only when that member trains: an override of another one
    // would change nothing, silently (the file sets every section, so only overrides are
    // checked).
    let algorithm = config.algorithm.family().key();
    for o in overrides {
        let section = o.split(['.', '=']).next().unwrap_or_default().trim();
        let member = Family::ALL
            .iter()
            .any(|f| f.key() == section && *f != Family::Ppo);
        if member && section != algorithm {
            bail!(
                "override `{o}`: section `{section}` is read only with algorithm {section}, and \
                 this run's is {algorithm}: add algorithm={section}, or leave the override out"
            );
        }
    }
    Ok(config)
}

/// Every number of the merged config is finite and within f32's range (most are used as f32,
/// where `1e39` becomes infinite). `.inf` or `1e999` would pass the range checks (an infinite
/// learning rate is > 0) and turn the weights or rewards into NaN steps after the models load.
fn finite_numbers(value: &Value, key: &mut Vec<String>) -> Result<(), String> {
    match value {
        Value::Number(n) => match n.as_f64() {
            Some(x) if !(x.is_finite() && x.abs() <= f64::from(f32::MAX)) => Err(format!(
                "key `{}` must be a finite number no larger than 3.4e38 in size, found {n}",
                key.join(".")
            )),
            _ => Ok(()),
        },
        Value::Mapping(m) => m.iter().try_for_each(|(k, v)| {
            key.push(k.as_str().map_or_else(|| format!("{k:?}"), str::to_string));
            let checked = finite_numbers(v, key);
            key.pop();
            checked
        }),
        Value::Sequence(items) => items.iter().enumerate().try_for_each(|(i, v)| {
            key.push(i.to_string());
            let checked = finite_numbers(v, key);
            key.pop();
            checked
        }),
        Value::Tagged(t) => finite_numbers(&t.value, key),
        Value::Null | Value::Bool(_) | Value::String(_) => Ok(()),
    }
}

impl TrainConfig {
    /// Range checks serde cannot express; each error names the key.
    pub fn validate(&self) -> Result<(), String> {
        let (r, p, t, d) = (&self.rollout, &self.ppo, &self.training, &self.data);
        let check = |ok: bool, key: &str, rule: &str, found: String| {
            if ok {
                Ok(())
            } else {
                Err(format!("key `{key}` {rule}, found {found}"))
            }
        };
        check(
            matches!(t.device.as_str(), "cpu" | "flex" | "wgpu" | "cuda"),
            "training.device",
            "must be cpu (or flex, the same), wgpu or cuda",
            t.device.clone(),
        )?;
        check(
            matches!(t.dtype.as_str(), "float32" | "bfloat16"),
            "training.dtype",
            "must be float32 or bfloat16",
            t.dtype.clone(),
        )?;
        check(
            t.dtype != "bfloat16" || t.device == "cuda",
            "training.device",
            "must be cuda for training.dtype bfloat16",
            t.device.clone(),
        )?;
        // The 8-bit state is stored as i8 tensors; WGSL, the language of wgpu's kernels, has no
        // 8-bit integers, and the step failed there with a shader compile error.
        check(
            !(p.use_8bit_adam && t.device == "wgpu"),
            "ppo.use_8bit_adam",
            "must be false on training.device wgpu (its shaders have no 8-bit integers to keep \
             the state in; cpu and cuda have)",
            "true".into(),
        )?;
        check(
            t.total_ppo_steps > 0,
            "training.total_ppo_steps",
            "must be at least 1",
            t.total_ppo_steps.to_string(),
        )?;
        check(
            d.num_samples > 0,
            "data.num_samples",
            "must be at least 1",
            d.num_samples.to_string(),
        )?;
        check(
            d.source != DataSource::Gsm8k || d.path.is_some(),
            "data.path",
            "is needed for source gsm8k",
            "null".into(),
        )?;
        // GSM-mini makes its problems: a path given with it would be silently ignored.
        check(
            d.source == DataSource::Gsm8k || d.path.is_none(),
            "data.path",
            "is read only with data.source gsm8k (GSM-mini makes its own problems); set it to \
             null",
            d.path
                .as_ref()
                .map_or("null".to_string(), |p| p.display().to_string()),
        )?;
        check(
            self.model.value_head_std >= 0.0,
            "model.value_head_std",
            "must be >= 0",
            self.model.value_head_std.to_string(),
        )?;
        check(
            r.batch_size > 0,
            "rollout.batch_size",
            "must be at least 1",
            r.batch_size.to_string(),
        )?;
        check(
            r.max_new_tokens > 0,
            "rollout.max_new_tokens",
            "must be at least 1",
            r.max_new_tokens.to_string(),
        )?;
        check(
            r.temperature > 0.0,
            "rollout.temperature",
            "must be > 0",
            r.temperature.to_string(),
        )?;
        check(
            r.top_p > 0.0 && r.top_p <= 1.0,
            "rollout.top_p",
            "must be in (0, 1]",
            r.top_p.to_string(),
        )?;
        check(
            p.epochs > 0,
            "ppo.epochs",
            "must be at least 1",
            p.epochs.to_string(),
        )?;
        check(
            p.mini_batch_size > 0 && p.mini_batch_size <= r.batch_size,
            "ppo.mini_batch_size",
            &format!("must be in 1..={} (rollout.batch_size)", r.batch_size),
            p.mini_batch_size.to_string(),
        )?;
        check(
            p.gradient_accumulation_steps > 0,
            "ppo.gradient_accumulation_steps",
            "must be at least 1",
            p.gradient_accumulation_steps.to_string(),
        )?;
        check(
            p.learning_rate > 0.0,
            "ppo.learning_rate",
            "must be > 0",
            p.learning_rate.to_string(),
        )?;
        check(
            p.value_bias_learning_rate.is_none_or(|lr| lr > 0.0),
            "ppo.value_bias_learning_rate",
            "must be > 0 or null",
            p.value_bias_learning_rate
                .map_or("null".to_string(), |x| x.to_string()),
        )?;
        check(
            p.weight_decay >= 0.0,
            "ppo.weight_decay",
            "must be >= 0",
            p.weight_decay.to_string(),
        )?;
        check(
            p.max_grad_norm.is_none_or(|m| m > 0.0),
            "ppo.max_grad_norm",
            "must be > 0 or null",
            p.max_grad_norm
                .map_or("null".to_string(), |x| x.to_string()),
        )?;
        check(
            (0.0..=1.0).contains(&p.gamma),
            "ppo.gamma",
            "must be in [0, 1]",
            p.gamma.to_string(),
        )?;
        check(
            (0.0..=1.0).contains(&p.lam),
            "ppo.lam",
            "must be in [0, 1]",
            p.lam.to_string(),
        )?;
        check(
            p.clip_ratio > 0.0,
            "ppo.clip_ratio",
            "must be > 0",
            p.clip_ratio.to_string(),
        )?;
        check(
            p.clip_range_value > 0.0,
            "ppo.clip_range_value",
            "must be > 0",
            p.clip_range_value.to_string(),
        )?;
        check(
            p.vf_coef >= 0.0,
            "ppo.vf_coef",
            "must be >= 0",
            p.vf_coef.to_string(),
        )?;
        check(
            p.entropy_coeff >= 0.0,
            "ppo.entropy_coeff",
            "must be >= 0",
            p.entropy_coeff.to_string(),
        )?;
        check(
            p.kl_coeff >= 0.0,
            "ppo.kl_coeff",
            "must be >= 0",
            p.kl_coeff.to_string(),
        )?;
        check(
            matches!(p.kl_estimator.as_str(), "k1" | "k2" | "k3"),
            "ppo.kl_estimator",
            "must be k1, k2 or k3",
            p.kl_estimator.clone(),
        )?;
        let b = r.batch_size;
        match self.algorithm {
            AlgorithmName::Ppo => Ok(()),
            AlgorithmName::Grpo => self.grpo.validate(b, &check),
            AlgorithmName::DrGrpo => self.dr_grpo.validate(b, &check),
            AlgorithmName::Dapo => self.dapo.validate(b, &check),
            AlgorithmName::Rloo => self.rloo.validate(b, &check),
            AlgorithmName::Reinforce => self.reinforce.validate(p.epochs, &check),
        }?;
        if let Some(a) = &p.adaptive_kl {
            check(
                a.target > 0.0,
                "ppo.adaptive_kl.target",
                "must be > 0",
                a.target.to_string(),
            )?;
            // A step multiplies the coefficient by as little as 1 − 0.2 × sequences / horizon:
            // at or below 0.2 × the batch, a KL under the target would make it 0 or negative.
            let least = r.batch_size as f64 / 5.0; // 0.2 × the batch, printed as 2.4, not 2.4000000000000004
            check(
                a.horizon > least,
                "ppo.adaptive_kl.horizon",
                &format!(
                    "must be above 0.2 × rollout.batch_size = {least} (a step multiplies the KL \
                     coefficient by as little as 1 − 0.2 × batch_size / horizon, which must stay \
                     above 0)"
                ),
                a.horizon.to_string(),
            )?;
        }
        Ok(())
    }

    /// The merged config as YAML (written to `output_dir/effective_config.yaml`).
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).unwrap_or_default()
    }
}

mod blame;
#[cfg(test)]
mod tests;
