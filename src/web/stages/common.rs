//! What every stage's view is made of: number cells (plain, and marked where the student's code
//! and the reference differ), MathML, the two columns with their "why" paragraphs, the prompt and
//! candidate texts, and the score's label.

use leptos::prelude::*;

use crate::explain::format::num;
use crate::lab::walkthrough::Walkthrough;
use crate::model::chat::last_user_message;
use crate::reward::GsmScore;
use crate::web::select::{cell, exact, show_token};
use crate::web::state::AppState;

/// A number cell that nothing else refers to: rounded, exact in `data-v`.
pub(super) fn plain_cell(testid: String, x: f32) -> impl IntoView {
    view! { <td class="num" data-testid=testid data-v=exact(x)>{num(x)}</td> }
}

/// MathML made by [`crate::explain::math`] (numbers and fixed symbols only).
pub(in crate::web) fn mathml(markup: String) -> impl IntoView {
    view! { <div class="math" inner_html=markup></div> }
}

/// A number the student's code and the reference disagree on (exercises on): `x` as the table
/// shows it, marked, with the other side's value under it. `other` is `("yours", y)` where the
/// table shows the reference's number and `("reference", y)` where it shows what ran.
pub(super) fn compared_cell(
    state: AppState,
    testid: String,
    x: f32,
    other: Option<(&'static str, f32)>,
) -> AnyView {
    match other {
        None => cell(state, testid, x).into_any(),
        Some((side, y)) => {
            let title = format!(
                "differs from the {}: {side} {}",
                if side == "yours" {
                    "reference"
                } else {
                    "student's code"
                },
                exact(y)
            );
            view! {
                <td class="num differs" data-testid=testid data-v=exact(x) data-other=exact(y) title=title>
                    <span class="mark" aria-hidden="true">"≠ "</span>{num(x)}
                    <span class="other">{format!("{side} {}", num(y))}</span>
                </td>
            }
            .into_any()
        }
    }
}

/// The rule's verdict on a response as one line (the row picker's titles), with its kind.
pub(super) fn score_label(score: &GsmScore) -> (&'static str, String) {
    let (kind, verdict, detail) = verdict(score);
    let label = match detail {
        Some(detail) => format!("{verdict}: {detail}"),
        None => verdict.to_string(),
    };
    (kind, label)
}

/// The rule's verdict on a response in parts: its kind (for the colour), the verdict in a few
/// words (a "wrong number" is in the right format: the Score stage's "why" says what each earns),
/// and the answer it read, with the expected one where they differ.
pub(super) fn verdict(score: &GsmScore) -> (&'static str, &'static str, Option<String>) {
    match score {
        GsmScore::Correct { answer } => ("correct", "correct", Some(format!("#### {answer}"))),
        GsmScore::WrongNumber { answer, expected } => (
            "format",
            "wrong number",
            Some(format!("#### {answer} (expected {expected})")),
        ),
        GsmScore::NoAnswer => ("wrong", "no #### answer", None),
    }
}

/// The stage's two columns: the data, and beside it what explains it.
pub(super) fn columns(main: AnyView, side: AnyView) -> impl IntoView {
    view! {
        <div class="stage-body">
            <div class="stage-main">{main}</div>
            <aside class="stage-side" data-testid="stage-side">{side}</aside>
        </div>
    }
}

/// A "why" paragraph at the foot of the side column.
pub(super) fn why(question: &'static str, body: AnyView) -> impl IntoView {
    view! {
        <details class="why" open>
            <summary>{question}</summary>
            <div class="explain">{body}</div>
        </details>
    }
}

pub(in crate::web) fn prompt_text(walk: &Walkthrough, row: usize) -> String {
    let p = walk.experience.rollout.prompt_len;
    walk.tokens[row][..p]
        .iter()
        .zip(&walk.experience.rollout.attention_mask[row][..p])
        .filter(|(_, m)| **m == 1)
        .map(|(t, _)| t.as_str())
        .collect()
}

/// The prompt, folded: the question (the user message's first line) in the summary, the whole
/// chat template inside. A prompt without the template shows its last line.
pub(super) fn prompt_view(walk: &Walkthrough, row: usize) -> impl IntoView {
    let prompt = prompt_text(walk, row);
    let written = |l: &&str| !l.trim().is_empty();
    // The folded prompt shows the question: the user's last message, else the last line.
    let question = match last_user_message(&prompt) {
        Some(message) => message.lines().find(written),
        None => prompt.lines().rev().find(written),
    }
    .unwrap_or_default()
    .trim()
    .to_string();
    view! {
        <details class="prompt" data-testid="prompt">
            <summary><span class="label">"prompt"</span>{question}</summary>
            <pre>{prompt}</pre>
        </details>
    }
}

pub(super) fn candidate_text(walk: &Walkthrough, id: u32) -> String {
    walk.texts
        .get(&id)
        .map(|t| show_token(t))
        .unwrap_or_else(|| format!("#{id}"))
}
