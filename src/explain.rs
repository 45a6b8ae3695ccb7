//! What the page says about the numbers it shows, computed from those numbers.
//!
//! - [`provenance`]: where one number of a stage comes from: the cells it was made of, the
//!   arithmetic written out, and the result recomputed from the shown inputs;
//! - [`notes`]: "what to notice" for each stage, claims that are checked against this batch
//!   before they are made (a note whose condition does not hold is not shown);
//! - [`math`]: the stage formulas as MathML with the live numbers substituted;
//! - [`loop_edges`]: the tensors that flow around the PPO loop, with this batch's shapes;
//! - [`GLOSSARY`] and [`TOUR`]: the words a beginner meets, and one sentence per stage.
//!
//! No UI here: the page arranges these, and `tests/explain.rs` checks them on a real iteration.

use crate::lab::walkthrough::Walkthrough;
use crate::ppo::gae::GaeStep;
use crate::ppo::policy_loss::PolicyClip;
use crate::ppo::rewards::KlEstimator;

/// A number for people, with the precision it needs: 3 decimals from 0.01 up, 3 significant
/// digits below (so a KL of 0.00042 does not read 0.000), an exponent below 10⁻⁵; a real minus
/// sign, and never "−0".
pub fn num(x: f32) -> String {
    let a = x.abs();
    let s = if a == 0.0 || !a.is_finite() || a >= 0.01 {
        format!("{x:.3}")
    } else if a >= 1e-5 {
        let decimals = (2 - a.log10().floor() as i32).clamp(3, 7) as usize;
        format!("{x:.decimals$}")
    } else {
        format!("{x:.2e}")
    };
    signed(s)
}

/// `x` with `decimals` decimals, with [`num`]'s sign rules.
pub fn fixed(x: f32, decimals: usize) -> String {
    signed(format!("{x:.decimals$}"))
}

/// A formatted number with a real minus sign, and never "−0".
fn signed(s: String) -> String {
    if s.starts_with('-') && s[1..].chars().all(|c| c == '0' || c == '.') {
        s[1..].to_string()
    } else {
        s.replace('-', "−")
    }
}

/// A token as text, spaces made visible.
pub fn show_token(text: &str) -> String {
    match text {
        "\n" => "⏎".into(),
        t => t.replace(' ', "·"),
    }
}

/// `n` and the word for it: "1 token", "3 tokens".
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A number inside a formula: negative ones in parentheses, so `− (−0.5)` reads right.
fn operand(x: f32) -> String {
    if num(x).starts_with('−') {
        format!("({})", num(x))
    } else {
        num(x)
    }
}

/// The stages of one iteration, as the page orders them (0 is the overview).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StageKey {
    Overview,
    Rollout,
    Score,
    Values,
    Gae,
    Update,
    Mask,
}

impl StageKey {
    pub const ALL: [StageKey; 7] = [
        StageKey::Overview,
        StageKey::Rollout,
        StageKey::Score,
        StageKey::Values,
        StageKey::Gae,
        StageKey::Update,
        StageKey::Mask,
    ];

    pub fn key(self) -> &'static str {
        match self {
            StageKey::Overview => "overview",
            StageKey::Rollout => "rollout",
            StageKey::Score => "score",
            StageKey::Values => "values",
            StageKey::Gae => "gae",
            StageKey::Update => "update",
            StageKey::Mask => "mask",
        }
    }

    pub fn parse(key: &str) -> Option<StageKey> {
        StageKey::ALL.into_iter().find(|s| s.key() == key)
    }

    pub fn title(self) -> &'static str {
        match self {
            StageKey::Overview => "0 · Overview",
            StageKey::Rollout => "1 · Rollout",
            StageKey::Score => "2 · Score",
            StageKey::Values => "3 · Values",
            StageKey::Gae => "4 · GAE",
            StageKey::Update => "5 · Update",
            StageKey::Mask => "6 · Causal mask",
        }
    }

    pub fn index(self) -> usize {
        StageKey::ALL.iter().position(|&s| s == self).unwrap_or(0)
    }

    /// How many steps the stage has for response `row` of `walk`.
    pub fn steps(self, walk: &Walkthrough, row: usize) -> usize {
        let real = real_len(walk, row).max(1);
        match self {
            StageKey::Overview => 1,
            // One token at a time.
            StageKey::Rollout => real,
            // Score, then the KL row, then the token rewards.
            StageKey::Score => 3,
            StageKey::Values => 1,
            // One step per token from the back, then whitening.
            StageKey::Gae => real + 1,
            // Ratios and losses, then the optimizer step with the new logprobs.
            StageKey::Update => 2,
            StageKey::Mask => 1,
        }
    }
}

/// How many response tokens of `row` are real (inside the response mask).
pub fn real_len(walk: &Walkthrough, row: usize) -> usize {
    walk.gae.get(row).map_or(0, |g| g.steps.len())
}

