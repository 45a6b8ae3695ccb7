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
mod faded;
mod faq;
mod grpo;
mod guide;
mod health;
mod predict;
mod sandbox;
mod select;
mod stages;
mod state;
pub mod worker;

use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;

use crate::compute::BackendKind;
use crate::lab::settings::{LabSettings, SETTING_KEYS};
use crate::lab::wire::{Notice, Progress};
use crate::selfcheck::{self, SelfCheck};
use state::{Activity, AppState, Stage};

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

/// Resolves in a later task of the page's event loop (a zero-delay timeout), so that the
/// browser can draw a frame and handle input in between.
async fn next_task() {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(window) = web_sys::window() {
            let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, 0);
        } else {
            let _ = resolve.call0(&wasm_bindgen::JsValue::NULL);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

/// Which backend the page runs on, once chosen.
#[derive(Clone, Debug, PartialEq)]
enum BackendState {
    Starting,
    Ready {
        kind: BackendKind,
        summary: String,
    },
    /// The worker could not start or choose a backend.
    Failed(String),
}

#[derive(Clone, Debug, PartialEq)]
enum CheckState {
    Running,
    Done { check: SelfCheck, millis: f64 },
    Failed(String),
}

/// What the URL asks the page to show once it is ready: an iteration (reached by computing the
/// ones before it with the same settings and seed), a response and a token of it.
#[derive(Clone, Copy, Debug, PartialEq)]
struct UrlTarget {
    stage: Stage,
    /// `?predict=`: predict mode on from the start, and the question to ask first.
    predict: Option<crate::predict::Start>,
    iteration: usize,
    /// The response's index (the URL counts from 1, as the picker does).
    row: Option<usize>,
    token: Option<usize>,
}

/// The most iterations `?iteration=` may ask the page to compute before it shows one.
const MAX_URL_ITERATION: usize = 200;

/// `?key=` as a whole number in `lo..=hi`, with a notice naming the key when it is not one.
fn url_count(key: &str, lo: usize, hi: usize, notices: &mut Vec<Notice>) -> Option<usize> {
    let value = url_param(key)?;
    match value.parse::<usize>() {
        Ok(n) if (lo..=hi).contains(&n) => Some(n),
        _ => {
            notices.push(Notice::Info(format!(
                "Ignoring ?{key}={value} from the URL: expected a whole number from {lo} to {hi}."
            )));
            None
        }
    }
}

/// The settings, stage and presenter mode the URL asks for, with a notice for each refused value.
fn settings_from_url() -> (LabSettings, UrlTarget, bool, Vec<Notice>) {
    let mut settings = LabSettings::default();
    let mut notices = Vec::new();
    for key in SETTING_KEYS {
        if let Some(value) = url_param(key.key) {
            if let Err(err) = settings.set(key.key, &value) {
                notices.push(Notice::Info(format!(
                    "Ignoring ?{}={value} from the URL: {err}. Using {}.",
                    key.key,
                    LabSettings::default().get(key.key).unwrap_or_default()
                )));
            }
        }
    }
    let stage = match url_param("stage") {
        None => Stage::Overview,
        Some(key) => Stage::parse(&key).unwrap_or_else(|| {
            notices.push(Notice::Info(format!(
                "Ignoring ?stage={key}: expected one of overview, rollout, score, values, gae, update, mask."
            )));
            Stage::Overview
        }),
    };
    let presenter = url_param("presenter").is_some_and(|v| v == "1" || v == "true");
    // `?predict=1`, or `?predict=<stage or question>` to start there (unless ?stage= says where).
    let predict = match url_param("predict") {
        None => None,
        Some(value) => match crate::predict::from_url(&value) {
            Ok(start) => Some(start),
            Err(err) => {
                notices.push(Notice::Info(format!("Ignoring ?predict={value}: {err}.")));
                None
            }
        },
    };
    let stage = match predict.and_then(|p| p.stage) {
        Some(at) if url_param("stage").is_none() => at,
        _ => stage,
    };
    let target = UrlTarget {
        stage,
        predict,
        iteration: url_count("iteration", 1, MAX_URL_ITERATION, &mut notices).unwrap_or(1),
        row: url_count("response", 1, settings.rollouts, &mut notices).map(|r| r - 1),
        token: url_count("token", 0, settings.max_new_tokens - 1, &mut notices),
    };
    (settings, target, presenter, notices)
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
        backend.set(BackendState::Ready { kind, summary });
        notices.update(|n| n.extend(chosen_notices));
        check.set(match worker::self_check().await {
            Ok((check, millis)) => CheckState::Done { check, millis },
            Err(err) => CheckState::Failed(err),
        });
        if let Some(n) = bench_iterations {
            bench_state.set(
                match worker::bench(state.settings.get_untracked(), n).await {
                    Ok(results) => bench::BenchState::Done(results),
                    Err(err) => bench::BenchState::Failed(err),
                },
            );
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
                    crate::explain::real_len(w, state.row.get_untracked())
                })
            });
            if t < real {
                state.pick(Some(t));
            } else {
                notices.update(|n| {
                    n.push(Notice::Info(format!(
                        "Ignoring ?token={t}: response {} has {real} tokens (t = 0 to {}).",
                        state.row.get_untracked() + 1,
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

/// The setup in the URL, rewritten whenever it changes (without reloading).
fn keep_url_in_sync(state: AppState) {
    Effect::new(move |_| {
        let mut pairs: Vec<(String, String)> = Vec::new();
        if let Some(backend) = url_param("backend") {
            pairs.push(("backend".into(), backend));
        }
        for (k, v) in state.settings.get().changed() {
            pairs.push((k.into(), v));
        }
        let stage = state.stage.get();
        if stage != Stage::Overview {
            pairs.push(("stage".into(), stage.key().into()));
        }
        let iteration = state.iteration();
        let row = state.row.get();
        let token = state.token.get();
        if iteration > 1 || token.is_some() {
            pairs.push(("iteration".into(), iteration.to_string()));
        }
        if row > 0 || token.is_some() {
            pairs.push(("response".into(), (row + 1).to_string()));
        }
        if let Some(t) = token {
            pairs.push(("token".into(), t.to_string()));
        }
        if state.presenter.get() {
            pairs.push(("presenter".into(), "1".into()));
        }
        if state.predict.on.get() {
            pairs.push(("predict".into(), "1".into()));
        }
        let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let url = if query.is_empty() {
            window().location().pathname().unwrap_or_default()
        } else {
            format!("?{}", query.join("&"))
        };
        if let Ok(history) = window().history() {
            let _ = history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&url));
        }
    });
}

/// space: step · ← →: stages · p: play/pause · f: presenter mode · t: tour · Esc: leave the
/// tour, else clear the picked token. Ignored while typing.
fn listen_to_keys(state: AppState) {
    let handle = window_event_listener(leptos::ev::keydown, move |ev: web_sys::KeyboardEvent| {
        if ev.ctrl_key() || ev.alt_key() || ev.meta_key() {
            return;
        }
        let typing = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
            .is_some_and(|el| matches!(el.tag_name().as_str(), "INPUT" | "SELECT" | "TEXTAREA"));
        if typing {
            return;
        }
        match ev.key().as_str() {
            " " => {
                ev.prevent_default();
                state.step();
            }
            "ArrowRight" => state.shift_stage(1),
            "ArrowLeft" => state.shift_stage(-1),
            "p" => state.playing.update(|p| *p = !*p),
            "f" => state.presenter.update(|p| *p = !*p),
            "t" => state.tour_to(0),
            "Escape" => {
                if state.tour.get_untracked().is_some() {
                    state.tour.set(None);
                } else {
                    state.focus.set(None);
                    state.pick(None);
                }
            }
            _ => {}
        }
    });
    // The listener lives as long as the page.
    std::mem::forget(handle);
}

/// One step every `speed_ms` while playing.
fn play_timer(state: AppState) {
    let last = std::cell::Cell::new(0.0);
    let tick = move || {
        let now = since_navigation_ms();
        if !state.playing.get_untracked() {
            last.set(now);
            return;
        }
        if now - last.get() >= state.speed_ms.get_untracked() as f64 {
            last.set(now);
            // Play stops at a question: the student answers before the stage goes on.
            if untrack(|| predict::pending(state)) {
                state.playing.set(false);
                return;
            }
            state.step();
        }
    };
    // The interval runs as long as the page; dropping its handle does not clear it.
    let _ = set_interval_with_handle(tick, std::time::Duration::from_millis(50));
}

/// Records the longest task that kept the page's thread busy (the browser reports tasks over
/// 50 ms as `longtask` entries).
fn watch_long_tasks(state: AppState) {
    let callback = Closure::<dyn FnMut(web_sys::PerformanceObserverEntryList)>::new(
        move |list: web_sys::PerformanceObserverEntryList| {
            for entry in list.get_entries().iter() {
                if let Ok(entry) = entry.dyn_into::<web_sys::PerformanceEntry>() {
                    let d = entry.duration();
                    state.longest_block_ms.update(|m| *m = m.max(d));
                    if state.activity.get_untracked() == Activity::Training {
                        state.longest_block_training_ms.update(|m| *m = m.max(d));
                    }
                }
            }
        },
    );
    if let Ok(observer) = web_sys::PerformanceObserver::new(callback.as_ref().unchecked_ref()) {
        let init = web_sys::PerformanceObserverInit::new(&js_sys::Array::of1(&"longtask".into()));
        observer.observe(&init);
    }
    callback.forget();
}

/// The rollout of the iteration being computed, as its tokens are sampled: the first response
/// so far (the one the stages show when it arrives).
#[component]
fn LiveRollout(state: AppState) -> impl IntoView {
    move || {
        let computing = matches!(
            state.activity.get(),
            Activity::Computing | Activity::Training
        );
        let sampling = state.sampling.get().filter(|_| computing)?;
        let progress = if sampling.finished {
            format!(
                "sampling: token {} of at most {} · response 1 has ended",
                sampling.step, sampling.of
            )
        } else {
            format!(
                "sampling: token {} of at most {}",
                sampling.step, sampling.of
            )
        };
        Some(view! {
            <section class="live-rollout" data-testid="live-rollout" data-step=sampling.step>
                <span class="label">{progress}</span>
                <div class="live-text" data-testid="live-rollout-text">{sampling.text}</div>
            </section>
        })
    }
}

#[component]
fn Controls(state: AppState) -> impl IntoView {
    let status = move || match state.activity.get() {
        Activity::Loading => "loading the tiny model…".to_string(),
        Activity::Computing => "computing an iteration…".to_string(),
        Activity::Training => format!(
            "training: iteration {} done",
            state.history.with(|h| h.last().map_or(0, |p| p.iteration))
        ),
        Activity::Idle => {
            let (shown, latest) = (state.iteration(), state.latest());
            if shown == latest {
                format!("iteration {latest} ready")
            } else {
                format!("iteration {shown} reopened (latest {latest})")
            }
        }
        Activity::Failed(err) => format!("FAILED: {err}"),
    };
    let training = move || state.activity.get() == Activity::Training;
    view! {
        <section class="controls" data-testid="controls" aria-label="Controls">
            <button data-testid="btn-prev" title="previous stage (←)" on:click=move |_| state.shift_stage(-1)>"◀"</button>
            <button class="primary" data-testid="btn-step" title="next step (space)" on:click=move |_| state.step()>"step ▶"</button>
            <button data-testid="btn-next-stage" title="next stage (→)" on:click=move |_| state.shift_stage(1)>"▶▶"</button>
            <button data-testid="btn-all" title="show every step of this stage" on:click=move |_| state.show_all()>"show all"</button>
            <button data-testid="btn-play" title="play / pause (p)" on:click=move |_| state.playing.update(|p| *p = !*p)>
                {move || if state.playing.get() { "pause ‖" } else { "play ▷" }}
            </button>
            <label class="speed">"speed "
                <select data-testid="speed" on:change=move |ev| {
                    if let Ok(ms) = event_target_value(&ev).parse() { state.speed_ms.set(ms); }
                }>
                    <option value="1200">"slow"</option>
                    <option value="600" selected>"normal"</option>
                    <option value="250">"fast"</option>
                    <option value="60">"fastest"</option>
                </select>
            </label>
            <button data-testid="btn-iterate" title="compute the next iteration" on:click=move |_| state.next_iteration(false)>"next iteration"</button>
            <button data-testid="btn-train" class:running=training
                on:click=move |_| if training() { state.stop_training() } else { state.train() }>
                {move || if training() { "stop training ■" } else { "train ⟳" }}
            </button>
            <button data-testid="btn-reset" title="start again from the pretrained model with the current seed" on:click=move |_| state.reset()>"reset"</button>
            <button data-testid="btn-presenter" title="large type for projectors (f)" on:click=move |_| state.presenter.update(|p| *p = !*p)>
                {move || if state.presenter.get() { "normal view" } else { "presenter" }}
            </button>
            <button data-testid="btn-tour" title="a short tour of the stages (t)" on:click=move |_| state.tour_to(0)>"tour"</button>
            <button data-testid="btn-predict" title="ask me before showing each stage's answer"
                aria-pressed=move || state.predict.on.get().to_string()
                on:click=move |_| state.predict.on.update(|on| *on = !*on)>
                {move || if state.predict.on.get() { "predict: on" } else { "predict: off" }}
            </button>
            <span class="status" data-testid="status" data-state=move || state.activity.get().key()>{status}</span>
            <span class="keys" title="keyboard">"space step · ← → stage · ↑ ↓ token · p play · f presenter · t tour · Esc"</span>
        </section>
    }
}

#[component]
fn StageTabs(state: AppState) -> impl IntoView {
    let tabs = Stage::ALL
        .into_iter()
        .map(|s| {
            view! {
                <button
                    role="tab"
                    class="tab"
                    class:active=move || state.stage.get() == s
                    aria-selected=move || (state.stage.get() == s).to_string()
                    data-testid=format!("tab-{}", s.key())
                    on:click=move |_| state.goto(s)
                >
                    {s.title()}
                </button>
            }
        })
        .collect_view();
    view! { <nav class="tabs" role="tablist" data-testid="stage-tabs">{tabs}</nav> }
}

/// The hyperparameters: edited here, applied from the next iteration (the seed on reset).
#[component]
fn Settings(state: AppState) -> impl IntoView {
    let draft = RwSignal::new(
        SETTING_KEYS
            .iter()
            .map(|k| {
                state
                    .settings
                    .get_untracked()
                    .get(k.key)
                    .unwrap_or_default()
            })
            .collect::<Vec<String>>(),
    );
    let errors = RwSignal::new(Vec::<(usize, String)>::new());
    let applied = RwSignal::new(false);
    // A setting changed elsewhere on the page (the GRPO comparison's buttons) shows here too.
    Effect::new(move |_| {
        let now = state.settings.get();
        draft.set(
            SETTING_KEYS
                .iter()
                .map(|k| now.get(k.key).unwrap_or_default())
                .collect(),
        );
    });
    let apply = move || {
        let mut next = state.settings.get_untracked();
        let mut found = Vec::new();
        draft.with(|d| {
            for (i, key) in SETTING_KEYS.iter().enumerate() {
                if let Err(err) = next.set(key.key, &d[i]) {
                    found.push((i, err));
                }
            }
        });
        // Settings that are fine alone but not together: samples per prompt and the algorithm.
        if found.is_empty() {
            if let Err(err) = next.groups() {
                let key = if err.starts_with("`algo`") {
                    "algo"
                } else {
                    "group"
                };
                let i = SETTING_KEYS.iter().position(|k| k.key == key).unwrap_or(0);
                found.push((i, err));
            }
        }
        applied.set(found.is_empty());
        if found.is_empty() {
            state.settings.set(next);
        }
        errors.set(found);
    };
    let fields = SETTING_KEYS
        .iter()
        .enumerate()
        .map(|(i, key)| {
            let error = move || errors.with(|e| e.iter().find(|(j, _)| *j == i).map(|(_, m)| m.clone()));
            view! {
                <label class="setting" title=key.about>
                    <span>{key.label}</span>
                    <span class="about" data-testid=format!("set-about-{}", key.key)>{key.about}</span>
                    <input
                        type="text"
                        data-testid=format!("set-{}", key.key)
                        class:bad=move || error().is_some()
                        prop:value=move || draft.with(|d| d[i].clone())
                        on:input=move |ev| {
                            let v = event_target_value(&ev);
                            applied.set(false);
                            draft.update(|d| d[i] = v);
                        }
                    />
                    <span class="field-error" data-testid=format!("set-error-{}", key.key)>{error}</span>
                </label>
            }
        })
        .collect_view();
    view! {
        <section class="card" data-testid="settings">
            <h2>"Hyperparameters"</h2>
            <p class="explain">
                "Changes apply from the next iteration; a new seed applies on reset. The URL keeps "
                "every change, so the address bar is a link to this exact setup."
            </p>
            <div class="settings-grid">{fields}</div>
            <button class="primary" data-testid="apply-settings" on:click=move |_| apply()>"apply"</button>
            <span class="note" data-testid="settings-status">
                {move || if applied.get() { "applied: next iteration uses these" } else { "" }}
            </span>
        </section>
    }
}

/// A blocked-task duration; the browser reports only tasks over 50 ms.
fn blocked(ms: f64) -> String {
    if ms == 0.0 {
        "none over 50".into()
    } else {
        format!("{ms:.0}")
    }
}

/// Milliseconds per stage of the last iteration and per iteration on average, on this backend.
#[component]
fn Timings(state: AppState, backend: ReadSignal<BackendState>) -> impl IntoView {
    let label = move || match backend.get() {
        BackendState::Starting => "starting".to_string(),
        BackendState::Ready { kind, .. } => kind.label().to_string(),
        BackendState::Failed(_) => "none".to_string(),
    };
    let other = move || match backend.get() {
        BackendState::Ready {
            kind: BackendKind::Flex,
            ..
        } => ("?backend=webgpu", "switch to WebGPU"),
        _ => ("?backend=flex", "switch to flex (CPU)"),
    };
    let row = |testid: &'static str,
               name: &'static str,
               pick: fn(&crate::lab::walkthrough::StageTimes) -> f64| {
        view! {
            <tr>
                <td>{name}</td>
                <td class="num" data-testid=testid>
                    {move || state.history.with(|h| h.last().map(|p| format!("{:.0}", pick(&p.times))).unwrap_or_default())}
                </td>
            </tr>
        }
    };
    view! {
        <section class="card" data-testid="timings">
            <h2>"Timings"</h2>
            <p class="explain">
                "Milliseconds for the last iteration on " <strong data-testid="timings-backend">{label}</strong>
                ". " <a data-testid="switch-backend" href=move || other().0>{move || other().1}</a>
                " to compare (the page reloads with the same seed)."
            </p>
            <table class="numbers">
                <tbody>
                    {row("time-rollout", "rollout", |t| t.rollout_ms)}
                    {row("time-score", "score + reference", |t| t.score_ms)}
                    {row("time-gae", "GAE + whitening", |t| t.gae_ms)}
                    {row("time-mask", "teacher-forced check + attention", |t| t.mask_ms)}
                    {row("time-update", "update", |t| t.update_ms)}
                    {row("time-after", "new logprobs", |t| t.after_ms)}
                    {row("time-total", "iteration", |t| t.total_ms())}
                    <tr>
                        <td>"iteration, mean so far"</td>
                        <td class="num" data-testid="time-mean">
                            {move || state.history.with(|h| {
                                if h.is_empty() { return String::new(); }
                                format!("{:.0}", h.iter().map(|p| p.times.total_ms()).sum::<f64>() / h.len() as f64)
                            })}
                        </td>
                    </tr>
                    <tr>
                        <td>"first iteration ready (after navigation)"</td>
                        <td class="num" data-testid="time-ready">{move || state.ready_ms.get().map(|ms| format!("{ms:.0}")).unwrap_or_default()}</td>
                    </tr>
                    <tr>
                        <td>"longest task that blocked the page (since it opened)"</td>
                        <td class="num" data-testid="longest-block">{move || blocked(state.longest_block_ms.get())}</td>
                    </tr>
                    <tr>
                        <td>"… while training"</td>
                        <td class="num" data-testid="longest-block-training">{move || blocked(state.longest_block_training_ms.get())}</td>
                    </tr>
                </tbody>
            </table>
        </section>
    }
}

/// The title, the iteration, and the backend the worker computes on.
#[component]
fn Header(backend: ReadSignal<BackendState>, state: AppState) -> impl IntoView {
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
fn Notices(notices: ReadSignal<Vec<Notice>>) -> impl IntoView {
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
fn ExercisesBanner(state: AppState) -> impl IntoView {
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
fn SelfCheckCard(check: ReadSignal<CheckState>) -> impl IntoView {
    let status = move || match check.get() {
        CheckState::Running => ("running", "running…".to_string()),
        CheckState::Done { check, millis } if check.passed() => (
            "passed",
            format!(
                "passed: max |error| {:.1e} in {millis:.0} ms",
                check.max_abs_error
            ),
        ),
        CheckState::Done { check, .. } => (
            "failed",
            format!(
                "FAILED: max |error| {:.1e} is above {:.0e}",
                check.max_abs_error,
                selfcheck::TOLERANCE
            ),
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

fn url_param(name: &str) -> Option<String> {
    let search = web_sys::window()?.location().search().ok()?;
    web_sys::UrlSearchParams::new_with_str(&search)
        .ok()?
        .get(name)
}

/// Milliseconds since the page's navigation started (`performance.now()`).
pub(crate) fn since_navigation_ms() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map(|p| p.now())
        .unwrap_or(0.0)
}
