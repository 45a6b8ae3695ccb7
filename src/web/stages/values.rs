//! Stage 3, the values: the critic's estimate at every response token.

use leptos::prelude::*;

use super::common::{columns, why};
use crate::explain::format::num;
use crate::explain::notes::notes;
use crate::explain::stage::real_len;
use crate::lab::walkthrough::Walkthrough;
use crate::web::guide::{notes_view, term};
use crate::web::select::{exact, response_token, show_token, token_strip};
use crate::web::state::{AppState, Stage};

pub(super) fn values(
    state: AppState,
    walk: &Walkthrough,
    row: usize,
    iteration: usize,
) -> impl IntoView {
    let ro = &walk.experience.rollout;
    let real = real_len(walk, row);
    let max = (0..real)
        .map(|t| ro.values[row][t].abs())
        .fold(1e-6f32, f32::max);
    let bars = (0..real)
        .map(|t| {
            let v = ro.values[row][t];
            let width = 50.0 * v.abs() / max;
            let bar_class = if v >= 0.0 { "vbar pos" } else { "vbar neg" };
            let style = if v >= 0.0 {
                format!("left:50%;width:{width:.1}%")
            } else {
                format!("left:{:.1}%;width:{width:.1}%", 50.0 - width)
            };
            view! {
                <div
                    class="vbar-row"
                    class:sel=move || state.shown_token() == Some(t)
                    data-testid=format!("vbar-row-{t}")
                    on:click=move |_| state.pick(Some(t))
                    on:mouseenter=move |_| state.hover.set(Some(t))
                    on:mouseleave=move |_| state.hover.set(None)
                >
                    <span class="num">{t}</span>
                    <span class="tokcell">{show_token(&response_token(walk, row, t))}</span>
                    <span class="vbar-track"><span class=bar_class style=style></span></span>
                    <span class="num" data-testid=format!("vbar-{t}") data-v=exact(v)>{num(v)}</span>
                </div>
            }
        })
        .collect_view();
    let main = view! {
        {token_strip(state, walk, row, real, None)}
        <div class="vbars stage-data" data-testid="value-bars">{bars}</div>
    }
    .into_any();
    let side = view! {
        {notes_view(state, notes(walk, Stage::Values, row, iteration))}
        {why("Why a value for every token?", view! {
            "The score arrives only at the end, but the policy needs to know which of its choices helped. "
            "The critic estimates the return from every state, so each token can be judged against what "
            "was expected just before it: that comparison is the " {term("advantage", "advantage")} ". "
            "The value head is one linear layer on the same hidden states as the policy."
            {(walk.experience.algorithm() != crate::ppo::Algorithm::Ppo).then(|| format!(
                " That is PPO's way: {} has no critic. It neither trains this head nor uses its values, \
                 and compares each response's score with other scores instead.",
                walk.experience.member.name()
            ))}
        }.into_any())}
    }
    .into_any();
    columns(main, side)
}
