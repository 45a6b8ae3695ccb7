//! One PPO iteration with everything kept that the page steps through.
//!
//! [`walkthrough`] runs the same code as the trainer ([`collect_experience`] then
//! [`ppo_update`]) and keeps, beside the experience, what each stage of the page shows:
//! - the scalar GAE sweep of every sequence (equal to the tensor GAE the update used) and the
//!   whitening statistics;
//! - the causal-mask check: one teacher-forced pass of the rollout policy over the sampled ids,
//!   which must give back the logprobs the token-by-token rollout recorded, and the attention
//!   probabilities of one sequence;
//! - after the update, the new logprobs and values beside the old, with each token's ratio and
//!   clipping as the policy and value losses see them;
//! - how long each stage took.

use std::collections::BTreeMap;

use crate::compute::{now_ms, read_f32, yield_to_browser};
use crate::exercises::compare::{IterationComparison, compare_iteration};
use crate::model::Qwen2Model;
use crate::model::tokenizer::TextTokenizer;
use crate::ppo::Functions;
use crate::ppo::clip_range::ClipRange;
use crate::ppo::entropy::entropy_from_logits;
use crate::ppo::gae::{GaeTrace, gae_ref};
use crate::ppo::iteration::{
    Experience, ExperienceConfig, Task, collect_experience_timed, masked_rows, to_rows,
};
use crate::ppo::member_setup::MemberParams;
use crate::ppo::policy_loss::{PolicyTrace, policy_loss_ref};
use crate::ppo::update::{UpdateConfig, UpdateStats, update_kept};
use crate::ppo::value_loss::{ValueTrace, value_loss_ref};
use crate::ppo::whiten::{WhitenTrace, masked_whiten_ref};
use crate::rng::Rng;
use crate::rollout::Rollout;
use crate::rollout::generate::{response_outputs, rows_tensor};
use burn::module::Module;
use burn::optim::ModuleOptimizer;

/// Attention probabilities of one sequence: `maps[layer][head]` is `len x len`, row-major, row
/// = query position, column = key position.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AttentionMaps {
    /// Which sequence of the batch.
    pub row: usize,
    /// Positions: the padded prompt and the response.
    pub len: usize,
    pub maps: Vec<Vec<Vec<f32>>>,
}

impl AttentionMaps {
    /// The weight query `q` gives key `k` in `layer`, `head`.
    pub fn weight(&self, layer: usize, head: usize, q: usize, k: usize) -> f32 {
        self.maps[layer][head][q * self.len + k]
    }
}

/// Milliseconds per stage of one iteration.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StageTimes {
    pub rollout_ms: f64,
    /// Scores, the reference's logprobs and the token rewards.
    pub score_ms: f64,
    pub gae_ms: f64,
    /// The teacher-forced check and the attention maps.
    pub mask_ms: f64,
    pub update_ms: f64,
    /// The post-update pass that gives the new logprobs and values.
    pub after_ms: f64,
}

impl StageTimes {
    pub fn total_ms(&self) -> f64 {
        self.rollout_ms
            + self.score_ms
            + self.gae_ms
            + self.mask_ms
            + self.update_ms
            + self.after_ms
    }
}

/// What to keep beyond the trainer's needs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WalkthroughConfig {
    /// Keep the attention maps of this sequence (None: skip them, as while training fast).
    pub attention_row: Option<usize>,
    /// The settings the family panel compares the members under, recorded as run.
    pub family: MemberParams,
}

