//! Stage 5, the update: each token's ratio against the clip band, the clipped policy and value
//! terms, the entropy, and the losses the update took its steps on.

use std::sync::Arc;

use leptos::prelude::*;

use super::common::{columns, compared_cell, mathml, plain_cell, why};
use crate::explain::format::{agree, band, band_edges, count, num};
use crate::explain::math;
use crate::explain::notes::notes;
use crate::explain::provenance::{Quantity, format_ratio};
use crate::explain::stage::{left_out, real_len};
use crate::explore::clip_cases;
use crate::lab::walkthrough::ResponseRatio;
use crate::lab::walkthrough::Walkthrough;
use crate::ppo::clip_range::ClipRange;
use crate::ppo::family::Family;
use crate::ppo::policy_loss::PolicyClip;
use crate::web::classroom::{clip_explorer, push_harder};
use crate::web::guide::{notes_view, provenance_view, term};
use crate::web::select::{
    cell, exact, explain_cell, response_token, show_token, token_row, token_strip,
};
use crate::web::state::{AppState, Stage};

pub(super) fn update(
    state: AppState,
    walk: &Arc<Walkthrough>,
    row: usize,
    cursor: usize,
    iteration: usize,
) -> impl IntoView {
    let stats = &walk.stats;
    let exp = &walk.experience;
    let policy = &walk.policy_after[row];
    let value = &walk.value_after[row];
    let eps = walk.update.coeffs.clip_ratio;
    // The band each token's own ratio was clipped to (None: one ratio per response, RLOO's and
    // REINFORCE's; the table then draws PPO's band for comparison and marks no token).
    let token_band = walk.update.token_band();
    let (band_lo, band_hi) = token_band.unwrap_or(ClipRange::symmetric(eps)).edges();
    // The ▲/▼ marks over the responses the update trained on (under dynamic sampling, the
    // groups it kept), after the update.
    let trained_rows = (walk.policy_after.iter().enumerate())
        .filter(|(b, _)| exp.row_used(*b))
        .map(|(_, p)| p);
    let marked = clip_cases(trained_rows, token_band.unwrap_or(ClipRange::NONE));
    let some_left_out = exp.some_left_out();
    let member = exp.member.name();
    // When no update ran (dynamic sampling kept no group) there is nothing to show.
    let ran = exp.updated();
    let stat = move |testid: &'static str, label: &'static str, x: f32| {
        view! {
            <div class="stat">
                <span class="label">{label}</span>
                <span class="num" data-testid=testid data-v=if ran { exact(x) } else { String::new() }>
                    {if ran { num(x) } else { "—".to_string() }}
                </span>
            </div>
        }
    };
    // With exercises on, the advantages and returns here came from the student's gae: where
    // they differ from the reference's, the cell shows the reference's under them.
    let compared = walk.exercises.as_ref().and_then(|c| c.gae.as_ref());
    let whitened = walk.whiten.is_some();
    let reference = |column: &str, t: usize| {
        let c = compared?;
        let column = if column == "white" && !whitened {
            "adv"
        } else {
            column
        };
        c.differs_at(column, row, t)?;
        Some(("reference", c.reference.column(column)?[row][t]))
    };
    let rows = policy
        .tokens
        .iter()
        .map(|p| {
            let t = p.t;
            // The band drawn from 0.5 to 1.5: where the ratio falls against the band.
            let pos = ((p.ratio - 0.5).clamp(0.0, 1.0)) * 100.0;
            let (lo, hi) = (
                (band_lo - 0.5).max(0.0) * 100.0,
                (band_hi - 0.5).min(1.0) * 100.0,
            );
            // Two unbreakable halves that may wrap between them, so the table keeps to its
            // column at 1280 x 800 when a token is clipped.
            let marker = match p.clip {
                PolicyClip::AboveBand => Some(("▲ clipped", "(Â > 0)")),
                PolicyClip::BelowBand => Some(("▼ clipped", "(Â < 0)")),
                PolicyClip::No => None,
            };
            let class = if p.clip != PolicyClip::No { "clipped" } else { "" };
            token_row(
                state,
                "upd-row",
                t,
                class.into(),
                false,
                view! {
                    <td class="num">{t}</td>
                    <td class="tokcell">{show_token(&response_token(walk, row, t))}</td>
                    {compared_cell(state, format!("upd-adv-{t}"), p.advantage, reference("white", t))}
                    {cell(state, format!("upd-old-{t}"), p.logp_old)}
                    {(cursor >= 1).then(|| view! {
                        {cell(state, format!("upd-new-{t}"), p.logp_new)}
                        {explain_cell(state, format!("upd-ratio-{t}"), format_ratio(p.ratio), p.ratio, t, Quantity::Ratio)}
                        <td class="band">
                            <span class="band-track">
                                <span class="band-ok" style=format!("left:{lo:.1}%;width:{:.1}%", hi - lo)></span>
                                <span class="band-dot" style=format!("left:{pos:.1}%")></span>
                            </span>
                        </td>
                        <td class="clipmark" data-testid=format!("upd-clip-{t}")>{marker.map(|(what, why)| view! {
                            <span class="nowrap">{what}</span>" "<span class="nowrap">{why}</span>
                        })}</td>
                    })}
                    {(cursor == 0).then(|| plain_cell(format!("upd-ent-{t}"), walk.entropy[row][t]))}
                },
            )
        })
        .collect_view();
    // The critic's columns in a table of their own, so each table fits a projector. Only PPO
    // has a value loss: under the other members there is no value clip to mark.
    let critic = walk.update.grpo.is_none();
    let critic_rows = value
        .tokens
        .iter()
        .map(|v| {
            let t = v.t;
            token_row(
                state,
                "upd-vrow",
                t,
                if critic && v.was_clipped { "clipped".into() } else { String::new() },
                false,
                view! {
                    <td class="num">{t}</td>
                    <td class="tokcell">{show_token(&response_token(walk, row, t))}</td>
                    {plain_cell(format!("upd-vold-{t}"), v.value_old)}
                    {plain_cell(format!("upd-vnew-{t}"), v.value_new)}
                    {compared_cell(state, format!("upd-ret-{t}"), v.ret, reference("ret", t))}
                    <td class="clipmark" data-testid=format!("upd-vclip-{t}")>{if critic && v.was_clipped { "clipped error counts" } else { "" }}</td>
                    {plain_cell(format!("upd-ent-{t}"), walk.entropy[row][t])}
                },
            )
        })
        .collect_view();
    // The rows the update trained on (under dynamic sampling only the groups it kept), cut as
    // the update cuts them.
    let trained = exp.batch().ids.len();
    let minibatches = trained.div_ceil(walk.update.mini_batch_size.min(trained).max(1));
    let main = view! {
        {token_strip(state, walk, row, real_len(walk, row), None)}
        <div class="stats stage-data" data-testid="update-stats">
            {stat("loss-policy", "policy loss", stats.loss_policy)}
            {stat("loss-value", "value loss", stats.loss_value)}
            {stat("loss-entropy", "entropy", stats.loss_entropy)}
            {stat("loss-total", "total loss", stats.loss_total)}
            {stat("approx-kl", "approx KL (new vs old policy)", stats.approx_kl)}
            {stat("policy-clip-frac", "policy clip frac", stats.policy_clip_frac)}
            {stat("value-clip-frac", "value clip frac", stats.value_clip_frac)}
            {stat("grad-norm", "grad norm (before clip to 1)", stats.grad_norm)}
        </div>
        {left_out(walk, row).map(|text| view! {
            <p class="note left-out" data-testid="update-left-out">{text}</p>
        })}
        {ran.then(|| view! {
            <p class="note" data-testid="update-objective">
                {objective(walk, minibatches)}
            </p>
        })}
        {(ran && cursor >= 1).then(|| view! {
            <p class="explain" data-testid="after-update" data-current="1">
                {match (token_band, walk.response_ratio(row)) {
                    (_, Some(r)) => format!(
                        "After {}: the new log-probabilities beside the old ones, for response {}. \
                         {member} takes one ratio per response, ρ = exp Σ_t (log π_new − log π_old): {} for this one, \
                         with the advantage {}. {} No token is clipped on its own, so the table marks none; \
                         its band is PPO's {}, drawn for comparison.",
                        count(stats.optimizer_steps, "AdamW step", "AdamW steps"), row + 1,
                        format_ratio(r.ratio), num(r.advantage), response_clip_sentence(walk, r),
                        band(band_lo, band_hi)
                    ),
                    _ => {
                        let (low_text, high_text) = band_edges(band_lo, band_hi);
                        format!(
                            "After {}: the new log-probabilities beside the old ones, for response {}. \
                             The band is {}. ▲ (Â > 0, ρ above {}) and ▼ (Â < 0, ρ below {}) mark tokens \
                             whose own term would give no gradient in a further epoch; the clip does not hold them still: \
                             shared weights, other tokens and AdamW's momentum can still move them. The marks count the \
                             batch after the update ({} of its {} tokens{}); the policy clip fraction above is a mean over \
                             the update's steps, each measured before its step.",
                            count(stats.optimizer_steps, "AdamW step", "AdamW steps"), row + 1,
                            band(band_lo, band_hi), high_text,
                            low_text, marked.clipped, marked.total,
                            if some_left_out { " in the groups it kept" } else { "" }
                        )
                    }
                }}
            </p>
        })}
        {loss_comparison(walk)}
        <div class="table-scroll">
            <table class="numbers" data-testid="update-table">
                <caption>"The policy: each token's ratio against the clip band"</caption>
                <thead><tr>
                    <th>"t"</th><th>"token"</th><th>"Â_t"</th><th>"log π_old"</th>
                    {(cursor >= 1).then(|| view! {
                        <th>"log π_new"</th><th>"ratio"</th><th>"clip band"</th><th>"clip"</th>
                    })}
                    {(cursor == 0).then(|| view! { <th>"entropy"</th> })}
                </tr></thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
        {(cursor >= 1).then(|| view! {
            <div class="table-scroll">
                <table class="numbers" data-testid="critic-table">
                    <caption>{if critic {
                        "The critic: each token's new value against the old one and the return".to_string()
                    } else {
                        format!("The value head, which {} does not train (no value loss): its new value against the old one and PPO's return", walk.experience.member.name())
                    }}</caption>
                    <thead><tr><th>"t"</th><th>"token"</th><th>"V_old"</th><th>"V_new"</th><th>"R_t"</th><th>"value clip"</th><th>"entropy"</th></tr></thead>
                    <tbody>{critic_rows}</tbody>
                </table>
            </div>
            {clip_explorer(state, walk, row)}
            {push_harder(state, walk, row)}
        })}
    }
    .into_any();
    let vclip = walk.update.coeffs.clip_range_value;
    let side = view! {
        {mathml(match walk.update.grpo {
            None => math::clipped_objective(eps),
            Some(g) if g.per_response => {
                math::response_objective(g.clip.high.is_finite().then(|| g.clip.edges()))
            }
            Some(g) => {
                let (low_edge, high_edge) = g.clip.edges();
                math::clipped_objective_in(low_edge, high_edge)
            }
        })}
        {provenance_view(state, Stage::Update)}
        {notes_view(state, notes(walk, Stage::Update, row, iteration))}
        {why("Why several epochs, and why clip?", view! {
            "Sampling is the expensive part, so PPO reuses each batch for several epochs. Once the policy "
            "moves, its tokens' probabilities no longer match those it sampled with: the "
            {term("ratio", "ratio")} " π_new / π_old measures how far. The " {term("clip", "clip")}
            {clip_why(walk)}
            {if critic {
                format!(
                    " The value loss takes the larger of the unclipped and the clipped squared error, with the band \
                     V_old ± {vclip}. When V_new has left the band after moving toward the return R (and has not \
                     passed R by as much as the band's edge is from R), the clipped error is the larger and the \
                     critic's gradient for that token is 0: no reward for moving further toward R in this update. \
                     Outside the band on the side away from R, the unclipped error is the larger and pulls V_new \
                     back; inside the band the two are equal and train it as usual."
                )
            } else {
                format!(" {} has no critic and no value loss.", walk.experience.member.name())
            }}
            " The " {term("entropy", "entropy")} " column is the rollout policy's, per token."
        }.into_any())}
    }
    .into_any();
    columns(main, side)
}

