//! "What to notice" for each stage: claims checked against this batch before they are made (a
//! note whose condition does not hold is not shown).

use super::format::{agree, band, between, count, num};

mod counts;
use super::provenance::format_ratio;
use super::stage::{StageKey, real_len, whitening_flips};
use crate::lab::walkthrough::Walkthrough;
use crate::ppo::clip_range::ClipRange;
use crate::ppo::loss_agg::LossAgg;
use crate::ppo::policy_loss::PolicyClip;
use crate::ppo::rewards::KlEstimator;
pub use counts::pushed_up;

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
                         there the policy spread its probability widest, {}.",
                        num(entropy[t]),
                        // Under 0.1 nats one alternative has about 2% (health's entropy floor).
                        if entropy[t] >= crate::health::check::ENTROPY_FLOOR as f32 {
                            "so sampling could have gone several ways"
                        } else {
                            "and even there it was nearly certain of its token"
                        }
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
                    "At {} the sampled token was the most likely one: at temperature {} any \
                     token can be drawn, and here every draw landed on the peak.",
                    if real == 1 {
                        "its one step".to_string()
                    } else {
                        format!("every one of the {real} steps")
                    },
                    walk.update.temperature
                )
            } else {
                format!(
                    "At {} the sampled token was not the most likely one: sampling explores, \
                     and the outcomes that differ from what the critic expected are where PPO's \
                     advantages come from.",
                    if real == 1 {
                        "its one step".to_string()
                    } else {
                        format!("{} of the {real} steps", off_top.len())
                    }
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
                         KL_t is 0 up to rounding (largest |KL_t| in the batch: {}; \
                         the token-by-token rollout and the reference's one pass round \
                         differently). The rewards are the scores alone.",
                        num(max_abs)
                    ),
                    vec![],
                    Some(max_abs),
                ));
            }
            let negative: Vec<usize> = (0..real).filter(|&t| exp.kl[row][t] < 0.0).collect();
            // Not where kl-zero says the KL is rounding (its negatives are rounding too).
            let rounding = iteration == 1 && max_abs < 1e-3;
            if exp.kl_estimator == KlEstimator::K1
                && !negative.is_empty()
                && max_abs > 1e-4
                && !rounding
            {
                let bonus = if exp.kl_coeff > 0.0 {
                    format!(
                        "so for {} the penalty is a bonus",
                        agree(negative.len(), "that token", "those tokens")
                    )
                } else {
                    "and can be negative (with β = 0 nothing is charged for it)".to_string()
                };
                out.push(note(
                    "kl-negative",
                    format!(
                        "{} of this response's {real} tokens {} KL_t < 0 (log π_old < log π_ref): \
                         k1 is a one-sample estimate, {bonus}. Only its average over samples is \
                         the KL.",
                        negative.len(),
                        agree(negative.len(), "has", "have"),
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
                // Not when the values are all equal (an untrained, zero head): no jump to name.
                if let Some(t) = argmax(&jumps).filter(|&t| jumps[t] > 0.0) {
                    let n = t + 1;
                    let gamma = walk.gae[row].params.gamma;
                    let reading = if gamma == 0.0 {
                        format!(
                            "With γ = 0, δ_{t} = r_{t} − V_{t} does not look at V_{n}, so no token \
                             is credited (or blamed) for this jump."
                        )
                    } else if gamma == 1.0 {
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
                        " This response was cut at max new tokens without an end token; it is \
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
                                "subtracting the batch mean {m} turns any {} negative",
                                between("0", "A_t", &m)
                            )
                        } else {
                            format!(
                                "the batch mean {m} is negative here, so subtracting it turns any \
                                 {} positive",
                                between(&m, "A_t", "0")
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
                // Raw advantages all equal: nothing to whiten (only rounding is left).
                let raw = (0..exp.rollout.ids.len())
                    .flat_map(|b| walk.gae[b].advantages[..real_len(walk, b)].iter().copied());
                let equal = raw.clone().zip(raw.skip(1)).all(|(a, b)| a == b);
                out.push(note(
                    "pushed-up",
                    pushed_up(up, white.len(), equal, exp.member),
                    vec![],
                    Some(up as f32),
                ));
            }
        }
        StageKey::Update => {
            let stats = &walk.stats;
            // The advantages the update used (the member's own, only the rows it kept).
            let used = exp.batch();
            let mean_adv = masked_mean(&used.advantages, &used.response_mask);
            // Under a critic-free member, averaged as its loss averages them (one per response
            // where a ratio covers a response: each token carries the response's advantage).
            let loss_mean = walk.update.grpo.map(|g| {
                let agg = if g.per_response {
                    LossAgg::SeqMeanTokenMean
                } else {
                    g.agg
                };
                agg.apply_ref(&used.advantages, &used.response_mask)
            });
            let name = exp.member.name();
            // One mini-batch of the whole batch: the first step's loss at ratio 1 is minus the
            // batch's mean, and only the steps after it (weights moved, ratios off 1) differ.
            let rows = used.ids.len();
            let whole = walk.update.mini_batch_size >= rows;
            // Under dynamic sampling the update's batch is the groups it kept.
            let whole_batch = if rows < exp.rollout.ids.len() {
                format!(
                    "all the update trained on (the {} of the groups {name} kept)",
                    count(rows, "response", "responses")
                )
            } else {
                "the whole batch".to_string()
            };
            let later = if stats.optimizer_steps > 1 {
                ". The steps after it start from weights the earlier steps moved, so their ratios \
                 are no longer 1 and their policy losses are no longer minus the mean"
            } else {
                ""
            };
            let at_ratio_one = match (walk.update.grpo, whole) {
                (None, true) if walk.whiten.is_some() => format!(
                    "A step's policy loss at ratio 1 is −mean(Â) over its mini-batch, and here one \
                     mini-batch is the whole batch, where whitening made Â's mean 0 ({} here, \
                     rounding): the first step's policy loss is 0 up to rounding{later}",
                    num(mean_adv),
                ),
                (None, true) => format!(
                    "A step's policy loss at ratio 1 is −mean(Â) over its mini-batch, and here one \
                     mini-batch is the whole batch, where whitening is off and Â's mean is {}: the \
                     first step's policy loss is {} up to the ratios' rounding{later}",
                    num(mean_adv),
                    num(-mean_adv),
                ),
                (None, false) => format!(
                    "A step's policy loss at ratio 1 is −mean(Â) over its mini-batch, which is not 0 \
                     in general: {}",
                    if walk.whiten.is_some() {
                        format!(
                            "whitening makes Â's mean 0 over the whole batch ({} here), not over \
                             each of its {} mini-batches of {}{}",
                            num(mean_adv),
                            rows.div_ceil(walk.update.mini_batch_size.max(1)),
                            // The last is smaller when the rows do not divide evenly.
                            if rows % walk.update.mini_batch_size.max(1) == 0 {
                                ""
                            } else {
                                "up to "
                            },
                            count(walk.update.mini_batch_size, "row", "rows"),
                        )
                    } else {
                        format!(
                            "whitening is off, and Â's mean over the whole batch is {}",
                            num(mean_adv)
                        )
                    }
                ),
                (Some(g), _) => {
                    let how = if g.per_response {
                        "one per response, over the responses"
                    } else {
                        g.agg.name()
                    };
                    let m = loss_mean.unwrap_or(mean_adv);
                    if whole {
                        // 0 up to rounding where the baseline makes them sum to 0 (RLOO's).
                        let first = if m.abs() < 1e-6 {
                            "0 up to rounding".to_string()
                        } else {
                            format!("{} up to the ratios' rounding", num(-m))
                        };
                        format!(
                            "A step's policy loss at ratio 1 is minus its mini-batch's advantages \
                             averaged as {name}'s loss averages them ({how}). Here one mini-batch \
                             is {whole_batch}, where the advantages {name}'s update used, averaged \
                             that way, come to {}: the first step's policy loss is {first}{later}",
                            num(m)
                        )
                    } else {
                        format!(
                            "A step's policy loss at ratio 1 is minus its mini-batch's advantages \
                             averaged as {name}'s loss averages them ({how}), which is not 0 in \
                             general: averaged so over the whole batch the advantages {name}'s \
                             update used give {} here, and one mini-batch's average differs from \
                             the whole batch's",
                            num(m)
                        )
                    }
                }
            };
            let terms = match walk.update.grpo {
                None => "policy, value and entropy",
                Some(g) if g.per_response || g.beta == 0.0 => "policy and entropy",
                Some(_) => "policy, KL and entropy",
            };
            let text = if stats.optimizer_steps == 0 {
                format!(
                    "The update took no step: {}, and the policy is the one that sampled the batch.",
                    match &exp.kept {
                        Some(kept) if kept.rows.is_empty() => format!(
                            "{name}'s dynamic sampling left no group in it (every group's rewards \
                             were equal), so there are no losses or grad norm to show"
                        ),
                        _ if stats.skipped_steps == 1 => "its one step was skipped, for a loss \
                             or gradient that was not finite, so the losses and the grad norm \
                             shown are 0"
                            .to_string(),
                        _ => format!(
                            "all {} of its steps were skipped, each for a loss or gradient that \
                             was not finite, so the losses and the grad norm shown are 0",
                            stats.skipped_steps
                        ),
                    }
                )
            } else {
                format!(
                    "At the update's first step the new log-probabilities come from one \
                     teacher-forced pass and the old ones from the token-by-token rollout; they \
                     differ by at most {} here (the Mask stage shows it), so every ratio starts \
                     at 1 up to rounding. {at_ratio_one}. The policy loss shown, {}, is the \
                     mean over the update's {}. {} the grad norm shown, {}, is the norm of the \
                     total loss's gradient ({terms} terms together) before clipping, {}.",
                    num(walk.teacher_forced_max_diff),
                    num(stats.loss_policy),
                    count(stats.optimizer_steps, "step", "steps"),
                    // Every advantage 0 and no other term acting (equal rewards in every
                    // group, no entropy bonus, no KL gradient) leaves no gradient at all.
                    if stats.grad_norm > 0.0 {
                        "The gradient is not 0 either:"
                    } else {
                        "Here the gradient is 0 too, with nothing in the loss to move the policy:"
                    },
                    num(stats.grad_norm),
                    agree(
                        stats.optimizer_steps,
                        "at that step",
                        "averaged over those steps"
                    ),
                )
            };
            out.push(note(
                "policy-loss-zero",
                text,
                vec![],
                Some(stats.grad_norm),
            ));
            // A response the update left out had no term to move it (the stage says so first).
            if let Some(policy) = walk.policy_after.get(row).filter(|_| exp.row_used(row)) {
                if let Some((t, r)) = policy
                    .tokens
                    .iter()
                    .map(|p| (p.t, p.ratio))
                    .max_by(|a, b| (a.1 - 1.0).abs().total_cmp(&(b.1 - 1.0).abs()))
                {
                    // The flags were set against the band the update clipped each token to.
                    let clipped: Vec<usize> = policy
                        .tokens
                        .iter()
                        .filter(|p| p.clip != PolicyClip::No)
                        .map(|p| p.t)
                        .collect();
                    let text = match (walk.update.token_band(), walk.response_ratio(row)) {
                        (_, Some(whole)) => format!(
                            "The token that moved most is t = {t}: ratio {}. {} clips no token on \
                             its own: it takes one ratio per response, {} for this one (the \
                             update's text says what a further epoch would do with it).",
                            format_ratio(r),
                            exp.member.name(),
                            format_ratio(whole.ratio)
                        ),
                        (range, None) => {
                            let (low_edge, high_edge) = range.unwrap_or(ClipRange::NONE).edges();
                            format!(
                                "The token that moved most is t = {t}: ratio {} (the band is {}). \
                                 {} of this response's tokens {} outside the band on the side \
                                 {} advantage pushes.",
                                format_ratio(r),
                                band(low_edge, high_edge),
                                clipped.len(),
                                agree(clipped.len(), "is", "are"),
                                agree(clipped.len(), "its", "their")
                            )
                        }
                    };
                    out.push(note("largest-move", text, vec![t], Some(r)));
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
                        "This prompt has {pads} {} of left padding (shorter than the \
                         batch's longest, {p}): no query attends to {}, so {} nothing.",
                        if pads == 1 { "position" } else { "positions" },
                        if pads == 1 { "it" } else { "them" },
                        if pads == 1 {
                            "it changes"
                        } else {
                            "they change"
                        }
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
