//! The policy-gradient family on the page's batch: every picked member's advantages and loss
//! weights on the same responses ([`member_advantages`]), with each response's score, its summed
//! KL to the reference and the score less `β` times it (what RLOO and REINFORCE compare).

use crate::ppo::family::Family;
use crate::ppo::iteration::Experience;
use crate::ppo::member_advantages::{BatchView, MemberAdvantages, member_advantages};
pub use crate::ppo::member_setup::MemberParams;
use crate::ppo::sequence_kl::{PenalisedScore, kl_penalised_scores_ref};

/// The picked members on one batch.
#[derive(Clone, Debug, PartialEq)]
pub struct FamilyComparison {
    /// What the members were compared under.
    pub params: MemberParams,
    /// Per response: its score, `Σ_t (log π − log π_ref)` over its real tokens, and the score
    /// less `beta` times that.
    pub scores: Vec<PenalisedScore>,
    /// Each picked member's advantages, or why this batch cannot give them (no groups).
    pub members: Vec<(Family, Result<MemberAdvantages, String>)>,
}

impl FamilyComparison {
    /// The members this batch could give advantages for, in the picked order.
    pub fn available(&self) -> Vec<(Family, &MemberAdvantages)> {
        self.members
            .iter()
            .filter_map(|(f, m)| m.as_ref().ok().map(|m| (*f, m)))
            .collect()
    }
}

/// `members` on `experience`'s batch under `params`.
pub fn compare_members(
    experience: &Experience,
    members: &[Family],
    params: MemberParams,
) -> FamilyComparison {
    let MemberParams {
        beta,
        max_new_tokens,
        ..
    } = params;
    let scores: Vec<f32> = experience.scores.iter().map(|s| s.reward()).collect();
    let view = BatchView {
        scores: &scores,
        logprobs: &experience.rollout.logprobs,
        ref_logprobs: &experience.ref_logprobs,
        response_mask: &experience.rollout.response_mask,
        ppo_advantages: &experience.advantages,
        group_size: experience.group.as_ref().map_or(1, |g| g.group_size),
        max_len: max_new_tokens,
    };
    FamilyComparison {
        params,
        scores: kl_penalised_scores_ref(
            &scores,
            view.logprobs,
            view.ref_logprobs,
            view.response_mask,
            beta,
        ),
        members: members
            .iter()
            .map(|&m| (m, member_advantages(m, &view, beta)))
            .collect(),
    }
}
