//! The grader: runs one implementation of an exercise on hand-worked cases and on random
//! batches, compares every element with the known answer, and reports the first wrong one with
//! the expected value and a hint for that element.
//!
//! Hand-worked cases come first, so the first failure a student sees is usually one they can
//! redo on paper. Gradients are checked too (exercises 1, 2 and 5): a loss with the right value
//! but the wrong gradient trains a different model.

use std::fmt;

use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::{Implementation, Todo, exercise};
use crate::compute::read_f32;
use crate::model::{Precision, Qwen2Config, Qwen2Model, ValueHeadInit, init_random};
use crate::ppo::gae::GaeParams;
use crate::ppo::losses::LossCoeffs;
use crate::ppo::update::{MiniBatch, UpdateConfig, global_norm};
use crate::rng::Rng;
use crate::rollout::generate::response_outputs;

/// Relative tolerance (absolute below 1).
pub const TOLERANCE: f32 = 1e-4;

/// The first wrong element an exercise produced.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    pub exercise: u8,
    /// Which input case, e.g. `hand-worked: one row, eps 0.2`.
    pub case: String,
    /// The element, e.g. `advantages[0][1]` or `d loss / d logprobs_new[0][2]`.
    pub element: String,
    pub got: String,
    pub expected: String,
    pub hint: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ex = exercise(self.exercise);
        write!(
            f,
            "exercise {} ({}), case \"{}\": {} is {}, expected {} (tolerance {TOLERANCE:e}, \
             relative to values above 1)\n  hint: {}",
            ex.number, ex.function, self.case, self.element, self.got, self.expected, self.hint
        )
    }
}

/// The result of grading one exercise.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Every element of every case matched; `checks` elements were compared.
    Pass {
        checks: usize,
    },
    /// The function still returns `Todo`.
    NotWritten(Todo),
    Fail(Failure),
}

impl Outcome {
    pub fn passed(&self) -> bool {
        matches!(self, Outcome::Pass { .. })
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Pass { checks } => write!(f, "passes ({checks} values checked)"),
            Outcome::NotWritten(todo) => write!(f, "{todo}"),
            Outcome::Fail(failure) => write!(f, "{failure}"),
        }
    }
}

/// Grades exercise `number` (1 to 5) of `implementation`.
pub async fn grade(number: u8, implementation: &Implementation) -> Outcome {
    let result = match number {
        1 => policy_loss(implementation).await,
        2 => value_loss(implementation).await,
        3 => entropy(implementation).await,
        4 => gae(implementation).await,
        5 => minibatch(implementation).await,
        _ => panic!("there are five exercises, numbered 1 to 5; asked for {number}"),
    };
    match result {
        Ok(checks) => Outcome::Pass { checks },
        Err(Stop::Todo(todo)) => Outcome::NotWritten(todo),
        Err(Stop::Fail(failure)) => Outcome::Fail(*failure),
    }
}

/// Why grading stopped early.
enum Stop {
    Todo(Todo),
    Fail(Box<Failure>),
}

impl From<Todo> for Stop {
    fn from(todo: Todo) -> Self {
        Stop::Todo(todo)
    }
}

type Graded = Result<usize, Stop>;

/// Compares values of one case, counting them.
struct Case {
    exercise: u8,
    name: String,
    checks: usize,
}

impl Case {
    fn new(exercise: u8, name: impl Into<String>) -> Self {
        Case {
            exercise,
            name: name.into(),
            checks: 0,
        }
    }

    /// Compares `got` with `expected` element by element; `element(i)` names element `i` and
    /// `hint(i)` says what to look at when it is wrong.
    fn compare(
        &mut self,
        what: &str,
        got: &[f32],
        expected: &[f32],
        width: usize,
        hint: impl Fn(usize) -> String,
    ) -> Result<(), Stop> {
        if got.len() != expected.len() {
            return Err(self.fail(
                format!("the number of elements of {what}"),
                got.len().to_string(),
                expected.len().to_string(),
                format!(
                    "{what} must have the shape of the inputs ({} values here)",
                    expected.len()
                ),
            ));
        }
        for (i, (&g, &e)) in got.iter().zip(expected).enumerate() {
            self.checks += 1;
            let off = (g - e).abs() > TOLERANCE * e.abs().max(1.0);
            if off || !g.is_finite() {
                // A width of 0 means a single value: no index.
                let element = match i.checked_div(width) {
                    Some(row) => format!("{what}[{row}][{}]", i % width),
                    None => what.to_string(),
                };
                let mut hint = hint(i);
                if !g.is_finite() {
                    hint = format!(
                        "{hint} (a NaN or infinity: look for log(0), exp of a large number, or \
                         0 * inf)"
                    );
                }
                return Err(self.fail(element, format!("{g:.6}"), format!("{e:.6}"), hint));
            }
        }
        Ok(())
    }

