//! The PPO update (DESIGN.md step 5): for `epochs` passes over one rollout batch, shuffled into
//! mini-batches, one teacher-forced pass gives new logprobs, values and logits for every response
//! token at once; the clipped policy loss, the clipped value loss and the entropy bonus are
//! combined; gradients are accumulated over `gradient_accumulation_steps` mini-batches, clipped
//! to `max_grad_norm` by their global norm, and AdamW takes a step. With `grpo` set, GRPO's
//! objective replaces PPO's (same pass, same steps; see [`grpo_minibatch_losses`]).
//!
//! The model must live on an autodiff device (`device.autodiff()`).

use burn::lr_scheduler::module_lr_scheduler::{ModuleLearningRate, ModuleLrScheduler};
use burn::module::{Module, ModuleVisitor, Param, ParamGroup};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Int, Tensor, TensorData};

use super::clip_range::ClipRange;
use super::gae::{Gae, GaeParams, gae};
use super::grpo_loss::{GrpoCoeffs, grpo_loss};
use super::losses::{
    LossCoeffs, LossInputs, Losses, Pieces, REFERENCE_PIECES, ppo_losses_with,
    reference_masked_entropy,
};
use super::masked::masked_mean;
use super::sequence_loss::sequence_loss;
use crate::compute::{read_f32, yield_to_browser};
use crate::model::Qwen2Model;
use crate::rng::Rng;
use crate::rollout::generate::{response_outputs, rows_tensor};

/// What the update needs from one PPO iteration, rows `[N][..]`.
#[derive(Clone, Debug, PartialEq)]
pub struct PpoBatch {
    pub prompt_len: usize,
    /// `[N][P + R]` prompt and response ids; `attention_mask` the same shape.
    pub ids: Vec<Vec<u32>>,
    pub attention_mask: Vec<Vec<u8>>,
    /// `[N][R]`
    pub response_mask: Vec<Vec<f32>>,
    pub old_logprobs: Vec<Vec<f32>>,
    pub old_values: Vec<Vec<f32>>,
    /// The frozen reference's logprobs of the sampled tokens (GRPO's KL term).
    pub ref_logprobs: Vec<Vec<f32>>,
    /// Whitened advantages (PPO) or group-relative ones (GRPO).
    pub advantages: Vec<Vec<f32>>,
    pub returns: Vec<Vec<f32>>,
}

impl PpoBatch {
    /// The rows `rows`, in that order (DAPO's dynamic sampling keeps some groups).
    pub fn select(&self, rows: &[usize]) -> PpoBatch {
        fn pick<T: Clone>(m: &[T], rows: &[usize]) -> Vec<T> {
            rows.iter().map(|&i| m[i].clone()).collect()
        }
        PpoBatch {
            prompt_len: self.prompt_len,
            ids: pick(&self.ids, rows),
            attention_mask: pick(&self.attention_mask, rows),
            response_mask: pick(&self.response_mask, rows),
            old_logprobs: pick(&self.old_logprobs, rows),
            old_values: pick(&self.old_values, rows),
            ref_logprobs: pick(&self.ref_logprobs, rows),
            advantages: pick(&self.advantages, rows),
            returns: pick(&self.returns, rows),
        }
    }

    /// The rows `rows` as tensors on `device`.
    pub fn minibatch(&self, rows: &[usize], device: &burn::tensor::Device) -> MiniBatch {
        let pick =
            |m: &Vec<Vec<f32>>| rows_f32(&rows.iter().map(|&i| &m[i]).collect::<Vec<_>>(), device);
        let ids: Vec<Vec<u32>> = rows.iter().map(|&i| self.ids[i].clone()).collect();
        let mask: Vec<Vec<u8>> = rows
            .iter()
            .map(|&i| self.attention_mask[i].clone())
            .collect();
        MiniBatch {
            prompt_len: self.prompt_len,
            ids: rows_tensor(&ids, device),
            attention_mask: rows_tensor(&mask, device),
            response_mask: pick(&self.response_mask),
            old_logprobs: pick(&self.old_logprobs),
            old_values: pick(&self.old_values),
            ref_logprobs: pick(&self.ref_logprobs),
            advantages: pick(&self.advantages),
            returns: pick(&self.returns),
        }
    }
}

