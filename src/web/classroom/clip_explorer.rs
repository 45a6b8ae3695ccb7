//! The clip explorer: one token against the policy and value clips, and the batch's six cases.

use std::sync::Arc;

use leptos::prelude::*;

use super::handouts::{handout_buttons, svg_markup};
use crate::explain::format::{band_edges, num};
use crate::explore::{Band, ClipCases, PolicyCase, ValueCase, clip_cases, policy_case, value_case};
use crate::lab::walkthrough::Walkthrough;
use crate::ppo::clip_range::ClipRange;
use crate::ppo::family::Family;
use crate::ppo::policy_loss::PolicyTrace;
use crate::web::select::{exact, response_token, show_token};
use crate::web::state::{AppState, Asked};

/// The token the explorer shows: the picked one, else the one whose ratio moved most.
fn explored_token(state: AppState, policy: &PolicyTrace) -> Option<(usize, bool)> {
    if let Some(t) = state.shown_token() {
        if policy.tokens.iter().any(|p| p.t == t) {
            return Some((t, true));
        }
    }
    policy
        .tokens
        .iter()
        .max_by(|a, b| (a.ratio - 1.0).abs().total_cmp(&(b.ratio - 1.0).abs()))
        .map(|p| (p.t, false))
}

/// The clipped objective against ρ for one token: the curve, the band, the flat region
/// shaded, and the token's ρ before the update, after it, and after the pushed replay. With
/// `comparison` the band is not the update's (its member clips the response's ratio, or
/// nothing): no region is marked "gradient 0".
fn clip_plot(case: &PolicyCase, pushed: Option<f32>, comparison: bool) -> String {
    let (w, h) = (380.0f64, 210.0f64);
    let (left, right, top, bottom) = (56.0, 12.0, 12.0, 36.0);
    // The band's two edges (the same width on each side unless the band is DAPO's); a band
    // open above is drawn to the plot's right edge.
    let (low, high) = (case.clip.low as f64, (case.clip.high as f64).min(2.0));
    let mut x0 = (1.0 - 2.5 * low).min(0.5);
    let mut x1 = (1.0 + 2.5 * high).max(1.5);
    for r in std::iter::once(case.ratio).chain(pushed) {
        x0 = x0.min(r as f64 - 0.05);
        x1 = x1.max(r as f64 + 0.05);
    }
    let a = case.advantage;
    let f = |r: f64| {
        let r = r as f32;
        (r * a).min(case.clip.clamp(r) * a) as f64
    };
    let knots = [x0, 1.0 - low, 1.0 + high, x1];
    let ys: Vec<f64> = knots.iter().map(|&r| f(r)).chain([0.0]).collect();
    let (mut y0, mut y1) = ys
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &y| {
            (a.min(y), b.max(y))
        });
    if y1 - y0 < 1e-6 {
        y0 -= 0.5;
        y1 += 0.5;
    }
    let pad = (y1 - y0) * 0.1;
    let (y0, y1) = (y0 - pad, y1 + pad);
    let px = |r: f64| left + (r - x0) / (x1 - x0) * (w - left - right);
    let py = |y: f64| top + (y1 - y) / (y1 - y0) * (h - top - bottom);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" class=\"clip-plot\" data-testid=\"clip-plot\" \
         data-x0=\"{x0}\" data-x1=\"{x1}\" data-left=\"{left}\" data-right=\"{}\" role=\"img\" \
         aria-label=\"The clipped objective against the ratio for this token\">\
         <rect x=\"0\" y=\"0\" width=\"{w}\" height=\"{h}\" fill=\"#ffffff\"/>",
        w - right
    );
    // The band, then the flat region on the side the advantage pushes.
    svg += &format!(
        "<rect class=\"clip-band\" x=\"{:.1}\" y=\"{top}\" width=\"{:.1}\" height=\"{:.1}\"/>",
        px(1.0 - low),
        px(1.0 + high) - px(1.0 - low),
        h - top - bottom
    );
    let flat = if comparison {
        None
    } else if a > 0.0 {
        Some((1.0 + high, x1))
    } else if a < 0.0 {
        Some((x0, 1.0 - low))
    } else {
        None
    };
    if let Some((f0, f1)) = flat {
        svg += &format!(
            "<rect class=\"clip-flat\" data-testid=\"clip-flat\" x=\"{:.1}\" y=\"{top}\" width=\"{:.1}\" height=\"{:.1}\"/>\
             <text class=\"clip-flat-label\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">gradient 0</text>",
            px(f0),
            px(f1) - px(f0),
            h - top - bottom,
            (px(f0) + px(f1)) / 2.0,
            top + 16.0
        );
    }
    // Axes: ρ ticks at the band edges and 1; y at 0.
    let base = h - bottom;
    svg += &format!(
        "<line class=\"axis\" x1=\"{left}\" y1=\"{base}\" x2=\"{:.1}\" y2=\"{base}\"/>\
         <line class=\"axis\" x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{base}\"/>",
        w - right
    );
    if (y0..=y1).contains(&0.0) {
        svg += &format!(
            "<line class=\"zero\" x1=\"{left}\" y1=\"{0:.1}\" x2=\"{1:.1}\" y2=\"{0:.1}\"/>\
             <text class=\"tick\" x=\"{2:.1}\" y=\"{3:.1}\" text-anchor=\"end\">0</text>",
            py(0.0),
            w - right,
            left - 4.0,
            py(0.0) + 4.0
        );
    }
    let (eps_low, eps_high) = if case.clip.is_symmetric() {
        ("ε", "ε")
    } else {
        ("ε_low", "ε_high")
    };
    let (low_text, high_text) = band_edges((1.0 - low) as f32, (1.0 + high) as f32);
    for (r, label) in [
        (1.0 - low, format!("1−{eps_low} = {low_text}")),
        (1.0, "1".to_string()),
        (1.0 + high, format!("1+{eps_high} = {high_text}")),
    ] {
        svg += &format!(
            "<line class=\"axis\" x1=\"{0:.1}\" y1=\"{base}\" x2=\"{0:.1}\" y2=\"{1}\"/>\
             <text class=\"tick\" x=\"{0:.1}\" y=\"{2}\" text-anchor=\"middle\">{label}</text>",
            px(r),
            base + 4.0,
            base + 16.0
        );
    }
    svg += &format!(
        "<text class=\"axis-label\" x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">ratio ρ = π_new / π_old</text>\
         <text class=\"axis-label\" x=\"14\" y=\"{:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 14 {:.1})\">objective</text>",
        (left + w - right) / 2.0,
        h - 4.0,
        (top + base) / 2.0,
        (top + base) / 2.0
    );
    let points: Vec<String> = knots
        .iter()
        .map(|&r| format!("{:.1},{:.1}", px(r), py(f(r))))
        .collect();
    svg += &format!(
        "<polyline class=\"clip-curve\" points=\"{}\"/>",
        points.join(" ")
    );
    let dot = |id: &str, class: &str, r: f32, label: &str| {
        format!(
            "<circle class=\"{class}\" data-testid=\"{id}\" data-ratio=\"{}\" cx=\"{:.2}\" cy=\"{:.2}\" r=\"6\"><title>{label}: ρ = {}</title></circle>",
            exact(r),
            px(r as f64),
            py(f(r as f64)),
            num(r)
        )
    };
    svg += &dot("clip-dot-before", "dot-before", 1.0, "before the update");
    svg += &dot(
        "clip-dot-after",
        "dot-after",
        case.ratio,
        "after the update",
    );
    if let Some(r) = pushed {
        svg += &dot("clip-dot-pushed", "dot-pushed", r, "after pushing harder");
    }
    svg + "</svg>"
}

