//! DAPO's dynamic sampling (Yu et al. 2025): leave out the groups whose rewards are all equal.
//!
//! A group where every response got the same reward (all right, or all wrong) has advantage 0
//! on every response under any group baseline, so it adds nothing to the policy gradient; it
//! still counts in the loss's average, which shrinks every other token's weight, and under GRPO
//! its KL term still acts. As training goes on more prompts are always solved, and the share of
//! such groups grows. DAPO samples more prompts until the batch is full of groups with a spread;
//! here the switch drops them from the batch the update sees (the batch shrinks; if no group is
//! left, the update has nothing to learn from and says so).

use burn::tensor::{Int, Tensor, TensorData};

use super::group_advantages::check_groups;

/// Which groups stay, and the rows they hold.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Kept {
    pub group_size: usize,
    /// Per group: its rewards differ (it stays).
    pub kept: Vec<bool>,
    /// The batch rows of the groups that stay, in order.
    pub rows: Vec<usize>,
}

impl Kept {
    pub fn dropped(&self) -> usize {
        self.kept.iter().filter(|&&k| !k).count()
    }
}

/// The groups of `scores` (`group_size` consecutive rows each) whose rewards are not all equal.
pub fn groups_with_spread(scores: &[f32], group_size: usize) -> Result<Kept, String> {
    check_groups(scores.len(), group_size)?;
    let kept: Vec<bool> = scores
        .chunks(group_size)
        .map(|g| g.iter().any(|&r| r != g[0]))
        .collect();
    let rows = kept
        .iter()
        .enumerate()
        .filter(|&(_, &k)| k)
        .flat_map(|(g, _)| g * group_size..(g + 1) * group_size)
        .collect();
    Ok(Kept {
        group_size,
        kept,
        rows,
    })
}

/// The tensor form: the kept rows of a `[B, ..]` tensor (its first dimension), in order.
/// `None` when no row is kept.
pub fn keep_rows<const D: usize>(x: Tensor<D>, kept: &Kept) -> Option<Tensor<D>> {
    if kept.rows.is_empty() {
        return None;
    }
    let ids: Vec<i64> = kept.rows.iter().map(|&r| r as i64).collect();
    let n = ids.len();
    let index = Tensor::<1, Int>::from_data(TensorData::new(ids, [n]), &x.device());
    Some(x.select(0, index))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::{Compute, block_on, read_f32};

    #[test]
    fn zero_spread_groups_are_left_out() {
        // Groups of 2: split, all right, all wrong, split.
        let kept = groups_with_spread(&[1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.2, 0.3], 2).unwrap();
        assert_eq!(kept.kept, vec![true, false, false, true]);
        assert_eq!(kept.rows, vec![0, 1, 6, 7]);
        assert_eq!(kept.dropped(), 2);
        assert!(
            groups_with_spread(&[1.0; 3], 2)
                .unwrap_err()
                .contains("3 responses")
        );

        let device = Compute::flex().device;
        let x = Tensor::<2>::from_data(
            TensorData::new((0..16).map(|v| v as f32).collect::<Vec<_>>(), [8, 2]),
            &device,
        );
        let got = block_on(read_f32(keep_rows(x.clone(), &kept).unwrap())).unwrap();
        assert_eq!(got, vec![0.0, 1.0, 2.0, 3.0, 12.0, 13.0, 14.0, 15.0]);
        let none = groups_with_spread(&[1.0; 4], 2).unwrap();
        assert!(keep_rows(x, &none).is_none());
    }
}
