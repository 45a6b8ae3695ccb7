//! Each member's per-token advantages on one batch, side by side: what the page's comparison
//! table shows (issue 49), from the batch's own numbers through the scalar forms.
//!
//! PPO's are the batch's GAE advantages (whitened as the run whitens them); the critic-free
//! members' come from the responses' scores alone, each spread over its response's real tokens:
//! GRPO's and DAPO's `(r - mean) / (std + 1e-4)` in the group, Dr. GRPO's `r - mean`, RLOO's
//! `r' - mean of the group's others` and REINFORCE's `r' - mean of the batch`, where
//! `r' = r - beta * sum_t (logp_old - ref_logp)` is the score less the response's KL. Under DAPO's
//! dynamic sampling a group whose rewards are all equal is left out of the update: its rows are
//! marked, their advantages 0.

use super::batch_baseline::batch_mean_ref;
use super::family::{Baseline, Family, KlPlacement, Scale, Unit};
use super::group_advantages::{RewardScale, broadcast_rows, group_advantages_ref};
use super::leave_one_out::leave_one_out_ref;
use super::sequence_kl::kl_penalised_scores_ref;

/// One batch as the comparison reads it, rows `[B][T]` (0 on padding).
pub struct BatchView<'a> {
    /// Each response's score.
    pub scores: &'a [f32],
    pub logprobs: &'a [Vec<f32>],
    pub ref_logprobs: &'a [Vec<f32>],
    pub response_mask: &'a [Vec<f32>],
    /// PPO's advantages (GAE, whitened as the run whitens them).
    pub ppo_advantages: &'a [Vec<f32>],
    /// Consecutive rows sampled from one prompt (1: no groups).
    pub group_size: usize,
    /// The generation's `max_new_tokens` (Dr. GRPO's constant length).
    pub max_len: usize,
}

/// One member's advantages on the batch.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MemberAdvantages {
    pub member: Family,
    /// Per row and token, 0 on padding.
    pub tokens: Vec<Vec<f32>>,
    /// Per row: the value the member gives the whole response (`None` for PPO, whose tokens
    /// differ).
    pub per_response: Option<Vec<f32>>,
    /// Rows dynamic sampling leaves out of the update (DAPO).
    pub dropped: Vec<bool>,
    /// Per row: what each of its real tokens weighs in the member's surrogate loss with the batch
    /// as one mini-batch (0 on a dropped row). At the update's first step (ratio 1) the loss
    /// pushes a token's log-probability up by `A * w`.
    pub weights: Vec<f32>,
}

impl MemberAdvantages {
    /// `A * w` of row `b`'s token `t`: how hard the update's first step pushes its
    /// log-probability up (down when negative).
    pub fn push(&self, b: usize, t: usize) -> f32 {
        self.tokens[b][t] * self.weights[b]
    }
}

/// `member`'s advantages on `batch`; `beta` weighs the KL in each score (RLOO, REINFORCE; unused
/// by the others). An error names what the member needs that the batch lacks (groups).
pub fn member_advantages(
    member: Family,
    batch: &BatchView,
    beta: f32,
) -> Result<MemberAdvantages, String> {
    let objective = member.objective(0.2, batch.max_len);
    let rows = batch.scores.len();
    let group_size = || {
        if batch.group_size < 2 {
            Err(format!(
                "{} compares each response with its group: the batch needs several samples of \
                 each prompt",
                member.name()
            ))
        } else {
            Ok(batch.group_size)
        }
    };
    let penalised = || -> Vec<f32> {
        let beta = if objective.kl == KlPlacement::ResponseReward {
            beta
        } else {
            0.0
        };
        kl_penalised_scores_ref(
            batch.scores,
            batch.logprobs,
            batch.ref_logprobs,
            batch.response_mask,
            beta,
        )
        .iter()
        .map(|s| s.penalised)
        .collect()
    };
    let mut dropped = vec![false; rows];
    let per_response = match objective.baseline {
        Baseline::Critic => None,
        Baseline::GroupMean => {
            let scale = match objective.scale {
                Scale::GroupStd => RewardScale::Group,
                _ => RewardScale::None,
            };
            let trace = group_advantages_ref(batch.scores, group_size()?, scale)?;
            if objective.dynamic_sampling {
                for g in trace.groups.iter().filter(|g| g.zero_spread) {
                    dropped[g.first_row..g.first_row + g.rewards.len()].fill(true);
                }
            }
            Some(trace.advantages())
        }
        Baseline::LeaveOneOut => Some(leave_one_out_ref(&penalised(), group_size()?)?.advantages()),
        Baseline::BatchMean => Some(batch_mean_ref(&penalised())?.advantages),
    };
    let tokens = match &per_response {
        Some(a) => broadcast_rows(a, batch.response_mask),
        None => batch.ppo_advantages.to_vec(),
    };
    let weights = loss_weights(objective.unit, batch.response_mask, &dropped);
    Ok(MemberAdvantages {
        member,
        tokens,
        per_response,
        dropped,
        weights,
    })
}