/// The tokens of response `row` whose advantage whitening turned to the other sign (a nonzero
/// GAE advantage A_t and its whitened Â_t on opposite sides of 0); none without whitening.
pub fn whitening_flips(walk: &Walkthrough, row: usize) -> Vec<usize> {
    let (Some(w), Some(trace)) = (&walk.whiten, walk.gae.get(row)) else {
        return Vec::new();
    };
    let offset = row * walk.experience.rollout.response_len();
    (0..real_len(walk, row))
        .filter(|&t| {
            let (a, white) = (trace.advantages[t], w.whitened[offset + t]);
            a != 0.0 && (a > 0.0) != (white > 0.0)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Provenance
// ---------------------------------------------------------------------------------------------

/// A number the page can explain from its inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quantity {
    /// `A_t` of the GAE table.
    Advantage,
    /// `R_t = A_t + V(s_t)` of the GAE table.
    Return,
    /// `r_t` of the Score stage.
    Reward,
    /// `ρ_t = π_new / π_old` of the Update stage.
    Ratio,
}

impl Quantity {
    pub fn key(self) -> &'static str {
        match self {
            Quantity::Advantage => "adv",
            Quantity::Return => "ret",
            Quantity::Reward => "reward",
            Quantity::Ratio => "ratio",
        }
    }

    /// The data-testid of the cell that shows this quantity for token `t`.
    pub fn testid(self, t: usize) -> String {
        match self {
            Quantity::Advantage => format!("gae-adv-{t}"),
            Quantity::Return => format!("gae-ret-{t}"),
            Quantity::Reward => format!("reward-{t}"),
            Quantity::Ratio => format!("upd-ratio-{t}"),
        }
    }
}

/// One input of an explained number: the cell that shows it, its symbol and its value.
#[derive(Clone, Debug, PartialEq)]
pub struct Term {
    pub testid: String,
    pub symbol: String,
    pub value: f32,
}

/// Where one number comes from.
#[derive(Clone, Debug, PartialEq)]
pub struct Provenance {
    pub quantity: Quantity,
    pub t: usize,
    /// The cell explained.
    pub testid: String,
    /// The number as the core computed it (what the cell shows).
    pub value: f32,
    /// The cells it was made of.
    pub terms: Vec<Term>,
    /// Constants that enter it (γ, λ, β), as `(symbol, value)`.
    pub constants: Vec<(&'static str, f32)>,
    /// The arithmetic, one line per formula, with the numbers filled in.
    pub lines: Vec<String>,
    /// The result recomputed from the terms' values with the same formula.
    pub recomputed: f32,
}

fn term(testid: String, symbol: String, value: f32) -> Term {
    Term {
        testid,
        symbol,
        value,
    }
}

/// Explains the `quantity` of response token `t` of `row`; None for padding or a token the
/// batch does not have.
pub fn provenance(
    walk: &Walkthrough,
    row: usize,
    t: usize,
    quantity: Quantity,
) -> Option<Provenance> {
    if t >= real_len(walk, row) {
        return None;
    }
    let trace = &walk.gae[row];
    let step = trace.steps.iter().find(|s| s.t == t)?;
    let exp = &walk.experience;
    let testid = quantity.testid(t);
    let p = match quantity {
        Quantity::Advantage => advantage_provenance(step, trace.params, testid),
        Quantity::Return => Provenance {
            quantity,
            t,
            testid,
            value: step.ret,
            terms: vec![
                term(format!("gae-adv-{t}"), format!("A_{t}"), step.advantage),
                term(format!("gae-value-{t}"), format!("V_{t}"), step.value),
            ],
            constants: vec![],
            lines: vec![format!(
                "R_{t} = A_{t} + V_{t} = {} + {} = {}",
                num(step.advantage),
                operand(step.value),
                num(step.ret)
            )],
            recomputed: step.advantage + step.value,
        },
        Quantity::Reward => {
            let logp = exp.rollout.logprobs[row][t];
            let ref_logp = exp.ref_logprobs[row][t];
            let kl = exp.kl[row][t];
            let beta = exp.kl_coeff;
            let last = t + 1 == real_len(walk, row);
            let score = exp.scores[row].reward();
            let mut terms = vec![
                term(format!("kl-logp-{t}"), format!("log π_old,{t}"), logp),
                term(format!("kl-ref-{t}"), format!("log π_ref,{t}"), ref_logp),
                term(format!("kl-{t}"), format!("KL_{t}"), kl),
            ];
            let kl_line = match exp.kl_estimator {
                KlEstimator::K1 => format!(
                    "KL_{t} = log π_old − log π_ref = {} − {} = {} (k1)",
                    operand(logp),
                    operand(ref_logp),
                    num(kl)
                ),
                KlEstimator::K2 => format!(
                    "KL_{t} = ½ (log π_ref − log π_old)² = ½ × ({} − {})² = {} (k2)",
                    operand(ref_logp),
                    operand(logp),
                    num(kl)
                ),
                KlEstimator::K3 => format!(
                    "KL_{t} = e^(log π_ref − log π_old) − 1 − (log π_ref − log π_old) = {} (k3)",
                    num(kl)
                ),
            };
            let mut recomputed = -beta * exp.kl_estimator.estimate(logp, ref_logp);
            let reward_line = if last {
                terms.push(term(format!("score-{row}"), "score".into(), score));
                recomputed += score;
                format!(
                    "r_{t} = −β · KL_{t} + score = −{beta} × {} + {} = {} (the last token gets the score)",
                    operand(kl),
                    num(score),
                    num(exp.rewards[row][t])
                )
            } else {
                format!(
                    "r_{t} = −β · KL_{t} = −{beta} × {} = {} (the score comes only on the last token)",
                    operand(kl),
                    num(exp.rewards[row][t])
                )
            };
            Provenance {
                quantity,
                t,
                testid,
                value: exp.rewards[row][t],
                terms,
                constants: vec![("β", beta)],
                lines: vec![kl_line, reward_line],
                recomputed,
            }
        }
        Quantity::Ratio => {
            let token = walk
                .policy_after
                .get(row)?
                .tokens
                .iter()
                .find(|p| p.t == t)?;
            Provenance {
                quantity,
                t,
                testid,
                value: token.ratio,
                terms: vec![
                    term(
                        format!("upd-new-{t}"),
                        format!("log π_new,{t}"),
                        token.logp_new,
                    ),
                    term(
                        format!("upd-old-{t}"),
                        format!("log π_old,{t}"),
                        token.logp_old,
                    ),
                ],
                constants: vec![],
                lines: vec![format!(
                    "ρ_{t} = exp(log π_new − log π_old) = exp({} − {}) = exp({}) = {}",
                    operand(token.logp_new),
                    operand(token.logp_old),
                    num(token.logp_new - token.logp_old),
                    format_ratio(token.ratio)
                )],
                recomputed: (token.logp_new - token.logp_old).exp(),
            }
        }
    };
    Some(p)
}

/// A ratio: it sits near 1, so it gets the digits that show how far from 1.
pub fn format_ratio(r: f32) -> String {
    if (r - 1.0).abs() < 0.001 {
        format!("{r:.5}")
    } else {
        format!("{r:.3}")
    }
}

fn advantage_provenance(
    step: &GaeStep,
    params: crate::ppo::gae::GaeParams,
    testid: String,
) -> Provenance {
    let t = step.t;
    let n = t + 1;
    let (g, l) = (params.gamma, params.lam);
    let mut terms = vec![
        term(format!("gae-reward-{t}"), format!("r_{t}"), step.reward),
        term(format!("gae-value-{t}"), format!("V_{t}"), step.value),
    ];
    let lines = if step.next_mask > 0.0 {
        terms.push(term(
            format!("gae-value-{n}"),
            format!("V_{n}"),
            step.next_value,
        ));
        terms.push(term(
            format!("gae-adv-{n}"),
            format!("A_{n}"),
            step.next_advantage,
        ));
        vec![
            format!(
                "δ_{t} = r_{t} + γ · V_{n} − V_{t} = {} + {g} × {} − {} = {}",
                num(step.reward),
                operand(step.next_value),
                operand(step.value),
                num(step.delta)
            ),
            format!(
                "A_{t} = δ_{t} + γ · λ · A_{n} = {} + {g} × {l} × {} = {}",
                num(step.delta),
                operand(step.next_advantage),
                num(step.advantage)
            ),
        ]
    } else {
        vec![
            format!(
                "t = {t} is the last token (m_{n} = 0): V_{n} and A_{n} drop out, as if the episode ended here"
            ),
            format!(
                "A_{t} = δ_{t} = r_{t} − V_{t} = {} − {} = {}",
                num(step.reward),
                operand(step.value),
                num(step.advantage)
            ),
        ]
    };
    terms.push(term(format!("gae-delta-{t}"), format!("δ_{t}"), step.delta));
    let delta = step.reward + g * step.next_value * step.next_mask - step.value;
    Provenance {
        quantity: Quantity::Advantage,
        t,
        testid,
        value: step.advantage,
        terms,
        constants: vec![("γ", g), ("λ", l)],
        lines,
        recomputed: delta + g * l * step.next_mask * step.next_advantage,
    }
}

// ---------------------------------------------------------------------------------------------
// What to notice
// ---------------------------------------------------------------------------------------------

/// One "what to notice" line: true for this batch, with the tokens it is about.
#[derive(Clone, Debug, PartialEq)]
pub struct Note {
    /// Stable name, for tests and styling.
    pub key: &'static str,
    pub text: String,
    /// Response tokens of the shown row the note is about (highlighted, and the first is where
    /// "show me" jumps).
    pub tokens: Vec<usize>,
    /// The number the note states, exact, for tests.
    pub value: Option<f32>,
}

fn note(key: &'static str, text: String, tokens: Vec<usize>, value: Option<f32>) -> Note {
    Note {
        key,
        text,
        tokens,
        value,
    }
}

/// The notes of `stage` for response `row` of `walk`, which is the batch of `iteration`.
pub fn notes(walk: &Walkthrough, stage: StageKey, row: usize, iteration: usize) -> Vec<Note> {
    let real = real_len(walk, row);
    if real == 0 {
        return Vec::new();
    }
    let exp = &walk.experience;
    let mask = &exp.rollout.response_mask;
    let mut out = Vec::new();
    match stage {
        StageKey::Overview => {}
        StageKey::Rollout => {
            // The most uncertain step: the highest entropy of the rollout policy.
            let entropy = &walk.entropy[row];
            if let Some(t) = argmax(&entropy[..real]) {
                out.push(note(
                    "most-uncertain",
                    format!(
                        "The most uncertain step of this response is t = {t} (entropy {} nats): \
                         there the policy spread its probability widest, so sampling could have \
                         gone several ways.",
                        num(entropy[t])
                    ),
                    vec![t],
                    Some(entropy[t]),
                ));
            }
            let p = exp.rollout.prompt_len;
            let off_top: Vec<usize> = (0..real)
                .filter(|&t| {
                    exp.rollout.top[row][t]
                        .first()
                        .is_some_and(|(id, _)| *id != exp.rollout.ids[row][p + t])
                })
                .collect();
            let text = if off_top.is_empty() {
                format!(
                    "At every one of the {real} steps the sampled token was the most likely \
                     one: at temperature {} sampling still follows the peak when it is sharp.",
                    walk.update.temperature
                )
            } else {
                format!(
                    "At {} of the {real} steps the sampled token was not the most likely one: \
                     sampling explores, which is what gives PPO different answers to compare.",
                    off_top.len()
                )
            };
            out.push(note("not-argmax", text, off_top, None));
        }
        StageKey::Score => {
            let max_abs = max_abs_masked(&exp.kl, mask);
            if iteration == 1 && max_abs < 1e-3 {
                out.push(note(
                    "kl-zero",
                    format!(
                        "At iteration 1 the policy is still the reference model, so every \
                         KL_t is 0 up to rounding (largest |KL_t| in the batch: {max_abs:.1e}; \
                         the token-by-token rollout and the reference's one pass round \
                         differently). The rewards are the scores alone."
                    ),
                    vec![],
                    Some(max_abs),
                ));
            }
            let negative: Vec<usize> = (0..real).filter(|&t| exp.kl[row][t] < 0.0).collect();
            if exp.kl_estimator == KlEstimator::K1 && !negative.is_empty() && max_abs > 1e-4 {
                out.push(note(
                    "kl-negative",
                    format!(
                        "{} of this response's {real} tokens have KL_t < 0 (log π < log π_ref): \
                         k1 is a one-sample estimate, so for those tokens the penalty is a bonus. \
                         Only its average over samples is the KL.",
                        negative.len()
                    ),
                    negative,
                    None,
                ));
            }
            let last = real - 1;
            let score = exp.scores[row].reward();
            // The largest penalty among the tokens before the last, computed, not assumed.
            let others = exp.rewards[row][..last]
                .iter()
                .fold(0f32, |m, r| m.max(r.abs()));
            let rest = if last == 0 {
                "This response has one token, so its reward is the score plus its own KL penalty."
                    .to_string()
            } else if others <= 1e-4 {
                format!(
                    "Every other token's reward is its KL penalty alone, about 0 here (largest \
                     |r_t| {}).",
                    num(others)
                )
            } else if others < 0.1 * score.abs() {
                format!(
                    "Every other token's reward is its KL penalty alone, at most {} in size here, \
                     small beside the score.",
                    num(others)
                )
            } else {
                format!(
                    "Every other token's reward is its KL penalty alone, up to {} in size here{}.",
                    num(others),
                    if score == 0.0 {
                        ": with a score of 0 the penalties are all the reward this response gets"
                    } else {
                        ", not small beside the score"
                    }
                )
            };
            out.push(note(
                "score-last",
                format!(
                    "The score {} lands on the last token only (t = {last}). {rest}",
                    num(score)
                ),
                vec![last],
                Some(exp.rewards[row][last]),
            ));
        }
        StageKey::Values => {
            let values = &exp.rollout.values[row][..real];
            out.push(note(
                "first-value",
                format!(
                    "Before writing anything the critic expects a return of {} (V_0); this \
                     response scored {}.",
                    num(values[0]),
                    num(exp.scores[row].reward())
                ),
                vec![0],
                Some(values[0]),
            ));
            if real >= 2 {
                let jumps: Vec<f32> = values.windows(2).map(|w| (w[1] - w[0]).abs()).collect();
                if let Some(t) = argmax(&jumps) {
                    let n = t + 1;
                    let gamma = walk.gae[row].params.gamma;
                    let reading = if gamma == 1.0 {
                        format!(
                            "With γ = 1, δ_{t} = r_{t} + V_{n} − V_{t} is r_{t} plus that jump, so \
                             this token is credited (or blamed) for it."
                        )
                    } else {
                        format!(
                            "δ_{t} = r_{t} + γ·V_{n} − V_{t} picks that jump up (with γ = {}, \
                             plus (γ − 1)·V_{n} = {}), so this token is credited (or blamed) for it.",
                            num(gamma),
                            num((gamma - 1.0) * values[n])
                        )
                    };
                    out.push(note(
                        "value-jump",
                        format!(
                            "The critic changed its mind most after token t = {t}: V moved by {} \
                             from V_{t} to V_{n}. {reading}",
                            num(values[n] - values[t])
                        ),
                        vec![t],
                        Some(values[n] - values[t]),
                    ));
                }
            }
        }
        StageKey::Gae => {
            let trace = &walk.gae[row];
            let last = real - 1;
            let cut = !exp.rollout.finished.get(row).copied().unwrap_or(true);
            out.push(note(
                "last-delta",
                format!(
                    "The sweep starts at t = {last} with nothing after it: A_{last} = δ_{last} = \
                     {}.{}",
                    num(trace.advantages[last]),
                    if cut {
                        " This response was cut at max_new_tokens without an end token; it is \
                         treated as terminal anyway (no value after it is bootstrapped)."
                    } else {
                        ""
                    }
                ),
                vec![last],
                Some(trace.advantages[last]),
            ));
            if let Some(w) = &walk.whiten {
                let flipped = whitening_flips(walk, row);
                let text = if flipped.is_empty() {
                    format!(
                        "Whitening (batch mean {}) changed the sign of no advantage of this \
                         response.",
                        num(w.mean)
                    )
                } else {
                    let m = num(w.mean);
                    format!(
                        "Whitening changed the sign of {} of this response's advantages: {}.",
                        flipped.len(),
                        if w.mean > 0.0 {
                            format!(
                                "subtracting the batch mean {m} turns any 0 < A_t < {m} negative"
                            )
                        } else {
                            format!(
                                "the batch mean {m} is negative here, so subtracting it turns any \
                                 {m} < A_t < 0 positive"
                            )
                        }
                    )
                };
                out.push(note("sign-flip", text, flipped, Some(w.mean)));
                // Mean 0 is not median 0: how many tokens of the batch are pushed up.
                let white: Vec<f32> = (0..exp.rollout.ids.len())
                    .flat_map(|b| {
                        let o = b * exp.rollout.response_len();
                        (0..real_len(walk, b)).map(move |t| o + t)
                    })
                    .map(|i| w.whitened[i])
                    .collect();
                let up = white.iter().filter(|&&x| x > 0.0).count();
                out.push(note(
                    "pushed-up",
                    format!(
                        "After whitening the batch's advantages have mean 0, but {up} of its {} \
                         tokens are pushed up (Â > 0): mean 0 is not median 0, and sparse \
                         end-of-response scores make the spread lopsided.",
                        white.len()
                    ),
                    vec![],
                    Some(up as f32),
                ));
            }
        }
        StageKey::Update => {
            let stats = &walk.stats;
            let mean_adv = masked_mean(&exp.advantages, mask);
            out.push(note(
                "policy-loss-zero",
                format!(
                    "At the update's first step the new log-probabilities come from one \
                     teacher-forced pass and the old ones from the token-by-token rollout; they \
                     differ by at most {} here (the Mask stage shows it), so every ratio starts \
                     at 1 up to rounding. A step's policy loss at ratio 1 is −mean(Â) over its \
                     mini-batch, which is not 0 in general: {}. The policy loss shown, {}, is the \
                     mean over the update's {} steps. The gradient is not 0 either: the grad norm \
                     shown, {}, is the norm of the total loss's gradient ({} terms together) \
                     before clipping, averaged over those steps.",
                    num(walk.teacher_forced_max_diff),
                    if walk.whiten.is_some() {
                        format!("whitening makes Â's mean 0 over the whole batch ({} here), not over each mini-batch", num(mean_adv))
                    } else {
                        format!("whitening is off, and Â's mean over the whole batch is {}", num(mean_adv))
                    },
                    num(stats.loss_policy),
                    stats.optimizer_steps,
                    num(stats.grad_norm),
                    if walk.update.grpo.is_some() {
                        "policy, KL and entropy"
                    } else {
                        "policy, value and entropy"
                    }
                ),
                vec![],
                Some(stats.grad_norm),
            ));
            if let Some(policy) = walk.policy_after.get(row) {
                if let Some((t, r)) = policy
                    .tokens
                    .iter()
                    .map(|p| (p.t, p.ratio))
                    .max_by(|a, b| (a.1 - 1.0).abs().total_cmp(&(b.1 - 1.0).abs()))
                {
                    let eps = walk.update.coeffs.clip_ratio;
                    let clipped: Vec<usize> = policy
                        .tokens
                        .iter()
                        .filter(|p| p.clip != PolicyClip::No)
                        .map(|p| p.t)
                        .collect();
                    out.push(note(
                        "largest-move",
                        format!(
                            "The token that moved most is t = {t}: ratio {} (the band is [{:.2}, \
                             {:.2}]). {} of this response's tokens are outside the band on the \
                             side their advantage pushes.",
                            format_ratio(r),
                            1.0 - eps,
                            1.0 + eps,
                            clipped.len()
                        ),
                        vec![t],
                        Some(r),
                    ));
                }
            }
        }
        StageKey::Mask => {
            let p = exp.rollout.prompt_len;
            let pads = exp.rollout.attention_mask[row][..p]
                .iter()
                .filter(|&&m| m == 0)
                .count();
            out.push(note(
                "left-padding",
                if pads == 0 {
                    format!(
                        "This response's prompt is the longest of the batch ({p} positions): it \
                         has no left padding."
                    )
                } else {
                    format!(
                        "This prompt has {pads} positions of left padding (shorter than the \
                         batch's longest, {p}): no query attends to them, so they change nothing."
                    )
                },
                vec![],
                Some(pads as f32),
            ));
        }
    }
    out
}

fn argmax(xs: &[f32]) -> Option<usize> {
    xs.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i)
}

fn max_abs_masked(rows: &[Vec<f32>], mask: &[Vec<f32>]) -> f32 {
    rows.iter()
        .zip(mask)
        .flat_map(|(r, m)| r.iter().zip(m).filter(|(_, m)| **m > 0.0))
        .map(|(x, _)| x.abs())
        .fold(0.0, f32::max)
}

fn masked_mean(rows: &[Vec<f32>], mask: &[Vec<f32>]) -> f32 {
    let (sum, n) = rows
        .iter()
        .zip(mask)
        .flat_map(|(r, m)| r.iter().zip(m).filter(|(_, m)| **m > 0.0))
        .fold((0f64, 0usize), |(s, n), (x, _)| (s + *x as f64, n + 1));
    if n == 0 { 0.0 } else { (sum / n as f64) as f32 }
}

// ---------------------------------------------------------------------------------------------
// The PPO loop, its tensors and their shapes
// ---------------------------------------------------------------------------------------------

/// One node of the loop diagram.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoopNode {
    pub key: &'static str,
    pub label: &'static str,
    /// The page stage that shows it.
    pub stage: StageKey,
}