    fn fail(&self, element: String, got: String, expected: String, hint: String) -> Stop {
        Stop::Fail(Box::new(Failure {
            exercise: self.exercise,
            case: self.name.clone(),
            element,
            got,
            expected,
            hint,
        }))
    }
}

fn autodiff_device() -> Device {
    Device::flex().autodiff()
}

fn tensor2(values: &[f32], width: usize, device: &Device) -> Tensor<2> {
    Tensor::from_data(
        TensorData::new(values.to_vec(), [values.len() / width, width]),
        device,
    )
}

async fn read(t: Tensor<1>) -> f32 {
    read_f32(t).await.map(|v| v[0]).unwrap_or(f32::NAN)
}

async fn read_all<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    read_f32(t).await.unwrap_or_default()
}

/// Random suffix-padded masks: each row has 1 to `width` real tokens, the first row all.
fn random_mask(rows: usize, width: usize, rng: &mut Rng) -> Vec<f32> {
    (0..rows)
        .flat_map(|b| {
            let real = if b == 0 { width } else { 1 + rng.below(width) };
            (0..width).map(move |t| f32::from(u8::from(t < real)))
        })
        .collect()
}

fn uniform(n: usize, lo: f32, hi: f32, rng: &mut Rng) -> Vec<f32> {
    (0..n).map(|_| lo + (hi - lo) * rng.unit() as f32).collect()
}

/// Hints for a per-token gradient: padding, a token whose clipped term counts, or the rest.
fn gradient_hint(mask: &[f32], expected: &[f32], i: usize, clipped: &str, flows: &str) -> String {
    if mask[i] == 0.0 {
        "padding must get no gradient: average over real tokens only (masked_mean)".into()
    } else if expected[i] == 0.0 {
        clipped.into()
    } else {
        flows.into()
    }
}

// ---------------------------------------------------------------------------------------------
// Exercise 1

struct PolicyCase {
    name: String,
    new: Vec<f32>,
    old: Vec<f32>,
    advantages: Vec<f32>,
    mask: Vec<f32>,
    width: usize,
    eps: f32,
}

