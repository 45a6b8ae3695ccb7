//! The files a training run writes in its output directory, by name: the metrics, the config
//! as run, and each checkpoint's optimizer and trainer state; every one written atomically, and
//! `metrics.jsonl` read back (by `ppo-lens report` and the run-health replay).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

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

/// What an output directory holds of an earlier run: a metrics.jsonl with rows, and the
/// checkpoint directories this trainer writes (`final` or `step_N`, holding a
/// trainer_state.json), sorted. Other directories (a downloaded model, another trainer's
/// `checkpoint-N`) are not a run's and are never touched.
#[derive(Debug)]
struct EarlierRun {
    metrics: bool,
    checkpoints: Vec<PathBuf>,
}

impl EarlierRun {
    fn is_empty(&self) -> bool {
        !self.metrics && self.checkpoints.is_empty()
    }

    /// What it holds, as a list for a message: `metrics.jsonl, final/, step_20/`.
    pub fn describe(&self) -> String {
        let metrics = self.metrics.then(|| METRICS.to_string());
        let dirs = (self.checkpoints.iter())
            .filter_map(|d| d.file_name())
            .map(|n| format!("{}/", n.to_string_lossy()));
        metrics
            .into_iter()
            .chain(dirs)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What `out` holds of an earlier run.
fn earlier_run(out: &Path) -> EarlierRun {
    let metrics = fs::metadata(out.join(METRICS)).is_ok_and(|m| m.len() > 0);
    let mut checkpoints: Vec<PathBuf> = fs::read_dir(out)
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
        .map(|e| e.path())
        .collect();
    checkpoints.sort();
    EarlierRun {
        metrics,
        checkpoints,
    }
}

/// Whether `out` may take this run, and which checkpoints of an earlier run it replaces there.
/// A fresh run into a directory holding a run is refused unless `overwrite` (its checkpoints are
/// returned, for the caller to remove once its own checks pass); a resume keeps its output
/// directory's metrics.jsonl up to the checkpoint's step, so that must be the checkpoint's own
/// run (the checkpoint lies in `out`), or `out` must hold no run.
pub fn checkpoints_to_replace(
    out: &Path,
    resume: Option<&Path>,
    overwrite: bool,
) -> Result<Vec<PathBuf>> {
    let earlier = earlier_run(out);
    if earlier.is_empty() {
        return Ok(Vec::new());
    }
    match resume {
        None if !overwrite => bail!(
            "key `training.output_dir`: {} already holds a run ({}) that a new run would replace: \
             {}give this run another training.output_dir, or pass --overwrite to replace it",
            out.display(),
            earlier.describe(),
            if earlier.checkpoints.is_empty() {
                ""
            } else {
                "continue it with --resume and one of its checkpoints, "
            }
        ),
        None => Ok(earlier.checkpoints),
        Some(dir) if !in_dir(dir, out) => bail!(
            "--resume {}: the checkpoint lies outside training.output_dir {}, which holds another \
             run ({}) that resuming there would cut short and overwrite: resume into the \
             checkpoint's own run directory, or into an empty training.output_dir",
            dir.display(),
            out.display(),
            earlier.describe()
        ),
        Some(_) => Ok(Vec::new()),
    }
}

/// Whether checkpoint `dir` lies directly in `out`, both resolved (`--resume .` from inside the
/// checkpoint, or a link to it). A checkpoint that cannot be resolved passes: reading its
/// trainer_state.json will name what is wrong with it.
fn in_dir(dir: &Path, out: &Path) -> bool {
    match (fs::canonicalize(dir), fs::canonicalize(out)) {
        (Ok(dir), Ok(out)) => dir.parent() == Some(out.as_path()),
        (Err(_), _) => true,
        (Ok(_), Err(_)) => false,
    }
}
