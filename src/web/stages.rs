//! One component per stage of a PPO iteration. Each reads the iteration's [`Walkthrough`], the
//! selected sequence and the step cursor, and shows how far the stage has got.

use std::sync::Arc;

use leptos::prelude::*;
use wasm_bindgen::JsCast;

use super::state::{AppState, Stage};
use crate::ppo::policy_loss::PolicyClip;
use crate::ppo::walkthrough::{AttentionMaps, Walkthrough};
use crate::reward::GsmScore;

/// A number for people: 3 decimals, a real minus sign.
pub fn num(x: f32) -> String {
    let s = format!("{x:.3}");
    if s == "-0.000" {
        "0.000".into()
    } else {
        s.replace('-', "−")
    }
}

/// A number for tests and for copying: the shortest text that reads back as the same f32.
pub fn exact(x: f32) -> String {
    format!("{x:?}")
}

/// A table cell with a number: shown rounded, exact in `data-v`.
fn cell(testid: String, x: f32) -> impl IntoView {
    view! { <td class="num" data-testid=testid data-v=exact(x)>{num(x)}</td> }
}

/// A number the student's code and the reference disagree on (exercises on): `x` as the table
/// shows it, marked, with the other side's value under it. `other` is `("yours", y)` where the
/// table shows the reference's number and `("reference", y)` where it shows what ran.
fn compared_cell(testid: String, x: f32, other: Option<(&'static str, f32)>) -> AnyView {
    match other {
        None => cell(testid, x).into_any(),
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

/// A token as text, spaces made visible.
pub fn show_token(text: &str) -> String {
    match text {
        "\n" => "⏎".into(),
        t => t.replace(' ', "·"),
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
        let body = match stage {
            Stage::Rollout => rollout(&walk, row, cursor).into_any(),
            Stage::Score => score(state, &walk, row, cursor).into_any(),
            Stage::Values => values(&walk, row).into_any(),
            Stage::Gae => gae(&walk, row, cursor).into_any(),
            Stage::Update => update(&walk, row, cursor).into_any(),
            Stage::Mask => view! { <MaskStage walk=walk.clone() /> }.into_any(),
        };
        let steps = stage.steps(&walk, row);
        view! {
            <section class="card stage" data-testid=format!("stage-{}", stage.key()) data-cursor=cursor>
                <div class="stage-head">
                    <h2>{stage.title()}</h2>
                    <span class="progress" data-testid="stage-progress">
                        {format!("step {} of {steps}", cursor.min(steps - 1) + 1)}
                    </span>
                </div>
                {body}
            </section>
        }
        .into_any()
    }
}

/// The row picker: one button per sampled response, marked by its score.
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
                        on:click=move |_| {
                            state.row.set(b);
                            state.cursor.set(0);
                        }
                    >
                        {b + 1}
                    </button>
                }
            })
            .collect_view();
        Some(view! {
            <div class="row-picker" aria-label="Which response the stages show">
                <span class="label">"response"</span>
                {buttons}
            </div>
        })
    }
}

fn prompt_tokens(walk: &Walkthrough, row: usize) -> Vec<String> {
    let p = walk.experience.rollout.prompt_len;
    walk.tokens[row][..p]
        .iter()
        .zip(&walk.experience.rollout.attention_mask[row][..p])
        .filter(|(_, m)| **m == 1)
        .map(|(t, _)| t.clone())
        .collect()
}

fn response_token(walk: &Walkthrough, row: usize, t: usize) -> String {
    walk.tokens[row][walk.experience.rollout.prompt_len + t].clone()
}

