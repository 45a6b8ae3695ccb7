//! What a training config's keys make at run time, for `ppo-lens train` and
//! `ppo-lens bench-recipe` alike: the two models' precisions, the optimizer, and the update's
//! settings with the algorithm.

use anyhow::{Result, anyhow};
use burn::optim::ModuleOptimizer;

use super::config::{AlgorithmName, PpoSection, TrainConfig};
use crate::adamw8bit::AdamW8bit;
use crate::cpu_fast::adamw::AdamW;
use crate::health::{AdvantageScale, RunSettings};
use crate::model::Precision;
use crate::ppo::clip_range::ClipRange;
use crate::ppo::family::Family;
use crate::ppo::group_advantages::{GroupParams, RewardScale};
use crate::ppo::grpo_loss::LossAgg;
use crate::ppo::iteration::ScoreAdvantages;
use crate::ppo::losses::LossCoeffs;
use crate::ppo::update::UpdateConfig;

/// `training.dtype` as (the frozen reference's precision, the policy's): bfloat16 makes the
/// reference all bf16 and the policy mixed (f32 master weights computing in bf16, so that small
/// AdamW steps are not rounded away); float32 keeps both in f32.
pub fn precisions(dtype: &str) -> (Precision, Precision) {
    if dtype == "bfloat16" {
        (Precision::Bf16, Precision::MixedBf16)
    } else {
        (Precision::F32, Precision::F32)
    }
}

/// The optimizer's name in a checkpoint's trainer state: `adamw`, or `adamw8bit` with
/// `ppo.use_8bit_adam`.
pub fn optimizer_name(p: &PpoSection) -> &'static str {
    if p.use_8bit_adam {
        "adamw8bit"
    } else {
        "adamw"
    }
}

/// AdamW with f32 moments, or with 8-bit moments (`ppo.use_8bit_adam`, src/adamw8bit.rs).
pub fn new_optimizer(p: &PpoSection) -> ModuleOptimizer {
    if p.use_8bit_adam {
        AdamW8bit::new(p.weight_decay as f32).init()
    } else {
        AdamW::new(p.weight_decay as f32).init()
    }
}

/// What the trainer runs, from the config's `algorithm` and its section.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// The member of the family (PPO, or a critic-free one).
    pub member: Family,
    /// How the rows are grouped (`None`: one response per prompt).
    pub group: Option<GroupParams>,
    /// How the critic-free advantages come from the scores (DAPO's dynamic sampling included).
    pub score_advantages: ScoreAdvantages,
    pub update: UpdateConfig,
}

/// What run health checks a run of `config` against: its gradient clipping, the setting that
/// weighs its KL, and how its advantages are scaled.
pub fn health_settings(config: &TrainConfig) -> RunSettings {
    let scaled = |on: bool, off: AdvantageScale| if on { AdvantageScale::Scaled } else { off };
    let scale = match config.algorithm {
        AlgorithmName::Ppo => scaled(config.ppo.whiten_advantages, AdvantageScale::WhitenOff),
        AlgorithmName::Grpo => scaled(
            config.grpo.scale_rewards == RewardScale::Group.name(),
            AdvantageScale::GroupStdOff,
        ),
        AlgorithmName::Rloo => scaled(
            config.rloo.normalize_advantages,
            AdvantageScale::NormalizeOff,
        ),
        AlgorithmName::Dapo => AdvantageScale::Scaled,
        AlgorithmName::DrGrpo | AlgorithmName::Reinforce => AdvantageScale::Unscaled,
    };
    RunSettings {
        max_grad_norm: config.ppo.max_grad_norm,
        kl: config.algorithm.family().kl_knob(),
        scale,
    }
}

