//! The settings panel's keys: each URL key's label and one-line meaning, in the order the page
//! lists them ([`SETTING_KEYS`]), and how the page names a setting in a sentence ([`label`],
//! [`knob_name`]).

use crate::health::Knob;

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
        about: "GAE's trade-off: 0 trusts the critic (one-step δ), 1 makes A_t the γ-discounted sum of every reward to the end minus V_t, so the critic is only a baseline (PPO only)",
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
        about: "responses over which β adapts (16 or more): one iteration moves β by at most 0.2 × rollouts / horizon of itself, so β never reaches 0",
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
        about: "ppo (GAE on the critic's values), or no critic: grpo and dapo (the response's reward against its group's mean, over the group's std; grpo's only with GRPO std scaling set to group), dr_grpo (the same without the std), rloo (against the mean of the other responses to its prompt), reinforce (against the batch's mean); all but ppo and reinforce need samples per prompt > 1, reinforce needs epochs 1",
    },
    SettingKey {
        key: "group",
        label: "samples per prompt",
        about: "G: the batch is rollouts / G problems, each sampled G times (1: all different); must divide the rollouts",
    },
    SettingKey {
        key: "scale",
        label: "GRPO std scaling",
        about: "GRPO's group: A = (r − mean) / (std + 0.0001); none: A = r − mean (the other members fix their own)",
    },
    SettingKey {
        key: "beta",
        label: "β, critic-free KL",
        about: "the KL weight of a critic-free member: a k3 loss term in GRPO and Dr. GRPO, a penalty on the response's score in RLOO and REINFORCE; DAPO has none (PPO's is kl_coeff β, in each token's reward)",
    },
];

/// How the page names a setting that run-health advice mentions: its label and URL key as the
/// settings panel shows them ("learning rate (lr)"); one the page does not have, as the
/// trainer's config key.
pub fn knob_name(knob: Knob) -> String {
    let on_page = knob.page_key().and_then(find);
    match on_page {
        Some(s) if s.label == s.key => s.label.to_string(),
        Some(s) => format!("{} ({})", s.label, s.key),
        None => format!("the trainer's {}; fixed on this page", knob.config_key()),
    }
}

/// The label the settings panel shows for `key` ("samples per prompt" for `group`).
pub fn label(key: &str) -> &str {
    find(key).map_or(key, |s| s.label)
}

/// The panel's entry for URL key `key`, if the page has that setting.
fn find(key: &str) -> Option<&'static SettingKey> {
    SETTING_KEYS.iter().find(|s| s.key == key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ppo::group_advantages::GROUP_EPS;

    /// The panel's line for GRPO's scaling writes ε as the provenance arithmetic does.
    #[test]
    fn the_scale_help_writes_epsilon_as_the_arithmetic_does() {
        let about = find("scale").unwrap().about;
        assert!(about.contains(&format!("(std + {GROUP_EPS})")), "{about}");
        assert_eq!(label("group"), "samples per prompt");
        assert_eq!(label("no_such_key"), "no_such_key");
    }
}
