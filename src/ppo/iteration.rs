//! One PPO iteration's experience, top to bottom (DESIGN.md steps 1-4): sample responses, score
//! them, ask the frozen reference for its logprobs, turn score and KL into token rewards, run GAE
//! backwards, whiten. The trainer and the page both call [`collect_experience`] and then
//! [`ppo_update`](super::update::ppo_update) on [`Experience::batch`].

use burn::tensor::{Tensor, TensorData};

use super::batch_baseline::{batch_mean_advantages, normalise_over_batch};
use super::dynamic_sampling::{Kept, groups_with_spread};
use super::family::{Baseline, Family};
use super::gae::GaeParams;
use super::group_advantages::{
    GroupParams, GroupTrace, check_groups, group_advantages, group_advantages_ref, scores_tensor,
};
use super::leave_one_out::leave_one_out_advantages;
use super::rewards::{KlEstimator, token_rewards};
use super::sequence_kl::kl_penalised_scores;
use super::update::{PpoBatch, UpdateStats};
use super::whiten::masked_whiten;
use super::{Algorithm, Functions};
use crate::compute::{now_ms, read_f32};
use crate::model::Qwen2Model;
use crate::model::tokenizer::TextTokenizer;
use crate::reward::gsm8k::{GsmScore, gsm8k_reward};
use crate::rng::Rng;
use crate::rollout::generate::{Rollout, response_outputs, rollout, rows_tensor};
use crate::rollout::sampling::SamplingParams;

/// A prompt and the answer its response is checked against.
#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    pub prompt_ids: Vec<u32>,
    /// The reference's final answer (the number right after its last `####`).
    pub reference_answer: String,
}

/// Settings of steps 1-4.
#[derive(Clone, Debug, PartialEq)]
pub struct ExperienceConfig {
    pub sampling: SamplingParams,
    pub max_new_tokens: usize,
    /// Ids that end a response (kept inside the response mask).
    pub eos_ids: Vec<u32>,
    /// Fed after EOS and masked; never one of `eos_ids`.
    pub pad_id: u32,
    /// Candidates kept per sampled token, for display.
    pub n_top: usize,
    pub gae: GaeParams,
    pub kl_coeff: f32,
    pub kl_estimator: KlEstimator,
    pub whiten_advantages: bool,
    /// The rows come in groups of samples of one prompt: GRPO's advantages are computed too.
    pub group: Option<GroupParams>,
    /// The member of the family the update runs: PPO takes the critic's advantages, every
    /// other member the scores' ([`ScoreAdvantages`]; the group members need `group`).
    pub member: Family,
    /// How the critic-free advantages come from the scores (GRPO's group mean by default).
    pub score_advantages: ScoreAdvantages,
}

/// How a critic-free member's advantages come from the scores ([`family`](super::family)).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoreAdvantages {
    /// The group's mean (GRPO, Dr. GRPO, DAPO; divided as `group.scale` says), the mean of the
    /// group's others (RLOO), or the batch's mean (REINFORCE, which needs no groups).
    pub baseline: Baseline,
    /// `beta` of the KL to the reference in each response's score ([`sequence_kl`]), before
    /// the baseline; 0: none.
    ///
    /// [`sequence_kl`]: super::sequence_kl
    pub score_kl: f32,
    /// Normalise the advantages over the batch afterwards (TRL RLOO's `normalize_advantages`).
    pub normalise: bool,
    /// DAPO's dynamic sampling: the groups whose rewards are all equal leave the batch the
    /// update sees ([`Experience::batch`]; needs `group`).
    pub dynamic_sampling: bool,
}

impl Default for ScoreAdvantages {
    /// GRPO's.
    fn default() -> Self {
        Self {
            baseline: Baseline::GroupMean,
            score_kl: 0.0,
            normalise: false,
            dynamic_sampling: false,
        }
    }
}

