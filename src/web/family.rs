//! The policy-gradient family on the page's batch (in the GAE stage, under PPO beside GRPO): the
//! student picks members, and the panel lists the choices they make differently, each response's
//! advantage and loss weight under each, the picked response's tokens pushed up or down by each,
//! and a card per member saying what it changed. Every number comes from
//! [`compare_members`](crate::explore::compare_members) on the batch the worker computed.

use std::sync::Arc;

use leptos::prelude::*;

use super::select::{exact, response_token, show_token};
use super::state::AppState;
use crate::explain::format::num;
use crate::explore::{FamilyComparison, compare_members};
use crate::lab::walkthrough::Walkthrough;
use crate::ppo::family::{Family, differences};
use crate::ppo::member_advantages::MemberAdvantages;

/// `up` when the update raises the token's probability, `down` when it lowers it.
fn sign_class(x: f32) -> &'static str {
    if x > 0.0 {
        "up"
    } else if x < 0.0 {
        "down"
    } else {
        "flat"
    }
}

/// A coloured number cell: the sign as an arrow and a colour, the value rounded, exact in
/// `data-v`.
fn signed_cell(testid: String, x: f32) -> impl IntoView {
    let arrow = match sign_class(x) {
        "up" => "▲ ",
        "down" => "▼ ",
        _ => "",
    };
    view! {
        <td class=format!("num signed {}", sign_class(x)) data-testid=testid data-v=exact(x)>
            <span aria-hidden="true">{arrow}</span>{num(x)}
        </td>
    }
}

/// A loss weight as `1/n` when it is one (it is for every member's aggregation), exact in
/// `data-v`.
fn weight_cell(testid: String, w: f32) -> impl IntoView {
    let shown = if w == 0.0 {
        "0 (dropped)".to_string()
    } else {
        let n = (1.0 / w as f64).round();
        if ((1.0 / n) as f32 - w).abs() <= w * 1e-5 {
            format!("1/{n}")
        } else {
            num(w)
        }
    };
    view! { <td class="num" data-testid=testid data-v=exact(w)>{shown}</td> }
}

/// The member picker: a toggle per member, at least one kept.
fn picker(state: AppState) -> impl IntoView {
    Family::ALL
        .into_iter()
        .map(|f| {
            let on = move || state.members.with(|m| m.contains(&f));
            let toggle = move |_| {
                state.members.update(|m| {
                    if let Some(i) = m.iter().position(|x| *x == f) {
                        if m.len() > 1 {
                            m.remove(i);
                        }
                    } else {
                        m.push(f);
                        m.sort_by_key(|x| Family::ALL.iter().position(|y| y == x));
                    }
                })
            };
            view! {
                <button class="family-pick" data-testid=format!("family-pick-{}", f.key())
                    aria-pressed=move || if on() { "true" } else { "false" }
                    on:click=toggle>{f.name()}</button>
            }
        })
        .collect_view()
}

