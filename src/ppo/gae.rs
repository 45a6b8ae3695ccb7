//! Generalized Advantage Estimation, from the last token back to the first.
//!
//! For each real token `t`, with `m` the response mask (taken as 0 past the end):
//! ```text
//! delta_t = r_t + gamma * V_{t+1} * m_{t+1} - V_t          one-step TD error
//! A_t     = delta_t + gamma * lam * m_{t+1} * A_{t+1}      needs A_{t+1}: hence backwards
//! R_t     = A_t + V_t                                      the value head's target
//! ```
//! After the last real token nothing follows (`m_{t+1} = 0`), so there `delta_t = r_t - V_t` and
//! `A_t = delta_t`: the recursion starts from `A = 0` beyond the end, it is not an extra rule.
//! `lam = 0` gives the TD errors, `lam = 1` the discounted return minus `V_t`. Every output is 0
//! on padding.

use burn::tensor::Tensor;

/// Discount and GAE parameters, both in `[0, 1]`.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GaeParams {
    pub gamma: f32,
    pub lam: f32,
}

impl GaeParams {
    /// Rejects values outside `[0, 1]` (and NaN), naming the parameter.
    pub fn new(gamma: f32, lam: f32) -> Result<Self, String> {
        for (name, value) in [("gamma", gamma), ("lam", lam)] {
            if !(0.0..=1.0).contains(&value) {
                return Err(format!("{name} = {value} is outside [0, 1]"));
            }
        }
        Ok(GaeParams { gamma, lam })
    }
}

/// What [`gae`] returns, each `[B, T]` and 0 on padding.
pub struct Gae {
    pub deltas: Tensor<2>,
    pub advantages: Tensor<2>,
    pub returns: Tensor<2>,
}

/// GAE over a batch. `rewards`, `values` and `response_mask` are `[B, T]`.
pub fn gae(
    rewards: Tensor<2>,
    values: Tensor<2>,
    response_mask: Tensor<2>,
    params: GaeParams,
) -> Gae {
    let GaeParams { gamma, lam } = params;
    let [batch, len] = rewards.dims();
    let device = rewards.device();

    // State carried from token t+1 to token t; past the end everything is 0.
    let mut next_value = Tensor::<2>::zeros([batch, 1], &device); // V_{t+1} * m_{t+1}
    let mut next_mask = Tensor::<2>::zeros([batch, 1], &device); // m_{t+1}
    let mut next_advantage = Tensor::<2>::zeros([batch, 1], &device); // A_{t+1}
    let mut deltas = Vec::with_capacity(len);
    let mut advantages = Vec::with_capacity(len);

    for t in (0..len).rev() {
        let r = rewards.clone().narrow(1, t, 1); // [B, 1]
        let v = values.clone().narrow(1, t, 1);
        let m = response_mask.clone().narrow(1, t, 1);

        let delta = r + next_value * gamma - v.clone();
        let advantage = delta.clone() + next_advantage * next_mask * (gamma * lam);

        next_value = v * m.clone();
        next_mask = m;
        next_advantage = advantage.clone();
        deltas.push(delta);
        advantages.push(advantage);
    }
    deltas.reverse();
    advantages.reverse();

    let deltas = Tensor::cat(deltas, 1) * response_mask.clone();
    let advantages = Tensor::cat(advantages, 1) * response_mask.clone();
    let returns = (advantages.clone() + values) * response_mask;
    Gae {
        deltas,
        advantages,
        returns,
    }
}

/// One backward step of the scalar sweep, with every number in its two formulas.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GaeStep {
    pub t: usize,
    pub reward: f32,
    pub value: f32,
    /// `V_{t+1}`, 0 past the end.
    pub next_value: f32,
    /// `m_{t+1}`, 0 past the end.
    pub next_mask: f32,
    pub delta: f32,
    /// `A_{t+1}`, 0 past the end.
    pub next_advantage: f32,
    pub advantage: f32,
    pub ret: f32,
}

/// The scalar sweep of one sequence: outputs in token order, steps in the order computed
/// (last real token first). Padding gets no step and 0 outputs.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GaeTrace {
    pub params: GaeParams,
    pub deltas: Vec<f32>,
    pub advantages: Vec<f32>,
    pub returns: Vec<f32>,
    pub steps: Vec<GaeStep>,
}

