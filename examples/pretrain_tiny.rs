//! Makes the tiny model of the page and of `configs/config_debug.yaml`:
//! `cargo run --example pretrain_tiny [-- --out www/models/tiny --steps 1500]`.
//!
//! A word-level tokenizer from GSM-mini text, then supervised training on GSM-mini answers whose
//! final line is right only about half the time (see `ppo_lens::native::tiny`). Seeded: on one
//! machine and build the same settings give the same bytes. A rerun elsewhere gives other
//! weights of the same quality: sums inside the matrix products taken in another order (another
//! CPU's kernels) round differently, and 1500 steps grow that into visible differences (a rerun
//! on the project machine: 0.50 right, 0.48 a wrong number, 0.02 no answer). The
//! tokenizer and config.json come out byte for byte, and tests/tiny_model.rs checks them and the
//! recipe's first ten steps. The weights are written in F16 (`Pretrained::shipped_files`): the
//! page carries them in its wasm. Prints the loss, then how the model answers 128 unseen problems at
//! temperature 1: that is where PPO starts.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use ppo_lens::compute::block_on;
use ppo_lens::data::gsm_mini::gsm_mini;
use ppo_lens::model::chat::gsm8k_prompt;
use ppo_lens::model::tokenizer::TextTokenizer;
use ppo_lens::model::{Precision, ValueHeadInit};
use ppo_lens::native::model_dir::{CONFIG, TOKENIZER, WEIGHTS, load_dir, write_dir_atomically};
use ppo_lens::native::tiny::{PretrainConfig, pretrain};
use ppo_lens::reward::gsm8k::{GsmScore, gsm8k_reward};
use ppo_lens::rng::Rng;
use ppo_lens::rollout::{SamplingParams, rollout};

fn main() -> Result<()> {
    let mut out = PathBuf::from("www/models/tiny");
    let mut config = PretrainConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--out" => out = PathBuf::from(value()?),
            "--steps" => config.steps = value()?.parse().context("--steps")?,
            "--seed" => config.seed = value()?.parse().context("--seed")?,
            other => bail!("unknown argument {other}: expected --out DIR, --steps N, --seed N"),
        }
    }

    let start = std::time::Instant::now();
    let trained = block_on(pretrain(&config, |step, lr, loss| {
        println!("step {step:5}  lr {lr:.2e}  loss {loss:.4}");
    }))?;
    println!("trained in {:.0} s", start.elapsed().as_secs_f64());
    // No value head: the trainer and the page start their critic as the config says.
    let (weights, config_json) = trained.shipped_files()?;
    write_dir_atomically(
        &out,
        &[
            (CONFIG, config_json.as_bytes()),
            (WEIGHTS, &weights),
            (TOKENIZER, trained.tokenizer_json.as_bytes()),
        ],
    )?;
    println!("wrote {}", out.display());

    // How the model as written (weights in F16) answers problems it has not seen, sampled as
    // PPO will sample them.
    let model = load_dir(
        &out,
        Precision::F32,
        ValueHeadInit::Zeros,
        0,
        &Device::flex(),
    )?
    .model;
    let tokenizer = TextTokenizer::from_bytes(trained.tokenizer_json.as_bytes(), "tokenizer.json")?;
    let problems = gsm_mini(128, 12345);
    let prompts = problems
        .iter()
        .map(|p| tokenizer.encode(&gsm8k_prompt(&p.question)))
        .collect::<Result<Vec<_>, _>>()?;
    let eos = tokenizer.token_id("<|im_end|>").context("no <|im_end|>")?;
    let pad = tokenizer
        .token_id("<|endoftext|>")
        .context("no <|endoftext|>")?;
    let params = SamplingParams::new(1.0, 0, 1.0).map_err(anyhow::Error::msg)?;
    let r = block_on(rollout(
        &model,
        &prompts,
        &params,
        64,
        &[eos],
        pad,
        0,
        &mut Rng::new(1),
        &mut |_| {},
    ))
    .map_err(anyhow::Error::msg)?;
    let mut counts = [0usize; 3];
    for (b, problem) in problems.iter().enumerate() {
        let text = tokenizer.decode(&r.response_ids(b), true)?;
        let reference = problem.final_answer().context("answer")?;
        let score = gsm8k_reward(&text, &reference);
        counts[match score {
            GsmScore::Correct { .. } => 0,
            GsmScore::WrongNumber { .. } => 1,
            GsmScore::NoAnswer => 2,
        }] += 1;
        if b < 3 {
            println!("--- {score:?}\n{text}");
        }
    }
    let n = problems.len() as f64;
    println!(
        "on {} unseen problems at temperature 1: correct {:.2}, right format but wrong number {:.2}, no answer {:.2}; reward mean {:.3}",
        problems.len(),
        counts[0] as f64 / n,
        counts[1] as f64 / n,
        counts[2] as f64 / n,
        (counts[0] as f64 + 0.1 * counts[1] as f64) / n
    );
    Ok(())
}
