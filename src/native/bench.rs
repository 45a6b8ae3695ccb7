//! `ppo-lens bench`: the model and one PPO iteration timed on flex (the CPU backend), with the
//! workloads `scripts/bench_reference.py` runs on PyTorch and transformers, so that
//! `scripts/bench.sh` can print the two side by side as ratios.
//!
//! Workloads, for one model config with seeded random weights:
//! - **forward**: one pass over `[4, 128]` ids (logits and values); tokens/s = 512 / time.
//! - **decode**: prefill 16 tokens, then 64 greedy steps through the KV cache, each step's ids
//!   read back to the host as generation must; tokens/s = 4 * 64 / time, prefill included.
//! - **PPO iteration** on 8 random prompts of 16 tokens, split by phase:
//!   - rollout: 32 tokens sampled per prompt at temperature 1 (no EOS, so every row runs to the
//!     end), keeping each token's logprob and the value of the state before it;
//!   - reference: the frozen model's teacher-forced logprobs, then KL-penalised token rewards
//!     (score 1 on even rows, 0 on odd ones, kl_coeff 0.05, k1);
//!   - gae: reverse GAE (gamma 1, lambda 0.95) and whitening;
//!   - update: 2 epochs over mini-batches of 4 (4 AdamW steps), value coefficient 0.1, entropy
//!     coefficient 0.01, clip 0.2, gradient norm clipped to 1.
//! - **peak memory**: the process's peak resident set (`VmHWM`) over each workload, reset before
//!   it through `/proc/self/clear_refs` (Linux; absent elsewhere).
//!
//! Every timing is the median of `--iters` runs after one warm-up run.

use std::time::Instant;

use anyhow::{Result, anyhow, bail};
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::compute::{block_on, read_f32};
use crate::cpu_fast::adamw::AdamW;
use crate::model::{Precision, Qwen2Config, Qwen2Model, ValueHeadInit, init_random};
use crate::ppo::REFERENCE;
use crate::ppo::gae::{GaeParams, gae};
use crate::ppo::iteration::{rows_f32, to_rows};
use crate::ppo::losses::LossCoeffs;
use crate::ppo::rewards::{KlEstimator, token_rewards};
use crate::ppo::update::{PpoBatch, UpdateConfig, ppo_update};
use crate::ppo::whiten::masked_whiten;
use crate::rng::Rng;
use crate::rollout::generate::{response_outputs, rollout, rows_tensor};
use crate::rollout::sampling::SamplingParams;

pub const FORWARD_BATCH: usize = 4;
pub const FORWARD_LEN: usize = 128;
pub const DECODE_PROMPT: usize = 16;
pub const DECODE_TOKENS: usize = 64;
pub const PPO_ROLLOUTS: usize = 8;
pub const PPO_PROMPT: usize = 16;
pub const PPO_RESPONSE: usize = 32;

/// The configs the benchmark knows: the page's tiny model and a ~50M-parameter Qwen2.
pub fn config(name: &str) -> Result<Qwen2Config> {
    let config = match name {
        // www/models/tiny/config.json
        "tiny" => Qwen2Config::new(104, 64, 192, 2, 4, 2, true),
        "50M" => Qwen2Config::new(32_000, 512, 1536, 10, 8, 4, true),
        other => bail!("unknown bench model `{other}`: use tiny or 50M"),
    };
    config.map_err(|e| anyhow!("{e}"))
}

/// One model's results.
#[derive(Clone, Debug, Default)]
pub struct BenchResult {
    pub model: String,
    pub params: usize,
    pub threads: usize,
    pub forward_tokens_per_s: f64,
    pub decode_tokens_per_s: f64,
    pub rollout_ms: f64,
    pub reference_ms: f64,
    pub gae_ms: f64,
    pub update_ms: f64,
    pub forward_peak_mib: Option<f64>,
    pub decode_peak_mib: Option<f64>,
    pub iteration_peak_mib: Option<f64>,
    /// The hand-written kernels that were off ([`crate::cpu_fast`]), by name.
    pub without: Vec<String>,
}