fn rollout(walk: &Walkthrough, row: usize, cursor: usize) -> impl IntoView {
    let ro = &walk.experience.rollout;
    let real = walk.gae[row].steps.len();
    let t = cursor.min(real.saturating_sub(1));
    let prompt: String = prompt_tokens(walk, row).concat();
    let chips = (0..real)
        .map(|i| {
            let class = if i == t {
                "tok current"
            } else if i < t {
                "tok"
            } else {
                "tok hidden"
            };
            let text = if i <= t {
                show_token(&response_token(walk, row, i))
            } else {
                "·".into()
            };
            view! { <span class=class data-testid=format!("resp-tok-{i}")>{text}</span> }
        })
        .collect_view();
    let sampled = ro.ids[row][ro.prompt_len + t];
    let top = ro.top[row][t].clone();
    let candidates = top
        .iter()
        .enumerate()
        .map(|(k, (id, p))| {
            view! {
                <tr class:sampled=*id == sampled data-testid=format!("cand-{k}")>
                    <td class="tokcell">{candidate_text(walk, *id)}</td>
                    <td class="num" data-v=exact(*p)>{format!("{:.1}%", p * 100.0)}</td>
                    <td class="barcell"><span class="bar" style=format!("width:{:.1}%", p * 100.0)></span></td>
                    <td>{if *id == sampled { "← sampled" } else { "" }}</td>
                </tr>
            }
        })
        .collect_view();
    let history = (0..=t)
        .map(|i| {
            view! {
                <tr class:current=i == t>
                    <td class="num">{i}</td>
                    <td class="tokcell">{show_token(&response_token(walk, row, i))}</td>
                    {cell(format!("logp-{i}"), ro.logprobs[row][i])}
                    {cell(format!("value-{i}"), ro.values[row][i])}
                </tr>
            }
        })
        .collect_view();
    view! {
        <p class="explain">
            "The policy writes its answer one token at a time. At each step it turns the logits at the "
            "last position into probabilities, " <code>"softmax(logits / temperature)"</code>
            ", and samples. We keep the sampled token's log-probability "
            <code>"log π_old(token | s_t)"</code> " and, from the value head on the same hidden state, "
            <code>"V(s_t)"</code> ": the critic's guess of the reward to come, made before the token is chosen."
        </p>
        <div class="prompt" data-testid="prompt"><span class="label">"prompt"</span>{prompt}</div>
        <div class="response" data-testid="response-tokens">{chips}</div>
        <div class="split">
            <div>
                <h3>{format!("step t = {t}: candidates")}</h3>
                <table class="numbers" data-testid="candidates">
                    <thead><tr><th>"token"</th><th>"probability"</th><th></th><th></th></tr></thead>
                    <tbody>{candidates}</tbody>
                </table>
                <p class="note">
                    "sampled " <code>{show_token(&response_token(walk, row, t))}</code>
                    " with log-probability " <strong data-testid="current-logp">{num(ro.logprobs[row][t])}</strong>
                    "; value of the state before it " <strong data-testid="current-value">{num(ro.values[row][t])}</strong>
                </p>
            </div>
            <div>
                <h3>"kept for PPO"</h3>
                <table class="numbers" data-testid="rollout-table">
                    <thead><tr><th>"t"</th><th>"token"</th><th>"log π_old"</th><th>"V(s_t)"</th></tr></thead>
                    <tbody>{history}</tbody>
                </table>
            </div>
        </div>
    }
}

fn candidate_text(walk: &Walkthrough, id: u32) -> String {
    walk.texts
        .get(&id)
        .map(|t| show_token(t))
        .unwrap_or_else(|| format!("#{id}"))
}

fn score(state: AppState, walk: &Walkthrough, row: usize, cursor: usize) -> impl IntoView {
    let exp = &walk.experience;
    let ro = &exp.rollout;
    let real = walk.gae[row].steps.len();
    let responses = exp
        .scores
        .iter()
        .enumerate()
        .map(|(b, s)| {
            let (kind, label) = score_label(s);
            let text = exp.responses[b].clone();
            view! {
                <tr class:selected=b == row data-testid=format!("score-row-{b}") data-kind=kind
                    on:click=move |_| state.row.set(b)>
                    <td class="num">{b + 1}</td>
                    <td class="response-text">{text}</td>
                    <td><span class=format!("badge {kind}")>{label}</span></td>
                    {cell(format!("score-{b}"), s.reward())}
                </tr>
            }
        })
        .collect_view();
    let kl_rows = (0..real)
        .map(|t| {
            let reward = exp.rewards[row][t];
            view! {
                <tr>
                    <td class="num">{t}</td>
                    <td class="tokcell">{show_token(&response_token(walk, row, t))}</td>
                    {cell(format!("kl-logp-{t}"), ro.logprobs[row][t])}
                    {cell(format!("kl-ref-{t}"), exp.ref_logprobs[row][t])}
                    {cell(format!("kl-{t}"), exp.kl[row][t])}
                    {(cursor >= 2).then(|| cell(format!("reward-{t}"), reward))}
                </tr>
            }
        })
        .collect_view();
    let beta = exp.kl_coeff;
    view! {
        <p class="explain">
            "The reward model here is a rule: the number after " <code>"####"</code>
            " must equal the reference answer (1.0); the right format with a wrong number earns 0.1; "
            "anything else 0. A response only gets its score at the end, on its last token."
        </p>
        <table class="numbers responses" data-testid="score-table">
            <thead><tr><th>"#"</th><th>"response"</th><th>"verdict"</th><th>"score"</th></tr></thead>
            <tbody>{responses}</tbody>
        </table>
        {(cursor >= 1).then(|| view! {
            <p class="explain">
                "Why a frozen reference? The policy is rewarded for drifting only as far as the task "
                "needs. Each token pays " <code>{format!("β · (log π − log π_ref)")}</code>
                " with β = " {beta.to_string()} ", measured against a copy of the starting model that never "
                "trains. Without it the policy can find text that games the score and forgets how to write."
            </p>
            <table class="numbers" data-testid="kl-table">
                <thead><tr>
                    <th>"t"</th><th>"token"</th><th>"log π_old"</th><th>"log π_ref"</th><th>"KL_t"</th>
                    {(cursor >= 2).then(|| view! { <th>"r_t = −β·KL_t (+ score at the end)"</th> })}
                </tr></thead>
                <tbody>{kl_rows}</tbody>
            </table>
        })}
    }
}

