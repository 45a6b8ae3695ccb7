//! The Timings panel: when each step of the page's start was done, the last iteration's
//! milliseconds per stage, what a student waits for the next one, and all of it as JSON
//! ([`PageTimings`]) for scripts to read.

use leptos::prelude::*;
use wasm_bindgen::JsValue;

use super::state::AppState;
use super::status::BackendState;
use crate::compute::BackendKind;
use crate::lab::timings::{PageTimings, WasmLoad};
use crate::lab::walkthrough::StageTimes;

/// The page's wasm file as the browser's Resource Timing saw it load (None when the browser
/// keeps no entry for it).
pub(super) fn wasm_load() -> Option<WasmLoad> {
    let performance = web_sys::window()?.performance()?;
    let number = |entry: &JsValue, key: &str| {
        js_sys::Reflect::get(entry, &key.into())
            .ok()
            .and_then(|v| v.as_f64())
            .unwrap_or(0.0)
    };
    performance
        .get_entries_by_type("resource")
        .iter()
        .find_map(|entry| {
            let name = js_sys::Reflect::get(&entry, &"name".into())
                .ok()?
                .as_string()?;
            let file = name.split(['?', '#']).next()?.rsplit('/').next()?;
            file.ends_with(".wasm").then(|| WasmLoad {
                file: file.to_string(),
                fetch_start_ms: number(&entry, "fetchStart"),
                response_end_ms: number(&entry, "responseEnd"),
                transfer_bytes: number(&entry, "transferSize"),
                decoded_bytes: number(&entry, "decodedBodySize"),
            })
        })
}

/// The size of the page's wasm memory, bytes (the worker's instance has its own).
pub(super) fn page_memory_bytes() -> Option<f64> {
    let buffer = js_sys::Reflect::get(&wasm_bindgen::memory(), &"buffer".into()).ok()?;
    js_sys::Reflect::get(&buffer, &"byteLength".into())
        .ok()?
        .as_f64()
}

/// A blocked-task duration; the browser reports only tasks over 50 ms.
fn blocked(ms: f64) -> String {
    if ms == 0.0 {
        "none over 50".into()
    } else {
        format!("{:.0}", ms.round())
    }
}

/// Whole milliseconds, halves rounded up as a reader (and `f64::round`) would: `{:.0}` alone
/// rounds 422.5 to the even 422, and Chromium's clock often lands on a half.
fn whole_ms(ms: Option<f64>) -> String {
    ms.map(|ms| format!("{:.0}", ms.round()))
        .unwrap_or_default()
}

/// Milliseconds per stage of the last iteration and per iteration on average, on this backend;
/// the page's start step by step; the report as JSON.
#[component]
pub(super) fn Timings(state: AppState, backend: ReadSignal<BackendState>) -> impl IntoView {
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
    let row = |testid: &'static str, name: &'static str, pick: fn(&StageTimes) -> f64| {
        view! {
            <tr>
                <td>{name}</td>
                <td class="num" data-testid=testid>
                    {move || state.history.with(|h| h.last().map(|p| format!("{:.0}", pick(&p.times))).unwrap_or_default())}
                </td>
            </tr>
        }
    };
    let moment = |testid: &'static str,
                  name: &'static str,
                  pick: fn(&PageTimings) -> Option<f64>| {
        view! {
            <tr>
                <td>{name}</td>
                <td class="num" data-testid=testid>{move || state.timings.with(|t| whole_ms(pick(t)))}</td>
            </tr>
        }
    };
    let json = move || {
        let mut t = state.timings.get();
        t.longest_block_ms = state.longest_block_ms.get();
        t.to_json()
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
                    {moment("time-next", "next iteration as you wait for it (asked to shown), median", |t| t.next_iteration_median_ms)}
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
            <h3>"The page's start, ms after navigation"</h3>
            <table class="numbers">
                <tbody>
                    {moment("time-wasm", "wasm downloaded", |t| t.wasm.as_ref().map(|w| w.response_end_ms))}
                    {moment("time-app", "wasm compiled, the page running", |t| t.app_started_at_ms)}
                    {moment("time-worker", "worker ready (the same module)", |t| t.worker_ready_at_ms)}
                    {moment("time-backend", "backend chosen", |t| t.backend_ready_at_ms)}
                    {moment("time-selfcheck", "backend self-check passed", |t| t.self_check_done_at_ms)}
                    {moment("time-model", "model loaded", |t| t.model_loaded_at_ms)}
                    {moment("time-ready", "first iteration ready", |t| t.first_iteration_at_ms)}
                </tbody>
            </table>
            <details>
                <summary>"The same as JSON, for scripts"</summary>
                <pre class="json" data-testid="timings-json">{json}</pre>
            </details>
        </section>
    }
}