/// The value clip for one token on a number line: V_old's band, the return, V_new.
fn value_line(case: &ValueCase, pushed: Option<f32>) -> String {
    let (w, h) = (380.0f64, 74.0f64);
    let (lo, hi) = (case.value_old - case.c, case.value_old + case.c);
    let xs = [lo, hi, case.ret, case.value_new]
        .into_iter()
        .chain(pushed)
        .map(f64::from);
    let (mut x0, mut x1) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
        (a.min(x), b.max(x))
    });
    let pad = (x1 - x0).max(0.1) * 0.12;
    x0 -= pad;
    x1 += pad;
    let px = |x: f32| 10.0 + (x as f64 - x0) / (x1 - x0) * (w - 20.0);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" class=\"value-line\" data-testid=\"value-line\" role=\"img\" \
         aria-label=\"The value clip band, the return and the new value\">\
         <rect x=\"0\" y=\"0\" width=\"{w}\" height=\"{h}\" fill=\"#ffffff\"/>\
         <line class=\"axis\" x1=\"10\" y1=\"40\" x2=\"{}\" y2=\"40\"/>\
         <rect class=\"clip-band\" x=\"{:.1}\" y=\"28\" width=\"{:.1}\" height=\"24\"/>\
         <text class=\"tick\" x=\"{:.1}\" y=\"66\" text-anchor=\"middle\">V_old ± c</text>",
        w - 10.0,
        px(lo),
        px(hi) - px(lo),
        px(case.value_old),
    );
    svg += &format!(
        "<path class=\"mark-return\" d=\"M {0:.1} 30 l 7 10 l -7 10 l -7 -10 z\"><title>R = {1}</title></path>\
         <text class=\"tick\" x=\"{0:.1}\" y=\"20\" text-anchor=\"middle\">R</text>",
        px(case.ret),
        num(case.ret)
    );
    svg += &format!(
        "<circle class=\"dot-after\" data-testid=\"value-dot-new\" cx=\"{0:.1}\" cy=\"40\" r=\"6\"><title>V_new = {1}</title></circle>\
         <text class=\"tick\" x=\"{0:.1}\" y=\"20\" text-anchor=\"middle\" dy=\"-0\">{2}</text>",
        px(case.value_new),
        num(case.value_new),
        if (px(case.value_new) - px(case.ret)).abs() < 18.0 {
            ""
        } else {
            "V_new"
        }
    );
    if let Some(v) = pushed {
        svg += &format!(
            "<circle class=\"dot-pushed\" cx=\"{:.1}\" cy=\"40\" r=\"5\"><title>pushed: V = {}</title></circle>",
            px(v),
            num(v)
        );
    }
    svg + "</svg>"
}

