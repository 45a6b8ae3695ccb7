//! The mistakes students make about PPO, as questions the page answers on the batch on show.
//!
//! Each answer is written from the batch's own numbers (how many tokens, which sign, what mean)
//! and names the stage whose view shows it. `tests/explain.rs` recomputes every number from the
//! walkthrough. No UI here: the page's Overview stage draws the card.

use crate::explain::format::{agree, band, between, count, num, ratio_beside};
use crate::explain::stage::{StageKey, kl_instead, real_len, whitening_flips};
use crate::explore::{Band, ValueMove, clip_cases, value_case};
use crate::lab::walkthrough::Walkthrough;
use crate::ppo::family::Family;

/// One misconception, answered on a batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Misconception {
    /// Stable name, for tests and the page's test ids.
    pub key: &'static str,
    /// The question, as a student would ask it.
    pub question: &'static str,
    /// The answer, with this batch's numbers.
    pub answer: String,
    /// The stage whose view shows it on this batch.
    pub stage: StageKey,
    /// The batch's number the answer turns on, exact, for tests.
    pub value: f32,
}

/// Every real token of the batch, as `(row, t)`.
fn real_tokens(walk: &Walkthrough) -> impl Iterator<Item = (usize, usize)> + '_ {
    (0..walk.gae.len()).flat_map(move |b| (0..real_len(walk, b)).map(move |t| (b, t)))
}

/// What to try when no ratio left the band, or when some did; when no update ran, why.
fn push_harder_hint(walk: &Walkthrough, outside: usize) -> String {
    if !walk.experience.updated() {
        format!(
            "No update ran on this batch: {}'s dynamic sampling left every group out, so only \
             rounding moved the ratios, and pushing harder replays nothing.",
            walk.experience.member.name()
        )
    } else if outside == 0 {
        "This update was a gentle one: push harder in the Update stage (a larger learning rate, \
         more epochs) and ratios can go past the band."
            .to_string()
    } else {
        "Push harder in the Update stage to see ratios go further still.".to_string()
    }
}

