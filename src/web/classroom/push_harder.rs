//! "Push harder": the same batch's update replayed with a larger learning rate or more epochs,
//! and what the clip does about it.

use std::sync::Arc;

use leptos::prelude::*;

use crate::explain::format::{agree, band, band_edges, count, num, sci};
use crate::explore::policy_case;
use crate::lab::walkthrough::{Replay, Walkthrough, response_ratio};
use crate::ppo::clip_range::ClipRange;
use crate::web::select::{exact, response_token, show_token};
use crate::web::state::{AppState, Asked};

/// The learning-rate factors and epochs the replay offers.
const LR_FACTORS: [f64; 5] = [1.0, 3.0, 10.0, 30.0, 100.0];

fn stat_row(
    label: &'static str,
    key: &'static str,
    normal: f32,
    pushed: Option<f32>,
) -> impl IntoView {
    view! {
        <tr>
            <th scope="row">{label}</th>
            <td class="num" data-testid=format!("ph-{key}-normal") data-v=exact(normal)>{num(normal)}</td>
            <td class="num" data-testid=format!("ph-{key}-pushed") data-v=pushed.map(exact).unwrap_or_default()>
                {pushed.map(num).unwrap_or_else(|| "·".into())}
            </td>
        </tr>
    }
}

/// How many of this update's ratios left the band it clips to: each token's, or each
/// response's where the member takes one ratio per response (REINFORCE has no band); when no
/// update ran, that.
fn how_far_this_update_moved(walk: &Walkthrough) -> String {
    if !walk.experience.updated() {
        return format!(
            "No update ran on this batch: {}'s dynamic sampling left every group out (each \
             group's rewards were all equal), so there is no update to replay, whatever the \
             learning rate.",
            walk.experience.member.name()
        );
    }
    let outside = |ratios: &mut dyn Iterator<Item = f32>, (lo, hi): (f32, f32)| {
        let (mut out, mut all) = (0usize, 0usize);
        for r in ratios {
            all += 1;
            out += usize::from(r < lo || r > hi);
        }
        (out, all)
    };
    let (out, all, what, edges) = match walk.update.token_band() {
        Some(band) => {
            let (out, all) = outside(
                &mut walk
                    .policy_after
                    .iter()
                    .flat_map(|p| &p.tokens)
                    .map(|p| p.ratio),
                band.edges(),
            );
            (out, all, "tokens", band.edges())
        }
        None => {
            let clip = walk.update.grpo.map(|g| g.clip);
            let Some(band) = clip.filter(|c| c.high.is_finite()) else {
                return format!(
                    "{} clips nothing, so no ratio is held back.",
                    walk.experience.member.name()
                );
            };
            let (out, all) = outside(
                &mut (0..walk.policy_after.len())
                    .filter_map(|b| walk.response_ratio(b))
                    .map(|r| r.ratio),
                band.edges(),
            );
            (out, all, "responses", band.edges())
        }
    };
    let share = if all == 0 {
        0.0
    } else {
        out as f32 / all as f32
    };
    let how = if share < 0.05 {
        "This update barely moved the policy"
    } else {
        "This update moved the policy"
    };
    format!(
        "{how}: {out} of the batch's {all} {what} {} a ratio outside the band {}.",
        agree(out, "has", "have"),
        band(edges.0, edges.1)
    )
}

