//! `findings.jsonl`: what the run-health checks ([`crate::health`]) found, each finding written
//! once, at the step it first appeared, beside `metrics.jsonl`; and `ppo-lens report DIR`, a
//! summary of a finished or running output directory.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::{Map, Value, json};

use super::run_files::{EFFECTIVE_CONFIG, METRICS, parse_metrics, write_file_atomically};
use crate::health::{Check, Finding, History, RunSettings, Watch};

pub const FINDINGS: &str = "findings.jsonl";

/// A metrics.jsonl row's numbers, by name.
fn numbers(row: &Map<String, Value>) -> impl Iterator<Item = (&str, f64)> {
    row.iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.as_f64()?)))
}

fn line(step: usize, f: &Finding) -> String {
    json!({
        "step": step,
        "finding": f.check.key(),
        "metric": f.metric,
        "threshold": f.threshold,
        "window": f.window,
        "value": f.value,
        "meaning": f.meaning,
        "fix": f.trainer_advice(),
    })
    .to_string()
}

/// The trainer's findings, and the file they are written to.
pub struct FindingLog {
    watch: Watch,
    path: PathBuf,
    file: fs::File,
}

impl FindingLog {
    /// Opens `dir/findings.jsonl` for a run whose metrics.jsonl holds `rows` so far. A fresh run
    /// (`resumed_at` None) starts it over; a resumed one keeps its findings up to that step,
    /// which are not said again.
    pub fn open(
        dir: &Path,
        resumed_at: Option<usize>,
        rows: &[Map<String, Value>],
        settings: RunSettings,
    ) -> Result<Self> {
        let path = dir.join(FINDINGS);
        let mut kept = String::new();
        let mut seen = BTreeSet::new();
        if let (Some(at), true) = (resumed_at, path.exists()) {
            let text = fs::read_to_string(&path)
                .with_context(|| format!("{}: cannot read", path.display()))?;
            for (row, text) in parse_metrics(&text, &path)? {
                if row.get("step").and_then(Value::as_u64) <= Some(at as u64) {
                    if let Some(check) = row
                        .get("finding")
                        .and_then(Value::as_str)
                        .and_then(Check::from_key)
                    {
                        seen.insert(check);
                    }
                    kept.push_str(text);
                    kept.push('\n');
                }
            }
        }
        write_file_atomically(&path, kept.as_bytes())?;
        let file = fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .with_context(|| format!("{}: cannot open", path.display()))?;
        let mut history = History::new();
        for row in rows {
            history.push(numbers(row));
        }
        Ok(Self {
            watch: Watch::new(history, settings, seen),
            path,
            file,
        })
    }

    /// Adds step `step`'s metrics row and returns the findings that appear for the first time in
    /// this run, each already written to the file.
    pub fn step(&mut self, step: usize, row: &Map<String, Value>) -> Result<Vec<Finding>> {
        let new = self.watch.push(numbers(row));
        for f in &new {
            writeln!(self.file, "{}", line(step, f))
                .and_then(|()| self.file.flush())
                .with_context(|| format!("{}: cannot write", self.path.display()))?;
        }
        Ok(new)
    }
}

/// How the trainer says a finding: one line.
pub fn say(step: usize, f: &Finding) -> String {
    format!(
        "step {step}: health: {} ({} {}): {} Try: {}.",
        f.check.key(),
        f.metric,
        fmt(f.value),
        f.meaning,
        f.trainer_advice()
    )
}

fn fmt(x: f64) -> String {
    if x == 0.0 || (1e-3..1e4).contains(&x.abs()) {
        format!("{x:.4}")
    } else {
        format!("{x:.3e}")
    }
}

/// The metrics a report shows, at the start, the middle and the end of the run.
const REPORTED: [&str; 10] = [
    "rollout/reward_mean",
    "rollout/correct_frac",
    "rollout/kl_mean",
    "loss/value",
    "loss/entropy",
    "params/approx_kl",
    "params/policy_clip_frac",
    "params/value_clip_frac",
    "params/grad_norm",
    "critic/explained_variance",
];