impl BenchResult {
    pub fn iteration_ms(&self) -> f64 {
        self.rollout_ms + self.reference_ms + self.gae_ms + self.update_ms
    }

    /// One JSON line, the format `scripts/bench_reference.py` prints too.
    pub fn json(&self) -> String {
        let mib = |x: Option<f64>| x.map_or("null".to_string(), |v| format!("{v:.1}"));
        format!(
            "{{\"impl\": \"ppo-lens flex\", \"model\": \"{}\", \"params\": {}, \"threads\": {}, \
             \"forward_tokens_per_s\": {:.1}, \"decode_tokens_per_s\": {:.1}, \
             \"rollout_ms\": {:.1}, \"reference_ms\": {:.1}, \"gae_ms\": {:.2}, \
             \"update_ms\": {:.1}, \"iteration_ms\": {:.1}, \"forward_peak_mib\": {}, \
             \"decode_peak_mib\": {}, \"iteration_peak_mib\": {}, \"without\": {:?}}}",
            self.model,
            self.params,
            self.threads,
            self.forward_tokens_per_s,
            self.decode_tokens_per_s,
            self.rollout_ms,
            self.reference_ms,
            self.gae_ms,
            self.update_ms,
            self.iteration_ms(),
            mib(self.forward_peak_mib),
            mib(self.decode_peak_mib),
            mib(self.iteration_peak_mib),
            self.without,
        )
    }

    /// A few lines for people.
    pub fn table(&self) -> String {
        let mib = |x: Option<f64>| x.map_or("n/a".to_string(), |v| format!("{v:.0} MiB"));
        format!(
            "{} ({} parameters, flex, {} threads{})\n  \
             forward [{FORWARD_BATCH}, {FORWARD_LEN}]     {:>10.1} tokens/s   peak {}\n  \
             decode {FORWARD_BATCH} x {DECODE_TOKENS} (KV cache) {:>10.1} tokens/s   peak {}\n  \
             PPO iteration            {:>10.1} ms         peak {}\n    \
             rollout {PPO_ROLLOUTS} x {PPO_RESPONSE}          {:>10.1} ms\n    \
             reference + rewards    {:>10.1} ms\n    \
             gae + whitening        {:>10.2} ms\n    \
             update (4 AdamW steps) {:>10.1} ms",
            self.model,
            self.params,
            self.threads,
            if self.without.is_empty() {
                String::new()
            } else {
                format!(", without {}", self.without.join(", "))
            },
            self.forward_tokens_per_s,
            mib(self.forward_peak_mib),
            self.decode_tokens_per_s,
            mib(self.decode_peak_mib),
            self.iteration_ms(),
            mib(self.iteration_peak_mib),
            self.rollout_ms,
            self.reference_ms,
            self.gae_ms,
            self.update_ms,
        )
    }
}

/// The process's peak resident set in MiB since the last [`reset_peak`] (Linux).
pub fn peak_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Resets the peak resident set to the current one (Linux 4.0 and later).
pub fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Runs `f` once to warm up, then `iters` times; the median seconds and the peak memory.
fn timed(iters: usize, mut f: impl FnMut() -> Result<()>) -> Result<(f64, Option<f64>)> {
    reset_peak();
    f()?;
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters.max(1) {
        let start = Instant::now();
        f()?;
        times.push(start.elapsed().as_secs_f64());
    }
    Ok((median(times), peak_mib()))
}

fn random_ids(rng: &mut Rng, vocab: usize, rows: usize, len: usize) -> Vec<Vec<u32>> {
    (0..rows)
        .map(|_| (0..len).map(|_| rng.below(vocab) as u32).collect())
        .collect()
}

/// Greedy decoding of `DECODE_TOKENS` tokens through the KV cache.
fn greedy_decode(model: &Qwen2Model, prompt: Tensor<2, Int>) -> Vec<i64> {
    let [b, t] = prompt.dims();
    let device = prompt.device();
    let (out, mut cache) = model.prefill(prompt, Tensor::ones([b, t], &device));
    let mut logits = out.logits; // [B, 1, V]
    let mut generated = Vec::with_capacity(b * DECODE_TOKENS);
    for _ in 0..DECODE_TOKENS {
        let next = logits.argmax(2).reshape([b, 1]);
        generated.extend(next.clone().into_data().iter::<i64>());
        let (out, c) = model.decode(next, cache);
        cache = c;
        logits = out.logits;
    }
    generated
}

