//! The questions of one batch: each made from the response on show, at a point where PPO
//! surprises students, and skipped when the batch leaves its answer undefined.

use super::pick::{pick, pick_balanced, token};
use super::question::*;
use crate::explain::format::{
    beta_step, count, fenced, num, num_within_operands, operand_for, ratio_beside,
};
use crate::explain::stage::real_len;
use crate::explore::{Band, policy_case, value_case};
use crate::lab::walkthrough::Walkthrough;
use crate::ppo::Algorithm;
use crate::ppo::family::Family;
use crate::ppo::rewards::KlEstimator;

/// The questions for response `row` of `walk`, one per kind the batch defines, in [`Kind::ALL`]
/// order. `iteration` varies which token each asks about.
pub fn questions(walk: &Walkthrough, row: usize, iteration: usize) -> Vec<Question> {
    Kind::ALL
        .into_iter()
        .filter_map(|kind| question(walk, kind, row, iteration))
        .collect()
}

/// One question of `kind` on response `row`, or None when this batch leaves its answer undefined.
pub fn question(walk: &Walkthrough, kind: Kind, row: usize, iteration: usize) -> Option<Question> {
    let len = real_len(walk, row);
    let exp = &walk.experience;
    match kind {
        Kind::AdvantageSign => {
            if len == 0 {
                return None;
            }
            // The advantages the update used: PPO's GAE, or the critic-free member's.
            let used = match exp.algorithm() {
                Algorithm::Ppo => &exp.advantages,
                Algorithm::Grpo => &exp.group_advantages,
            };
            let advantages = &used[row][..len];
            let positive: Vec<usize> = (0..len).filter(|&t| advantages[t] > 0.0).collect();
            let texts = (0..len).map(|t| token(walk, row, t)).collect();
            let what = match exp.member {
                Family::Ppo if walk.whiten.is_some() => {
                    "GAE then compares each token's reward and the critic's values V_t, which are on show, and whitening centres the result on the batch's mean".to_string()
                }
                Family::Ppo => {
                    "GAE then compares each token's reward and the critic's values V_t, which are on show (whitening is off: the update uses GAE's advantages as they are)".to_string()
                }
                member => {
                    format!("{} gives every token of a response {}", member.name(), member.response_advantage(exp.group_scaled()))
                }
            };
            Some(Question {
                kind,
                row,
                t: None,
                prompt: format!(
                    "Response {} scored {}. {what}. Which of its {} will get a positive advantage Â_t, the number the update pushes each token's probability with? Pick them (or none).",
                    row + 1,
                    num(exp.scores[row].reward()),
                    count(len, "token", "tokens"),
                ),
                ask: Ask::Tokens(texts),
                why: format!(
                    "Â_t > 0 on {} of {}: {}{}.",
                    positive.len(),
                    len,
                    if positive.is_empty() {
                        "none".to_string()
                    } else {
                        positive
                            .iter()
                            .map(|&t| format!("{} ({})", token(walk, row, t), num(advantages[t])))
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                    if exp.row_used(row) {
                        String::new()
                    } else {
                        format!(
                            " (its group's rewards were all equal, so {}'s dynamic sampling left it out of the update)",
                            exp.member.name()
                        )
                    }
                ),
                answer: Response::Tokens(positive),
                supposed: None,
            })
        }
        Kind::LargestKl => {
            // Only PPO's token rewards pay the KL; the critic-free members' updates never read
            // them (GRPO's KL is a loss term, RLOO's and REINFORCE's come off the score).
            if exp.algorithm() != Algorithm::Ppo {
                return None;
            }
            let sums: Vec<f32> = (0..exp.kl.len())
                .map(|b| exp.kl[b][..real_len(walk, b)].iter().sum())
                .collect();
            let (best, &max) = sums.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1))?;
            let second = sums
                .iter()
                .enumerate()
                .filter(|&(b, _)| b != best)
                .map(|(_, &s)| s)
                .fold(f32::NEG_INFINITY, f32::max);
            // No one answer: a single response, a near tie, (on the first iteration, when the
            // policy is the reference) sums that are only rounding, or β = 0, when no response
            // pays anything.
            if sums.len() < 2
                || max < KL_RESOLUTION
                || max - second < KL_RESOLUTION
                || exp.kl_coeff <= 0.0
            {
                return None;
            }
            let beta = exp.kl_coeff;
            // β and the sum with the digits that give the KL paid, as the reveal multiplies them.
            let paid = num_within_operands(beta * max);
            let [beta_shown, sum_shown] = [beta, max].map(|x| operand_for(x, &paid));
            // Only the k1 estimate can be negative, and only it charges most where the policy
            // now likes a token more than the reference does; k2 and k3 charge a drift either way.
            let (sign_clause, who_pays) = if exp.kl_estimator == KlEstimator::K1 {
                (
                    " (a token with KL_t < 0 gets it back instead)",
                    "a token the policy now likes much more than the reference pays most",
                )
            } else {
                (
                    "",
                    "a token pays whichever way the policy has moved from the reference there",
                )
            };
            let choices = (0..sums.len())
                .map(|b| {
                    format!(
                        "response {} ({})",
                        b + 1,
                        count(real_len(walk, b), "token", "tokens")
                    )
                })
                .collect();
            Some(Question {
                kind,
                row,
                t: None,
                prompt: format!(
                    "Every token pays β · KL_t to the frozen reference out of its reward{sign_clause}, with β = {beta_shown}. Which response pays the most in all?",
                ),
                ask: Ask::Choice(choices),
                answer: Response::Choice(best),
                why: format!(
                    "Response {} pays the most: its per-token KL sums to {sum_shown} (β · ΣKL_t = {paid}); the next largest sum is {}. A long response pays more tokens' worth, and {who_pays}.",
                    best + 1,
                    num(second),
                ),
                supposed: None,
            })
        }
        Kind::BetaMoves => {
            // Only while β adapts (PPO with a KL target); the step is this batch's. Not at β = 0,
            // which the rule multiplies and so never moves.
            let k = walk.kl_control.filter(|k| k.before > 0.0)?;
            let (moved, way) = if k.after > k.before {
                (0, "rises")
            } else if k.after < k.before {
                (2, "falls")
            } else {
                (1, "stays")
            };
            let side = if k.kl > k.target {
                "above"
            } else if k.kl < k.target {
                "below"
            } else {
                "on"
            };
            let choices = ["β rises", "β stays", "β falls"].map(String::from).to_vec();
            Some(Question {
                kind,
                row,
                t: None,
                prompt: format!(
                    "β = {} weighs the KL penalty, and the adaptive controller moves it after every batch to steer the KL to the reference toward its target: {} per response. This batch's responses are {} from the reference on average (their summed per-token KL). Which way does β move for the next batch?",
                    num(k.before as f32),
                    num(k.target as f32),
                    num(k.kl as f32),
                ),
                ask: Ask::Choice(choices),
                answer: Response::Choice(moved),
                why: format!(
                    "The KL, {}, is {side} the target {}: the error clip(KL / target − 1, −0.2, 0.2) = {}, and β ← β × (1 + error × n / horizon) = {}, so β {way}. A larger β makes drifting from the reference cost more reward, which pulls the KL back down; a smaller one lets the policy move more freely.",
                    num(k.kl as f32),
                    num(k.target as f32),
                    num(k.error as f32),
                    beta_step(k.before, k.error, k.n, k.horizon, k.after),
                ),
                supposed: None,
            })
        }
        Kind::GaeStep => {
            if exp.algorithm() != Algorithm::Ppo || len == 0 {
                return None;
            }
            let trace = &walk.gae[row];
            // A token with a successor where there is one, so A_{t+1} is not simply 0.
            let candidates = if len >= 2 { len - 1 } else { 1 };
            let t = pick(candidates, iteration, row, kind);
            let step = trace.steps.iter().find(|s| s.t == t)?;
            let gl = trace.params.gamma * trace.params.lam;
            // The numbers with the digits that give the answer, in the question and its answer.
            let advantage = num_within_operands(step.advantage);
            let [delta, gl, next] =
                [step.delta, gl, step.next_advantage].map(|x| operand_for(x, &advantage));
            // A one-token response has no token after its last: the sweep starts from 0 there.
            let after = if step.next_mask > 0.0 {
                format!("the token after it has A_{} = {next}", t + 1)
            } else {
                format!(
                    "it is the last real token, so nothing follows it (A_{} = 0)",
                    t + 1
                )
            };
            Some(Question {
                kind,
                row,
                t: Some(t),
                prompt: format!(
                    "The sweep runs from the last token back. At token {t} ({}), δ_{t} = {}, and {after}; γλ = {}. What is A_{t}?",
                    token(walk, row, t),
                    delta,
                    gl,
                ),
                ask: Ask::Number {
                    tolerance: NUMBER_TOLERANCE,
                },
                answer: Response::Number(step.advantage),
                why: format!(
                    "A_{t} = δ_{t} + γλ · A_{} = {delta} + {gl} × {} = {advantage}.",
                    t + 1,
                    fenced(next.clone()),
                ),
                supposed: None,
            })
        }
        Kind::WhiteningFlip => {
            let w = walk.whiten.as_ref()?;
            if exp.algorithm() != Algorithm::Ppo || len == 0 {
                return None;
            }
            let trace = &walk.gae[row];
            let offset = row * exp.rollout.response_len();
            let flips = |t: usize| {
                let (a, white) = (trace.advantages[t], w.whitened[offset + t]);
                a * white < 0.0
            };
            // Both signed: an A_t of 0, or one exactly at the batch's mean (Â = 0), has no sign
            // for whitening to keep or flip.
            let nonzero: Vec<usize> = (0..len)
                .filter(|&t| trace.advantages[t] != 0.0 && w.whitened[offset + t] != 0.0)
                .collect();
            let (yes, no): (Vec<usize>, Vec<usize>) = nonzero.iter().partition(|&&t| flips(t));
            let t = pick_balanced(&yes, &no, iteration, row, kind)?;
            let (a, white) = (trace.advantages[t], w.whitened[offset + t]);
            let flipped = flips(t);
            Some(Question {
                kind,
                row,
                t: Some(t),
                prompt: format!(
                    "Token {} ({}) has A_t = {} from GAE. Whitening subtracts the mean of every real token's A_t in the batch, {}, and divides by their standard deviation, {}. Will the whitened Â_t have the other sign?",
                    t,
                    token(walk, row, t),
                    num(a),
                    num(w.mean),
                    num(w.std),
                ),
                ask: Ask::Choice(vec!["yes".into(), "no".into()]),
                answer: Response::Choice(usize::from(!flipped)),
                why: format!(
                    "Â_t = (A_t − mean) / std = ({} − {}) / {} = {}: {}. Whitening judges a token against the batch, not against zero.",
                    num(a),
                    num(w.mean),
                    num(w.std),
                    num(white),
                    if flipped {
                        format!(
                            "A_t is {} the batch's mean, so the sign flips",
                            if a > w.mean { "above" } else { "below" }
                        )
                    } else {
                        "A_t and the batch's mean leave the sign as it was".to_string()
                    }
                ),
                supposed: None,
            })
        }
        Kind::RatioClipped => {
            // The band each token's own ratio was clipped to; not asked where the update took
            // one ratio per response (RLOO, REINFORCE): no token's own term is clipped there.
            let clip = walk.update.token_band()?;
            let (edge_lo, edge_hi) = clip.edges();
            let tokens = &walk.policy_after.get(row)?.tokens;
            let band = |r: f32| Band::of(r, edge_lo, edge_hi);
            // Outside the band is where the question is worth asking: there the sign of Â
            // decides. When no token of the response left it (a gentle update), the question
            // supposes a harder push took a token half as far again past either edge.
            // A token whose Â is 0 (a group of equal rewards, or one the update left out) has
            // nothing for the clip to switch off.
            let real: Vec<(usize, f32)> = (0..tokens.len())
                .filter(|&i| band(tokens[i].ratio) != Band::Inside && tokens[i].advantage != 0.0)
                .map(|i| (i, tokens[i].ratio))
                .collect();
            let supposed = real.is_empty();
            let candidates: Vec<(usize, f32)> = if supposed {
                // Half as far again past each edge; below, kept above 0 (a ratio is positive),
                // and only where a ratio can lie below the band (ε < 1) and the supposed one is
                // really outside it (not at ε = 0).
                let (lo, hi) = (
                    (1.0 - 1.5 * clip.low).max(0.5 * edge_lo),
                    1.0 + 1.5 * clip.high,
                );
                let outside = |r: f32| r > 0.0 && band(r) != Band::Inside;
                (0..tokens.len())
                    .filter(|&i| tokens[i].advantage != 0.0)
                    .flat_map(|i| [(i, hi), (i, lo)])
                    .filter(|&(_, r)| outside(r))
                    .collect()
            } else {
                real
            };
            let clipped =
                |&(i, r): &(usize, f32)| policy_case(r, tokens[i].advantage, clip).clipped_wins;
            let (yes, no): (Vec<usize>, Vec<usize>) =
                (0..candidates.len()).partition(|&k| clipped(&candidates[k]));
            let (i, ratio) = candidates[pick_balanced(&yes, &no, iteration, row, kind)?];
            let p = &tokens[i];
            let case = policy_case(ratio, p.advantage, clip);
            let band_text = crate::explain::format::band(edge_lo, edge_hi);
            let prompt = if supposed {
                format!(
                    "After this update, token {} ({}) has the ratio ρ = π_new / π_old = {}, inside the clip band {band_text}, and the advantage Â = {}. Suppose a harder push had taken it to ρ = {}, {} the band. Would the clip then switch this token's own policy gradient off?",
                    p.t,
                    token(walk, row, p.t),
                    ratio_beside(p.ratio, edge_lo, edge_hi),
                    num(p.advantage),
                    ratio_beside(ratio, edge_lo, edge_hi),
                    if ratio > 1.0 { "above" } else { "below" },
                )
            } else {
                format!(
                    "After this update, token {} ({}) has the ratio ρ = π_new / π_old = {} and the advantage Â = {}; the clip band is {band_text}. Does the clip switch this token's own policy gradient off?",
                    p.t,
                    token(walk, row, p.t),
                    ratio_beside(ratio, edge_lo, edge_hi),
                    num(p.advantage),
                )
            };
            Some(Question {
                kind,
                row,
                t: Some(p.t),
                prompt,
                ask: Ask::Choice(vec!["yes".into(), "no".into()]),
                answer: Response::Choice(usize::from(!case.clipped_wins)),
                why: case.verdict(),
                supposed: supposed.then_some(ratio),
            })
        }
        Kind::CriticLearns => {
            // Not at vf_coef = 0: the value loss then trains the critic on no token at all.
            if exp.algorithm() != Algorithm::Ppo || walk.update.coeffs.vf_coef == 0.0 {
                return None;
            }
            let c = walk.update.coeffs.clip_range_value;
            let tokens = &walk.value_after.get(row)?.tokens;
            let band = |v: &crate::ppo::value_loss::ValueToken, x: f32| {
                Band::of(x, v.value_old - c, v.value_old + c)
            };
            // As for the ratio: a value outside its band if the update left one there, else a
            // supposed V_new = V_old ± 1.5c, toward the return or away from it.
            let real: Vec<(usize, f32)> = (0..tokens.len())
                .filter(|&i| band(&tokens[i], tokens[i].value_new) != Band::Inside)
                .map(|i| (i, tokens[i].value_new))
                .collect();
            let supposed = real.is_empty();
            let candidates: Vec<(usize, f32)> = if supposed {
                (0..tokens.len())
                    .flat_map(|i| {
                        let old = tokens[i].value_old;
                        [(i, old + 1.5 * c), (i, old - 1.5 * c)]
                    })
                    .collect()
            } else {
                real
            };
            let learns = |&(i, x): &(usize, f32)| {
                let v = &tokens[i];
                value_case(v.value_old, x, v.ret, c).learns
            };
            let (yes, no): (Vec<usize>, Vec<usize>) =
                (0..candidates.len()).partition(|&k| learns(&candidates[k]));
            let (i, value_new) = candidates[pick_balanced(&yes, &no, iteration, row, kind)?];
            let v = &tokens[i];
            let case = value_case(v.value_old, value_new, v.ret, c);
            let prompt = if supposed {
                format!(
                    "After this update, the critic's value at token {} ({}) went from V_old = {} to V_new = {}, inside the value clip's band V_old ± {}; its return is R = {}. Suppose a harder push had taken it to V_new = {}, outside the band. Would the critic then still learn from this token (a value gradient that is not 0)?",
                    v.t,
                    token(walk, row, v.t),
                    num(v.value_old),
                    num(v.value_new),
                    num(c),
                    num(v.ret),
                    num(value_new),
                )
            } else {
                format!(
                    "After this update, the critic's value at token {} ({}) went from V_old = {} to V_new = {}; its return is R = {}, and the value clip's band is V_old ± {}. Does the critic still learn from this token (a value gradient that is not 0)?",
                    v.t,
                    token(walk, row, v.t),
                    num(v.value_old),
                    num(value_new),
                    num(v.ret),
                    num(c),
                )
            };
            Some(Question {
                kind,
                row,
                t: Some(v.t),
                prompt,
                ask: Ask::Choice(vec!["yes".into(), "no".into()]),
                answer: Response::Choice(usize::from(!case.learns)),
                why: case.verdict(),
                supposed: supposed.then_some(value_new),
            })
        }
    }
}

#[cfg(test)]
mod tests;
