//! What to try when a check fires, written once with placeholders for the settings it names,
//! and filled in by each face: the trainer with its config keys, the page with its settings'
//! labels and URL keys.

use super::check::{AdvantageScale, Check, Finding, KlKnob};

impl Check {
    /// What to try when it fires in a run whose KL to the reference is weighed by `kl` and whose
    /// advantages are scaled as `scale` says, each setting written `{placeholder}` ([`Knob`]);
    /// read it with [`Finding::advice`].
    pub fn advice_template(self, kl: KlKnob, scale: AdvantageScale) -> &'static str {
        match (self, kl) {
            (Check::PolicyClipHigh, _) => clip_advice(scale),
            (Check::PolicyClipSustained | Check::ApproxKlHigh | Check::ApproxKlGrowing, _) => {
                "lower {learning_rate} or {epochs}"
            }
            (Check::ValueClipHigh, _) => {
                "raise {clip_range_value} or lower {learning_rate}; check the reward scale"
            }
            (Check::GradNormExploding, _) => {
                "lower {learning_rate}; look for a reward or advantage far larger than the rest"
            }
            (Check::ValueLossFlat, _) => {
                "raise {value_bias_learning_rate} so the critic's level can follow the returns; check that returns are A + V"
            }
            (Check::KlRefGrowing, KlKnob::KlCoeff) => {
                "raise {kl_coeff}, or set {kl_target} to let the adaptive controller steer it; lower {learning_rate}"
            }
            (Check::KlRefGrowing, KlKnob::Beta { .. }) => "raise {beta}; lower {learning_rate}",
            (Check::KlRefGrowing, KlKnob::Absent) => {
                "lower {learning_rate}: this member has no KL term to raise"
            }
            (Check::RewardFlatKlRising, KlKnob::KlCoeff) => {
                "raise {kl_coeff}; read some responses to see that the reward still means what it should"
            }
            (Check::RewardFlatKlRising, KlKnob::Beta { .. }) => {
                "raise {beta}; read some responses to see that the reward still means what it should"
            }
            (Check::RewardFlatKlRising, KlKnob::Absent) => {
                "lower {learning_rate} (this member has no KL term to raise); read some responses to see that the reward still means what it should"
            }
            (Check::EntropyCollapsed, _) => {
                "raise {entropy_coeff} or {temperature}; lower {learning_rate}"
            }
            (Check::CriticWorseThanMean, _) => {
                "start the value head smaller ({value_head_std}) and keep its weights at the policy's learning rate; a freshly started critic needs some iterations"
            }
        }
    }
}

/// What to try when many ratios are clipped in one update, in a run whose advantages are scaled
/// as `scale` says.
fn clip_advice(scale: AdvantageScale) -> &'static str {
    match scale {
        AdvantageScale::Scaled => "lower {learning_rate} or {epochs}",
        AdvantageScale::WhitenOff => {
            "lower {learning_rate} or {epochs}, or turn {whiten} back on: without it the advantages carry the rewards' scale"
        }
        AdvantageScale::GroupStdOff => {
            "lower {learning_rate} or {epochs}, or set {scale_rewards} to group: without the std the advantages carry the rewards' scale"
        }
        AdvantageScale::NormalizeOff => {
            "lower {learning_rate} or {epochs}, or turn {normalize_advantages} on: without it the advantages carry the rewards' scale"
        }
        AdvantageScale::Unscaled => {
            "lower {learning_rate} or {epochs}; this member does not scale its advantages, so check that the rewards are not far larger than 1"
        }
    }
}

impl Finding {
    /// What to try, each setting named by `name` (the trainer by its config key, the page by its
    /// label and URL key).
    pub fn advice(&self, name: impl Fn(Knob) -> String) -> String {
        fill(self.check.advice_template(self.kl, self.scale), name)
    }

    /// What to try, in the trainer's config keys (`ppo.learning_rate`; `rloo.beta` in an RLOO
    /// run).
    pub fn trainer_advice(&self) -> String {
        self.advice(|knob| match (knob, self.kl) {
            (Knob::Beta, KlKnob::Beta { section }) => format!("{section}.beta"),
            _ => knob.config_key().to_string(),
        })
    }
}

/// A setting that a finding's advice names. The trainer and the page call the same setting
/// differently (`ppo.learning_rate`, the page's "learning rate (lr)"), so the advice is written
/// with placeholders (`{learning_rate}`) and each names them its own way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Knob {
    LearningRate,
    Epochs,
    ClipRangeValue,
    ValueBiasLearningRate,
    KlCoeff,
    KlTarget,
    /// A critic-free member's KL weight.
    Beta,
    EntropyCoeff,
    Temperature,
    ValueHeadStd,
    /// PPO's whitening of the advantages.
    Whiten,
    /// GRPO's division by the group's std.
    ScaleRewards,
    /// The trainer's RLOO normalising its advantages over the batch.
    NormalizeAdvantages,
}

impl Knob {
    pub const ALL: [Knob; 13] = [
        Knob::LearningRate,
        Knob::Epochs,
        Knob::ClipRangeValue,
        Knob::ValueBiasLearningRate,
        Knob::KlCoeff,
        Knob::KlTarget,
        Knob::Beta,
        Knob::EntropyCoeff,
        Knob::Temperature,
        Knob::ValueHeadStd,
        Knob::Whiten,
        Knob::ScaleRewards,
        Knob::NormalizeAdvantages,
    ];