/// Everything one iteration computed before the update, rows `[B][R]` (0 on padding).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Experience {
    pub rollout: Rollout,
    /// Each response decoded without special tokens.
    pub responses: Vec<String>,
    pub scores: Vec<GsmScore>,
    pub ref_logprobs: Vec<Vec<f32>>,
    /// Per-token KL estimate to the reference.
    pub kl: Vec<Vec<f32>>,
    /// `-kl_coeff * kl`, plus the score on the last real token.
    pub rewards: Vec<Vec<f32>>,
    pub deltas: Vec<Vec<f32>>,
    /// GAE advantages before whitening.
    pub raw_advantages: Vec<Vec<f32>>,
    /// The advantages the update uses (whitened when asked).
    pub advantages: Vec<Vec<f32>>,
    pub returns: Vec<Vec<f32>>,
    pub kl_coeff: f32,
    /// The estimator `kl` was computed with.
    pub kl_estimator: KlEstimator,
    /// GRPO's advantages of the same responses, group by group (when the rows are grouped).
    pub group: Option<GroupTrace>,
    /// The critic-free advantages ([`ScoreAdvantages`]: GRPO's unless asked otherwise) on
    /// every real token `[B][R]` (empty without groups under PPO).
    pub group_advantages: Vec<Vec<f32>>,
    /// The member whose advantages [`Experience::batch`] hands to the update.
    pub member: Family,
    /// Under dynamic sampling, the groups that stay in the update's batch.
    pub kept: Option<Kept>,
}

/// A flat `[B * width]` read-back as rows.
pub(crate) fn to_rows(flat: Vec<f32>, width: usize) -> Vec<Vec<f32>> {
    if width == 0 {
        return Vec::new();
    }
    flat.chunks(width).map(<[f32]>::to_vec).collect()
}

/// Each row times its mask: 0 on padding.
pub(crate) fn masked_rows(rows: Vec<Vec<f32>>, mask: &[Vec<f32>]) -> Vec<Vec<f32>> {
    rows.into_iter()
        .zip(mask)
        .map(|(row, m)| row.iter().zip(m).map(|(x, m)| x * m).collect())
        .collect()
}

/// Rows `[B][R]` as a `[B, R]` tensor.
pub(crate) fn rows_f32(rows: &[Vec<f32>], device: &burn::tensor::Device) -> Tensor<2> {
    super::update::rows_f32(&rows.iter().collect::<Vec<_>>(), device)
}

/// Milliseconds each part of [`collect_experience`] took.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ExperienceTimes {
    /// Step 1: sampling the responses.
    pub rollout_ms: f64,
    /// Scoring, the reference's pass and the token rewards.
    pub score_ms: f64,
    /// GAE and whitening.
    pub gae_ms: f64,
}

/// Steps 1-4 for `tasks`, GAE from `functions` (exercise 4). `policy` and `reference` are
/// inference models (`.valid()`).
pub async fn collect_experience(
    policy: &Qwen2Model,
    reference: &Qwen2Model,
    tokenizer: &TextTokenizer,
    tasks: &[Task],
    config: &ExperienceConfig,
    functions: &Functions,
    rng: &mut Rng,
) -> Result<Experience, String> {
    collect_experience_timed(
        policy,
        reference,
        tokenizer,
        tasks,
        config,
        functions,
        rng,
        &mut |_| {},
    )
    .await
    .map(|(experience, _)| experience)
}