/// One mini-batch of `B` rows as tensors: what one forward/backward pass of the update sees.
#[derive(Clone, Debug)]
pub struct MiniBatch {
    /// `P`: every row's prompt is left-padded to this length.
    pub prompt_len: usize,
    /// `[B, P + R]` prompt and response ids, and their attention mask (1 real, 0 padding).
    pub ids: Tensor<2, Int>,
    pub attention_mask: Tensor<2, Int>,
    /// `[B, R]`, 1 on response tokens, 0 on padding after the end.
    pub response_mask: Tensor<2>,
    /// `[B, R]`, from the rollout: the sampled tokens' logprobs and the values before them.
    pub old_logprobs: Tensor<2>,
    pub old_values: Tensor<2>,
    /// `[B, R]`, the frozen reference's logprobs of the same tokens.
    pub ref_logprobs: Tensor<2>,
    /// `[B, R]`, the advantages and the value targets.
    pub advantages: Tensor<2>,
    pub returns: Tensor<2>,
}

/// The five functions a student may write their own version of (`exercises/`) form a table the
/// trainer, the page and the update are handed by their caller: [`REFERENCE`] is this folder's
/// solutions, and `crate::exercises` builds the student's table (their function where written,
/// this one where not). The PPO code calls through the table and never reaches for a student's
/// code itself.
///
/// Exercise 4's signature: rewards, values and the response mask (`[B, T]`) to deltas,
/// advantages and returns.
pub type GaeFn = fn(Tensor<2>, Tensor<2>, Tensor<2>, GaeParams) -> Gae;

/// Exercise 5's signature, with the table it belongs to: a version that builds the objective
/// from exercises 1-3 takes them from `functions.pieces`.
pub type MinibatchLossesFn =
    fn(functions: &Functions, &Qwen2Model, MiniBatch, &UpdateConfig) -> Losses;

/// One version of each of the five functions.
#[derive(Clone, Copy)]
pub struct Functions {
    /// Exercises 1-3: the clipped policy loss, the clipped value loss, the entropy.
    pub pieces: Pieces,
    /// Exercise 4: GAE, run by [`collect_experience`](super::iteration::collect_experience).
    pub gae: GaeFn,
    /// Exercise 5: one mini-batch's losses, run by [`ppo_update`](ppo_update).
    pub minibatch_losses: MinibatchLossesFn,
}

/// The solutions in `src/ppo/`.
pub const REFERENCE: Functions = Functions {
    pieces: REFERENCE_PIECES,
    gae,
    minibatch_losses: |functions, model, minibatch, config| {
        minibatch_losses_with(&functions.pieces, model, minibatch, config)
    },
};

/// The objective of one mini-batch (the solution of exercise 5): one teacher-forced pass gives
/// the new logprobs, values and logits of every response token at once, and the reference
/// pieces turn them into the losses.
pub fn minibatch_losses(model: &Qwen2Model, minibatch: MiniBatch, config: &UpdateConfig) -> Losses {
    minibatch_losses_with(&REFERENCE_PIECES, model, minibatch, config)
}

/// [`minibatch_losses`] with the given pieces (the student's exercises 1-3 where written).
pub fn minibatch_losses_with(
    pieces: &Pieces,
    model: &Qwen2Model,
    minibatch: MiniBatch,
    config: &UpdateConfig,
) -> Losses {
    let out = response_outputs(
        model,
        minibatch.ids,
        minibatch.attention_mask,
        minibatch.prompt_len,
        config.temperature,
    );
    ppo_losses_with(
        pieces,
        LossInputs {
            logprobs_new: out.logprobs,
            logprobs_old: minibatch.old_logprobs,
            advantages: minibatch.advantages,
            values_new: out.values,
            values_old: minibatch.old_values,
            returns: minibatch.returns,
            response_mask: minibatch.response_mask,
            logits: Some(out.logits),
            token_entropy: out.entropy,
        },
        config.coeffs,
    )
}