/// What the clip does, for the member that ran: PPO's band (or DAPO's wider one above) on each
/// token's ratio, RLOO's on the response's, none for REINFORCE. Follows "The clip".
fn clip_why(walk: &Walkthrough) -> String {
    let proximal = "there its gradient is 0. That is what keeps the update proximal.";
    match (walk.update.grpo, walk.update.token_band()) {
        (_, Some(range)) => {
            let (low_edge, high_edge) = range.edges();
            let band = if walk.update.grpo.is_none() {
                "[1 − ε, 1 + ε]".to_string()
            } else {
                band(low_edge, high_edge)
            };
            format!(
                " stops rewarding a token once its ratio has left {band} on the side its advantage \
                 pushes: {proximal}"
            )
        }
        (Some(g), None) if g.clip.high.is_finite() => {
            let (low_edge, high_edge) = g.clip.edges();
            format!(
                " of {} is on one ratio per response, the product of its tokens' ratios: once that \
                 has left {} on the side the response's advantage pushes, {proximal}",
                walk.experience.member.name(),
                band(low_edge, high_edge)
            )
        }
        _ => format!(
            " is what {} does not have: its response's term pushes however far the ratio has \
             moved, which is why it takes one epoch per batch.",
            walk.experience.member.name()
        ),
    }
}

