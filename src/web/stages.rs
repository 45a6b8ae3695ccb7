//! One component per stage of a PPO iteration. Each reads the iteration's [`Walkthrough`], the
//! selected response and the step cursor, and shows how far the stage has got: the data on the
//! left (the token strip first, then the stage's table), and beside it, in a column that stays
//! in sight while the table scrolls, the formula with this step's numbers, where a picked
//! number comes from, what to notice in this batch, and why the stage exists.

use std::sync::Arc;

use leptos::prelude::*;

use super::attention::attention_view;
use super::classroom::{clip_explorer, push_harder, what_if_panel};
use super::grpo::grpo_panel;
use super::guide::{self, TourCard, mini_loop, notes_view, provenance_view, term};
use super::select::{
    cell, exact, explain_cell, response_token, show_token, token_row, token_strip,
};
use super::state::{AppState, Stage};
use crate::explain::{Quantity, format_ratio, math, notes, num, real_len};
use crate::explore::{clip_cases, gae_input_json};
use crate::lab::walkthrough::Walkthrough;
use crate::ppo::policy_loss::PolicyClip;
use crate::ppo::rewards::KlEstimator;
use crate::reward::GsmScore;

/// A number cell that nothing else refers to: rounded, exact in `data-v`.
fn plain_cell(testid: String, x: f32) -> impl IntoView {
    view! { <td class="num" data-testid=testid data-v=exact(x)>{num(x)}</td> }
}

/// MathML made by [`crate::explain::math`] (numbers and fixed symbols only).
fn mathml(markup: String) -> impl IntoView {
    view! { <div class="math" inner_html=markup></div> }
}

