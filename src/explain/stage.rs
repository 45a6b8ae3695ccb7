//! The stages of one iteration as the page orders them, how many steps each has for a
//! response, and facts about a response the stages share.

use super::format::{count, num};
use crate::lab::setting_keys::label;
use crate::lab::walkthrough::Walkthrough;
use crate::ppo::family::KlPlacement;

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

/// What the Update stage says first when response `row` had no term in the update's loss
/// (DAPO's dynamic sampling left its group out, or every group); None when it had one.
pub fn left_out(walk: &Walkthrough, row: usize) -> Option<String> {
    let exp = &walk.experience;
    let name = exp.member.name();
    if !exp.updated() {
        return Some(format!(
            "No update ran: {name}'s dynamic sampling left every group out, as each group's \
             rewards were all equal. The policy is still the one that sampled the batch, so the \
             ratios below differ from 1 only by rounding, and there are no losses, entropy, \
             approx KL, clip fractions or gradient norm to show."
        ));
    }
    if exp.row_used(row) {
        return None;
    }
    let kept = exp.kept.as_ref().map_or(0, |k| k.rows.len());
    Some(format!(
        "Response {}'s group had equal rewards, so {name} left it out of the update: it had no \
         term in the loss, and its ratios below moved only through the weights it shares with \
         the {} the update kept.",
        row + 1,
        count(kept, "response", "responses")
    ))
}

/// Where the member that trained the batch put its KL to the reference, as a clause that follows
/// "its update does not use these token rewards:" (the Score stage's rewards are PPO's, shown for
/// comparison); None under PPO, whose KL is in those rewards.
pub fn kl_instead(walk: &Walkthrough) -> Option<String> {
    let beta = num(walk.family.beta);
    let setting = label("beta");
    Some(match walk.experience.member.kl_placement() {
        KlPlacement::TokenReward => return None,
        KlPlacement::Loss => format!(
            "its KL is a loss term, β · k3 per token, with its own β = {beta} (the “{setting}” \
             setting, not kl_coeff)"
        ),
        // The log-ratio itself, whatever estimator the Score stage's KL_t shows.
        KlPlacement::ResponseReward => format!(
            "β · Σ_t (log π_old − log π_ref), with its own β = {beta} (the “{setting}” setting, \
             not kl_coeff), comes off each response's score before its baseline"
        ),
        KlPlacement::Off => "it has no KL term at all".to_string(),
    })
}

/// What the Update stage's exercise check (exercises 1, 2, 3 and 5, the student's beside the
/// reference's) was computed on: every response of the batch, those dynamic sampling left out of
/// the update too, since it compares two functions on the same numbers.
pub fn exercise_check_inputs(walk: &Walkthrough) -> String {
    let exp = &walk.experience;
    format!(
        "Both computed on this batch as one mini-batch, through the policy after the update{}. \
         Exercise 5 uses your exercises 1-3, so a mistake there shows in its total too.",
        if exp.some_left_out() {
            format!(
                ", the responses {} left out of the update included (the check compares your \
                 code with the reference on the same numbers, not the update that ran)",
                exp.member.name()
            )
        } else {
            String::new()
        }
    )
}

/// The clip explorer's verdict on a token of response `row` when the update left the response
/// out (see [`left_out`]); None when the response was in the loss.
pub fn left_out_token(walk: &Walkthrough, row: usize) -> Option<String> {
    let exp = &walk.experience;
    (!exp.row_used(row)).then(|| {
        format!(
            "{}'s dynamic sampling left response {}'s group out of the update (its rewards were \
             all equal): this token had no term in the loss, so no gradient of its own, clipped \
             or not.",
            exp.member.name(),
            row + 1
        )
    })
}

/// What the page's pinned table follows of one response across iterations.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Followed {
    pub score: f32,
    /// The critic's value before the response's first token; `None` under a critic-free member,
    /// whose value head is never trained.
    pub start_value: Option<f32>,
    /// The mean, over its real tokens, of the advantages the update used (the member's own).
    pub mean_advantage: f32,
}

/// What the pinned table shows of response `row`.
pub fn followed(walk: &Walkthrough, row: usize) -> Followed {
    let exp = &walk.experience;
    let critic = exp.algorithm() == crate::ppo::Algorithm::Ppo;
    let used = if critic {
        &exp.advantages
    } else {
        &exp.group_advantages
    };
    let real = real_len(walk, row);
    let mean_advantage = if real == 0 {
        0.0
    } else {
        used[row][..real].iter().sum::<f32>() / real as f32
    };
    Followed {
        score: exp.scores[row].reward(),
        start_value: critic.then(|| exp.rollout.values[row][0]),
        mean_advantage,
    }
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
            // Opposite signs: an Â of exactly 0 (A_t at the batch's mean) has none to flip.
            a * white < 0.0
        })
        .collect()
}
