//! The student's functions beside the reference on the page's own numbers.
//!
//! With the `exercises` feature the page runs the student's code; [`compare_gae`] and
//! [`compare_losses`] run both implementations on the same inputs the iteration used, so the
//! page can mark every cell where the student's value differs from the reference's. The
//! comparison uses the grader's tolerance ([`super::grade::TOLERANCE`]).

use burn::tensor::Tensor;

use super::grade::TOLERANCE;
use super::{Implementation, REFERENCE, Todo};
use crate::compute::read_f32;
use crate::model::Qwen2Model;
use crate::ppo::gae::{Gae, GaeParams};
use crate::ppo::iteration::{Experience, rows_f32, to_rows};
use crate::ppo::update::{MiniBatch, UpdateConfig};
use crate::ppo::whiten::masked_whiten;
use crate::rollout::generate::response_outputs;

/// Whether the student's `yours` differs from the reference's `reference`: by more than the
/// grader's tolerance (relative, absolute below 1), or NaN/infinite where the reference is not.
pub fn differs(yours: f32, reference: f32) -> bool {
    if !yours.is_finite() || !reference.is_finite() {
        return yours.to_bits() != reference.to_bits();
    }
    (yours - reference).abs() > TOLERANCE * reference.abs().max(1.0)
}

/// Exercise 4's outputs read back as rows `[B][R]`, and the whitened advantages made from them.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GaeRows {
    pub deltas: Vec<Vec<f32>>,
    pub advantages: Vec<Vec<f32>>,
    pub returns: Vec<Vec<f32>>,
    /// Whitened over the batch's real tokens, as the update uses them (None when whitening is
    /// off).
    pub whitened: Option<Vec<Vec<f32>>>,
}

impl GaeRows {
    /// The rows of one column: `delta`, `adv`, `ret` or `white` (the page's cell names).
    pub fn column(&self, name: &str) -> Option<&Vec<Vec<f32>>> {
        match name {
            "delta" => Some(&self.deltas),
            "adv" => Some(&self.advantages),
            "ret" => Some(&self.returns),
            "white" => self.whitened.as_ref(),
            _ => None,
        }
    }
}

/// Exercise 4, the student's and the reference's, on the same rewards, values and mask.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GaeComparison {
    pub yours: GaeRows,
    pub reference: GaeRows,
}

impl GaeComparison {
    /// The student's value of `column` at (`row`, `t`) when it differs from the reference's.
    pub fn differs_at(&self, column: &str, row: usize, t: usize) -> Option<f32> {
        let yours = *self.yours.column(column)?.get(row)?.get(t)?;
        let reference = *self.reference.column(column)?.get(row)?.get(t)?;
        differs(yours, reference).then_some(yours)
    }

    /// How many real-token cells differ, and how many were compared.
    pub fn count(&self, mask: &[Vec<f32>]) -> (usize, usize) {
        let (mut differing, mut compared) = (0, 0);
        for column in ["delta", "adv", "ret", "white"] {
            if self.yours.column(column).is_none() {
                continue;
            }
            for (row, m) in mask.iter().enumerate() {
                for (t, m) in m.iter().enumerate() {
                    if *m > 0.0 {
                        compared += 1;
                        differing += usize::from(self.differs_at(column, row, t).is_some());
                    }
                }
            }
        }
        (differing, compared)
    }
}

async fn gae_rows(gae: Gae, mask: Tensor<2>, whiten: bool) -> Result<GaeRows, String> {
    let width = mask.dims()[1];
    let rows = |flat: Vec<f32>| to_rows(flat, width);
    let whitened = if whiten {
        let white = masked_whiten(gae.advantages.clone(), mask);
        Some(rows(read_f32(white).await?))
    } else {
        None
    };
    Ok(GaeRows {
        deltas: rows(read_f32(gae.deltas).await?),
        advantages: rows(read_f32(gae.advantages).await?),
        returns: rows(read_f32(gae.returns).await?),
        whitened,
    })
}

/// Runs exercise 4 of `student` and of the reference on the same inputs `[B, R]`. None while the
/// student's `gae` is still `Todo`.
pub async fn compare_gae(
    student: &Implementation,
    rewards: Tensor<2>,
    values: Tensor<2>,
    response_mask: Tensor<2>,
    params: GaeParams,
    whiten: bool,
) -> Result<Option<GaeComparison>, String> {
    let Ok(yours) = (student.gae)(
        rewards.clone(),
        values.clone(),
        response_mask.clone(),
        params,
    ) else {
        return Ok(None);
    };
    let reference = (REFERENCE.gae)(rewards, values, response_mask.clone(), params)
        .map_err(|todo| todo.to_string())?;
    Ok(Some(GaeComparison {
        yours: gae_rows(yours, response_mask.clone(), whiten).await?,
        reference: gae_rows(reference, response_mask, whiten).await?,
    }))
}