/// One iteration, everything the page shows. Rows `[B][R]` as in [`Experience`].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Walkthrough {
    pub experience: Experience,
    /// Every position's token as text, prompt (with left padding) then response: `[B][P + R]`.
    pub tokens: Vec<Vec<String>>,
    /// The text of every id the page shows: the sampled ones and every top candidate.
    pub texts: BTreeMap<u32, String>,
    /// The update's settings, as run.
    pub update: UpdateConfig,
    /// The scalar GAE sweep of each sequence.
    pub gae: Vec<GaeTrace>,
    /// Whitening over the whole batch's real tokens (None when whitening is off).
    pub whiten: Option<WhitenTrace>,
    /// Logprobs of one teacher-forced pass of the rollout policy, `[B][R]` (0 on padding).
    pub teacher_forced: Vec<Vec<f32>>,
    /// max |teacher_forced - rollout logprobs| over real tokens.
    pub teacher_forced_max_diff: f32,
    /// Entropy of the rollout policy's next-token distribution at each response token.
    pub entropy: Vec<Vec<f32>>,
    pub attention: Option<AttentionMaps>,
    pub stats: UpdateStats,
    /// After the update: each sequence's tokens against the clip band (new vs old logprobs).
    pub policy_after: Vec<PolicyTrace>,
    /// After the update: each sequence's new values against the old and the returns.
    pub value_after: Vec<ValueTrace>,
    pub times: StageTimes,
    /// With the `exercises` feature: the student's functions beside the reference on this
    /// iteration, for the page to mark every value that differs. None without the feature.
    pub exercises: Option<IterationComparison>,
    /// The adaptive KL controller's step after this iteration (None: β is fixed).
    #[serde(default)]
    pub kl_control: Option<crate::ppo::kl_control::KlStep>,
    /// The settings this batch ran under that the family panel compares the members with.
    pub family: MemberParams,
}

/// One response taken as one action, as RLOO's and REINFORCE's updates take it, after the update.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ResponseRatio {
    /// `exp Σ_t (log π_new − log π_old)` over the response's real tokens.
    pub ratio: f32,
    /// The response's advantage (each of its tokens carries it).
    pub advantage: f32,
    /// The member's clip gives the response's term no gradient in a further epoch (never
    /// without a clip, REINFORCE's).
    pub clipped: bool,
}

impl Walkthrough {
    /// Response `row` as one action, where the update took one ratio per response (None under
    /// the members that clip each token's own ratio).
    pub fn response_ratio(&self, row: usize) -> Option<ResponseRatio> {
        response_ratio(&self.update, self.policy_after.get(row)?)
    }
}

/// A response's trace after an update with `config`, taken as one action where that update took
/// one ratio per response (None where it clipped each token's own ratio).
pub fn response_ratio(config: &UpdateConfig, trace: &PolicyTrace) -> Option<ResponseRatio> {
    let g = config.grpo.filter(|g| g.per_response)?;
    let tokens = &trace.tokens;
    let log_ratio: f32 = tokens.iter().map(|p| p.logp_new - p.logp_old).sum();
    let advantage = tokens.iter().map(|p| p.advantage).sum::<f32>() / tokens.len().max(1) as f32;
    let ratio = log_ratio.exp();
    Some(ResponseRatio {
        ratio,
        advantage,
        clipped: g.clip.switches_off(ratio, advantage),
    })
}

