//! The page: a Leptos app (client-side rendering) that Trunk builds for wasm32.
//!
//! At start it asks for WebGPU, falls back to burn's `flex` CPU backend with a visible banner
//! when the browser cannot give it, runs the backend self-check, loads the tiny model and
//! computes the first PPO iteration. Then a student steps through its six stages, lets it
//! play, trains continuously with live charts, or edits the GAE sandbox. The setup lives in the
//! URL (`?backend=flex&gamma=0.9&stage=gae&presenter=1`), so a teacher can share it.

mod attention;
mod bench;
mod charts;
mod classroom;
mod clock;
mod controls;
mod faded;
mod family;
mod faq;
mod grpo;
mod guide;
mod health;
mod input;
mod predict;
mod run;
mod runs;
mod sandbox;
mod select;
mod stages;
mod state;
mod status;
mod timings;
mod url;
pub mod worker;

use leptos::prelude::*;

use crate::lab::wire::{Notice, Progress};
use controls::{Controls, LiveRollout, Settings, StageTabs};
use input::{listen_to_keys, play_timer, watch_long_tasks};
use state::{Activity, AppState};
use status::{BackendState, CheckState, ExercisesBanner, Header, Notices, SelfCheckCard};
use timings::Timings;
use url::{keep_url_in_sync, settings_from_url, url_param};

/// Called from `main` on wasm32: in the page, mounts the app on `<body>` and starts the worker
/// that computes for it; in that worker (the same wasm), serves the page's requests.
pub fn start() {
    console_error_panic_hook::set_once();
    if worker::in_worker() {
        worker::serve();
    } else {
        leptos::mount::mount_to_body(App);
    }
}

#[component]
fn App() -> impl IntoView {
    let (settings, target, presenter, url_notices) = settings_from_url();
    let state = AppState::new(settings, target.stage, presenter, target.predict);
    let backend = RwSignal::new(BackendState::Starting);
    let notices = RwSignal::new(url_notices);
    let check = RwSignal::new(CheckState::Running);
    // Benchmark mode: `?bench=N` times N iterations per backend before the page starts.
    let bench_iterations = url_param("bench").and_then(|v| match bench::iterations(&v) {
        Ok(n) => Some(n),
        Err(err) => {
            notices.update(|n| n.push(Notice::Info(err)));
            None
        }
    });
    let bench_state = RwSignal::new(bench::BenchState::Running(
        "waiting for the backend…".into(),
    ));
    let bench_settings = state.settings.get_untracked();
    let now = clock::since_navigation_ms;
    state.timings.update(|t| {
        t.app_started_at_ms = Some(now());
        t.wasm = timings::wasm_load();
    });

    worker::on_progress(move |progress| match progress {
        Progress::Line(line) => bench_state.set(bench::BenchState::Running(line)),
        Progress::Sampling(sampling) => state.sampling.set(Some(sampling)),
    });
    // Leptos's own spawn_local needs an executor that CSR does not set up; wasm-bindgen's works.
    wasm_bindgen_futures::spawn_local(async move {
        let started = match worker::spawn() {
            Ok(()) => worker::start(url_param("backend")).await,
            Err(err) => Err(err),
        };
        let (kind, summary, chosen_notices) = match started {
            Ok(started) => started,
            Err(err) => {
                backend.set(BackendState::Failed(err.clone()));
                check.set(CheckState::Failed(err.clone()));
                bench_state.set(bench::BenchState::Failed(err.clone()));
                state.activity.set(Activity::Failed(err));
                return;
            }
        };
        state.timings.update(|t| {
            t.worker_ready_at_ms = worker::ready_at_ms();
            t.backend_ready_at_ms = Some(now());
            t.backend = Some(kind.key().to_string());
        });
        backend.set(BackendState::Ready { kind, summary });
        notices.update(|n| n.extend(chosen_notices));
        let checked = worker::self_check().await;
        state.timings.update(|t| {
            t.self_check_done_at_ms = Some(now());
            t.self_check_ms = checked.as_ref().ok().map(|(_, ms)| *ms);
        });
        check.set(match checked {
            Ok((check, millis)) => CheckState::Done { check, millis },
            Err(err) => CheckState::Failed(err),
        });
        if let Some(n) = bench_iterations {
            let result = worker::bench(state.settings.get_untracked(), n).await;
            state.timings.update(|t| {
                t.bench_done_at_ms = Some(now());
                t.bench = result.as_ref().ok().map(|r| (**r).clone());
            });
            bench_state.set(match result {
                Ok(results) => bench::BenchState::Done(results),
                Err(err) => bench::BenchState::Failed(err),
            });
        }
        state.reset();
    });

    keep_url_in_sync(state);
    listen_to_keys(state);
    watch_long_tasks(state);
    play_timer(state);
    select::keep_current_in_sight(state);
    // What the URL asks for is shown once its iteration is ready: the iterations before it
    // are computed first, then the stage, response and token are set.
    Effect::new(move |done: Option<bool>| {
        if done == Some(true) {
            return true;
        }
        if state.walk.with(Option::is_none) || state.activity.get() != Activity::Idle {
            return false;
        }
        if state.iteration() < target.iteration {
            state.next_iteration(false);
            return false;
        }
        state.goto(target.stage);
        if let Some(row) = target.row {
            state.show_row(row);
        }
        if let Some(t) = target.token {
            let real = state.walk.with_untracked(|w| {
                w.as_ref().map_or(0, |w| {
                    crate::explain::stage::real_len(w, state.row.get_untracked())
                })
            });
            if t < real {
                state.pick(Some(t));
            } else {
                notices.update(|n| {
                    n.push(Notice::Info(format!(
                        "Ignoring ?token={t}: response {} has {} (t = 0 to {}).",
                        state.row.get_untracked() + 1,
                        crate::explain::format::count(real, "token", "tokens"),
                        real.saturating_sub(1)
                    )))
                });
            }
        }
        true
    });

    view! {
        <div class="app" class:presenter=move || state.presenter.get()>
            <Header backend=backend.read_only() state=state />
            <main>
                <Notices notices=notices.read_only() />
                {bench_iterations.map(|_| view! { <bench::BenchCard state=bench_state settings=bench_settings.clone() /> })}
                <ExercisesBanner state=state />
                <div class="sticky-bar" data-testid="sticky-bar">
                    <Controls state=state />
                    <div class="bar-row">
                        <StageTabs state=state />
                        <stages::StepCounter state=state />
                    </div>
                    <stages::RowPicker state=state />
                </div>
                <LiveRollout state=state />
                <stages::StagePanel state=state />
                <faded::FadedSweep state=state />
                <faq::StageQuestions state=state />
                <charts::Charts state=state />
                <health::HealthPanel state=state />
                <Settings state=state />
                <sandbox::Sandbox />
                <faq::Faq state=state />
                <details class="card diagnostics" data-testid="diagnostics">
                    <summary>"Diagnostics: timings per stage and the backend self-check"</summary>
                    <Timings state=state backend=backend.read_only() />
                    <SelfCheckCard check=check.read_only() />
                </details>
            </main>
        </div>
    }
}
