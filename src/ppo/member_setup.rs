//! What the iteration and the update need to run one member of the family
//! ([`Family::setup`]): which advantages the update takes, how the critic-free ones come from
//! the scores, the group's scale, the critic-free loss and DAPO's dynamic sampling. The trainer's
//! recipe and the page's settings both start from it, so a member trains the same in both.

use super::Algorithm;
use super::clip_range::ClipRange;
use super::family::{Baseline, Family, KlPlacement, Scale, Unit};
use super::group_advantages::RewardScale;
use super::grpo_loss::GrpoCoeffs;
use super::iteration::ScoreAdvantages;
use super::loss_agg::LossAgg;

/// The settings a member runs under ([`Family::setup`]'s arguments). The page records them
/// with each batch, so its family panel compares the members under the settings the batch
/// ran with, not the ones changed since.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MemberParams {
    /// The KL weight in each response's score (RLOO's and REINFORCE's β).
    pub beta: f32,
    /// The generation's limit: Dr. GRPO's constant length.
    pub max_new_tokens: usize,
    /// The clip's ε (DAPO's lower one).
    pub clip: f32,
}

/// One member, ready to run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MemberSetup {
    /// How the critic-free advantages come from the scores (PPO: GRPO's, for comparison).
    pub score_advantages: ScoreAdvantages,
    /// The group advantages' scale (GRPO's and DAPO's std; none for the others).
    pub scale: RewardScale,
    /// The critic-free loss (`None`: PPO's clipped policy and value losses).
    pub grpo: Option<GrpoCoeffs>,
}

impl Family {
    /// Which advantages the update takes: the critic's (PPO) or the scores' (every other).
    pub fn algorithm(self) -> Algorithm {
        match self {
            Family::Ppo => Algorithm::Ppo,
            _ => Algorithm::Grpo,
        }
    }

    /// Whether it compares the responses to one prompt, so the batch must hold several samples
    /// of each.
    pub fn needs_groups(self) -> bool {
        matches!(self.baseline(), Baseline::GroupMean | Baseline::LeaveOneOut)
    }

    /// Its setup as its paper makes it, with the symmetric clip width `eps`, the KL weight
    /// `beta` wherever the member puts the KL (PPO's is in its token rewards, set apart; DAPO
    /// has none), and the generation's `max_new_tokens` (Dr. GRPO's constant length).
    pub fn setup(self, eps: f32, beta: f32, max_len: usize) -> MemberSetup {
        let o = self.objective(eps, max_len);
        let beta_at = |place: KlPlacement| if o.kl == place { beta } else { 0.0 };
        let scale = match o.scale {
            Scale::GroupStd => RewardScale::Group,
            _ => RewardScale::None,
        };
        let score_advantages = match o.baseline {
            // PPO's update does not use them; with grouped rows GRPO's are computed beside its
            // own, for comparison.
            Baseline::Critic => ScoreAdvantages::default(),
            baseline => ScoreAdvantages {
                baseline,
                score_kl: beta_at(KlPlacement::ResponseReward),
                normalise: false,
                dynamic_sampling: o.dynamic_sampling,
            },
        };
        let grpo = (o.baseline != Baseline::Critic).then(|| GrpoCoeffs {
            beta: beta_at(KlPlacement::Loss),
            agg: match o.unit {
                Unit::Token(agg) => agg,
                // Unused: one ratio per response is averaged over the responses.
                Unit::Response => LossAgg::TokenMean,
            },
            clip: o.clip.unwrap_or(ClipRange::NONE),
            per_response: o.unit == Unit::Response,
        });
        MemberSetup {
            score_advantages,
            scale,
            grpo,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_member_runs_as_its_paper_says() {
        let setup = |f: Family| f.setup(0.2, 0.05, 100);
        let ppo = setup(Family::Ppo);
        assert_eq!(Family::Ppo.algorithm(), Algorithm::Ppo);
        assert!(ppo.grpo.is_none() && !Family::Ppo.needs_groups());
        // GRPO: the group's std, the KL in the loss, a symmetric clip per token.
        let grpo = setup(Family::Grpo);
        assert_eq!(grpo.scale, RewardScale::Group);
        let g = grpo.grpo.unwrap();
        assert_eq!(
            (g.beta, g.clip, g.per_response),
            (0.05, ClipRange::symmetric(0.2), false)
        );
        assert_eq!(g.agg, LossAgg::SeqMeanTokenMean);
        // Dr. GRPO: no std, a constant length.
        let dr = setup(Family::DrGrpo);
        assert_eq!(dr.scale, RewardScale::None);
        assert_eq!(
            dr.grpo.unwrap().agg,
            LossAgg::SeqMeanTokenSumNorm { max_len: 100 }
        );
        // DAPO: clip higher, no KL, dynamic sampling.
        let dapo = setup(Family::Dapo);
        let d = dapo.grpo.unwrap();
        assert_eq!((d.beta, d.clip.high), (0.0, 0.28));
        assert!(dapo.score_advantages.dynamic_sampling);
        // RLOO: leave-one-out on the score less beta x KL, one clipped ratio per response.
        let rloo = setup(Family::Rloo);
        assert_eq!(rloo.score_advantages.baseline, Baseline::LeaveOneOut);
        assert_eq!(rloo.score_advantages.score_kl, 0.05);
        let r = rloo.grpo.unwrap();
        assert!(r.per_response && r.beta == 0.0 && r.clip == ClipRange::symmetric(0.2));
        // REINFORCE: the batch mean, no clip, no groups.
        let re = setup(Family::Reinforce);
        assert_eq!(re.grpo.unwrap().clip, ClipRange::NONE);
        assert!(!Family::Reinforce.needs_groups() && Family::Rloo.needs_groups());
        for f in [
            Family::Grpo,
            Family::DrGrpo,
            Family::Dapo,
            Family::Rloo,
            Family::Reinforce,
        ] {
            assert_eq!(f.algorithm(), Algorithm::Grpo);
        }
    }
}
