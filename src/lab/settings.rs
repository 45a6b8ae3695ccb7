//! Everything a student can change on the page: [`LabSettings`] (named by their URL keys,
//! `?gamma=0.99&lr=1e-4`), each key's label, one-line meaning and accepted range
//! ([`SETTING_KEYS`], [`LabSettings::set`]), and the update and grouping settings they make.

use crate::health::{AdvantageScale, Knob};
use crate::ppo::family::{DAPO_EPS_HIGH, Family};
use crate::ppo::group_advantages::{GroupParams, RewardScale};
use crate::ppo::losses::LossCoeffs;
use crate::ppo::member_setup::{MemberParams, MemberSetup};
use crate::ppo::update::UpdateConfig;
use crate::rollout::sampling::SamplingParams;

/// Everything a student can change. Names are the URL keys (`?gamma=0.99&lr=1e-4`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LabSettings {
    /// Seeds the problems, the value head, sampling and shuffling.
    pub seed: u64,
    /// Responses sampled per iteration (the batch).
    pub rollouts: usize,
    pub max_new_tokens: usize,
    pub temperature: f32,
    pub gamma: f32,
    pub lam: f32,
    /// `eps` of the policy clip band `[1 - eps, 1 + eps]`.
    pub clip: f32,
    /// How far a value may move from the old one before its loss is clipped.
    pub vclip: f32,
    pub kl: f32,
    /// The adaptive KL controller's target KL to the reference per response (0: β stays at
    /// `kl`).
    pub kl_target: f32,
    /// The controller's horizon in responses: one iteration of `rollouts` responses moves β by
    /// at most `0.2 × rollouts / kl_horizon` of itself.
    pub kl_horizon: f32,
    pub ent: f32,
    pub vf: f32,
    pub lr: f64,
    /// The learning rate of the value head's bias: how fast the critic's level follows the mean
    /// return.
    pub vblr: f64,
    pub epochs: usize,
    /// Rows per forward/backward pass of the update.
    pub minibatch: usize,
    pub whiten: bool,
    /// The member of the policy-gradient family the update runs.
    pub algo: Family,
    /// Samples per prompt: 1 draws a different problem for every row; G > 1 arranges the batch
    /// as rollouts / G problems times G samples, so GRPO's group advantages can be computed.
    pub group: usize,
    /// GRPO: divide by the group's std (`group`) or not (`none`).
    pub scale: RewardScale,
    /// GRPO: the weight of the KL term in the loss.
    pub beta: f32,
}

impl Default for LabSettings {
    /// `configs/config_debug.yaml`'s recipe, the one that visibly raises the tiny model's
    /// reward, with a smaller batch so one iteration is quick to step through.
    fn default() -> Self {
        Self {
            seed: 1,
            rollouts: 16,
            max_new_tokens: 48,
            temperature: 1.0,
            gamma: 1.0,
            lam: 0.95,
            clip: 0.2,
            vclip: 0.2,
            kl: 0.05,
            kl_target: 0.0,
            kl_horizon: 64.0,
            ent: 0.01,
            vf: 0.1,
            lr: 3e-5,
            vblr: 1e-2,
            epochs: 2,
            minibatch: 8,
            whiten: true,
            algo: Family::Ppo,
            group: 1,
            scale: RewardScale::Group,
            beta: 0.04,
        }
    }
}

/// One URL key: its name, what it means, and how to read and write it.
pub struct SettingKey {
    pub key: &'static str,
    pub label: &'static str,
    /// What the setting does, in a line (the page shows it beside the field).
    pub about: &'static str,
}