fn values(walk: &Walkthrough, row: usize) -> impl IntoView {
    let ro = &walk.experience.rollout;
    let real = walk.gae[row].steps.len();
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
                <div class="vbar-row">
                    <span class="tokcell">{show_token(&response_token(walk, row, t))}</span>
                    <span class="vbar-track"><span class=bar_class style=style></span></span>
                    <span class="num" data-testid=format!("vbar-{t}") data-v=exact(v)>{num(v)}</span>
                </div>
            }
        })
        .collect_view();
    view! {
        <p class="explain">
            "Why a value for every token? The score arrives only at the end, but the policy needs to know "
            "which of its choices helped. The critic estimates the return from every state, so each token "
            "can be judged against what was expected just before it: that comparison is the advantage. "
            "The value head is one linear layer on the same hidden states as the policy."
        </p>
        <div class="vbars" data-testid="value-bars">{bars}</div>
    }
}

fn gae(walk: &Walkthrough, row: usize, cursor: usize) -> impl IntoView {
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
    let r_len = walk.experience.rollout.response_len();
    let offset: usize = walk.gae[..row].iter().map(|_| r_len).sum();
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
            view! {
                <tr class:current=is_current class:pending=!filled data-testid=format!("gae-row-{t}")>
                    <td class="num">{t}</td>
                    <td class="tokcell">{show_token(&response_token(walk, row, t))}</td>
                    {cell(format!("gae-reward-{t}"), walk.experience.rewards[row][t])}
                    {cell(format!("gae-value-{t}"), walk.experience.rollout.values[row][t])}
                    {if filled {
                        view! {
                            {compared_cell(format!("gae-delta-{t}"), trace.deltas[t], yours("delta", t))}
                            {compared_cell(format!("gae-adv-{t}"), trace.advantages[t], yours("adv", t))}
                            {compared_cell(format!("gae-ret-{t}"), trace.returns[t], yours("ret", t))}
                        }.into_any()
                    } else {
                        view! { <td class="num">"·"</td><td class="num">"·"</td><td class="num">"·"</td> }.into_any()
                    }}
                    {match (&whiten, whitened_shown) {
                        (Some(w), true) => compared_cell(format!("gae-white-{t}"), w.whitened[offset + t], yours("white", t)),
                        _ => view! { <td class="num">"·"</td> }.into_any(),
                    }}
                </tr>
            }
        })
        .collect_view();
    let formula = match (&current, whitened_shown, &walk.whiten) {
        (_, true, Some(w)) => view! {
            <div class="formula" data-testid="gae-formula">
                <div>{format!("whitening over the batch's {} real tokens:", w.count)}</div>
                <div>{format!("mean = {}, std = {} (unbiased)", num(w.mean), num(w.std))}</div>
                <div>"Â_t = (A_t − mean) / std"</div>
            </div>
        }
        .into_any(),
        (_, true, None) => view! {
            <div class="formula" data-testid="gae-formula">"whitening is off: the update uses A_t as computed"</div>
        }
        .into_any(),
        (Some(step), false, _) => view! {
            <div class="formula" data-testid="gae-formula">
                <div class="general">"δ_t = r_t + γ · V(s_t+1) · m_t+1 − V(s_t)"</div>
                <div data-testid="gae-delta-formula">{step.delta_formula(params.gamma)}</div>
                <div class="general">"A_t = δ_t + γ · λ · m_t+1 · A_t+1"</div>
                <div data-testid="gae-adv-formula">{step.advantage_formula(params)}</div>
                <div>{format!("R_{t} = A_{t} + V(s_{t}) = {}", num(step.ret), t = step.t)}</div>
            </div>
        }
        .into_any(),
        (None, false, _) => ().into_any(),
    };
    view! {
        <p class="explain">
            "Why backwards? Each advantage is this token's surprise " <code>"δ_t"</code>
            " plus a discounted share of the next token's advantage: "
            <code>"A_t = δ_t + γλ·A_t+1"</code> ". Starting from the last token, " <code>"A_t+1"</code>
            " is always ready, so one sweep from the end computes them all. Past the last token there "
            "is nothing: " <code>"m_t+1 = 0"</code> " drops both " <code>"V(s_t+1)"</code> " and "
            <code>"A_t+1"</code> ", so the last token's advantage is its δ alone."
        </p>
        {formula}
        {gae_comparison(walk)}
        <table class="numbers" data-testid="gae-table">
            <thead><tr>
                <th>"t"</th><th>"token"</th><th>"r_t"</th><th>"V(s_t)"</th><th>"δ_t"</th>
                <th>"A_t"</th><th>"R_t = A_t + V(s_t)"</th><th>"Â_t (whitened)"</th>
            </tr></thead>
            <tbody>{rows}</tbody>
        </table>
        {whitened_shown.then(|| view! {
            <p class="explain">
                "Why whiten? Advantages can be all positive or tiny in one batch and huge in the next. "
                "Shifting them to mean 0 and scaling to std 1 over the batch keeps the step size steady "
                "and makes roughly half the tokens pushed up, half pushed down. The returns R_t, the "
                "critic's targets, are not whitened."
            </p>
        })}
        <details class="cli" data-testid="gae-cli">
            <summary>"Check these numbers with the command line"</summary>
            <p>"Save this as " <code>"gae.json"</code> " and run " <code>"ppo-lens gae --table --whiten --input gae.json"</code> ":"</p>
            <pre data-testid="gae-json">{gae_json(walk)}</pre>
        </details>
    }
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
    let rows = |m: &Vec<Vec<f32>>| {
        let rows: Vec<String> = m
            .iter()
            .map(|r| {
                format!(
                    "[{}]",
                    r.iter().map(|x| exact(*x)).collect::<Vec<_>>().join(", ")
                )
            })
            .collect();
        format!("[\n    {}\n  ]", rows.join(",\n    "))
    };
    let params = walk.gae.first().map(|g| g.params);
    format!(
        "{{\n  \"rewards\": {},\n  \"values\": {},\n  \"mask\": {},\n  \"gamma\": {},\n  \"lam\": {}\n}}",
        rows(&walk.experience.rewards),
        rows(&walk.experience.rollout.values),
        rows(&walk.experience.rollout.response_mask),
        params.map_or(1.0, |p| p.gamma),
        params.map_or(0.95, |p| p.lam),
    )
}