/// [`collect_experience`], also saying how long each part took; `on_step` sees the rollout's
/// sampled ids step by step (see [`rollout`]).
#[allow(clippy::too_many_arguments)]
pub async fn collect_experience_timed(
    policy: &Qwen2Model,
    reference: &Qwen2Model,
    tokenizer: &TextTokenizer,
    tasks: &[Task],
    config: &ExperienceConfig,
    functions: &Functions,
    rng: &mut Rng,
    on_step: &mut dyn FnMut(&[u32]),
) -> Result<(Experience, ExperienceTimes), String> {
    let mut times = ExperienceTimes::default();
    let mut clock = now_ms();
    let mut lap = || {
        let now = now_ms();
        let ms = now - clock;
        clock = now;
        ms
    };
    let by_batch = config.score_advantages.baseline == Baseline::BatchMean;
    match (config.member.algorithm(), config.group) {
        (Algorithm::Grpo, None) if !by_batch => {
            return Err("a group baseline needs the rows grouped by prompt".into());
        }
        (_, Some(g)) => {
            check_groups(tasks.len(), g.group_size)?;
        }
        _ => {}
    }
    if config.eos_ids.contains(&config.pad_id) {
        return Err(format!(
            "the pad id {} is also an EOS id: padding would end responses",
            config.pad_id
        ));
    }
    // 1. Rollout: sample, keeping logprobs and the values of the states before each token.
    let prompts: Vec<Vec<u32>> = tasks.iter().map(|t| t.prompt_ids.clone()).collect();
    let rollout = rollout(
        policy,
        &prompts,
        &config.sampling,
        config.max_new_tokens,
        &config.eos_ids,
        config.pad_id,
        config.n_top,
        rng,
        on_step,
    )
    .await?;
    let r = rollout.response_len();
    let device = policy.device();
    times.rollout_ms = lap();

    // Score each response with the task's reward.
    let mut responses = Vec::with_capacity(tasks.len());
    let mut scores = Vec::with_capacity(tasks.len());
    for (b, task) in tasks.iter().enumerate() {
        let text = tokenizer
            .decode(&rollout.response_ids(b), true)
            .map_err(|e| e.to_string())?;
        scores.push(gsm8k_reward(&text, &task.reference_answer));
        responses.push(text);
    }

    // 2. Reference logprobs: one teacher-forced pass of the frozen model over the same ids.
    let ref_logprobs = response_outputs(
        reference,
        rows_tensor(&rollout.ids, &reference.device()),
        rows_tensor(&rollout.attention_mask, &reference.device()),
        rollout.prompt_len,
        config.sampling.temperature,
    )
    .logprobs;
    let ref_logprobs = read_f32(ref_logprobs).await?;
    let ref_rows = to_rows(ref_logprobs, r);
    let mask_rows = &rollout.response_mask;
    // Padding has logprob 0 in the rollout; keep the reference's 0 there too.
    let ref_rows = masked_rows(ref_rows, mask_rows);

    // 3. Token rewards: -kl_coeff * KL on every token, the score on the last one.
    let mask = rows_f32(mask_rows, &device);
    let score_values: Vec<f32> = scores.iter().map(GsmScore::reward).collect();
    let tr = token_rewards(
        Tensor::from_data(
            TensorData::new(score_values.clone(), [tasks.len()]),
            &device,
        ),
        rows_f32(&rollout.logprobs, &device),
        rows_f32(&ref_rows, &device),
        mask.clone(),
        config.kl_coeff,
        config.kl_estimator,
    );

    let kl = to_rows(read_f32(tr.kl).await?, r);
    let rewards = to_rows(read_f32(tr.rewards.clone()).await?, r);
    times.score_ms = lap();

    // 4. GAE from the last token back, then whitening over the batch's real tokens.
    let g = (functions.gae)(
        tr.rewards.clone(),
        rows_f32(&rollout.values, &device),
        mask.clone(),
        config.gae,
    );
    let real_tokens: f32 = mask_rows.iter().flatten().sum();
    let advantages = if config.whiten_advantages {
        if real_tokens < 2.0 {
            return Err(format!(
                "whitening needs at least 2 response tokens in the batch, found {real_tokens}"
            ));
        }
        masked_whiten(g.advantages.clone(), mask)
    } else {
        g.advantages.clone()
    };
    // The critic-free advantages from the same scores: each response against its group (GRPO),
    // the group's others (RLOO) or the batch (REINFORCE).
    let group = match config.group {
        Some(params) => Some(group_advantages_ref(
            &score_values,
            params.group_size,
            params.scale,
        )?),
        None => None,
    };
    let sa = config.score_advantages;
    let per_response = |advantages: Tensor<1>| {
        let advantages = if sa.normalise {
            normalise_over_batch(advantages)
        } else {
            advantages
        };
        advantages.reshape([tasks.len(), 1]) * rows_f32(mask_rows, &device)
    };
    let scored = || {
        kl_penalised_scores(
            scores_tensor(&score_values, &device),
            rows_f32(&rollout.logprobs, &device),
            rows_f32(&ref_rows, &device),
            rows_f32(mask_rows, &device),
            sa.score_kl,
        )
        .0
    };
    let group_rows = match (sa.baseline, config.group) {
        (Baseline::GroupMean, Some(params)) => Some(group_advantages(
            scores_tensor(&score_values, &device),
            rows_f32(mask_rows, &device),
            params.group_size,
            params.scale,
        )),
        (Baseline::LeaveOneOut, Some(params)) => Some(per_response(leave_one_out_advantages(
            scored(),
            params.group_size,
        ))),
        (Baseline::BatchMean, _) if config.member.algorithm() == Algorithm::Grpo => {
            Some(per_response(batch_mean_advantages(scored())))
        }
        _ => None,
    };
    let group_rows = match group_rows {
        Some(rows) => to_rows(read_f32(rows).await?, r),
        None => Vec::new(),
    };
    let kept = match (sa.dynamic_sampling, config.group) {
        (false, _) => None,
        (true, Some(g)) => Some(groups_with_spread(&score_values, g.group_size)?),
        (true, None) => {
            return Err("dynamic sampling drops groups: the rows must be grouped by prompt".into());
        }
    };
    let experience = Experience {
        group,
        group_advantages: group_rows,
        member: config.member,
        kept,
        responses,
        scores,
        ref_logprobs: ref_rows,
        kl,
        rewards,
        deltas: to_rows(read_f32(g.deltas).await?, r),
        raw_advantages: to_rows(read_f32(g.advantages).await?, r),
        advantages: to_rows(read_f32(advantages).await?, r),
        returns: to_rows(read_f32(g.returns).await?, r),
        kl_coeff: config.kl_coeff,
        kl_estimator: config.kl_estimator,
        rollout,
    };
    times.gae_ms = lap();
    Ok((experience, times))
}