/// Every setting, in the order the page lists them.
pub const SETTING_KEYS: &[SettingKey] = &[
    SettingKey {
        key: "seed",
        label: "seed",
        about: "the random seed of the problems drawn, the value head's start, sampling and shuffling; applied on reset",
    },
    SettingKey {
        key: "rollouts",
        label: "rollouts per iteration",
        about: "how many responses one iteration samples (2 to 64)",
    },
    SettingKey {
        key: "max_new_tokens",
        label: "max new tokens",
        about: "the longest response; one cut here is treated as terminal (1 to 96)",
    },
    SettingKey {
        key: "temperature",
        label: "temperature",
        about: "divides the logits before sampling: below 1 sharper, above 1 flatter",
    },
    SettingKey {
        key: "gamma",
        label: "γ (gamma)",
        about: "the discount of future rewards in GAE; 1 leaves them undiscounted (PPO only: the critic-free members use the score)",
    },
    SettingKey {
        key: "lam",
        label: "λ (lambda)",
        about: "GAE's trade-off: 0 trusts the critic (one-step δ), 1 takes the γ-discounted sum of every reward to the end (PPO only)",
    },
    SettingKey {
        key: "clip",
        label: "clip ε",
        about: "the policy clip: once a token's ratio has left [1 − ε, 1 + ε] on the side its advantage pushes, its own term's gradient is 0 (the ratio is not capped); DAPO: the lower edge only (its upper is 1.28); RLOO: the whole response's ratio; REINFORCE: no clip",
    },
    SettingKey {
        key: "vclip",
        label: "value clip",
        about: "the value clip c: the loss takes the larger of the unclipped and the clipped squared error, so once V_new has left [V_old − c, V_old + c] after moving toward the return R (without passing R by as much as the band's edge is from R), that token's value gradient is 0; moved away from R, the unclipped error is the larger and pulls it back (PPO only)",
    },
    SettingKey {
        key: "kl",
        label: "kl_coeff β",
        about: "β: each token's reward is −β × its KL to the frozen reference (plus the score on the last token)",
    },
    SettingKey {
        key: "kl_target",
        label: "adaptive KL target",
        about: "PPO's adaptive KL: 0, β stays as set; above 0, after each iteration β is multiplied by 1 + clip(KL / target − 1, ±0.2) × rollouts / horizon, so a KL per response above the target raises the penalty and one below lowers it",
    },
    SettingKey {
        key: "kl_horizon",
        label: "adaptive KL horizon",
        about: "responses over which β adapts: one iteration moves β by at most 0.2 × rollouts / horizon of itself",
    },
    SettingKey {
        key: "ent",
        label: "entropy_coeff",
        about: "the weight of the entropy bonus in the total loss",
    },
    SettingKey {
        key: "vf",
        label: "vf_coef",
        about: "the weight of the value loss in the total loss (PPO only)",
    },
    SettingKey {
        key: "lr",
        label: "learning rate",
        about: "AdamW's learning rate for every weight but the value head's bias",
    },
    SettingKey {
        key: "vblr",
        label: "critic bias learning rate",
        about: "AdamW's learning rate for the value head's bias, the critic's level: how fast its values follow the mean return as the reward rises (PPO only)",
    },
    SettingKey {
        key: "epochs",
        label: "epochs",
        about: "how many passes the update makes over one batch",
    },
    SettingKey {
        key: "minibatch",
        label: "mini-batch rows",
        about: "rows per optimizer step",
    },
    SettingKey {
        key: "whiten",
        label: "whiten advantages",
        about: "shift the batch's advantages to mean 0 and scale them to std 1 before the update (PPO only)",
    },
    SettingKey {
        key: "algo",
        label: "algorithm",
        about: "ppo (GAE on the critic's values), or no critic: grpo and dapo (the response's reward against its group's mean, over the group's std; grpo's only with scale group), dr_grpo (the same without the std), rloo (against the mean of the other responses to its prompt), reinforce (against the batch's mean); all but ppo and reinforce need samples per prompt > 1, reinforce needs epochs 1",
    },
    SettingKey {
        key: "group",
        label: "samples per prompt",
        about: "G: the batch is rollouts / G problems, each sampled G times (1: all different); must divide the rollouts",
    },
    SettingKey {
        key: "scale",
        label: "GRPO std scaling",
        about: "GRPO's group: A = (r − mean) / (std + 1e-4); none: A = r − mean (the other members fix their own)",
    },
    SettingKey {
        key: "beta",
        label: "β, critic-free KL",
        about: "the KL weight of a critic-free member: a k3 loss term in GRPO and Dr. GRPO, a penalty on the response's score in RLOO and REINFORCE; DAPO has none (PPO's is kl, in each token's reward)",
    },
];

