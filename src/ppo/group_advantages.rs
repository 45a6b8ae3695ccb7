//! GRPO's group-relative advantages: a baseline from the other samples of the same prompt
//! instead of a learned critic.
//!
//! The batch holds `B = P * G` responses, `G` consecutive rows per prompt (a group). For the
//! scores `r_1..r_G` of one group:
//! ```text
//! mean = (1/G) sum_i r_i
//! std  = sqrt( sum_i (r_i - mean)^2 / (G - 1) )        (the sample std, as torch.std)
//! A_i  = (r_i - mean) / (std + eps)                     scale = group (TRL's default)
//! A_i  =  r_i - mean                                    scale = none  (Dr. GRPO)
//! ```
//! and every token of response `i` gets the same `A_i` (0 on padding). A group whose rewards are
//! all equal has `A_i = 0` for every response: that prompt gives no reward signal. The
//! policy-gradient term of its tokens is 0, but the update's loss still acts on them through the
//! `beta * k3` KL term and the entropy bonus, and they still count in the loss's average (the
//! token count for `token-mean`, the response count for `seq-mean-token-mean`). With
//! `scale = group`, a prompt that is nearly always solved (or nearly never) has a tiny std, so its
//! one odd response gets a large advantage; `scale = none` keeps the reward's own units.
//!
//! `eps` is [`GROUP_EPS`] = 1e-4, as in TRL's `GRPOTrainer`; verl uses 1e-6.

use burn::tensor::{Tensor, TensorData};

/// Added to the group's std before dividing.
pub const GROUP_EPS: f32 = 1e-4;

/// Whether the advantages are divided by the group's std (TRL's `scale_rewards`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RewardScale {
    /// `(r - mean) / (std + eps)`.
    #[default]
    Group,
    /// `r - mean`: no std normalisation.
    None,
}

impl RewardScale {
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "group" => Ok(RewardScale::Group),
            "none" => Ok(RewardScale::None),
            other => Err(format!(
                "unknown reward scaling `{other}`: expected group or none"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            RewardScale::Group => "group",
            RewardScale::None => "none",
        }
    }
}

/// How the batch is grouped and scaled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GroupParams {
    /// Consecutive rows sampled from the same prompt.
    pub group_size: usize,
    pub scale: RewardScale,
}

/// Checks that `rows` responses split into groups of `group_size` (at least 2: one sample has no
/// baseline to be compared with).
pub fn check_groups(rows: usize, group_size: usize) -> Result<usize, String> {
    if group_size < 2 {
        return Err(format!(
            "group_size is {group_size}: GRPO needs at least 2 samples per prompt"
        ));
    }
    if rows == 0 || !rows.is_multiple_of(group_size) {
        return Err(format!(
            "{rows} responses do not split into groups of {group_size}"
        ));
    }
    Ok(rows / group_size)
}

/// The tensor form. `scores` is `[B]`, `response_mask` `[B, T]`; returns the `[B, T]` per-token
/// advantages (each row's `A_i` on its real tokens, 0 on padding). `B` must be a multiple of
/// `group_size` ([`check_groups`]).
pub fn group_advantages(
    scores: Tensor<1>,
    response_mask: Tensor<2>,
    group_size: usize,
    scale: RewardScale,
) -> Tensor<2> {
    let [b] = scores.dims();
    let groups = b / group_size;
    let r = scores.reshape([groups, group_size]); // [P, G]
    let mean = r.clone().mean_dim(1); // [P, 1]
    let centered = r.clone() - mean;
    // Exactly 0 where every reward of the group is equal (rounding in the mean could leave 1e-8).
    let spread = (r.clone().max_dim(1) - r.min_dim(1))
        .greater_elem(0.0)
        .float(); // [P, 1]
    let advantages = match scale {
        RewardScale::Group => {
            let var = centered.clone().powf_scalar(2.0).sum_dim(1) / (group_size as f32 - 1.0);
            centered / (var.sqrt() + GROUP_EPS)
        }
        RewardScale::None => centered,
    } * spread;
    advantages.reshape([b, 1]) * response_mask
}

/// One group of the scalar form.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GroupStep {
    /// The group's first row in the batch; its rows are `first_row..first_row + G`.
    pub first_row: usize,
    pub rewards: Vec<f32>,
    pub mean: f32,
    /// The sample std (divides by `G - 1`).
    pub std: f32,
    /// What each reward minus the mean is divided by: `std + eps`, or 1 without scaling.
    pub divisor: f32,
    pub advantages: Vec<f32>,
    /// Every reward equal: every advantage of the group is 0.
    pub zero_spread: bool,
}

/// The scalar form over the batch's scores, group by group, with every step kept for the page.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GroupTrace {
    pub group_size: usize,
    pub scale: RewardScale,
    pub groups: Vec<GroupStep>,
}

impl GroupTrace {
    /// Each response's advantage, in batch order.
    pub fn advantages(&self) -> Vec<f32> {
        self.groups
            .iter()
            .flat_map(|g| g.advantages.iter().copied())
            .collect()
    }

    /// The mean over groups of the within-group reward std (`grpo/reward_std`).
    pub fn reward_std_mean(&self) -> f64 {
        let n = self.groups.len().max(1) as f64;
        self.groups.iter().map(|g| g.std as f64).sum::<f64>() / n
    }

