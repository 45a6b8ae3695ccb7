//! Rollouts against the teacher-forced pass, EOS handling, and seeding.

mod common;

use burn::tensor::Device;
use common::tiny::{tiny_model, tiny_prompts};
use ppo_lens::compute::{Compute, block_on, read_f32};
use ppo_lens::model::{Precision, Qwen2Config, Qwen2Model, ValueHeadInit, init_random};
use ppo_lens::rng::Rng;
use ppo_lens::rollout::generate::{ResponseOutputs, rows_tensor};
use ppo_lens::rollout::{Rollout, SamplingParams, response_outputs, rollout};

const VOCAB: usize = 48;
const PAD: u32 = 0;

fn model() -> Qwen2Model {
    let config = Qwen2Config::new(VOCAB, 32, 48, 2, 4, 2, false).unwrap();
    init_random(
        &config,
        5,
        0.3,
        ValueHeadInit::Normal { std: 0.5 },
        Precision::F32,
        &Device::flex(),
    )
    .unwrap()
}

fn prompts() -> Vec<Vec<u32>> {
    vec![vec![3, 9, 14, 7, 22], vec![5, 6], vec![40, 41, 42]]
}

fn run(model: &Qwen2Model, eos: &[u32], seed: u64, max_new: usize) -> Rollout {
    run_with(
        model,
        SamplingParams::new(0.8, 0, 1.0).unwrap(),
        eos,
        seed,
        max_new,
    )
}

fn run_with(
    model: &Qwen2Model,
    params: SamplingParams,
    eos: &[u32],
    seed: u64,
    max_new: usize,
) -> Rollout {
    let mut steps: Vec<Vec<u32>> = Vec::new();
    let r = block_on(rollout(
        model,
        &prompts(),
        &params,
        max_new,
        eos,
        PAD,
        5,
        &mut Rng::new(seed),
        &mut |ids| steps.push(ids.to_vec()),
    ))
    .unwrap();
    // Every step was shown as it was sampled: the ids the rollout kept, column by column.
    assert_eq!(steps.len(), r.response_len());
    for (t, step) in steps.iter().enumerate() {
        let column: Vec<u32> = r.ids.iter().map(|row| row[r.prompt_len + t]).collect();
        assert_eq!(step, &column, "step {t}");
    }
    r
}

/// One teacher-forced pass over a rollout's sequences, at the rollout's temperature 0.8.
fn teacher_forced(model: &Qwen2Model, r: &Rollout) -> ResponseOutputs {
    let device = Device::flex();
    response_outputs(
        model,
        rows_tensor(&r.ids, &device),
        rows_tensor(&r.attention_mask, &device),
        r.prompt_len,
        0.8,
    )
}

#[test]
fn teacher_forced_pass_reproduces_the_rollout_logprobs_and_values() {
    let model = model();
    let r = run(&model, &[1, 2], 7, 12);
    let out = teacher_forced(&model, &r);
    let lp = block_on(read_f32(out.logprobs)).unwrap();
    let vs = block_on(read_f32(out.values)).unwrap();
    let rl = r.response_len();
    let mut worst: f32 = 0.0;
    let mut real = 0;
    for b in 0..3 {
        for t in 0..rl {
            if r.response_mask[b][t] > 0.0 {
                real += 1;
                worst = worst.max((lp[b * rl + t] - r.logprobs[b][t]).abs());
                worst = worst.max((vs[b * rl + t] - r.values[b][t]).abs());
            }
        }
    }
    assert!(real >= 3, "some tokens were generated");
    assert!(
        worst < 1e-4, // f32 on the device vs f64 on the host for the sampled logprob
        "teacher-forced pass differs from the rollout by {worst:e}"
    );
}

#[test]
fn eos_stays_in_the_mask_and_pads_follow() {
    let model = model();
    // Half the vocabulary ends a response, so rows stop at different steps.
    let eos: Vec<u32> = (1..VOCAB as u32).step_by(2).collect();
    let r = run(&model, &eos, 3, 20);
    assert_eq!(r.prompt_len, 5);
    for b in 0..3 {
        let resp = &r.ids[b][r.prompt_len..];
        let n = r.response_mask[b].iter().filter(|&&m| m > 0.0).count();
        assert!(
            r.response_mask[b][..n].iter().all(|&m| m == 1.0),
            "mask is a prefix"
        );
        if r.finished[b] {
            assert!(eos.contains(&resp[n - 1]), "the last real token is EOS");
            assert!(
                resp[..n - 1].iter().all(|id| !eos.contains(id)),
                "only one EOS"
            );
            assert!(resp[n..].iter().all(|&id| id == PAD), "pads after EOS");
            assert!(r.logprobs[b][n..].iter().all(|&x| x == 0.0));
        } else {
            assert_eq!(n, r.response_len());
        }
        assert_eq!(r.response_ids(b), resp[..n].to_vec());
        // Left padding in the prompt is masked, the response mask carries on in attention_mask.
        let pad = r.prompt_len - prompts()[b].len();
        assert!(r.attention_mask[b][..pad].iter().all(|&m| m == 0));
        assert!(
            r.attention_mask[b][pad..r.prompt_len]
                .iter()
                .all(|&m| m == 1)
        );
        assert_eq!(r.top[b][0].len(), 5);
    }
    assert!(r.finished.iter().any(|&f| f));
}

