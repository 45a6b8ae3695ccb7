//! The trainer's algorithm and the sections of the policy-gradient family's members
//! (`src/ppo/family.rs`): each member but PPO reads its own section of the same name, with
//! only its numbers; what makes the member is fixed by its preset.

use serde::{Deserialize, Serialize};

use crate::ppo::family::Family;

/// The policy-gradient family's members the trainer runs (`src/ppo/family.rs`); each but PPO
/// reads its own section of the same name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlgorithmName {
    Ppo,
    Grpo,
    DrGrpo,
    Dapo,
    Rloo,
    Reinforce,
}

impl AlgorithmName {
    pub fn family(self) -> Family {
        match self {
            AlgorithmName::Ppo => Family::Ppo,
            AlgorithmName::Grpo => Family::Grpo,
            AlgorithmName::DrGrpo => Family::DrGrpo,
            AlgorithmName::Dapo => Family::Dapo,
            AlgorithmName::Rloo => Family::Rloo,
            AlgorithmName::Reinforce => Family::Reinforce,
        }
    }
}

/// GRPO's own keys; the update's other settings (epochs, mini-batches, learning rate, clip
/// ratio, entropy bonus, gradient clipping, optimizer) are the `ppo` section's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpoSection {
    /// Responses sampled per prompt; `rollout.batch_size` counts responses.
    pub group_size: usize,
    /// `group` or `none` (TRL's `scale_rewards`).
    pub scale_rewards: String,
    /// `seq-mean-token-mean`, `token-mean` or `seq-mean-token-sum-norm` (verl's `loss_agg_mode`;
    /// the last divides by `rollout.max_new_tokens`, as Dr. GRPO).
    pub loss_agg_mode: String,
    /// The weight of the k3 KL to the reference in the loss.
    pub beta: f64,
}

/// Dr. GRPO's keys (no std division and a constant length are what it is, not settings).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrGrpoSection {
    pub group_size: usize,
    /// The weight of the k3 KL to the reference in the loss.
    pub beta: f64,
}

/// DAPO's keys (the std division and token-mean are what it is; it has no KL term).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DapoSection {
    pub group_size: usize,
    /// The band `[1 - clip_ratio_low, 1 + clip_ratio_high]` (`ppo.clip_ratio` is not read).
    pub clip_ratio_low: f64,
    pub clip_ratio_high: f64,
    /// Leave groups whose rewards are all equal out of the update.
    pub dynamic_sampling: bool,
}

/// RLOO's keys (`group_size` is TRL RLOOTrainer's `num_generations`, once `rloo_k`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RlooSection {
    pub group_size: usize,
    /// The weight of the KL to the reference in each response's score.
    pub beta: f64,
    /// Normalise the advantages over the batch.
    pub normalize_advantages: bool,
}

/// REINFORCE's keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReinforceSection {
    /// The weight of the KL to the reference in each response's score.
    pub beta: f64,
}

/// `check(ok, key, rule, found)`: an error naming the key when not `ok`.
pub type Check<'a> = &'a dyn Fn(bool, &str, &str, String) -> Result<(), String>;

/// A group member's `group_size`: at least 2, dividing the batch.
fn check_group(
    section: &str,
    group_size: usize,
    batch_size: usize,
    check: Check,
) -> Result<(), String> {
    check(
        group_size >= 2 && batch_size.is_multiple_of(group_size),
        &format!("{section}.group_size"),
        &format!("must be at least 2 and divide rollout.batch_size ({batch_size})"),
        group_size.to_string(),
    )
}

fn check_beta(section: &str, beta: f64, check: Check) -> Result<(), String> {
    check(
        beta >= 0.0,
        &format!("{section}.beta"),
        "must be >= 0",
        beta.to_string(),
    )
}

impl GrpoSection {
    pub fn validate(&self, batch_size: usize, check: Check) -> Result<(), String> {
        check_group("grpo", self.group_size, batch_size, check)?;
        check(
            matches!(self.scale_rewards.as_str(), "group" | "none"),
            "grpo.scale_rewards",
            "must be group or none",
            self.scale_rewards.clone(),
        )?;
        check(
            matches!(
                self.loss_agg_mode.as_str(),
                "seq-mean-token-mean" | "token-mean" | "seq-mean-token-sum-norm"
            ),
            "grpo.loss_agg_mode",
            "must be seq-mean-token-mean, token-mean or seq-mean-token-sum-norm",
            self.loss_agg_mode.clone(),
        )?;
        check_beta("grpo", self.beta, check)
    }
}

impl DrGrpoSection {
    pub fn validate(&self, batch_size: usize, check: Check) -> Result<(), String> {
        check_group("dr_grpo", self.group_size, batch_size, check)?;
        check_beta("dr_grpo", self.beta, check)
    }
}

impl DapoSection {
    pub fn validate(&self, batch_size: usize, check: Check) -> Result<(), String> {
        check_group("dapo", self.group_size, batch_size, check)?;
        check(
            (0.0..1.0).contains(&self.clip_ratio_low),
            "dapo.clip_ratio_low",
            "must be at least 0 and below 1",
            self.clip_ratio_low.to_string(),
        )?;
        check(
            self.clip_ratio_high >= 0.0,
            "dapo.clip_ratio_high",
            "must be >= 0",
            self.clip_ratio_high.to_string(),
        )
    }
}

impl RlooSection {
    pub fn validate(&self, batch_size: usize, check: Check) -> Result<(), String> {
        check_group("rloo", self.group_size, batch_size, check)?;
        check_beta("rloo", self.beta, check)
    }
}

impl ReinforceSection {
    /// `epochs` is `ppo.epochs`: with no clip, nothing keeps a second pass over the batch near
    /// the policy that sampled it.
    pub fn validate(&self, epochs: usize, check: Check) -> Result<(), String> {
        check(
            epochs == 1,
            "ppo.epochs",
            "must be 1 for algorithm reinforce (it has no clip to keep a second pass over the \
             batch near the policy that sampled it)",
            epochs.to_string(),
        )?;
        check_beta("reinforce", self.beta, check)
    }
}
