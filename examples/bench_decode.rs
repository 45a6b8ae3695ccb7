//! `ppo-lens bench`'s decode workload alone: the 50M model (or `--model tiny`), 4 rows, a
//! 16-token prefill, then 64 greedy steps through the KV cache, `--iters` times (5). Prints each
//! run's prefill, milliseconds per step and tokens/s counting the prefill, for `perf record` and
//! A/B runs (docs/performance.md). `--in-pool` runs it on one of rayon's threads, as the
//! `ppo-lens` binary runs every command.
//!
//! `cargo run --example bench_decode -- --iters 3 --in-pool`
use std::time::Instant;

use burn::tensor::{Device, Int, Tensor};
use ppo_lens::model::{Precision, ValueHeadInit, init_random};
use ppo_lens::native::bench::{DECODE_PROMPT, DECODE_TOKENS, FORWARD_BATCH, config};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let iters: usize = arg("--iters").map_or(5, |v| v.parse().expect("a whole number"));
    let name = arg("--model").unwrap_or_else(|| "50M".into());
    let device = Device::flex();
    let config = config(&name).expect("a known model");
    let model = init_random(
        &config,
        0,
        0.02,
        ValueHeadInit::Zeros,
        Precision::F32,
        &device,
    )
    .expect("a model");
    let b = FORWARD_BATCH;
    let ids: Vec<i64> = (0..b * DECODE_PROMPT)
        .map(|i| ((i * 7919) % config.vocab_size) as i64)
        .collect();
    let prompt = Tensor::<2, Int>::from_data(
        burn::tensor::TensorData::new(ids, [b, DECODE_PROMPT]),
        &device,
    );
    let in_pool = args.iter().any(|a| a == "--in-pool");
    let once = || {
        let started = Instant::now();
        let (out, mut cache) =
            model.prefill(prompt.clone(), Tensor::ones([b, DECODE_PROMPT], &device));
        let prefill = started.elapsed().as_secs_f64();
        let mut logits = out.logits;
        let mut n = 0i64;
        for _ in 0..DECODE_TOKENS {
            let next = logits.argmax(2).reshape([b, 1]);
            n += next.clone().into_data().iter::<i64>().sum::<i64>();
            let (out, c) = model.decode(next, cache);
            cache = c;
            logits = out.logits;
        }
        let all = started.elapsed().as_secs_f64();
        let steps = all - prefill;
        println!(
            "prefill {:.1} ms, {:.2} ms a step, {:.1} tokens/s in all ({n})",
            prefill * 1e3,
            steps * 1e3 / DECODE_TOKENS as f64,
            (b * DECODE_TOKENS) as f64 / all
        );
    };
    for _ in 0..iters {
        if in_pool {
            // The whole run on one of rayon's workers: its parallel products split from there.
            rayon::scope(|_| once());
        } else {
            once();
        }
    }
}
