//! `ppo-lens train`: the PPO (or GRPO) loop on a config file, with metrics, plots and checkpoints.
//!
//! Each step: pick `rollout.batch_size` responses' worth of problems (divided by the member's
//! `group_size`), collect experience with the current policy
//! (rollout, GSM8K scores, reference logprobs, token rewards, GAE, whitening), run the update,
//! adapt the KL coefficient, append one row to `metrics.jsonl`. With a critic-free `algorithm`
//! (`grpo`, `dr_grpo`, `dapo`, `rloo`: each prompt sampled its section's `group_size` times;
//! `reinforce`) the update uses advantages from the scores and that member's objective
//! (src/ppo/family.rs; the same loop otherwise). Every `save_every` steps and at
//! the end a checkpoint and the plots are written; Ctrl-C finishes the running step, saves, and
//! exits.
//!
//! A checkpoint directory is a Hugging Face model directory (`config.json`, `model.safetensors`,
//! `tokenizer.json`, `value_head.safetensors`) plus `optimizer.burnpack` (AdamW's moments, keyed
//! by parameter ids derived from tensor names) and `trainer_state.json` (the step, the random
//! generator's state, the KL coefficient). Everything the next step depends on is there, so
//! `--resume` continues bit for bit on the CPU.

use std::fs;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::tensor::Bytes;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Map, Value, json};

use super::config::{DataSource, TrainConfig, load_config};
use super::findings::FindingLog;
use super::model_dir::{
    CONFIG, TOKENIZER, VALUE_HEAD, WEIGHTS, differs, in_vocab, load_dir, open_device, stop_ids,
    write_dir_atomically,
};
use super::plots::write_plots;
use super::recipe::{health_settings, new_optimizer, optimizer_name, precisions, update_settings};
use super::run_files::{
    EFFECTIVE_CONFIG, METRICS, OPTIMIZER, TRAINER_STATE, TrainerState, checkpoints_to_replace,
    parse_metrics, write_file_atomically,
};
use crate::compute::block_on;
use crate::data::gsm_mini::gsm_mini;
use crate::data::gsm8k::{Problem, parse_gsm8k_jsonl};
use crate::model::chat::gsm8k_prompt;
use crate::model::{ValueHeadInit, save_model, save_value_head, weights::saved_config};
use crate::ppo::gae::GaeParams;
use crate::ppo::iteration::{ExperienceConfig, Task, collect_experience, metrics};
use crate::ppo::kl_control::KlController;
use crate::ppo::rewards::KlEstimator;
use crate::ppo::update::update_kept;
use crate::rng::Rng;
use crate::rollout::sampling::SamplingParams;

/// How a run ended.
#[derive(Clone, Debug, PartialEq)]
pub enum TrainOutcome {
    Finished {
        steps: usize,
        final_dir: PathBuf,
    },
    /// Ctrl-C: the checkpoint of the last finished step was written.
    Interrupted {
        step: usize,
        checkpoint: PathBuf,
    },
}

/// The problems of `data`, as the config asks.
fn load_problems(config: &TrainConfig) -> Result<Vec<Problem>> {
    let data = &config.data;
    match data.source {
        DataSource::GsmMini => Ok(gsm_mini(data.num_samples, config.training.seed)),
        DataSource::Gsm8k => {
            let path = data.path.as_ref().context("key `data.path` is needed")?;
            let text = fs::read_to_string(path)
                .with_context(|| format!("data.path: {}: cannot read", path.display()))?;
            let mut problems =
                parse_gsm8k_jsonl(&text, &path.display().to_string()).map_err(|e| anyhow!(e))?;
            if problems.len() < data.num_samples {
                bail!(
                    "key `data.num_samples` is {} but {} has only {} problems",
                    data.num_samples,
                    path.display(),
                    problems.len()
                );
            }
            problems.truncate(data.num_samples);
            Ok(problems)
        }
    }
}

/// `k` distinct indices below `n`, seeded (a partial Fisher-Yates shuffle).
fn pick(n: usize, k: usize, rng: &mut Rng) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    for i in 0..k {
        let j = i + rng.below(n - i);
        idx.swap(i, j);
    }
    idx.truncate(k);
    idx
}