/// Each row's token weight in a loss over the rows not `dropped`.
fn loss_weights(unit: Unit, mask: &[Vec<f32>], dropped: &[bool]) -> Vec<f32> {
    let kept: Vec<Vec<f32>> = (mask.iter().zip(dropped))
        .filter(|(_, d)| !**d)
        .map(|(m, _)| m.clone())
        .collect();
    let mut k = 0;
    dropped
        .iter()
        .map(|&d| {
            if d {
                return 0.0;
            }
            k += 1;
            match unit {
                Unit::Response => 1.0 / kept.len() as f32,
                Unit::Token(agg) => agg.token_weight(&kept, k - 1),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two prompts x 2 samples: group 0 split (1, 0), group 1 all wrong; response 0 is two tokens,
    /// the others one. The policy is e times as likely as the reference on response 0's first
    /// token (k1 = 1 there), and as likely elsewhere.
    fn batch_rows() -> [Vec<Vec<f32>>; 4] {
        [
            vec![
                vec![-1.0, -0.5],
                vec![-0.7, 0.0],
                vec![-0.7, 0.0],
                vec![-0.7, 0.0],
            ],
            vec![
                vec![-2.0, -0.5],
                vec![-0.7, 0.0],
                vec![-0.7, 0.0],
                vec![-0.7, 0.0],
            ],
            vec![
                vec![1.0, 1.0],
                vec![1.0, 0.0],
                vec![1.0, 0.0],
                vec![1.0, 0.0],
            ],
            vec![
                vec![0.5, -0.5],
                vec![0.1, 0.0],
                vec![0.2, 0.0],
                vec![0.3, 0.0],
            ],
        ]
    }

    #[test]
    fn hand_worked_members_on_one_batch() {
        let [logprobs, reference, mask, ppo] = batch_rows();
        let scores = [1.0, 0.0, 0.0, 0.0];
        let batch = BatchView {
            scores: &scores,
            logprobs: &logprobs,
            ref_logprobs: &reference,
            response_mask: &mask,
            ppo_advantages: &ppo,
            group_size: 2,
            max_len: 2,
        };
        let get = |m, beta| member_advantages(m, &batch, beta).unwrap();
        // PPO: the batch's own GAE advantages, token by token.
        assert_eq!(get(Family::Ppo, 0.5).tokens, ppo);
        // GRPO: group 0's sample std is 0.7071: +-0.5 / 0.7072 on every real token.
        let grpo = get(Family::Grpo, 0.5);
        let a = 0.5 / (0.5f32.sqrt() + 1e-4);
        assert!((grpo.tokens[0][0] - a).abs() < 1e-5 && (grpo.tokens[0][1] - a).abs() < 1e-5);
        assert!((grpo.tokens[1][0] + a).abs() < 1e-5 && grpo.tokens[1][1] == 0.0);
        assert_eq!(grpo.tokens[2], vec![0.0, 0.0]);
        // Dr. GRPO: +-0.5, no std.
        assert_eq!(
            get(Family::DrGrpo, 0.5).per_response,
            Some(vec![0.5, -0.5, 0.0, 0.0])
        );
        // DAPO: GRPO's numbers, group 1 (all wrong) dropped.
        let dapo = get(Family::Dapo, 0.5);
        assert_eq!(dapo.dropped, vec![false, false, true, true]);
        assert_eq!(dapo.tokens, grpo.tokens);
        // RLOO with beta 0.5: response 0's score less 0.5 * KL 1 is 0.5; against its one
        // sibling (0): +0.5 and -0.5.
        assert_eq!(
            get(Family::Rloo, 0.5).per_response,
            Some(vec![0.5, -0.5, 0.0, 0.0])
        );
        // Without the KL: +1 and -1, twice GRPO's centred values (G / (G - 1) = 2).
        assert_eq!(
            get(Family::Rloo, 0.0).per_response,
            Some(vec![1.0, -1.0, 0.0, 0.0])
        );
        // REINFORCE: the batch mean of (0.5, 0, 0, 0) is 0.125.
        assert_eq!(
            get(Family::Reinforce, 0.5).per_response,
            Some(vec![0.375, -0.125, -0.125, -0.125])
        );
        // GRPO takes no beta: its KL is in the loss.
        assert_eq!(get(Family::Grpo, 9.0), grpo);
        // The weights, with 5 real tokens (response 0 has 2): PPO's token mean 1/5 each;
        // GRPO's sequence mean 1/(4 x 2) on response 0's tokens, 1/4 on the others'; Dr. GRPO's
        // constant length 1/(4 x 2) on all; DAPO's token mean over the 3 kept tokens; RLOO's and
        // REINFORCE's one ratio per response 1/4 on every token.
        let w = |m| get(m, 0.5).weights;
        assert_eq!(w(Family::Ppo), vec![0.2; 4]);
        assert_eq!(w(Family::Grpo), vec![0.125, 0.25, 0.25, 0.25]);
        assert_eq!(w(Family::DrGrpo), vec![0.125; 4]);
        assert_eq!(w(Family::Dapo), vec![1.0 / 3.0, 1.0 / 3.0, 0.0, 0.0]);
        assert_eq!(w(Family::Rloo), vec![0.25; 4]);
        assert_eq!(w(Family::Reinforce), vec![0.25; 4]);
        // The push on response 0's first token: GRPO A/8, Dr. GRPO 0.5/8.
        assert!((grpo.push(0, 0) - a / 8.0).abs() < 1e-7);
        assert_eq!(get(Family::DrGrpo, 0.5).push(0, 0), 0.0625);
    }

    #[test]
    fn a_group_member_needs_groups() {
        let [logprobs, reference, mask, ppo] = batch_rows();
        let batch = BatchView {
            scores: &[1.0, 0.0, 0.0, 0.0],
            logprobs: &logprobs,
            ref_logprobs: &reference,
            response_mask: &mask,
            ppo_advantages: &ppo,
            group_size: 1,
            max_len: 2,
        };
        let err = member_advantages(Family::Rloo, &batch, 0.1).unwrap_err();
        assert!(
            err.contains("RLOO") && err.contains("several samples"),
            "{err}"
        );
        assert!(member_advantages(Family::Reinforce, &batch, 0.1).is_ok());
    }
}
