//! Stage 4, GAE: the reverse sweep with this step's numbers in the formulas, whitening, and the
//! batch's inputs to copy into `ppo-lens gae`.

use std::sync::Arc;

use leptos::prelude::*;

use super::common::{columns, compared_cell, mathml, why};
use crate::explain::format::{between, num};
use crate::explain::math;
use crate::explain::notes::notes;
use crate::explain::provenance::Quantity;
use crate::explore::gae_input_json;
use crate::lab::walkthrough::Walkthrough;
use crate::ppo::Algorithm;
use crate::web::classroom::what_if_panel;
use crate::web::family::family_panel;
use crate::web::grpo::grpo_panel;
use crate::web::guide::{notes_view, provenance_view, term};
use crate::web::select::{
    cell, exact, explain_cell, response_token, show_token, token_row, token_strip,
};
use crate::web::state::{AppState, Stage};

pub(super) fn gae(
    state: AppState,
    walk: &Arc<Walkthrough>,
    row: usize,
    cursor: usize,
    iteration: usize,
) -> impl IntoView {
    let trace = &walk.gae[row];
    let params = trace.params;
    let real = trace.steps.len();
    let whitened_shown = cursor >= real;
    // Steps are in sweep order (last token first): the first `cursor + 1` are done.
    let done = (cursor + 1).min(real);
    let first_done_t = if done == 0 {
        real
    } else {
        trace.steps[done - 1].t
    };
    let current = trace.steps.get(cursor.min(real.saturating_sub(1))).cloned();
    let offset = row * walk.experience.rollout.response_len();
    let whiten = walk.whiten.clone();
    let compared = walk.exercises.as_ref().and_then(|c| c.gae.as_ref());
    let yours = |column: &str, t: usize| {
        compared
            .and_then(|c| c.differs_at(column, row, t))
            .map(|y| ("yours", y))
    };
    let rows = (0..real)
        .map(|t| {
            let filled = t >= first_done_t;
            let is_current = current.as_ref().is_some_and(|s| s.t == t) && !whitened_shown;
            let class = match (is_current, filled) {
                (true, _) => "current",
                (false, false) => "pending",
                _ => "",
            };
            let explainable = |name: &'static str, x: f32, q: Quantity| match yours(name, t) {
                None => explain_cell(state, format!("gae-{name}-{t}"), num(x), x, t, q).into_any(),
                other => compared_cell(state, format!("gae-{name}-{t}"), x, other),
            };
            token_row(
                state,
                "gae-row",
                t,
                class.into(),
                is_current || (whitened_shown && t == 0),
                view! {
                    <td class="num">{t}</td>
                    <td class="tokcell">{show_token(&response_token(walk, row, t))}</td>
                    {cell(state, format!("gae-reward-{t}"), walk.experience.rewards[row][t])}
                    {cell(state, format!("gae-value-{t}"), walk.experience.rollout.values[row][t])}
                    {if filled {
                        view! {
                            {compared_cell(state, format!("gae-delta-{t}"), trace.deltas[t], yours("delta", t))}
                            {explainable("adv", trace.advantages[t], Quantity::Advantage)}
                            {explainable("ret", trace.returns[t], Quantity::Return)}
                        }.into_any()
                    } else {
                        view! { <td class="num">"·"</td><td class="num">"·"</td><td class="num">"·"</td> }.into_any()
                    }}
                    {match (&whiten, whitened_shown) {
                        (Some(w), true) => compared_cell(state, format!("gae-white-{t}"), w.whitened[offset + t], yours("white", t)),
                        _ => view! { <td class="num">"·"</td> }.into_any(),
                    }}
                },
            )
        })
        .collect_view();
    // Under a critic-free member these are PPO's advantages, shown for comparison.
    let member = walk.experience.member;
    let not_used = (walk.experience.algorithm() != Algorithm::Ppo).then(|| {
        format!(
            "{}'s update does not use these advantages: it takes each response's advantage from \
             the scores (the panels below).",
            member.name()
        )
    });
    let formula = match (&current, whitened_shown, &walk.whiten) {
        (_, true, Some(w)) => view! {
            <div class="formula" data-testid="gae-formula">
                <div>{format!("whitening over the batch's {} real tokens (mean {}, std {}, unbiased):", w.count, num(w.mean), num(w.std))}</div>
                {mathml(math::whiten(w.mean, w.std))}
                {not_used.clone().map(|s| view! { <p class="note" data-testid="gae-not-used">{s}</p> })}
            </div>
        }
        .into_any(),
        (_, true, None) => view! {
            <div class="formula" data-testid="gae-formula">
                {match not_used.clone() {
                    Some(s) => view! { <p class="note" data-testid="gae-not-used">{s}</p> }.into_any(),
                    None => "whitening is off: the update uses A_t as computed".into_any(),
                }}
            </div>
        }
        .into_any(),
        (Some(step), false, _) => {
            let [delta_general, delta_filled] = math::delta(step, params.gamma);
            let [adv_general, adv_filled] = math::advantage(step, params);
            let last = step.next_mask == 0.0;
            view! {
                <div class="formula" data-testid="gae-formula" data-t=step.t>
                    <div class="general">{mathml(delta_general)}</div>
                    <div data-testid="gae-delta-formula" data-v=exact(step.delta)>{mathml(delta_filled)}</div>
                    <div class="general">{mathml(adv_general)}</div>
                    <div data-testid="gae-adv-formula" data-v=exact(step.advantage)>{mathml(adv_filled)}</div>
                    {mathml(math::ret(step))}
                    {last.then(|| view! {
                        <p class="note" data-testid="gae-terminal">
                            {format!("t = {} is the last token: m", step.t)}<sub>{step.t + 1}</sub>
                            " = 0 drops V(s"<sub>{step.t + 1}</sub>") and A"<sub>{step.t + 1}</sub>
                            ". A response cut at max new tokens without an end token is treated the same \
                             way, as terminal: nothing after it is bootstrapped."
                        </p>
                    })}
                </div>
            }
            .into_any()
        }
        (None, false, _) => ().into_any(),
    };
    let main = view! {
        {token_strip(state, walk, row, real, None)}
        {gae_comparison(walk)}
        // Scrolls sideways within its column when its numbers are wide, rather than running
        // under the side column.
        <div class="table-scroll">
            <table class="numbers stage-data" data-testid="gae-table">
                <thead><tr>
                    <th>"t"</th><th>"token"</th><th>"r_t"</th><th>"V(s_t)"</th><th>"δ_t"</th>
                    <th>"A_t"</th><th>"R_t = A_t + V(s_t)"</th><th>"Â_t (whitened)"</th>
                </tr></thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
        <details class="cli" data-testid="gae-cli">
            <summary>"Check these numbers with the command line"</summary>
            <p>"Save this as " <code>"gae.json"</code> " and run " <code>{if walk.whiten.is_some() { "ppo-lens gae --table --whiten --input gae.json" } else { "ppo-lens gae --table --input gae.json" }}</code> ":"</p>
            <pre data-testid="gae-json">{gae_json(walk)}</pre>
        </details>
        {what_if_panel(state, walk, row)}
        {grpo_panel(state, walk, row)}
        {family_panel(state, walk, row)}
    }
    .into_any();
    let side = view! {
        {formula}
        {provenance_view(state, Stage::Gae)}
        {notes_view(state, notes(walk, Stage::Gae, row, iteration))}
        {if whitened_shown {
            why("Why whiten?", view! {
                "Advantages can be all positive or tiny in one batch and huge in the next. "
                {term("whitening", "Whitening")} " shifts them to mean 0 and scales them to std 1 over the "
                "batch, which keeps the step size steady. Mean 0 is not half up, half down: with sparse "
                "end-of-response scores the spread is lopsided. Subtracting the mean can flip signs: a positive "
                "mean turns any " {between("0", "A_t", "mean")} " negative, a negative one turns any "
                {between("mean", "A_t", "0")} " positive. "
                "The returns R_t, the critic's targets, are not whitened."
            }.into_any()).into_any()
        } else {
            why("Why backwards?", view! {
                "Each " {term("advantage", "advantage")} " is this token's surprise δ"<sub>"t"</sub>
                " plus a discounted share of the next token's: A"<sub>"t"</sub>" = δ"<sub>"t"</sub>
                " + γλ·A"<sub>"t+1"</sub>". Starting from the last token, A"<sub>"t+1"</sub>
                " is always ready, so one sweep from the end computes them all. Past the last token m"
                <sub>"t+1"</sub>" = 0 drops both V(s"<sub>"t+1"</sub>") and A"<sub>"t+1"</sub>
                ": the last token's advantage is its δ alone. Each " {term("return", "return")}
                " R"<sub>"t"</sub>" = A"<sub>"t"</sub>" + V(s"<sub>"t"</sub>") is the critic's target."
            }.into_any()).into_any()
        }}
    }
    .into_any();
    columns(main, side)
}