async fn policy_loss(imp: &Implementation) -> Graded {
    let mut rng = Rng::new(101);
    let ln = f32::ln;
    // Hand-worked: logp_old = 0, so ratio = exp(logp_new): 1, 1.5, 0.5, 1.1, and padding.
    // Terms with eps 0.2: -1 (inside), max(-1.5, -1.2) = -1.2 (clipped above), max(0.5, 0.8)
    // = 0.8 (clipped below), max(2.2, 2.2) = 2.2 (not strictly larger: not clipped).
    let mut cases = vec![PolicyCase {
        name: "hand-worked: ratios 1, 1.5, 0.5, 1.1 and one padding token, eps 0.2".into(),
        new: vec![0.0, ln(1.5), ln(0.5), ln(1.1), ln(3.0)],
        old: vec![0.0; 5],
        advantages: vec![1.0, 1.0, -1.0, -2.0, 5.0],
        mask: vec![1.0, 1.0, 1.0, 1.0, 0.0],
        width: 5,
        eps: 0.2,
    }];
    for (k, eps) in [0.1f32, 0.3].into_iter().enumerate() {
        let (rows, width) = (3, 6);
        let n = rows * width;
        cases.push(PolicyCase {
            name: format!("random batch {} ({rows} x {width}, eps {eps})", k + 1),
            new: uniform(n, -3.0, -0.5, &mut rng),
            old: uniform(n, -3.0, -0.5, &mut rng),
            advantages: uniform(n, -2.0, 2.0, &mut rng),
            mask: random_mask(rows, width, &mut rng),
            width,
            eps,
        });
    }
    let mut checks = 0;
    let hand = [
        0.2,
        0.5,
        0.5 * (ln(1.5).powi(2) + ln(0.5).powi(2) + ln(1.1).powi(2)) / 4.0,
    ];
    let hand_grad = [-0.25, 0.0, 0.0, 0.55, 0.0];
    for (index, c) in cases.iter().enumerate() {
        let device = autodiff_device();
        let t = |v: &[f32]| tensor2(v, c.width, &device);
        let run = |f: super::PolicyLossFn| -> Result<_, Todo> {
            let new = t(&c.new).require_grad();
            let out = f(new.clone(), t(&c.old), t(&c.advantages), t(&c.mask), c.eps)?;
            Ok((new, out))
        };
        let (new, out) = run(imp.policy_loss)?;
        let (ref_new, reference) = run(super::REFERENCE.policy_loss).map_err(Stop::Todo)?;
        let mut case = Case::new(1, c.name.clone());
        let expected = if index == 0 {
            hand.to_vec()
        } else {
            vec![
                read(reference.loss.clone()).await,
                read(reference.clip_frac).await,
                read(reference.approx_kl).await,
            ]
        };
        let loss_value = read(out.loss.clone()).await;
        case.compare("loss", &[loss_value], &expected[..1], 0, |_| {
            "per token take max(-A * ratio, -A * clamp(ratio, 1 - eps, 1 + eps)), then average \
             over real tokens only: masked_mean, not mean"
                .into()
        })?;
        case.compare(
            "clip_frac",
            &[read(out.clip_frac).await],
            &expected[1..2],
            0,
            |_| {
                "the share of real tokens where the clipped term is strictly larger than the \
             unclipped one (a tie is not clipped)"
                    .into()
            },
        )?;
        case.compare(
            "approx_kl",
            &[read(out.approx_kl).await],
            &expected[2..],
            0,
            |_| "0.5 * masked_mean((logprobs_new - logprobs_old)^2)".into(),
        )?;
        let grad = match new.grad(&out.loss.backward()) {
            Some(g) => read_all(g).await,
            None => vec![0.0; c.new.len()],
        };
        let expected_grad = if index == 0 {
            hand_grad.to_vec()
        } else {
            read_all(
                ref_new
                    .grad(&reference.loss.backward())
                    .expect("reference gradient"),
            )
            .await
        };
        case.compare(
            "d loss / d logprobs_new",
            &grad,
            &expected_grad,
            c.width,
            |i| {
                gradient_hint(
                    &c.mask,
                    &expected_grad,
                    i,
                    "this token's clipped term counts, so its gradient is 0: clamp the ratio \
                     (not the loss), and take the max of the two terms",
                    "the gradient flows through ratio = exp(logprobs_new - logprobs_old) of the \
                     term that counts; do not detach logprobs_new",
                )
            },
        )?;
        checks += case.checks;
    }
    Ok(checks)
}

// ---------------------------------------------------------------------------------------------
// Exercise 2

async fn value_loss(imp: &Implementation) -> Graded {
    let mut rng = Rng::new(202);
    // Hand-worked, c = 0.2, V_old = 0: errors (unclipped, clipped) per token are
    // (0.01, 0.01), (0.25, 0.64), (0.25, 0.64), (1.69, 1.44); the larger counts.
    // loss = 0.5 * (0.01 + 0.64 + 0.64 + 1.69) / 4 = 0.3725; clipped on tokens 1 and 2.
    let mut cases = vec![(
        "hand-worked: V_old 0, V_new 0.1, 0.5, -0.5, 0.3 and one padding token, c 0.2".to_string(),
        vec![0.1, 0.5, -0.5, 0.3, 9.0],
        vec![0.0; 5],
        vec![0.0, 1.0, -1.0, -1.0, 2.0],
        vec![1.0, 1.0, 1.0, 1.0, 0.0],
        5,
        0.2f32,
    )];
    for (k, c) in [0.1f32, 0.5].into_iter().enumerate() {
        let (rows, width) = (3, 5);
        let n = rows * width;
        cases.push((
            format!("random batch {} ({rows} x {width}, c {c})", k + 1),
            uniform(n, -1.5, 1.5, &mut rng),
            uniform(n, -1.5, 1.5, &mut rng),
            uniform(n, -2.0, 2.0, &mut rng),
            random_mask(rows, width, &mut rng),
            width,
            c,
        ));
    }
    let mut checks = 0;
    for (index, (name, new, old, returns, mask, width, c)) in cases.iter().enumerate() {
        let device = autodiff_device();
        let t = |v: &[f32]| tensor2(v, *width, &device);
        let run = |f: super::ValueLossFn| -> Result<_, Todo> {
            let v_new = t(new).require_grad();
            let out = f(v_new.clone(), t(old), t(returns), t(mask), *c)?;
            Ok((v_new, out))
        };
        let (v_new, out) = run(imp.value_loss)?;
        let (ref_new, reference) = run(super::REFERENCE.value_loss).map_err(Stop::Todo)?;
        let (expected, expected_grad) = if index == 0 {
            (vec![0.3725, 0.5], vec![0.025, 0.0, 0.0, 0.325, 0.0])
        } else {
            let values = vec![
                read(reference.loss.clone()).await,
                read(reference.clip_frac).await,
            ];
            let grad = ref_new
                .grad(&reference.loss.backward())
                .expect("reference gradient");
            (values, read_all(grad).await)
        };
        let mut case = Case::new(2, name.clone());
        case.compare(
            "loss",
            &[read(out.loss.clone()).await],
            &expected[..1],
            0,
            |_| {
                "0.5 * masked_mean(max((V_new - R)^2, (v_clip - R)^2)) with v_clip = V_old + \
             clamp(V_new - V_old, -c, c): the larger error counts, and the 0.5 is part of it"
                    .into()
            },
        )?;
        case.compare(
            "clip_frac",
            &[read(out.clip_frac).await],
            &expected[1..],
            0,
            |_| "the share of real tokens where the clipped error is strictly larger".into(),
        )?;
        let grad = match v_new.grad(&out.loss.backward()) {
            Some(g) => read_all(g).await,
            None => vec![0.0; new.len()],
        };
        case.compare(
            "d loss / d values_new",
            &grad,
            &expected_grad,
            *width,
            |i| {
                gradient_hint(
                    mask,
                    &expected_grad,
                    i,
                    "this token's clipped error counts and v_clip does not move with V_new (it is \
                 clamped), so its gradient is 0",
                    "the gradient of 0.5 * (V_new - R)^2 is (V_new - R), divided by the number of \
                 real tokens",
                )
            },
        )?;
        checks += case.checks;
    }
    Ok(checks)
}