/// What the update minimised, in the member's own terms.
fn objective(walk: &Walkthrough, minibatches: usize) -> String {
    let (stats, u) = (&walk.stats, &walk.update);
    let skipped = if stats.skipped_steps > 0 {
        format!(
            "; {} more skipped for a loss or gradient that was not finite",
            stats.skipped_steps
        )
    } else {
        String::new()
    };
    let steps = format!(
        "over the update's {} ({} × {}{skipped})",
        count(stats.optimizer_steps, "optimizer step", "optimizer steps"),
        count(u.epochs, "epoch", "epochs"),
        count(minibatches, "mini-batch", "mini-batches")
    );
    let member = walk.experience.member;
    let name = member.name();
    let no_critic = "no value loss: the critic columns show a value head this update did not train";
    match u.grpo {
        None => format!(
            "The figures above are means {steps}; total = policy + {} · value − {} · entropy.",
            u.coeffs.vf_coef, u.coeffs.entropy_coeff
        ),
        Some(g) if g.per_response => format!(
            "{name}: the figures above are means {steps}; total = policy − {} · entropy. The policy term takes one {} ratio per \
             response and averages over the responses. There is no KL term: each score loses \
             β · Σ_t (log π_old − log π_ref), with β = {} (the “{}” setting, not the Score stage's) \
             and plain log-ratios whatever estimator the Score stage shows; the baseline is the mean \
             of those penalised scores {}; {no_critic}.",
            u.coeffs.entropy_coeff,
            if member == Family::Reinforce {
                "unclipped"
            } else {
                "clipped"
            },
            num(walk.family.beta),
            crate::lab::setting_keys::label("beta"),
            if member == Family::Reinforce {
                "over the whole batch"
            } else {
                "over the other responses to the same prompt"
            },
        ),
        Some(g) if g.beta == 0.0 => format!(
            "{name}: the figures above are means {steps}; total = policy − {} · entropy ({}); no KL term ({}); {no_critic}. The \
             advantages are each response's against its group (GAE stage).",
            u.coeffs.entropy_coeff,
            g.agg.name(),
            if member == Family::Dapo {
                "DAPO has none"
            } else {
                "β = 0"
            }
        ),
        Some(g) => format!(
            "{name}: the figures above are means {steps}; total = policy + {} · KL − {} · entropy, with the k3 KL to the reference \
             {} ({}); {no_critic}. The advantages are each response's against its group (GAE stage).",
            g.beta,
            u.coeffs.entropy_coeff,
            num(stats.loss_kl),
            g.agg.name()
        ),
    }
}

