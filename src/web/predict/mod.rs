//! Predict mode (and the tour): before a stage shows its numbers, the page asks about them (the
//! questions of `crate::predict`, made from the batch on show), then reveals the answer beside
//! the student's, with the arithmetic. The stage's view stays withheld until every question of the
//! stage is answered or skipped. A tally per stage lasts while the page is open; nothing is sent
//! anywhere.

pub mod record;

use std::sync::Arc;

use leptos::prelude::*;

use self::record::Outcome;
use super::select::exact;
use super::state::{AppState, Stage};
use crate::lab::walkthrough::Walkthrough;
use crate::predict::{Ask, Mark, Question, Response, in_stage, parse_number, questions, reveal};

/// The questions `stage` asks on the batch on show, in the order it asks them.
fn stage_questions(
    state: AppState,
    walk: &Walkthrough,
    stage: Stage,
    row: usize,
    iteration: usize,
) -> Vec<Question> {
    in_stage(questions(walk, row, iteration), stage, state.predict.first)
}

/// Whether questions are asked: predict mode is on, or the tour runs (a tour that asks before it
/// shows).
fn asking_now(state: AppState) -> bool {
    state.predict.on.get() || state.tour.get().is_some()
}

/// Whether the stage on show still waits for an answer (tracks the signals it reads).
pub fn pending(state: AppState) -> bool {
    if !asking_now(state) {
        return false;
    }
    let Some(walk) = state.walk.get() else {
        return false;
    };
    let iteration = state.shown.get().max(1);
    let row = state.row.get().min(walk.gae.len().saturating_sub(1));
    let asked = stage_questions(state, &walk, state.stage.get(), row, iteration);
    state.predict.outcomes.with(|o| {
        asked
            .iter()
            .any(|q| !o.contains_key(&(iteration, row, q.kind)))
    })
}

/// The predict card of the stage on show, or nothing when predict mode is off or the stage asks
/// nothing of this batch.
pub fn card(
    state: AppState,
    walk: &Arc<Walkthrough>,
    stage: Stage,
    row: usize,
    iteration: usize,
) -> Option<AnyView> {
    if !asking_now(state) {
        return None;
    }
    let asked = stage_questions(state, walk, stage, row, iteration);
    if asked.is_empty() {
        return None;
    }
    let outcomes = state.predict.outcomes.get();
    let first_open = asked
        .iter()
        .position(|q| !outcomes.contains_key(&(iteration, row, q.kind)));
    let later = first_open.map_or(0, |i| asked.len() - i - 1);
    let shown: Vec<AnyView> = asked
        .into_iter()
        .enumerate()
        .filter(|(i, _)| first_open.is_none_or(|open| *i <= open))
        .map(
            |(_, q)| match outcomes.get(&(iteration, row, q.kind)).cloned() {
                None => asking(state, q, iteration).into_any(),
                Some(outcome) => revealed(q, outcome).into_any(),
            },
        )
        .collect();
    let waiting = first_open.is_some();
    Some(
        view! {
            <section class="predict" data-testid="predict" aria-label="Predict, then see" aria-live="polite">
                {shown}
                {(later > 0).then(|| view! {
                    <p class="predict-more">{format!("Then {} more.", if later == 1 { "one question".to_string() } else { format!("{later} questions") })}</p>
                })}
                {waiting.then(|| view! {
                    <p class="predict-hint" data-testid="predict-withheld">"This stage's numbers stay hidden until you answer or skip."</p>
                })}
                {tally_line(state, stage)}
            </section>
        }
        .into_any(),
    )
}

fn tally_line(state: AppState, stage: Stage) -> impl IntoView {
    move || {
        let tally = state.predict.tally.get();
        let (right, asked) = tally.total();
        let (sr, sa) = tally.by_stage[stage.index()];
        (asked > 0).then(|| {
            view! {
                <p class="predict-tally" data-testid="predict-tally" data-right=right data-asked=asked
                    data-stage-right=sr data-stage-asked=sa>
                    {format!(
                        "Your predictions so far: {right} of {asked} right ({}: {sr} of {sa}).",
                        stage.title()
                    )}
                </p>
            }
        })
    }
}