/// Scalar GAE of one sequence. `response_mask` must be suffix-padded (see
/// [`super::check_suffix_mask`]); all three slices have the same length.
pub fn gae_ref(
    rewards: &[f32],
    values: &[f32],
    response_mask: &[f32],
    params: GaeParams,
) -> GaeTrace {
    let GaeParams { gamma, lam } = params;
    let n = rewards.len();
    let len = super::real_len(response_mask);
    let mut deltas = vec![0.0; n];
    let mut advantages = vec![0.0; n];
    let mut returns = vec![0.0; n];
    let mut steps = Vec::with_capacity(len);

    for t in (0..len).rev() {
        let (next_value, next_mask, next_advantage) = if t + 1 < n {
            (values[t + 1], response_mask[t + 1], advantages[t + 1])
        } else {
            (0.0, 0.0, 0.0)
        };
        let delta = rewards[t] + gamma * next_value * next_mask - values[t];
        let advantage = delta + gamma * lam * next_mask * next_advantage;
        deltas[t] = delta;
        advantages[t] = advantage;
        returns[t] = advantage + values[t];
        steps.push(GaeStep {
            t,
            reward: rewards[t],
            value: values[t],
            next_value,
            next_mask,
            delta,
            next_advantage,
            advantage,
            ret: returns[t],
        });
    }
    GaeTrace {
        params,
        deltas,
        advantages,
        returns,
        steps,
    }
}

impl GaeStep {
    /// `delta_2 = 2.000 + 0.9 × 0.000 × 0 − 3.000 = −1.000`, the formula with its numbers.
    pub fn delta_formula(&self, gamma: f32) -> String {
        format!(
            "delta_{t} = {r:.3} + {gamma} × {nv:.3} × {nm} − {v:.3} = {d:.3}",
            t = self.t,
            r = self.reward,
            nv = self.next_value,
            nm = self.next_mask,
            v = self.value,
            d = self.delta,
        )
    }

    /// `A_1 = 0.200 + 0.9 × 0.95 × 1 × (−1.000) = −0.655`.
    pub fn advantage_formula(&self, params: GaeParams) -> String {
        format!(
            "A_{t} = {d:.3} + {g} × {l} × {nm} × ({na:.3}) = {a:.3}",
            t = self.t,
            d = self.delta,
            g = params.gamma,
            l = params.lam,
            nm = self.next_mask,
            na = self.next_advantage,
            a = self.advantage,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::{Compute, block_on, read_f32};
    use crate::ppo::testutil::Lcg;
    use burn::tensor::TensorData;

    fn close(a: &[f32], b: &[f32], tol: f32) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol)
    }

    /// Runs the tensor form on flex over `rows` and returns (deltas, advantages, returns), flat.
    fn tensor_gae(
        rewards: &[Vec<f32>],
        values: &[Vec<f32>],
        mask: &[Vec<f32>],
        params: GaeParams,
    ) -> [Vec<f32>; 3] {
        let device = Compute::flex().device;
        let shape = [rewards.len(), rewards[0].len()];
        let make = |rows: &[Vec<f32>]| {
            Tensor::<2>::from_data(TensorData::new(rows.concat(), shape), &device)
        };
        let out = gae(make(rewards), make(values), make(mask), params);
        [out.deltas, out.advantages, out.returns].map(|t| block_on(read_f32(t)).unwrap())
    }

    #[test]
    fn worked_example_from_the_tutorial() {
        // gamma 0.9, lambda 0.95, r = [1, 0, 2], V = [2.0, 2.5, 3.0]:
        // delta = [1.25, 0.2, -1.0]; A_2 = -1, A_1 = 0.2 - 0.855 = -0.655,
        // A_0 = 1.25 + 0.855 * -0.655 = 0.689975.
        let params = GaeParams::new(0.9, 0.95).unwrap();
        let trace = gae_ref(&[1.0, 0.0, 2.0], &[2.0, 2.5, 3.0], &[1.0; 3], params);
        assert!(close(&trace.deltas, &[1.25, 0.2, -1.0], 1e-6));
        assert!(close(&trace.advantages, &[0.689_975, -0.655, -1.0], 1e-6));
        assert!(close(&trace.returns, &[2.689_975, 1.845, 2.0], 1e-6));
        assert_eq!(
            trace.steps.iter().map(|s| s.t).collect::<Vec<_>>(),
            [2, 1, 0]
        );
        assert_eq!(
            trace.steps[1].advantage_formula(params),
            "A_1 = 0.200 + 0.9 × 0.95 × 1 × (-1.000) = -0.655"
        );

        let [d, a, r] = tensor_gae(
            &[vec![1.0, 0.0, 2.0]],
            &[vec![2.0, 2.5, 3.0]],
            &[vec![1.0; 3]],
            params,
        );
        assert!(close(&d, &trace.deltas, 1e-6));
        assert!(close(&a, &trace.advantages, 1e-6));
        assert!(close(&r, &trace.returns, 1e-6));
    }