/// Phase times of one PPO iteration, in ms.
#[derive(Clone, Copy, Debug, Default)]
struct Phases {
    rollout: f64,
    reference: f64,
    gae: f64,
    update: f64,
}

/// The PPO workload's settings.
pub fn update_config() -> UpdateConfig {
    UpdateConfig {
        epochs: 2,
        mini_batch_size: 4,
        gradient_accumulation_steps: 1,
        max_grad_norm: Some(1.0),
        lr: 1e-5,
        value_bias_lr: None,
        temperature: 1.0,
        coeffs: LossCoeffs {
            clip_ratio: 0.2,
            clip_range_value: 0.2,
            vf_coef: 0.1,
            entropy_coeff: 0.01,
        },
        grpo: None,
    }
}

/// One PPO iteration: returns the updated policy and the phase times.
async fn ppo_iteration(
    policy: Qwen2Model,
    optim: &mut ModuleOptimizer,
    reference: &Qwen2Model,
    prompts: &[Vec<u32>],
    rng: &mut Rng,
) -> Result<(Qwen2Model, Phases), String> {
    let mut phases = Phases::default();
    let config = update_config();
    let sampling = SamplingParams::new(config.temperature, 0, 1.0)?;

    let start = Instant::now();
    let rollout_policy = policy.valid();
    let ro = rollout(
        &rollout_policy,
        prompts,
        &sampling,
        PPO_RESPONSE,
        &[],
        0,
        0,
        rng,
        &mut |_| {},
    )
    .await?;
    phases.rollout = start.elapsed().as_secs_f64() * 1e3;

    let start = Instant::now();
    let device = reference.device();
    let b = prompts.len();
    let ids = rows_tensor(&ro.ids, &device);
    let attention = rows_tensor(&ro.attention_mask, &device);
    let ref_logprobs =
        response_outputs(reference, ids, attention, ro.prompt_len, config.temperature).logprobs;
    let rows = |m: &Vec<Vec<f32>>| rows_f32(m, &device);
    let mask = rows(&ro.response_mask);
    let scores: Vec<f32> = (0..b).map(|i| if i % 2 == 0 { 1.0 } else { 0.0 }).collect();
    let tr = token_rewards(
        Tensor::from_data(TensorData::new(scores, [b]), &device),
        rows(&ro.logprobs),
        ref_logprobs,
        mask.clone(),
        0.05,
        KlEstimator::K1,
    );
    // Read back, as the trainer does: the reference pass is then timed in this phase.
    read_f32(tr.rewards.clone()).await?;
    phases.reference = start.elapsed().as_secs_f64() * 1e3;

    let start = Instant::now();
    let g = gae(
        tr.rewards,
        rows(&ro.values),
        mask.clone(),
        GaeParams::new(1.0, 0.95)?,
    );
    let advantages = read_f32(masked_whiten(g.advantages, mask)).await?;
    let returns = read_f32(g.returns).await?;
    phases.gae = start.elapsed().as_secs_f64() * 1e3;
    let r = ro.response_len();

    let start = Instant::now();
    let batch = PpoBatch {
        prompt_len: ro.prompt_len,
        ids: ro.ids.clone(),
        attention_mask: ro.attention_mask.clone(),
        response_mask: ro.response_mask.clone(),
        old_logprobs: ro.logprobs.clone(),
        old_values: ro.values.clone(),
        ref_logprobs: ro.logprobs.clone(),
        advantages: to_rows(advantages, r),
        returns: to_rows(returns, r),
    };
    let (policy, stats) = ppo_update(policy, optim, &batch, &config, &REFERENCE, rng).await?;
    if stats.optimizer_steps != 4 {
        return Err(format!(
            "the update took {} optimizer steps, expected 4",
            stats.optimizer_steps
        ));
    }
    phases.update = start.elapsed().as_secs_f64() * 1e3;
    Ok((policy, phases))
}

