//! What a training config's keys make at run time, for `ppo-lens train` and
//! `ppo-lens bench-recipe` alike: the two models' precisions, the optimizer, and the update's
//! settings with the algorithm.

use anyhow::{Result, anyhow};
use burn::optim::ModuleOptimizer;

use super::config::{AlgorithmName, PpoSection, TrainConfig};
use crate::adamw8bit::AdamW8bit;
use crate::cpu_fast::adamw::AdamW;
use crate::model::Precision;
use crate::ppo::Algorithm;
use crate::ppo::clip_range::ClipRange;
use crate::ppo::family::{Baseline, Scale, Unit};
use crate::ppo::group_advantages::{GroupParams, RewardScale};
use crate::ppo::grpo_loss::{GrpoCoeffs, LossAgg};
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
    /// PPO, or a critic-free member (every other).
    pub algorithm: Algorithm,
    /// How the rows are grouped (`None`: one response per prompt).
    pub group: Option<GroupParams>,
    /// How the critic-free advantages come from the scores.
    pub score_advantages: ScoreAdvantages,
    /// DAPO's: leave the groups whose rewards are all equal out of the update.
    pub dynamic_sampling: bool,
    pub update: UpdateConfig,
}

/// The member's choices ([`Family::objective`]) with its section's numbers.
pub fn update_settings(config: &TrainConfig) -> Result<Settings> {
    let (p, r) = (&config.ppo, &config.rollout);
    let family = config.algorithm.family();
    let objective = family.objective(p.clip_ratio as f32, r.max_new_tokens);
    let agg = match objective.unit {
        Unit::Token(agg) => agg,
        Unit::Response => LossAgg::TokenMean,
    };
    let scale = match objective.scale {
        Scale::GroupStd => RewardScale::Group,
        _ => RewardScale::None,
    };
    let group = |group_size: usize, scale: RewardScale| GroupParams { group_size, scale };
    let score = |baseline: Baseline, beta: f64, normalise: bool| ScoreAdvantages {
        baseline,
        score_kl: beta as f32,
        normalise,
    };
    let critic_free = |beta: f64, clip: Option<ClipRange>| GrpoCoeffs {
        beta: beta as f32,
        agg,
        clip,
        per_response: objective.unit == Unit::Response,
    };
    let (algorithm, group, score_advantages, grpo) = match config.algorithm {
        AlgorithmName::Ppo => (Algorithm::Ppo, None, ScoreAdvantages::default(), None),
        AlgorithmName::Grpo => {
            // GRPO's own keys choose its scale and aggregation.
            let g = &config.grpo;
            let scale = RewardScale::parse(&g.scale_rewards)
                .map_err(|e| anyhow!("grpo.scale_rewards: {e}"))?;
            let agg = LossAgg::parse_with_len(&g.loss_agg_mode, Some(r.max_new_tokens))
                .map_err(|e| anyhow!("grpo.loss_agg_mode: {e}"))?;
            let coeffs = GrpoCoeffs::grpo(g.beta as f32, agg);
            (
                Algorithm::Grpo,
                Some(group(g.group_size, scale)),
                ScoreAdvantages::default(),
                Some(coeffs),
            )
        }
        AlgorithmName::DrGrpo => {
            let d = &config.dr_grpo;
            (
                Algorithm::Grpo,
                Some(group(d.group_size, scale)),
                ScoreAdvantages::default(),
                Some(critic_free(d.beta, None)),
            )
        }
        AlgorithmName::Dapo => {
            let d = &config.dapo;
            let clip = ClipRange::new(d.clip_ratio_low as f32, d.clip_ratio_high as f32)
                .map_err(|e| anyhow!("dapo: {e}"))?;
            (
                Algorithm::Grpo,
                Some(group(d.group_size, scale)),
                ScoreAdvantages::default(),
                Some(critic_free(0.0, Some(clip))),
            )
        }
        AlgorithmName::Rloo => {
            let d = &config.rloo;
            (
                Algorithm::Grpo,
                Some(group(d.group_size, scale)),
                score(Baseline::LeaveOneOut, d.beta, d.normalize_advantages),
                Some(critic_free(0.0, objective.clip)),
            )
        }
        AlgorithmName::Reinforce => (
            Algorithm::Grpo,
            None,
            score(Baseline::BatchMean, config.reinforce.beta, false),
            Some(critic_free(0.0, Some(ClipRange::NONE))),
        ),
    };
    let update = UpdateConfig {
        grpo,
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
        algorithm,
        group,
        score_advantages,
        dynamic_sampling: objective.dynamic_sampling && config.dapo.dynamic_sampling,
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
        assert_eq!(settings.algorithm, Algorithm::Grpo);
        assert_eq!(
            settings.update.grpo.unwrap().agg,
            LossAgg::SeqMeanTokenSumNorm { max_len: 24 }
        );
        let bad = ["grpo.loss_agg_mode=dr_grpo".to_string()];
        let err = format!("{:#}", load_config(&file, &bad).unwrap_err());
        assert!(err.contains("grpo.loss_agg_mode") && err.contains("seq-mean-token-sum-norm"));
    }
}