    #[test]
    fn lambda_zero_gives_td_errors_and_lambda_one_the_discounted_return() {
        let rewards = [0.5, -1.0, 0.25, 2.0];
        let values = [1.0, 0.5, -0.5, 0.75];
        let mask = [1.0; 4];
        let gamma = 0.8;

        let td = gae_ref(
            &rewards,
            &values,
            &mask,
            GaeParams::new(gamma, 0.0).unwrap(),
        );
        assert_eq!(td.advantages, td.deltas);

        let mc = gae_ref(
            &rewards,
            &values,
            &mask,
            GaeParams::new(gamma, 1.0).unwrap(),
        );
        for t in 0..4 {
            let discounted: f32 = (t..4)
                .map(|k| gamma.powi((k - t) as i32) * rewards[k])
                .sum();
            assert!((mc.advantages[t] - (discounted - values[t])).abs() < 1e-5);
            assert!((mc.returns[t] - discounted).abs() < 1e-5);
        }
    }

    #[test]
    fn padding_never_changes_real_tokens_and_stays_zero() {
        let params = GaeParams::new(0.95, 0.9).unwrap();
        let short = gae_ref(&[0.1, 0.2, 1.0], &[0.3, 0.1, 0.4], &[1.0; 3], params);
        // Same sequence with two padded positions holding garbage.
        let padded = gae_ref(
            &[0.1, 0.2, 1.0, 55.0, -7.0],
            &[0.3, 0.1, 0.4, 99.0, 3.0],
            &[1.0, 1.0, 1.0, 0.0, 0.0],
            params,
        );
        assert_eq!(&padded.advantages[..3], &short.advantages[..]);
        assert_eq!(&padded.advantages[3..], &[0.0, 0.0]);
        assert_eq!(&padded.returns[3..], &[0.0, 0.0]);
        assert_eq!(padded.steps.len(), 3);
    }

    /// Property test over random shapes, values and suffix masks: the tensor form equals the
    /// scalar form row by row, and padding content never matters.
    #[test]
    fn tensor_and_scalar_agree_on_random_batches() {
        let mut rng = Lcg(0x5eed);
        for case in 0..40 {
            let batch = 1 + rng.below(4);
            let len = 1 + rng.below(9);
            let params = GaeParams::new(rng.unit(), rng.unit()).unwrap();
            let mut rewards = Vec::new();
            let mut values = Vec::new();
            let mut mask = Vec::new();
            for _ in 0..batch {
                let real = rng.below(len + 1);
                rewards.push((0..len).map(|_| rng.unit() * 4.0 - 2.0).collect::<Vec<_>>());
                values.push((0..len).map(|_| rng.unit() * 4.0 - 2.0).collect::<Vec<_>>());
                mask.push(
                    (0..len)
                        .map(|t| if t < real { 1.0 } else { 0.0 })
                        .collect::<Vec<_>>(),
                );
            }
            let [d, a, r] = tensor_gae(&rewards, &values, &mask, params);
            for b in 0..batch {
                let trace = gae_ref(&rewards[b], &values[b], &mask[b], params);
                let row = b * len..(b + 1) * len;
                assert!(
                    close(&d[row.clone()], &trace.deltas, 1e-5),
                    "case {case} row {b}"
                );
                assert!(
                    close(&a[row.clone()], &trace.advantages, 1e-5),
                    "case {case} row {b}"
                );
                assert!(close(&r[row], &trace.returns, 1e-5), "case {case} row {b}");

                // Scrambling padded positions changes nothing.
                let mut scrambled_r = rewards[b].clone();
                let mut scrambled_v = values[b].clone();
                for t in super::super::real_len(&mask[b])..len {
                    scrambled_r[t] = 1e3;
                    scrambled_v[t] = -1e3;
                }
                // (The trace still records the padded V_(t+1); it is multiplied by m_(t+1) = 0.)
                let scrambled = gae_ref(&scrambled_r, &scrambled_v, &mask[b], params);
                assert_eq!(scrambled.deltas, trace.deltas);
                assert_eq!(scrambled.advantages, trace.advantages);
                assert_eq!(scrambled.returns, trace.returns);
            }
        }
    }

    #[test]
    fn parameters_outside_the_unit_interval_are_refused() {
        assert!(
            GaeParams::new(1.1, 0.9)
                .unwrap_err()
                .contains("gamma = 1.1")
        );
        assert!(
            GaeParams::new(0.9, -0.1)
                .unwrap_err()
                .contains("lam = -0.1")
        );
        assert!(GaeParams::new(f32::NAN, 0.9).is_err());
    }
}
