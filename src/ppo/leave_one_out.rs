//! RLOO's advantages (Ahmadian et al. 2024, "Back to Basics"): each response's reward against
//! the mean of the *other* responses to the same prompt.
//!
//! For the scores `r_1..r_G` of one group (`G` consecutive rows, as in
//! [`group_advantages`](super::group_advantages)):
//! ```text
//! b_i = (sum_j r_j - r_i) / (G - 1)        the leave-one-out baseline
//! A_i = r_i - b_i = G / (G - 1) * (r_i - mean)
//! ```
//! The baseline of response `i` does not contain `r_i`, so it does not depend on the action it
//! judges and the policy-gradient estimate stays unbiased; GRPO's group mean contains `r_i` and
//! shrinks every advantage by `(G - 1) / G`. Nothing divides by the group's spread. A group
//! whose rewards are all equal gets `A_i = 0` for every response, as in GRPO.

use burn::tensor::Tensor;

use super::group_advantages::check_groups;

/// The tensor form: `scores` `[B]` in groups of `group_size` consecutive rows ([`check_groups`])
/// to the `[B]` advantages.
pub fn leave_one_out_advantages(scores: Tensor<1>, group_size: usize) -> Tensor<1> {
    let [b] = scores.dims();
    let r = scores.reshape([b / group_size, group_size]); // [P, G]
    let others = (r.clone().sum_dim(1) - r.clone()) / (group_size as f32 - 1.0);
    // Exactly 0 where every reward of the group is equal.
    let spread = (r.clone().max_dim(1) - r.clone().min_dim(1))
        .greater_elem(0.0)
        .float();
    ((r - others) * spread).reshape([b])
}

/// One group of the scalar form.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LooGroup {
    /// The group's first row; its rows are `first_row..first_row + G`.
    pub first_row: usize,
    pub rewards: Vec<f32>,
    /// `sum_j r_j`.
    pub sum: f32,
    /// `b_i`, the mean of the other rewards.
    pub baselines: Vec<f32>,
    pub advantages: Vec<f32>,
    pub zero_spread: bool,
}

/// The scalar form over the batch, group by group.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LooTrace {
    pub group_size: usize,
    pub groups: Vec<LooGroup>,
}

impl LooTrace {
    /// Each response's advantage, in batch order.
    pub fn advantages(&self) -> Vec<f32> {
        self.groups
            .iter()
            .flat_map(|g| g.advantages.iter().copied())
            .collect()
    }
}

/// The scalar form of [`leave_one_out_advantages`], every step kept.
pub fn leave_one_out_ref(scores: &[f32], group_size: usize) -> Result<LooTrace, String> {
    check_groups(scores.len(), group_size)?;
    let others = group_size as f32 - 1.0;
    let groups = scores
        .chunks(group_size)
        .enumerate()
        .map(|(g, rewards)| {
            let sum: f32 = rewards.iter().sum();
            let zero_spread = rewards.iter().all(|&r| r == rewards[0]);
            let baselines: Vec<f32> = rewards.iter().map(|r| (sum - r) / others).collect();
            let advantages = rewards
                .iter()
                .zip(&baselines)
                .map(|(r, b)| if zero_spread { 0.0 } else { r - b })
                .collect();
            LooGroup {
                first_row: g * group_size,
                rewards: rewards.to_vec(),
                sum,
                baselines,
                advantages,
                zero_spread,
            }
        })
        .collect();
    Ok(LooTrace { group_size, groups })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::{Compute, block_on, read_f32};
    use crate::ppo::group_advantages::{RewardScale, group_advantages_ref, scores_tensor};

    #[test]
    fn hand_worked_groups() {
        // Group 0: 1, 0, 0, 1: sum 2; the first's baseline (0 + 0 + 1) / 3 = 1/3, A = 2/3;
        // the second's (1 + 0 + 1) / 3 = 2/3, A = -2/3. Group 1: all 0.5: no signal.
        let t = leave_one_out_ref(&[1.0, 0.0, 0.0, 1.0, 0.5, 0.5, 0.5, 0.5], 4).unwrap();
        let g0 = &t.groups[0];
        assert_eq!(g0.sum, 2.0);
        assert!((g0.baselines[0] - 1.0 / 3.0).abs() < 1e-7);
        assert!((g0.advantages[0] - 2.0 / 3.0).abs() < 1e-6);
        assert!((g0.advantages[1] + 2.0 / 3.0).abs() < 1e-6);
        assert!(t.groups[1].zero_spread && t.groups[1].advantages == vec![0.0; 4]);
        // A rare success of four: 1 - 0 = 1 against the others, where the group mean gives 0.75.
        let rare = leave_one_out_ref(&[1.0, 0.0, 0.0, 0.0], 4).unwrap();
        assert_eq!(
            rare.advantages(),
            vec![1.0, -1.0 / 3.0, -1.0 / 3.0, -1.0 / 3.0]
        );
    }

    /// `A_i = G / (G - 1) * (r_i - mean)`: the group mean's advantages, scaled up.
    #[test]
    fn it_is_the_group_mean_advantage_scaled_by_g_over_g_minus_1() {
        let scores = [0.2, 0.9, 0.4, 0.0, 1.0, 0.7];
        for g in [2, 3, 6] {
            let loo = leave_one_out_ref(&scores, g).unwrap().advantages();
            let centred = group_advantages_ref(&scores, g, RewardScale::None)
                .unwrap()
                .advantages();
            for (l, c) in loo.iter().zip(&centred) {
                assert!((l - c * g as f32 / (g as f32 - 1.0)).abs() < 1e-6, "G {g}");
            }
        }
        assert!(
            leave_one_out_ref(&scores, 4)
                .unwrap_err()
                .contains("6 responses")
        );
    }

    #[test]
    fn tensor_form_equals_the_scalar_form() {
        let device = Compute::flex().device;
        let scores = [0.3, 0.3, 0.3, 1.0, 0.0, 0.5, 0.2, 0.2, 0.9];
        let want = leave_one_out_ref(&scores, 3).unwrap().advantages();
        let got = block_on(read_f32(leave_one_out_advantages(
            scores_tensor(&scores, &device),
            3,
        )))
        .unwrap();
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-6, "{g} vs {w}");
        }
        assert!(got[..3].iter().all(|&x| x == 0.0));
    }
}
