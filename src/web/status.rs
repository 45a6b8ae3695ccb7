//! What the page says about itself: the header with the backend, notices, the exercises
//! banner and the backend self-check (the timings are in [`super::timings`]).

use leptos::prelude::*;

use super::state::AppState;
use crate::compute::BackendKind;
use crate::lab::wire::Notice;
use crate::selfcheck::{self, SelfCheck};

/// Which backend the page runs on, once chosen.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum BackendState {
    Starting,
    Ready {
        kind: BackendKind,
        summary: String,
    },
    /// The worker could not start or choose a backend.
    Failed(String),
}

#[derive(Clone, Debug, PartialEq)]
pub(super) enum CheckState {
    Running,
    Done { check: SelfCheck, millis: f64 },
    Failed(String),
}

/// The title, the iteration, and the backend the worker computes on.
#[component]
pub(super) fn Header(backend: ReadSignal<BackendState>, state: AppState) -> impl IntoView {
    let label = move || match backend.get() {
        BackendState::Starting => "starting…".to_string(),
        BackendState::Ready { summary, .. } => summary,
        BackendState::Failed(err) => format!("FAILED: {err}"),
    };
    let kind = move || match backend.get() {
        BackendState::Starting => "starting",
        BackendState::Ready { kind, .. } => kind.key(),
        BackendState::Failed(_) => "failed",
    };
    view! {
        <header class="top">
            <div class="brand">
                <h1>"ppo-lens"</h1>
                <p class="tagline">"PPO for language models, one step at a time"</p>
            </div>
            <div class="iteration" data-testid="iteration">
                {move || state.history.with(|h| h.last().map(|p| format!("iteration {}", p.iteration)).unwrap_or_default())}
            </div>
            <div class="backend" data-testid="backend" data-kind=kind title="The device every tensor on this page runs on">
                <span class="backend-label">"backend"</span>
                <span class="backend-value" data-testid="backend-value">{label}</span>
            </div>
        </header>
    }
}

#[component]
pub(super) fn Notices(notices: ReadSignal<Vec<Notice>>) -> impl IntoView {
    view! {
        <For each=move || notices.get() key=|notice| format!("{notice:?}") let:notice>
            {match notice {
                Notice::Fallback(text) => view! {
                    <div class="banner warn" role="alert" data-testid="fallback-banner">{text}</div>
                }.into_any(),
                Notice::Info(text) => view! {
                    <div class="banner info" role="status" data-testid="info-banner">{text}</div>
                }.into_any(),
            }}
        </For>
    }
}

/// With the `exercises` feature: whose code each exercise ran in the last iteration.
#[component]
pub(super) fn ExercisesBanner(state: AppState) -> impl IntoView {
    crate::exercises::ENABLED.then(|| {
        // The worker sends it with every iteration.
        let summary = move || state.exercises_ran.get();
        view! {
            <div class="banner info" role="status" data-testid="exercises-banner">
                "Exercises on (docs/exercises.md): " {summary}
            </div>
        }
    })
}

#[component]
pub(super) fn SelfCheckCard(check: ReadSignal<CheckState>) -> impl IntoView {
    let status = move || match check.get() {
        CheckState::Running => ("running", "running…".to_string()),
        CheckState::Done { check, millis } if check.passed() => (
            "passed",
            format!(
                "passed: max |error| {:.1e} in {millis:.0} ms",
                check.max_abs_error
            )
            .replace('-', "−"),
        ),
        CheckState::Done { check, .. } => (
            "failed",
            format!(
                "FAILED: max |error| {:.1e} is above {:.0e}",
                check.max_abs_error,
                selfcheck::TOLERANCE
            )
            .replace('-', "−"),
        ),
        CheckState::Failed(err) => ("failed", format!("FAILED: {err}")),
    };
    let rows = move || {
        match check.get() {
        CheckState::Done { check, .. } => check
            .rows
            .into_iter()
            .enumerate()
            .map(|(i, row)| {
                view! {
                    <tr data-testid=format!("selfcheck-row-{i}")>
                        <td class="num">{format_vec(row.logits.map(f64::from))}</td>
                        <td class="num" data-testid=format!("entropy-{i}")>{format!("{:.6}", row.entropy)}</td>
                        <td class="num ref">{format!("{:.6}", row.expected_entropy)}</td>
                        <td class="num" data-testid=format!("grad-{i}")>{format_vec(row.grad_logsumexp.map(f64::from))}</td>
                        <td class="num ref">{format_vec(row.expected_softmax)}</td>
                    </tr>
                }
            })
            .collect_view()
            .into_any(),
        _ => ().into_any(),
    }
    };
    view! {
        <section class="card" data-testid="selfcheck">
            <h2>"Backend self-check"</h2>
            <p class="explain">
                "Before any PPO step, the page checks its device on two next-token distributions. "
                "It computes the policy's entropy, " <code>"H(z) = logsumexp(z) − Σ softmax(z)·z"</code>
                ", and through autodiff the gradient of " <code>"logsumexp(z)"</code>
                ", which must equal " <code>"softmax(z)"</code>
                ". The grey columns are the same maths in double precision on the CPU."
            </p>
            <table class="numbers">
                <thead>
                    <tr>
                        <th>"logits z"</th>
                        <th>"entropy H(z)"</th>
                        <th class="ref">"expected"</th>
                        <th>"∇ logsumexp(z)"</th>
                        <th class="ref">"softmax(z)"</th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
            <p class="status" data-testid="selfcheck-status" data-state=move || status().0>
                {move || status().1}
            </p>
        </section>
    }
}

fn format_vec<const N: usize>(values: [f64; N]) -> String {
    let parts: Vec<String> = values.iter().map(|v| format!("{v:.6}")).collect();
    format!("[{}]", parts.join(", "))
}