// ---------------------------------------------------------------------------------------------
// Exercise 3

async fn entropy(imp: &Implementation) -> Graded {
    let mut rng = Rng::new(303);
    let vocab = 4;
    // Hand-worked: row 0 is uniform over 4 tokens (H = ln 4); row 1 puts almost everything on
    // one token with logits in the thousands (H ~ 0, and a naive exp overflows); row 2 is
    // padding with logits that would change the mean if they were counted.
    let hand_logits = vec![
        0.0, 0.0, 0.0, 0.0, //
        1000.0, 0.0, 0.0, 0.0, //
        5.0, 5.0, 0.0, 0.0,
    ];
    let mut cases = vec![(
        "hand-worked: a uniform row (ln 4), a row of logits 1000, 0, 0, 0, one padding row"
            .to_string(),
        hand_logits,
        vec![1.0, 1.0, 0.0],
        1,
        3,
        Some(4f32.ln() / 2.0),
    )];
    for k in 0..2 {
        let (rows, width) = (2, 4);
        cases.push((
            format!(
                "random batch {} ({rows} x {width} positions, {vocab} logits each)",
                k + 1
            ),
            uniform(rows * width * vocab, -4.0, 4.0, &mut rng),
            random_mask(rows, width, &mut rng),
            rows,
            width,
            None,
        ));
    }
    let mut checks = 0;
    for (name, logits, mask, rows, width, hand) in cases {
        let device = autodiff_device();
        let make = || {
            Tensor::<3>::from_data(
                TensorData::new(logits.clone(), [rows, width, vocab]),
                &device,
            )
        };
        let out = (imp.masked_entropy)(make(), tensor2(&mask, width, &device))?;
        let expected = match hand {
            Some(h) => h,
            None => {
                let reference =
                    (super::REFERENCE.masked_entropy)(make(), tensor2(&mask, width, &device))
                        .map_err(Stop::Todo)?;
                read(reference).await
            }
        };
        let mut case = Case::new(3, name);
        let got = read_all(out).await;
        case.compare("entropy", &got, &[expected], 0, |_| {
            "H = logsumexp(z) - sum(softmax(z) * z) per position, with the maximum taken out \
             inside logsumexp; then the mean over real positions only (masked_mean)"
                .into()
        })?;
        checks += case.checks;
    }
    Ok(checks)
}

// ---------------------------------------------------------------------------------------------
// Exercise 4