/// The loop: policy → rollout → score and frozen reference → critic values → rewards → GAE →
/// clipped update → policy.
pub const LOOP: [LoopNode; 7] = [
    LoopNode {
        key: "policy",
        label: "policy π_θ",
        stage: StageKey::Overview,
    },
    LoopNode {
        key: "rollout",
        label: "rollout",
        stage: StageKey::Rollout,
    },
    LoopNode {
        key: "score",
        label: "score + frozen reference",
        stage: StageKey::Score,
    },
    LoopNode {
        key: "values",
        label: "critic values",
        stage: StageKey::Values,
    },
    LoopNode {
        key: "rewards",
        label: "token rewards",
        stage: StageKey::Score,
    },
    LoopNode {
        key: "gae",
        label: "GAE + whitening",
        stage: StageKey::Gae,
    },
    LoopNode {
        key: "update",
        label: "clipped update",
        stage: StageKey::Update,
    },
];

/// The tensor on the arrow from `LOOP[i]` to `LOOP[(i + 1) % 7]`, with this batch's shape.
pub fn loop_edges(walk: &Walkthrough) -> [String; 7] {
    let ro = &walk.experience.rollout;
    let b = ro.ids.len();
    let r = ro.response_len();
    let p = ro.prompt_len;
    [
        format!("prompts [{b} × {p}]"),
        format!("ids, log π_old [{b} × {r}]"),
        format!("scores [{b}], log π_ref [{b} × {r}]"),
        format!("V(s_t) [{b} × {r}]"),
        format!("r_t [{b} × {r}]"),
        format!("Â_t, R_t [{b} × {r}]"),
        format!(
            "new θ ({} epochs × {} mini-batches)",
            walk.update.epochs,
            b.div_ceil(walk.update.mini_batch_size.max(1))
        ),
    ]
}

