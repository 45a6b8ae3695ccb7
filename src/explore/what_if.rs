//! The what-if recompute: a batch's token rewards, GAE, returns and whitened advantages under
//! other γ, λ, β, KL estimator and whitening, by the same scalar functions whose equality with the
//! trainer's tensor code the `ppo` tests prove; no model pass. And a batch's GAE inputs in
//! `ppo-lens gae`'s format.

use crate::ppo::gae::{GaeParams, gae_ref};
use crate::ppo::iteration::Experience;
use crate::ppo::rewards::{KlEstimator, token_rewards_ref};
use crate::ppo::whiten::masked_whiten_ref;

/// The settings a what-if recompute changes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WhatIf {
    pub gamma: f32,
    pub lam: f32,
    pub kl_coeff: f32,
    pub estimator: KlEstimator,
    pub whiten: bool,
}

impl WhatIf {
    /// The settings `experience` was computed with.
    pub fn of(experience: &Experience, gae: GaeParams, whiten: bool) -> Self {
        Self {
            gamma: gae.gamma,
            lam: gae.lam,
            kl_coeff: experience.kl_coeff,
            estimator: experience.kl_estimator,
            whiten,
        }
    }
}

/// A batch's rewards and advantages recomputed under [`WhatIf`]; rows `[B][R]`, 0 on padding.
#[derive(Clone, Debug, PartialEq)]
pub struct WhatIfResult {
    pub settings: WhatIf,
    pub kl: Vec<Vec<f32>>,
    pub rewards: Vec<Vec<f32>>,
    /// GAE advantages before whitening.
    pub advantages: Vec<Vec<f32>>,
    pub returns: Vec<Vec<f32>>,
    /// The advantages the update would use: whitened over the batch, or `advantages`.
    pub used: Vec<Vec<f32>>,
}

pub fn what_if(experience: &Experience, settings: WhatIf) -> Result<WhatIfResult, String> {
    let params = GaeParams::new(settings.gamma, settings.lam)?;
    if !settings.kl_coeff.is_finite() || settings.kl_coeff < 0.0 {
        return Err(format!("β = {} must be a number ≥ 0", settings.kl_coeff));
    }
    let rollout = &experience.rollout;
    let mask = &rollout.response_mask;
    let (mut kl, mut rewards, mut advantages, mut returns) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (b, score) in experience.scores.iter().enumerate() {
        let (r, steps) = token_rewards_ref(
            score.reward(),
            &rollout.logprobs[b],
            &experience.ref_logprobs[b],
            &mask[b],
            settings.kl_coeff,
            settings.estimator,
        );
        let mut k = vec![0.0; mask[b].len()];
        for s in &steps {
            k[s.t] = s.kl;
        }
        let g = gae_ref(&r, &rollout.values[b], &mask[b], params);
        kl.push(k);
        rewards.push(r);
        advantages.push(g.advantages);
        returns.push(g.returns);
    }
    let used = if settings.whiten {
        let flat: Vec<f32> = advantages.concat();
        let white = masked_whiten_ref(&flat, &mask.concat())?.whitened;
        white
            .chunks(rollout.response_len().max(1))
            .map(<[f32]>::to_vec)
            .collect()
    } else {
        advantages.clone()
    };
    Ok(WhatIfResult {
        settings,
        kl,
        rewards,
        advantages,
        returns,
        used,
    })
}

/// Rows as a JSON array, every number exact (`{:?}` of an `f32` round-trips).
fn json_rows(rows: &[Vec<f32>]) -> String {
    let rows: Vec<String> = rows
        .iter()
        .map(|r| {
            let xs: Vec<String> = r.iter().map(|x| format!("{x:?}")).collect();
            format!("[{}]", xs.join(", "))
        })
        .collect();
    format!("[\n    {}\n  ]", rows.join(",\n    "))
}

/// GAE inputs in `ppo-lens gae`'s input format, exact.
pub fn gae_input_json(
    rewards: &[Vec<f32>],
    values: &[Vec<f32>],
    mask: &[Vec<f32>],
    gamma: f32,
    lam: f32,
) -> String {
    format!(
        "{{\n  \"rewards\": {},\n  \"values\": {},\n  \"mask\": {},\n  \"gamma\": {gamma:?},\n  \"lam\": {lam:?}\n}}",
        json_rows(rewards),
        json_rows(values),
        json_rows(mask),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gae_input_json_is_exact() {
        let json = gae_input_json(
            &[vec![0.1, -1.0 / 3.0]],
            &[vec![0.5, 2.0]],
            &[vec![1.0, 1.0]],
            0.9,
            0.95,
        );
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["rewards"][0][1].as_f64().unwrap() as f32, -1.0f32 / 3.0);
        assert_eq!(v["gamma"].as_f64().unwrap() as f32, 0.9f32);
    }
}