async fn gae(imp: &Implementation) -> Graded {
    let mut rng = Rng::new(404);
    // The tutorial's worked example, gamma 0.9, lambda 0.95, from the last token back:
    // t=2: delta = 2 - 3 = -1, A = -1.
    // t=1: delta = 0 + 0.9 * 3 - 2.5 = 0.2, A = 0.2 + 0.855 * (-1) = -0.655.
    // t=0: delta = 1 + 0.9 * 2.5 - 2 = 1.25, A = 1.25 + 0.855 * (-0.655) = 0.689975.
    let worked = (
        "worked example: rewards 1, 0, 2, values 2, 2.5, 3, gamma 0.9, lambda 0.95".to_string(),
        vec![1.0, 0.0, 2.0],
        vec![2.0, 2.5, 3.0],
        vec![1.0, 1.0, 1.0],
        3,
        GaeParams {
            gamma: 0.9,
            lam: 0.95,
        },
        Some([
            vec![1.25, 0.2, -1.0],
            vec![0.689975, -0.655, -1.0],
            vec![2.689975, 1.845, 2.0],
        ]),
    );
    // Padding whose values and rewards are not 0: they must not leak into the real tokens.
    let padded = (
        "padding: row 0 has 2 real tokens then padding holding value 5 and reward 7".to_string(),
        vec![0.0, 1.0, 7.0, 7.0, 0.5, -0.5, 0.0, 1.0],
        vec![1.0, 2.0, 5.0, 5.0, 0.1, 0.2, 0.3, 0.4],
        vec![1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0],
        4,
        GaeParams {
            gamma: 1.0,
            lam: 1.0,
        },
        None,
    );
    let mut cases = vec![worked, padded];
    for (gamma, lam) in [(0.99f32, 0.95f32), (0.9, 0.0), (1.0, 1.0)] {
        let (rows, width) = (3, 6);
        let n = rows * width;
        cases.push((
            format!("random batch ({rows} x {width}, gamma {gamma}, lambda {lam})"),
            uniform(n, -1.0, 1.0, &mut rng),
            uniform(n, -1.0, 1.0, &mut rng),
            random_mask(rows, width, &mut rng),
            width,
            GaeParams { gamma, lam },
            None,
        ));
    }
    let mut checks = 0;
    for (name, rewards, values, mask, width, params, hand) in cases {
        let device = Device::flex();
        let t = |v: &[f32]| tensor2(v, width, &device);
        let out = (imp.gae)(t(&rewards), t(&values), t(&mask), params)?;
        let expected = match hand {
            Some(h) => h,
            None => {
                let r = (super::REFERENCE.gae)(t(&rewards), t(&values), t(&mask), params)
                    .map_err(Stop::Todo)?;
                [
                    read_all(r.deltas).await,
                    read_all(r.advantages).await,
                    read_all(r.returns).await,
                ]
            }
        };
        let got = [
            read_all(out.deltas).await,
            read_all(out.advantages).await,
            read_all(out.returns).await,
        ];
        let is_last_real =
            |i: usize| mask[i] == 1.0 && (i % width + 1 == width || mask[i + 1] == 0.0);
        let mut case = Case::new(4, name);
        let formulas = [
            "delta_t = r_t + gamma * V_{t+1} * m_{t+1} - V_t",
            "A_t = delta_t + gamma * lambda * m_{t+1} * A_{t+1}, swept from the last token back",
            "R_t = A_t + V_t, with the advantages before any whitening",
        ];
        for (k, what) in ["deltas", "advantages", "returns"].into_iter().enumerate() {
            case.compare(what, &got[k], &expected[k], width, |i| {
                if mask[i] == 0.0 {
                    format!("{what} are 0 on padding: multiply by response_mask")
                } else if is_last_real(i) {
                    format!(
                        "{}; after the last real token nothing follows (m_{{t+1}} = 0), so \
                         there delta = r - V and A = delta",
                        formulas[k]
                    )
                } else {
                    formulas[k].to_string()
                }
            })?;
        }
        checks += case.checks;
    }
    Ok(checks)
}

// ---------------------------------------------------------------------------------------------
// Exercise 5