/// One scalar an exercise computes, the student's beside the reference's.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ScalarCheck {
    pub exercise: u8,
    /// For `data-testid`s: `policy-loss`, `total` and so on (prefixed with the exercise number).
    pub key: String,
    pub label: String,
    /// None while the student's function is `Todo`.
    pub yours: Option<f32>,
    pub reference: f32,
}

impl ScalarCheck {
    pub fn differs(&self) -> bool {
        self.yours.is_some_and(|y| differs(y, self.reference))
    }
}

async fn scalar(t: Tensor<1>) -> Result<f32, String> {
    Ok(read_f32(t).await?.first().copied().unwrap_or(f32::NAN))
}

async fn scalars(
    exercise: u8,
    labels: &[(&'static str, &'static str)],
    yours: Result<Vec<Tensor<1>>, Todo>,
    reference: Vec<Tensor<1>>,
) -> Result<Vec<ScalarCheck>, String> {
    let yours = match yours {
        Ok(tensors) => {
            let mut values = Vec::new();
            for t in tensors {
                values.push(Some(scalar(t).await?));
            }
            values
        }
        Err(_) => vec![None; labels.len()],
    };
    let mut checks = Vec::new();
    for (((key, label), yours), reference) in labels.iter().zip(yours).zip(reference) {
        checks.push(ScalarCheck {
            exercise,
            key: format!("ex{exercise}-{key}"),
            label: label.to_string(),
            yours,
            reference: scalar(reference).await?,
        });
    }
    Ok(checks)
}

/// Runs exercises 1, 2, 3 and 5 of `student` and of the reference on one mini-batch and
/// `model`: 1-3 on one teacher-forced pass of the model over it, 5 on the mini-batch itself.
pub async fn compare_losses(
    student: &Implementation,
    model: &Qwen2Model,
    minibatch: MiniBatch,
    config: &UpdateConfig,
) -> Result<Vec<ScalarCheck>, String> {
    let out = response_outputs(
        model,
        minibatch.ids.clone(),
        minibatch.attention_mask.clone(),
        minibatch.prompt_len,
        config.temperature,
    );
    let mb = &minibatch;
    let coeffs = config.coeffs;
    let mut checks = Vec::new();

    let policy = |imp: &Implementation| {
        (imp.policy_loss)(
            out.logprobs.clone(),
            mb.old_logprobs.clone(),
            mb.advantages.clone(),
            mb.response_mask.clone(),
            coeffs.clip_ratio,
        )
        .map(|p| vec![p.loss, p.clip_frac, p.approx_kl])
    };
    let labels = [
        ("policy-loss", "policy loss"),
        ("clip-frac", "policy clip fraction"),
        ("approx-kl", "approx KL"),
    ];
    let reference = policy(&REFERENCE).map_err(|t| t.to_string())?;
    checks.extend(scalars(1, &labels, policy(student), reference).await?);

    let value = |imp: &Implementation| {
        (imp.value_loss)(
            out.values.clone(),
            mb.old_values.clone(),
            mb.returns.clone(),
            mb.response_mask.clone(),
            coeffs.clip_range_value,
        )
        .map(|v| vec![v.loss, v.clip_frac])
    };
    let labels = [
        ("value-loss", "value loss"),
        ("clip-frac", "value clip fraction"),
    ];
    let reference = value(&REFERENCE).map_err(|t| t.to_string())?;
    checks.extend(scalars(2, &labels, value(student), reference).await?);

    let entropy = |imp: &Implementation| {
        (imp.masked_entropy)(out.logits.clone(), mb.response_mask.clone()).map(|e| vec![e])
    };
    let reference = entropy(&REFERENCE).map_err(|t| t.to_string())?;
    checks.extend(scalars(3, &[("entropy", "entropy")], entropy(student), reference).await?);

    let objective = |imp: &Implementation| {
        (imp.minibatch_losses)(model, minibatch.clone(), config).map(|l| {
            let entropy = l
                .entropy
                .unwrap_or_else(|| Tensor::<1>::from_floats([f32::NAN], &l.total.device()));
            vec![l.total, l.policy, l.value, entropy]
        })
    };
    let labels = [
        ("total", "total loss"),
        ("policy", "its policy loss"),
        ("value", "its value loss"),
        ("entropy", "its entropy"),
    ];
    let reference = objective(&REFERENCE).map_err(|t| t.to_string())?;
    checks.extend(scalars(5, &labels, objective(student), reference).await?);
    Ok(checks)
}