fn cases_table(
    testid: &'static str,
    title: &'static str,
    cases: ClipCases,
    clip: ClipRange,
) -> impl IntoView {
    let (low, high) = band_names(clip);
    let rows = [("Â > 0", 0usize), ("Â < 0", 1)]
        .into_iter()
        .map(|(label, sign)| {
            let cells = Band::ALL
                .iter()
                .enumerate()
                .map(|(b, band)| {
                    let zeroed = (sign == 0 && *band == Band::Above) || (sign == 1 && *band == Band::Below);
                    view! {
                        <td class="num" class:zeroed=zeroed data-testid=format!("{testid}-{}-{}", if sign == 0 { "pos" } else { "neg" }, band.key())>
                            {cases.counts[sign][b]}
                        </td>
                    }
                })
                .collect_view();
            view! { <tr><th scope="row">{label}</th>{cells}</tr> }
        })
        .collect_view();
    view! {
        <table class="numbers cases" data-testid=testid data-clipped=cases.clipped data-total=cases.total>
            <caption>{title}</caption>
            <thead><tr><th></th><th>{format!("ρ < {low}")}</th><th>"inside"</th><th>{format!("ρ > {high}")}</th></tr></thead>
            <tbody>{rows}</tbody>
        </table>
    }
}

/// The band's edges as the page names them: `1 − ε` and `1 + ε`, or DAPO's `1 − ε_low` and
/// `1 + ε_high`.
fn band_names(clip: ClipRange) -> (&'static str, &'static str) {
    if clip.is_symmetric() {
        ("1 − ε", "1 + ε")
    } else {
        ("1 − ε_low", "1 + ε_high")
    }
}