/// The member's setup ([`Family::setup`]) with its section's numbers.
pub fn update_settings(config: &TrainConfig) -> Result<Settings> {
    let (p, r) = (&config.ppo, &config.rollout);
    let member = config.algorithm.family();
    // The KL weight wherever the member puts it (PPO's is the reward's `kl_coeff`; DAPO has
    // none), and the samples per prompt.
    let (beta, group_size) = match config.algorithm {
        AlgorithmName::Ppo => (0.0, None),
        AlgorithmName::Grpo => (config.grpo.beta, Some(config.grpo.group_size)),
        AlgorithmName::DrGrpo => (config.dr_grpo.beta, Some(config.dr_grpo.group_size)),
        AlgorithmName::Dapo => (0.0, Some(config.dapo.group_size)),
        AlgorithmName::Rloo => (config.rloo.beta, Some(config.rloo.group_size)),
        AlgorithmName::Reinforce => (config.reinforce.beta, None),
    };
    let mut setup = member.setup(p.clip_ratio as f32, beta as f32, r.max_new_tokens);
    // The keys that change a preset.
    match config.algorithm {
        AlgorithmName::Grpo => {
            let g = &config.grpo;
            setup.scale = RewardScale::parse(&g.scale_rewards)
                .map_err(|e| anyhow!("grpo.scale_rewards: {e}"))?;
            let agg = LossAgg::parse_with_len(&g.loss_agg_mode, Some(r.max_new_tokens))
                .map_err(|e| anyhow!("grpo.loss_agg_mode: {e}"))?;
            if let Some(coeffs) = setup.grpo.as_mut() {
                coeffs.agg = agg;
            }
        }
        AlgorithmName::Dapo => {
            let d = &config.dapo;
            let clip = ClipRange::new(d.clip_ratio_low as f32, d.clip_ratio_high as f32)
                .map_err(|e| anyhow!("dapo: {e}"))?;
            if let Some(coeffs) = setup.grpo.as_mut() {
                coeffs.clip = clip;
            }
            setup.score_advantages.dynamic_sampling = d.dynamic_sampling;
        }
        AlgorithmName::Rloo => {
            setup.score_advantages.normalise = config.rloo.normalize_advantages;
        }
        AlgorithmName::Ppo | AlgorithmName::DrGrpo | AlgorithmName::Reinforce => {}
    }
    let update = UpdateConfig {
        grpo: setup.grpo,
        epochs: p.epochs,
        mini_batch_size: p.mini_batch_size,
        gradient_accumulation_steps: p.gradient_accumulation_steps,
        max_grad_norm: p.max_grad_norm.map(|x| x as f32),
        lr: p.learning_rate,
        value_bias_lr: p.value_bias_learning_rate,
        temperature: r.temperature,
        coeffs: LossCoeffs {
            clip_ratio: p.clip_ratio as f32,
            clip_range_value: p.clip_range_value as f32,
            vf_coef: p.vf_coef as f32,
            entropy_coeff: p.entropy_coeff as f32,
        },
    };
    Ok(Settings {
        member,
        group: group_size.map(|group_size| GroupParams {
            group_size,
            scale: setup.scale,
        }),
        score_advantages: setup.score_advantages,
        update,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::native::config::load_config;
    use std::path::Path;

    /// Dr. GRPO's aggregation divides by the config's own `rollout.max_new_tokens`.
    #[test]
    fn the_constant_length_aggregation_reads_max_new_tokens() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/config_debug_grpo.yaml");
        let overrides = [
            "grpo.loss_agg_mode=seq-mean-token-sum-norm".to_string(),
            "rollout.max_new_tokens=24".to_string(),
        ];
        let config = load_config(&file, &overrides).unwrap();
        let settings = update_settings(&config).unwrap();
        assert_eq!(settings.member, Family::Grpo);
        assert_eq!(
            settings.update.grpo.unwrap().agg,
            LossAgg::SeqMeanTokenSumNorm { max_len: 24 }
        );
        let bad = ["grpo.loss_agg_mode=dr_grpo".to_string()];
        let err = format!("{:#}", load_config(&file, &bad).unwrap_err());
        assert!(err.contains("grpo.loss_agg_mode") && err.contains("seq-mean-token-sum-norm"));
    }
}