fn update(walk: &Walkthrough, row: usize, cursor: usize) -> impl IntoView {
    let stats = &walk.stats;
    let exp = &walk.experience;
    let policy = &walk.policy_after[row];
    let value = &walk.value_after[row];
    let eps = walk.update.coeffs.clip_ratio;
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
        .zip(&value.tokens)
        .map(|(p, v)| {
            let t = p.t;
            // The band drawn from 0.5 to 1.5: where the ratio falls against [1 - eps, 1 + eps].
            let pos = ((p.ratio - 0.5).clamp(0.0, 1.0)) * 100.0;
            let (lo, hi) = ((0.5 - eps).max(0.0) * 100.0, (0.5 + eps).min(1.0) * 100.0);
            let marker = match p.clip {
                PolicyClip::AboveBand => "▲ clipped (A > 0)",
                PolicyClip::BelowBand => "▼ clipped (A < 0)",
                PolicyClip::No => "",
            };
            view! {
                <tr class:clipped=p.clip != PolicyClip::No data-testid=format!("upd-row-{t}")>
                    <td class="num">{t}</td>
                    <td class="tokcell">{show_token(&response_token(walk, row, t))}</td>
                    {compared_cell(format!("upd-adv-{t}"), p.advantage, reference("white", t))}
                    {cell(format!("upd-old-{t}"), p.logp_old)}
                    {(cursor >= 1).then(|| view! {
                        {cell(format!("upd-new-{t}"), p.logp_new)}
                        {cell(format!("upd-ratio-{t}"), p.ratio)}
                        <td class="band">
                            <span class="band-track">
                                <span class="band-ok" style=format!("left:{lo:.1}%;width:{:.1}%", hi - lo)></span>
                                <span class="band-dot" style=format!("left:{pos:.1}%")></span>
                            </span>
                        </td>
                        <td class="clipmark" data-testid=format!("upd-clip-{t}")>{marker}</td>
                        {cell(format!("upd-vold-{t}"), v.value_old)}
                        {cell(format!("upd-vnew-{t}"), v.value_new)}
                        {compared_cell(format!("upd-ret-{t}"), v.ret, reference("ret", t))}
                    })}
                    {cell(format!("upd-ent-{t}"), walk.entropy[row][t])}
                </tr>
            }
        })
        .collect_view();
    let minibatches = exp
        .rollout
        .ids
        .len()
        .div_ceil(walk.update.mini_batch_size.max(1));
    view! {
        <p class="explain">
            "Why several epochs on one batch? Sampling is the expensive part, so PPO reuses each batch "
            {format!("for {} epochs of {} mini-batches. ", walk.update.epochs, minibatches)}
            "Once the policy moves, its tokens' probabilities no longer match those it sampled with: "
            "the ratio " <code>"π_new / π_old"</code> " measures how far. The clipped objective "
            <code>"max(−A·ratio, −A·clip(ratio, 1−ε, 1+ε))"</code>
            " stops rewarding a token once its ratio leaves the band on the side its advantage pushes "
            "it: that is what keeps the update proximal."
        </p>
        <div class="stats" data-testid="update-stats">
            {stat("loss-policy", "policy loss", stats.loss_policy)}
            {stat("loss-value", "value loss", stats.loss_value)}
            {stat("loss-entropy", "entropy", stats.loss_entropy)}
            {stat("loss-total", "total loss", stats.loss_total)}
            {stat("approx-kl", "approx KL", stats.approx_kl)}
            {stat("policy-clip-frac", "policy clip frac", stats.policy_clip_frac)}
            {stat("value-clip-frac", "value clip frac", stats.value_clip_frac)}
            {stat("grad-norm", "grad norm (before clip to 1)", stats.grad_norm)}
        </div>
        <p class="note">
            {format!(
                "Means over the update's {} optimizer steps. total = policy + {} · value − {} · entropy.",
                stats.optimizer_steps, walk.update.coeffs.vf_coef, walk.update.coeffs.entropy_coeff
            )}
        </p>
        {(cursor >= 1).then(|| view! {
            <p class="explain" data-testid="after-update">
                {format!(
                    "After {} AdamW steps: the new log-probabilities beside the old ones, for response {}. \
                     The band is [{:.2}, {:.2}]; ▲/▼ mark tokens the clip would hold still in a further epoch.",
                    stats.optimizer_steps, row + 1, 1.0 - eps, 1.0 + eps
                )}
            </p>
        })}
        {loss_comparison(walk)}
        <table class="numbers" data-testid="update-table">
            <thead><tr>
                <th>"t"</th><th>"token"</th><th>"Â_t"</th><th>"log π_old"</th>
                {(cursor >= 1).then(|| view! {
                    <th>"log π_new"</th><th>"ratio"</th><th>"clip band"</th><th></th>
                    <th>"V_old"</th><th>"V_new"</th><th>"R_t"</th>
                })}
                <th>"entropy"</th>
            </tr></thead>
            <tbody>{rows}</tbody>
        </table>
    }
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
                    {cell(format!("check-{key}-ref"), c.reference)}
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

#[component]
fn MaskStage(walk: Arc<Walkthrough>) -> impl IntoView {
    let Some(att) = walk.attention.clone() else {
        return view! { <p class="explain">"No attention maps kept for this iteration."</p> }
            .into_any();
    };
    let p = walk.experience.rollout.prompt_len;
    let row = att.row;
    let mask = walk.experience.rollout.attention_mask[row].clone();
    let layers = att.maps.len();
    let heads = att.maps.first().map_or(0, Vec::len);
    let att = Arc::new(att);
    let canvases = (0..layers)
        .flat_map(|l| (0..heads).map(move |h| (l, h)))
        .map(|(l, h)| {
            let node = NodeRef::<leptos::html::Canvas>::new();
            let att = att.clone();
            let mask = mask.clone();
            Effect::new(move |_| {
                if let Some(canvas) = node.get() {
                    draw_attention(&canvas, &att, l, h, &mask, p);
                }
            });
            view! {
                <figure class="attn">
                    <canvas node_ref=node width="240" height="240" data-testid=format!("attn-{l}-{h}")></canvas>
                    <figcaption>{format!("layer {l}, head {h}")}</figcaption>
                </figure>
            }
        })
        .collect_view();
    let diff = walk.teacher_forced_max_diff;
    let align = (0..4usize)
        .map(|t| {
            let pos = p - 1 + t;
            view! {
                <tr>
                    <td class="num">{pos}</td>
                    <td class="tokcell">{show_token(&walk.tokens[row][pos])}</td>
                    <td>"→ predicts"</td>
                    <td class="tokcell">{format!("response token {t}: {}", show_token(&walk.tokens[row][p + t]))}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <p class="explain">
            "During the update PPO needs the new log-probability of every response token, and it gets "
            "them all from one teacher-forced pass over prompt + response. The causal mask makes that "
            "exact: position i attends only to positions ≤ i (the grey triangle is masked, as is the "
            "left padding), so the hidden state at position i is the state the rollout was in there."
        </p>
        <div class="attn-grid" data-testid="attention-maps">{canvases}</div>
        <p class="explain">
            "Why the " <code>"prompt_len − 1"</code> " slice? The logits at position i predict the token at "
            "position i + 1. Response token t sits at position " <code>"P + t"</code>
            ", so it is scored by the logits at " <code>"P − 1 + t"</code> {format!(" (P = {p} here):")}
        </p>
        <table class="numbers" data-testid="alignment">{align}</table>
        <p class="check" data-testid="tf-check" data-state=if diff < 1e-4 { "passed" } else { "failed" }>
            "Live check: one teacher-forced pass over all rollouts reproduces the log-probabilities "
            "recorded token by token. max |difference| = "
            <strong data-testid="tf-max-diff" data-v=exact(diff)>{format!("{diff:.2e}")}</strong>
        </p>
    }
    .into_any()
}

/// Draws one head's attention: query rows down, key columns across; blue by weight, grey where
/// masked (above the diagonal, or a padded key); a line where the response begins.
fn draw_attention(
    canvas: &web_sys::HtmlCanvasElement,
    att: &AttentionMaps,
    layer: usize,
    head: usize,
    mask: &[u8],
    prompt_len: usize,
) {
    let Some(ctx) = canvas
        .get_context("2d")
        .ok()
        .flatten()
        .and_then(|c| c.dyn_into::<web_sys::CanvasRenderingContext2d>().ok())
    else {
        return;
    };
    let n = att.len;
    let size = canvas.width() as f64;
    let cell = size / n as f64;
    ctx.set_fill_style_str("#ffffff");
    ctx.fill_rect(0.0, 0.0, size, size);
    for q in 0..n {
        for k in 0..n {
            let masked = k > q || mask[k] == 0 || mask[q] == 0;
            if masked {
                ctx.set_fill_style_str("#d5d8de");
            } else {
                // sqrt spreads the small weights apart so the pattern is visible.
                let w = att.weight(layer, head, q, k).clamp(0.0, 1.0).sqrt();
                // White (no attention) to deep blue (all of it).
                let mix = |full: f32| (255.0 - (255.0 - full) * w) as u8;
                ctx.set_fill_style_str(&format!("rgb({},{},{})", mix(20.0), mix(60.0), mix(170.0)));
            }
            ctx.fill_rect(k as f64 * cell, q as f64 * cell, cell.ceil(), cell.ceil());
        }
    }
    // Where the response starts, on both axes.
    let edge = prompt_len as f64 * cell;
    ctx.set_stroke_style_str("#e76f51");
    ctx.set_line_width(1.5);
    ctx.begin_path();
    ctx.move_to(edge, 0.0);
    ctx.line_to(edge, size);
    ctx.move_to(0.0, edge);
    ctx.line_to(size, edge);
    ctx.stroke();
}