    /// The share of groups whose rewards are all equal (`grpo/zero_std_frac`).
    pub fn zero_spread_frac(&self) -> f64 {
        let n = self.groups.len().max(1) as f64;
        self.groups.iter().filter(|g| g.zero_spread).count() as f64 / n
    }

    /// The group a row belongs to.
    pub fn group_of(&self, row: usize) -> usize {
        row / self.group_size.max(1)
    }
}

/// The scalar form of [`group_advantages`] (per response, before broadcasting to tokens).
pub fn group_advantages_ref(
    scores: &[f32],
    group_size: usize,
    scale: RewardScale,
) -> Result<GroupTrace, String> {
    check_groups(scores.len(), group_size)?;
    let groups = scores
        .chunks(group_size)
        .enumerate()
        .map(|(g, rewards)| {
            let n = rewards.len() as f32;
            let mean = rewards.iter().sum::<f32>() / n;
            let var = rewards.iter().map(|r| (r - mean) * (r - mean)).sum::<f32>() / (n - 1.0);
            let std = var.sqrt();
            let zero_spread = rewards.iter().all(|&r| r == rewards[0]);
            let divisor = match scale {
                RewardScale::Group => std + GROUP_EPS,
                RewardScale::None => 1.0,
            };
            let advantages = rewards
                .iter()
                .map(|r| {
                    if zero_spread {
                        0.0
                    } else {
                        (r - mean) / divisor
                    }
                })
                .collect();
            GroupStep {
                first_row: g * group_size,
                rewards: rewards.to_vec(),
                mean,
                std,
                divisor,
                advantages,
                zero_spread,
            }
        })
        .collect();
    Ok(GroupTrace {
        group_size,
        scale,
        groups,
    })
}

/// Per-response advantages `[B]` spread over each row's real tokens: `[B][T]`, 0 on padding.
pub fn broadcast_rows(advantages: &[f32], response_mask: &[Vec<f32>]) -> Vec<Vec<f32>> {
    advantages
        .iter()
        .zip(response_mask)
        .map(|(a, mask)| mask.iter().map(|m| a * m).collect())
        .collect()
}

/// `[B]` scores as a tensor.
pub fn scores_tensor(scores: &[f32], device: &burn::tensor::Device) -> Tensor<1> {
    Tensor::from_data(TensorData::new(scores.to_vec(), [scores.len()]), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::{Compute, block_on, read_f32};

    #[test]
    fn hand_worked_groups() {
        // Group 0: rewards 1, 0, 0, 1: mean 0.5, sample std sqrt(4 * 0.25 / 3) = 0.57735.
        // Group 1: all 0: no reward signal. Group 2: 1, 0, 0, 0: mean 0.25,
        // std sqrt((0.5625 + 3 * 0.0625) / 3) = 0.5.
        let scores = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0];
        let t = group_advantages_ref(&scores, 4, RewardScale::Group).unwrap();
        assert_eq!(t.groups.len(), 3);
        let g0 = &t.groups[0];
        assert!((g0.std - 0.577_350_3).abs() < 1e-6);
        let a = 0.5 / (0.577_350_3 + 1e-4);
        assert!((g0.advantages[0] - a).abs() < 1e-5 && (g0.advantages[1] + a).abs() < 1e-5);
        assert!(t.groups[1].zero_spread && t.groups[1].advantages == vec![0.0; 4]);
        let g2 = &t.groups[2];
        assert!((g2.std - 0.5).abs() < 1e-6);
        assert!((g2.advantages[0] - 0.75 / 0.5001).abs() < 1e-5);
        assert!((g2.advantages[1] + 0.25 / 0.5001).abs() < 1e-5);
        assert!((t.zero_spread_frac() - 1.0 / 3.0).abs() < 1e-12);
        // The rare success of a hard prompt weighs 1.5, a success of an even prompt 0.87.
        let none = group_advantages_ref(&scores, 4, RewardScale::None).unwrap();
        assert_eq!(none.groups[2].advantages, vec![0.75, -0.25, -0.25, -0.25]);
        assert_eq!(none.groups[0].divisor, 1.0);
    }

    #[test]
    fn bad_groups_are_named() {
        assert!(check_groups(6, 4).unwrap_err().contains("6 responses"));
        assert!(check_groups(4, 1).unwrap_err().contains("at least 2"));
        assert_eq!(check_groups(8, 4), Ok(2));
    }

    #[test]
    fn tensor_form_equals_the_scalar_form() {
        let device = Compute::flex().device;
        let scores = [0.3, 0.3, 0.3, 1.0, 0.0, 0.5, 0.2, 0.2, 0.9];
        let mask = vec![vec![1.0, 1.0, 0.0]; 9];
        for scale in [RewardScale::Group, RewardScale::None] {
            let want = broadcast_rows(
                &group_advantages_ref(&scores, 3, scale)
                    .unwrap()
                    .advantages(),
                &mask,
            );
            let flat: Vec<f32> = mask.iter().flatten().copied().collect();
            let m = Tensor::<2>::from_data(TensorData::new(flat, [9, 3]), &device);
            let got = block_on(read_f32(group_advantages(
                scores_tensor(&scores, &device),
                m,
                3,
                scale,
            )))
            .unwrap();
            for (g, w) in got.iter().zip(want.iter().flatten()) {
                assert!((g - w).abs() < 1e-5, "{scale:?}: {g} vs {w}");
            }
            // The all-0.3 group is exactly 0, not rounding noise.
            assert!(got[..9].iter().all(|&x| x == 0.0));
        }
    }
}
