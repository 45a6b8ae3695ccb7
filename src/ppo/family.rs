//! The policy-gradient family: REINFORCE, RLOO, PPO, GRPO, Dr. GRPO and DAPO as choices over
//! the same pieces.
//!
//! Each member samples responses, scores them, and pushes up the log-probability of tokens with
//! a positive advantage and down those with a negative one. They differ in a handful of choices:
//!
//! | choice | what it decides | the pieces |
//! |---|---|---|
//! | baseline | what a reward is compared with | critic + GAE ([`gae`](super::gae)), batch mean ([`batch_baseline`](super::batch_baseline)), group mean ([`group_advantages`](super::group_advantages)), leave-one-out ([`leave_one_out`](super::leave_one_out)) |
//! | scale | whether advantages are divided by a spread | none, the group's std, whitening over the batch ([`whiten`](super::whiten)) |
//! | ratio | what one probability ratio covers | a token ([`grpo_loss`](super::grpo_loss), [`policy_loss`](super::policy_loss)), a whole response ([`sequence_loss`](super::sequence_loss)) |
//! | clip | the band the ratio is clipped to | none, symmetric, decoupled ([`clip_range`](super::clip_range)) |
//! | aggregation | how token terms become one loss | [`loss_agg`](super::loss_agg) |
//! | KL | where the KL to the reference acts | per token in the reward ([`rewards`](super::rewards)), per response in the reward ([`sequence_kl`](super::sequence_kl)), in the loss, off |
//! | dynamic sampling | whether groups with equal rewards are dropped | [`dynamic_sampling`](super::dynamic_sampling) |
//!
//! [`Family::objective`] gives each member's choices as its paper (and TRL's trainer) makes
//! them; [`differences`] lists the choices two members make differently, which is what the page
//! shows above their advantages side by side.

use super::clip_range::ClipRange;
use super::loss_agg::LossAgg;

/// What each reward is compared with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Baseline {
    /// A learned value per token, and GAE over the token rewards (PPO).
    Critic,
    /// The mean score of the batch (REINFORCE).
    BatchMean,
    /// The mean score of the prompt's group (GRPO).
    GroupMean,
    /// The mean score of the other responses of the group (RLOO).
    LeaveOneOut,
}

/// Whether the advantages are divided by a spread.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Scale {
    None,
    /// By the group's std (GRPO, DAPO).
    GroupStd,
    /// Whitened over the batch's real tokens (PPO).
    BatchWhiten,
}

/// What one probability ratio covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Unit {
    /// Every token has its own ratio and clip; the terms are aggregated with the `LossAgg`.
    Token(LossAgg),
    /// One ratio for the whole response; the loss is the mean over responses.
    Response,
}

/// Where the KL to the frozen reference acts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum KlPlacement {
    /// `-beta * k1` on each token's reward, before GAE (PPO).
    TokenReward,
    /// `-beta * sum_t k1` on the response's score, before the baseline (REINFORCE, RLOO).
    ResponseReward,
    /// `beta * k3` per token in the loss (GRPO).
    Loss,
    /// No KL term (DAPO).
    Off,
}

/// One member's choices.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Objective {
    pub baseline: Baseline,
    pub scale: Scale,
    pub unit: Unit,
    /// `None`: the ratio is not clipped.
    pub clip: Option<ClipRange>,
    pub kl: KlPlacement,
    pub dynamic_sampling: bool,
}

/// The members.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Family {
    Reinforce,
    Rloo,
    Ppo,
    Grpo,
    DrGrpo,
    Dapo,
}

impl Family {
    pub const ALL: [Family; 6] = [
        Family::Reinforce,
        Family::Rloo,
        Family::Ppo,
        Family::Grpo,
        Family::DrGrpo,
        Family::Dapo,
    ];

    /// Where it puts the KL to the reference (the same whatever the clip and the length).
    pub fn kl_placement(self) -> KlPlacement {
        self.objective(0.2, 1).kl
    }