/// Runs every workload on `model_name` (`tiny` or `50M`) on `device`.
pub fn run(model_name: &str, iters: usize, device: &Device) -> Result<BenchResult> {
    let config = config(model_name)?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let model = init_random(
        &config,
        0,
        0.02,
        ValueHeadInit::Zeros,
        Precision::F32,
        device,
    )
    .map_err(|e| anyhow!("{e}"))?;
    let mut rng = Rng::new(1);
    let mut result = BenchResult {
        model: model_name.to_string(),
        params: config.num_parameters(),
        threads,
        without: crate::cpu_fast::off()
            .into_iter()
            .map(|k| k.key().to_string())
            .collect(),
        ..BenchResult::default()
    };

    let ids = random_ids(&mut rng, config.vocab_size, FORWARD_BATCH, FORWARD_LEN);
    let input = rows_tensor(&ids, device);
    let mask = Tensor::<2, Int>::ones([FORWARD_BATCH, FORWARD_LEN], device);
    let (seconds, peak) = timed(iters, || {
        let out = model.forward(input.clone(), mask.clone(), false);
        // Read one number of each output so that all the work is done.
        block_on(read_f32(out.logits.narrow(1, FORWARD_LEN - 1, 1).sum()))
            .map_err(|e| anyhow!(e))?;
        block_on(read_f32(out.values.sum())).map_err(|e| anyhow!(e))?;
        Ok(())
    })?;
    result.forward_tokens_per_s = (FORWARD_BATCH * FORWARD_LEN) as f64 / seconds;
    result.forward_peak_mib = peak;

    let prompt = rows_tensor(
        &random_ids(&mut rng, config.vocab_size, FORWARD_BATCH, DECODE_PROMPT),
        device,
    );
    let (seconds, peak) = timed(iters.min(3), || {
        std::hint::black_box(greedy_decode(&model, prompt.clone()));
        Ok(())
    })?;
    result.decode_tokens_per_s = (FORWARD_BATCH * DECODE_TOKENS) as f64 / seconds;
    result.decode_peak_mib = peak;

    // The PPO iteration: the policy on the autodiff device, the frozen reference beside it.
    let reference = model;
    let mut policy = Some(
        init_random(
            &config,
            0,
            0.02,
            ValueHeadInit::Zeros,
            Precision::F32,
            &device.clone().autodiff(),
        )
        .map_err(|e| anyhow!("{e}"))?,
    );
    let mut optim: ModuleOptimizer = AdamW::new(0.0).init();
    let prompts = random_ids(&mut rng, config.vocab_size, PPO_ROLLOUTS, PPO_PROMPT);
    let mut runs: Vec<Phases> = Vec::new();
    reset_peak();
    for i in 0..=iters.min(3) {
        let current = policy
            .take()
            .expect("the policy is put back after each run");
        let (updated, phases) = block_on(ppo_iteration(
            current, &mut optim, &reference, &prompts, &mut rng,
        ))
        .map_err(|e| anyhow!("PPO iteration: {e}"))?;
        policy = Some(updated);
        if i > 0 {
            runs.push(phases); // the first run is the warm-up
        }
    }
    result.iteration_peak_mib = peak_mib();
    result.rollout_ms = median(runs.iter().map(|p| p.rollout).collect());
    result.reference_ms = median(runs.iter().map(|p| p.reference).collect());
    result.gae_ms = median(runs.iter().map(|p| p.gae).collect());
    result.update_ms = median(runs.iter().map(|p| p.update).collect());
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tiny_workloads_run_and_report_every_figure() {
        let r = run("tiny", 1, &Device::flex()).unwrap();
        assert_eq!(r.params, config("tiny").unwrap().num_parameters());
        assert!(r.forward_tokens_per_s > 0.0 && r.decode_tokens_per_s > 0.0);
        assert!(r.rollout_ms > 0.0 && r.reference_ms > 0.0 && r.update_ms > 0.0);
        let json: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
        assert_eq!(json["model"], "tiny");
        assert!(json["iteration_ms"].as_f64().unwrap() > 0.0);
        if cfg!(target_os = "linux") {
            assert!(r.iteration_peak_mib.unwrap() > 1.0);
        }
        assert!(r.table().contains("PPO iteration"));
    }

    #[test]
    fn an_unknown_model_is_named() {
        let err = config("7B").unwrap_err().to_string();
        assert!(err.contains("`7B`") && err.contains("tiny or 50M"), "{err}");
    }
}