#[test]
fn the_same_seed_gives_the_same_rollout() {
    let model = model();
    assert_eq!(run(&model, &[1], 11, 8), run(&model, &[1], 11, 8));
    assert_ne!(run(&model, &[1], 11, 8).ids, run(&model, &[1], 12, 8).ids);
}

#[test]
fn bad_rollout_requests_are_errors() {
    let model = model();
    let params = SamplingParams::new(1.0, 0, 1.0).unwrap();
    let err = block_on(rollout(
        &model,
        &[vec![]],
        &params,
        4,
        &[1],
        PAD,
        3,
        &mut Rng::new(0),
        &mut |_| {},
    ))
    .unwrap_err();
    assert!(err.contains("at least one token"), "{err}");
    let err = block_on(rollout(
        &model,
        &[vec![1]],
        &params,
        0,
        &[1],
        PAD,
        3,
        &mut Rng::new(0),
        &mut |_| {},
    ))
    .unwrap_err();
    assert!(err.contains("max_new_tokens"), "{err}");
}

/// top-k and top-p through a real rollout: every sampled id is among its step's k most likely
/// and inside its nucleus, read from the step's own logits (one teacher-forced pass at the same
/// temperature), not from anything the sampler reported.
#[test]
fn every_sampled_id_lies_in_its_steps_top_k_and_nucleus() {
    let model = model();
    for (k, p) in [(3, 0.5), (0, 0.5), (3, 1.0)] {
        let params = SamplingParams::new(0.8, k, p).unwrap();
        let r = run_with(&model, params, &[], 21, 16);
        let out = teacher_forced(&model, &r);
        let logits = block_on(read_f32(out.logits)).unwrap();
        let rl = r.response_len();
        let mut checked = 0;
        for b in 0..r.ids.len() {
            for t in 0..rl {
                if r.response_mask[b][t] == 0.0 {
                    continue;
                }
                let row = &logits[(b * rl + t) * VOCAB..(b * rl + t + 1) * VOCAB];
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let weights: Vec<f64> = row.iter().map(|&x| ((x - max) as f64).exp()).collect();
                let total: f64 = weights.iter().sum();
                let mut order: Vec<usize> = (0..VOCAB).collect();
                order.sort_by(|&i, &j| weights[j].total_cmp(&weights[i]));
                let id = r.ids[b][r.prompt_len + t] as usize;
                let rank = order.iter().position(|&i| i == id).unwrap();
                // The probability of every id ranked above it: the nucleus keeps an id while
                // the mass before it is below p.
                let before: f64 = order[..rank].iter().map(|&i| weights[i] / total).sum();
                if k > 0 {
                    assert!(rank < k, "k {k}, p {p}: row {b} t {t} sampled rank {rank}");
                }
                assert!(
                    before < p as f64 + 1e-5,
                    "k {k}, p {p}: row {b} t {t}: {before} of the mass ranks above the sampled id"
                );
                checked += 1;
            }
        }
        assert!(checked >= 30, "k {k}, p {p}: only {checked} tokens");
    }
}

/// The tiny model's rollout with the KV cache through burn's GPU kernels (wgpu; lavapipe's
/// Vulkan CPU device where there is no GPU) samples what flex samples when sampling is greedy
/// (top-k 1, so the temperature does not matter), with every logprob and value within 1e-4.
#[test]
fn the_tiny_models_greedy_rollout_on_wgpu_matches_flex() {
    let wgpu = block_on(Compute::wgpu()).unwrap_or_else(|err| {
        panic!(
            "no wgpu device ({err}). Without a GPU, wgpu needs a Vulkan CPU device: install \
             Debian's mesa-vulkan-drivers (scripts/test.sh does)."
        )
    });
    let (prompts, eos, pad) = tiny_prompts(4, 7);
    let eos = [eos];
    let greedy = SamplingParams::new(1.0, 1, 1.0).unwrap();
    let roll = |device: &Device| {
        let model = tiny_model(device);
        let mut rng = Rng::new(11);
        block_on(rollout(
            &model,
            &prompts,
            &greedy,
            24,
            &eos,
            pad,
            3,
            &mut rng,
            &mut |_| {},
        ))
        .unwrap()
    };
    let (flex, gpu) = (roll(&Device::flex()), roll(&wgpu.device));
    assert_eq!(
        flex.ids, gpu.ids,
        "the greedy tokens differ between flex and wgpu"
    );
    assert_eq!(flex.response_mask, gpu.response_mask);
    assert!(
        flex.response_mask.iter().flatten().sum::<f32>() > 20.0,
        "too few tokens sampled to compare: {:?}",
        flex.response_mask
    );
    for (what, a, b) in [
        ("logprob", &flex.logprobs, &gpu.logprobs),
        ("value", &flex.values, &gpu.values),
    ] {
        for (row, (x, y)) in a.iter().zip(b).enumerate() {
            for (t, (x, y)) in x.iter().zip(y).enumerate() {
                if flex.response_mask[row][t] > 0.0 {
                    assert!(
                        (x - y).abs() <= 1e-4,
                        "response {row} token {t}: {what} {x} on flex, {y} on wgpu"
                    );
                }
            }
        }
    }
}
