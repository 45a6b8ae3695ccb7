//! `ppo-lens bench-recipe`: a training config's recipe timed on its device, with a model of a
//! `config.json`'s shape and seeded random weights, so nothing is downloaded or written: the
//! shape of Qwen1.5-1.8B-Chat on a GPU (`scripts/gpu_run.sh`), a tiny one on the CPU (its test).
//!
//! - **decode**: the rollout's `rollout.batch_size` rows after a prompt of `--prompt-len` random
//!   tokens, `--decode-tokens` greedy steps through the KV cache in the frozen reference's
//!   precision, each step's ids read back as generation must (the prefill is not timed).
//!   Tokens/s, and the bytes each step must read from memory (every weight but the embedding
//!   table, of which a step reads B rows, plus the KV cache so far) per second: against the
//!   device's memory bandwidth (`--peak-gbps`), the fraction of it decoding uses.
//! - **update**: one PPO update as the config runs it: `ppo.epochs` passes over the batch in
//!   mini-batches of `ppo.mini_batch_size`, an optimizer step every
//!   `ppo.gradient_accumulation_steps`, the config's optimizer (`ppo.use_8bit_adam`) and
//!   precision (`training.dtype`), on `rollout.batch_size` rows of `--prompt-len` +
//!   `rollout.max_new_tokens` random tokens with random advantages and returns. Tokens/s counts
//!   every row of every epoch; the model FLOP utilisation is 6 x parameters x tokens/s (a forward
//!   and a backward pass) over the device's bf16 peak (`--peak-tflops`).
//!
//! Each is run once to warm up (kernels compile and tune on their first use), then timed once.
//! Peak memory is for the caller to watch from outside (nvidia-smi), or the process's resident
//! set on the CPU.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use burn::tensor::{Int, Tensor};
use serde::Serialize;

use super::bench::{peak_mib, reset_peak};
use super::config::{TrainConfig, load_config};
use super::model_dir::open_device;
use super::recipe::{new_optimizer, optimizer_name, precisions, update_settings};
use crate::compute::block_on;
use crate::model::{Qwen2Config, Qwen2Model, ValueHeadInit, init_random};
use crate::ppo::REFERENCE;
use crate::ppo::update::{PpoBatch, ppo_update};
use crate::rng::Rng;
use crate::rollout::generate::rows_tensor;