/// What one PPO iteration optimises, in one sentence.
pub const OBJECTIVE: &str = "PPO raises the probability of tokens with a positive advantage Â \
    and lowers those with a negative one, a little per batch. Â is the advantage A (how much better \
    the token turned out than the critic expected) whitened over the batch, so Â > 0 means A above \
    the batch's mean. Once a token's probability ratio has left [1 − ε, 1 + ε] on the side its \
    advantage pushes, the clip gives that token's own term no gradient (it zeroes a push; it does \
    not cap the ratio), and a KL penalty in the reward keeps the policy near the frozen reference.";

/// The tour: one sentence per stage.
pub const TOUR: [(StageKey, &str); 7] = [
    (
        StageKey::Overview,
        "One PPO iteration goes once around this loop; the tabs above follow it, stage by stage.",
    ),
    (
        StageKey::Rollout,
        "The policy writes an answer token by token; for each token we keep its log-probability and the critic's value of the state before it.",
    ),
    (
        StageKey::Score,
        "The answer is scored once, at its end, and every token pays a penalty for drifting from the frozen reference model.",
    ),
    (
        StageKey::Values,
        "The critic guesses, at every token, the return still to come; those guesses are the baseline that advantages are measured against.",
    ),
    (
        StageKey::Gae,
        "GAE sweeps from the last token back, turning rewards and values into one advantage per token; whitening then rescales them over the batch.",
    ),
    (
        StageKey::Update,
        "The update moves each token's probability in the direction of its advantage Â; once the token's ratio has left the band on that side, the clip stops its own term from pushing further.",
    ),
    (
        StageKey::Mask,
        "The update scores every token in one pass; the causal mask makes that pass see exactly what the rollout saw.",
    ),
];