/// `ppo-lens bench --each-kernel`: `model_name` with every hand-written kernel on, then with each
/// off in turn ([`crate::cpu_fast`]), with the two decoding kernels (few_rows, decode_step) off
/// together, and all off: decode tokens/s, the PPO iteration's ms and the peak memory side by
/// side, with what turning each off costs (on over off for tokens/s, off over on for ms: above
/// 1, the kernel helps). Each row runs in a process of its own (this program, `bench --json
/// --without ..`), so the peaks start afresh.
pub fn each_kernel(model_name: &str, iters: usize) -> Result<String> {
    use crate::cpu_fast::Kernel;
    let mut offs: Vec<Vec<Kernel>> = vec![Vec::new()];
    offs.extend(Kernel::ALL.map(|k| vec![k]));
    offs.push(vec![Kernel::FewRows, Kernel::DecodeStep]);
    offs.push(Kernel::ALL.to_vec());
    let exe = std::env::current_exe().map_err(|e| anyhow!("this program's path: {e}"))?;
    let mut results = Vec::with_capacity(offs.len());
    for off in &offs {
        let names: Vec<&str> = off.iter().map(|k| k.key()).collect();
        let output = std::process::Command::new(&exe)
            .args(["bench", "--json", "--models", model_name])
            .arg(format!("--iters={iters}"))
            .arg(format!("--without={}", names.join(",")))
            .output()
            .map_err(|e| anyhow!("running {}: {e}", exe.display()))?;
        if !output.status.success() {
            bail!(
                "bench --without={} failed: {}",
                names.join(","),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let line = String::from_utf8_lossy(&output.stdout);
        let json: serde_json::Value = serde_json::from_str(line.trim())
            .map_err(|e| anyhow!("bench --json printed `{}`: {e}", line.trim()))?;
        results.push(json);
    }
    let num = |j: &serde_json::Value, key: &str| j[key].as_f64().unwrap_or(f64::NAN);
    let mib = |j: &serde_json::Value, key: &str| {
        j[key]
            .as_f64()
            .map_or("n/a".to_string(), |v| format!("{v:.0}"))
    };
    let on = &results[0];
    let mut table = format!(
        "{model_name} ({} parameters, flex, {} threads): each hand-written kernel off in turn, each \
         row a process of its own\n\n\
         | off | decode tokens/s | cost | PPO iteration ms | cost | rollout / reference / update ms | peak MiB, decode / iteration |\n\
         |---|---:|---:|---:|---:|---|---|\n",
        num(on, "params"),
        num(on, "threads"),
    );
    for (off, r) in offs.iter().zip(&results) {
        let name = match off.len() {
            0 => "none (every kernel on)".to_string(),
            n if n == Kernel::ALL.len() => "all".to_string(),
            _ => off.iter().map(|k| k.key()).collect::<Vec<_>>().join(" + "),
        };
        table.push_str(&format!(
            "| {name} | {:.1} | {:.2}x | {:.1} | {:.2}x | {:.1} / {:.1} / {:.1} | {} / {} |\n",
            num(r, "decode_tokens_per_s"),
            num(on, "decode_tokens_per_s") / num(r, "decode_tokens_per_s"),
            num(r, "iteration_ms"),
            num(r, "iteration_ms") / num(on, "iteration_ms"),
            num(r, "rollout_ms"),
            num(r, "reference_ms"),
            num(r, "update_ms"),
            mib(r, "decode_peak_mib"),
            mib(r, "iteration_peak_mib"),
        ));
    }
    Ok(table)
}
