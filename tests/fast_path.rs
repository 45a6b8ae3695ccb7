//! The CPU fast path against burn's own path ([`ppo_lens::cpu_fast`]): with each hand-written
//! kernel turned off in turn, and with all of them off, the tiny model's greedy rollout samples
//! the same tokens, and its logprobs, values, the gradient of a loss over a teacher-forced pass
//! and the parameters after a PPO update (clipped gradient norm, AdamW) agree to float
//! tolerance; each kernel took work in some run and none while it was off.
//!
//! One test function: the switches are process-wide, and this file is its own process.

mod common;

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use common::tiny::{alternating_batch, host_grads, host_params, tiny_model, tiny_prompts};
use ppo_lens::compute::{block_on, read_f32};
use ppo_lens::cpu_fast::adamw::AdamW;
use ppo_lens::cpu_fast::{self, Kernel};
use ppo_lens::ppo::REFERENCE;
use ppo_lens::ppo::losses::LossCoeffs;
use ppo_lens::ppo::update::{UpdateConfig, ppo_update};
use ppo_lens::rng::Rng;
use ppo_lens::rollout::generate::{response_outputs, rows_tensor};
use ppo_lens::rollout::{SamplingParams, rollout};

/// What one run computes, read back to the host.
struct Outputs {
    ids: Vec<Vec<u32>>,
    /// The rollout's logprobs and values, decoded step by step through the KV cache.
    decoded: Vec<f32>,
    /// The teacher-forced pass's logprobs and values.
    forward: Vec<f32>,
    /// The gradient of their masked sum, parameter by parameter.
    grads: Vec<f32>,
    /// The parameters after a PPO update on the rollout (the gradient norm clipped to 1, then
    /// AdamW's step), with made-up advantages.
    updated: Vec<f32>,
    /// The parameters before it.
    initial: Vec<f32>,
}

fn run() -> Outputs {
    let (prompts, eos, pad) = tiny_prompts(4, 7);
    let device = Device::flex().autodiff();
    let model = tiny_model(&device);
    let greedy = SamplingParams::new(1.0, 1, 1.0).unwrap();
    let r = block_on(rollout(
        &model.valid(),
        &prompts,
        &greedy,
        24,
        &[eos],
        pad,
        3,
        &mut Rng::new(11),
        &mut |_| {},
    ))
    .unwrap();
    let out = response_outputs(
        &model,
        rows_tensor(&r.ids, &device),
        rows_tensor(&r.attention_mask, &device),
        r.prompt_len,
        1.0,
    );
    let mask = Tensor::<2>::from_data(
        burn::tensor::TensorData::new(r.response_mask.concat(), [r.ids.len(), r.response_len()]),
        &device,
    );
    let mut forward = block_on(read_f32(out.logprobs.clone())).unwrap();
    forward.extend(block_on(read_f32(out.values.clone())).unwrap());
    let loss = ((out.logprobs + out.values) * mask).sum();
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let grads = host_grads(&model, &grads);
    let batch = alternating_batch(r.clone());
    let config = UpdateConfig {
        epochs: 1,
        mini_batch_size: 2,
        gradient_accumulation_steps: 1,
        max_grad_norm: Some(1.0),
        lr: 1e-3,
        value_bias_lr: None,
        temperature: 1.0,
        coeffs: LossCoeffs {
            clip_ratio: 0.2,
            clip_range_value: 0.2,
            vf_coef: 0.5,
            entropy_coeff: 0.01,
        },
        grpo: None,
    };
    let initial = host_params(&model);
    let mut optim = AdamW::new(0.01).init();
    let (updated, _) = block_on(ppo_update(
        model,
        &mut optim,
        &batch,
        &config,
        &REFERENCE,
        &mut Rng::new(0),
    ))
    .unwrap();
    Outputs {
        decoded: r
            .logprobs
            .concat()
            .into_iter()
            .chain(r.values.concat())
            .collect(),
        ids: r.ids,
        forward,
        grads,
        updated: host_params(&updated),
        initial,
    }
}

fn assert_close(what: &str, got: &[f32], want: &[f32], label: &str) {
    assert_eq!(got.len(), want.len(), "{label}: {what} lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-4 + 1e-3 * w.abs(),
            "{label}: {what}[{i}] = {g}, with every kernel on {w}"
        );
    }
}

#[test]
fn each_kernel_off_gives_burns_numbers_and_leaves_the_work_to_burn() {
    cpu_fast::only_without(&[]);
    let calls = || Kernel::ALL.map(cpu_fast::calls);
    let before = calls();
    let reference = run();
    let mut took = Kernel::ALL.map(|k| cpu_fast::calls(k) > before[k as usize]);
    assert!(
        reference.decoded.len() > 40,
        "too few tokens sampled to compare: {:?}",
        reference.ids
    );

    let mut offs: Vec<Vec<Kernel>> = Kernel::ALL.iter().map(|&k| vec![k]).collect();
    offs.push(Kernel::ALL.to_vec());
    for off in offs {
        cpu_fast::only_without(&off);
        let label = format!(
            "without {}",
            off.iter().map(|k| k.key()).collect::<Vec<_>>().join(", ")
        );
        let before = calls();
        let got = run();
        let after = calls();
        for k in Kernel::ALL {
            let i = k as usize;
            if off.contains(&k) {
                assert_eq!(after[i], before[i], "{label}: {} ran while off", k.key());
            } else if after[i] > before[i] {
                took[i] = true;
            }
        }
        assert_eq!(got.ids, reference.ids, "{label}: the greedy tokens differ");
        assert_close(
            "decoded logprobs and values",
            &got.decoded,
            &reference.decoded,
            &label,
        );
        assert_close(
            "teacher-forced logprobs and values",
            &got.forward,
            &reference.forward,
            &label,
        );
        assert_close("gradients", &got.grads, &reference.grads, &label);
        assert_close(
            "parameters after the update",
            &got.updated,
            &reference.updated,
            &label,
        );
        // The update's step itself, each parameter's change against its own size (a step of
        // about lr = 1e-3 would hide in the parameters' tolerance).
        assert_eq!(got.initial, reference.initial, "{label}: the same start");
        let step = |o: &Outputs| -> Vec<f32> {
            o.updated
                .iter()
                .zip(&o.initial)
                .map(|(u, i)| u - i)
                .collect()
        };
        let (got_step, want_step) = (step(&got), step(&reference));
        assert!(
            want_step.iter().any(|d| d.abs() > 1e-4),
            "the update moved nothing"
        );
        for (i, (g, w)) in got_step.iter().zip(&want_step).enumerate() {
            assert!(
                (g - w).abs() <= 2e-5 + 1e-2 * w.abs(),
                "{label}: the update's step on parameter {i} is {g}, with every kernel on {w}"
            );
        }
    }
    cpu_fast::only_without(&[]);
    for k in Kernel::ALL {
        assert!(
            took[k as usize],
            "{} never took any work: the switch is not tested",
            k.key()
        );
    }
}
