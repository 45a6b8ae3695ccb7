//! Everything a student can change on the page: [`LabSettings`] (named by their URL keys,
//! `?gamma=0.99&lr=1e-4`), each key's accepted range ([`LabSettings::set`]), and the update and
//! grouping settings they make. Each key's label and meaning are in [`super::setting_keys`].

use super::setting_keys::{SETTING_KEYS, label};
use crate::health::AdvantageScale;
use crate::ppo::family::{DAPO_EPS_HIGH, Family};
use crate::ppo::group_advantages::{GroupParams, RewardScale};
use crate::ppo::losses::LossCoeffs;
use crate::ppo::member_setup::{MemberParams, MemberSetup};
use crate::ppo::update::UpdateConfig;
use crate::rollout::sampling::SamplingParams;

/// The adaptive KL horizon's least value: at the most rollouts (64) one iteration moves β by at
/// most 0.2 × 64 / 16 = 80% of itself, so a KL under the target never takes β to 0 or below.
pub const KL_HORIZON_MIN: f32 = 16.0;

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
    /// at most `0.2 × rollouts / kl_horizon` of itself, at most 80% (at least [`KL_HORIZON_MIN`]),
    /// so that β never reaches 0.
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

fn number<T: std::str::FromStr>(value: &str) -> Result<T, String> {
    let value = value.trim();
    value
        .parse()
        .map_err(|_| format!("“{value}” is not a number"))
}

fn in_range<T: PartialOrd + std::fmt::Display + Copy>(x: T, lo: T, hi: T) -> Result<T, String> {
    if x >= lo && x <= hi {
        Ok(x)
    } else {
        Err(format!("{x} is not between {lo} and {hi}"))
    }
}