/// The words a beginner meets, and what they mean here.
pub const GLOSSARY: &[(&str, &str)] = &[
    (
        "advantage",
        "How much better a token turned out than the critic expected (A_t). The update uses Â_t, A_t whitened over the batch: Â_t > 0 (A_t above the batch's mean) pushes its probability up, Â_t < 0 down.",
    ),
    (
        "return",
        "The critic's training target: R_t = A_t + V(s_t), the reward still to come from state s_t as GAE estimates it.",
    ),
    (
        "value",
        "V(s_t): the critic's guess, before token t is chosen, of the reward still to come.",
    ),
    (
        "ratio",
        "ρ_t = π_new(token) / π_old(token): how much more (or less) likely the token is after the update than when it was sampled.",
    ),
    (
        "clip",
        "PPO keeps the ratio's benefit inside [1 − ε, 1 + ε]: past the band on the side the advantage pushes, that token's own term has gradient 0 (the ratio itself can still move).",
    ),
    (
        "KL",
        "How far the policy has drifted from the frozen reference; here estimated per token from the two log-probabilities and charged as a penalty in the reward.",
    ),
    (
        "approx KL",
        "How far one update moved the policy from the one that sampled the batch: ½·mean((log π_new − log π_old)²), a gauge of the step's size. Not the KL to the reference.",
    ),
    (
        "whitening",
        "Shifting the batch's advantages to mean 0 and scaling them to standard deviation 1, so each update has a steady size.",
    ),
    (
        "entropy",
        "How spread out the policy's next-token distribution is, in nats: 0 when it is sure, larger when it hesitates.",
    ),
];