/// `ppo-lens report DIR`: the run in `dir` (finished or still running) in a few lines.
pub fn report(dir: &Path) -> Result<String> {
    let metrics_path = dir.join(METRICS);
    let text = fs::read_to_string(&metrics_path).with_context(|| {
        format!(
            "{}: cannot read: is {} a training output directory (training.output_dir)?",
            metrics_path.display(),
            dir.display()
        )
    })?;
    let rows: Vec<Map<String, Value>> = parse_metrics(&text, &metrics_path)?
        .into_iter()
        .map(|(row, _)| row)
        .collect();
    let step = |row: &Map<String, Value>| row.get("step").and_then(Value::as_u64).unwrap_or(0);
    // The run's own settings, where it wrote them: the step count and the gradient-norm limit.
    // One that cannot be read is said, not dropped: the findings replayed below then assume PPO
    // and no gradient-norm limit.
    let config_path = dir.join(EFFECTIVE_CONFIG);
    let (config, unread) = match super::config::load_config(&config_path, &[]) {
        Ok(c) => (Some(c), None),
        Err(e) if config_path.exists() => (None, Some(format!("{e:#}"))),
        Err(_) => (None, None),
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "ppo-lens report: {}\n{} step{} recorded{}{}.",
        dir.display(),
        rows.len(),
        if rows.len() == 1 { "" } else { "s" },
        rows.last()
            .map_or(String::new(), |r| format!(", the last step {}", step(r))),
        config.as_ref().map_or(String::new(), |c| format!(
            " of {}",
            c.training.total_ppo_steps
        )),
    );
    if let Some(e) = unread {
        let _ = writeln!(
            out,
            "note: {} could not be read ({e}); its settings are not used below",
            config_path.display()
        );
    }
    if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
        let middle = &rows[rows.len() / 2];
        let _ = writeln!(
            out,
            "\n{:<28} {:>12} {:>12} {:>12}",
            "metric",
            format!("step {}", step(first)),
            format!("step {}", step(middle)),
            format!("step {}", step(last))
        );
        for name in REPORTED {
            let cell = |r: &Map<String, Value>| {
                r.get(name).and_then(Value::as_f64).map_or("-".into(), fmt)
            };
            if rows.iter().any(|r| r.contains_key(name)) {
                let _ = writeln!(
                    out,
                    "{name:<28} {:>12} {:>12} {:>12}",
                    cell(first),
                    cell(middle),
                    cell(last)
                );
            }
        }
    }
    // What the trainer found, or, for a run that wrote no findings.jsonl, the same checks replayed
    // over its metrics.
    let findings_path = dir.join(FINDINGS);
    let mut found: Vec<(u64, String, String, String)> = Vec::new();
    let source = if findings_path.exists() {
        let text = fs::read_to_string(&findings_path)
            .with_context(|| format!("{}: cannot read", findings_path.display()))?;
        for (row, _) in parse_metrics(&text, &findings_path)? {
            let s = |k: &str| row.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            found.push((step(&row), s("finding"), s("meaning"), s("fix")));
        }
        FINDINGS.to_string()
    } else {
        let settings = config
            .as_ref()
            .map(super::recipe::health_settings)
            .unwrap_or_default();
        let mut watch = Watch::new(History::new(), settings, []);
        for row in &rows {
            for f in watch.push(numbers(row)) {
                let fix = f.trainer_advice();
                found.push((step(row), f.check.key().into(), f.meaning, fix));
            }
        }
        format!("the checks replayed over {METRICS} (the run wrote no {FINDINGS})")
    };
    let _ = writeln!(out, "\nFindings ({source}):");
    if found.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for (step, key, meaning, fix) in &found {
        let _ = writeln!(out, "  step {step}: {key}: {meaning} Try: {fix}.");
    }
    let files: Vec<String> = ["plots.png", "plots.svg"]
        .iter()
        .map(|f| dir.join(f))
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    let mut checkpoints: Vec<(u64, String)> = fs::read_dir(dir)
        .with_context(|| format!("{}: cannot list", dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("trainer_state.json").exists())
        .map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let order = name
                .strip_prefix("step_")
                .and_then(|n| n.parse().ok())
                .unwrap_or(u64::MAX);
            (order, name)
        })
        .collect();
    checkpoints.sort();
    let _ = writeln!(
        out,
        "\nPlots: {}\nCheckpoints: {}",
        if files.is_empty() {
            "none yet".into()
        } else {
            files.join(", ")
        },
        if checkpoints.is_empty() {
            "none yet".into()
        } else {
            checkpoints
                .into_iter()
                .map(|(_, n)| n)
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    Ok(out)
}