/// Run `ppo-lens train`. `stop` is set by Ctrl-C. A fresh run (no `resume`) into an output
/// directory that holds an earlier run is refused unless `overwrite`, which removes the earlier
/// run's checkpoints first; a resume into an output directory that holds another run than the
/// checkpoint's is refused (`checkpoints_to_replace`).
pub fn train(
    config_path: &Path,
    overrides: &[String],
    resume: Option<&Path>,
    overwrite: bool,
    stop: Arc<AtomicBool>,
) -> Result<TrainOutcome> {
    let config = load_config(config_path, overrides)?;
    let out = config.training.output_dir.clone();
    // The earlier run's checkpoints --overwrite replaces, removed only once every check below
    // has passed.
    let replaced = checkpoints_to_replace(&out, resume, overwrite)?;
    // The model to start from must not be one of the checkpoints --overwrite removes.
    let model = fs::canonicalize(&config.model.path).unwrap_or(config.model.path.clone());
    if let Some(dir) =
        (replaced.iter()).find(|d| fs::canonicalize(d).is_ok_and(|d| model.starts_with(d)))
    {
        bail!(
            "key `model.path`: {} lies in {}, which --overwrite would remove: start from a copy \
             elsewhere",
            config.model.path.display(),
            dir.display()
        );
    }
    // The CPU kernels' switches are the process's: this run owns it.
    let kernels_off: &[crate::cpu_fast::Kernel] = if config.training.fast_cpu {
        &[]
    } else {
        &crate::cpu_fast::Kernel::ALL
    };
    crate::cpu_fast::only_without(kernels_off);
    if crate::exercises::ENABLED {
        // Say up front whose code this run trains with, and whether it passes its checks.
        crate::native::exercises_report()
            .0
            .iter()
            .for_each(|line| eprintln!("{line}"));
    }
    // The five functions the iteration and the update run: the student's where written.
    let functions = crate::exercises::functions();
    let (t, r, p) = (&config.training, &config.rollout, &config.ppo);
    fs::create_dir_all(&out).with_context(|| format!("{}: cannot create", out.display()))?;

    let compute = open_device(&t.device, "key `training.device` is")?;
    let (reference_precision, policy_precision) = precisions(&t.dtype);
    let value_init = if config.model.value_head_std > 0.0 {
        ValueHeadInit::Normal {
            std: config.model.value_head_std,
        }
    } else {
        ValueHeadInit::Zeros
    };
    // The frozen reference is always the starting model, also when resuming.
    let reference = load_dir(
        &config.model.path,
        reference_precision,
        value_init,
        t.seed,
        &compute.device,
    )
    .context("key `model.path`")?;
    let tokenizer = reference.tokenizer.with_context(|| {
        format!(
            "key `model.path`: {} has no {TOKENIZER}",
            config.model.path.display()
        )
    })?;
    let tokenizer_json = reference.tokenizer_json.unwrap_or_default();
    let reference = reference.model;
    let vocab = reference.config.vocab_size;
    let (eos_ids, pad_id) = stop_ids(
        &tokenizer,
        &reference.config.eos_token_ids,
        vocab,
        &config.model.path,
    )?;

    let problems = load_problems(&config)?;
    // Prompts per step: every response its own under PPO and REINFORCE, the member's
    // `group_size` responses each under the group members.
    let group_size = config.group_size();
    if r.batch_size / group_size > problems.len() {
        bail!(
            "key `rollout.batch_size` is {} ({} prompts) but there are only {} problems (data.num_samples)",
            r.batch_size,
            r.batch_size / group_size,
            problems.len()
        );
    }
    let tasks: Vec<Task> = problems
        .iter()
        .map(|problem| {
            let prompt_ids = tokenizer.encode(&gsm8k_prompt(&problem.question))?;
            if let Some(&id) = prompt_ids.iter().max() {
                in_vocab(id, vocab, &config.model.path, "a prompt's token")?;
            }
            Ok(Task {
                prompt_ids,
                reference_answer: problem
                    .final_answer()
                    .with_context(|| format!("no #### answer in {:?}", problem.answer))?,
            })
        })
        .collect::<Result<_>>()?;

    // The policy: the starting model, or a checkpoint with its optimizer and state.
    let train_device = compute.device.clone().autodiff();
    let optimizer_name = optimizer_name(p);
    let (mut policy, mut optim, state) = match resume {
        None => {
            let loaded = load_dir(
                &config.model.path,
                policy_precision,
                value_init,
                t.seed,
                &train_device,
            )?;
            let state = TrainerState {
                step: 0,
                rng_state: Rng::new(t.seed).state(),
                kl_coeff: p.kl_coeff,
                optimizer: optimizer_name.into(),
            };
            (loaded.model, new_optimizer(p), state)
        }
        Some(dir) => {
            let state_path = dir.join(TRAINER_STATE);
            let text = fs::read_to_string(&state_path).with_context(|| {
                format!(
                    "--resume {}: cannot read {TRAINER_STATE} (is this a checkpoint directory?)",
                    dir.display()
                )
            })?;
            let state: TrainerState = serde_json::from_str(&text)
                .map_err(|e| anyhow!("{}: {e}", state_path.display()))?;
            if state.optimizer != optimizer_name {
                bail!(
                    "key `ppo.use_8bit_adam` is {} but the checkpoint {} holds {} state: resume \
                     with the setting it was trained with",
                    p.use_8bit_adam,
                    dir.display(),
                    state.optimizer
                );
            }
            // A fixed coefficient is the run's setting, not state: one that differs from the
            // checkpoint's would silently be replaced by it (the adaptive one is the
            // controller's state, and carries on from the checkpoint).
            if p.adaptive_kl.is_none() && state.kl_coeff != p.kl_coeff {
                bail!(
                    "key `ppo.kl_coeff` is {} but the checkpoint {} was trained with {}: resume \
                     with the value it was trained with",
                    p.kl_coeff,
                    dir.display(),
                    state.kl_coeff
                );
            }
            let loaded = load_dir(dir, policy_precision, value_init, t.seed, &train_device)?;
            if !loaded.has_value_head {
                bail!("--resume {}: no {VALUE_HEAD}", dir.display());
            }
            // The frozen reference comes from model.path: the checkpoint must be that model.
            if let Some((key, ours, theirs)) = differs(&loaded.model.config, &reference.config) {
                bail!(
                    "--resume {}: its config.json has {key} {ours} but model.path {} (the frozen \
                     reference) has {theirs}: resume with the model.path it was trained from",
                    dir.display(),
                    config.model.path.display()
                );
            }
            let opt_path = dir.join(OPTIMIZER);
            let bytes = fs::read(&opt_path)
                .with_context(|| format!("{}: cannot read", opt_path.display()))?;
            let optim: ModuleOptimizer = new_optimizer(p)
                .from_bytes(Bytes::from_bytes_vec(bytes))
                .map_err(|e| anyhow!("{}: not an optimizer state: {e:?}", opt_path.display()))?;
            if state.step > t.total_ppo_steps {
                bail!(
                    "--resume {}: the checkpoint is at step {} but training.total_ppo_steps is {}",
                    dir.display(),
                    state.step,
                    t.total_ppo_steps
                );
            }
            (loaded.model, optim, state)
        }
    };

    // Every check has passed: --overwrite removes the earlier run's checkpoints now (its
    // metrics.jsonl is started over below).
    for dir in &replaced {
        fs::remove_dir_all(dir)
            .with_context(|| format!("--overwrite: cannot remove {}", dir.display()))?;
    }
    // Written once the checkpoint to resume from has passed its checks: a refused resume
    // leaves the run's effective_config.yaml as it was.
    write_file_atomically(&out.join(EFFECTIVE_CONFIG), config.to_yaml().as_bytes())?;

    let estimator =
        KlEstimator::parse(&p.kl_estimator).map_err(|e| anyhow!("ppo.kl_estimator: {e}"))?;
    let mut kl = match &p.adaptive_kl {
        None => KlController::fixed(state.kl_coeff),
        Some(a) => KlController::adaptive(state.kl_coeff, a.target, a.horizon)
            .map_err(|e| anyhow!("ppo.adaptive_kl: {e}"))?,
    };
    let mut rng = Rng::from_state(state.rng_state);
    let settings = update_settings(&config)?;
    let (member, group, update) = (settings.member, settings.group, settings.update);
    let sampling = SamplingParams::new(r.temperature, r.top_k, r.top_p)
        .map_err(|e| anyhow!("rollout: {e}"))?;
    let gae = GaeParams::new(p.gamma as f32, p.lam as f32).map_err(|e| anyhow!("ppo: {e}"))?;

    // metrics.jsonl: a fresh run starts it over; a resumed run keeps the rows up to its step.
    let metrics_path = out.join(METRICS);
    // The kept rows are copied as text: a JSON number read and written again may change in its
    // last digit.
    let (mut rows, kept) = if resume.is_some() && metrics_path.exists() {
        let text = fs::read_to_string(&metrics_path)
            .with_context(|| format!("{}: cannot read", metrics_path.display()))?;
        let mut kept_rows = Vec::new();
        let mut kept = String::new();
        for (row, line) in parse_metrics(&text, &metrics_path)? {
            if row.get("step").and_then(Value::as_u64) <= Some(state.step as u64) {
                kept.push_str(line);
                kept.push('\n');
                kept_rows.push(row);
            }
        }
        (kept_rows, kept)
    } else {
        (Vec::new(), String::new())
    };
    write_file_atomically(&metrics_path, kept.as_bytes())?;
    let mut metrics_file = fs::OpenOptions::new()
        .append(true)
        .open(&metrics_path)
        .with_context(|| format!("{}: cannot open", metrics_path.display()))?;
    // findings.jsonl: each run-health finding once, at the step it first appears.
    let mut health = FindingLog::open(
        &out,
        resume.map(|_| state.step),
        &rows,
        health_settings(&config),
    )?;

    let save = |policy: &crate::model::Qwen2Model,
                optim: &ModuleOptimizer,
                state: &TrainerState,
                rows: &[Map<String, Value>],
                name: &str|
     -> Result<PathBuf> {
        let dir = out.join(name);
        let model = policy.valid();
        let weights = save_model(&model)?;
        let head = save_value_head(&model)?;
        let model_config = saved_config(&model).to_json();
        let optimizer = optim
            .into_bytes()
            .map_err(|e| anyhow!("cannot serialise the optimizer: {e:?}"))?;
        let state_json = serde_json::to_string_pretty(state)?;
        write_dir_atomically(
            &dir,
            &[
                (CONFIG, model_config.as_bytes()),
                (WEIGHTS, &weights),
                (VALUE_HEAD, &head),
                (TOKENIZER, &tokenizer_json),
                (OPTIMIZER, &optimizer),
                (TRAINER_STATE, state_json.as_bytes()),
            ],
        )?;
        write_plots(rows, &out)?;
        Ok(dir)
    };

    let total = t.total_ppo_steps;
    let bar = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(total as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} step {pos}/{len} [{bar:30}] {msg}  {elapsed_precise} (eta {eta})",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar.set_position(state.step as u64);
        Some(bar)
    } else {
        None
    };
    let say = |line: String| match &bar {
        Some(bar) => bar.println(line),
        None => eprintln!("{line}"),
    };
    say(format!(
        "ppo-lens train: {} {} on {}, {} problems, steps {}..={total}, output {}",
        config.algorithm.family().name(),
        config.model.path.display(),
        compute.kind.label(),
        tasks.len(),
        state.step + 1,
        out.display()
    ));

    let mut step = state.step;
    while step < total {
        let started = Instant::now();
        step += 1;
        // `batch_size / group_size` prompts, each `group_size` times in consecutive rows.
        let batch: Vec<Task> = pick(tasks.len(), r.batch_size / group_size, &mut rng)
            .into_iter()
            .flat_map(|i| std::iter::repeat_n(tasks[i].clone(), group_size))
            .collect();
        let experience_config = ExperienceConfig {
            sampling,
            max_new_tokens: r.max_new_tokens,
            eos_ids: eos_ids.clone(),
            pad_id,
            n_top: 0,
            gae,
            kl_coeff: kl.value as f32,
            kl_estimator: estimator,
            whiten_advantages: p.whiten_advantages,
            group,
            member,
            score_advantages: settings.score_advantages,
        };
        let experience = block_on(collect_experience(
            &policy.valid(),
            &reference,
            &tokenizer,
            &batch,
            &experience_config,
            functions,
            &mut rng,
        ))
        .map_err(|e| anyhow!("step {step}: rollout: {e}"))?;
        let rollout_s = started.elapsed().as_secs_f64();
        // Under DAPO's dynamic sampling the batch holds only the groups whose rewards differ.
        let ppo_batch = experience.batch();
        if ppo_batch.ids.is_empty() {
            say(format!(
                "step {step}: every group's rewards were equal; dynamic sampling left nothing to \
                 update on"
            ));
        }
        let (updated, stats) = block_on(update_kept(
            policy, &mut optim, &ppo_batch, &update, functions, &mut rng,
        ))
        .map_err(|e| anyhow!("step {step}: update: {e}"))?;
        policy = updated;
        kl.update(experience.kl_mean(), batch.len());

        let mut row = Map::new();
        row.insert("step".into(), json!(step));
        for (name, value) in metrics(&experience, &stats) {
            row.insert(name.into(), json!(value));
        }
        row.insert("time/rollout_s".into(), json!(rollout_s));
        row.insert("time/step_s".into(), json!(started.elapsed().as_secs_f64()));
        writeln!(metrics_file, "{}", Value::Object(row.clone()))
            .and_then(|()| metrics_file.flush())
            .with_context(|| format!("{}: cannot write", metrics_path.display()))?;
        for finding in health.step(step, &row)? {
            say(super::findings::say(step, &finding));
        }
        rows.push(row);

        if stats.skipped_steps > 0 {
            say(format!(
                "step {step}: {} of {} optimizer steps skipped: a loss or the gradient norm was NaN or infinite",
                stats.skipped_steps,
                stats.skipped_steps + stats.optimizer_steps
            ));
        }
        let summary = format!(
            "reward {:.3}  kl {:.3}  loss {:.4}  clip {:.3}",
            experience.reward_mean(),
            experience.kl_mean(),
            stats.loss_total,
            stats.policy_clip_frac
        );
        match &bar {
            Some(bar) => {
                bar.set_message(summary);
                bar.set_position(step as u64);
            }
            None => eprintln!("step {step}/{total}  {summary}"),
        }

        let state = TrainerState {
            step,
            rng_state: rng.state(),
            kl_coeff: kl.value,
            optimizer: optimizer_name.into(),
        };
        if stop.load(Ordering::SeqCst) && step < total {
            let dir = save(&policy, &optim, &state, &rows, &format!("step_{step}"))?;
            if let Some(bar) = &bar {
                bar.abandon();
            }
            return Ok(TrainOutcome::Interrupted {
                step,
                checkpoint: dir,
            });
        }
        if t.save_every > 0 && step % t.save_every == 0 && step < total {
            let dir = save(&policy, &optim, &state, &rows, &format!("step_{step}"))?;
            say(format!("step {step}: saved {}", dir.display()));
        }
        if step == total {
            let dir = save(&policy, &optim, &state, &rows, "final")?;
            if let Some(bar) = &bar {
                bar.finish();
            }
            if crate::exercises::ENABLED {
                say(crate::exercises::ran_summary());
            }
            say(format!(
                "done: {} (plots in {})",
                dir.display(),
                out.display()
            ));
            return Ok(TrainOutcome::Finished {
                steps: step,
                final_dir: dir,
            });
        }
    }
    // Resumed from the last step: nothing left to do but write the final directory again.
    let state = TrainerState {
        step,
        rng_state: rng.state(),
        kl_coeff: kl.value,
        optimizer: optimizer_name.into(),
    };
    let dir = save(&policy, &optim, &state, &rows, "final")?;
    Ok(TrainOutcome::Finished {
        steps: step,
        final_dir: dir,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_are_distinct_and_seeded() {
        let a = pick(10, 4, &mut Rng::new(3));
        let mut sorted = a.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 4);
        assert!(a.iter().all(|&i| i < 10));
        assert_eq!(a, pick(10, 4, &mut Rng::new(3)));
        let all = pick(5, 5, &mut Rng::new(1));
        let mut s = all.clone();
        s.sort_unstable();
        assert_eq!(s, vec![0, 1, 2, 3, 4]);
    }
}
