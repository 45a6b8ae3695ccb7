//! The page: a Leptos app (client-side rendering) that Trunk builds for wasm32.
//!
//! At start it asks for WebGPU, falls back to burn's `flex` CPU backend with a visible banner
//! when the browser cannot give it, and runs the backend self-check from the shared core.
//! `?backend=flex` in the URL chooses the CPU backend on purpose.

use burn::tensor::Device;
use leptos::prelude::*;

use crate::compute::{BackendKind, Compute};
use crate::selfcheck::{self, SelfCheck};

/// Mounts the app on `<body>`. Called from `main` on wasm32.
pub fn start() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(App);
}

/// Which backend the page runs on, once chosen.
#[derive(Clone, Debug, PartialEq)]
enum BackendState {
    Starting,
    Ready { kind: BackendKind, summary: String },
}

/// Something the page must tell the reader about its backend.
#[derive(Clone, Debug, PartialEq)]
enum Notice {
    /// WebGPU was wanted and could not be had: the page runs, more slowly, on the CPU.
    Fallback(String),
    /// The reader asked for this (for example `?backend=flex`).
    Info(String),
}

#[derive(Clone, Debug, PartialEq)]
enum CheckState {
    Running,
    Done { check: SelfCheck, millis: f64 },
    Failed(String),
}

#[component]
fn App() -> impl IntoView {
    // All page state lives here; components below only read it.
    let backend = RwSignal::new(BackendState::Starting);
    let notices = RwSignal::new(Vec::<Notice>::new());
    let check = RwSignal::new(CheckState::Running);

    // Leptos's own spawn_local needs an executor that CSR does not set up; wasm-bindgen's works.
    wasm_bindgen_futures::spawn_local(async move {
        let (compute, chosen_notices) = choose_backend().await;
        backend.set(BackendState::Ready {
            kind: compute.kind,
            summary: compute.summary(),
        });
        notices.set(chosen_notices);
        check.set(run_self_check(&compute.device).await);
    });

    view! {
        <Header backend=backend.read_only() />
        <main>
            <Notices notices=notices.read_only() />
            <SelfCheckCard check=check.read_only() />
        </main>
    }
}

/// WebGPU unless the URL says otherwise or the browser cannot; flex (CPU) otherwise.
async fn choose_backend() -> (Compute, Vec<Notice>) {
    let mut notices = Vec::new();
    if let Some(asked) = url_param("backend") {
        match BackendKind::parse(&asked) {
            Ok(BackendKind::Flex) => {
                notices.push(Notice::Info(
                    "Running on flex, burn's CPU backend, because the URL asks for it \
                     (?backend=flex). Remove it to use WebGPU."
                        .into(),
                ));
                return (Compute::flex(), notices);
            }
            Ok(BackendKind::WebGpu) => {}
            Ok(other) => notices.push(Notice::Info(format!(
                "?backend={} is not available in a browser; trying WebGPU.",
                other.key()
            ))),
            Err(err) => notices.push(Notice::Info(format!("Ignoring ?backend: {err}."))),
        }
    }

    let reason = if !browser_has_webgpu() {
        "this browser does not offer WebGPU (navigator.gpu is missing)".to_string()
    } else {
        match Compute::wgpu().await {
            Ok(mut compute) => {
                // wgpu's adapter name is empty in browsers; GPUAdapter.info has what they share.
                if compute.adapter.is_none() {
                    compute.adapter = browser_adapter_name().await;
                }
                return (compute, notices);
            }
            Err(err) => err,
        }
    };
    notices.push(Notice::Fallback(format!(
        "WebGPU is unavailable: {reason}. ppo-lens runs on flex, burn's CPU backend, instead: \
         every number is the same, only slower."
    )));
    (Compute::flex(), notices)
}

async fn run_self_check(device: &Device) -> CheckState {
    let started = now_millis();
    match selfcheck::run(device).await {
        Ok(check) => CheckState::Done {
            check,
            millis: now_millis() - started,
        },
        Err(err) => CheckState::Failed(err),
    }
}

#[component]
fn Header(backend: ReadSignal<BackendState>) -> impl IntoView {
    let label = move || match backend.get() {
        BackendState::Starting => "starting…".to_string(),
        BackendState::Ready { summary, .. } => summary,
    };
    let kind = move || match backend.get() {
        BackendState::Starting => "starting",
        BackendState::Ready { kind, .. } => kind.key(),
    };
    view! {
        <header class="top">
            <div class="brand">
                <h1>"ppo-lens"</h1>
                <p class="tagline">"PPO for language models, one step at a time"</p>
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

fn browser_has_webgpu() -> bool {
    let Some(window) = web_sys::window() else {
        return false;
    };
    js_sys::Reflect::get(&window.navigator(), &"gpu".into())
        .map(|gpu| !gpu.is_undefined() && !gpu.is_null())
        .unwrap_or(false)
}

/// The adapter as the browser describes it (`GPUAdapter.info`): its description when given,
/// else vendor and architecture (`google swiftshader`). None when the browser says nothing.
async fn browser_adapter_name() -> Option<String> {
    use js_sys::{Function, Reflect};
    use wasm_bindgen::JsCast;

    let gpu = Reflect::get(&web_sys::window()?.navigator(), &"gpu".into()).ok()?;
    let request: Function = Reflect::get(&gpu, &"requestAdapter".into())
        .ok()?
        .dyn_into()
        .ok()?;
    let promise: js_sys::Promise = request.call0(&gpu).ok()?.dyn_into().ok()?;
    let adapter = wasm_bindgen_futures::JsFuture::from(promise).await.ok()?;
    let info = Reflect::get(&adapter, &"info".into()).ok()?;
    let field = |name: &str| {
        Reflect::get(&info, &name.into())
            .ok()
            .and_then(|v| v.as_string())
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    field("description").or_else(|| {
        let parts: Vec<String> = ["vendor", "architecture"]
            .iter()
            .filter_map(|n| field(n))
            .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    })
}

fn now_millis() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map(|p| p.now())
        .unwrap_or(0.0)
}
