//! The GAE sandbox: type rewards, values, mask, gamma and lambda, and watch deltas, advantages
//! and returns follow. It starts on the worked example of the tutorial (gamma 0.9, lambda 0.95).

use leptos::prelude::*;

use super::select::exact;
use crate::explain::format::num;
use crate::explain::math;
use crate::ppo::check_suffix_mask;
use crate::ppo::gae::{GaeParams, GaeTrace, gae_ref};
use crate::web::stages::common::mathml;

/// The worked example: rewards, values, mask per token.
const EXAMPLE: [[&str; 3]; 3] = [["1", "2.0", "1"], ["0", "2.5", "1"], ["2", "3.0", "1"]];
const COLUMNS: [&str; 3] = ["reward", "value", "mask"];

fn example_rows() -> Vec<[String; 3]> {
    EXAMPLE.iter().map(|r| r.map(str::to_string)).collect()
}

/// Every cell read, or the errors found: (testid of the bad cell, message).
fn evaluate(
    rows: &[[String; 3]],
    gamma: &str,
    lam: &str,
) -> Result<GaeTrace, Vec<(String, String)>> {
    let mut errors = Vec::new();
    let mut columns = [Vec::new(), Vec::new(), Vec::new()];
    for (t, row) in rows.iter().enumerate() {
        for (c, text) in row.iter().enumerate() {
            match text.trim().parse::<f32>() {
                Ok(x) if x.is_finite() => columns[c].push(x),
                _ => {
                    errors.push((
                        format!("sb-{}-{t}", COLUMNS[c]),
                        format!(
                            "{} at t = {t}: “{}” is not a number",
                            COLUMNS[c],
                            text.trim()
                        ),
                    ));
                    columns[c].push(0.0);
                }
            }
        }
    }
    let mut param = |name: &str, text: &str| match text.trim().parse::<f32>() {
        Ok(x) => Some(x),
        Err(_) => {
            errors.push((
                format!("sb-{name}"),
                format!("{name}: “{}” is not a number", text.trim()),
            ));
            None
        }
    };
    let (gamma, lam) = (param("gamma", gamma), param("lam", lam));
    let [rewards, values, mask] = columns;
    if errors.iter().all(|(id, _)| !id.starts_with("sb-mask")) {
        if let Err(err) = check_suffix_mask(&mask, "mask") {
            let t = mask
                .iter()
                .enumerate()
                .find(|(t, m)| {
                    (**m != 0.0 && **m != 1.0) || (**m == 1.0 && mask[..*t].contains(&0.0))
                })
                .map_or(0, |(t, _)| t);
            errors.push((format!("sb-mask-{t}"), err));
        }
    }
    let params = match (gamma, lam) {
        (Some(g), Some(l)) => match GaeParams::new(g, l) {
            Ok(p) => Some(p),
            Err(err) => {
                errors.push(("sb-gamma".into(), err));
                None
            }
        },
        _ => None,
    };
    if rows.is_empty() {
        errors.push(("sb-table".into(), "add at least one token".into()));
    }
    match params {
        Some(params) if errors.is_empty() => Ok(gae_ref(&rewards, &values, &mask, params)),
        _ => Err(errors),
    }
}

