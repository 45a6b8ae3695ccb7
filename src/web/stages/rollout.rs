//! Stage 1, the rollout: the response sampled token by token, each token's probability and
//! the candidates it beat, and what the batch keeps for later.

use std::sync::Arc;

use leptos::prelude::*;

use super::common::{candidate_text, columns, mathml, prompt_view, why};
use crate::explain::format::num;
use crate::explain::math;
use crate::explain::notes::notes;
use crate::explain::stage::real_len;
use crate::lab::walkthrough::Walkthrough;
use crate::web::guide::{notes_view, term};
use crate::web::select::{cell, exact, response_token, show_token, token_row, token_strip};
use crate::web::state::{AppState, Stage};

pub(super) fn rollout(
    state: AppState,
    walk: &Arc<Walkthrough>,
    row: usize,
    cursor: usize,
    iteration: usize,
) -> impl IntoView {
    let ro = &walk.experience.rollout;
    let real = real_len(walk, row);
    let t = cursor.min(real.saturating_sub(1));
    let history = (0..=t)
        .map(|i| {
            token_row(
                state,
                "ro-row",
                i,
                String::new(),
                i == t,
                view! {
                    <td class="num">{i}</td>
                    <td class="tokcell">{show_token(&response_token(walk, row, i))}</td>
                    {cell(state, format!("logp-{i}"), ro.logprobs[row][i])}
                    {cell(state, format!("value-{i}"), ro.values[row][i])}
                },
            )
        })
        .collect_view();
    // The candidates of the picked token once it is sampled, else of the current step.
    let candidates = {
        let walk = walk.clone();
        move || {
            let picked = state.shown_token().filter(|&s| s <= t);
            let s = picked.unwrap_or(t);
            let ro = &walk.experience.rollout;
            let sampled = ro.ids[row][ro.prompt_len + s];
            let rows = ro.top[row][s]
                .iter()
                .enumerate()
                .map(|(k, (id, p))| {
                    view! {
                        <tr class:sampled=*id == sampled data-testid=format!("cand-{k}")>
                            <td class="tokcell">{candidate_text(&walk, *id)}</td>
                            <td class="num" data-v=exact(*p)>{format!("{:.1}%", p * 100.0)}</td>
                            <td class="barcell"><span class="bar" style=format!("width:{:.1}%", p * 100.0)></span></td>
                            <td class="nowrap">{if *id == sampled { "← sampled" } else { "" }}</td>
                        </tr>
                    }
                })
                .collect_view();
            view! {
                <div class="candidates" class:sel=picked.is_some() data-testid="candidates-box" data-t=s>
                    <h3>{format!("step t = {s}: the 5 most likely next tokens")}</h3>
                    <table class="numbers" data-testid="candidates">
                        <thead><tr><th>"token"</th><th>"probability"</th><th></th><th></th></tr></thead>
                        <tbody>{rows}</tbody>
                    </table>
                    <p class="note">
                        "sampled " <code>{show_token(&response_token(&walk, row, s))}</code>
                        " with log-probability " <strong data-testid="current-logp">{num(ro.logprobs[row][s])}</strong>
                        "; value of the state before it " <strong data-testid="current-value">{num(ro.values[row][s])}</strong>
                    </p>
                </div>
            }
        }
    };
    let main = view! {
        {token_strip(state, walk, row, real, Some(t))}
        <div class="split stage-data">
            {candidates}
            <div>
                <h3>"kept for PPO"</h3>
                <table class="numbers" data-testid="rollout-table">
                    <thead><tr><th>"t"</th><th>"token"</th><th>"log π_old"</th><th>"V(s_t)"</th></tr></thead>
                    <tbody>{history}</tbody>
                </table>
            </div>
        </div>
        {prompt_view(walk, row)}
    }
    .into_any();
    let side = view! {
        {mathml(math::sampling(walk.update.temperature))}
        {notes_view(state, notes(walk, Stage::Rollout, row, iteration))}
        {why("What is kept, and why", view! {
            "The policy writes its answer one token at a time: it turns the last position's logits "
            "into probabilities and samples. PPO keeps the sampled token's log-probability "
            <code>"log π_old"</code> " and, from the " {term("value", "value")} " head on the same hidden "
            "state, " <code>"V(s_t)"</code> ": the critic's guess of the reward to come, made before the "
            "token is chosen."
        }.into_any())}
    }
    .into_any();
    columns(main, side)
}