/// A tiny random model and a mini-batch of 3 rows: prompts of 3 (row 2 left-padded), responses
/// of 4 (row 1 ends after 2 tokens), old logprobs moved off the model's own so that ratios
/// leave the clip band, temperature 0.7.
pub(crate) fn minibatch_case(device: &Device) -> (Qwen2Model, MiniBatch, UpdateConfig) {
    let config = Qwen2Config::new(40, 32, 48, 2, 4, 2, false).expect("valid config");
    let model = init_random(
        &config,
        505,
        0.2,
        ValueHeadInit::Normal { std: 0.1 },
        Precision::F32,
        device,
    )
    .expect("random model");
    let ids: [[i64; 7]; 3] = [
        [1, 2, 3, 10, 11, 12, 13],
        [4, 5, 6, 14, 15, 0, 0],
        [0, 7, 8, 16, 17, 18, 19],
    ];
    let attention: [[i64; 7]; 3] = [
        [1, 1, 1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1, 1, 1],
        [0, 1, 1, 1, 1, 1, 1],
    ];
    let response_mask = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0];
    let int = |rows: [[i64; 7]; 3]| {
        Tensor::<2, Int>::from_data(TensorData::new(rows.concat(), [3, 7]), device)
    };
    let update = UpdateConfig {
        epochs: 1,
        mini_batch_size: 3,
        gradient_accumulation_steps: 1,
        max_grad_norm: None,
        lr: 0.0,
        value_bias_lr: None,
        temperature: 0.7,
        coeffs: LossCoeffs {
            clip_ratio: 0.2,
            clip_range_value: 0.2,
            vf_coef: 0.5,
            entropy_coeff: 0.05,
        },
        grpo: None,
    };
    let mut rng = Rng::new(5050);
    let current = response_outputs(&model, int(ids), int(attention), 3, update.temperature);
    let shift = Tensor::<2>::from_data(
        TensorData::new(uniform(12, -0.5, 0.5, &mut rng), [3, 4]),
        device,
    );
    let old_logprobs = current.logprobs.detach() + shift;
    let values_shift = Tensor::<2>::from_data(
        TensorData::new(uniform(12, -0.4, 0.4, &mut rng), [3, 4]),
        device,
    );
    let old_values = current.values.detach() + values_shift;
    let t = |v: Vec<f32>| Tensor::<2>::from_data(TensorData::new(v, [3, 4]), device);
    let minibatch = MiniBatch {
        prompt_len: 3,
        ids: int(ids),
        attention_mask: int(attention),
        response_mask: t(response_mask.to_vec()),
        ref_logprobs: old_logprobs.clone(),
        old_logprobs,
        old_values,
        advantages: t(uniform(12, -1.5, 1.5, &mut rng)),
        returns: t(uniform(12, -1.0, 1.0, &mut rng)),
    };
    (model, minibatch, update)
}

async fn losses_and_grad_norm(
    f: super::MinibatchLossesFn,
    model: &Qwen2Model,
    minibatch: MiniBatch,
    config: &UpdateConfig,
) -> Result<Vec<f32>, Todo> {
    let losses = f(model, minibatch, config)?;
    let mut values = Vec::new();
    for t in [
        Some(losses.total.clone()),
        Some(losses.policy),
        Some(losses.value),
        losses.entropy,
        Some(losses.policy_clip_frac),
        Some(losses.value_clip_frac),
        Some(losses.approx_kl),
    ] {
        values.push(match t {
            Some(t) => read(t).await,
            None => f32::NAN,
        });
    }
    let grads = GradientsParams::from_grads(losses.total.backward(), model);
    let norm = match global_norm(model, &grads) {
        Some(norm) => read(norm).await,
        None => 0.0,
    };
    values.push(norm);
    Ok(values)
}