/// A number the student's code and the reference disagree on (exercises on): `x` as the table
/// shows it, marked, with the other side's value under it. `other` is `("yours", y)` where the
/// table shows the reference's number and `("reference", y)` where it shows what ran.
fn compared_cell(
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

fn score_label(score: &GsmScore) -> (&'static str, String) {
    match score {
        GsmScore::Correct { answer } => ("correct", format!("correct: #### {answer}")),
        GsmScore::WrongNumber { answer, expected } => (
            "format",
            format!("right format, wrong number: #### {answer} (expected {expected})"),
        ),
        GsmScore::NoAnswer => ("wrong", "no #### answer".into()),
    }
}

/// The stage the state points at.
#[component]
pub fn StagePanel(state: AppState) -> impl IntoView {
    move || {
        let Some(walk) = state.walk.get() else {
            return view! {
                <section class="card stage" data-testid="stage-empty">
                    <p class="explain">"Loading the tiny model and sampling the first rollouts…"</p>
                </section>
            }
            .into_any();
        };
        let stage = state.stage.get();
        let row = state.row.get().min(walk.gae.len().saturating_sub(1));
        let cursor = state.cursor.get();
        let iteration = state.shown.get_untracked().max(1);
        let withheld = super::predict::pending(state);
        let body = match stage {
            Stage::Overview => guide::overview(state, &walk).into_any(),
            Stage::Rollout => rollout(state, &walk, row, cursor, iteration).into_any(),
            Stage::Score => score(state, &walk, row, cursor, iteration).into_any(),
            Stage::Values => values(state, &walk, row, iteration).into_any(),
            Stage::Gae => gae(state, &walk, row, cursor, iteration).into_any(),
            Stage::Update => update(state, &walk, row, cursor, iteration).into_any(),
            Stage::Mask => mask(state, walk.clone(), row, iteration).into_any(),
        };
        view! {
            <section class="card stage" data-testid=format!("stage-{}", stage.key()) data-cursor=cursor>
                <div class="stage-head">
                    <h2>{stage.title()}</h2>
                    {mini_loop(state, stage)}
                </div>
                <TourCard state=state />
                {super::predict::card(state, &walk, stage, row, iteration)}
                <div class="stage-view" class:withheld=withheld inert=withheld aria-hidden=withheld.then_some("true")
                    data-testid="stage-view" data-withheld=withheld.to_string()>
                    {body}
                </div>
            </section>
        }
        .into_any()
    }
}

/// Which step of the stage is on show, for the sticky bar.
#[component]
pub fn StepCounter(state: AppState) -> impl IntoView {
    move || {
        let walk = state.walk.get()?;
        let stage = state.stage.get();
        let row = state.row.get().min(walk.gae.len().saturating_sub(1));
        let steps = stage.steps(&walk, row);
        Some(view! {
            <span class="progress" data-testid="stage-progress">
                {format!("step {} of {steps}", state.cursor.get().min(steps - 1) + 1)}
            </span>
        })
    }
}

/// The row picker: one button per sampled response, marked by its score; and the picked token.
#[component]
pub fn RowPicker(state: AppState) -> impl IntoView {
    move || {
        let walk = state.walk.get()?;
        let selected = state.row.get();
        let buttons = walk
            .experience
            .scores
            .iter()
            .enumerate()
            .map(|(b, s)| {
                let (kind, label) = score_label(s);
                view! {
                    <button
                        class=format!("row-pick {kind}")
                        class:selected=b == selected
                        title=label
                        data-testid=format!("row-{b}")
                        on:click=move |_| state.show_row(b)
                    >
                        {b + 1}
                    </button>
                }
            })
            .collect_view();
        let picked = {
            let walk = walk.clone();
            move || {
                let row = state.row.get().min(walk.gae.len().saturating_sub(1));
                let t = state.shown_token()?;
                (t < real_len(&walk, row)).then(|| {
                    view! {
                        <span class="picked" data-testid="picked-token">
                            {format!("token t = {t}: ")}<code>{show_token(&response_token(&walk, row, t))}</code>
                            <button class="link" data-testid="unpick" on:click=move |_| state.pick(None)>"clear"</button>
                        </span>
                    }
                })
            }
        };
        let pin = move || {
            let problem = state.problem_of(state.row.get())?;
            let pinned = state.pinned.get() == Some(problem);
            Some(view! {
                <button class="link" data-testid="pin" aria-pressed=pinned.to_string()
                    title="ask this prompt in every iteration, to follow it over time"
                    on:click=move |_| state.pinned.set(if pinned { None } else { Some(problem) })>
                    {if pinned { format!("problem #{problem} pinned (unpin)") } else { "pin this prompt".to_string() }}
                </button>
            })
        };
        Some(view! {
            <div class="row-picker" aria-label="Which response the stages show">
                <span class="label">"response"</span>
                {buttons}
                {picked}
                {pin}
            </div>
        })
    }
}

/// The stage's two columns: the data, and beside it what explains it.
fn columns(main: AnyView, side: AnyView) -> impl IntoView {
    view! {
        <div class="stage-body">
            <div class="stage-main">{main}</div>
            <aside class="stage-side" data-testid="stage-side">{side}</aside>
        </div>
    }
}

/// A "why" paragraph at the foot of the side column.
fn why(question: &'static str, body: AnyView) -> impl IntoView {
    view! {
        <details class="why" open>
            <summary>{question}</summary>
            <div class="explain">{body}</div>
        </details>
    }
}

pub(super) fn prompt_text(walk: &Walkthrough, row: usize) -> String {
    let p = walk.experience.rollout.prompt_len;
    walk.tokens[row][..p]
        .iter()
        .zip(&walk.experience.rollout.attention_mask[row][..p])
        .filter(|(_, m)| **m == 1)
        .map(|(t, _)| t.as_str())
        .collect()
}

/// The prompt, folded: its last line in the summary, the whole chat template inside.
fn prompt_view(walk: &Walkthrough, row: usize) -> impl IntoView {
    let prompt = prompt_text(walk, row);
    let last = prompt
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .to_string();
    view! {
        <details class="prompt" data-testid="prompt">
            <summary><span class="label">"prompt"</span>{last}</summary>
            <pre>{prompt}</pre>
        </details>
    }
}

fn candidate_text(walk: &Walkthrough, id: u32) -> String {
    walk.texts
        .get(&id)
        .map(|t| show_token(t))
        .unwrap_or_else(|| format!("#{id}"))
}

fn rollout(
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
                            <td>{if *id == sampled { "← sampled" } else { "" }}</td>
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

fn score(
    state: AppState,
    walk: &Walkthrough,
    row: usize,
    cursor: usize,
    iteration: usize,
) -> impl IntoView {
    let exp = &walk.experience;
    let ro = &exp.rollout;
    let real = real_len(walk, row);
    let responses = exp
        .scores
        .iter()
        .enumerate()
        .map(|(b, s)| {
            let (kind, label) = score_label(s);
            let text = exp.responses[b].clone();
            view! {
                <tr class:selected=b == row data-testid=format!("score-row-{b}") data-kind=kind
                    data-current=(b == row && cursor == 0).then_some("1")
                    on:click=move |_| state.show_row(b)>
                    <td class="num">{b + 1}</td>
                    <td class="response-text">{text}</td>
                    <td><span class=format!("badge {kind}")>{label}</span></td>
                    {cell(state, format!("score-{b}"), s.reward())}
                </tr>
            }
        })
        .collect_view();
    let kl_rows = (0..real)
        .map(|t| {
            let reward = exp.rewards[row][t];
            token_row(
                state,
                "kl-row",
                t,
                String::new(),
                false,
                view! {
                    <td class="num">{t}</td>
                    <td class="tokcell">{show_token(&response_token(walk, row, t))}</td>
                    {cell(state, format!("kl-logp-{t}"), ro.logprobs[row][t])}
                    {cell(state, format!("kl-ref-{t}"), exp.ref_logprobs[row][t])}
                    {cell(state, format!("kl-{t}"), exp.kl[row][t])}
                    {(cursor >= 2).then(|| explain_cell(state, format!("reward-{t}"), num(reward), reward, t, Quantity::Reward))}
                },
            )
        })
        .collect_view();
    let beta = exp.kl_coeff;
    let estimator = match exp.kl_estimator {
        KlEstimator::K1 => {
            "k1: KL_t = log π − log π_ref, the one-sample estimate. It can be negative for a token (then the penalty is a bonus there); only its average over samples is the KL."
        }
        KlEstimator::K2 => "k2: KL_t = ½ (log π_ref − log π)², never negative, biased.",
        KlEstimator::K3 => "k3: KL_t = π_ref/π − 1 − log(π_ref/π), never negative and unbiased.",
    };
    let main = view! {
        {token_strip(state, walk, row, real, None)}
        <table class="numbers responses stage-data" data-testid="score-table">
            <thead><tr><th>"#"</th><th>"response"</th><th>"verdict"</th><th>"score"</th></tr></thead>
            <tbody>{responses}</tbody>
        </table>
        {(cursor >= 1).then(|| view! {
            <h3 data-current="1">{format!("Response {}, token by token", row + 1)}</h3>
            <table class="numbers" data-testid="kl-table">
                <thead><tr>
                    <th>"t"</th><th>"token"</th><th>"log π_old"</th><th>"log π_ref"</th><th>"KL_t"</th>
                    {(cursor >= 2).then(|| view! { <th>"r_t"</th> })}
                </tr></thead>
                <tbody>{kl_rows}</tbody>
            </table>
        })}
    }
    .into_any();
    let side = view! {
        {mathml(math::reward(beta))}
        <p class="note" data-testid="kl-estimator">{format!("The KL estimator is {estimator}")}</p>
        {walk.kl_control.map(|k| view! {
            <p class="note" data-testid="kl-control" data-kl=exact(k.kl as f32) data-target=exact(k.target as f32)
                data-error=exact(k.error as f32) data-before=exact(k.before as f32) data-after=exact(k.after as f32)
                data-n=k.n.to_string() data-horizon=exact(k.horizon as f32)>
                {format!(
                    "Adaptive KL: this batch's KL to the reference is {} per response against the target {}. The error clip({} / {} − 1, ±0.2) = {} {} β for the next iteration: {} × (1 + {} × {} / {}) = {}.",
                    num(k.kl as f32), num(k.target as f32), num(k.kl as f32), num(k.target as f32), num(k.error as f32),
                    if k.error > 0.0 { "raises" } else if k.error < 0.0 { "lowers" } else { "keeps" },
                    num(k.before as f32), num(k.error as f32), k.n, num(k.horizon as f32), num(k.after as f32),
                )}
            </p>
        })}
        {provenance_view(state, Stage::Score)}
        {notes_view(state, notes(walk, Stage::Score, row, iteration))}
        {why("Why a frozen reference?", view! {
            "The score is a rule: the number after " <code>"####"</code> " must equal the reference answer "
            "(1.0); the right format with a wrong number earns 0.1; anything else 0, given on the last token. "
            "Drifting from the starting model is penalised: each token pays β times its "
            {term("KL", "KL")} " to a copy of the starting model that never trains. Without that "
            "penalty the policy can find text that games the score and forget how to write."
        }.into_any())}
    }
    .into_any();
    columns(main, side)
}

fn values(state: AppState, walk: &Walkthrough, row: usize, iteration: usize) -> impl IntoView {
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
        }.into_any())}
    }
    .into_any();
    columns(main, side)
}

