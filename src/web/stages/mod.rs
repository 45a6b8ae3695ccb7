//! One component per stage of a PPO iteration. Each reads the iteration's [`Walkthrough`], the
//! selected response and the step cursor, and shows how far the stage has got: the data on the
//! left (the token strip first, then the stage's table), and beside it, in a column that stays
//! in sight while the table scrolls, the formula with this step's numbers, where a picked
//! number comes from, what to notice in this batch, and why the stage exists.

pub(super) mod common;
mod gae;
mod mask;
mod overview;
mod rollout;
mod score;
mod update;
mod values;

use leptos::prelude::*;

use self::common::score_label;
use super::guide::{TourCard, mini_loop};
use super::select::{response_token, show_token};
use super::state::{AppState, Stage};
use crate::explain::stage::real_len;

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
            Stage::Overview => overview::overview(state, &walk).into_any(),
            Stage::Rollout => rollout::rollout(state, &walk, row, cursor, iteration).into_any(),
            Stage::Score => score::score(state, &walk, row, cursor, iteration).into_any(),
            Stage::Values => values::values(state, &walk, row, iteration).into_any(),
            Stage::Gae => gae::gae(state, &walk, row, cursor, iteration).into_any(),
            Stage::Update => update::update(state, &walk, row, cursor, iteration).into_any(),
            Stage::Mask => mask::mask(state, walk.clone(), row, iteration).into_any(),
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