/// The glossary entry for `word`.
pub fn gloss(word: &str) -> Option<&'static str> {
    GLOSSARY.iter().find(|(w, _)| *w == word).map(|(_, d)| *d)
}

// ---------------------------------------------------------------------------------------------
// MathML
// ---------------------------------------------------------------------------------------------

/// The stage formulas as MathML (Chromium and Firefox render it natively), general form and
/// with this step's numbers. Everything in them is numbers and fixed symbols: no page text.
pub mod math {
    use super::num;
    use crate::ppo::gae::{GaeParams, GaeStep};

    fn mi(x: &str) -> String {
        format!("<mi>{x}</mi>")
    }
    fn mo(x: &str) -> String {
        format!("<mo>{x}</mo>")
    }
    /// A number, negative ones fenced.
    fn mn(x: f32) -> String {
        let s = num(x);
        match s.strip_prefix('−') {
            Some(abs) => format!("<mo>(</mo><mo>−</mo><mn>{abs}</mn><mo>)</mo>"),
            None => format!("<mn>{s}</mn>"),
        }
    }
    fn mnum(x: impl std::fmt::Display) -> String {
        format!("<mn>{x}</mn>")
    }
    fn sub(base: &str, index: &str) -> String {
        format!("<msub>{}{}</msub>", mi(base), index_of(index))
    }
    fn index_of(index: &str) -> String {
        match index.split_once('+') {
            Some((a, b)) => format!("<mrow>{}<mo>+</mo>{}</mrow>", mi(a), mnum(b)),
            None if index.chars().all(|c| c.is_ascii_digit()) => mnum(index),
            None => mi(index),
        }
    }
    fn row(parts: &[String]) -> String {
        format!("<mrow>{}</mrow>", parts.concat())
    }
    fn block(parts: &[String]) -> String {
        format!("<math display=\"block\">{}</math>", row(parts))
    }