fn gae(
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
    let formula = match (&current, whitened_shown, &walk.whiten) {
        (_, true, Some(w)) => view! {
            <div class="formula" data-testid="gae-formula">
                <div>{format!("whitening over the batch's {} real tokens (mean {}, std {}, unbiased):", w.count, num(w.mean), num(w.std))}</div>
                {mathml(math::whiten(w.mean, w.std))}
            </div>
        }
        .into_any(),
        (_, true, None) => view! {
            <div class="formula" data-testid="gae-formula">"whitening is off: the update uses A_t as computed"</div>
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
                            ". A response cut at max_new_tokens without an end token is treated the same \
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
            <p>"Save this as " <code>"gae.json"</code> " and run " <code>"ppo-lens gae --table --whiten --input gae.json"</code> ":"</p>
            <pre data-testid="gae-json">{gae_json(walk)}</pre>
        </details>
        {what_if_panel(state, walk, row)}
        {grpo_panel(state, walk, row)}
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
                "mean turns any 0 < A_t < mean negative, a negative one turns any mean < A_t < 0 positive. "
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

fn update(
    state: AppState,
    walk: &Arc<Walkthrough>,
    row: usize,
    cursor: usize,
    iteration: usize,
) -> impl IntoView {
    let stats = &walk.stats;
    let exp = &walk.experience;
    let policy = &walk.policy_after[row];
    let value = &walk.value_after[row];
    let eps = walk.update.coeffs.clip_ratio;
    // The ▲/▼ marks over the whole batch, after the update.
    let marked = clip_cases(&walk.policy_after, eps);
    let stat = |testid: &'static str, label: &'static str, x: f32| {
        view! {
            <div class="stat">
                <span class="label">{label}</span>
                <span class="num" data-testid=testid data-v=exact(x)>{num(x)}</span>
            </div>
        }
    };
    // With exercises on, the advantages and returns here came from the student's gae: where
    // they differ from the reference's, the cell shows the reference's under them.
    let compared = walk.exercises.as_ref().and_then(|c| c.gae.as_ref());
    let whitened = walk.whiten.is_some();
    let reference = |column: &str, t: usize| {
        let c = compared?;
        let column = if column == "white" && !whitened {
            "adv"
        } else {
            column
        };
        c.differs_at(column, row, t)?;
        Some(("reference", c.reference.column(column)?[row][t]))
    };
    let rows = policy
        .tokens
        .iter()
        .map(|p| {
            let t = p.t;
            // The band drawn from 0.5 to 1.5: where the ratio falls against [1 - eps, 1 + eps].
            let pos = ((p.ratio - 0.5).clamp(0.0, 1.0)) * 100.0;
            let (lo, hi) = ((0.5 - eps).max(0.0) * 100.0, (0.5 + eps).min(1.0) * 100.0);
            let marker = match p.clip {
                PolicyClip::AboveBand => "▲ clipped (A > 0)",
                PolicyClip::BelowBand => "▼ clipped (A < 0)",
                PolicyClip::No => "",
            };
            let class = if p.clip != PolicyClip::No { "clipped" } else { "" };
            token_row(
                state,
                "upd-row",
                t,
                class.into(),
                false,
                view! {
                    <td class="num">{t}</td>
                    <td class="tokcell">{show_token(&response_token(walk, row, t))}</td>
                    {compared_cell(state, format!("upd-adv-{t}"), p.advantage, reference("white", t))}
                    {cell(state, format!("upd-old-{t}"), p.logp_old)}
                    {(cursor >= 1).then(|| view! {
                        {cell(state, format!("upd-new-{t}"), p.logp_new)}
                        {explain_cell(state, format!("upd-ratio-{t}"), format_ratio(p.ratio), p.ratio, t, Quantity::Ratio)}
                        <td class="band">
                            <span class="band-track">
                                <span class="band-ok" style=format!("left:{lo:.1}%;width:{:.1}%", hi - lo)></span>
                                <span class="band-dot" style=format!("left:{pos:.1}%")></span>
                            </span>
                        </td>
                        <td class="clipmark" data-testid=format!("upd-clip-{t}")>{marker}</td>
                    })}
                    {(cursor == 0).then(|| plain_cell(format!("upd-ent-{t}"), walk.entropy[row][t]))}
                },
            )
        })
        .collect_view();
    // The critic's columns in a table of their own, so each table fits a projector.
    let critic_rows = value
        .tokens
        .iter()
        .map(|v| {
            let t = v.t;
            token_row(
                state,
                "upd-vrow",
                t,
                if v.was_clipped { "clipped".into() } else { String::new() },
                false,
                view! {
                    <td class="num">{t}</td>
                    <td class="tokcell">{show_token(&response_token(walk, row, t))}</td>
                    {plain_cell(format!("upd-vold-{t}"), v.value_old)}
                    {plain_cell(format!("upd-vnew-{t}"), v.value_new)}
                    {compared_cell(state, format!("upd-ret-{t}"), v.ret, reference("ret", t))}
                    <td class="clipmark" data-testid=format!("upd-vclip-{t}")>{if v.was_clipped { "clipped error counts" } else { "" }}</td>
                    {plain_cell(format!("upd-ent-{t}"), walk.entropy[row][t])}
                },
            )
        })
        .collect_view();
    let minibatches = exp
        .rollout
        .ids
        .len()
        .div_ceil(walk.update.mini_batch_size.max(1));
    let main = view! {
        {token_strip(state, walk, row, real_len(walk, row), None)}
        <div class="stats stage-data" data-testid="update-stats">
            {stat("loss-policy", "policy loss", stats.loss_policy)}
            {stat("loss-value", "value loss", stats.loss_value)}
            {stat("loss-entropy", "entropy", stats.loss_entropy)}
            {stat("loss-total", "total loss", stats.loss_total)}
            {stat("approx-kl", "approx KL (new vs old policy)", stats.approx_kl)}
            {stat("policy-clip-frac", "policy clip frac", stats.policy_clip_frac)}
            {stat("value-clip-frac", "value clip frac", stats.value_clip_frac)}
            {stat("grad-norm", "grad norm (before clip to 1)", stats.grad_norm)}
        </div>
        <p class="note" data-testid="update-objective">
            {match walk.update.grpo {
                None => format!(
                    "Means over the update's {} optimizer steps ({} epochs × {} mini-batches). total = policy + {} · value − {} · entropy.",
                    stats.optimizer_steps, walk.update.epochs, minibatches, walk.update.coeffs.vf_coef, walk.update.coeffs.entropy_coeff
                ),
                Some(g) => format!(
                    "GRPO: means over the update's {} optimizer steps ({} epochs × {} mini-batches). total = policy + {} · KL − {} · entropy, with the k3 KL to the reference {} ({}); no value loss: the critic columns show a value head this update did not train. The advantages are each response's against its group (GAE stage).",
                    stats.optimizer_steps, walk.update.epochs, minibatches, g.beta, walk.update.coeffs.entropy_coeff, num(stats.loss_kl), g.agg.name()
                ),
            }}
        </p>
        {(cursor >= 1).then(|| view! {
            <p class="explain" data-testid="after-update" data-current="1">
                {format!(
                    "After {} AdamW steps: the new log-probabilities beside the old ones, for response {}. \
                     The band is [{:.2}, {:.2}]. ▲ (Â > 0, ρ above {:.2}) and ▼ (Â < 0, ρ below {:.2}) mark tokens \
                     whose own term would give no gradient in a further epoch; the clip does not hold them still: \
                     shared weights, other tokens and AdamW's momentum can still move them. The marks count the \
                     batch after the update ({} of its {} tokens); the policy clip fraction above is a mean over \
                     the update's steps, each measured before its step.",
                    stats.optimizer_steps, row + 1, 1.0 - eps, 1.0 + eps, 1.0 + eps, 1.0 - eps,
                    marked.clipped, marked.total
                )}
            </p>
        })}
        {loss_comparison(walk)}
        <div class="table-scroll">
            <table class="numbers" data-testid="update-table">
                <caption>"The policy: each token's ratio against the clip band"</caption>
                <thead><tr>
                    <th>"t"</th><th>"token"</th><th>"Â_t"</th><th>"log π_old"</th>
                    {(cursor >= 1).then(|| view! {
                        <th>"log π_new"</th><th>"ratio"</th><th>"clip band"</th><th>"clip"</th>
                    })}
                    {(cursor == 0).then(|| view! { <th>"entropy"</th> })}
                </tr></thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
        {(cursor >= 1).then(|| view! {
            <div class="table-scroll">
                <table class="numbers" data-testid="critic-table">
                    <caption>"The critic: each token's new value against the old one and the return"</caption>
                    <thead><tr><th>"t"</th><th>"token"</th><th>"V_old"</th><th>"V_new"</th><th>"R_t"</th><th>"value clip"</th><th>"entropy"</th></tr></thead>
                    <tbody>{critic_rows}</tbody>
                </table>
            </div>
            {clip_explorer(state, walk, row)}
            {push_harder(state, walk, row)}
        })}
    }
    .into_any();
    let vclip = walk.update.coeffs.clip_range_value;
    let side = view! {
        {mathml(math::clipped_objective(eps))}
        {provenance_view(state, Stage::Update)}
        {notes_view(state, notes(walk, Stage::Update, row, iteration))}
        {why("Why several epochs, and why clip?", view! {
            "Sampling is the expensive part, so PPO reuses each batch for several epochs. Once the policy "
            "moves, its tokens' probabilities no longer match those it sampled with: the "
            {term("ratio", "ratio")} " π_new / π_old measures how far. The " {term("clip", "clip")}
            " stops rewarding a token once its ratio has left [1 − ε, 1 + ε] on the side its advantage "
            "pushes: there its gradient is 0. That is what keeps the update proximal. "
            {format!(
                "The value loss takes the larger of the unclipped and the clipped squared error, with the band \
                 V_old ± {vclip}. When V_new has left the band after moving toward the return R (and has not \
                 passed R by as much as the band's edge is from R), the clipped error is the larger and the \
                 critic's gradient for that token is 0: no reward for moving further toward R in this update. \
                 Outside the band on the side away from R, the unclipped error is the larger and pulls V_new \
                 back; inside the band the two are equal and train it as usual."
            )}
            " The " {term("entropy", "entropy")} " column is the rollout policy's, per token."
        }.into_any())}
    }
    .into_any();
    columns(main, side)
}

fn mask(state: AppState, walk: Arc<Walkthrough>, row: usize, iteration: usize) -> impl IntoView {
    let p = walk.experience.rollout.prompt_len;
    let diff = walk.teacher_forced_max_diff;
    let real = real_len(&walk, row);
    let r_len = walk.experience.rollout.response_len();
    // The first response tokens (at most four; fewer when the response is shorter).
    let align = (0..r_len.min(4))
        .map(|t| {
            let pos = p - 1 + t;
            let target = if t < real {
                format!(
                    "response token {t}: {}",
                    show_token(&walk.tokens[row][p + t])
                )
            } else {
                format!("padding after the end of the response (position {})", p + t)
            };
            view! {
                <tr data-testid=format!("align-{t}") class:p-minus-1={t == 0}>
                    <td class="num">{pos}</td>
                    <td class="tokcell">{show_token(&walk.tokens[row][pos])}</td>
                    <td>"→ predicts"</td>
                    <td class="tokcell">{target}</td>
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
        <table class="numbers" id="alignment" data-testid="alignment">{align}</table>
        <p class="check" data-testid="tf-check" data-state=if diff < 1e-4 { "passed" } else { "failed" }>
            "Live check: one teacher-forced pass over all rollouts reproduces the log-probabilities "
            "recorded token by token. max |difference| = "
            <strong data-testid="tf-max-diff" data-v=exact(diff)>{format!("{diff:.2e}")}</strong>
        </p>
    }
    .into_any();
    let side = view! {
        {notes_view(state, notes(&walk, Stage::Mask, row, iteration))}
        {why("Why one pass is enough", view! {
            "During the update PPO needs the new log-probability of every response token, and it gets "
            "them all from one teacher-forced pass over prompt + response. The causal mask makes that "
            "exact: position i attends only to positions ≤ i (the grey triangle is masked; left padding "
            "is hatched), so the hidden state at position i is the state the rollout was in there. "
            "The picked token's row (what it attends to) and column (who attends to it) are outlined "
            "on the small maps."
        }.into_any())}
    }
    .into_any();
    columns(main, side).into_any()
}

/// With exercises on: exercises 1, 2, 3 and 5, the student's beside the reference's, on this
/// batch through the updated policy.
fn loss_comparison(walk: &Walkthrough) -> Option<impl IntoView> {
    let checks = &walk.exercises.as_ref()?.losses;
    let differing = checks.iter().filter(|c| c.differs()).count();
    let open = differing > 0;
    let rows = checks
        .iter()
        .map(|c| {
            let key = c.key.clone();
            let ex = crate::exercises::exercise(c.exercise);
            let yours = match c.yours {
                Some(y) => view! {
                    <td class="num" class:differs=c.differs() data-testid=format!("check-{key}-yours") data-v=exact(y)>
                        {c.differs().then(|| view! { <span class="mark" aria-hidden="true">"≠ "</span> })}
                        {num(y)}
                    </td>
                }
                .into_any(),
                None => view! {
                    <td class="todo" data-testid=format!("check-{key}-yours") data-v="">"not written"</td>
                }
                .into_any(),
            };
            view! {
                <tr data-testid=format!("check-{key}") data-state=if c.differs() { "differs" } else if c.yours.is_some() { "match" } else { "todo" }>
                    <td>{format!("{} {}", ex.number, ex.function)}</td>
                    <td>{c.label.clone()}</td>
                    {yours}
                    {plain_cell(format!("check-{key}-ref"), c.reference)}
                </tr>
            }
        })
        .collect_view();
    Some(view! {
        <details class="exercise-check" data-testid="exercise-check" open=open>
            <summary>
                {if differing == 0 {
                    "Your exercises 1, 2, 3 and 5 against the reference: nothing differs".to_string()
                } else {
                    format!("Your exercises 1, 2, 3 and 5 against the reference: {differing} values differ")
                }}
            </summary>
            <p class="note">
                "Both computed on this batch as one mini-batch, through the policy after the update. \
                 Exercise 5 uses your exercises 1-3, so a mistake there shows in its total too."
            </p>
            <table class="numbers">
                <thead><tr><th>"exercise"</th><th>"value"</th><th>"yours"</th><th>"reference"</th></tr></thead>
                <tbody>{rows}</tbody>
            </table>
        </details>
    })
}