/// The question, asking.
fn asking(state: AppState, q: Question, iteration: usize) -> impl IntoView {
    let q = Arc::new(q);
    let key = q.kind.key();
    let answer = {
        let q = q.clone();
        move |said: Response| {
            let r = reveal(&q, &said);
            state
                .predict
                .record(iteration, &q, Outcome::Revealed { said, reveal: r });
        }
    };
    let skip = {
        let q = q.clone();
        move |_| state.predict.record(iteration, &q, Outcome::Skipped)
    };
    let input: AnyView = match &q.ask {
        Ask::Tokens(texts) => {
            let picked = RwSignal::new(vec![false; texts.len()]);
            let buttons = texts
                .iter()
                .enumerate()
                .map(|(t, text)| {
                    view! {
                        <button class="predict-token" data-testid=format!("predict-token-{t}")
                            aria-pressed=move || picked.with(|p| p[t]).to_string()
                            on:click=move |_| picked.update(|p| p[t] = !p[t])>
                            {text.clone()}
                        </button>
                    }
                })
                .collect_view();
            let check = answer.clone();
            view! {
                <div class="predict-tokens" role="group" aria-label="the response's tokens">{buttons}</div>
                <button class="primary" data-testid="predict-check" on:click=move |_| {
                    let chosen = picked.with(|p| (0..p.len()).filter(|&t| p[t]).collect());
                    check(Response::Tokens(chosen));
                }>"check"</button>
            }
            .into_any()
        }
        Ask::Number { .. } => {
            let text = RwSignal::new(String::new());
            let problem = RwSignal::new(None::<String>);
            let submit = {
                let answer = answer.clone();
                move || match parse_number(&text.get_untracked()) {
                    Some(x) => answer(Response::Number(x)),
                    None => problem.set(Some(format!(
                        "“{}” is not a number: type one like 0.42 or −1.5.",
                        text.get_untracked()
                    ))),
                }
            };
            let on_enter = submit.clone();
            view! {
                <label class="predict-number">"A_t = "
                    <input type="text" inputmode="decimal" autocomplete="off" data-testid="predict-number"
                        prop:value=move || text.get()
                        on:input=move |ev| { text.set(event_target_value(&ev)); problem.set(None); }
                        on:keydown=move |ev: web_sys::KeyboardEvent| if ev.key() == "Enter" { on_enter() } />
                </label>
                <button class="primary" data-testid="predict-check" on:click=move |_| submit()>"check"</button>
                {move || problem.get().map(|p| view! { <p class="error" data-testid="predict-problem">{p}</p> })}
            }
            .into_any()
        }
        Ask::Choice(choices) => choices
            .iter()
            .enumerate()
            .map(|(i, choice)| {
                let answer = answer.clone();
                view! {
                    <button class="predict-choice" data-testid=format!("predict-choice-{i}")
                        on:click=move |_| answer(Response::Choice(i))>
                        {choice.clone()}
                    </button>
                }
            })
            .collect_view()
            .into_any(),
    };
    view! {
        <div class="predict-q" data-testid=format!("predict-{key}") data-state="asking" data-t=q.t
            data-supposed=q.supposed.map(exact)>
            <h3>"Predict first"</h3>
            <p class="predict-prompt" data-testid="predict-prompt">{q.prompt.clone()}</p>
            <div class="predict-answer">
                {input}
                <button class="predict-skip" data-testid="predict-skip" on:click=skip>"skip"</button>
            </div>
        </div>
    }
}

/// The question, answered or skipped: the student's answer beside the batch's, and why.
fn revealed(q: Question, outcome: Outcome) -> impl IntoView {
    let key = q.kind.key();
    // The why of a number or a token question ends in the answer; a choice's is named first.
    let answer_text = match (&q.ask, &q.answer) {
        (Ask::Choice(choices), Response::Choice(i)) => choices
            .get(*i)
            .map(|c| format!("The answer: {c}. "))
            .unwrap_or_default(),
        _ => String::new(),
    };
    match outcome {
        Outcome::Skipped => view! {
            <div class="predict-q" data-testid=format!("predict-{key}") data-state="skipped" data-t=q.t
                data-supposed=q.supposed.map(exact)>
                <p class="predict-prompt">{q.prompt.clone()}</p>
                <p class="predict-verdict" data-testid="predict-verdict" data-right="skipped">
                    {format!("Skipped. {answer_text}{}", q.why)}
                </p>
            </div>
        }
        .into_any(),
        Outcome::Revealed { reveal, .. } => {
            let marks = match &q.ask {
                Ask::Tokens(texts) => Some(
                    texts
                        .iter()
                        .zip(&reveal.marks)
                        .enumerate()
                        .map(|(t, (text, mark))| {
                            view! {
                                <span class=format!("predict-token mark-{}", mark.key())
                                    data-testid=format!("predict-mark-{t}") data-mark=mark.key()
                                    title=mark_title(*mark)>
                                    {text.clone()}
                                </span>
                            }
                        })
                        .collect_view(),
                ),
                _ => None,
            };
            view! {
                <div class="predict-q" data-testid=format!("predict-{key}") data-state="revealed" data-t=q.t
                    data-supposed=q.supposed.map(exact)>
                    <p class="predict-prompt">{q.prompt.clone()}</p>
                    {marks.map(|m| view! {
                        <div class="predict-tokens" data-testid="predict-marks">{m}</div>
                        <p class="predict-legend">"✓ picked, and Â_t > 0 · ✗ picked, but Â_t ≤ 0 · ○ Â_t > 0, not picked"</p>
                    })}
                    <p class="predict-verdict" data-testid="predict-verdict" data-right=reveal.right.to_string()>
                        <span class="predict-sign" class:right=reveal.right>{if reveal.right { "✓ right. " } else { "✗ not quite. " }}</span>
                        {reveal.verdict.clone()}
                    </p>
                </div>
            }
            .into_any()
        }
    }
}

fn mark_title(mark: Mark) -> &'static str {
    match mark {
        Mark::Hit => "you picked it, and Â_t > 0",
        Mark::Missed => "Â_t > 0, and you did not pick it",
        Mark::Wrong => "you picked it, but Â_t ≤ 0",
        Mark::Rejected => "not picked, and Â_t ≤ 0",
    }
}
