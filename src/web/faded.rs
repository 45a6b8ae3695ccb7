//! The GAE stage's faded worked example: the reverse sweep of the response on show, worked in
//! full on the first pass; each later pass leaves one more of its last A_t for the student to
//! type, each checked as a step from the batch's δ_t and the A_{t+1} it builds on, the
//! student's own where they computed it (`crate::faded`, shared with `ppo-lens gae --quiz`). A
//! wrong entry gets a hint, and the two cells it needs light up.

use std::collections::HashMap;

use leptos::prelude::*;

use super::predict;
use super::select::{exact, response_token, show_token};
use super::state::{AppState, Stage};
use crate::explain::format::fixed;
use crate::faded::{self, Check};

/// Four decimals with a real minus sign: the sweep's numbers, precise enough that A_t computed
/// from them lands within [`faded::TOLERANCE`].
fn four(x: f32) -> String {
    fixed(x, 4)
}

#[component]
pub fn FadedSweep(state: AppState) -> impl IntoView {
    let pass = RwSignal::new(0usize);
    let typed = RwSignal::new(HashMap::<usize, String>::new());
    let checks = RwSignal::new(HashMap::<usize, Check>::new());
    let restart = move |to: usize| {
        pass.set(to);
        typed.set(HashMap::new());
        checks.set(HashMap::new());
    };
    // Another batch or response starts it again.
    Effect::new(move |_| {
        state.walk.track();
        state.row.track();
        restart(0);
    });
    move || {
        // Hidden in another stage, and while predict mode still asks about this one (the worked
        // pass would give its answers away).
        if state.stage.get() != Stage::Gae || predict::pending(state) {
            return None;
        }
        let walk = state.walk.get()?;
        let row = state.row.get().min(walk.gae.len().saturating_sub(1));
        let trace = walk.gae[row].clone();
        if trace.steps.is_empty() {
            return None;
        }
        let p = pass.get();
        let n_passes = faded::passes(&trace);
        let blanks = faded::blanks(&trace, p);
        let checked = checks.get();
        // The cells a wrong entry needs: δ_t in its row and A_{t+1} in the row below.
        let needed: Vec<String> = checked
            .iter()
            .filter(|(_, c)| **c != Check::Right)
            .flat_map(|(&t, _)| {
                let mut cells = vec![format!("faded-delta-{t}")];
                if t + 1 < trace.steps.len() {
                    cells.push(format!("faded-a-{}", t + 1));
                }
                cells
            })
            .collect();
        let params = trace.params;
        let rows = trace
            .steps
            .iter()
            .enumerate()
            .map(|(i, step)| {
                let t = step.t;
                let blank = faded::is_blank(&trace, p, i);
                let next_blank = i > 0 && faded::is_blank(&trace, p, i - 1);
                let check = checked.get(&t).cloned();
                let lit = |id: &str| needed.iter().any(|n| n == id);
                let a_id = format!("faded-a-{t}");
                let a_cell = if blank {
                    let state_key = check.as_ref().map_or("open", Check::key);
                    let done = check == Some(Check::Right);
                    let value = typed.with_untracked(|m| m.get(&t).cloned().unwrap_or_default());
                    // Right as a step from the student's own A_{t+1}, not the batch's A_t: the
                    // step is sound and carries the slip before it; say whose A_{t+1} it used.
                    let carried = done
                        && crate::predict::parse_number(&value)
                            .is_some_and(|x| (x - step.advantage).abs() > faded::TOLERANCE);
                    view! {
                        <td class="num faded-blank" class:needed=lit(&a_id) data-testid=a_id.clone() data-state=state_key>
                            <input type="text" inputmode="decimal" autocomplete="off"
                                data-testid=format!("faded-input-{t}")
                                aria-label=format!("A_{t}")
                                readonly=done
                                prop:value=value
                                on:input=move |ev| typed.update(|m| { m.insert(t, event_target_value(&ev)); }) />
                            {match check {
                                Some(Check::Right) if carried => view! {
                                    " ✓"
                                    <span class="faded-carried" data-testid=format!("faded-carried-{t}")>
                                        {format!("from your A_{}", t + 1)}
                                    </span>
                                }
                                .into_any(),
                                Some(Check::Right) => " ✓".into_any(),
                                Some(_) => " ✗".into_any(),
                                None => "".into_any(),
                            }}
                        </td>
                    }
                    .into_any()
                } else {
                    view! {
                        <td class="num" class:needed=lit(&a_id) data-testid=a_id.clone() data-v=exact(step.advantage)>
                            {four(step.advantage)}
                        </td>
                    }
                    .into_any()
                };
                let delta_id = format!("faded-delta-{t}");
                view! {
                    <tr data-testid=format!("faded-row-{t}") class:pending=blank>
                        <td class="num">{t}</td>
                        <td class="tokcell">{show_token(&response_token(&walk, row, t))}</td>
                        <td class="num" class:needed=lit(&delta_id) data-testid=delta_id.clone() data-v=exact(step.delta)>{four(step.delta)}</td>
                        <td class="num" data-testid=format!("faded-next-{t}")>
                            {if next_blank { "?".to_string() } else { four(step.next_advantage) }}
                        </td>
                        {a_cell}
                    </tr>
                }
            })
            .collect_view();
        let hints = checked
            .iter()
            .filter_map(|(&t, c)| match c {
                Check::Wrong(h) | Check::NotANumber(h) => Some((t, h.clone())),
                Check::Right => None,
            })
            .collect::<std::collections::BTreeMap<_, _>>()
            .into_iter()
            .map(|(t, h)| view! { <li data-testid=format!("faded-hint-{t}")>{h}</li> })
            .collect_view();
        let right = checked.values().filter(|c| **c == Check::Right).count();
        let title = match blanks.as_slice() {
            [] => "the whole sweep, worked: read it from the last token up".to_string(),
            [t] => format!("you compute A_{t}"),
            [first, .., last] => {
                format!("you compute A_{first} down to A_{last}, in the sweep's order")
            }
        };
        let last_pass = p + 1 == n_passes;
        Some(view! {
            <section class="card faded" data-testid="gae-faded" data-pass=p aria-label="Practise the sweep">
                <h2>"Practise the sweep: a worked example that fades"</h2>
                <p class="explain">
                    {format!("Response {}, A", row + 1)}<sub>"t"</sub>" = δ"<sub>"t"</sub>" + γλ · A"<sub>"t+1"</sub>
                    {format!(
                        " with γλ = {} (γ = {}, λ = {}), from the last token back. Pass {} of {n_passes}: {title}.",
                        four(params.gamma * params.lam), four(params.gamma), four(params.lam), p + 1
                    )}
                </p>
                <table class="numbers faded-table" data-testid="faded-table">
                    <thead><tr><th>"t"</th><th>"token"</th><th>"δ"<sub>"t"</sub></th><th>"A"<sub>"t+1"</sub></th><th>"A"<sub>"t"</sub></th></tr></thead>
                    <tbody>{rows}</tbody>
                </table>
                <ul class="faded-hints">{hints}</ul>
                {(!blanks.is_empty()).then(|| view! {
                    <p class="faded-score" data-testid="faded-score" data-right=right data-blanks=blanks.len()>
                        {format!("{right} of {} right (within {} of δ", blanks.len(), faded::TOLERANCE)}<sub>"t"</sub>
                        " + γλ · A"<sub>"t+1"</sub>", with your own A"<sub>"t+1"</sub>" where you computed it)."
                    </p>
                })}
                <div class="faded-buttons">
                    {(!blanks.is_empty()).then(|| view! {
                        <button class="primary" data-testid="faded-check" on:click=move |_| {
                            let entries = typed.get_untracked();
                            let mut results = HashMap::new();
                            let blanks = faded::blank_steps(&trace, p);
                            for step in blanks {
                                if let Some(text) = entries.get(&step.t).filter(|t| !t.trim().is_empty()) {
                                    // The step is checked with the A_{t+1} the student computed,
                                    // where they computed it (the table shows "?" there).
                                    let own_next = blanks
                                        .iter()
                                        .any(|s| s.t == step.t + 1)
                                        .then(|| entries.get(&(step.t + 1)).and_then(|x| crate::predict::parse_number(x)))
                                        .flatten();
                                    let expected = faded::expected(step, trace.params, own_next);
                                    results.insert(step.t, faded::check(step, expected, text, "δ"));
                                }
                            }
                            checks.set(results);
                        }>"check"</button>
                    })}
                    <button data-testid="faded-next" disabled=last_pass on:click=move |_| restart(p + 1)>
                        {if p == 0 { "start: leave me the last step" } else { "next pass: one more step" }}
                    </button>
                    <button data-testid="faded-restart" disabled={p == 0} on:click=move |_| restart(0)>"start again"</button>
                </div>
            </section>
        })
    }
}
