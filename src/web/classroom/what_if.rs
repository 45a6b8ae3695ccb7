//! What-if sliders: the batch's rewards and advantages recomputed under other settings.

use std::sync::Arc;

use leptos::prelude::*;
use wasm_bindgen::JsCast;

use crate::explain::format::num;
use crate::explore::{WhatIf, gae_input_json, what_if};
use crate::lab::walkthrough::Walkthrough;
use crate::ppo::family::Family;
use crate::ppo::rewards::KlEstimator;
use crate::web::select::{exact, response_token, show_token};
use crate::web::state::AppState;

fn estimator_key(e: KlEstimator) -> &'static str {
    match e {
        KlEstimator::K1 => "k1",
        KlEstimator::K2 => "k2",
        KlEstimator::K3 => "k3",
    }
}

/// A what-if number beside the batch's: marked when it changed by more than rounding noise
/// (1e-6, or 0.1% of the batch's value).
fn compared(testid: String, x: f32, batch: f32) -> impl IntoView {
    let changed = (x - batch).abs() > 1e-6 + 1e-3 * batch.abs();
    view! {
        <td class="num" class:changed=changed data-testid=testid data-v=exact(x) data-batch=exact(batch)>
            {num(x)}
            {changed.then(|| view! { <span class="was">{format!("was {}", num(batch))}</span> })}
        </td>
    }
}

/// Sliders for γ, λ, β, the KL estimator and whitening that recompute this batch's rewards,
/// advantages and returns at once (no model pass), beside the batch's own numbers.
pub fn what_if_panel(state: AppState, walk: &Arc<Walkthrough>, row: usize) -> impl IntoView {
    let exp = &walk.experience;
    let params = walk
        .gae
        .first()
        .map(|g| g.params)
        .unwrap_or(crate::ppo::gae::GaeParams {
            gamma: 1.0,
            lam: 0.95,
        });
    let own = WhatIf::of(exp, params, walk.whiten.is_some());
    let settings = RwSignal::new(own);
    let walk = walk.clone();
    let slider = move |key: &'static str,
                       label: &'static str,
                       max: f32,
                       get: fn(&WhatIf) -> f32,
                       set: fn(&mut WhatIf, f32)| {
        view! {
            <label class="slider">
                <span>{label}</span>
                <input type="range" min="0" max=max.to_string() step="0.01" data-testid=format!("wi-{key}")
                    aria-label=label
                    prop:value=move || settings.with(|s| get(s).to_string())
                    on:input=move |ev| {
                        if let Ok(x) = event_target_value(&ev).parse::<f32>() {
                            settings.update(|s| set(s, x));
                        }
                    } />
                <output data-testid=format!("wi-{key}-value")>{move || crate::explain::format::num(settings.with(|s| get(s)))}</output>
            </label>
        }
    };
    let table = move || {
        let w = settings.get();
        let exp = &walk.experience;
        let result = match what_if(exp, w) {
            Ok(r) => r,
            Err(err) => {
                return view! { <p class="banner warn" data-testid="wi-error">{err}</p> }
                    .into_any();
            }
        };
        let real = crate::explain::stage::real_len(&walk, row);
        let rows = (0..real)
            .map(|t| {
                view! {
                    <tr data-testid=format!("wi-row-{t}") class:sel=move || state.shown_token() == Some(t)
                        on:click=move |_| state.pick(Some(t))>
                        <td class="num">{t}</td>
                        <td class="tokcell">{show_token(&response_token(&walk, row, t))}</td>
                        {compared(format!("wi-kl-{t}"), result.kl[row][t], exp.kl[row][t])}
                        {compared(format!("wi-reward-{t}"), result.rewards[row][t], exp.rewards[row][t])}
                        {compared(format!("wi-adv-{t}"), result.advantages[row][t], exp.raw_advantages[row][t])}
                        {compared(format!("wi-ret-{t}"), result.returns[row][t], exp.returns[row][t])}
                        {compared(format!("wi-white-{t}"), result.used[row][t], exp.advantages[row][t])}
                    </tr>
                }
            })
            .collect_view();
        let flips = (0..real)
            .filter(|&t| (result.used[row][t] > 0.0) != (exp.advantages[row][t] > 0.0))
            .count();
        let json = gae_input_json(
            &result.rewards,
            &exp.rollout.values,
            &exp.rollout.response_mask,
            w.gamma,
            w.lam,
        );
        view! {
            <p class="note" data-testid="wi-summary">
                {if w == own {
                    "These are the batch's own settings: every number equals the stages'. Move a slider.".to_string()
                } else {
                    let whose = if exp.member == Family::Ppo {
                        "the advantage the update would use".to_string()
                    } else {
                        format!("PPO's advantage (this iteration's {} update used its own)", exp.member.name())
                    };
                    format!(
                        "{flips} of response {}'s {real} tokens {} the sign of {whose}.",
                        row + 1,
                        crate::explain::format::agree(flips, "changes", "change")
                    )
                }}
            </p>
            <div class="table-scroll">
                <table class="numbers" data-testid="wi-table">
                    <thead><tr><th>"t"</th><th>"token"</th><th>"KL_t"</th><th>"r_t"</th><th>"A_t"</th><th>"R_t"</th>
                        <th>{if w.whiten { "Â_t (whitened)" } else { "A_t used" }}</th></tr></thead>
                    <tbody>{rows}</tbody>
                </table>
            </div>
            <details class="cli">
                <summary>"These inputs, saved as " <code>"gae.json"</code> ", for "
                    <code data-testid="wi-command">{if w.whiten { "ppo-lens gae --table --whiten --input gae.json" } else { "ppo-lens gae --table --input gae.json" }}</code></summary>
                <pre data-testid="wi-json">{json}</pre>
            </details>
        }
        .into_any()
    };
    view! {
        <section class="what-if" data-testid="what-if">
            <h3>"What if? This batch under other settings"</h3>
            <p class="explain">
                "The rollouts, scores, log-probabilities and values stay as sampled; the rewards, GAE, returns and "
                "whitening are recomputed at once with the same functions the trainer runs. Changed numbers are marked, "
                "with the batch's own value under them."
            </p>
            <div class="sliders">
                {slider("gamma", "γ", 1.0, |s| s.gamma, |s, x| s.gamma = x)}
                {slider("lam", "λ", 1.0, |s| s.lam, |s, x| s.lam = x)}
                {slider("beta", "β (KL coefficient)", 0.5, |s| s.kl_coeff, |s, x| s.kl_coeff = x)}
                <label class="slider"><span>"KL estimator"</span>
                    <select data-testid="wi-estimator" aria-label="KL estimator"
                        on:change=move |ev| {
                            if let Ok(e) = KlEstimator::parse(&event_target_value(&ev)) {
                                settings.update(|s| s.estimator = e);
                            }
                        }>
                        {[KlEstimator::K1, KlEstimator::K2, KlEstimator::K3].into_iter().map(|e| view! {
                            <option value=estimator_key(e) selected=move || settings.with(|s| s.estimator == e)>{estimator_key(e)}</option>
                        }).collect_view()}
                    </select>
                </label>
                <label class="slider"><span>"whiten"</span>
                    <input type="checkbox" data-testid="wi-whiten" aria-label="whiten advantages"
                        prop:checked=move || settings.with(|s| s.whiten)
                        on:change=move |ev| {
                            let on = ev.target().and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok()).is_some_and(|i| i.checked());
                            settings.update(|s| s.whiten = on);
                        } />
                </label>
                <button data-testid="wi-reset" on:click=move |_| settings.set(own)>"the batch's settings"</button>
            </div>
            {table}
        </section>
    }
}