/// The choices the picked members make, the rows where they differ marked, and each pair's
/// differences against the first picked member in a sentence.
fn choices_view(members: &[Family], clip: f32, max_len: usize) -> impl IntoView {
    let objectives: Vec<_> = members.iter().map(|f| f.objective(clip, max_len)).collect();
    let choices: Vec<_> = objectives.iter().map(|o| o.choices()).collect();
    let head = members
        .iter()
        .map(|f| view! { <th scope="col">{f.name()}</th> })
        .collect_view();
    let rows = (0..7)
        .map(|k| {
            let name = choices[0][k].0;
            let differs = choices.iter().any(|c| c[k].1 != choices[0][k].1);
            let cells = choices
                .iter()
                .map(|c| view! { <td>{c[k].1.clone()}</td> })
                .collect_view();
            view! {
                <tr class:differs-row=differs data-testid=format!("family-choice-{k}")
                    data-differs=if differs { "1" } else { "0" }>
                    <th scope="row">{name}{differs.then_some(" ≠")}</th>{cells}
                </tr>
            }
        })
        .collect_view();
    let sentences = members
        .iter()
        .zip(&objectives)
        .skip(1)
        .map(|(f, o)| {
            let d = differences(&objectives[0], o);
            let text = if d.is_empty() {
                "the same choices".to_string()
            } else {
                d.iter()
                    .map(|x| format!("{}: {} vs {}", x.choice, x.a, x.b))
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            view! {
                <li data-testid=format!("family-diff-{}", f.key()) data-count=d.len()>
                    <strong>{format!("{} against {}: ", members[0].name(), f.name())}</strong>{text}
                </li>
            }
        })
        .collect_view();
    view! {
        <ul class="family-diffs">{sentences}</ul>
        <div class="table-scroll">
            <table class="numbers family-choices" data-testid="family-choices">
                <caption>"What each member chooses (≠: the picked members differ)"</caption>
                <thead><tr><th>"choice"</th>{head}</tr></thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
    }
}

/// Two column heads per member: `<name> <a>` and `<name> <b>`.
fn heads(ok: &[(Family, &MemberAdvantages)], a: &'static str, b: &'static str) -> impl IntoView {
    ok.iter()
        .map(|(f, _)| {
            view! {
                <th scope="col">{format!("{} {a}", f.name())}</th>
                <th scope="col">{format!("{} {b}", f.name())}</th>
            }
        })
        .collect_view()
}

/// Each response's score, KL and every picked member's advantage and token weight.
fn responses_view(state: AppState, cmp: &FamilyComparison, real: &[usize]) -> impl IntoView {
    let ok = cmp.available();
    let head = heads(&ok, "A", "w");
    let rows = cmp
        .scores
        .iter()
        .enumerate()
        .map(|(b, s)| {
            let cells = ok
                .iter()
                .map(|(f, m)| {
                    let a = match &m.per_response {
                        Some(a) => signed_cell(format!("fam-{}-a-{b}", f.key()), a[b]).into_any(),
                        None => view! { <td class="note">"per token"</td> }.into_any(),
                    };
                    view! { {a}{weight_cell(format!("fam-{}-w-{b}", f.key()), m.weights[b])} }
                })
                .collect_view();
            let dropped = ok.iter().any(|(_, m)| m.dropped[b]);
            view! {
                <tr class:sel=move || state.row.get() == b class:dropped=dropped>
                    <td class="response-pick" data-testid=format!("fam-r-{b}") tabindex="0"
                        title="show this response's tokens"
                        on:click=move |_| state.show_row(b)
                        on:keydown=move |ev| if ev.key() == "Enter" { state.show_row(b) }>
                        {b + 1}
                    </td>
                    <td class="num" data-testid=format!("fam-len-{b}") data-v=real[b]>{real[b]}</td>
                    <td class="num" data-testid=format!("fam-score-{b}") data-v=exact(s.score)>{num(s.score)}</td>
                    <td class="num" data-testid=format!("fam-kl-{b}") data-v=exact(s.kl)>{num(s.kl)}</td>
                    <td class="num" data-testid=format!("fam-pen-{b}") data-v=exact(s.penalised)>{num(s.penalised)}</td>
                    {cells}
                </tr>
            }
        })
        .collect_view();
    view! {
        <p class="note">
            {format!(
                "Each response: its score r, its summed KL to the reference Σ(log π_old − log π_ref), r − β·KL with β = {} (what RLOO and REINFORCE compare), and under each member its advantage A and what each of its tokens weighs in the loss, w. Click a response to show its tokens.",
                num(cmp.params.beta)
            )}
        </p>
        <div class="table-scroll">
            <table class="numbers family-responses" data-testid="family-responses">
                <caption>"Each response under each member"</caption>
                <thead><tr>
                    <th>"response"</th><th>"tokens"</th><th>"score r"</th><th>"KL Σ"</th><th>"r − β·KL"</th>{head}
                </tr></thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
    }
}

/// The picked response's tokens: each member's advantage and its push `A × w`.
fn tokens_view(
    walk: &Walkthrough,
    cmp: &FamilyComparison,
    row: usize,
    real: usize,
) -> impl IntoView {
    let ok = cmp.available();
    let head = heads(&ok, "A_t", "push A·w");
    let rows = (0..real)
        .map(|t| {
            let cells = ok
                .iter()
                .map(|(f, m)| {
                    view! {
                        {signed_cell(format!("fam-{}-tok-{t}", f.key()), m.tokens[row][t])}
                        {signed_cell(format!("fam-{}-push-{t}", f.key()), m.push(row, t))}
                    }
                })
                .collect_view();
            view! {
                <tr data-testid=format!("fam-tok-{t}")>
                    <td class="num">{t}</td>
                    <td class="tokcell">{show_token(&response_token(walk, row, t))}</td>
                    {cells}
                </tr>
            }
        })
        .collect_view();
    view! {
        <p class="note">{format!(
            "Response {}, token by token: each member's advantage, and how hard its update's first step pushes the token's log-probability up (▲) or down (▼), were the batch one mini-batch: A × w, the surrogate's gradient at ratio 1.",
            row + 1
        )}</p>
        <div class="table-scroll">
            <table class="numbers family-tokens" data-testid="family-tokens">
                <caption>{format!("Response {} under each member", row + 1)}</caption>
                <thead><tr><th>"t"</th><th>"token"</th>{head}</tr></thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
    }
}

/// What stops a member on this batch (it needs groups), said once per member.
fn unavailable(cmp: &FamilyComparison) -> impl IntoView {
    cmp.members
        .iter()
        .filter_map(|(f, m)| m.as_ref().err().map(|e| (*f, e.clone())))
        .map(|(f, e)| {
            view! { <p class="note" data-testid=format!("family-missing-{}", f.key())>{e}</p> }
        })
        .collect_view()
}

/// A card per picked member: what it changed and the paper.
fn cards(members: &[Family]) -> impl IntoView {
    members
        .iter()
        .map(|f| {
            view! {
                <div class="family-card" data-testid=format!("family-card-{}", f.key())>
                    <h4>{f.name()}</h4>
                    <p>{f.change()}</p>
                    <p class="note">{f.paper()}</p>
                </div>
            }
        })
        .collect_view()
}

/// The family panel for the batch on show, following the response picker (`row`).
pub fn family_panel(state: AppState, walk: &Arc<Walkthrough>, row: usize) -> impl IntoView {
    let walk = walk.clone();
    let real: Vec<usize> = (0..walk.experience.scores.len())
        .map(|b| crate::explain::stage::real_len(&walk, b))
        .collect();
    let body = move || {
        let members = state.members.get();
        let params = walk.family;
        let cmp = compare_members(&walk.experience, &members, params);
        view! {
            {choices_view(&members, params.clip, params.max_new_tokens)}
            {unavailable(&cmp)}
            {responses_view(state, &cmp, &real)}
            {tokens_view(&walk, &cmp, row, real[row])}
            <div class="family-cards">{cards(&members)}</div>
        }
    };
    view! {
        <section class="card family" data-testid="family-compare">
            <h3>"The policy-gradient family on this batch"</h3>
            <p>
                "REINFORCE, RLOO, PPO, GRPO, Dr. GRPO and DAPO all raise the log-probability of "
                "tokens with a positive advantage and lower those with a negative one. They differ "
                "in a few choices: what a reward is compared with, whether it is divided by a "
                "spread, what one ratio covers, the clip, how token terms are averaged, and where "
                "the KL acts. Pick members to see what each choice does to these responses. Each "
                "member is computed as its paper defines it (GRPO's advantages divided by the "
                "group's std, whatever the GRPO std scaling setting; RLOO's clip is TRL's), with the β, clip "
                "and length this batch ran with. The advantages this iteration's update used are "
                "in PPO beside GRPO, above, when it trained with PPO, GRPO or Dr. GRPO, and in "
                "the member's column here when it trained with RLOO, REINFORCE or DAPO."
            </p>
            <div class="family-picks" role="group" aria-label="members to compare">{picker(state)}</div>
            {body}
        </section>
    }
}