/// Runs one PPO iteration on `tasks` with `functions` (the reference's or the student's) and
/// returns the updated policy, the update's starting point and the walkthrough.
/// `policy` lives on an autodiff device; `reference` is frozen. `on_step` sees the rollout's
/// sampled ids step by step.
#[allow(clippy::too_many_arguments)]
pub async fn walkthrough(
    policy: Qwen2Model,
    optim: &mut ModuleOptimizer,
    reference: &Qwen2Model,
    tokenizer: &TextTokenizer,
    tasks: &[Task],
    experience_config: &ExperienceConfig,
    update_config: &UpdateConfig,
    functions: &Functions,
    config: WalkthroughConfig,
    rng: &mut Rng,
    on_step: &mut dyn FnMut(&[u32]),
) -> Result<(Qwen2Model, UpdateStart, Walkthrough), String> {
    let rollout_policy = policy.valid();
    let (experience, times) = collect_experience_timed(
        &rollout_policy,
        reference,
        tokenizer,
        tasks,
        experience_config,
        functions,
        rng,
        on_step,
    )
    .await?;
    let mut stage_times = StageTimes {
        rollout_ms: times.rollout_ms,
        score_ms: times.score_ms,
        gae_ms: times.gae_ms,
        ..StageTimes::default()
    };
    let rollout = &experience.rollout;
    let r = rollout.response_len();
    let mask = &rollout.response_mask;

    // GAE again, in its scalar form: the page animates these steps.
    let started = now_ms();
    let gae: Vec<GaeTrace> = (0..tasks.len())
        .map(|b| {
            gae_ref(
                &experience.rewards[b],
                &rollout.values[b],
                &mask[b],
                experience_config.gae,
            )
        })
        .collect();
    let whiten = if experience_config.whiten_advantages {
        let flat: Vec<f32> = gae.iter().flat_map(|g| g.advantages.clone()).collect();
        Some(masked_whiten_ref(&flat, &mask.concat())?)
    } else {
        None
    };
    stage_times.gae_ms += now_ms() - started;

    // The causal-mask check: one pass over prompt + response must score every response token as
    // the token-by-token rollout did, because position P - 1 + t sees exactly the state s_t.
    let started = now_ms();
    yield_to_browser().await;
    let device = rollout_policy.device();
    let tf = response_outputs(
        &rollout_policy,
        rows_tensor(&rollout.ids, &device),
        rows_tensor(&rollout.attention_mask, &device),
        rollout.prompt_len,
        experience_config.sampling.temperature,
    );
    let entropy = masked_rows(
        to_rows(read_f32(entropy_from_logits(tf.logits)).await?, r),
        mask,
    );
    let teacher_forced = masked_rows(to_rows(read_f32(tf.logprobs).await?, r), mask);
    let mut teacher_forced_max_diff = 0f32;
    for (tf_row, (old_row, m)) in teacher_forced.iter().zip(rollout.logprobs.iter().zip(mask)) {
        for ((a, b), m) in tf_row.iter().zip(old_row).zip(m) {
            if *m > 0.0 {
                teacher_forced_max_diff = teacher_forced_max_diff.max((a - b).abs());
            }
        }
    }
    let attention = match config.attention_row {
        Some(row) => {
            yield_to_browser().await;
            Some(attention_maps(&rollout_policy, rollout, row).await?)
        }
        None => None,
    };
    stage_times.mask_ms = now_ms() - started;

    // The update: epochs over shuffled mini-batches, exactly as the trainer runs it. Its
    // starting point is kept, so the page can replay it with other settings.
    let start = UpdateStart {
        policy: policy.clone(),
        optim: optim.clone(),
        rng: rng.clone(),
    };
    let started = now_ms();
    let (policy, stats) = update_kept(
        policy,
        optim,
        &experience.batch(),
        update_config,
        functions,
        rng,
    )
    .await?;
    stage_times.update_ms = now_ms() - started;

    // After the update: new logprobs and values beside the old ones.
    let started = now_ms();
    yield_to_browser().await;
    let updated = policy.valid();
    let (policy_after, value_after) = after_update(&updated, &experience, update_config).await?;
    stage_times.after_ms = now_ms() - started;

    let exercises = if crate::exercises::ENABLED {
        yield_to_browser().await;
        Some(
            compare_iteration(
                &crate::exercises::STUDENT,
                &experience,
                experience_config.gae,
                experience_config.whiten_advantages,
                &updated,
                update_config,
            )
            .await?,
        )
    } else {
        None
    };

    let text = |id: u32| tokenizer.token(id).unwrap_or_else(|| format!("<{id}>"));
    let tokens = rollout
        .ids
        .iter()
        .map(|row| row.iter().map(|&id| text(id)).collect())
        .collect();
    let texts = rollout
        .ids
        .iter()
        .flatten()
        .copied()
        .chain(rollout.top.iter().flatten().flatten().map(|&(id, _)| id))
        .map(|id| (id, text(id)))
        .collect();
    Ok((
        policy,
        start,
        Walkthrough {
            tokens,
            texts,
            update: *update_config,
            gae,
            whiten,
            teacher_forced,
            teacher_forced_max_diff,
            entropy,
            attention,
            stats,
            policy_after,
            value_after,
            times: stage_times,
            exercises,
            experience,
            kl_control: None,
            family: config.family,
        },
    ))
}

