//! The words of the page's guide: the PPO loop's nodes and the tensors on its arrows with this
//! batch's shapes, the objective in one sentence, the tour, and the glossary.

use super::format::{band, count};
use super::stage::StageKey;
use crate::lab::walkthrough::Walkthrough;
use crate::ppo::family::{Baseline, Family};

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
    let updated_rows = walk.experience.kept.as_ref().map_or(b, |k| k.rows.len());
    [
        format!("prompts [{b} × {p}]"),
        format!("ids [{b} × {}], log π_old [{b} × {r}]", p + r),
        format!("scores [{b}], log π_ref [{b} × {r}]"),
        // The rewards do not use the values: they are carried on to GAE.
        format!("V(s_t) [{b} × {r}], for GAE"),
        format!("r_t [{b} × {r}]"),
        format!("Â_t, R_t [{b} × {r}]"),
        if updated_rows == 0 {
            "θ unchanged (no group kept)".to_string()
        } else {
            format!(
                "new θ ({} × {})",
                count(walk.update.epochs, "epoch", "epochs"),
                count(
                    // The rows the update ran on: under dynamic sampling, the groups that stayed.
                    updated_rows.div_ceil(walk.update.mini_batch_size.max(1)),
                    "mini-batch",
                    "mini-batches"
                )
            )
        },
    ]
}

/// What one PPO iteration optimises, in one sentence.
pub const OBJECTIVE: &str = "PPO raises the probability of tokens with a positive advantage Â \
    and lowers those with a negative one, a little per batch. Â is the advantage A (how much better \
    the token turned out than the critic expected) whitened over the batch (A itself with whitening \
    off), so with whitening Â > 0 means A above the batch's mean. Once a token's probability ratio has left [1 − ε, 1 + ε] on the side its \
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
        "The answer is scored once, at its end, and every token's reward gets −β·KL_t, its estimated drift from the frozen reference model (one token's can be a bonus; on average it is a penalty).",
    ),
    (
        StageKey::Values,
        "The critic guesses, at every token, the return still to come; those guesses are the baseline that advantages are measured against.",
    ),
    (
        StageKey::Gae,
        "GAE sweeps from the last token back, turning rewards and values into one advantage per token; whitening then shifts them to mean 0 and scales them to std 1 over the batch, so a token below the batch's mean turns negative.",
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

/// What tour stop `stage` adds when the batch on show trained with a critic-free member: the
/// tour's sentences say what PPO does (the stages show PPO's numbers beside the member's), so
/// each stop says what the member does instead. None under PPO, and where PPO's sentence holds
/// for every member (the causal mask).
pub fn tour_member_note(walk: &Walkthrough, stage: StageKey) -> Option<String> {
    let member = walk.experience.member;
    if member == Family::Ppo {
        return None;
    }
    let name = member.name();
    let baseline = match member.baseline() {
        Baseline::GroupMean => "the mean score of its group",
        Baseline::LeaveOneOut => "the mean score of the other responses to its prompt",
        Baseline::BatchMean => "the batch's mean score",
        Baseline::Critic => return None,
    };
    let note = match stage {
        StageKey::Overview => format!(
            "This batch trained with {name}: each stop says what PPO does, then what {name} does instead."
        ),
        StageKey::Rollout => format!(
            "{name} has no critic: the values are the value head's, which {name} does not train, kept to compare with PPO."
        ),
        StageKey::Score => format!(
            "{name}'s update does not use these token rewards: {}.",
            super::stage::kl_instead(walk)?
        ),
        StageKey::Values => format!(
            "{name} has no critic: each response's score is measured against {baseline} instead."
        ),
        StageKey::Gae => format!(
            "{name} does not use GAE: every token of a response carries that response's one advantage, {}.",
            member.response_advantage(walk.experience.group_scaled())
        ),
        StageKey::Update => {
            let clip = match (walk.update.token_band(), walk.update.grpo) {
                (Some(range), _) => {
                    let (low, high) = range.edges();
                    format!("{name} clips each token's ratio to {}.", band(low, high))
                }
                (None, Some(g)) if g.clip.high.is_finite() => {
                    let (low, high) = g.clip.edges();
                    format!(
                        "{name} has one ratio per response, the product of its tokens' ratios, and clips that to {}.",
                        band(low, high)
                    )
                }
                _ => format!(
                    "{name} has no clip: each response's term pushes however far its ratio has moved, so it takes one epoch per batch."
                ),
            };
            // Under dynamic sampling, the groups this update left out.
            let left_out = match &walk.experience.kept {
                Some(k) if k.rows.is_empty() => {
                    " Its dynamic sampling left every group out (each group's rewards were all equal), so no update ran."
                        .to_string()
                }
                Some(k) if k.dropped() > 0 => format!(
                    " Its dynamic sampling left {} of the batch's {} groups out of this update (their rewards were all equal).",
                    k.dropped(),
                    k.kept.len()
                ),
                _ => String::new(),
            };
            format!("{clip}{left_out}")
        }
        StageKey::Mask => return None,
    };
    Some(note)
}

/// The words a beginner meets, and what they mean here.
pub const GLOSSARY: &[(&str, &str)] = &[
    (
        "advantage",
        "How much better a token turned out than the critic expected (A_t). The update uses Â_t, A_t whitened over the batch (A_t itself with whitening off): Â_t > 0 pushes its probability up, Â_t < 0 down; with whitening, Â_t > 0 means A_t above the batch's mean. Under GRPO and the other members without a critic, Â_t is the response's one advantage, the same for each of its tokens.",
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
        "ρ_t = π_new(token) / π_old(token): how much more (or less) likely the token is after the update than when it was sampled. RLOO and REINFORCE take one ratio per response, the product of its tokens' ratios.",
    ),
    (
        "clip",
        "PPO keeps the ratio's benefit inside [1 − ε, 1 + ε]: past the band on the side the advantage pushes, that token's own term has gradient 0 (the ratio itself can still move). GRPO and Dr. GRPO clip the same way, DAPO to [1 − ε, 1.28], RLOO the response's one ratio; REINFORCE has no clip.",
    ),
    (
        "KL",
        "How far the policy has drifted from the frozen reference; here estimated per token from the two log-probabilities and charged as a penalty in PPO's token rewards (GRPO and Dr. GRPO add β·k3 per token to the loss instead, RLOO and REINFORCE take β·Σ_t (log π_old − log π_ref), the summed log-ratio whatever the estimator, off the response's score, and DAPO has none).",
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
