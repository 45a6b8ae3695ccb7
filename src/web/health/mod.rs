//! Is this run healthy? The trainer's run-health checks ([`crate::health`]) on the page's run,
//! after every iteration, each finding linked to the chart and the stage that show it; and
//! "break it": presets ([`crate::break_it`]) that make the run fail on purpose, with a "fix it"
//! button that puts the setting back.

pub mod run;

use leptos::prelude::*;

use super::state::{Activity, AppState, Stage};
use crate::break_it::PRESETS;
use crate::health::Check;

/// The chart (its id in charts.rs and its title) and the stage where a finding shows.
pub fn shown_in(check: Check) -> (&'static str, &'static str, Stage) {
    match check {
        Check::PolicyClipHigh | Check::PolicyClipSustained | Check::ValueClipHigh => {
            ("clip", "clip fractions", Stage::Update)
        }
        Check::GradNormExploding => ("grad-norm", "gradient norm", Stage::Update),
        Check::ValueLossFlat => ("value-loss", "value loss", Stage::Values),
        Check::ApproxKlHigh | Check::ApproxKlGrowing => ("approx-kl", "approx KL", Stage::Update),
        Check::KlRefGrowing => ("kl", "KL to reference", Stage::Score),
        Check::RewardFlatKlRising => ("reward", "reward mean", Stage::Score),
        Check::EntropyCollapsed => ("entropy", "entropy", Stage::Rollout),
        Check::CriticWorseThanMean => (
            "explained-variance",
            "critic explained variance",
            Stage::Values,
        ),
    }
}

fn element(selector: &str) -> Option<web_sys::Element> {
    web_sys::window()?
        .document()?
        .query_selector(selector)
        .ok()
        .flatten()
}

/// Scrolls chart `id` into view and makes it flash once.
fn show_chart(id: &str) {
    if let Some(canvas) = element(&format!("[data-testid=chart-{id}]")) {
        canvas.scroll_into_view();
        if let Some(figure) = canvas.parent_element() {
            let list = figure.class_list();
            let _ = list.remove_1("flash");
            // Read the layout so the animation starts over when the class comes back.
            let _ = figure.get_bounding_client_rect();
            let _ = list.add_1("flash");
        }
    }
}

#[component]
pub fn HealthPanel(state: AppState) -> impl IntoView {
    let busy = move || {
        matches!(
            state.activity.get(),
            Activity::Loading | Activity::Computing | Activity::Training
        )
    };
    let presets = PRESETS
        .iter()
        .enumerate()
        .map(|(i, p)| {
            // A preset the settings in force refuse (16 epochs under REINFORCE, which takes one)
            // is not offered: its title says why.
            let refused = move || state.settings.with(|s| p.apply(s).groups().err().map(|r| r.message));
            view! {
                <button data-testid=format!("break-{}", p.key)
                    title=move || refused().unwrap_or_else(|| p.about.to_string())
                    prop:disabled=move || busy() || refused().is_some()
                    class:active=move || state.broken.with(|b| b.as_ref().is_some_and(|b| b.preset == i && b.fixed_after.is_none()))
                    on:click=move |_| state.break_with(i)>
                    {p.label}
                </button>
            }
        })
        .collect_view();
    let broken = move || {
        let b = state.broken.get()?;
        let p = b.preset();
        let fixed = b.fixed_after.map(|i| {
            format!(
                " Fixed after iteration {i}: the run goes on from there with {} as it was.",
                p.keys
                    .iter()
                    .map(|k| crate::lab::setting_keys::label(k))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        });
        Some(view! {
            <p class="broken" data-testid="broken" data-preset=p.key data-fixed=b.fixed_after.is_some().to_string()>
                <strong>{format!("Broken: {}. ", p.label)}</strong>
                {p.about}
                {fixed}
                " "
                {b.fixed_after.is_none().then(|| view! {
                    <button class="primary" data-testid="fix-it" on:click=move |_| state.fix_it()>"fix it"</button>
                })}
            </p>
        })
    };
    let iterations = move || state.health.with(|h| h.watch.history().len().to_string());
    let findings = move || {
        let h = state.health.get();
        if h.seen.is_empty() {
            let n = h.watch.history().len();
            let text = if n == 0 {
                "No iterations yet.".to_string()
            } else {
                format!(
                    "No finding after {n} iteration{}.",
                    if n == 1 { "" } else { "s" }
                )
            };
            return view! { <p class="note" data-testid="health-none">{text}</p> }.into_any();
        }
        let items = h
            .seen
            .iter()
            .map(|(first, f)| {
                let now = h.watch.firing(f.check);
                let (chart, chart_title, stage) = shown_in(f.check);
                let when = if now {
                    format!("since iteration {first}")
                } else {
                    format!("from iteration {first}; not on the latest")
                };
                view! {
                    <li class="finding" class:now=now data-testid=format!("finding-{}", f.check.key())
                        data-first=first.to_string() data-now=now.to_string()>
                        <strong data-testid=format!("finding-{}-title", f.check.key())>{f.check.title()}</strong>
                        " " <code class="note">{f.check.key()}</code>
                        <span class="note">{format!(" ({when})")}</span>
                        <p>{f.meaning.clone()}</p>
                        <p data-testid=format!("finding-{}-advice", f.check.key())><em>"Try: "</em>{f.advice(crate::lab::setting_keys::knob_name)}"."</p>
                        <p class="links">
                            "See it: "
                            <button class="link" data-testid=format!("finding-{}-chart", f.check.key())
                                on:click=move |_| show_chart(chart)>{format!("the {chart_title} chart")}</button>
                            " · "
                            <button class="link" data-testid=format!("finding-{}-stage", f.check.key())
                                on:click=move |_| {
                                    state.goto(stage);
                                    if let Some(tabs) = element("[data-testid=stage-tabs]") {
                                        tabs.scroll_into_view();
                                    }
                                }>{format!("stage {}", stage.title())}</button>
                        </p>
                    </li>
                }
            })
            .collect_view();
        view! { <ul class="findings" data-testid="findings">{items}</ul> }.into_any()
    };
    view! {
        <section class="card" data-testid="health" data-iterations=iterations>
            <h2>"Is this run healthy?"</h2>
            <p class="explain">
                "After every iteration the page runs the trainer's checks (src/health/) on this "
                "run's metrics: clip fractions, approx KL, the KL to the reference, the gradient "
                "norm, the value loss, the critic's explained variance and the entropy. Break the "
                "run on purpose and train to see what each failure looks like (each preset was tried on "
                "PPO's recipe); each preset starts a fresh run from the pretrained model, so the reward "
                "chart keeps the run before it to compare."
            </p>
            <div class="break-it" role="group" aria-label="Break it">
                <span>"Break it: "</span>
                {presets}
            </div>
            {broken}
            {findings}
        </section>
    }
}
