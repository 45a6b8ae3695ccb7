//! The PPO update on a real (tiny, random) model: ratio 1 on the first pass, the direction of
//! the update, the global gradient norm against a direct computation, gradient accumulation,
//! NaN steps skipped.

mod common;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{AdamWConfig, GradientsParams, SgdConfig};
use burn::tensor::{Device, Tensor, TensorData};
use common::tiny::{alternating_batch, host_grads, host_params};
use ppo_lens::compute::{block_on, read_f32};
use ppo_lens::model::{Precision, Qwen2Config, Qwen2Model, ValueHeadInit, init_random};
use ppo_lens::ppo::losses::{LossCoeffs, LossInputs, Pieces, REFERENCE_PIECES, ppo_losses};
use ppo_lens::ppo::policy_loss::policy_loss;
use ppo_lens::ppo::update::{PpoBatch, UpdateConfig, UpdateStats, ppo_update};
use ppo_lens::ppo::{Functions, REFERENCE};
use ppo_lens::rng::Rng;
use ppo_lens::rollout::generate::{response_outputs, rows_tensor};
use ppo_lens::rollout::{SamplingParams, rollout};

const COEFFS: LossCoeffs = LossCoeffs {
    clip_ratio: 0.2,
    clip_range_value: 0.2,
    vf_coef: 0.5,
    entropy_coeff: 0.01,
};

fn model() -> Qwen2Model {
    let config = Qwen2Config::new(40, 32, 48, 2, 4, 2, false).unwrap();
    init_random(
        &config,
        21,
        0.2,
        ValueHeadInit::Normal { std: 0.1 },
        Precision::F32,
        &Device::flex().autodiff(),
    )
    .unwrap()
}

/// A rollout of 4 prompts x 6 tokens (no EOS, so every row is full length) with made-up
/// advantages: +1 on even rows, -1 on odd rows; returns = old values + advantages.
fn batch(model: &Qwen2Model) -> PpoBatch {
    let prompts = vec![
        vec![1, 2, 3],
        vec![4, 5, 6],
        vec![7, 8, 9],
        vec![10, 11, 12],
    ];
    let params = SamplingParams::new(1.0, 0, 1.0).unwrap();
    let r = block_on(rollout(
        &model.valid(),
        &prompts,
        &params,
        6,
        &[],
        0,
        3,
        &mut Rng::new(4),
        &mut |_| {},
    ))
    .unwrap();
    alternating_batch(r)
}

fn config(epochs: usize, mini: usize, accum: usize, lr: f64) -> UpdateConfig {
    UpdateConfig {
        epochs,
        mini_batch_size: mini,
        gradient_accumulation_steps: accum,
        max_grad_norm: Some(1.0),
        lr,
        value_bias_lr: None,
        temperature: 1.0,
        coeffs: COEFFS,
        grpo: None,
    }
}

/// One `ppo_update` with a fresh AdamW (no weight decay, so only the PPO loss moves weights).
fn update(model: Qwen2Model, b: &PpoBatch, config: &UpdateConfig) -> (Qwen2Model, UpdateStats) {
    let mut optim = AdamWConfig::new().with_weight_decay(0.0).init();
    block_on(ppo_update(
        model,
        &mut optim,
        b,
        config,
        &REFERENCE,
        &mut Rng::new(0),
    ))
    .unwrap()
}

fn logprobs(model: &Qwen2Model, b: &PpoBatch) -> Vec<f32> {
    let d = model.device();
    let out = response_outputs(
        &model.valid(),
        rows_tensor(&b.ids, &d),
        rows_tensor(&b.attention_mask, &d),
        b.prompt_len,
        1.0,
    );
    block_on(read_f32(out.logprobs)).unwrap()
}

#[test]
fn first_pass_has_ratio_one_and_the_update_follows_the_advantages() {
    let model = model();
    let b = batch(&model);
    let before = logprobs(&model, &b);
    let (model, stats) = update(model, &b, &config(1, 4, 1, 1e-2));
    assert_eq!(stats.optimizer_steps, 1);
    // The first step scores the rollout's own tokens with the rollout's own weights.
    assert!(
        stats.approx_kl.abs() < 1e-5,
        "approx_kl {}",
        stats.approx_kl
    );
    assert_eq!(stats.policy_clip_frac, 0.0);
    assert!(stats.grad_norm > 0.0);
    let after = logprobs(&model, &b);
    let (mut up, mut down) = (0.0, 0.0);
    for row in 0..4 {
        let delta: f32 = (0..6)
            .map(|t| after[row * 6 + t] - before[row * 6 + t])
            .sum();
        if row % 2 == 0 {
            up += delta
        } else {
            down += delta
        }
    }
    assert!(
        up > 0.0 && down < 0.0,
        "A > 0 rows moved by {up}, A < 0 rows by {down}"
    );
}