impl Experience {
    /// Which advantages the update takes: the critic's (PPO) or the scores' (the others).
    pub fn algorithm(&self) -> Algorithm {
        self.member.algorithm()
    }

    /// What the update needs: GAE's whitened advantages for PPO, the critic-free ones for the
    /// others; under dynamic sampling only the rows of the groups that stay (possibly none).
    pub fn batch(&self) -> PpoBatch {
        let all = self.every_row();
        match &self.kept {
            Some(kept) => all.select(&kept.rows),
            None => all,
        }
    }

    /// Whether the update had response `row` in its loss: under dynamic sampling, a response
    /// whose group's rewards were all equal is left out.
    pub fn row_used(&self, row: usize) -> bool {
        self.kept.as_ref().is_none_or(|k| k.rows.contains(&row))
    }

    /// Whether dynamic sampling left any response of the batch out of the update.
    pub fn some_left_out(&self) -> bool {
        self.kept
            .as_ref()
            .is_some_and(|k| k.rows.len() < self.rollout.ids.len())
    }

    /// Whether each group's advantages were divided by the group's std (GRPO with
    /// `scale_rewards`, and DAPO); false for a member without groups.
    pub fn group_scaled(&self) -> bool {
        self.group
            .as_ref()
            .is_some_and(|g| g.scale == crate::ppo::group_advantages::RewardScale::Group)
    }

    /// Whether the update had rows to learn from (not when dynamic sampling dropped every group).
    pub fn updated(&self) -> bool {
        self.kept.as_ref().is_none_or(|k| !k.rows.is_empty())
    }

    /// [`Experience::batch`] with every row, dynamic sampling or not.
    pub fn every_row(&self) -> PpoBatch {
        let advantages = match self.algorithm() {
            Algorithm::Ppo => self.advantages.clone(),
            Algorithm::Grpo => self.group_advantages.clone(),
        };
        PpoBatch {
            ref_logprobs: self.ref_logprobs.clone(),
            prompt_len: self.rollout.prompt_len,
            ids: self.rollout.ids.clone(),
            attention_mask: self.rollout.attention_mask.clone(),
            response_mask: self.rollout.response_mask.clone(),
            old_logprobs: self.rollout.logprobs.clone(),
            old_values: self.rollout.values.clone(),
            advantages,
            returns: self.returns.clone(),
        }
    }

    /// Mean task reward (the score, without the KL penalty).
    pub fn reward_mean(&self) -> f64 {
        let n = self.scores.len().max(1) as f64;
        self.scores.iter().map(|s| s.reward() as f64).sum::<f64>() / n
    }

    /// Fraction of responses with the right final answer.
    pub fn correct_frac(&self) -> f64 {
        let n = self.scores.len().max(1) as f64;
        let correct = self
            .scores
            .iter()
            .filter(|s| matches!(s, GsmScore::Correct { .. }))
            .count();
        correct as f64 / n
    }

    /// KL to the reference summed over each sequence's tokens, averaged over the batch (what
    /// the adaptive controller steers).
    pub fn kl_mean(&self) -> f64 {
        let n = self.kl.len().max(1) as f64;
        self.kl
            .iter()
            .map(|row| row.iter().map(|&k| k as f64).sum::<f64>())
            .sum::<f64>()
            / n
    }

    /// The critic's explained variance over every real token, `1 − Var(R − V) / Var(R)`
    /// ([`crate::health::explained_variance`]); None when the returns have no spread.
    pub fn explained_variance(&self) -> Option<f64> {
        let (mut returns, mut values) = (Vec::new(), Vec::new());
        for (b, mask) in self.rollout.response_mask.iter().enumerate() {
            for (t, &m) in mask.iter().enumerate() {
                if m > 0.0 {
                    returns.push(self.returns[b][t] as f64);
                    values.push(self.rollout.values[b][t] as f64);
                }
            }
        }
        crate::health::explained_variance(&returns, &values)
    }

