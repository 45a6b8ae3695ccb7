//! Benchmark of the PPO pieces on `Device::flex()` over a `[256, 1024]` batch.
//!
//! `cargo run --example bench_ppo` (add `-- --batch 64 --len 256 --iters 5` to change the size).
//! Prints the median wall time of each piece, reading the results back so that lazy work is
//! counted.

use std::time::Instant;

use burn::tensor::{Distribution, Tensor};
use ppo_lens::compute::{Compute, block_on, read_f32};
use ppo_lens::ppo::entropy::masked_entropy;
use ppo_lens::ppo::gae::{GaeParams, gae};
use ppo_lens::ppo::losses::{LossCoeffs, LossInputs, ppo_losses};
use ppo_lens::ppo::whiten::masked_whiten;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(|v| v.parse().expect("a whole number"))
            .unwrap_or(default)
    };
    let (batch, len, iters) = (arg("--batch", 256), arg("--len", 1024), arg("--iters", 7));
    let vocab = arg("--vocab", 64);
    let device = Compute::flex().device;
    let uniform = |lo: f64, hi: f64| {
        Tensor::<2>::random([batch, len], Distribution::Uniform(lo, hi), &device)
    };
    let rewards = uniform(-1.0, 1.0);
    let values = uniform(-1.0, 1.0);
    let mask = Tensor::<2>::ones([batch, len], &device);
    let logp_old = uniform(-3.0, 0.0);
    let logp_new = uniform(-3.0, 0.0);
    let logits = Tensor::<3>::random([batch, len, vocab], Distribution::Normal(0.0, 1.0), &device);
    let params = GaeParams::new(1.0, 0.95).unwrap();
    let coeffs = LossCoeffs {
        clip_ratio: 0.2,
        clip_range_value: 0.2,
        vf_coef: 0.1,
        entropy_coeff: 0.01,
    };

    println!(
        "PPO pieces on flex, [B, T] = [{batch}, {len}], vocab {vocab} for entropy; median of {iters}"
    );
    let time = |name: &str, f: &dyn Fn() -> f32| {
        let mut ms: Vec<f64> = (0..iters)
            .map(|_| {
                let start = Instant::now();
                std::hint::black_box(f());
                start.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        ms.sort_by(f64::total_cmp);
        println!("  {name:28} {:>9.2} ms", ms[ms.len() / 2]);
    };
    let first = |t: Tensor<2>| block_on(read_f32(t.narrow(0, 0, 1))).unwrap()[0];
    let one = |t: Tensor<1>| block_on(read_f32(t)).unwrap()[0];

    time("gae (reverse sweep)", &|| {
        first(gae(rewards.clone(), values.clone(), mask.clone(), params).advantages)
    });
    time("masked_whiten", &|| {
        first(masked_whiten(rewards.clone(), mask.clone()))
    });
    time("entropy (from logits)", &|| {
        one(masked_entropy(logits.clone(), mask.clone()))
    });
    time("ppo_losses (no logits)", &|| {
        one(ppo_losses(
            LossInputs {
                logprobs_new: logp_new.clone(),
                logprobs_old: logp_old.clone(),
                advantages: rewards.clone(),
                values_new: values.clone(),
                values_old: rewards.clone(),
                returns: values.clone(),
                response_mask: mask.clone(),
                logits: None,
                token_entropy: None,
            },
            coeffs,
        )
        .total)
    });
}