async fn minibatch(imp: &Implementation) -> Graded {
    let device = autodiff_device();
    let (model, minibatch, config) = minibatch_case(&device);
    let got =
        losses_and_grad_norm(imp.minibatch_losses, &model, minibatch.clone(), &config).await?;
    let expected = losses_and_grad_norm(
        super::REFERENCE.minibatch_losses,
        &model,
        minibatch,
        &config,
    )
    .await
    .map_err(Stop::Todo)?;
    let names = [
        "total",
        "policy",
        "value",
        "entropy",
        "policy_clip_frac",
        "value_clip_frac",
        "approx_kl",
        "the gradient norm of total",
    ];
    let alignment = "logits and values at positions prompt_len - 1 + t (narrow(1, P - 1, R)) \
                     score response token t; divide the logits by the temperature before the \
                     log-softmax";
    let hints = [
        "total = policy + vf_coef * value - entropy_coeff * entropy (the entropy bonus is \
         subtracted)"
            .to_string(),
        format!(
            "{alignment}; gather the sampled ids ids[:, P..] (exercise 5 uses your exercise 1)"
        ),
        "values_new are the value head's outputs at positions prompt_len - 1 + t, the state \
         before token t (exercise 5 uses your exercise 2)"
            .to_string(),
        "the entropy of the same aligned, tempered logits (uses your exercise 3); return it as Some".to_string(),
        alignment.to_string(),
        "value_clip_frac comes from exercise 2 on the aligned values".to_string(),
        alignment.to_string(),
        "total must depend on the model's outputs through the graph: do not detach the logits, \
         logprobs or values"
            .to_string(),
    ];
    let mut case = Case::new(
        5,
        "a random 2-layer model, 3 rows (one left-padded prompt, one short response), \
         temperature 0.7",
    );
    // The parts first, then the total they make, then its gradient: the first wrong element
    // is then the one closest to the mistake.
    for k in [1, 2, 3, 4, 5, 6, 0, 7] {
        case.compare(names[k], &got[k..k + 1], &expected[k..k + 1], 0, |_| {
            hints[k].clone()
        })?;
    }
    Ok(case.checks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::block_on;
    use crate::exercises::{REFERENCE, STUDENT};
    use crate::ppo::gae::Gae;
    use crate::ppo::masked_mean;
    use crate::ppo::policy_loss::PolicyLoss;
    use crate::ppo::value_loss::ValueLoss;

    #[test]
    fn the_reference_passes_every_exercise() {
        for number in 1..=5 {
            let outcome = block_on(grade(number, &REFERENCE));
            assert!(outcome.passed(), "exercise {number}: {outcome}");
        }
    }

    /// The shipped files either still say what to write, or (once a student has written one)
    /// pass; a half-written exercise fails here as it does in its graded test.
    #[test]
    fn each_shipped_exercise_is_todo_or_correct() {
        for number in 1..=5 {
            match block_on(grade(number, &STUDENT)) {
                Outcome::Pass { .. } => {}
                Outcome::NotWritten(todo) => {
                    assert_eq!(todo.exercise, number);
                    let message = todo.to_string();
                    let ex = exercise(number);
                    assert!(message.contains(ex.file), "{message}");
                    assert!(message.contains(ex.function), "{message}");
                    assert!(message.contains("not written yet"), "{message}");
                }
                Outcome::Fail(failure) => panic!("{failure}"),
            }
        }
    }

    /// Grades `broken` for `number` and returns its failure.
    fn failure(number: u8, broken: Implementation) -> Failure {
        match block_on(grade(number, &broken)) {
            Outcome::Fail(failure) => failure,
            other => panic!("exercise {number}: expected a failure, got {other}"),
        }
    }

    fn with(change: impl FnOnce(&mut Implementation)) -> Implementation {
        let mut imp = REFERENCE;
        change(&mut imp);
        imp
    }

    #[test]
    fn a_policy_loss_taking_the_min_is_caught_on_the_hand_worked_case() {
        let f = failure(
            1,
            with(|imp| {
                imp.policy_loss = |new, old, adv, mask, eps| {
                    let ratio = (new - old).exp();
                    let unclipped = -adv.clone() * ratio.clone();
                    let clipped = -adv * ratio.clamp(1.0 - eps, 1.0 + eps);
                    let reference = crate::ppo::policy_loss::policy_loss(
                        unclipped.clone().detach(),
                        unclipped.clone().detach(),
                        clipped.clone().detach(),
                        mask.clone(),
                        eps,
                    );
                    Ok(PolicyLoss {
                        loss: masked_mean(unclipped.min_pair(clipped), mask),
                        ..reference
                    })
                }
            }),
        );
        assert!(f.case.starts_with("hand-worked"), "{f}");
        assert_eq!(f.element, "loss");
        // min(-1, -1) + min(-1.5, -1.2) + min(0.5, 0.8) + min(2.2, 2.2) = 0.2 / 4 = 0.05.
        assert_eq!(
            (f.got.as_str(), f.expected.as_str()),
            ("0.050000", "0.200000")
        );
        assert!(f.hint.contains("max("), "{f}");
        let text = f.to_string();
        assert!(
            text.starts_with("exercise 1 (policy_loss), case \"hand-worked"),
            "{text}"
        );
    }

    #[test]
    fn a_policy_loss_without_gradient_is_caught_per_token() {
        let f = failure(
            1,
            with(|imp| {
                imp.policy_loss = |new, old, adv, mask, eps| {
                    Ok(crate::ppo::policy_loss::policy_loss(
                        new.detach(),
                        old,
                        adv,
                        mask,
                        eps,
                    ))
                }
            }),
        );
        assert_eq!(f.element, "d loss / d logprobs_new[0][0]", "{f}");
        assert_eq!(f.expected, "-0.250000");
        assert!(f.hint.contains("do not detach"), "{f}");
    }

    #[test]
    fn a_value_loss_without_the_half_is_caught() {
        let f = failure(
            2,
            with(|imp| {
                imp.value_loss = |new, old, ret, mask, c| {
                    let out = crate::ppo::value_loss::value_loss(new, old, ret, mask, c);
                    Ok(ValueLoss {
                        loss: out.loss * 2.0,
                        clip_frac: out.clip_frac,
                    })
                }
            }),
        );
        assert_eq!(f.element, "loss");
        assert_eq!(
            (f.got.as_str(), f.expected.as_str()),
            ("0.745000", "0.372500")
        );
        assert!(f.hint.contains("the 0.5 is part of it"), "{f}");
    }

    #[test]
    fn an_entropy_averaged_over_padding_too_is_caught() {
        let f = failure(
            3,
            with(|imp| {
                imp.masked_entropy = |logits, mask| {
                    let all = mask.ones_like();
                    Ok(crate::ppo::entropy::masked_entropy(logits, all))
                }
            }),
        );
        assert!(f.case.starts_with("hand-worked"), "{f}");
        assert_eq!(f.element, "entropy");
        assert!(f.hint.contains("real positions only"), "{f}");
    }

    #[test]
    fn gae_that_leaks_padding_names_the_padded_cell() {
        let f = failure(
            4,
            with(|imp| {
                // Forgets m_{t+1}: the padding's value 5 enters the last real token's delta.
                imp.gae = |rewards, values, mask, params| {
                    let all = mask.ones_like();
                    let g = crate::ppo::gae::gae(rewards, values, all, params);
                    Ok(Gae {
                        deltas: g.deltas * mask.clone(),
                        advantages: g.advantages * mask.clone(),
                        returns: g.returns * mask,
                    })
                }
            }),
        );
        assert!(f.case.starts_with("padding"), "{f}");
        // Row 0, token 1 is the last real token: delta = r - V = 1 - 2 = -1.
        assert_eq!(f.element, "deltas[0][1]");
        assert_eq!(f.expected, "-1.000000");
        assert!(f.hint.contains("nothing follows"), "{f}");
    }

    #[test]
    fn gae_that_does_not_zero_padding_names_the_padded_cell() {
        let f = failure(
            4,
            with(|imp| {
                imp.gae = |rewards, values, mask, params| {
                    let g = crate::ppo::gae::gae(rewards, values.clone(), mask, params);
                    Ok(Gae {
                        returns: g.advantages.clone() + values,
                        ..g
                    })
                }
            }),
        );
        assert_eq!(f.element, "returns[0][2]", "{f}");
        assert!(f.hint.contains("0 on padding"), "{f}");
    }

    #[test]
    fn a_minibatch_without_the_temperature_is_caught() {
        let f = failure(
            5,
            with(|imp| {
                imp.minibatch_losses = |model, minibatch, config| {
                    let cold = UpdateConfig {
                        temperature: 1.0,
                        ..*config
                    };
                    Ok(crate::ppo::update::minibatch_losses(
                        model, minibatch, &cold,
                    ))
                }
            }),
        );
        assert!(f.hint.contains("temperature"), "{f}");
    }

    #[test]
    fn a_minibatch_off_by_one_position_is_caught() {
        let f = failure(
            5,
            with(|imp| {
                // Reads the logits and values at P + t (the token itself), not P - 1 + t.
                imp.minibatch_losses = |model, minibatch, config| {
                    let (p, [_, s]) = (minibatch.prompt_len, minibatch.ids.dims());
                    let out = model.forward(minibatch.ids.clone(), minibatch.attention_mask, false);
                    let logits = out
                        .logits
                        .narrow(1, p, s - p)
                        .div_scalar(config.temperature);
                    let targets = minibatch.ids.narrow(1, p, s - p).unsqueeze_dim::<3>(2);
                    let picked = logits.clone().gather(2, targets);
                    let logprobs = (picked - crate::ppo::entropy::logsumexp(logits.clone()))
                        .squeeze_dim::<2>(2);
                    Ok(crate::ppo::losses::ppo_losses(
                        crate::ppo::losses::LossInputs {
                            logprobs_new: logprobs,
                            logprobs_old: minibatch.old_logprobs,
                            advantages: minibatch.advantages,
                            values_new: out.values.narrow(1, p, s - p),
                            values_old: minibatch.old_values,
                            returns: minibatch.returns,
                            response_mask: minibatch.response_mask,
                            logits: Some(logits),
                            token_entropy: None,
                        },
                        config.coeffs,
                    ))
                }
            }),
        );
        assert_eq!(f.element, "policy", "{f}");
        assert!(f.hint.contains("prompt_len - 1 + t"), "{f}");
    }
}