/// What the update's advantage Â is in this iteration: PPO's GAE advantage whitened over the
/// batch or used as it is, or the critic-free member's one number per response; DAPO's wider
/// band, and for the members that take one ratio per response, that the band drawn is PPO's.
fn advantage_kind(walk: &Walkthrough) -> String {
    let member = walk.experience.member;
    match (member, walk.whiten.is_some()) {
        (Family::Ppo, true) => "the GAE advantage, whitened over the batch".into(),
        (Family::Ppo, false) => "the GAE advantage; whitening is off".into(),
        (Family::Grpo | Family::DrGrpo, _) => {
            format!("{}'s one advantage for the whole response", member.name())
        }
        (Family::Dapo, _) => {
            "DAPO's one advantage for the whole response; DAPO's band is wider above (clip higher)"
                .into()
        }
        (_, _) => format!(
            "{}'s one advantage for the whole response; {} takes one ratio for the whole response{}, so this token's own ratio and PPO's band are drawn for comparison only",
            member.name(),
            member.name(),
            if member == Family::Reinforce {
                " and no clip"
            } else {
                " and clips that"
            }
        ),
    }
}

/// For the picked token (or the one that moved most): its objective against ρ, which branch
/// counted and whether it still pushes; the same for the value clip; the batch's six cases.
pub fn clip_explorer(state: AppState, walk: &Arc<Walkthrough>, row: usize) -> impl IntoView {
    let walk = walk.clone();
    move || {
        let eps = walk.update.coeffs.clip_ratio;
        let c = walk.update.coeffs.clip_range_value;
        let member = walk.experience.member;
        // The band this update clipped each token's ratio to; none where the member takes one
        // ratio per response (RLOO clips that, REINFORCE nothing): then PPO's band is drawn for
        // comparison and no token is said to have lost its gradient to it.
        let band = walk.update.token_band();
        let clip = band.unwrap_or(ClipRange::symmetric(eps));
        let comparison = band.is_none();
        // Only PPO has a value loss; the other members train no critic.
        let critic = walk.update.grpo.is_none();
        let policy = &walk.policy_after[row];
        let (t, picked) = explored_token(state, policy)?;
        let p = policy.tokens.iter().find(|p| p.t == t)?;
        let v = walk.value_after[row].tokens.iter().find(|v| v.t == t)?;
        let replay = match state.replay.get() {
            Asked::Done(r) => Some(r),
            _ => None,
        };
        // The same token after the push-harder replay, when there is one.
        let pushed = replay.as_ref().and_then(|r| {
            let q = r.policy_after[row].tokens.iter().find(|q| q.t == t)?;
            let w = r.value_after[row].tokens.iter().find(|w| w.t == t)?;
            Some((q.ratio, q.advantage, w.value_new))
        });
        let pushed_p = pushed.map(|(ratio, _, _)| ratio);
        let pushed_v = pushed.map(|(_, _, value)| value);
        let case = policy_case(p.ratio, p.advantage, clip);
        let vcase = value_case(v.value_old, v.value_new, v.ret, c);
        let token = show_token(&response_token(&walk, row, t));
        let which = if picked {
            format!("token t = {t}")
        } else {
            format!("token t = {t}, the one whose ratio moved most (pick another token to see it)")
        };
        let pushed_line = pushed.map(|(ratio, advantage, _)| {
            let pc = policy_case(ratio, advantage, clip);
            (!comparison).then(|| view! {
                <p class="verdict pushed" data-testid="clip-verdict-pushed" data-clipped=pc.clipped_wins.to_string()>
                    <strong>"Pushed harder: "</strong>{pc.verdict()}
                </p>
            })
        });
        let verdict = if let Some(out) = crate::explain::stage::left_out_token(&walk, row) {
            out
        } else if comparison {
            one_ratio_verdict(member)
        } else {
            case.verdict()
        };
        let (low_name, high_name) = band_names(clip);
        let (low_edge, high_edge) = {
            let (lo, hi) = clip.edges();
            band_edges(lo, hi)
        };
        let cases = (!comparison).then(|| {
            let normal_cases = clip_cases(&walk.policy_after, clip);
            let pushed_cases = replay.as_ref().map(|r| clip_cases(&r.policy_after, clip));
            view! {
                <div class="cases-row">
                    {cases_table("cases-normal", "every token of the batch, after this update", normal_cases, clip)}
                    {pushed_cases.map(|pc| cases_table("cases-pushed", "after pushing harder", pc, clip))}
                </div>
                <p class="note" data-testid="cases-note">
                    {format!(
                        "Shaded cells: the clip has set those tokens' policy-gradient term to 0 (Â > 0 and ρ past {high_name} = {high_edge}, or Â < 0 and ρ below {low_name} = {low_edge}); the entropy bonus and a KL term in the loss, where they are on, still act on them. "
                    )}
                    "In the other corners the unclipped term still counts: a token the update moved the wrong way is still pulled back."
                </p>
            }
        });
        Some(view! {
            <section class="clip-explorer" data-testid="clip-explorer" data-t=t data-band=format!("[{low_edge}, {high_edge}]") data-own-band=(!comparison).to_string()>
                <h3>"Clip explorer: " {which} " " <code>{token}</code></h3>
                <div class="explorer-grid">
                    <figure class="plot">
                        <div inner_html=clip_plot(&case, pushed_p, comparison)></div>
                        <figcaption>
                            {format!("min(ρ·Â, clip(ρ, {low_edge}, {high_edge})·Â) with Â = {} ({}). ", num(p.advantage), advantage_kind(&walk))}
                            <span class="legend-dot before"></span>" before (ρ = 1) "
                            <span class="legend-dot after"></span>" after this update "
                            {pushed_p.map(|_| view! { <span class="legend-dot pushed"></span>" after pushing harder" })}
                            " " {handout_buttons("clip-plot".into(), false, || None, || svg_markup("clip-plot"))}
                        </figcaption>
                    </figure>
                    <div>
                        <p class="verdict" data-testid="clip-verdict" data-clipped=(case.clipped_wins && !comparison).to_string() data-pushes=(case.pushes || comparison).to_string()>
                            {verdict}
                        </p>
                        {pushed_line}
                        {if critic {
                            view! {
                                <figure class="plot">
                                    <div inner_html=value_line(&vcase, pushed_v)></div>
                                    <figcaption>
                                        {format!("The value clip: band [{}, {}], R = {}, V_new = {}. ", num(v.value_old - c), num(v.value_old + c), num(v.ret), num(v.value_new))}
                                        {handout_buttons("value-line".into(), false, || None, || svg_markup("value-line"))}
                                    </figcaption>
                                </figure>
                                <p class="verdict" data-testid="value-verdict" data-clipped=vcase.clip_zeroes.to_string() data-moved=vcase.moved.key()>{vcase.verdict()}</p>
                            }.into_any()
                        } else {
                            view! {
                                <p class="verdict" data-testid="value-verdict-none">{no_critic_verdict(member)}</p>
                            }.into_any()
                        }}
                    </div>
                </div>
                {cases}
            </section>
        })
    }
}

/// The token verdict for a member that takes one ratio per response: its tokens' own ratios
/// are not clipped.
fn one_ratio_verdict(member: Family) -> String {
    let name = member.name();
    let clip = if member == Family::Reinforce {
        "and clips nothing"
    } else {
        "(the product of its tokens' ratios) and clips that"
    };
    format!(
        "{name} takes one ratio for the whole response {clip}: no token's own ratio is clipped, so \
         this token's place against the band drawn here (PPO's, for comparison) does not switch its \
         gradient off."
    )
}

/// The value half for a member without a critic.
fn no_critic_verdict(member: Family) -> String {
    format!(
        "{} has no value loss, so no value clip: the value head was not trained by this update \
         (its V_new moved only through the weights it shares with the policy).",
        member.name()
    )
}

// ---------------------------------------------------------------------------------------------
// Push harder.