/// Whether a further epoch would still push response `r` (RLOO's clip, or REINFORCE without one).
fn response_clip_sentence(walk: &Walkthrough, r: ResponseRatio) -> String {
    if r.advantage == 0.0 {
        return "Its advantage is 0: the response's term pushes neither way.".to_string();
    }
    let Some(clip) = walk
        .update
        .grpo
        .map(|g| g.clip)
        .filter(|c| c.high.is_finite())
    else {
        return "REINFORCE does not clip: the response's term pushes however far ρ has moved, which \
                is why it takes one epoch per batch."
            .to_string();
    };
    let (low_edge, high_edge) = clip.edges();
    let band = band(low_edge, high_edge);
    if r.clipped {
        format!(
            "It has left the band {band} on the side its advantage pushes, so in a further epoch the \
             whole response's term would give no gradient."
        )
    } else {
        let where_ = if (low_edge..=high_edge).contains(&r.ratio) {
            format!("It is inside the band {band}")
        } else {
            format!("It is past the band {band} on the side its advantage does not push")
        };
        format!("{where_}, so the whole response's term would still push in a further epoch.")
    }
}

/// With exercises on: exercises 1, 2, 3 and 5, the student's beside the reference's, on this
/// batch through the updated policy.
fn loss_comparison(walk: &Walkthrough) -> Option<impl IntoView> {
    let checks = &walk.exercises.as_ref()?.losses;
    let differing = checks.iter().filter(|c| c.differs()).count();
    let open = differing > 0;
    let rows = checks
        .iter()
        .map(|c| {
            let key = c.key.clone();
            let ex = crate::exercises::exercise(c.exercise);
            let yours = match c.yours {
                Some(y) => view! {
                    <td class="num" class:differs=c.differs() data-testid=format!("check-{key}-yours") data-v=exact(y)>
                        {c.differs().then(|| view! { <span class="mark" aria-hidden="true">"≠ "</span> })}
                        {num(y)}
                    </td>
                }
                .into_any(),
                None => view! {
                    <td class="todo" data-testid=format!("check-{key}-yours") data-v="">"not written"</td>
                }
                .into_any(),
            };
            view! {
                <tr data-testid=format!("check-{key}") data-state=if c.differs() { "differs" } else if c.yours.is_some() { "match" } else { "todo" }>
                    <td>{format!("{} {}", ex.number, ex.function)}</td>
                    <td>{c.label.clone()}</td>
                    {yours}
                    {plain_cell(format!("check-{key}-ref"), c.reference)}
                </tr>
            }
        })
        .collect_view();
    Some(view! {
        <details class="exercise-check" data-testid="exercise-check" open=open>
            <summary>
                {if differing == 0 {
                    "Your exercises 1, 2, 3 and 5 against the reference: nothing differs".to_string()
                } else {
                    format!(
                        "Your exercises 1, 2, 3 and 5 against the reference: {} {}",
                        count(differing, "value", "values"),
                        agree(differing, "differs", "differ")
                    )
                }}
            </summary>
            <p class="note">{crate::explain::stage::exercise_check_inputs(walk)}</p>
            <table class="numbers">
                <thead><tr><th>"exercise"</th><th>"value"</th><th>"yours"</th><th>"reference"</th></tr></thead>
                <tbody>{rows}</tbody>
            </table>
        </details>
    })
}
