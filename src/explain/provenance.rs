//! Where one number of a stage comes from: the cells it was made of, the arithmetic written out,
//! and the result recomputed from the shown inputs.

use super::format::{
    decimals_for, fenced, fixed, num, num_within_operands, operand, operand_for, operand_to,
    setting_operand,
};
use super::stage::real_len;
use crate::lab::walkthrough::Walkthrough;
use crate::ppo::gae::GaeStep;
use crate::ppo::group_advantages::{GROUP_EPS, GroupStep, RewardScale};
use crate::ppo::rewards::KlEstimator;

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
            lines: vec![{
                let ret = num_within_operands(step.ret);
                format!(
                    "R_{t} = A_{t} + V_{t} = {} + {} = {ret}",
                    operand_for(step.advantage, &ret),
                    operand(step.value, &ret),
                )
            }],
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
            // The difference of two log-probabilities, to no finer than they are printed.
            let kl_shown = num_within_operands(kl);
            let kl_line = match exp.kl_estimator {
                KlEstimator::K1 => format!(
                    "KL_{t} = log π_old − log π_ref = {} − {} = {kl_shown} (k1)",
                    operand(logp, &kl_shown),
                    operand(ref_logp, &kl_shown),
                ),
                // Squaring the difference doubles its rounding: one decimal more.
                KlEstimator::K2 => {
                    let d = decimals_for(&kl_shown) + 1;
                    format!(
                        "KL_{t} = ½ (log π_ref − log π_old)² = ½ × ({} − {})² = {kl_shown} (k2)",
                        fenced(operand_to(ref_logp, d)),
                        fenced(operand_to(logp, d)),
                    )
                }
                KlEstimator::K3 => format!(
                    "KL_{t} = e^(log π_ref − log π_old) − 1 − (log π_ref − log π_old) = {} (k3)",
                    num(kl)
                ),
            };
            let mut recomputed = -beta * exp.kl_estimator.estimate(logp, ref_logp);
            let reward = num_within_operands(exp.rewards[row][t]);
            let reward_line = if last {
                terms.push(term(format!("score-{row}"), "score".into(), score));
                recomputed += score;
                format!(
                    "r_{t} = −β · KL_{t} + score = −{} × {} + {} = {reward} (the last token gets the score)",
                    setting_operand(beta, &reward),
                    operand(kl, &reward),
                    operand(score, &reward),
                )
            } else {
                format!(
                    "r_{t} = −β · KL_{t} = −{} × {} = {reward} (the score comes only on the last token)",
                    setting_operand(beta, &reward),
                    operand(kl, &reward),
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
                lines: vec![{
                    // The log-ratio and its two terms to one decimal past the ratio's: enough
                    // for exp to give it, and a tiny log-ratio reads 0.00000, not 3.00e−7.
                    let ratio = format_ratio(token.ratio);
                    let d = decimals_for(&ratio) + 1;
                    format!(
                        "ρ_{t} = exp(log π_new − log π_old) = exp({} − {}) = exp({}) = {ratio}",
                        fenced(fixed(token.logp_new, d)),
                        fenced(fixed(token.logp_old, d)),
                        fixed(token.logp_new - token.logp_old, d),
                    )
                }],
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
        let (delta, advantage) = (
            num_within_operands(step.delta),
            num_within_operands(step.advantage),
        );
        vec![
            format!(
                "δ_{t} = r_{t} + γ · V_{n} − V_{t} = {} + {g} × {} − {} = {delta}",
                operand_for(step.reward, &delta),
                operand(step.next_value, &delta),
                operand(step.value, &delta),
            ),
            format!(
                "A_{t} = δ_{t} + γ · λ · A_{n} = {} + {g} × {l} × {} = {advantage}",
                operand_for(step.delta, &advantage),
                operand(step.next_advantage, &advantage),
            ),
        ]
    } else {
        let advantage = num_within_operands(step.advantage);
        vec![
            format!(
                "t = {t} is the last token (m_{n} = 0): V_{n} and A_{n} drop out, as if the episode ended here"
            ),
            format!(
                "A_{t} = δ_{t} = r_{t} − V_{t} = {} − {} = {advantage}",
                operand_for(step.reward, &advantage),
                operand(step.value, &advantage),
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

/// Response `i` of a group's advantage in the critic-free members, the arithmetic written out with
/// the operands that give the printed advantage. Divided by `std + ε`, each operand's rounding
/// (half a unit of its last decimal) moves A by up to half a unit times (2 + |A|) / (std + ε):
/// so the operands get that many more decimals than A, enough to keep A within a unit.
pub fn group_advantage(step: &GroupStep, i: usize, scale: RewardScale) -> String {
    let r = step.rewards[i];
    let a = || num_within_operands(step.advantages[i]);
    match (step.zero_spread, scale) {
        (true, _) => format!(
            "every reward of the group is {}: A = r − mean = 0",
            num(step.rewards[0])
        ),
        (false, RewardScale::Group) => {
            let a = a();
            let spread = (2.0 + step.advantages[i].abs()) / step.divisor;
            let d = decimals_for(&a) + spread.log10().ceil().max(0.0) as usize;
            format!(
                "A = (r − mean) / (std + {GROUP_EPS}) = ({} − {}) / ({} + {GROUP_EPS}) = {a}",
                operand_to(r, d),
                fenced(operand_to(step.mean, d)),
                operand_to(step.std, d),
            )
        }
        (false, RewardScale::None) => {
            let a = a();
            format!(
                "A = r − mean = {} − {} = {a}",
                operand_for(r, &a),
                fenced(operand_for(step.mean, &a)),
            )
        }
    }
}