/// What to run beside the config.
#[derive(Clone, Debug)]
pub struct RecipeArgs {
    /// Prompt tokens before each response.
    pub prompt_len: usize,
    /// Greedy steps timed after the prefill.
    pub decode_tokens: usize,
    /// The device's dense bf16 peak, TFLOP/s, for the utilisation.
    pub peak_tflops: Option<f64>,
    /// The device's memory bandwidth, GB/s, for decoding's fraction of it.
    pub peak_gbps: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct DecodeResult {
    pub rows: usize,
    pub prompt_len: usize,
    pub steps: usize,
    pub seconds: f64,
    pub tokens_per_s: f64,
    /// Bytes a step reads on average: weights (less the embedding table) and the KV cache.
    pub bytes_per_step: f64,
    pub gb_per_s: f64,
    pub bandwidth_fraction: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct UpdateResult {
    pub rows: usize,
    pub tokens_per_row: usize,
    pub epochs: usize,
    pub mini_batch_size: usize,
    pub optimizer_steps: usize,
    pub optimizer: &'static str,
    pub seconds: f64,
    /// Every row of every epoch.
    pub tokens_per_s: f64,
    /// 6 x parameters x tokens/s.
    pub tflops: f64,
    pub mfu: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RecipeResult {
    pub device: String,
    pub dtype: String,
    pub parameters: usize,
    pub decode: DecodeResult,
    pub update: UpdateResult,
    /// The process's peak resident set (Linux), MiB: host memory, not the GPU's.
    pub host_peak_mib: Option<f64>,
    pub seconds: f64,
}

impl RecipeResult {
    /// A few lines for people.
    pub fn table(&self) -> String {
        let share = |x: Option<f64>, of: &str| {
            x.map_or(format!("(no --{of})"), |f| {
                format!("{:.1}% of the peak", 100.0 * f)
            })
        };
        let (d, u) = (&self.decode, &self.update);
        format!(
            "{} parameters, {} on {}\n  \
             decode {} rows x {} steps after {} prompt tokens: {:.1} tokens/s, {:.1} GB/s read, {}\n  \
             one PPO update, {} rows x {} tokens x {} epochs ({} optimizer steps, {}): {:.2} s, \
             {:.0} tokens/s, {:.1} TFLOP/s, {}",
            self.parameters,
            self.dtype,
            self.device,
            d.rows,
            d.steps,
            d.prompt_len,
            d.tokens_per_s,
            d.gb_per_s,
            share(d.bandwidth_fraction, "peak-gbps"),
            u.rows,
            u.tokens_per_row,
            u.epochs,
            u.optimizer_steps,
            u.optimizer,
            u.seconds,
            u.tokens_per_s,
            u.tflops,
            share(u.mfu, "peak-tflops"),
        )
    }
}

/// Runs the recipe of the config at `config_path` (with `overrides`) on a model of the shape in
/// `shape_path` (a Hugging Face `config.json`).
pub fn run(
    config_path: &Path,
    overrides: &[String],
    shape_path: &Path,
    args: &RecipeArgs,
) -> Result<RecipeResult> {
    let start = Instant::now();
    let config = load_config(config_path, overrides)?;
    let text = std::fs::read_to_string(shape_path)
        .with_context(|| format!("{}: cannot read", shape_path.display()))?;
    let shape = Qwen2Config::from_json(&text, &shape_path.display().to_string())
        .map_err(|e| anyhow!("{e}"))?;
    if args.prompt_len == 0 || args.decode_tokens == 0 {
        anyhow::bail!("--prompt-len and --decode-tokens must be at least 1");
    }
    let t = &config.training;
    let crate::compute::Compute { device, .. } =
        open_device(&t.device, "key `training.device` is")?;
    crate::cpu_fast::only_without(if t.fast_cpu {
        &[]
    } else {
        &crate::cpu_fast::Kernel::ALL
    });
    let (reference_precision, policy_precision) = precisions(&t.dtype);
    reset_peak();

    let reference = init_random(
        &shape,
        t.seed,
        0.02,
        ValueHeadInit::Zeros,
        reference_precision,
        &device,
    )
    .map_err(|e| anyhow!("{e}"))?;
    let decode = decode(&reference, &config, args)?;
    drop(reference);

    let policy = init_random(
        &shape,
        t.seed,
        0.02,
        ValueHeadInit::Zeros,
        policy_precision,
        &device.clone().autodiff(),
    )
    .map_err(|e| anyhow!("{e}"))?;
    let update = update(policy, &config, args)?;
    Ok(RecipeResult {
        device: t.device.clone(),
        dtype: t.dtype.clone(),
        parameters: shape.num_parameters(),
        decode,
        update,
        host_peak_mib: peak_mib(),
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Greedy steps after a prefill; the seconds of the steps only.
fn greedy_steps(model: &Qwen2Model, prompt: &Tensor<2, Int>, steps: usize) -> Result<f64> {
    let [b, t] = prompt.dims();
    let device = prompt.device();
    let (out, mut cache) = model.prefill(prompt.clone(), Tensor::ones([b, t], &device));
    let mut next = out.logits.argmax(2).reshape([b, 1]);
    // The prefill's work is done once its first token is read.
    std::hint::black_box(next.clone().into_data());
    let start = Instant::now();
    for _ in 0..steps {
        let (out, c) = model.decode(next, cache);
        cache = c;
        next = out.logits.argmax(2).reshape([b, 1]);
        std::hint::black_box(next.clone().into_data());
    }
    Ok(start.elapsed().as_secs_f64())
}

fn decode(model: &Qwen2Model, config: &TrainConfig, args: &RecipeArgs) -> Result<DecodeResult> {
    let c = &model.config;
    let rows = config.rollout.batch_size;
    let mut rng = Rng::new(config.training.seed);
    let ids: Vec<Vec<u32>> = (0..rows)
        .map(|_| {
            (0..args.prompt_len)
                .map(|_| rng.below(c.vocab_size) as u32)
                .collect()
        })
        .collect();
    let prompt = rows_tensor(&ids, &model.device());
    greedy_steps(model, &prompt, args.decode_tokens.min(4))?; // warm-up
    let seconds = greedy_steps(model, &prompt, args.decode_tokens)?;
    // Bytes per step: the weights in their stored dtype, less the embedding table unless it is
    // also the LM head; and the keys and values of every cached position, on average.
    let weight_bytes = model.param_dtype().size();
    let embedding = if c.tie_word_embeddings {
        0
    } else {
        c.vocab_size * c.hidden_size
    };
    let weights = (c.num_parameters() - embedding) * weight_bytes;
    let kv_per_position = 2
        * c.num_hidden_layers
        * rows
        * c.num_key_value_heads
        * c.head_dim()
        * model.dtype().size();
    // Step i (from 0) attends over the prompt, the i tokens before it and its own.
    let mean_positions = args.prompt_len as f64 + (args.decode_tokens as f64 + 1.0) / 2.0;
    let bytes_per_step = weights as f64 + kv_per_position as f64 * mean_positions;
    let gb_per_s = bytes_per_step * args.decode_tokens as f64 / seconds / 1e9;
    Ok(DecodeResult {
        rows,
        prompt_len: args.prompt_len,
        steps: args.decode_tokens,
        seconds,
        tokens_per_s: (rows * args.decode_tokens) as f64 / seconds,
        bytes_per_step,
        gb_per_s,
        bandwidth_fraction: args.peak_gbps.map(|peak| gb_per_s / peak),
    })
}

fn update(policy: Qwen2Model, config: &TrainConfig, args: &RecipeArgs) -> Result<UpdateResult> {
    let (rows, response) = (config.rollout.batch_size, config.rollout.max_new_tokens);
    let c = policy.config.clone();
    let mut rng = Rng::new(config.training.seed ^ 1);
    let len = args.prompt_len + response;
    let normal =
        |rng: &mut Rng| -> Vec<f32> { (0..response).map(|_| rng.normal() as f32).collect() };
    // Near a random model's uniform distribution, as the logprobs of a first rollout would be.
    let uniform = -(c.vocab_size as f32).ln();
    let batch = PpoBatch {
        prompt_len: args.prompt_len,
        ids: (0..rows)
            .map(|_| (0..len).map(|_| rng.below(c.vocab_size) as u32).collect())
            .collect(),
        attention_mask: vec![vec![1; len]; rows],
        response_mask: vec![vec![1.0; response]; rows],
        old_logprobs: vec![vec![uniform; response]; rows],
        old_values: vec![vec![0.0; response]; rows],
        ref_logprobs: vec![vec![uniform; response]; rows],
        advantages: (0..rows).map(|_| normal(&mut rng)).collect(),
        returns: (0..rows).map(|_| normal(&mut rng)).collect(),
    };
    let update_config = update_settings(config)?.update;
    let mut optim = new_optimizer(&config.ppo);
    // Warm-up: one epoch.
    let mut warm = update_config.clone();
    warm.epochs = 1;
    let (policy, _) = block_on(ppo_update(
        policy, &mut optim, &batch, &warm, &REFERENCE, &mut rng,
    ))
    .map_err(|e| anyhow!("the warm-up update: {e}"))?;
    let start = Instant::now();
    let (policy, stats) = block_on(ppo_update(
        policy,
        &mut optim,
        &batch,
        &update_config,
        &REFERENCE,
        &mut rng,
    ))
    .map_err(|e| anyhow!("the update: {e}"))?;
    // Every step's work is done once a parameter is read back.
    std::hint::black_box(policy.v_head.summary.weight.val().into_data());
    let seconds = start.elapsed().as_secs_f64();
    let tokens = (update_config.epochs * rows * len) as f64;
    let tflops = 6.0 * c.num_parameters() as f64 * tokens / seconds / 1e12;
    Ok(UpdateResult {
        rows,
        tokens_per_row: len,
        epochs: update_config.epochs,
        mini_batch_size: update_config.mini_batch_size,
        optimizer_steps: stats.optimizer_steps,
        optimizer: optimizer_name(&config.ppo),
        seconds,
        tokens_per_s: tokens / seconds,
        tflops,
        mfu: args.peak_tflops.map(|peak| tflops / peak),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = env!("CARGO_MANIFEST_DIR");

    /// config_debug's recipe on the tiny model's shape: every figure is there, and the counts
    /// and bytes follow from the shapes (worked out below).
    #[test]
    fn the_debug_recipe_runs_and_counts_what_it_did() {
        let root = Path::new(ROOT);
        let args = RecipeArgs {
            prompt_len: 8,
            decode_tokens: 4,
            peak_tflops: Some(1.0),
            peak_gbps: Some(10.0),
        };
        let r = run(
            &root.join("configs/config_debug.yaml"),
            &[],
            &root.join("www/models/tiny/config.json"),
            &args,
        )
        .unwrap();
        // Tiny: vocab 104, hidden 64, MLP 192, 2 layers, 4 heads of 16, 2 KV heads, tied.
        let shape = crate::native::bench::config("tiny").unwrap();
        // Counted by hand: embedding 104 x 64 = 6,656; each layer q 64x64 + 64, k and v
        // 64x32 + 32 each, o 64x64, MLP 3 x 64x192, two norms of 64 = 49,408; final norm 64.
        assert_eq!(r.parameters, 6_656 + 2 * 49_408 + 64);
        assert_eq!(r.parameters, shape.num_parameters());
        let (d, u) = (&r.decode, &r.update);
        assert_eq!((d.rows, d.prompt_len, d.steps), (32, 8, 4));
        // f32 weights, all read (the head is the embedding); K and V of 2 layers x 32 rows x
        // 2 heads x 16 dims x 4 bytes = 16,384 bytes a position, over 9 to 12 positions.
        let bytes = shape.num_parameters() as f64 * 4.0 + 16_384.0 * 10.5;
        assert!(
            (d.bytes_per_step - bytes).abs() < 1e-6,
            "{}",
            d.bytes_per_step
        );
        assert!(d.tokens_per_s > 0.0 && d.seconds > 0.0);
        let fraction = d.bandwidth_fraction.unwrap();
        assert!((fraction - d.gb_per_s / 10.0).abs() < 1e-12);
        // 2 epochs of 32 rows of 8 + 48 tokens; mini-batches of 8, a step each.
        assert_eq!((u.rows, u.tokens_per_row, u.epochs), (32, 56, 2));
        assert_eq!((u.mini_batch_size, u.optimizer_steps), (8, 8));
        assert_eq!(u.optimizer, "adamw");
        let tokens = 2.0 * 32.0 * 56.0;
        assert!((u.tokens_per_s * u.seconds - tokens).abs() < 1e-6);
        let tflops = 6.0 * r.parameters as f64 * tokens / u.seconds / 1e12;
        assert!((u.tflops - tflops).abs() < 1e-12 && u.mfu == Some(u.tflops));
        let json: serde_json::Value = serde_json::to_value(&r).unwrap();
        assert_eq!(json["update"]["optimizer_steps"], 8);
        assert!(r.table().contains("one PPO update"), "{}", r.table());
    }

    /// The shape scripts/gpu_run.sh times is Qwen1.5-1.8B-Chat's: the parameter count
    /// docs/training.md budgets for.
    #[test]
    fn the_packed_shape_is_qwen_1_8b() {
        let text = include_str!("../../configs/shapes/qwen1.5-1.8b-chat.json");
        let shape = Qwen2Config::from_json(text, "qwen1.5-1.8b-chat.json").unwrap();
        assert_eq!(shape.num_parameters(), 1_836_828_672);
        assert!(!shape.tie_word_embeddings);
    }

    #[test]
    fn a_missing_shape_is_named() {
        let root = Path::new(ROOT);
        let args = RecipeArgs {
            prompt_len: 8,
            decode_tokens: 4,
            peak_tflops: None,
            peak_gbps: None,
        };
        let err = run(
            &root.join("configs/config_debug.yaml"),
            &[],
            Path::new("/nonexistent/config.json"),
            &args,
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("/nonexistent/config.json"),
            "{err:#}"
        );
    }
}
