//! The files a training run writes in its output directory, by name: the metrics, the config
//! as run, and each checkpoint's optimizer and trainer state; every one written atomically, and
//! `metrics.jsonl` read back (by `ppo-lens report` and the run-health replay).

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub const OPTIMIZER: &str = "optimizer.burnpack";
pub const TRAINER_STATE: &str = "trainer_state.json";
pub const METRICS: &str = "metrics.jsonl";
pub const EFFECTIVE_CONFIG: &str = "effective_config.yaml";

/// What a checkpoint needs besides the weights and the optimizer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainerState {
    /// PPO steps done.
    pub step: usize,
    /// The random generator's state after that step (batches, sampling, shuffles).
    pub rng_state: u64,
    /// The KL coefficient the next step uses.
    pub kl_coeff: f64,
    /// Whose state `optimizer.burnpack` holds: `adamw` or `adamw8bit`.
    pub optimizer: String,
}

/// Write one file atomically: a sibling temporary file, flushed, renamed over `path`.
pub fn write_file_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("{}: not a file name", path.display()))?;
    let tmp = path.with_file_name(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let mut f =
        fs::File::create(&tmp).with_context(|| format!("{}: cannot create", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("{}: cannot write", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("{}: cannot move into place", path.display()))
}

/// The rows of `metrics.jsonl` (its `text`), each with its line as written.
pub fn parse_metrics<'t>(text: &'t str, path: &Path) -> Result<Vec<(Map<String, Value>, &'t str)>> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| match serde_json::from_str(line) {
            Ok(Value::Object(row)) => Ok((row, line)),
            _ => bail!("{}:{}: not a JSON object", path.display(), i + 1),
        })
        .collect()
}

/// What a fresh run in `out` would replace of an earlier one: a metrics.jsonl with rows, and the
/// checkpoint directories this trainer writes (`final` or `step_N`, holding a
/// trainer_state.json), written `step_20/`, sorted. Other directories (a downloaded model, another
/// trainer's `checkpoint-N`) are not a run's and are never touched.
pub fn earlier_run(out: &Path) -> Vec<String> {
    let mut found = Vec::new();
    if fs::metadata(out.join(METRICS)).is_ok_and(|m| m.len() > 0) {
        found.push(METRICS.to_string());
    }
    let mut dirs: Vec<String> = fs::read_dir(out)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let ours = name == "final"
                || name
                    .strip_prefix("step_")
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            ours && e.path().join(TRAINER_STATE).is_file()
        })
        .map(|e| format!("{}/", e.file_name().to_string_lossy()))
        .collect();
    dirs.sort();
    found.extend(dirs);
    found
}
