//! Forward and KV-cache decode throughput of the model on flex, for a tiny and a ~50M-parameter
//! Qwen2 config with seeded random weights.
//!
//! `cargo run --example bench_model` prints one JSON line per workload;
//! `scripts/bench_model.sh` runs this and `scripts/bench_model_reference.py` (the same workloads
//! with PyTorch and transformers) and prints them side by side.
//!
//! - forward: one full pass over `[B, T] = [4, 128]` ids (logits and values), tokens/s = B*T / time.
//! - decode: prefill 16 tokens, then 64 greedy steps with the KV cache, each step's ids read back
//!   to the host as generation must; tokens/s = B*64 / time (prefill included).

use std::time::Instant;

use burn::tensor::{Int, Tensor, TensorData};
use ppo_lens::compute::Compute;
use ppo_lens::model::{Precision, Qwen2Config, Qwen2Model, ValueHeadInit, init_random};
use ppo_lens::rng::Rng;

const BATCH: usize = 4;
const FORWARD_LEN: usize = 128;
const PROMPT_LEN: usize = 16;
const NEW_TOKENS: usize = 64;

fn ids(
    rng: &mut Rng,
    vocab: usize,
    b: usize,
    t: usize,
    device: &burn::tensor::Device,
) -> Tensor<2, Int> {
    let data: Vec<i64> = (0..b * t).map(|_| rng.below(vocab) as i64).collect();
    Tensor::from_data(TensorData::new(data, [b, t]), device)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn greedy_decode(model: &Qwen2Model, prompt: Tensor<2, Int>) -> Vec<i64> {
    let [b, t] = prompt.dims();
    let device = prompt.device();
    let (out, mut cache) = model.prefill(prompt, Tensor::ones([b, t], &device));
    let mut logits = out.logits.narrow(1, t - 1, 1); // [B, 1, V]
    let mut generated = Vec::with_capacity(b * NEW_TOKENS);
    for _ in 0..NEW_TOKENS {
        let next = logits.argmax(2).reshape([b, 1]); // [B, 1]
        let host: Vec<i64> = next.clone().into_data().try_into_vec_as::<i64>().unwrap();
        generated.extend(host);
        let (out, c) = model.decode(next, cache);
        cache = c;
        logits = out.logits;
    }
    generated
}

fn main() {
    let device = Compute::flex().device;
    let args: Vec<String> = std::env::args().collect();
    let iters: usize = args
        .iter()
        .position(|a| a == "--iters")
        .and_then(|i| args.get(i + 1))
        .map_or(5, |v| v.parse().unwrap());
    let configs = [
        (
            "tiny",
            Qwen2Config::new(96, 64, 128, 2, 4, 2, true).unwrap(),
        ),
        (
            "50M",
            Qwen2Config::new(32_000, 512, 1536, 10, 8, 4, true).unwrap(),
        ),
    ];
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    for (name, config) in configs {
        let params = config.num_parameters();
        let model = init_random(
            &config,
            0,
            0.02,
            ValueHeadInit::Zeros,
            Precision::F32,
            &device,
        )
        .unwrap();
        let mut rng = Rng::new(1);

        let input = ids(&mut rng, config.vocab_size, BATCH, FORWARD_LEN, &device);
        let mask = Tensor::<2, Int>::ones([BATCH, FORWARD_LEN], &device);
        let run_forward = || {
            let out = model.forward(input.clone(), mask.clone(), false);
            // Read one number of each output so that lazy work is counted.
            let _ = out.logits.narrow(1, FORWARD_LEN - 1, 1).sum().into_data();
            let _ = out.values.sum().into_data();
        };
        run_forward(); // warm-up
        let forward_s = median(
            (0..iters)
                .map(|_| {
                    let s = Instant::now();
                    run_forward();
                    s.elapsed().as_secs_f64()
                })
                .collect(),
        );

        let prompt = ids(&mut rng, config.vocab_size, BATCH, PROMPT_LEN, &device);
        greedy_decode(&model, prompt.clone()); // warm-up
        let decode_s = median(
            (0..iters.min(3))
                .map(|_| {
                    let s = Instant::now();
                    std::hint::black_box(greedy_decode(&model, prompt.clone()));
                    s.elapsed().as_secs_f64()
                })
                .collect(),
        );
        println!(
            "{{\"impl\": \"ppo-lens flex\", \"config\": \"{name}\", \"params\": {params}, \"threads\": {threads}, \
             \"forward_tokens_per_s\": {:.1}, \"decode_tokens_per_s\": {:.1}}}",
            (BATCH * FORWARD_LEN) as f64 / forward_s,
            (BATCH * NEW_TOKENS) as f64 / decode_s
        );
    }
}