/// How the page names a setting that run-health advice mentions: its label and URL key as the
/// settings panel shows them ("learning rate (lr)"); one the page does not have, as the
/// trainer's config key.
pub fn knob_name(knob: Knob) -> String {
    let on_page = knob
        .page_key()
        .and_then(|key| SETTING_KEYS.iter().find(|s| s.key == key));
    match on_page {
        Some(s) if s.label == s.key => s.label.to_string(),
        Some(s) => format!("{} ({})", s.label, s.key),
        None => format!("the trainer's {}; fixed on this page", knob.config_key()),
    }
}

fn number<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("`{key}`: `{value}` is not a number"))
}

fn in_range<T: PartialOrd + std::fmt::Display + Copy>(
    key: &str,
    x: T,
    lo: T,
    hi: T,
) -> Result<T, String> {
    if x >= lo && x <= hi {
        Ok(x)
    } else {
        Err(format!("`{key}`: {x} is outside {lo}..={hi}"))
    }
}

impl LabSettings {
    /// The value of `key` as the URL and the form write it.
    pub fn get(&self, key: &str) -> Option<String> {
        Some(match key {
            "seed" => self.seed.to_string(),
            "rollouts" => self.rollouts.to_string(),
            "max_new_tokens" => self.max_new_tokens.to_string(),
            "temperature" => self.temperature.to_string(),
            "gamma" => self.gamma.to_string(),
            "lam" => self.lam.to_string(),
            "clip" => self.clip.to_string(),
            "vclip" => self.vclip.to_string(),
            "kl" => self.kl.to_string(),
            "kl_target" => self.kl_target.to_string(),
            "kl_horizon" => self.kl_horizon.to_string(),
            "ent" => self.ent.to_string(),
            "vf" => self.vf.to_string(),
            "lr" => format!("{:e}", self.lr),
            "vblr" => format!("{:e}", self.vblr),
            "epochs" => self.epochs.to_string(),
            "minibatch" => self.minibatch.to_string(),
            "whiten" => self.whiten.to_string(),
            "algo" => self.algo.key().to_string(),
            "group" => self.group.to_string(),
            "scale" => self.scale.name().to_string(),
            "beta" => self.beta.to_string(),
            _ => return None,
        })
    }