/// A critic-free member's objective in one mini-batch: the same teacher-forced pass, then
/// [`grpo_loss`] (one ratio per token: GRPO, Dr. GRPO, DAPO) or [`sequence_loss`] (one per
/// response: REINFORCE, RLOO) instead of the PPO pieces (no value loss), the entropy bonus as
/// in PPO. Also returns the loss's KL term (0 for the per-response members, whose KL is in the
/// score).
pub fn grpo_minibatch_losses(
    model: &Qwen2Model,
    minibatch: MiniBatch,
    config: &UpdateConfig,
    grpo: GrpoCoeffs,
) -> (Losses, Tensor<1>) {
    let out = response_outputs(
        model,
        minibatch.ids,
        minibatch.attention_mask,
        minibatch.prompt_len,
        config.temperature,
    );
    let mask = minibatch.response_mask;
    let clip = grpo.clip;
    let entropy = reference_masked_entropy(out.logits, mask.clone(), out.entropy);
    let (loss, policy, clip_frac, approx_kl, kl) = if grpo.per_response {
        let [b, _] = mask.dims();
        // Each row's advantage, spread over its real tokens by the iteration: read it back.
        let advantages = (minibatch.advantages * mask.clone()).sum_dim(1)
            / mask.clone().sum_dim(1).clamp_min(1.0);
        let log_ratio = out.logprobs.clone() - minibatch.old_logprobs.clone();
        let approx_kl = masked_mean(log_ratio.detach().powf_scalar(2.0), mask.clone()) * 0.5;
        let s = sequence_loss(
            out.logprobs,
            minibatch.old_logprobs,
            advantages.reshape([b]),
            mask,
            clip,
        );
        let zero = Tensor::zeros([1], &s.loss.device());
        (
            s.loss.clone(),
            s.loss.detach(),
            s.clip_frac,
            approx_kl,
            zero,
        )
    } else {
        let g = grpo_loss(
            out.logprobs,
            minibatch.old_logprobs,
            minibatch.ref_logprobs,
            minibatch.advantages,
            mask,
            clip,
            grpo.beta,
            grpo.agg,
        );
        (g.loss, g.policy, g.clip_frac, g.approx_kl, g.kl)
    };
    let total = loss - entropy.clone() * config.coeffs.entropy_coeff;
    let zero = Tensor::zeros([1], &total.device());
    let losses = Losses {
        total,
        policy,
        value: zero.clone(),
        entropy: Some(entropy),
        policy_clip_frac: clip_frac,
        value_clip_frac: zero,
        approx_kl,
    };
    (losses, kl)
}

/// The update's settings (the `ppo.*` keys of a config).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UpdateConfig {
    pub epochs: usize,
    /// Rows per forward/backward pass.
    pub mini_batch_size: usize,
    /// Mini-batches per optimizer step: the effective batch is their product.
    pub gradient_accumulation_steps: usize,
    /// Clip the global gradient norm to this (None: no clipping).
    pub max_grad_norm: Option<f32>,
    pub lr: f64,
    /// The learning rate of the value head's bias, the critic's level (None: `lr`). The returns'
    /// mean moves as the reward rises; at a policy's learning rate the bias cannot follow it (it
    /// moves about `lr` per step), and the value loss stays flat. The head's weights keep `lr`:
    /// moved faster, Adam's per-weight steps fit the batch's noise and the values predict the
    /// next batch worse than a constant (docs/training.md, "A critic that learns").
    #[serde(default)]
    pub value_bias_lr: Option<f64>,
    /// The sampling temperature: the update scores tokens under the same tempered distribution.
    pub temperature: f32,
    pub coeffs: LossCoeffs,
    /// GRPO's objective instead of PPO's (None: PPO).
    pub grpo: Option<GrpoCoeffs>,
}

impl UpdateConfig {
    /// The band each token's own ratio was clipped to: PPO's `[1 − ε, 1 + ε]`, or a critic-free
    /// member's (DAPO's wider above). None where the update took one ratio per response
    /// (RLOO's, clipped as a whole, and REINFORCE's, not clipped): no token's own term is
    /// clipped there.
    pub fn token_band(&self) -> Option<ClipRange> {
        match self.grpo {
            None => Some(ClipRange::symmetric(self.coeffs.clip_ratio)),
            Some(g) if g.per_response => None,
            Some(g) => Some(g.clip),
        }
    }
}

/// Means over the optimizer steps of one update (metric names as in DESIGN.md).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UpdateStats {
    pub loss_total: f32,
    pub loss_policy: f32,
    pub loss_value: f32,
    pub loss_entropy: f32,
    pub approx_kl: f32,
    pub policy_clip_frac: f32,
    pub value_clip_frac: f32,
    /// GRPO's KL term (0 for PPO, whose KL is in the reward).
    pub loss_kl: f32,
    /// Global gradient norm before clipping.
    pub grad_norm: f32,
    pub optimizer_steps: usize,
    /// Optimizer steps skipped because a loss or the gradient norm was NaN or infinite.
    pub skipped_steps: usize,
}