#[component]
pub fn Sandbox() -> impl IntoView {
    let rows = RwSignal::new(example_rows());
    let gamma = RwSignal::new("0.9".to_string());
    let lam = RwSignal::new("0.95".to_string());
    let result = Memo::new(move |_| rows.with(|r| evaluate(r, &gamma.get(), &lam.get())));
    let error_for = move |testid: String| {
        move || {
            result.with(|r| match r {
                Err(errors) => errors
                    .iter()
                    .find(|(id, _)| *id == testid)
                    .map(|(_, m)| m.clone()),
                Ok(_) => None,
            })
        }
    };
    let output = move |t: usize, which: usize| {
        move || {
            result.with(|r| match r {
                Ok(trace) if trace.steps.iter().any(|s| s.t == t) => {
                    let x = [&trace.deltas, &trace.advantages, &trace.returns][which][t];
                    (num(x), exact(x))
                }
                Ok(_) => ("0 (padding)".into(), "0.0".into()),
                Err(_) => ("·".into(), String::new()),
            })
        }
    };
    let param_input = move |name: &'static str, label: &'static str, signal: RwSignal<String>| {
        let testid = format!("sb-{name}");
        let err = error_for(testid.clone());
        view! {
            <label class="param">
                {label}
                <input
                    type="text"
                    inputmode="decimal"
                    data-testid=testid
                    class:bad=move || err().is_some()
                    prop:value=move || signal.get()
                    on:input=move |ev| signal.set(event_target_value(&ev))
                />
            </label>
        }
    };
    view! {
        <section class="card" data-testid="sandbox">
            <h2>"GAE sandbox: numbers you type"</h2>
            <p class="explain">
                "To change the real batch's settings, use " <em>"What if?"</em> " in the GAE stage. Here the "
                "numbers are yours: change any of them and the sweep runs again. It starts on the tutorial's example: three "
                "tokens, γ = 0.9, λ = 0.95. A mask of 0 marks padding after the response, so padding may "
                "only come after every real token."
            </p>
            <div class="params">
                {param_input("gamma", "γ ", gamma)}
                {param_input("lam", "λ ", lam)}
                <button data-testid="sb-example" on:click=move |_| {
                    rows.set(example_rows());
                    gamma.set("0.9".into());
                    lam.set("0.95".into());
                }>"worked example"</button>
                <button data-testid="sb-add" on:click=move |_| rows.update(|r| r.push(["0".into(), "0".into(), "1".into()]))>"add token"</button>
                <button data-testid="sb-remove" on:click=move |_| rows.update(|r| { r.pop(); })>"remove last"</button>
            </div>
            <table class="numbers sandbox" data-testid="sb-table">
                <thead><tr>
                    <th>"t"</th><th>"r_t"</th><th>"V(s_t)"</th><th>"mask"</th>
                    <th>"δ_t"</th><th>"A_t"</th><th>"R_t"</th>
                </tr></thead>
                <tbody>
                    <For each=move || 0..rows.with(Vec::len) key=|t| *t let:t>
                        <tr>
                            <td class="num">{t}</td>
                            {(0..3).map(|c| {
                                let testid = format!("sb-{}-{t}", COLUMNS[c]);
                                let err = error_for(testid.clone());
                                let err2 = err.clone();
                                view! {
                                    <td>
                                        <input
                                            type="text"
                                            inputmode="decimal"
                                            data-testid=testid
                                            aria-label=format!("{} at t = {t}", COLUMNS[c])
                                            class:bad=move || err().is_some()
                                            title=move || err2().unwrap_or_default()
                                            prop:value=move || rows.with(|r| r.get(t).map(|row| row[c].clone()).unwrap_or_default())
                                            on:input=move |ev| {
                                                let v = event_target_value(&ev);
                                                rows.update(|r| if let Some(row) = r.get_mut(t) { row[c] = v; });
                                            }
                                        />
                                    </td>
                                }
                            }).collect_view()}
                            {(0..3).map(|which| {
                                let out = output(t, which);
                                let out2 = output(t, which);
                                let name = ["delta", "adv", "ret"][which];
                                view! {
                                    <td class="num" data-testid=format!("sb-{name}-{t}") data-v=move || out2().1>{move || out().0}</td>
                                }
                            }).collect_view()}
                        </tr>
                    </For>
                </tbody>
            </table>
            <ul class="errors" data-testid="sb-errors">
                {move || result.with(|r| match r {
                    Err(errors) => errors.iter().map(|(_, m)| view! { <li>{m.clone()}</li> }).collect_view().into_any(),
                    Ok(_) => ().into_any(),
                })}
            </ul>
            // The same formulas, in the same notation, as the GAE stage's, from t = T−1 down.
            <div class="formula" data-testid="sb-steps">
                {move || result.with(|r| match r {
                    Ok(trace) => trace.steps.iter().enumerate().map(|(i, s)| {
                        let [delta_general, delta_filled] = math::delta(s, trace.params.gamma);
                        let [adv_general, adv_filled] = math::advantage(s, trace.params);
                        view! {
                            {(i == 0).then(|| view! {
                                <div class="general" data-testid="sb-general">{mathml(delta_general)}{mathml(adv_general)}</div>
                            })}
                            <div data-testid=format!("sb-delta-formula-{}", s.t) data-v=exact(s.delta)>{mathml(delta_filled)}</div>
                            <div data-testid=format!("sb-adv-formula-{}", s.t) data-v=exact(s.advantage)>{mathml(adv_filled)}</div>
                        }
                    }).collect_view().into_any(),
                    Err(_) => ().into_any(),
                })}
            </div>
        </section>
    }
}
