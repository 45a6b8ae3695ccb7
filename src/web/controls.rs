//! The controls in the sticky bar (step, play, next iteration, train, presenter, tour,
//! predict), the stage tabs, the live rollout while an iteration is sampled, and the
//! hyperparameters panel.

use leptos::prelude::*;

use super::state::{Activity, AppState, Stage};
use crate::lab::setting_keys::SETTING_KEYS;

/// The rollout of the iteration being computed, as its tokens are sampled: the first response
/// so far (the one the stages show when it arrives).
#[component]
pub(super) fn LiveRollout(state: AppState) -> impl IntoView {
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
pub(super) fn Controls(state: AppState) -> impl IntoView {
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
                // A stop is taken at once and done after the iteration under way.
                {move || match (training(), state.stop_requested.get()) {
                    (true, true) => "stopping… ■",
                    (true, false) => "stop training ■",
                    (false, _) => "train ⟳",
                }}
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
pub(super) fn StageTabs(state: AppState) -> impl IntoView {
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
pub(super) fn Settings(state: AppState) -> impl IntoView {
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
        // Settings that are fine alone but not together (samples per prompt, the algorithm,
        // epochs): the refusal names the field to change.
        if found.is_empty() {
            if let Err(refused) = next.groups() {
                let i = SETTING_KEYS
                    .iter()
                    .position(|k| k.key == refused.key)
                    .unwrap_or(0);
                found.push((i, refused.message));
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