/// `acc += new`, parameter by parameter (gradient accumulation).
fn accumulate<M: Module>(module: &M, acc: &mut GradientsParams, new: &mut GradientsParams) {
    struct Add<'a>(&'a mut GradientsParams, &'a mut GradientsParams);
    impl ModuleVisitor for Add<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let sum = match (self.0.remove::<D>(param.id), self.1.remove::<D>(param.id)) {
                (Some(a), Some(b)) => a + b,
                (Some(g), None) | (None, Some(g)) => g,
                (None, None) => return,
            };
            self.0.register::<D>(param.id, sum);
        }
    }
    module.visit(&mut Add(acc, new));
}

/// Global L2 norm over all gradients (one 1-element tensor): sqrt(sum over params of |g|^2).
pub(crate) fn global_norm<M: Module>(module: &M, grads: &GradientsParams) -> Option<Tensor<1>> {
    struct SumSquares<'a>(&'a GradientsParams, Option<Tensor<1>>);
    impl ModuleVisitor for SumSquares<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.0.get::<D>(param.id) {
                // On flex, one pass without a squared copy of the gradient (src/cpu_fast/adamw.rs).
                let sq = match crate::cpu_fast::adamw::sum_of_squares(&g) {
                    Some(s) => Tensor::from_floats([s as f32], &g.device()),
                    None => g.powf_scalar(2.0).sum(),
                };
                self.1 = Some(match self.1.take() {
                    Some(total) => total + sq,
                    None => sq,
                });
            }
        }
    }
    let mut visitor = SumSquares(grads, None);
    module.visit(&mut visitor);
    visitor.1.map(Tensor::sqrt)
}

/// Multiply every gradient by `scale` (gradient clipping).
fn scale_grads<M: Module>(module: &M, grads: &mut GradientsParams, scale: f64) {
    struct Scale<'a>(&'a mut GradientsParams, f64);
    impl ModuleVisitor for Scale<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.0.remove::<D>(param.id) {
                // On flex, in place on every core (src/cpu_fast/adamw.rs); the same numbers as mul_scalar.
                self.0
                    .register::<D>(param.id, crate::cpu_fast::adamw::scale(g, self.1));
            }
        }
    }
    module.visit(&mut Scale(grads, scale));
}

/// The learning rate of each parameter: `config.lr`, and `config.value_bias_lr` for the value
/// head's bias when it is set.
pub fn learning_rates(model: &Qwen2Model, config: &UpdateConfig) -> ModuleLearningRate {
    match (config.value_bias_lr, &model.v_head.summary.bias) {
        (Some(bias_lr), Some(bias)) => ModuleLrScheduler::new(config.lr)
            .with_group(ParamGroup::ids_from_module(bias.clone()), bias_lr)
            .step(),
        _ => config.lr.into(),
    }
}

/// Rows of f32 as a `[rows, len]` tensor.
pub(crate) fn rows_f32(rows: &[&Vec<f32>], device: &burn::tensor::Device) -> Tensor<2> {
    let (b, t) = (rows.len(), rows.first().map_or(0, |r| r.len()));
    let flat: Vec<f32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    Tensor::from_data(TensorData::new(flat, [b, t]), device)
}

/// [`ppo_update`] on the rows dynamic sampling left ([`Experience::batch`]): when every group
/// was dropped there is nothing to learn from (the model comes back unchanged, the statistics 0,
/// `optimizer_steps` 0 saying so), and the mini-batches are no larger than the rows left.
///
/// [`Experience::batch`]: super::iteration::Experience::batch
pub async fn update_kept(
    model: Qwen2Model,
    optim: &mut ModuleOptimizer,
    batch: &PpoBatch,
    config: &UpdateConfig,
    functions: &Functions,
    rng: &mut Rng,
) -> Result<(Qwen2Model, UpdateStats), String> {
    let n = batch.ids.len();
    if n == 0 {
        return Ok((model, UpdateStats::default()));
    }
    let config = UpdateConfig {
        mini_batch_size: config.mini_batch_size.min(n),
        ..*config
    };
    ppo_update(model, optim, batch, &config, functions, rng).await
}

