//! Benchmark mode (`?bench=N`): before the page starts, N iterations of its own PPO run (after
//! one untimed first iteration) on WebGPU and then on flex, in the same page, with milliseconds
//! per stage side by side. The settings in the URL apply, so a run is reproducible.

use leptos::prelude::*;

use crate::explain::format::count;
use crate::lab::settings::LabSettings;
use crate::lab::walkthrough::StageTimes;
use crate::lab::wire::BenchResults;
use crate::lab::wire::StageBench;

/// How far the benchmark is.
#[derive(Clone, Debug, PartialEq)]
pub enum BenchState {
    Running(String),
    Done(Box<BenchResults>),
    Failed(String),
}

/// The timed iterations asked for: `?bench=N`, 1 to 20 (`?bench=1` and up).
pub fn iterations(param: &str) -> Result<usize, String> {
    match param.parse::<usize>() {
        Ok(n) if (1..=20).contains(&n) => Ok(n),
        _ => Err(format!(
            "Ignoring ?bench={param}: give the number of timed iterations, 1 to 20."
        )),
    }
}

/// `data-testid` key, label, and the stage's milliseconds.
type StageColumn = (&'static str, &'static str, fn(&StageTimes) -> f64);

const STAGES: [StageColumn; 7] = [
    ("rollout", "rollout", |t| t.rollout_ms),
    ("score", "score + reference", |t| t.score_ms),
    ("gae", "GAE + whitening", |t| t.gae_ms),
    ("mask", "teacher-forced check + attention", |t| t.mask_ms),
    ("update", "update", |t| t.update_ms),
    ("after", "new logprobs", |t| t.after_ms),
    ("total", "iteration", StageTimes::total_ms),
];

/// `0.25×`, `3.4×`, `183×`: two significant digits or the whole number.
fn ratio(x: f64) -> String {
    if x >= 10.0 {
        format!("{x:.0}×")
    } else if x >= 1.0 {
        format!("{x:.1}×")
    } else {
        format!("{x:.2}×")
    }
}

#[component]
pub fn BenchCard(state: RwSignal<BenchState>, settings: LabSettings) -> impl IntoView {
    let setup = format!(
        "{} rollouts × up to {}, mini-batches of {}, {}, seed {}",
        settings.rollouts,
        count(settings.max_new_tokens, "token", "tokens"),
        count(settings.minibatch, "row", "rows"),
        count(settings.epochs, "epoch", "epochs"),
        settings.seed
    );
    let body = move || match state.get() {
        BenchState::Running(what) => {
            view! { <p data-testid="bench-progress">{what}</p> }.into_any()
        }
        BenchState::Failed(err) => {
            view! { <p class="bad" data-testid="bench-error">{err}</p> }.into_any()
        }
        BenchState::Done(r) => {
            let ms = |x: f64| format!("{x:.1}");
            let rows = STAGES
                .iter()
                .map(|(key, label, pick)| {
                    let gpu = r.webgpu.as_ref().map(|b| pick(&b.median));
                    let cpu = pick(&r.flex.median);
                    view! {
                        <tr>
                            <td>{*label}</td>
                            <td class="num" data-testid=format!("bench-{key}-webgpu")>{gpu.map(ms).unwrap_or_else(|| "n/a".into())}</td>
                            <td class="num" data-testid=format!("bench-{key}-flex")>{ms(cpu)}</td>
                            <td class="num">{gpu.filter(|_| cpu > 0.0).map(|g| ratio(g / cpu)).unwrap_or_default()}</td>
                        </tr>
                    }
                })
                .collect_view();
            let first = |b: Option<&StageBench>| {
                b.map(|b| ms(b.first.total_ms()))
                    .unwrap_or_else(|| "n/a".into())
            };
            view! {
                <table class="numbers">
                    <thead><tr>
                        <th>"stage (median ms)"</th>
                        <th>{format!("WebGPU{}", if r.webgpu_adapter.is_empty() { String::new() } else { format!(" · {}", r.webgpu_adapter) })}</th>
                        <th>"flex (CPU)"</th><th>"WebGPU time / flex time"</th>
                    </tr></thead>
                    <tbody>
                        {rows}
                        <tr>
                            <td>"first iteration (WebGPU: compiles the shaders)"</td>
                            <td class="num" data-testid="bench-first-webgpu">{first(r.webgpu.as_ref())}</td>
                            <td class="num" data-testid="bench-first-flex">{first(Some(&r.flex))}</td>
                            <td></td>
                        </tr>
                    </tbody>
                </table>
                <p class="note">{match r.flex.iterations {
                    1 => "One timed iteration after the first.".to_string(),
                    n => format!("Medians over {n} iterations after the first."),
                }}</p>
            }
            .into_any()
        }
    };
    let data_state = move || match state.get() {
        BenchState::Running(_) => "running",
        BenchState::Done(_) => "done",
        BenchState::Failed(_) => "failed",
    };
    view! {
        <section class="card" data-testid="bench" data-state=data_state>
            <h2>"Benchmark"</h2>
            <p class="explain">
                "Benchmark mode (" <code>"?bench=N"</code> "): the page's own PPO iterations, timed per stage on "
                "each backend in this browser, before the page starts. " {setup} "."
            </p>
            {body}
        </section>
    }
}
