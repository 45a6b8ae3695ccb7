//! Stage 6, the causal mask: one teacher-forced pass gives back the rollout's logprobs, and
//! the attention maps show what each position could see.

use std::sync::Arc;

use leptos::prelude::*;

use super::common::{columns, why};
use crate::explain::notes::notes;
use crate::explain::stage::real_len;
use crate::lab::walkthrough::Walkthrough;
use crate::web::attention::attention_view;
use crate::web::guide::notes_view;
use crate::web::select::{exact, show_token, token_strip};
use crate::web::state::{AppState, Stage};

pub(super) fn mask(
    state: AppState,
    walk: Arc<Walkthrough>,
    row: usize,
    iteration: usize,
) -> impl IntoView {
    let p = walk.experience.rollout.prompt_len;
    let diff = walk.teacher_forced_max_diff;
    let real = real_len(&walk, row);
    let r_len = walk.experience.rollout.response_len();
    // The first response tokens (at most four), then the rows around the response's end: its
    // last token and the padding after it, or its last token alone when it is the batch's
    // longest (it may have run to max new tokens).
    let mut shown: Vec<usize> = (0..r_len.min(4)).collect();
    for t in [real.saturating_sub(1), real] {
        if t < r_len && !shown.contains(&t) {
            shown.push(t);
        }
    }
    let align = shown
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            let pos = p - 1 + t;
            // A token is set as tokens are (white space kept, so not wrapped); the padding's
            // description wraps, so the table keeps to its column beside the side notes.
            let (target, target_class) = if t < real {
                (
                    format!(
                        "response token {t}: {}",
                        show_token(&walk.tokens[row][p + t])
                    ),
                    "tokcell",
                )
            } else {
                (
                    format!("padding after the end of the response (position {})", p + t),
                    "padding-end",
                )
            };
            let skipped = (i > 0 && shown[i - 1] + 1 < t).then(|| {
                let (from, to) = (p + shown[i - 1], pos - 1);
                let what = if from == to {
                    format!("position {from} not shown")
                } else {
                    format!("positions {from} to {to} not shown")
                };
                view! {
                    <tr class="gap" data-testid="align-gap">
                        <td class="num">"⋮"</td>
                        <td colspan="3">{what}</td>
                    </tr>
                }
            });
            view! {
                {skipped}
                <tr data-testid=format!("align-{t}") class:p-minus-1={t == 0}>
                    <td class="num">{pos}</td>
                    <td class="tokcell">{show_token(&walk.tokens[row][pos])}</td>
                    <td class="nowrap">"→ predicts"</td>
                    <td class=target_class>{target}</td>
                </tr>
            }
        })
        .collect_view();
    let main = view! {
        {token_strip(state, &walk, row, real, None)}
        {attention_view(state, walk.clone(), row)}
        <p class="explain">
            "Why the " <code>"prompt_len − 1"</code> " slice? The logits at position i predict the token at "
            "position i + 1. Response token t sits at position " <code>"P + t"</code>
            ", so it is scored by the logits at " <code>"P − 1 + t"</code> {format!(" (P = {p} here):")}
        </p>
        <table class="numbers" id="alignment" data-testid="alignment" data-response-len=r_len data-prompt-len=p>{align}</table>
        <p class="check" data-testid="tf-check" data-state=if diff < 1e-4 { "passed" } else { "failed" }>
            {if diff < 1e-4 {
                "Live check: one teacher-forced pass over all rollouts reproduces the log-probabilities \
                 recorded token by token (to 1e-4). max |difference| = "
            } else {
                "Live check failed: one teacher-forced pass over all rollouts does not reproduce the \
                 log-probabilities recorded token by token (to 1e-4). max |difference| = "
            }}
            <strong data-testid="tf-max-diff" data-v=exact(diff)>{format!("{diff:.2e}").replace('-', "−")}</strong>
        </p>
    }
    .into_any();
    let side = view! {
        {notes_view(state, notes(&walk, Stage::Mask, row, iteration))}
        {why("Why one pass is enough", view! {
            "During the update PPO needs the new log-probability of every response token, and it gets "
            "them all from one teacher-forced pass over prompt + response. The causal mask makes that "
            "exact: position i attends only to positions ≤ i (the grey triangle is masked; padding, "
            "before the prompt or after the response ended, is hatched), so the hidden state at position i is the state the rollout was in there. "
            "The picked token's row (what it attends to) and column (who attends to it) are outlined "
            "on the small maps."
        }.into_any())}
    }
    .into_any();
    columns(main, side).into_any()
}