    /// δ_t = r_t + γ·V_{t+1}·m_{t+1} − V_t, then with the numbers.
    pub fn delta(step: &GaeStep, gamma: f32) -> [String; 2] {
        let t = step.t.to_string();
        [
            block(&[
                sub("δ", "t"),
                mo("="),
                sub("r", "t"),
                mo("+"),
                mi("γ"),
                mo("·"),
                sub("V", "t+1"),
                mo("·"),
                sub("m", "t+1"),
                mo("−"),
                sub("V", "t"),
            ]),
            block(&[
                sub("δ", &t),
                mo("="),
                mn(step.reward),
                mo("+"),
                mnum(gamma),
                mo("×"),
                mn(step.next_value),
                mo("×"),
                mnum(step.next_mask),
                mo("−"),
                mn(step.value),
                mo("="),
                mn(step.delta),
            ]),
        ]
    }

    /// A_t = δ_t + γλ·m_{t+1}·A_{t+1}, then with the numbers.
    pub fn advantage(step: &GaeStep, params: GaeParams) -> [String; 2] {
        let t = step.t.to_string();
        [
            block(&[
                sub("A", "t"),
                mo("="),
                sub("δ", "t"),
                mo("+"),
                mi("γ"),
                mi("λ"),
                mo("·"),
                sub("m", "t+1"),
                mo("·"),
                sub("A", "t+1"),
            ]),
            block(&[
                sub("A", &t),
                mo("="),
                mn(step.delta),
                mo("+"),
                mnum(params.gamma),
                mo("×"),
                mnum(params.lam),
                mo("×"),
                mnum(step.next_mask),
                mo("×"),
                mn(step.next_advantage),
                mo("="),
                mn(step.advantage),
            ]),
        ]
    }

