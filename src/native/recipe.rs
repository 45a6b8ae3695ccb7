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
use crate::ppo::group_advantages::{GroupParams, RewardScale};
use crate::ppo::grpo_loss::{GrpoCoeffs, LossAgg};
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

/// The algorithm, GRPO's grouping (`None` under PPO) and the update's settings.
pub fn update_settings(
    config: &TrainConfig,
) -> Result<(Algorithm, Option<GroupParams>, UpdateConfig)> {
    let (p, r) = (&config.ppo, &config.rollout);
    // GRPO: `group_size` samples of each prompt, advantages from the group, GRPO's objective.
    let (algorithm, group, grpo) = match config.algorithm {
        AlgorithmName::Ppo => (Algorithm::Ppo, None, None),
        AlgorithmName::Grpo => {
            let g = &config.grpo;
            let group = GroupParams {
                group_size: g.group_size,
                scale: RewardScale::parse(&g.scale_rewards)
                    .map_err(|e| anyhow!("grpo.scale_rewards: {e}"))?,
            };
            let coeffs = GrpoCoeffs {
                beta: g.beta as f32,
                agg: LossAgg::parse_with_len(&g.loss_agg_mode, Some(r.max_new_tokens))
                    .map_err(|e| anyhow!("grpo.loss_agg_mode: {e}"))?,
            };
            (Algorithm::Grpo, Some(group), Some(coeffs))
        }
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
    Ok((algorithm, group, update))
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
        let (algorithm, _, update) = update_settings(&config).unwrap();
        assert_eq!(algorithm, Algorithm::Grpo);
        assert_eq!(
            update.grpo.unwrap().agg,
            LossAgg::SeqMeanTokenSumNorm { max_len: 24 }
        );
        let bad = ["grpo.loss_agg_mode=dr_grpo".to_string()];
        let err = format!("{:#}", load_config(&file, &bad).unwrap_err());
        assert!(err.contains("grpo.loss_agg_mode") && err.contains("seq-mean-token-sum-norm"));
    }
}
