//! The five PPO pieces, each in its own file: token rewards with a KL penalty, reverse GAE,
//! masked whitening, the clipped policy and value losses, and entropy; GRPO's two beside them
//! (group-relative advantages, its objective with the KL as a loss term); and the rest of the
//! policy-gradient family's pieces ([`family`]: REINFORCE's batch baseline, RLOO's
//! leave-one-out baseline, a response's ratio and its KL in the score, the decoupled clip, the
//! loss aggregations, DAPO's dynamic sampling).
//!
//! Every piece has two forms that tests prove equal:
//! - a tensor form over batched `[B, T]` tensors on any burn `Device`, which training runs;
//! - a scalar form over plain `f32` slices of one sequence that records every step, which the
//!   page animates and `ppo-lens gae --table` prints.
//!
//! Shapes: `B` sequences (the batch), `T` response tokens, `V` vocabulary entries. A
//! `response_mask` holds 1 on response tokens and 0 on padding after the end; padding only ever
//! follows all real tokens (see [`check_suffix_mask`]).

pub mod batch_baseline;
pub mod clip_range;
pub mod dynamic_sampling;
pub mod entropy;
pub mod family;
pub mod gae;
pub mod group_advantages;
pub mod grpo_loss;
pub mod iteration;
pub mod kl_control;
pub mod leave_one_out;
pub mod loss_agg;
pub mod losses;
pub mod masked;
pub mod member_advantages;
pub mod member_setup;
pub mod policy_loss;
pub mod rewards;
pub mod sequence_kl;
pub mod sequence_loss;
pub mod update;
pub mod value_loss;
pub mod whiten;

pub use masked::{masked_mean, masked_sum};
pub use update::{Functions, REFERENCE};

/// Where the update's advantages come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Algorithm {
    /// GAE on the critic's values, whitened; the value loss trains the critic.
    #[default]
    Ppo,
    /// Each response's reward against its group's ([`group_advantages`]); no critic, the KL to
    /// the reference in the loss ([`grpo_loss`]).
    Grpo,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Ppo => "PPO",
            Algorithm::Grpo => "GRPO",
        }
    }
}

/// Checks that `mask` is 1 on a prefix of real tokens and 0 on the padding after it: only 0 and
/// 1, and never a 1 after a 0. `what` names the mask in the error, with the offending position.
pub fn check_suffix_mask(mask: &[f32], what: &str) -> Result<(), String> {
    let mut padding_from = None;
    for (t, &m) in mask.iter().enumerate() {
        if m != 0.0 && m != 1.0 {
            return Err(format!("{what}[{t}] is {m}; a mask holds only 0 and 1"));
        }
        match (m == 1.0, padding_from) {
            (false, None) => padding_from = Some(t),
            (true, Some(first_pad)) => {
                return Err(format!(
                    "{what}[{t}] is 1 after padding began at {what}[{first_pad}]; padding may only \
                     follow all real tokens"
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Number of real tokens in a suffix-padded mask.
pub fn real_len(mask: &[f32]) -> usize {
    mask.iter().take_while(|&&m| m == 1.0).count()
}

/// Helpers for the property tests of the PPO pieces.
#[cfg(test)]
pub(crate) mod testutil {
    /// A tiny seeded generator (64-bit LCG), so property tests are reproducible.
    pub struct Lcg(pub u64);

    impl Lcg {
        pub fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }

        /// Uniform in `0..n`.
        pub fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        /// Uniform in `[0, 1]`.
        pub fn unit(&mut self) -> f32 {
            (self.next() % 1_000_001) as f32 / 1_000_000.0
        }

        /// Uniform in `[lo, hi]`.
        pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
            lo + (hi - lo) * self.unit()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffix_masks_pass_and_holes_are_named() {
        assert!(check_suffix_mask(&[1.0, 1.0, 0.0, 0.0], "mask[0]").is_ok());
        assert!(check_suffix_mask(&[0.0, 0.0], "mask[0]").is_ok());
        assert!(check_suffix_mask(&[], "mask[0]").is_ok());
        let err = check_suffix_mask(&[1.0, 0.0, 1.0], "mask[2]").unwrap_err();
        assert!(
            err.contains("mask[2][2] is 1 after padding began at mask[2][1]"),
            "{err}"
        );
        let err = check_suffix_mask(&[1.0, 0.5], "mask[0]").unwrap_err();
        assert!(err.contains("mask[0][1] is 0.5"), "{err}");
        assert_eq!(real_len(&[1.0, 1.0, 1.0, 0.0]), 3);
    }
}