/// The attention probabilities of sequence `row` of `rollout` under `policy` (an inference
/// model), every layer and head.
pub async fn attention_maps(
    policy: &Qwen2Model,
    rollout: &Rollout,
    row: usize,
) -> Result<AttentionMaps, String> {
    let rows = rollout.ids.len();
    if row >= rows {
        return Err(format!(
            "attention row {row} is outside the batch of {rows}"
        ));
    }
    let device = policy.device();
    let out = policy.forward(
        rows_tensor(&rollout.ids[row..=row], &device),
        rows_tensor(&rollout.attention_mask[row..=row], &device),
        true,
    );
    let len = rollout.ids[row].len();
    let mut maps = Vec::new();
    for layer in out.attentions.unwrap_or_default() {
        let [_, heads, _, _] = layer.dims();
        let flat = read_f32(layer).await?;
        maps.push(
            flat.chunks(len * len)
                .take(heads)
                .map(<[f32]>::to_vec)
                .collect(),
        );
    }
    Ok(AttentionMaps { row, len, maps })
}

/// One pass of `updated` (an inference model) over the batch: each sequence's tokens against
/// the clip band, and its new values against the old ones and the returns.
pub async fn after_update(
    updated: &Qwen2Model,
    experience: &Experience,
    update_config: &UpdateConfig,
) -> Result<(Vec<PolicyTrace>, Vec<ValueTrace>), String> {
    let rollout = &experience.rollout;
    let r = rollout.response_len();
    let mask = &rollout.response_mask;
    let device = updated.device();
    let after = response_outputs(
        updated,
        rows_tensor(&rollout.ids, &device),
        rows_tensor(&rollout.attention_mask, &device),
        rollout.prompt_len,
        update_config.temperature,
    );
    let new_logprobs = to_rows(read_f32(after.logprobs).await?, r);
    let new_values = to_rows(read_f32(after.values).await?, r);
    let coeffs = update_config.coeffs;
    // The advantages the update used: GAE's under PPO, the member's own under the others;
    // each token against the band its own ratio was clipped to (no band where the update took
    // one ratio per response: then no token's own term is clipped).
    let advantages = experience.every_row().advantages;
    let band = update_config.token_band().unwrap_or(ClipRange::NONE);
    let policy_after = (0..rollout.ids.len())
        .map(|b| {
            policy_loss_ref(
                &new_logprobs[b],
                &rollout.logprobs[b],
                &advantages[b],
                &mask[b],
                band,
            )
        })
        .collect();
    let value_after = (0..rollout.ids.len())
        .map(|b| {
            value_loss_ref(
                &new_values[b],
                &rollout.values[b],
                &experience.returns[b],
                &mask[b],
                coeffs.clip_range_value,
            )
        })
        .collect();
    Ok((policy_after, value_after))
}

/// Where an iteration's update started: the policy (on its autodiff device) and the optimizer
/// before the first step, and the random state its shuffles drew from.
#[derive(Clone)]
pub struct UpdateStart {
    pub policy: Qwen2Model,
    pub optim: ModuleOptimizer,
    pub rng: Rng,
}

/// The same batch's update run again from the same start with other settings.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Replay {
    /// The iteration whose batch was replayed.
    pub iteration: usize,
    /// The settings it ran with (the iteration's own, except the learning rate and epochs).
    pub update: UpdateConfig,
    pub stats: UpdateStats,
    pub policy_after: Vec<PolicyTrace>,
    pub value_after: Vec<ValueTrace>,
    pub millis: f64,
}

/// Runs `experience`'s update again from `start` with `config` and `functions`; `start` itself
/// is untouched, so the run the page trains goes on as before. With the iteration's own config
/// and functions this reproduces its update exactly.
pub async fn replay_update(
    start: &UpdateStart,
    experience: &Experience,
    config: &UpdateConfig,
    functions: &Functions,
    iteration: usize,
) -> Result<Replay, String> {
    let started = now_ms();
    let mut optim = start.optim.clone();
    let mut rng = start.rng.clone();
    let (policy, stats) = update_kept(
        start.policy.clone(),
        &mut optim,
        &experience.batch(),
        config,
        functions,
        &mut rng,
    )
    .await?;
    yield_to_browser().await;
    let (policy_after, value_after) = after_update(&policy.valid(), experience, config).await?;
    Ok(Replay {
        iteration,
        update: *config,
        stats,
        policy_after,
        value_after,
        millis: now_ms() - started,
    })
}