/// Run the update, PPO's mini-batch losses from `functions` (exercise 5; GRPO's objective is
/// not one of the exercises). Returns the updated model and the mean statistics over optimizer
/// steps.
pub async fn ppo_update(
    mut model: Qwen2Model,
    optim: &mut ModuleOptimizer,
    batch: &PpoBatch,
    config: &UpdateConfig,
    functions: &Functions,
    rng: &mut Rng,
) -> Result<(Qwen2Model, UpdateStats), String> {
    let n = batch.ids.len();
    if n == 0 {
        return Err("the batch is empty".into());
    }
    if config.mini_batch_size == 0 || config.mini_batch_size > n {
        return Err(format!(
            "mini_batch_size must be in 1..={n} (the batch size), found {}",
            config.mini_batch_size
        ));
    }
    if config.epochs == 0 || config.gradient_accumulation_steps == 0 {
        return Err("epochs and gradient_accumulation_steps must be at least 1".into());
    }
    let device = model.device();
    let lr = learning_rates(&model, config);
    let mut stats = UpdateStats::default();
    let mut sums = [0f64; 9];
    for _epoch in 0..config.epochs {
        // Fisher-Yates shuffle of the rows, seeded.
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            order.swap(i, rng.below(i + 1));
        }
        let minibatches: Vec<&[usize]> = order.chunks(config.mini_batch_size).collect();
        for group in minibatches.chunks(config.gradient_accumulation_steps) {
            let mut acc: Option<GradientsParams> = None;
            let mut step_metrics = [0f64; 8];
            let mut finite = true;
            for rows in group {
                yield_to_browser().await;
                let minibatch = batch.minibatch(rows, &device);
                let (losses, kl) = match config.grpo {
                    Some(grpo) => grpo_minibatch_losses(&model, minibatch, config, grpo),
                    None => (
                        (functions.minibatch_losses)(functions, &model, minibatch, config),
                        Tensor::zeros([1], &device),
                    ),
                };
                let scaled = losses.total.clone().div_scalar(group.len() as f64);
                let mut grads = GradientsParams::from_grads(scaled.backward(), &model);
                match acc.as_mut() {
                    Some(acc) => accumulate(&model, acc, &mut grads),
                    None => acc = Some(grads),
                }
                let metrics = [
                    losses.total,
                    losses.policy,
                    losses.value,
                    losses
                        .entropy
                        .unwrap_or_else(|| Tensor::zeros([1], &device)),
                    losses.approx_kl,
                    losses.policy_clip_frac,
                    losses.value_clip_frac,
                    kl,
                ];
                for (k, m) in metrics.into_iter().enumerate() {
                    let v = read_f32(m.detach()).await?[0] as f64;
                    finite &= v.is_finite();
                    step_metrics[k] += v / group.len() as f64;
                }
            }
            let mut grads = acc.ok_or("no gradients")?;
            let norm = match global_norm(&model, &grads) {
                Some(t) => read_f32(t).await?[0],
                None => 0.0,
            };
            if !finite || !norm.is_finite() {
                // A NaN or Inf loss would poison AdamW's moments: skip the step and report it.
                stats.skipped_steps += 1;
                continue;
            }
            if let Some(max) = config.max_grad_norm {
                // Scale every gradient by max / norm when the norm is above max (global clipping).
                if norm > max {
                    let scale = (max / (norm + 1e-6)) as f64;
                    scale_grads(&model, &mut grads, scale);
                }
            }
            model = optim.step(lr.clone(), model, grads);
            stats.optimizer_steps += 1;
            for k in 0..8 {
                sums[k] += step_metrics[k];
            }
            sums[8] += norm as f64;
        }
    }
    let steps = stats.optimizer_steps.max(1) as f64;
    let mean = |k: usize| (sums[k] / steps) as f32;
    stats.loss_total = mean(0);
    stats.loss_policy = mean(1);
    stats.loss_value = mean(2);
    stats.loss_entropy = mean(3);
    stats.approx_kl = mean(4);
    stats.policy_clip_frac = mean(5);
    stats.value_clip_frac = mean(6);
    stats.loss_kl = mean(7);
    stats.grad_norm = mean(8);
    Ok((model, stats))
}