    /// What each reward is compared with (the same whatever the clip and the length).
    pub fn baseline(self) -> Baseline {
        self.objective(0.2, 1).baseline
    }

    /// The setting that weighs its KL to the reference, as run-health advice names it: PPO's
    /// `kl_coeff`, the member's own `beta` in its config section, or none (DAPO).
    pub fn kl_knob(self) -> crate::health::KlKnob {
        use crate::health::KlKnob;
        match self.kl_placement() {
            KlPlacement::TokenReward => KlKnob::KlCoeff,
            KlPlacement::Loss | KlPlacement::ResponseReward => KlKnob::Beta {
                section: self.key(),
            },
            KlPlacement::Off => KlKnob::Absent,
        }
    }

    /// The name a config or a URL uses (the config's `algorithm` and its section).
    pub fn key(self) -> &'static str {
        match self {
            Family::Reinforce => "reinforce",
            Family::Rloo => "rloo",
            Family::Ppo => "ppo",
            Family::Grpo => "grpo",
            Family::DrGrpo => "dr_grpo",
            Family::Dapo => "dapo",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Family::Reinforce => "REINFORCE",
            Family::Rloo => "RLOO",
            Family::Ppo => "PPO",
            Family::Grpo => "GRPO",
            Family::DrGrpo => "Dr. GRPO",
            Family::Dapo => "DAPO",
        }
    }

    pub fn parse(key: &str) -> Result<Family, String> {
        Family::ALL
            .into_iter()
            .find(|f| f.key() == key)
            .ok_or_else(|| {
                let keys: Vec<&str> = Family::ALL.iter().map(|f| f.key()).collect();
                format!(
                    "unknown algorithm `{key}`: expected one of {}",
                    keys.join(", ")
                )
            })
    }

    /// The paper that introduced it (for REINFORCE, the paper that brought it back to LLMs).
    pub fn paper(self) -> &'static str {
        match self {
            Family::Reinforce => "Williams 1992; Ahmadian et al. 2024, \"Back to Basics\"",
            Family::Rloo => {
                "Ahmadian et al. 2024, \"Back to Basics\" (after Kool et al. 2019); the clip on \
                 the response's ratio is TRL's RLOOTrainer's, as the paper takes one step per batch"
            }
            Family::Ppo => "Schulman et al. 2017; Ouyang et al. 2022 for language models",
            Family::Grpo => "Shao et al. 2024, \"DeepSeekMath\"",
            Family::DrGrpo => "Liu et al. 2025, \"Understanding R1-Zero-Like Training\"",
            Family::Dapo => "Yu et al. 2025, \"DAPO\"",
        }
    }

    /// What it changed, and why, in one sentence.
    pub fn change(self) -> &'static str {
        match self {
            Family::Reinforce => {
                "Pushes each whole response up or down by its reward minus the batch's mean: \
                 no critic, and no clip, so each batch is used for one pass only."
            }
            Family::Rloo => {
                "Compares each response with the mean of the other responses to the same \
                 prompt, a baseline that does not contain the response it judges."
            }
            Family::Ppo => {
                "Learns a critic to give every token its own advantage (GAE), and clips each \
                 token's ratio so that the epochs on one batch gain nothing by moving a token \
                 far from the policy that sampled it."
            }
            Family::Grpo => {
                "Drops the critic: each response's reward against its group's mean, divided by \
                 the group's std, on every token; the KL to the reference moves into the loss."
            }
            Family::DrGrpo => {
                "Removes two biases of GRPO: no division by the group's std (which inflates \
                 the advantages of prompts almost always or almost never solved) and no \
                 division by the response's length (which pushes less against long wrong \
                 answers)."
            }
            Family::Dapo => {
                "Clips higher (the band [1 − ε_low, 1.28] is wider above than below for ε_low \
                 under 0.28, such as the paper's 0.2, so unlikely good tokens can rise), weighs \
                 every token alike, leaves out groups whose rewards are all equal (sampling more \
                 prompts to refill the batch; this page only leaves them out), and has no KL term."
            }
        }
    }

    /// What it gives each token of a response, in words, to follow "<name> gives every token of
    /// a response ...": `scaled` says whether a group member's advantages are divided by the
    /// group's std (GRPO's own switch; DAPO always, Dr. GRPO never). PPO's differ token by
    /// token, so it has none.
    pub fn response_advantage(self, scaled: bool) -> &'static str {
        match (self, scaled) {
            (Family::Ppo, _) => "no single advantage: the critic gives each token its own",
            (Family::Reinforce, _) => {
                "its score less β times its KL to the reference, minus the batch's mean of the same"
            }
            (Family::Rloo, _) => {
                "its score less β times its KL to the reference, minus the mean of the same over \
                 the other responses to its prompt"
            }
            (Family::DrGrpo, _) | (Family::Grpo, false) => "its reward minus its group's mean",
            (Family::Grpo, true) => {
                "its reward's distance from its group's mean, in the group's standard deviations"
            }
            (Family::Dapo, _) => {
                "its reward's distance from its group's mean, in the group's standard deviations \
                 (a group whose rewards are all equal leaves the update)"
            }
        }
    }

    /// Its choices, with the clip width and constant length given: `eps` is the symmetric clip
    /// (0.2 in each paper that clips), `max_len` the generation's `max_new_tokens`.
    pub fn objective(self, eps: f32, max_len: usize) -> Objective {
        let sym = Some(ClipRange::symmetric(eps));
        match self {
            Family::Reinforce => Objective {
                baseline: Baseline::BatchMean,
                scale: Scale::None,
                unit: Unit::Response,
                clip: None,
                kl: KlPlacement::ResponseReward,
                dynamic_sampling: false,
            },
            Family::Rloo => Objective {
                baseline: Baseline::LeaveOneOut,
                scale: Scale::None,
                unit: Unit::Response,
                clip: sym,
                kl: KlPlacement::ResponseReward,
                dynamic_sampling: false,
            },
            Family::Ppo => Objective {
                baseline: Baseline::Critic,
                scale: Scale::BatchWhiten,
                unit: Unit::Token(LossAgg::TokenMean),
                clip: sym,
                kl: KlPlacement::TokenReward,
                dynamic_sampling: false,
            },
            Family::Grpo => Objective {
                baseline: Baseline::GroupMean,
                scale: Scale::GroupStd,
                unit: Unit::Token(LossAgg::SeqMeanTokenMean),
                clip: sym,
                kl: KlPlacement::Loss,
                dynamic_sampling: false,
            },
            Family::DrGrpo => Objective {
                scale: Scale::None,
                unit: Unit::Token(LossAgg::SeqMeanTokenSumNorm { max_len }),
                ..Family::Grpo.objective(eps, max_len)
            },
            Family::Dapo => Objective {
                baseline: Baseline::GroupMean,
                scale: Scale::GroupStd,
                unit: Unit::Token(LossAgg::TokenMean),
                clip: Some(ClipRange {
                    low: eps,
                    high: DAPO_EPS_HIGH,
                }),
                kl: KlPlacement::Off,
                dynamic_sampling: true,
            },
        }
    }
}