    /// Its name in an advice template, between braces.
    pub fn placeholder(self) -> &'static str {
        match self {
            Knob::LearningRate => "learning_rate",
            Knob::Epochs => "epochs",
            Knob::ClipRangeValue => "clip_range_value",
            Knob::ValueBiasLearningRate => "value_bias_learning_rate",
            Knob::KlCoeff => "kl_coeff",
            Knob::KlTarget => "kl_target",
            Knob::Beta => "beta",
            Knob::EntropyCoeff => "entropy_coeff",
            Knob::Temperature => "temperature",
            Knob::ValueHeadStd => "value_head_std",
            Knob::Whiten => "whiten",
            Knob::ScaleRewards => "scale_rewards",
            Knob::NormalizeAdvantages => "normalize_advantages",
        }
    }

    /// The trainer's config key (configs/config.yaml). `beta` is GRPO's here; a finding names
    /// its own member's section ([`Finding::trainer_advice`]).
    pub fn config_key(self) -> &'static str {
        match self {
            Knob::LearningRate => "ppo.learning_rate",
            Knob::Epochs => "ppo.epochs",
            Knob::ClipRangeValue => "ppo.clip_range_value",
            Knob::ValueBiasLearningRate => "ppo.value_bias_learning_rate",
            Knob::KlCoeff => "ppo.kl_coeff",
            Knob::KlTarget => "ppo.adaptive_kl",
            Knob::Beta => "grpo.beta",
            Knob::EntropyCoeff => "ppo.entropy_coeff",
            Knob::Temperature => "rollout.temperature",
            Knob::ValueHeadStd => "model.value_head_std",
            Knob::Whiten => "ppo.whiten_advantages",
            Knob::ScaleRewards => "grpo.scale_rewards",
            Knob::NormalizeAdvantages => "rloo.normalize_advantages",
        }
    }

    /// The page's URL key for it, where the page has the setting (the value head's starting
    /// scale is fixed there, and its RLOO does not normalise).
    pub fn page_key(self) -> Option<&'static str> {
        match self {
            Knob::LearningRate => Some("lr"),
            Knob::Epochs => Some("epochs"),
            Knob::ClipRangeValue => Some("vclip"),
            Knob::ValueBiasLearningRate => Some("vblr"),
            Knob::KlCoeff => Some("kl"),
            Knob::KlTarget => Some("kl_target"),
            Knob::Beta => Some("beta"),
            Knob::EntropyCoeff => Some("ent"),
            Knob::Temperature => Some("temperature"),
            Knob::Whiten => Some("whiten"),
            Knob::ScaleRewards => Some("scale"),
            Knob::ValueHeadStd | Knob::NormalizeAdvantages => None,
        }
    }
}

/// `template` with each `{placeholder}` of a [`Knob`] replaced by `name(knob)`; anything else
/// is kept as written.
pub fn fill(template: &str, name: impl Fn(Knob) -> String) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}').map(|c| open + c) else {
            break;
        };
        out.push_str(&rest[..open]);
        let word = &rest[open + 1..close];
        match Knob::ALL.into_iter().find(|k| k.placeholder() == word) {
            Some(knob) => out.push_str(&name(knob)),
            None => out.push_str(&rest[open..=close]),
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KL_KNOBS: [KlKnob; 3] = [
        KlKnob::KlCoeff,
        KlKnob::Beta { section: "rloo" },
        KlKnob::Absent,
    ];

    /// The KL findings name the setting that weighs this run's KL: PPO's kl_coeff (and its
    /// controller), a critic-free member's own beta in its own section, and none for DAPO.
    #[test]
    fn the_kl_advice_names_the_runs_own_kl_setting() {
        let finding = |check, kl| Finding {
            check,
            metric: "rollout/kl_mean",
            threshold: 0.0,
            window: 1,
            value: 1.0,
            meaning: String::new(),
            kl,
            scale: AdvantageScale::Scaled,
        };
        for check in [Check::KlRefGrowing, Check::RewardFlatKlRising] {
            let [ppo, rloo, dapo] = KL_KNOBS.map(|kl| finding(check, kl).trainer_advice());
            assert!(ppo.starts_with("raise ppo.kl_coeff"), "{ppo}");
            assert!(rloo.starts_with("raise rloo.beta;"), "{rloo}");
            assert!(
                !rloo.contains("kl_coeff") && !rloo.contains("adaptive_kl"),
                "{rloo}"
            );
            assert!(dapo.contains("no KL term"), "{dapo}");
            assert!(
                !dapo.contains("kl_coeff") && !dapo.contains("beta"),
                "{dapo}"
            );
        }
    }

    #[test]
    fn every_advice_names_only_known_settings() {
        let scales = [
            AdvantageScale::Scaled,
            AdvantageScale::WhitenOff,
            AdvantageScale::GroupStdOff,
            AdvantageScale::NormalizeOff,
            AdvantageScale::Unscaled,
        ];
        for (check, kl, scale) in Check::ALL.into_iter().flat_map(|c| {
            KL_KNOBS
                .into_iter()
                .flat_map(move |k| scales.map(|s| (c, k, s)))
        }) {
            let template = check.advice_template(kl, scale);
            let marked = fill(template, |k| format!("<{}>", k.placeholder()));
            assert!(
                !marked.contains('{') && !marked.contains('}'),
                "{}: a placeholder that is no Knob in {template:?}",
                check.key()
            );
            assert!(marked.contains('<'), "{}: names no setting", check.key());
        }
        assert_eq!(
            fill("lower {learning_rate} or {epochs}; {other}", |k| k
                .config_key()
                .to_string()),
            "lower ppo.learning_rate or ppo.epochs; {other}"
        );
        assert_eq!(fill("a {b", |_| unreachable!()), "a {b");
    }
}