    /// Mean number of response tokens (EOS included).
    pub fn response_len_mean(&self) -> f64 {
        let n = self.rollout.response_mask.len().max(1) as f64;
        self.rollout
            .response_mask
            .iter()
            .map(|row| row.iter().map(|&m| m as f64).sum::<f64>())
            .sum::<f64>()
            / n
    }
}

/// One row of `metrics.jsonl` and one point of every chart, named as in DESIGN.md.
pub fn metrics(experience: &Experience, stats: &UpdateStats) -> Vec<(&'static str, f64)> {
    let mut rows = vec![
        ("rollout/reward_mean", experience.reward_mean()),
        ("rollout/correct_frac", experience.correct_frac()),
        ("rollout/kl_mean", experience.kl_mean()),
        ("rollout/response_len_mean", experience.response_len_mean()),
        ("loss/policy", stats.loss_policy as f64),
        ("loss/value", stats.loss_value as f64),
        ("loss/entropy", stats.loss_entropy as f64),
        ("loss/total", stats.loss_total as f64),
        ("params/approx_kl", stats.approx_kl as f64),
        ("params/policy_clip_frac", stats.policy_clip_frac as f64),
        ("params/value_clip_frac", stats.value_clip_frac as f64),
        ("params/grad_norm", stats.grad_norm as f64),
        ("params/kl_coeff", experience.kl_coeff as f64),
        ("update/optimizer_steps", stats.optimizer_steps as f64),
        ("update/skipped_steps", stats.skipped_steps as f64),
    ];
    if experience.algorithm() == Algorithm::Grpo {
        // No critic and no KL penalty in the reward: GRPO's KL is a loss term.
        rows.retain(|(name, _)| {
            !matches!(
                *name,
                "loss/value" | "params/value_clip_frac" | "params/kl_coeff"
            )
        });
        rows.push(("loss/kl", stats.loss_kl as f64));
    } else if let Some(ev) = experience.explained_variance() {
        // How much of the returns' spread the critic's values (before the update) explain; left
        // out when every return is the same.
        rows.push(("critic/explained_variance", ev));
    }
    if let Some(group) = &experience.group {
        rows.push(("grpo/reward_std", group.reward_std_mean()));
        rows.push(("grpo/zero_std_frac", group.zero_spread_frac()));
    }
    if let Some(kept) = &experience.kept {
        // The share of the batch's groups the update saw.
        let groups = kept.kept.len().max(1) as f64;
        rows.push((
            "dapo/kept_groups_frac",
            (groups - kept.dropped() as f64) / groups,
        ));
    }
    if !experience.updated() {
        without_update(&mut rows);
    }
    rows
}

/// Leaves out the rows only an update makes (its losses, clip fractions, approx KL, gradient
/// norm): when dynamic sampling left nothing, a 0 there would read as a collapsed entropy or a
/// policy that did not move. The rollout's rows, β and the step counts stay.
pub fn without_update(rows: &mut Vec<(&'static str, f64)>) {
    rows.retain(|(name, _)| {
        !(name.starts_with("loss/")
            || matches!(
                *name,
                "params/approx_kl"
                    | "params/policy_clip_frac"
                    | "params/value_clip_frac"
                    | "params/grad_norm"
            ))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A step where dynamic sampling left nothing keeps the rollout's numbers, β and the step
    /// counts, and no number an update makes.
    #[test]
    fn a_step_without_an_update_reports_no_update_numbers() {
        let mut rows = vec![
            ("rollout/reward_mean", 1.0),
            ("loss/policy", 0.0),
            ("loss/entropy", 0.0),
            ("params/approx_kl", 0.0),
            ("params/policy_clip_frac", 0.0),
            ("params/grad_norm", 0.0),
            ("params/kl_coeff", 0.05),
            ("update/optimizer_steps", 0.0),
            ("dapo/kept_groups_frac", 0.0),
        ];
        without_update(&mut rows);
        let names: Vec<&str> = rows.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            vec![
                "rollout/reward_mean",
                "params/kl_coeff",
                "update/optimizer_steps",
                "dapo/kept_groups_frac"
            ]
        );
    }
}