/// Replays the shown batch's update with a larger learning rate and more epochs, beside the
/// update that ran.
pub fn push_harder(state: AppState, walk: &Arc<Walkthrough>, row: usize) -> impl IntoView {
    let factor = RwSignal::new(10.0f64);
    let epochs = RwSignal::new(8usize);
    let base_lr = walk.update.lr;
    let ran = walk.experience.updated();
    let intro = how_far_this_update_moved(walk);
    let walk = walk.clone();
    let result = move || {
        let replay: Option<Arc<Replay>> = match state.replay.get() {
            Asked::Done(r) => Some(r),
            _ => None,
        };
        let s = &walk.stats;
        let r = replay.as_ref().map(|r| r.stats.clone());
        let stats = view! {
            <table class="numbers" data-testid="push-stats">
                <thead><tr><th></th>
                    <th>{format!("this update (lr {}, {})", sci(walk.update.lr), count(walk.update.epochs, "epoch", "epochs"))}</th>
                    <th>{replay.as_ref().map_or("pushed harder".to_string(), |r| format!("pushed (lr {}, {})", sci(r.update.lr), count(r.update.epochs, "epoch", "epochs")))}</th>
                </tr></thead>
                <tbody>
                    {stat_row("policy clip fraction", "policy-clip-frac", s.policy_clip_frac, r.as_ref().map(|r| r.policy_clip_frac))}
                    {stat_row("value clip fraction", "value-clip-frac", s.value_clip_frac, r.as_ref().map(|r| r.value_clip_frac))}
                    {stat_row("approx KL (new vs old policy)", "approx-kl", s.approx_kl, r.as_ref().map(|r| r.approx_kl))}
                    {stat_row("policy loss", "loss-policy", s.loss_policy, r.as_ref().map(|r| r.loss_policy))}
                    {stat_row("value loss", "loss-value", s.loss_value, r.as_ref().map(|r| r.loss_value))}
                </tbody>
            </table>
        };
        let stopped = replay.as_ref().map(|r| {
            // The band each token's own ratio was clipped to (none where the update took one
            // ratio per response: no token is clipped on its own there).
            let band = r.update.token_band();
            let (lo, hi) = band.map_or((0.0, f32::INFINITY), ClipRange::edges);
            let whole = response_ratio(&r.update, &r.policy_after[row]);
            let clipped: Vec<_> = r.policy_after[row]
                .tokens
                .iter()
                .filter(|p| band.is_some_and(|b| policy_case(p.ratio, p.advantage, b).clipped_wins))
                .map(|p| {
                    let t = p.t;
                    let up = p.advantage > 0.0;
                    view! {
                        <li>
                            <button class="tok" data-testid=format!("pushed-clipped-{t}") on:click=move |_| state.pick(Some(t))>
                                {show_token(&response_token(&walk, row, t))}
                            </button>
                            {format!(" {} ρ = {}, Â = {}", if up { "▲" } else { "▼" }, num(p.ratio), num(p.advantage))}
                        </li>
                    }
                })
                .collect();
            let n = clipped.len();
            view! {
                <p class="explain" data-testid="push-stopped">
                    {if let Some(w) = whole {
                        format!(
                            "{} clips no token on its own: pushed harder, response {} as a whole has the ratio ρ = {} with the advantage {}. {}",
                            walk.experience.member.name(),
                            row + 1,
                            num(w.ratio),
                            num(w.advantage),
                            match (w.clipped, r.update.grpo.is_some_and(|g| g.clip.high.is_finite())) {
                                _ if w.advantage == 0.0 => "Its advantage is 0: its term pushes neither way.",
                                (_, false) => "Nothing clips it: its term would keep pushing in further epochs.",
                                (true, true) => "It is past the band on the side its advantage pushes: in further epochs the whole response's term would give no gradient.",
                                (false, true) => "It is not past the band on the side its advantage pushes: its term would still push in further epochs.",
                            }
                        )
                    } else if n == 0 {
                        format!("No token of response {} left the band on the side its advantage pushes.", row + 1)
                    } else {
                        let (low_text, high_text) = band_edges(lo, hi);
                        format!(
                            "What clipping stops: in response {}, {} went past the band on the side {} advantage pushes \
                             (▲: Â > 0 and ρ above {}; ▼: Â < 0 and ρ below {}). From there min() takes the flat clipped branch, \
                             so each token's own term no longer pushes it in further epochs; shared weights, other tokens and \
                             AdamW's momentum can still move it. Without the clip that term would keep pushing: a ▲ token's ratio \
                             further up, a ▼ token's further down.",
                            row + 1,
                            count(n, "token", "tokens"),
                            agree(n, "its", "their"),
                            high_text,
                            low_text
                        )
                    }}
                </p>
                <ul class="clipped-list">{clipped}</ul>
            }
        });
        view! { {stats} {stopped} }
    };
    let status = move || match state.replay.get() {
        Asked::Idle => String::new(),
        Asked::Running => "replaying the update…".into(),
        Asked::Done(r) => format!(
            "replayed in {:.0} ms; the model the page trains is unchanged",
            r.millis
        ),
        Asked::Failed(err) => format!("the replay failed: {err}"),
    };
    view! {
        <section class="push-harder" data-testid="push-harder">
            <h3>"Make clipping happen: push harder"</h3>
            <p class="explain" data-testid="push-intro">
                {intro} " "
                "Replay the same batch's update from the same starting point with a larger learning rate and more epochs:"
            </p>
            <div class="push-controls">
                <label>"learning rate × "
                    <select data-testid="push-lr" on:change=move |ev| {
                        if let Ok(f) = event_target_value(&ev).parse() { factor.set(f); }
                    }>
                        {LR_FACTORS.iter().map(|f| view! { <option value=f.to_string() selected={*f == 10.0}>{f.to_string()}</option> }).collect_view()}
                    </select>
                </label>
                <label>" epochs "
                    <select data-testid="push-epochs" on:change=move |ev| {
                        if let Ok(e) = event_target_value(&ev).parse() { epochs.set(e); }
                    }>
                        {[1usize, 2, 4, 8, 16].iter().map(|e| view! { <option value=e.to_string() selected={*e == 8}>{e.to_string()}</option> }).collect_view()}
                    </select>
                </label>
                <button class="primary" data-testid="btn-push" disabled=!ran
                    title=(!ran).then_some("no update ran on this batch: nothing to replay")
                    on:click=move |_| state.push_harder(base_lr * factor.get_untracked(), epochs.get_untracked())>
                    "replay this update"
                </button>
                <span class="status" data-testid="push-status" data-state=move || match state.replay.get() { Asked::Idle => "idle", Asked::Running => "running", Asked::Done(_) => "done", Asked::Failed(_) => "failed" }>{status}</span>
            </div>
            {result}
        </section>
    }
}

// ---------------------------------------------------------------------------------------------
// What if.