/// Settings that are fine alone but not together: the setting to change first (its URL key,
/// which names its field on the page) and why, in the page's words.
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal {
    pub key: &'static str,
    pub message: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
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

    /// Sets `key` from text, or says what is wrong with the value (quoting what was typed; the
    /// caller names the setting: the page shows the error under its field).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "seed" => self.seed = number(value)?,
            "rollouts" => self.rollouts = in_range(number(value)?, 2, 64)?,
            "max_new_tokens" => self.max_new_tokens = in_range(number(value)?, 1, 96)?,
            "temperature" => {
                let t: f32 = number(value)?;
                SamplingParams::new(t, 0, 1.0).map_err(|_| format!("{t} is not above 0"))?;
                self.temperature = t;
            }
            "gamma" => self.gamma = in_range(number(value)?, 0.0, 1.0)?,
            "lam" => self.lam = in_range(number(value)?, 0.0, 1.0)?,
            "clip" => self.clip = in_range(number(value)?, 0.0, 10.0)?,
            "vclip" => self.vclip = in_range(number(value)?, 0.0, 100.0)?,
            "kl" => self.kl = in_range(number(value)?, 0.0, 10.0)?,
            "kl_target" => self.kl_target = in_range(number(value)?, 0.0, 1000.0)?,
            "kl_horizon" => self.kl_horizon = in_range(number(value)?, KL_HORIZON_MIN, 1e6)?,
            "ent" => self.ent = in_range(number(value)?, 0.0, 10.0)?,
            "vf" => self.vf = in_range(number(value)?, 0.0, 10.0)?,
            "lr" => self.lr = in_range(number(value)?, 0.0, 1.0)?,
            "vblr" => self.vblr = in_range(number(value)?, 0.0, 1.0)?,
            "epochs" => self.epochs = in_range(number(value)?, 1, 16)?,
            "minibatch" => self.minibatch = in_range(number(value)?, 1, 64)?,
            "whiten" => {
                self.whiten = match value.trim() {
                    "true" | "1" | "on" => true,
                    "false" | "0" | "off" => false,
                    other => return Err(format!("“{other}” is not true or false")),
                }
            }
            "algo" => {
                self.algo = Family::parse(value.trim()).map_err(|_| {
                    let keys: Vec<&str> = Family::ALL.iter().map(|f| f.key()).collect();
                    format!("“{}” is not one of {}", value.trim(), keys.join(", "))
                })?
            }
            "group" => self.group = in_range(number(value)?, 1, 16)?,
            "scale" => {
                self.scale = RewardScale::parse(value.trim())
                    .map_err(|_| format!("“{}” is not group or none", value.trim()))?
            }
            "beta" => self.beta = in_range(number(value)?, 0.0, 10.0)?,
            other => return Err(format!("there is no setting “{other}”")),
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

    /// The batch's grouping, or what is wrong with the settings together (the setting to change
    /// first, and a message that names each setting by its label).
    pub fn groups(&self) -> Result<Option<GroupParams>, Refusal> {
        let refuse = |key: &'static str, message: String| Err(Refusal { key, message });
        if self.group > 1 && !self.rollouts.is_multiple_of(self.group) {
            return refuse(
                "group",
                format!(
                    "{} ({}) does not divide {} ({})",
                    label("group"),
                    self.group,
                    label("rollouts"),
                    self.rollouts
                ),
            );
        }
        if self.algo.needs_groups() && self.group < 2 {
            return refuse(
                "algo",
                format!(
                    "{} compares samples of one prompt: set {} to 2 or more, dividing {} ({})",
                    self.algo.name(),
                    label("group"),
                    label("rollouts"),
                    self.rollouts
                ),
            );
        }
        if self.algo == Family::Dapo && self.clip >= DAPO_EPS_HIGH {
            return refuse(
                "clip",
                format!(
                    "DAPO clips higher above ({DAPO_EPS_HIGH}) than below: set {} under {DAPO_EPS_HIGH}",
                    label("clip")
                ),
            );
        }
        if self.algo == Family::Reinforce && self.epochs != 1 {
            return refuse(
                "epochs",
                format!(
                    "REINFORCE has no clip to stop a second pass over the same batch: set {} to 1",
                    label("epochs")
                ),
            );
        }
        Ok((self.group > 1).then_some(GroupParams {
            group_size: self.group,
            scale: self.member_setup().scale,
        }))
    }

    /// Puts back the defaults of settings refused together (from a hand-written URL, say
    /// `?algo=grpo` with one sample per prompt) until the rest run together: the refused setting
    /// when its default clears the refusal, otherwise the algorithm, whose default (PPO) takes
    /// any grouping (REINFORCE with 3 epochs goes back to PPO: the default 2 epochs would be
    /// refused too). Returns each setting put back, with the value it had and why.
    pub fn settle(&mut self) -> Vec<(&'static str, String, Refusal)> {
        let default = Self::default();
        let mut undone = Vec::new();
        while let Err(refused) = self.groups() {
            let mut tried = self.clone();
            let cleared = tried
                .set(refused.key, &default.get(refused.key).unwrap_or_default())
                .is_ok()
                && tried
                    .groups()
                    .err()
                    .is_none_or(|again| again.key != refused.key);
            let key = if cleared && self.get(refused.key) != default.get(refused.key) {
                refused.key
            } else {
                "algo"
            };
            let had = self.get(key).unwrap_or_default();
            self.set(key, &default.get(key).unwrap_or_default())
                .expect("a default value is accepted");
            undone.push((key, had, refused));
        }
        undone
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

    /// At the most rollouts and the least horizon, an iteration whose KL is far under the target
    /// lowers β by 80% and no more: it stays above 0 (with horizon 1 it went to 1 − 0.2 × 64 = −11.8
    /// times itself).
    #[test]
    fn the_least_kl_horizon_keeps_beta_above_0() {
        use crate::ppo::kl_control::KlController;
        let mut s = LabSettings::default();
        s.set("rollouts", "64").unwrap();
        assert!(s.set("rollouts", "65").is_err());
        s.set("kl_horizon", &KL_HORIZON_MIN.to_string()).unwrap();
        let mut c = KlController::adaptive(0.1, 1.0, s.kl_horizon.into()).unwrap();
        c.update(0.0, s.rollouts);
        assert!((c.value - 0.02).abs() < 1e-12, "{}", c.value);
        let about = super::super::setting_keys::SETTING_KEYS
            .iter()
            .find(|k| k.key == "kl_horizon");
        assert!(
            about
                .unwrap()
                .about
                .contains(&format!("({KL_HORIZON_MIN} or more)"))
        );
    }

    #[test]
    fn bad_values_are_quoted_as_typed_and_ranges_in_words() {
        let mut s = LabSettings::default();
        let cases = [
            ("gamma", " abc ", "“abc” is not a number"),
            ("gamma", "1.5", "1.5 is not between 0 and 1"),
            ("rollouts", "1", "1 is not between 2 and 64"),
            ("kl_horizon", "12.8", "12.8 is not between 16 and 1000000"),
            ("temperature", "0", "0 is not above 0"),
            ("whiten", "maybe", "“maybe” is not true or false"),
            ("scale", "std", "“std” is not group or none"),
            ("nope", "1", "there is no setting “nope”"),
            (
                "algo",
                "ppo2",
                "“ppo2” is not one of reinforce, rloo, ppo, grpo, dr_grpo, dapo",
            ),
        ];
        for (key, value, message) in cases {
            assert_eq!(s.set(key, value).unwrap_err(), message, "{key}");
        }
        assert_eq!(s, LabSettings::default(), "a refused value changes nothing");
    }

    /// Settings refused together name the field to change and call each setting by the label
    /// the panel shows, never by its URL key.
    #[test]
    fn refusals_name_the_field_and_the_labels() {
        let with = |pairs: &[(&str, &str)]| {
            let mut s = LabSettings::default();
            for (k, v) in pairs {
                s.set(k, v).unwrap();
            }
            s.groups().unwrap_err()
        };
        let cases = [
            (
                with(&[("rollouts", "8"), ("group", "3")]),
                "group",
                "samples per prompt (3) does not divide rollouts per iteration (8)",
            ),
            (
                with(&[("algo", "rloo"), ("group", "1")]),
                "algo",
                "RLOO compares samples of one prompt: set samples per prompt to 2 or more, dividing \
                 rollouts per iteration (16)",
            ),
            (
                with(&[("algo", "dapo"), ("group", "2"), ("clip", "0.3")]),
                "clip",
                "DAPO clips higher above (0.28) than below: set clip ε under 0.28",
            ),
            (
                with(&[("algo", "reinforce"), ("epochs", "2")]),
                "epochs",
                "REINFORCE has no clip to stop a second pass over the same batch: set epochs to 1",
            ),
        ];
        for (refusal, key, message) in cases {
            assert_eq!((refusal.key, refusal.message.as_str()), (key, message));
        }
    }

    /// Each refusal is undone by putting back the one setting that caused it, and the rest of
    /// what was asked stays.
    #[test]
    fn settle_puts_back_only_what_was_refused() {
        let asked = |pairs: &[(&str, &str)]| {
            let mut s = LabSettings::default();
            for (k, v) in pairs {
                s.set(k, v).unwrap();
            }
            s
        };
        let summary = |undone: Vec<(&'static str, String, Refusal)>| {
            undone
                .into_iter()
                .map(|(k, had, why)| (k, had, why.key))
                .collect::<Vec<_>>()
        };
        // Nothing refused: nothing changes.
        let mut fine = asked(&[("algo", "grpo"), ("group", "4"), ("gamma", "0.9")]);
        assert!(fine.settle().is_empty());
        assert_eq!(
            fine,
            asked(&[("algo", "grpo"), ("group", "4"), ("gamma", "0.9")])
        );
        // GRPO with one sample per prompt: the algorithm goes back to PPO, gamma stays.
        let mut s = asked(&[("algo", "grpo"), ("gamma", "0.9")]);
        assert_eq!(summary(s.settle()), [("algo", "grpo".into(), "algo")]);
        assert_eq!(s, asked(&[("gamma", "0.9")]));
        // 3 samples per prompt do not divide 16 rollouts: the grouping goes, and then GRPO,
        // which needs one.
        let mut s = asked(&[("algo", "grpo"), ("group", "3")]);
        assert_eq!(
            summary(s.settle()),
            [
                ("group", "3".into(), "group"),
                ("algo", "grpo".into(), "algo")
            ]
        );
        assert_eq!(s, LabSettings::default());
        // DAPO with a lower clip above its upper one: the clip goes back, DAPO stays.
        let mut s = asked(&[("algo", "dapo"), ("group", "4"), ("clip", "0.3")]);
        assert_eq!(summary(s.settle()), [("clip", "0.3".into(), "clip")]);
        assert_eq!(s, asked(&[("algo", "dapo"), ("group", "4")]));
        // REINFORCE with the default epochs: the epochs were not asked for, so REINFORCE goes.
        let mut s = asked(&[("algo", "reinforce"), ("lr", "1e-4")]);
        let undone = s.settle();
        assert_eq!(
            undone[0].2.message,
            "REINFORCE has no clip to stop a second pass over the same batch: set epochs to 1"
        );
        assert_eq!(summary(undone), [("algo", "reinforce".into(), "epochs")]);
        assert_eq!(s, asked(&[("lr", "1e-4")]));
        // REINFORCE with 3 epochs: the default epochs (2) would be refused too, so REINFORCE
        // goes and the 3 epochs stay.
        let mut s = asked(&[("algo", "reinforce"), ("epochs", "3")]);
        assert_eq!(
            summary(s.settle()),
            [("algo", "reinforce".into(), "epochs")]
        );
        assert_eq!(s, asked(&[("epochs", "3")]));
    }
}