/// The update runs the functions it is handed: a table whose policy-loss piece (exercise 1)
/// reads every advantage with its sign flipped moves each row the other way from the
/// reference's, through the reference's mini-batch losses (exercise 5) built on that piece.
#[test]
fn the_update_runs_the_functions_it_is_handed() {
    const FLIPPED: Functions = Functions {
        pieces: Pieces {
            policy_loss: |new, old, advantages, mask, eps| {
                policy_loss(new, old, -advantages, mask, eps)
            },
            ..REFERENCE_PIECES
        },
        ..REFERENCE
    };
    let model = model();
    let b = batch(&model);
    let before = logprobs(&model, &b);
    // Summed logprob change of the A > 0 rows and of the A < 0 rows.
    let moved = |functions: &Functions| {
        let mut optim = AdamWConfig::new().with_weight_decay(0.0).init();
        let config = config(1, 4, 1, 1e-2);
        let (after, _) = block_on(ppo_update(
            model.clone(),
            &mut optim,
            &b,
            &config,
            functions,
            &mut Rng::new(0),
        ))
        .unwrap();
        let after = logprobs(&after, &b);
        let mut sums = [0f32; 2];
        for (i, (a, b)) in after.iter().zip(&before).enumerate() {
            sums[(i / 6) % 2] += a - b;
        }
        sums
    };
    let [up, down] = moved(&REFERENCE);
    assert!(up > 0.0 && down < 0.0, "reference: {up}, {down}");
    let [up, down] = moved(&FLIPPED);
    assert!(up < 0.0 && down > 0.0, "flipped advantages: {up}, {down}");
}

/// The gradient of the whole batch's PPO loss at `model`, computed directly (one backward),
/// read back parameter by parameter.
fn direct_grads(model: &Qwen2Model, b: &PpoBatch) -> Vec<f32> {
    // Direct computation: one backward over the whole batch, the norm summed on the host in f64.
    let d = model.device();
    let out = response_outputs(
        model,
        rows_tensor(&b.ids, &d),
        rows_tensor(&b.attention_mask, &d),
        b.prompt_len,
        1.0,
    );
    let rows = |m: &Vec<Vec<f32>>| Tensor::<2>::from_data(TensorData::new(m.concat(), [4, 6]), &d);
    let losses = ppo_losses(
        LossInputs {
            logprobs_new: out.logprobs,
            logprobs_old: rows(&b.old_logprobs),
            advantages: rows(&b.advantages),
            values_new: out.values,
            values_old: rows(&b.old_values),
            returns: rows(&b.returns),
            response_mask: rows(&b.response_mask),
            logits: Some(out.logits),
            token_entropy: out.entropy,
        },
        COEFFS,
    );
    let grads = GradientsParams::from_grads(losses.total.backward(), model);
    host_grads(model, &grads)
}

#[test]
fn grad_norm_is_the_global_norm_before_clipping() {
    let model = model();
    let b = batch(&model);
    let want = direct_grads(&model, &b)
        .iter()
        .map(|&g| (g as f64).powi(2))
        .sum::<f64>()
        .sqrt();

    let (_, stats) = update(model, &b, &config(1, 4, 1, 1e-3));
    assert!(
        ((stats.grad_norm as f64) - want).abs() < 1e-4 * want.max(1.0),
        "{} vs {want}",
        stats.grad_norm
    );
    assert!(
        want > 1.0,
        "the norm {want} should exceed max_grad_norm so that clipping is exercised"
    );
}