/// The six misconceptions, answered on `walk`.
pub fn misconceptions(walk: &Walkthrough) -> Vec<Misconception> {
    let exp = &walk.experience;
    let total = real_tokens(walk).count();
    let tokens = count(total, "token", "tokens");
    let mut out = Vec::new();

    // 1. Advantage is not reward (the advantages the update used: PPO's GAE, or the member's).
    let used = exp.every_row().advantages;
    // Over the responses the update trained on (under dynamic sampling, the groups it kept).
    let trained = real_tokens(walk).filter(|&(b, _)| exp.row_used(b)).count();
    let opposite = real_tokens(walk)
        .filter(|&(b, t)| exp.row_used(b) && exp.rewards[b][t] * used[b][t] < 0.0)
        .count();
    let counted = if !exp.updated() {
        format!(
            "No update ran on this batch ({}'s dynamic sampling left every group out), so no \
             advantage was used.",
            exp.member.name()
        )
    } else if trained < total {
        format!(
            "On {opposite} of the {} the update trained on (the groups {} kept), r_t and the \
             advantage it used have opposite signs.",
            count(trained, "token", "tokens"),
            exp.member.name()
        )
    } else {
        format!(
            "On {opposite} of the batch's {tokens}, r_t and the advantage the update used have \
             opposite signs."
        )
    };
    let what_advantage = match exp.member {
        Family::Ppo if walk.whiten.is_some() => {
            "The advantage Â_t, the number the update uses, is \
             how much better the rest of the response went than the critic expected at that token, \
             measured against the batch (GAE, then whitening)."
                .to_string()
        }
        Family::Ppo => {
            "The advantage Â_t, the number the update uses, is how much better the rest \
             of the response went than the critic expected at that token (GAE; whitening is off, \
             so it is used as computed)."
                .to_string()
        }
        member => {
            format!(
                "{}'s update uses one advantage per response instead, carried by each of its \
                 tokens: {}.",
                member.name(),
                member.response_advantage(exp.group_scaled())
            )
        }
    };
    out.push(Misconception {
        key: "advantage-not-reward",
        question: "Is a token's advantage its reward?",
        answer: format!(
            "No. The reward r_t is what a token earned on its own: the score lands on the last \
             token, every other token gets only its KL penalty. {what_advantage} {counted}"
        ),
        stage: StageKey::Gae,
        value: opposite as f32,
    });

    // 2. The clip zeroes a gradient; it does not cap the ratio.
    let eps = walk.update.coeffs.clip_ratio;
    let clip_answer = match walk.update.token_band() {
        Some(range) => {
            let (lo, hi) = range.edges();
            let cases = clip_cases(&walk.policy_after, range);
            // One pass over the ratios after the update: how many lie outside the band, how many
            // of those are in responses the update left out under dynamic sampling (shared
            // weights alone moved them), and the ratio furthest from 1 (the last, on a tie).
            let (mut outside, mut left_out, mut furthest) = (0, 0, 1.0f32);
            for (b, p) in walk.policy_after.iter().enumerate() {
                for t in &p.tokens {
                    if (t.ratio - 1.0).abs() >= (furthest - 1.0).abs() {
                        furthest = t.ratio;
                    }
                    if Band::of(t.ratio, lo, hi) != Band::Inside {
                        outside += 1;
                        left_out += usize::from(!exp.row_used(b));
                    }
                }
            }
            let left_out = if exp.updated() && left_out > 0 {
                format!(
                    " {left_out} of the {outside} {} in responses {} left out of the update: \
                     {} no term in the loss, and only the weights {} with the rest moved {}.",
                    agree(left_out, "is", "are"),
                    exp.member.name(),
                    agree(left_out, "it had", "they had"),
                    agree(left_out, "it shares", "they share"),
                    agree(left_out, "it", "them"),
                )
            } else {
                String::new()
            };
            let answer = format!(
                "No. Once a token's ratio has left the band on the side its advantage pushes, the \
                 clip gives that token's own term no gradient; nothing stops the ratio itself, \
                 since shared weights and other tokens still move it. After this update {} of the \
                 batch's {tokens} {} a ratio outside {}{} (the furthest at ρ = {}), and {} of \
                 those {} past the band on {} advantage's side.{left_out} {}",
                outside,
                agree(outside, "has", "have"),
                band(lo, hi),
                if range.is_symmetric() {
                    String::new()
                } else {
                    format!(", {}'s band", exp.member.name())
                },
                ratio_beside(furthest, lo, hi),
                cases.clipped,
                agree(cases.clipped, "is", "are"),
                agree(cases.clipped, "its", "their"),
                push_harder_hint(walk, outside)
            );
            (answer, outside)
        }
        None => {
            let wholes: Vec<_> = (0..walk.policy_after.len())
                .filter_map(|b| walk.response_ratio(b))
                .collect();
            let outside = wholes
                .iter()
                .filter(|r| Band::of(r.ratio, 1.0 - eps, 1.0 + eps) != Band::Inside)
                .count();
            let furthest = wholes
                .iter()
                .map(|r| r.ratio)
                .max_by(|a, b| (a - 1.0).abs().total_cmp(&(b - 1.0).abs()))
                .unwrap_or(1.0);
            let name = exp.member.name();
            let (clip, whose) = if exp.member == Family::Reinforce {
                (
                    format!(
                        "{name} has no clip at all: every response's term with an advantage pushes \
                         its ratio on, which is why it takes one epoch per batch."
                    ),
                    " (PPO's band, for comparison)",
                )
            } else {
                (
                    format!(
                        "{name}'s clip gives {} of them no gradient in a further epoch, and nothing \
                         stops their ratios either.",
                        wholes.iter().filter(|r| r.clipped).count()
                    ),
                    "",
                )
            };
            let answer = format!(
                "No. {name} clips no token on its own: it takes one ratio per response, \
                 ρ = exp Σ_t (log π_new − log π_old). After this update {} of the batch's {} \
                 {} a ratio outside {}{whose} (the furthest at ρ = {}). {clip} {}",
                outside,
                count(wholes.len(), "response", "responses"),
                agree(outside, "has", "have"),
                band(1.0 - eps, 1.0 + eps),
                ratio_beside(furthest, 1.0 - eps, 1.0 + eps),
                push_harder_hint(walk, outside)
            );
            (answer, outside)
        }
    };
    out.push(Misconception {
        key: "clip-not-cap",
        question: "Does the clip keep every ratio inside [1 − ε, 1 + ε]?",
        answer: clip_answer.0,
        stage: StageKey::Update,
        value: clip_answer.1 as f32,
    });

    // 3. Whitening can flip a sign.
    let (answer, flipped) = match &walk.whiten {
        Some(w) => {
            let flipped: usize = (0..walk.gae.len())
                .map(|b| whitening_flips(walk, b).len())
                .sum();
            // What a flipped token went through, on this batch's side of 0; whitened advantages
            // push tokens only in PPO's update.
            let under = if exp.member == Family::Ppo {
                ""
            } else {
                "under PPO, "
            };
            let (how, why) = if w.mean > 0.0 {
                (
                    format!("every {} turns negative", between("0", "A_t", &num(w.mean))),
                    format!(
                        ": {under}a token can do better than the critic expected and still be \
                         pushed down because the batch did better still"
                    ),
                )
            } else if w.mean < 0.0 {
                (
                    format!("every {} turns positive", between(&num(w.mean), "A_t", "0")),
                    format!(
                        ": {under}a token can do worse than the critic expected and still be \
                         pushed up because the batch did worse still"
                    ),
                )
            } else {
                (
                    "with a mean of exactly 0 here no advantage changes sign".to_string(),
                    String::new(),
                )
            };
            let not_used = if exp.member == Family::Ppo {
                String::new()
            } else {
                format!(
                    " {}'s update did not use these advantages: it gives each response one \
                     advantage, computed from the scores.",
                    exp.member.name()
                )
            };
            (
                format!(
                    "No. Whitening subtracts the batch's mean advantage ({}) before dividing by \
                     the std, so {how}. In this batch {} of the {tokens} changed sign{why}.{not_used} \
                     The GAE stage's notes list them, response by response.",
                    num(w.mean),
                    flipped
                ),
                flipped,
            )
        }
        None => (
            "Whitening is off in this iteration, so no sign changed. With it on, subtracting the \
             batch's mean advantage turns every advantage between 0 and the mean to the other \
             sign; try it in the GAE stage's What if? panel."
                .to_string(),
            0,
        ),
    };
    out.push(Misconception {
        key: "whitening-flips",
        question: "Does whitening keep each advantage's sign?",
        answer,
        stage: StageKey::Gae,
        value: flipped as f32,
    });

    // 4. PPO's KL is in the reward, GRPO's in the loss.
    let (kl_sum, kl_n) = real_tokens(walk).fold((0f64, 0usize), |(s, n), (b, t)| {
        (s + exp.kl[b][t] as f64, n + 1)
    });
    let kl_mean = if kl_n == 0 {
        0.0
    } else {
        (kl_sum / kl_n as f64) as f32
    };
    let trained = match kl_instead(walk) {
        None => "This iteration trained with PPO: its KL was in the rewards.".to_string(),
        Some(went) => format!(
            "This iteration trained with {}: {went}; the token rewards shown are PPO's, and its \
             update did not use them.",
            exp.member.name()
        ),
    };
    out.push(Misconception {
        key: "kl-reward-or-loss",
        question: "Is the KL to the reference part of the loss?",
        answer: format!(
            "In PPO, no: it is part of the reward. Each token's r_t includes −β·KL_t (β = kl_coeff = {}; \
             the mean KL_t over this batch is {}, so −β·KL_t adds {} to a token's r_t on \
             average), and it reaches the update only through GAE: through the advantages the policy \
             loss weighs, and through the returns R_t = A_t + V_t the critic is fitted to. GRPO \
             leaves the rewards alone and adds β·k3 to the loss instead, with a β of its own. {trained} The Score stage shows r_t token by token; the GRPO panel \
             in the GAE stage shows the other side.",
            num(exp.kl_coeff),
            num(kl_mean),
            num(-exp.kl_coeff * kl_mean)
        ),
        stage: StageKey::Score,
        value: kl_mean,
    });

    // 5. approx KL is not the KL to the reference.
    let approx = walk.stats.approx_kl;
    out.push(Misconception {
        key: "approx-kl",
        question: "Is the update's approx KL the KL to the reference?",
        answer: format!(
            "No. approx KL{} is ½·mean((log π_new − log π_old)²) over the update's \
             steps: how far this update moved the policy from the one that sampled the batch, \
             a gauge of the step's size that starts from 0 at every update. The KL to the \
             frozen reference, mean {} per token in this batch, is what the reward charges, and \
             it builds up over many iterations. The Update stage shows the first, the Score \
             stage the second.",
            if exp.updated() {
                format!(", {} here,", num(approx))
            } else {
                format!(
                    " (none here: {}'s dynamic sampling left every group out, so no update ran)",
                    exp.member.name()
                )
            },
            num(kl_mean)
        ),
        stage: StageKey::Update,
        value: approx,
    });

    // 6. The value clip: zero gradient after moving toward R, not away. Only PPO has a value
    // loss: under the other members the batch has no value clip to count.
    let c = walk.update.coeffs.clip_range_value;
    let critic = walk.update.grpo.is_none();
    let (zeroed, this_batch) = if critic {
        let (mut zeroed, mut pulled_back) = (0usize, 0usize);
        for v in walk.value_after.iter().flat_map(|v| &v.tokens) {
            let case = value_case(v.value_old, v.value_new, v.ret, c);
            if case.clip_zeroes {
                zeroed += 1;
            } else if case.band != Band::Inside && case.moved != ValueMove::Still {
                pulled_back += 1;
            }
        }
        let trains = if walk.update.coeffs.vf_coef > 0.0 {
            format!(
                "where the error still trains {}",
                agree(pulled_back, "it", "them")
            )
        } else {
            format!(
                "where the error would train {}, but vf_coef = 0 gives the value loss no \
                 weight, so this update trained the critic on no token",
                agree(pulled_back, "it", "them")
            )
        };
        let text = format!(
            "After this update {} {} where the clip zeroes the gradient, and {} left the band \
             away from R or past it, {trains}. The clip explorer in the Update stage draws one \
             token's V_old, V_new and R.",
            count(zeroed, "token", "tokens"),
            agree(zeroed, "sits", "sit"),
            count(pulled_back, "token", "tokens"),
        );
        (zeroed, text)
    } else {
        let text = format!(
            "This iteration trained with {}, which has no critic and so no value loss: no value \
             clip ran. Train with PPO to count the batch's tokens.",
            exp.member.name()
        );
        (0, text)
    };
    out.push(Misconception {
        key: "value-clip",
        question: "Does the value clip stop the critic from moving away from the return?",
        answer: format!(
            "No, the other way round. The clipped error wins, and a token's value gradient is 0, \
             only when V_new has left the band V_old ± {} after moving toward the return R (and \
             has not passed R by as much as the band's edge is from R). Outside the band on the \
             side away from R the unclipped error is the larger and pulls V_new back. {this_batch}",
            num(c),
        ),
        stage: StageKey::Update,
        value: zeroed as f32,
    });
    out
}