    /// Sets `key` from text, or says what is wrong with it (naming the key and the value).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "seed" => self.seed = number(key, value)?,
            "rollouts" => self.rollouts = in_range(key, number(key, value)?, 2, 64)?,
            "max_new_tokens" => self.max_new_tokens = in_range(key, number(key, value)?, 1, 96)?,
            "temperature" => {
                let t: f32 = number(key, value)?;
                SamplingParams::new(t, 0, 1.0).map_err(|e| format!("`{key}`: {e}"))?;
                self.temperature = t;
            }
            "gamma" => self.gamma = in_range(key, number(key, value)?, 0.0, 1.0)?,
            "lam" => self.lam = in_range(key, number(key, value)?, 0.0, 1.0)?,
            "clip" => self.clip = in_range(key, number(key, value)?, 0.0, 10.0)?,
            "vclip" => self.vclip = in_range(key, number(key, value)?, 0.0, 100.0)?,
            "kl" => self.kl = in_range(key, number(key, value)?, 0.0, 10.0)?,
            "kl_target" => self.kl_target = in_range(key, number(key, value)?, 0.0, 1000.0)?,
            "kl_horizon" => self.kl_horizon = in_range(key, number(key, value)?, 1.0, 1e6)?,
            "ent" => self.ent = in_range(key, number(key, value)?, 0.0, 10.0)?,
            "vf" => self.vf = in_range(key, number(key, value)?, 0.0, 10.0)?,
            "lr" => self.lr = in_range(key, number(key, value)?, 0.0, 1.0)?,
            "vblr" => self.vblr = in_range(key, number(key, value)?, 0.0, 1.0)?,
            "epochs" => self.epochs = in_range(key, number(key, value)?, 1, 16)?,
            "minibatch" => self.minibatch = in_range(key, number(key, value)?, 1, 64)?,
            "whiten" => {
                self.whiten = match value.trim() {
                    "true" | "1" | "on" => true,
                    "false" | "0" | "off" => false,
                    other => return Err(format!("`{key}`: `{other}` is not true or false")),
                }
            }
            "algo" => {
                self.algo = Family::parse(value.trim()).map_err(|e| format!("`{key}`: {e}"))?
            }
            "group" => self.group = in_range(key, number(key, value)?, 1, 16)?,
            "scale" => {
                self.scale =
                    RewardScale::parse(value.trim()).map_err(|e| format!("`{key}`: {e}"))?
            }
            "beta" => self.beta = in_range(key, number(key, value)?, 0.0, 10.0)?,
            other => return Err(format!("unknown setting `{other}`")),
        }
        Ok(())
    }

    /// The keys that differ from the defaults, as `key=value` pairs (what a shared URL needs).
    pub fn changed(&self) -> Vec<(&'static str, String)> {
        let default = Self::default();
        SETTING_KEYS
            .iter()
            .filter_map(|k| {
                let value = self.get(k.key)?;
                (default.get(k.key).as_deref() != Some(value.as_str())).then_some((k.key, value))
            })
            .collect()
    }

    /// The mini-batch the update uses: at most the batch.
    pub fn minibatch_rows(&self) -> usize {
        self.minibatch.min(self.rollouts)
    }

    pub fn update_config(&self) -> UpdateConfig {
        UpdateConfig {
            epochs: self.epochs,
            mini_batch_size: self.minibatch_rows(),
            gradient_accumulation_steps: 1,
            max_grad_norm: Some(1.0),
            lr: self.lr,
            value_bias_lr: Some(self.vblr),
            temperature: self.temperature,
            coeffs: LossCoeffs {
                clip_ratio: self.clip,
                clip_range_value: self.vclip,
                vf_coef: self.vf,
                entropy_coeff: self.ent,
            },
            grpo: self.member_setup().grpo,
        }
    }

    /// What the member runs with ([`Family::setup`]: the clip `clip`, the KL weight `beta`, the
    /// constant length `max_new_tokens`); the group's scale is the `scale` setting for GRPO (its
    /// own key, as the trainer's `grpo.scale_rewards`) and for PPO (whose comparison panel shows
    /// GRPO's advantages), the member's own otherwise.
    pub fn member_setup(&self) -> MemberSetup {
        let mut setup = self.algo.setup(self.clip, self.beta, self.max_new_tokens);
        if matches!(self.algo, Family::Grpo | Family::Ppo) {
            setup.scale = self.scale;
        }
        setup
    }

    /// How the member that runs scales its advantages, which run health's clip advice names.
    pub fn advantage_scale(&self) -> AdvantageScale {
        match self.algo {
            Family::Ppo if self.whiten => AdvantageScale::Scaled,
            Family::Ppo => AdvantageScale::WhitenOff,
            Family::Grpo if self.scale == RewardScale::Group => AdvantageScale::Scaled,
            Family::Grpo => AdvantageScale::GroupStdOff,
            Family::Dapo => AdvantageScale::Scaled,
            Family::DrGrpo | Family::Rloo | Family::Reinforce => AdvantageScale::Unscaled,
        }
    }

    /// What the family panel compares the members under.
    pub fn member_params(&self) -> MemberParams {
        MemberParams {
            beta: self.beta,
            max_new_tokens: self.max_new_tokens,
            clip: self.clip,
        }
    }

    /// The batch's grouping, or what is wrong with the settings together (the error names each
    /// setting, the one to change first).
    pub fn groups(&self) -> Result<Option<GroupParams>, String> {
        if self.group > 1 && !self.rollouts.is_multiple_of(self.group) {
            return Err(format!(
                "`group`: {} samples per prompt do not divide `rollouts` {}",
                self.group, self.rollouts
            ));
        }
        if self.algo.needs_groups() && self.group < 2 {
            return Err(format!(
                "`algo`: {} compares samples of one prompt: set `group` (samples per prompt) to 2 or more",
                self.algo.name()
            ));
        }
        if self.algo == Family::Dapo && self.clip >= DAPO_EPS_HIGH {
            return Err(format!(
                "`clip`: DAPO clips higher above ({DAPO_EPS_HIGH}) than below: set `clip` under {DAPO_EPS_HIGH}"
            ));
        }
        if self.algo == Family::Reinforce && self.epochs != 1 {
            return Err(
                "`epochs`: REINFORCE has no clip to stop a second pass over the same batch: set `epochs` to 1"
                    .into(),
            );
        }
        Ok((self.group > 1).then_some(GroupParams {
            group_size: self.group,
            scale: self.member_setup().scale,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_round_trips_and_defaults_share_as_nothing() {
        let defaults = LabSettings::default();
        assert!(defaults.changed().is_empty());
        for k in SETTING_KEYS {
            let mut s = LabSettings::default();
            let v = defaults.get(k.key).unwrap();
            s.set(k.key, &v).unwrap();
            assert_eq!(s, defaults, "{}", k.key);
        }
        // Every key set to a value other than its default keeps it: it reads back as written,
        // and it is the one change a shared URL carries.
        let other = [
            ("seed", "7"),
            ("rollouts", "8"),
            ("max_new_tokens", "33"),
            ("temperature", "0.5"),
            ("gamma", "0.9"),
            ("lam", "0.8"),
            ("clip", "0.3"),
            ("vclip", "0.4"),
            ("kl", "0.1"),
            ("kl_target", "0.02"),
            ("kl_horizon", "500"),
            ("ent", "0.02"),
            ("vf", "0.2"),
            ("lr", "1e-4"),
            ("vblr", "2e-3"),
            ("epochs", "3"),
            ("minibatch", "5"),
            ("whiten", "false"),
            ("algo", "grpo"),
            ("group", "2"),
            ("scale", "none"),
            ("beta", "0.1"),
        ];
        assert_eq!(other.len(), SETTING_KEYS.len());
        for (key, value) in other {
            let mut s = LabSettings::default();
            s.set(key, value).unwrap();
            assert_eq!(s.get(key).as_deref(), Some(value), "{key}");
            assert_eq!(s.changed(), vec![(key, value.to_string())], "{key}");
        }
        let mut s = LabSettings::default();
        s.set("gamma", "0.9").unwrap();
        s.set("lr", "1e-4").unwrap();
        s.set("whiten", "off").unwrap();
        assert_eq!(
            s.changed(),
            vec![
                ("gamma", "0.9".to_string()),
                ("lr", "1e-4".to_string()),
                ("whiten", "false".to_string())
            ]
        );
    }

    #[test]
    fn bad_values_name_the_key_and_the_value() {
        let mut s = LabSettings::default();
        let cases = [
            ("gamma", "abc", "`gamma`: `abc` is not a number"),
            ("gamma", "1.5", "`gamma`: 1.5 is outside 0..=1"),
            ("rollouts", "1", "`rollouts`: 1 is outside 2..=64"),
            ("whiten", "maybe", "`whiten`: `maybe` is not true or false"),
            ("nope", "1", "unknown setting `nope`"),
            (
                "algo",
                "ppo2",
                "`algo`: unknown algorithm `ppo2`: expected one of reinforce, rloo, ppo, grpo, dr_grpo, dapo",
            ),
        ];
        for (key, value, message) in cases {
            assert_eq!(s.set(key, value).unwrap_err(), message);
        }
        let err = s.set("temperature", "0").unwrap_err();
        assert!(err.starts_with("`temperature`: "), "{err}");
        assert_eq!(s, LabSettings::default(), "a refused value changes nothing");
    }
}