/// With exercises on: whether the student's `gae` matches the reference on this batch.
fn gae_comparison(walk: &Walkthrough) -> Option<impl IntoView> {
    let compared = walk.exercises.as_ref()?;
    let file = crate::exercises::exercise(4).file;
    let (state, text) = match &compared.gae {
        None => (
            "todo",
            format!("Exercise 4 is not written yet ({file}): these are the reference's numbers."),
        ),
        Some(c) => match c.count(&walk.experience.rollout.response_mask) {
            (0, n) => (
                "match",
                format!("Your gae ({file}) matches the reference on all {n} values of this batch."),
            ),
            (k, n) => (
                "differs",
                format!(
                    "Your gae ({file}) differs from the reference on {k} of this batch's {n} values. \
                     The table shows the reference; cells marked ≠ show yours under it."
                ),
            ),
        },
    };
    Some(view! { <p class="exercise-diff" data-testid="gae-exercise" data-state=state>{text}</p> })
}

/// The GAE inputs of the whole batch, in `ppo-lens gae`'s input format, exact.
fn gae_json(walk: &Walkthrough) -> String {
    let params = walk.gae.first().map(|g| g.params);
    gae_input_json(
        &walk.experience.rewards,
        &walk.experience.rollout.values,
        &walk.experience.rollout.response_mask,
        params.map_or(1.0, |p| p.gamma),
        params.map_or(0.95, |p| p.lam),
    )
}
