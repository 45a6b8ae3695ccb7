//! What to try when a check fires, written once with placeholders for the settings it names,
//! and filled in by each face: the trainer with its config keys, the page with its settings'
//! labels and URL keys.

use super::check::{Check, Finding};

impl Check {
    /// What to try when it fires, each setting written `{placeholder}` ([`Knob`]); read it with
    /// [`Finding::advice`].
    pub fn advice_template(self) -> &'static str {
        match self {
            Check::PolicyClipHigh => {
                "lower {learning_rate} or {epochs}; check that the advantages are whitened"
            }
            Check::PolicyClipSustained | Check::ApproxKlHigh | Check::ApproxKlGrowing => {
                "lower {learning_rate} or {epochs}"
            }
            Check::ValueClipHigh => {
                "raise {clip_range_value} or lower {learning_rate}; check the reward scale"
            }
            Check::GradNormExploding => {
                "lower {learning_rate}; look for a reward or advantage far larger than the rest"
            }
            Check::ValueLossFlat => {
                "raise {value_bias_learning_rate} so the critic's level can follow the returns; check that returns are A + V"
            }
            Check::KlRefGrowing => {
                "raise {kl_coeff}, or set {kl_target} to let the adaptive controller steer it; lower {learning_rate}"
            }
            Check::RewardFlatKlRising => {
                "raise {kl_coeff}; read some responses to see that the reward still means what it should"
            }
            Check::EntropyCollapsed => {
                "raise {entropy_coeff} or {temperature}; lower {learning_rate}"
            }
            Check::CriticWorseThanMean => {
                "start the value head smaller ({value_head_std}) and keep its weights at the policy's learning rate; a freshly started critic needs some iterations"
            }
        }
    }
}

impl Finding {
    /// What to try, each setting named by `name` (the trainer by its config key, the page by its
    /// label and URL key).
    pub fn advice(&self, name: impl Fn(Knob) -> String) -> String {
        fill(self.check.advice_template(), name)
    }

    /// What to try, in the trainer's config keys (`ppo.learning_rate`).
    pub fn trainer_advice(&self) -> String {
        self.advice(|knob| knob.config_key().to_string())
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
    EntropyCoeff,
    Temperature,
    ValueHeadStd,
}

impl Knob {
    pub const ALL: [Knob; 9] = [
        Knob::LearningRate,
        Knob::Epochs,
        Knob::ClipRangeValue,
        Knob::ValueBiasLearningRate,
        Knob::KlCoeff,
        Knob::KlTarget,
        Knob::EntropyCoeff,
        Knob::Temperature,
        Knob::ValueHeadStd,
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
            Knob::EntropyCoeff => "entropy_coeff",
            Knob::Temperature => "temperature",
            Knob::ValueHeadStd => "value_head_std",
        }
    }

    /// The trainer's config key (configs/config.yaml).
    pub fn config_key(self) -> &'static str {
        match self {
            Knob::LearningRate => "ppo.learning_rate",
            Knob::Epochs => "ppo.epochs",
            Knob::ClipRangeValue => "ppo.clip_range_value",
            Knob::ValueBiasLearningRate => "ppo.value_bias_learning_rate",
            Knob::KlCoeff => "ppo.kl_coeff",
            Knob::KlTarget => "ppo.adaptive_kl",
            Knob::EntropyCoeff => "ppo.entropy_coeff",
            Knob::Temperature => "rollout.temperature",
            Knob::ValueHeadStd => "model.value_head_std",
        }
    }

    /// The page's URL key for it, where the page has the setting (the value head's starting
    /// scale is fixed there).
    pub fn page_key(self) -> Option<&'static str> {
        match self {
            Knob::LearningRate => Some("lr"),
            Knob::Epochs => Some("epochs"),
            Knob::ClipRangeValue => Some("vclip"),
            Knob::ValueBiasLearningRate => Some("vblr"),
            Knob::KlCoeff => Some("kl"),
            Knob::KlTarget => Some("kl_target"),
            Knob::EntropyCoeff => Some("ent"),
            Knob::Temperature => Some("temperature"),
            Knob::ValueHeadStd => None,
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

    #[test]
    fn every_advice_names_only_known_settings() {
        for check in Check::ALL {
            let template = check.advice_template();
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