/// The step the update takes is the clipped gradient: with plain SGD (whose step, unlike
/// AdamW's, scales with the gradient) every parameter moves by −lr · g · max / ‖g‖ when the
/// global norm ‖g‖ is above max_grad_norm, and by −lr · g when it is not.
#[test]
fn the_applied_step_is_the_gradient_scaled_down_to_max_grad_norm() {
    let model = model();
    let b = batch(&model);
    let g = direct_grads(&model, &b);
    let norm = g.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    let before = host_params(&model);
    let lr = 1e-2;
    for max in [Some(0.25 * norm), Some(4.0 * norm), None] {
        let mut config = config(1, 4, 1, lr);
        config.max_grad_norm = max.map(|m| m as f32);
        let mut optim = SgdConfig::new().init();
        let (after, stats) = block_on(ppo_update(
            model.clone(),
            &mut optim,
            &b,
            &config,
            &REFERENCE,
            &mut Rng::new(0),
        ))
        .unwrap();
        assert_eq!(stats.optimizer_steps, 1);
        let scale = match max {
            Some(m) if norm > m => m / (norm + 1e-6),
            _ => 1.0,
        };
        let after = host_params(&after);
        assert_eq!(after.len(), g.len());
        // f32 parameters near 0.2 round to about 2e-8; the gradients agree to about 1e-5.
        let off: Vec<(usize, f64, f64)> = (0..g.len())
            .map(|i| {
                (
                    i,
                    after[i] as f64 - before[i] as f64,
                    -lr * g[i] as f64 * scale,
                )
            })
            .filter(|&(_, moved, want)| (moved - want).abs() > 2e-7 + 1e-3 * want.abs())
            .collect();
        assert!(
            off.is_empty(),
            "max_grad_norm {max:?} (‖g‖ = {norm}): {} of {} parameters did not move by \
             −lr·g·{scale}; the first (index, moved, expected): {:?}",
            off.len(),
            g.len(),
            off[0]
        );
    }
}

#[test]
fn accumulating_two_half_batches_equals_one_full_batch() {
    let b = batch(&model());
    let run = |mini, accum| {
        let (m, s) = update(model(), &b, &config(1, mini, accum, 1e-2));
        (logprobs(&m, &b), s)
    };
    let (full, s_full) = run(4, 1);
    let (halves, s_halves) = run(2, 2);
    assert_eq!((s_full.optimizer_steps, s_halves.optimizer_steps), (1, 1));
    assert!(
        (s_full.grad_norm - s_halves.grad_norm).abs() < 1e-4 * s_full.grad_norm,
        "{} vs {}",
        s_full.grad_norm,
        s_halves.grad_norm
    );
    let worst = full
        .iter()
        .zip(&halves)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-4, "models differ by {worst}");
    // Without accumulation the same data takes two steps.
    let (_, s) = update(model(), &b, &config(3, 2, 1, 1e-2));
    assert_eq!(s.optimizer_steps, 6);
}

#[test]
fn a_nan_loss_skips_the_step_and_leaves_the_model_alone() {
    let model = model();
    let mut b = batch(&model);
    b.advantages[1][2] = f32::NAN;
    let before = logprobs(&model, &b);
    let (model, stats) = update(model, &b, &config(1, 4, 1, 1e-2));
    assert_eq!((stats.optimizer_steps, stats.skipped_steps), (0, 1));
    assert_eq!(logprobs(&model, &b), before);
}

#[test]
fn bad_update_settings_are_errors() {
    let model = model();
    let b = batch(&model);
    let mut optim = AdamWConfig::new().init();
    let err = block_on(ppo_update(
        model,
        &mut optim,
        &b,
        &config(1, 5, 1, 1e-2),
        &REFERENCE,
        &mut Rng::new(0),
    ))
    .unwrap_err();
    assert!(err.contains("mini_batch_size must be in 1..=4"), "{err}");
}

/// All float weights of a model, flattened in visiting order.
fn weights(model: &Qwen2Model) -> Vec<f32> {
    struct Collect(Vec<f32>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0
                .extend(block_on(read_f32(param.val().inner().reshape([-1]))).unwrap());
        }
    }
    let mut c = Collect(Vec::new());
    model.valid().visit(&mut c);
    c.0
}

/// `ppo_update` with `optim`, shuffled by `Rng::new(seed)`: the updated model.
fn update_with(
    model: Qwen2Model,
    optim: &mut burn::optim::ModuleOptimizer,
    b: &PpoBatch,
    cfg: &UpdateConfig,
    seed: u64,
) -> Qwen2Model {
    block_on(ppo_update(
        model,
        optim,
        b,
        cfg,
        &REFERENCE,
        &mut Rng::new(seed),
    ))
    .unwrap()
    .0
}