/// Everything the page marks for one iteration.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IterationComparison {
    /// Exercise 4 on the iteration's rewards, values and mask (None while `Todo`).
    pub gae: Option<GaeComparison>,
    /// Exercises 1, 2, 3 and 5 on the whole batch, with the model after the update.
    pub losses: Vec<ScalarCheck>,
}

/// Compares `student` with the reference on one iteration: exercise 4 on its experience, the
/// others on its batch as one mini-batch through `model` (the policy after the update).
pub async fn compare_iteration(
    student: &Implementation,
    experience: &Experience,
    params: GaeParams,
    whiten: bool,
    model: &Qwen2Model,
    config: &UpdateConfig,
) -> Result<IterationComparison, String> {
    let device = model.device();
    let rows = |m: &Vec<Vec<f32>>| rows_f32(m, &device);
    let gae = compare_gae(
        student,
        rows(&experience.rewards),
        rows(&experience.rollout.values),
        rows(&experience.rollout.response_mask),
        params,
        whiten,
    )
    .await?;
    let all: Vec<usize> = (0..experience.rollout.ids.len()).collect();
    let minibatch = experience.every_row().minibatch(&all, &device);
    let losses = compare_losses(student, model, minibatch, config).await?;
    Ok(IterationComparison { gae, losses })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::block_on;
    use crate::exercises::STUDENT;
    use crate::exercises::grade::minibatch_case;
    use crate::ppo::value_loss::ValueLoss;
    use burn::tensor::{Device, TensorData};

    /// The seeds' worked example (rewards 1, 0, 2; values 2, 2.5, 3; gamma 0.9, lambda 0.95)
    /// and a second row of two real tokens and one padding.
    fn worked_example() -> (Tensor<2>, Tensor<2>, Tensor<2>, GaeParams) {
        let device = Device::flex();
        let t = |v: [f32; 6]| Tensor::<2>::from_data(TensorData::new(v.to_vec(), [2, 3]), &device);
        (
            t([1.0, 0.0, 2.0, 0.5, -1.0, 0.0]),
            t([2.0, 2.5, 3.0, 1.0, 0.5, 0.0]),
            t([1.0, 1.0, 1.0, 1.0, 1.0, 0.0]),
            GaeParams {
                gamma: 0.9,
                lam: 0.95,
            },
        )
    }

    /// R_t = A_t: the student forgot to add the value back.
    fn returns_without_values(
        rewards: Tensor<2>,
        values: Tensor<2>,
        mask: Tensor<2>,
        params: GaeParams,
    ) -> Result<Gae, Todo> {
        let g = crate::ppo::gae::gae(rewards, values, mask, params);
        Ok(Gae {
            returns: g.advantages.clone(),
            ..g
        })
    }

    #[test]
    fn differs_uses_the_graders_tolerance_and_catches_nan() {
        assert!(!differs(1.0, 1.0 + 5e-5));
        assert!(differs(1.0, 1.0 + 2e-4));
        assert!(!differs(1000.0, 1000.05));
        assert!(differs(f32::NAN, 1.0));
        assert!(!differs(f32::NAN, f32::NAN));
        assert!(differs(f32::INFINITY, 1.0));
    }

    #[test]
    fn the_reference_against_itself_marks_nothing() {
        let (r, v, m, p) = worked_example();
        let c = block_on(compare_gae(&REFERENCE, r, v, m, p, true))
            .unwrap()
            .unwrap();
        let mask = vec![vec![1.0, 1.0, 1.0], vec![1.0, 1.0, 0.0]];
        assert_eq!(c.count(&mask), (0, 20));
        // The worked example's advantages, the page's reference column.
        let adv = &c.reference.advantages[0];
        for (a, b) in adv.iter().zip([0.689975, -0.655, -1.0]) {
            assert!((a - b).abs() < 1e-5, "{adv:?}");
        }
    }

    #[test]
    fn a_wrong_return_marks_every_return_cell_and_nothing_else() {
        let (r, v, m, p) = worked_example();
        let student = Implementation {
            gae: returns_without_values,
            ..REFERENCE
        };
        let c = block_on(compare_gae(&student, r, v, m, p, true))
            .unwrap()
            .unwrap();
        let mask = vec![vec![1.0, 1.0, 1.0], vec![1.0, 1.0, 0.0]];
        for (row, t) in [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)] {
            // The student's return is its advantage.
            let yours = c.differs_at("ret", row, t).expect("return marked");
            assert_eq!(yours, c.reference.advantages[row][t]);
            for column in ["delta", "adv", "white"] {
                assert_eq!(c.differs_at(column, row, t), None, "{column} {row} {t}");
            }
        }
        assert_eq!(c.count(&mask), (5, 20));
    }

    #[test]
    fn an_unwritten_gae_is_not_compared() {
        let (r, v, m, p) = worked_example();
        let student = Implementation {
            gae: |_, _, _, _| Err(Todo::new(4)),
            ..REFERENCE
        };
        assert_eq!(block_on(compare_gae(&student, r, v, m, p, false)), Ok(None));
    }

    /// The value loss without its 0.5.
    fn value_loss_doubled(
        new: Tensor<2>,
        old: Tensor<2>,
        returns: Tensor<2>,
        mask: Tensor<2>,
        c: f32,
    ) -> Result<ValueLoss, Todo> {
        let v = crate::ppo::value_loss::value_loss(new, old, returns, mask.clone(), c);
        Ok(ValueLoss {
            loss: v.loss * 2.0,
            clip_frac: v.clip_frac,
        })
    }

    #[test]
    fn losses_mark_the_wrong_value_loss_and_what_it_feeds() {
        let device = Device::flex();
        let (model, minibatch, config) = minibatch_case(&device);
        let student = Implementation {
            policy_loss: |_, _, _, _, _| Err(Todo::new(1)),
            value_loss: value_loss_doubled,
            // Exercise 5 as the trainer falls back to it: the reference objective on the
            // student's pieces, so the doubled value loss reaches the total.
            minibatch_losses: |model, minibatch, config| {
                let pieces = crate::ppo::losses::Pieces {
                    value_loss: |a, b, c, d, e| value_loss_doubled(a, b, c, d, e).unwrap(),
                    ..crate::ppo::losses::REFERENCE_PIECES
                };
                Ok(crate::ppo::update::minibatch_losses_with(
                    &pieces, model, minibatch, config,
                ))
            },
            ..REFERENCE
        };
        let checks =
            block_on(compare_losses(&student, &model, minibatch, &config)).expect("compared");
        let find = |key: &str| {
            checks
                .iter()
                .find(|c| c.key == key)
                .unwrap_or_else(|| panic!("no {key} in {checks:?}"))
        };
        let keys: Vec<&str> = checks.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "ex1-policy-loss",
                "ex1-clip-frac",
                "ex1-approx-kl",
                "ex2-value-loss",
                "ex2-clip-frac",
                "ex3-entropy",
                "ex5-total",
                "ex5-policy",
                "ex5-value",
                "ex5-entropy"
            ]
        );
        // Exercise 1 is not written: shown without a mark.
        assert_eq!(find("ex1-policy-loss").yours, None);
        assert!(!find("ex1-policy-loss").differs());
        let value = find("ex2-value-loss");
        assert!(value.differs());
        assert!((value.yours.unwrap() - 2.0 * value.reference).abs() < 1e-6);
        assert!(value.reference > 0.0);
        assert!(!find("ex2-clip-frac").differs());
        assert!(!find("ex3-entropy").differs());
        // total = policy + 0.5 * value - 0.05 * entropy: the doubled value adds 0.5 * value.
        let total = find("ex5-total");
        let extra = 0.5 * find("ex5-value").reference;
        assert!(total.differs());
        assert!((total.yours.unwrap() - total.reference - extra).abs() < 1e-5);
        assert!(!find("ex5-policy").differs());
        assert!(find("ex5-value").differs());
    }

    #[test]
    fn the_shipped_exercises_compare_as_todo_or_equal() {
        let device = Device::flex();
        let (model, minibatch, config) = minibatch_case(&device);
        let checks =
            block_on(compare_losses(&STUDENT, &model, minibatch, &config)).expect("compared");
        assert_eq!(checks.len(), 10);
        assert!(checks.iter().all(|c| !c.differs()), "{checks:?}");
        let (r, v, m, p) = worked_example();
        if let Some(c) = block_on(compare_gae(&STUDENT, r, v, m, p, true)).unwrap() {
            assert_eq!(c.count(&[vec![1.0; 3], vec![1.0, 1.0, 0.0]]).0, 0);
        }
    }
}