    /// R_t = A_t + V_t with the numbers.
    pub fn ret(step: &GaeStep) -> String {
        let t = step.t.to_string();
        block(&[
            sub("R", &t),
            mo("="),
            sub("A", &t),
            mo("+"),
            sub("V", &t),
            mo("="),
            mn(step.advantage),
            mo("+"),
            mn(step.value),
            mo("="),
            mn(step.ret),
        ])
    }

    /// Â_t = (A_t − mean) / std with the batch's numbers.
    pub fn whiten(mean: f32, std: f32) -> String {
        block(&[
            "<msub><mover><mi>A</mi><mo>^</mo></mover><mi>t</mi></msub>".into(),
            mo("="),
            format!(
                "<mfrac><mrow>{}{}{}</mrow>{}</mfrac>",
                sub("A", "t"),
                mo("−"),
                mn(mean),
                mn(std)
            ),
        ])
    }

    /// r_t = −β·KL_t + [t = t_last]·score, t_last the response's last real token (not the padded
    /// length, which exercise 4 calls T).
    pub fn reward(beta: f32) -> String {
        block(&[
            sub("r", "t"),
            mo("="),
            mo("−"),
            mnum(beta),
            mo("·"),
            sub("KL", "t"),
            mo("+"),
            "<mrow><mo>[</mo><mi>t</mi><mo>=</mo><msub><mi>t</mi><mi>last</mi></msub><mo>]</mo></mrow>".into(),
            mo("·"),
            mi("score"),
        ])
    }

    /// The clipped surrogate the update minimises, with ε.
    pub fn clipped_objective(eps: f32) -> String {
        let rho = sub("ρ", "t");
        let a = "<msub><mover><mi>A</mi><mo>^</mo></mover><mi>t</mi></msub>".to_string();
        block(&[
            sub("L", "t"),
            mo("="),
            mo("−"),
            mi("min"),
            mo("("),
            rho.clone(),
            a.clone(),
            mo(","),
            mi("clip"),
            mo("("),
            rho.clone(),
            mo(","),
            mnum(format!("{:.2}", 1.0 - eps)),
            mo(","),
            mnum(format!("{:.2}", 1.0 + eps)),
            mo(")"),
            a,
            mo(")"),
            mo(","),
            rho,
            mo("="),
            "<mfrac><mrow><msub><mi>π</mi><mi>new</mi></msub></mrow><mrow><msub><mi>π</mi><mi>old</mi></msub></mrow></mfrac>".into(),
        ])
    }

    /// The policy's next-token distribution at temperature τ.
    pub fn sampling(temperature: f32) -> String {
        block(&[
            sub("p", "t"),
            mo("="),
            mi("softmax"),
            mo("("),
            format!("<mfrac>{}{}</mfrac>", mi("z"), mnum(temperature)),
            mo(")"),
        ])
    }
}