/// `ppo.use_8bit_adam`: eight optimizer steps with 8-bit states move the weights almost exactly
/// as AdamW with f32 states does, and the states survive a save and load bit for bit.
#[test]
fn eight_bit_adamw_tracks_adamw_and_its_state_round_trips() {
    use ppo_lens::adamw8bit::AdamW8bit;
    let start = model();
    let b = batch(&start);
    let cfg = config(4, 2, 1, 1e-2); // 8 optimizer steps
    let run = |mut optim| update_with(start.clone(), &mut optim, &b, &cfg, 0);
    let w0 = weights(&start);
    let full = weights(&run(AdamWConfig::new()
        .with_weight_decay(0.0)
        .with_epsilon(1e-5)
        .init()));
    let eight = weights(&run(AdamW8bit::new(0.0).init()));
    // The two updates, as vectors: their directions agree and their sizes match.
    let d_full: Vec<f64> = full.iter().zip(&w0).map(|(a, b)| (a - b) as f64).collect();
    let d_eight: Vec<f64> = eight.iter().zip(&w0).map(|(a, b)| (a - b) as f64).collect();
    let dot: f64 = d_full.iter().zip(&d_eight).map(|(a, b)| a * b).sum();
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let cosine = dot / (norm(&d_full) * norm(&d_eight));
    let ratio = norm(&d_eight) / norm(&d_full);
    println!("8-bit vs f32 states over 8 steps: cosine {cosine:.4}, size ratio {ratio:.4}");
    assert!(cosine > 0.99, "update directions differ: cosine {cosine}");
    assert!(
        (0.95..1.05).contains(&ratio),
        "update sizes differ: ratio {ratio}"
    );

    // Saving and loading the 8-bit state changes nothing: continuing from the bytes equals
    // continuing in memory.
    let mut optim = AdamW8bit::new(0.01).init();
    let once = update_with(start.clone(), &mut optim, &b, &cfg, 0);
    let bytes = optim.into_bytes().unwrap();
    let mut loaded = AdamW8bit::new(0.01).init().from_bytes(bytes).unwrap();
    let a = update_with(once.clone(), &mut optim, &b, &cfg, 1);
    let c = update_with(once, &mut loaded, &b, &cfg, 1);
    assert!(
        weights(&a) == weights(&c),
        "the reloaded 8-bit state differs"
    );
}

/// `value_bias_lr`: one AdamW step moves the value head's bias by its own learning rate (Adam's
/// first step is about `lr` times the gradient's sign) and every other weight by at most the
/// policy's; without it, the bias moves by the policy's too.
#[test]
fn the_value_heads_bias_takes_its_own_learning_rate() {
    let m = model();
    let mut b = batch(&m);
    // Every return one above its value: the bias's gradient is far from 0 (with the batch's
    // ±1 advantages as returns it would cancel).
    b.returns = b
        .old_values
        .iter()
        .map(|row| row.iter().map(|v| v + 1.0).collect())
        .collect();
    let before = weights(&m);
    // The bias is the last parameter visited (the value head's, after its weight).
    assert_eq!(
        before[before.len() - 1],
        block_on(read_f32(
            m.v_head.summary.bias.as_ref().unwrap().val().inner()
        ))
        .unwrap()[0]
    );
    let step = |bias_lr: Option<f64>| {
        let cfg = UpdateConfig {
            value_bias_lr: bias_lr,
            ..config(1, 4, 1, 1e-4)
        };
        let (after, stats) = update(m.clone(), &b, &cfg);
        assert_eq!(stats.optimizer_steps, 1);
        let moved: Vec<f32> = weights(&after)
            .iter()
            .zip(&before)
            .map(|(a, b)| (a - b).abs())
            .collect();
        let (bias, rest) = moved.split_last().unwrap();
        let most = rest.iter().copied().fold(0f32, f32::max);
        (*bias, most)
    };
    let (bias, rest) = step(Some(1e-2));
    assert!((bias - 1e-2).abs() < 1e-4, "the bias moved by {bias}");
    assert!(
        rest <= 1e-4 * 1.001 && rest > 5e-5,
        "other weights moved by up to {rest}"
    );
    let (bias, rest) = step(None);
    assert!((bias - 1e-4).abs() < 2e-6, "the bias moved by {bias}");
    assert!(rest <= 1e-4 * 1.001, "other weights moved by up to {rest}");
}