/// DAPO's upper clip width.
pub const DAPO_EPS_HIGH: f32 = 0.28;

/// One choice two objectives make differently.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Difference {
    pub choice: &'static str,
    pub a: String,
    pub b: String,
}

impl Objective {
    /// Each choice as `(name, how this objective makes it)`, in the order the page lists them.
    pub fn choices(&self) -> [(&'static str, String); 7] {
        let baseline = match self.baseline {
            Baseline::Critic => "critic (GAE)",
            Baseline::BatchMean => "batch mean",
            Baseline::GroupMean => "group mean",
            Baseline::LeaveOneOut => "leave-one-out",
        };
        let scale = match self.scale {
            Scale::None => "none",
            Scale::GroupStd => "group std",
            Scale::BatchWhiten => "whitened over the batch",
        };
        let (ratio, agg) = match self.unit {
            Unit::Token(agg) => ("per token", agg.name().to_string()),
            Unit::Response => ("per response", "mean over responses".to_string()),
        };
        let clip = match self.clip {
            None => "none".to_string(),
            Some(c) if c.is_symmetric() => format!("±{}", c.low),
            Some(c) => format!("−{} / +{}", c.low, c.high),
        };
        let kl = match self.kl {
            KlPlacement::TokenReward => "in each token's reward",
            KlPlacement::ResponseReward => "in the response's score",
            KlPlacement::Loss => "in the loss (k3)",
            KlPlacement::Off => "off",
        };
        let dynamic = if self.dynamic_sampling {
            "drops equal-reward groups"
        } else {
            "off"
        };
        [
            ("baseline", baseline.to_string()),
            ("scale", scale.to_string()),
            ("ratio", ratio.to_string()),
            ("clip", clip),
            ("aggregation", agg),
            ("KL", kl.to_string()),
            ("dynamic sampling", dynamic.to_string()),
        ]
    }
}

/// The choices `a` and `b` make differently, in [`Objective::choices`]' order.
pub fn differences(a: &Objective, b: &Objective) -> Vec<Difference> {
    a.choices()
        .into_iter()
        .zip(b.choices())
        .filter(|((_, x), (_, y))| x != y)
        .map(|((choice, x), (_, y))| Difference { choice, a: x, b: y })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diff(a: Family, b: Family) -> Vec<(&'static str, String, String)> {
        differences(&a.objective(0.2, 256), &b.objective(0.2, 256))
            .into_iter()
            .map(|d| (d.choice, d.a, d.b))
            .collect()
    }

    #[test]
    fn dr_grpo_changes_exactly_the_two_normalisations() {
        assert_eq!(
            diff(Family::Grpo, Family::DrGrpo),
            vec![
                ("scale", "group std".to_string(), "none".to_string()),
                (
                    "aggregation",
                    "seq-mean-token-mean".to_string(),
                    "seq-mean-token-sum-norm".to_string()
                ),
            ]
        );
    }

    #[test]
    fn dapo_changes_clip_aggregation_kl_and_sampling() {
        let d = diff(Family::Grpo, Family::Dapo);
        let choices: Vec<&str> = d.iter().map(|x| x.0).collect();
        assert_eq!(
            choices,
            vec!["clip", "aggregation", "KL", "dynamic sampling"]
        );
        assert_eq!(d[0].2, "−0.2 / +0.28");
        assert_eq!(d[1].2, "token-mean");
    }

    #[test]
    fn ppo_against_rloo_lists_the_baseline_first() {
        let d = diff(Family::Ppo, Family::Rloo);
        assert_eq!(
            d[0],
            (
                "baseline",
                "critic (GAE)".to_string(),
                "leave-one-out".to_string()
            )
        );
        assert!(d.iter().any(|x| x.0 == "ratio" && x.2 == "per response"));
        assert!(diff(Family::Rloo, Family::Rloo).is_empty());
        // REINFORCE and RLOO differ in the baseline and the clip only.
        let r: Vec<&str> = diff(Family::Reinforce, Family::Rloo)
            .iter()
            .map(|x| x.0)
            .collect();
        assert_eq!(r, vec!["baseline", "clip"]);
    }

    #[test]
    fn keys_round_trip_and_unknown_names_are_named() {
        for f in Family::ALL {
            assert_eq!(Family::parse(f.key()), Ok(f));
            assert!(!f.paper().is_empty() && f.change().ends_with('.'));
        }
        let err = Family::parse("ppo2").unwrap_err();
        assert!(err.contains("`ppo2`") && err.contains("dr_grpo"), "{err}");
    }
}
