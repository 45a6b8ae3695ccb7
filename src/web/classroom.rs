//! The views a class works with: the clip explorer (one token against the policy and value
//! clips, and the batch's six cases), the "push harder" replay of the same batch's update,
//! what-if sliders that recompute the batch's rewards and advantages, and handouts (any chart
//! or map saved as PNG or SVG). The numbers come from [`crate::explore`].

use std::sync::Arc;

use leptos::prelude::*;
use wasm_bindgen::JsCast;

use super::select::{exact, response_token, show_token};
use super::state::{AppState, Asked};
use crate::explain::format::num;
use crate::explore::{
    Band, ClipCases, PolicyCase, ValueCase, WhatIf, clip_cases, gae_input_json, policy_case,
    surrogate, value_case, what_if,
};
use crate::lab::walkthrough::{Replay, Walkthrough};
use crate::ppo::Algorithm;
use crate::ppo::policy_loss::PolicyTrace;
use crate::ppo::rewards::KlEstimator;

/// How much larger presenter mode draws canvases and plots.
pub const PRESENTER_SCALE: f64 = 1.6;

pub fn scale(state: AppState) -> f64 {
    if state.presenter.get() {
        PRESENTER_SCALE
    } else {
        1.0
    }
}

pub fn device_pixel_ratio() -> f64 {
    web_sys::window().map_or(1.0, |w| w.device_pixel_ratio().max(1.0))
}

/// Sizes `canvas` to `w × h` CSS pixels with a backing store at the device pixel ratio;
/// returns the backing pixels per CSS pixel.
pub fn fit_canvas(canvas: &web_sys::HtmlCanvasElement, w: f64, h: f64) -> f64 {
    let k = device_pixel_ratio();
    canvas.set_width((w * k).round() as u32);
    canvas.set_height((h * k).round() as u32);
    let element: &web_sys::HtmlElement = canvas;
    let style = web_sys::HtmlElement::style(element);
    let _ = style.set_property("width", &format!("{w:.0}px"));
    let _ = style.set_property("height", &format!("{h:.0}px"));
    k
}

// ---------------------------------------------------------------------------------------------
// Handouts.

/// Starts a download of `href` as `file` (the link stays in the page, for tests to read).
fn download(anchor: &web_sys::HtmlAnchorElement, href: &str, file: &str) {
    anchor.set_href(href);
    anchor.set_download(file);
    anchor.click();
}

/// "PNG" (when `png_too`) and "SVG" buttons for a figure: `png` gives its canvas, `svg` its
/// SVG markup.
pub fn handout_buttons(
    name: String,
    png_too: bool,
    png: impl Fn() -> Option<web_sys::HtmlCanvasElement> + 'static,
    svg: impl Fn() -> Option<String> + 'static,
) -> impl IntoView {
    let anchor = NodeRef::<leptos::html::A>::new();
    let (png_name, svg_name) = (format!("{name}.png"), format!("{name}.svg"));
    view! {
        <span class="handout" data-testid=format!("handout-{name}")>
            <button class="link" title="save as PNG, for slides" data-testid=format!("handout-{name}-png") hidden={!png_too}
                on:click=move |_| {
                    if let (Some(a), Some(canvas)) = (anchor.get(), png()) {
                        if let Ok(url) = canvas.to_data_url_with_type("image/png") {
                            download(&a, &url, &png_name);
                        }
                    }
                }>"PNG"</button>
            <button class="link" title="save as SVG, for slides" data-testid=format!("handout-{name}-svg")
                on:click=move |_| {
                    if let (Some(a), Some(markup)) = (anchor.get(), svg()) {
                        let url = format!("data:image/svg+xml;charset=utf-8,{}", String::from(js_sys::encode_uri_component(&markup)));
                        download(&a, &url, &svg_name);
                    }
                }>"SVG"</button>
            <a node_ref=anchor class="handout-link" data-testid=format!("handout-{name}-link") aria-hidden="true" tabindex="-1"></a>
        </span>
    }
}

/// An SVG element's markup, as a standalone file.
pub fn svg_markup(id: &str) -> Option<String> {
    let el = document()
        .query_selector(&format!("[data-testid='{id}']"))
        .ok()??;
    let markup = el.outer_html();
    Some(if markup.contains("xmlns=") {
        markup
    } else {
        markup.replacen("<svg", "<svg xmlns=\"http://www.w3.org/2000/svg\"", 1)
    })
}

/// A canvas on the page by its test id.
pub fn canvas_by_id(id: &str) -> Option<web_sys::HtmlCanvasElement> {
    document()
        .query_selector(&format!("[data-testid='{id}']"))
        .ok()??
        .dyn_into()
        .ok()
}

// ---------------------------------------------------------------------------------------------
// The clip explorer.

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
/// shaded, and the token's ρ before the update, after it, and after the pushed replay.
fn clip_plot(case: &PolicyCase, pushed: Option<f32>) -> String {
    let (w, h) = (380.0f64, 210.0f64);
    let (left, right, top, bottom) = (56.0, 12.0, 12.0, 36.0);
    let eps = case.eps as f64;
    let mut x0 = (1.0 - 2.5 * eps).min(0.5);
    let mut x1 = (1.0 + 2.5 * eps).max(1.5);
    for r in std::iter::once(case.ratio).chain(pushed) {
        x0 = x0.min(r as f64 - 0.05);
        x1 = x1.max(r as f64 + 0.05);
    }
    let a = case.advantage;
    let f = |r: f64| surrogate(r as f32, a, case.eps) as f64;
    let knots = [x0, 1.0 - eps, 1.0 + eps, x1];
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
        px(1.0 - eps),
        px(1.0 + eps) - px(1.0 - eps),
        h - top - bottom
    );
    let flat = if a > 0.0 {
        Some((1.0 + eps, x1))
    } else if a < 0.0 {
        Some((x0, 1.0 - eps))
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
    for (r, label) in [
        (1.0 - eps, format!("1−ε = {:.2}", 1.0 - eps)),
        (1.0, "1".to_string()),
        (1.0 + eps, format!("1+ε = {:.2}", 1.0 + eps)),
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

fn cases_table(testid: &'static str, title: &'static str, cases: ClipCases) -> impl IntoView {
    let rows = [("A > 0", 0usize), ("A < 0", 1)]
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
            <thead><tr><th></th><th>"ρ < 1 − ε"</th><th>"inside"</th><th>"ρ > 1 + ε"</th></tr></thead>
            <tbody>{rows}</tbody>
        </table>
    }
}

/// What the update's advantage Â is in this iteration: GRPO's group advantage, or PPO's GAE
/// advantage whitened over the batch or used as it is.
fn advantage_kind(walk: &Walkthrough) -> &'static str {
    match (walk.experience.algorithm, walk.whiten.is_some()) {
        (Algorithm::Grpo, _) => "GRPO's group advantage, used as it is",
        (Algorithm::Ppo, true) => "the GAE advantage, whitened over the batch",
        (Algorithm::Ppo, false) => "the GAE advantage; whitening is off",
    }
}

/// For the picked token (or the one that moved most): its objective against ρ, which branch
/// counted and whether it still pushes; the same for the value clip; the batch's six cases.
pub fn clip_explorer(state: AppState, walk: &Arc<Walkthrough>, row: usize) -> impl IntoView {
    let walk = walk.clone();
    move || {
        let eps = walk.update.coeffs.clip_ratio;
        let c = walk.update.coeffs.clip_range_value;
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
        let case = policy_case(p.ratio, p.advantage, eps);
        let vcase = value_case(v.value_old, v.value_new, v.ret, c);
        let token = show_token(&response_token(&walk, row, t));
        let which = if picked {
            format!("token t = {t}")
        } else {
            format!("token t = {t}, the one whose ratio moved most (pick another token to see it)")
        };
        let pushed_line = pushed.map(|(ratio, advantage, _)| {
            let pc = policy_case(ratio, advantage, eps);
            view! {
                <p class="verdict pushed" data-testid="clip-verdict-pushed" data-clipped=pc.clipped_wins.to_string()>
                    <strong>"Pushed harder: "</strong>{pc.verdict()}
                </p>
            }
        });
        let normal_cases = clip_cases(&walk.policy_after, eps);
        let pushed_cases = replay.as_ref().map(|r| clip_cases(&r.policy_after, eps));
        Some(view! {
            <section class="clip-explorer" data-testid="clip-explorer" data-t=t>
                <h3>"Clip explorer: " {which} " " <code>{token}</code></h3>
                <div class="explorer-grid">
                    <figure class="plot">
                        <div inner_html=clip_plot(&case, pushed_p)></div>
                        <figcaption>
                            {format!("min(ρ·Â, clip(ρ, {:.2}, {:.2})·Â) with Â = {} ({}). ", 1.0 - eps, 1.0 + eps, num(p.advantage), advantage_kind(&walk))}
                            <span class="legend-dot before"></span>" before (ρ = 1) "
                            <span class="legend-dot after"></span>" after this update "
                            {pushed_p.map(|_| view! { <span class="legend-dot pushed"></span>" after pushing harder" })}
                            " " {handout_buttons("clip-plot".into(), false, || None, || svg_markup("clip-plot"))}
                        </figcaption>
                    </figure>
                    <div>
                        <p class="verdict" data-testid="clip-verdict" data-clipped=case.clipped_wins.to_string() data-pushes=case.pushes.to_string()>
                            {case.verdict()}
                        </p>
                        {pushed_line}
                        <figure class="plot">
                            <div inner_html=value_line(&vcase, pushed_v)></div>
                            <figcaption>
                                {format!("The value clip: band [{}, {}], R = {}, V_new = {}. ", num(v.value_old - c), num(v.value_old + c), num(v.ret), num(v.value_new))}
                                {handout_buttons("value-line".into(), false, || None, || svg_markup("value-line"))}
                            </figcaption>
                        </figure>
                        <p class="verdict" data-testid="value-verdict" data-clipped=vcase.clip_zeroes.to_string() data-moved=vcase.moved.key()>{vcase.verdict()}</p>
                    </div>
                </div>
                <div class="cases-row">
                    {cases_table("cases-normal", "every token of the batch, after this update", normal_cases)}
                    {pushed_cases.map(|pc| cases_table("cases-pushed", "after pushing harder", pc))}
                </div>
                <p class="note">
                    "Shaded cells: the clip has set those tokens' gradient to 0 (A > 0 and ρ past 1 + ε, or A < 0 and ρ below 1 − ε). "
                    "In the other corners the unclipped term still counts: a token the update moved the wrong way is still pulled back."
                </p>
            </section>
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Push harder.

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

/// Replays the shown batch's update with a larger learning rate and more epochs, beside the
/// update that ran.
pub fn push_harder(state: AppState, walk: &Arc<Walkthrough>, row: usize) -> impl IntoView {
    let factor = RwSignal::new(10.0f64);
    let epochs = RwSignal::new(8usize);
    let base_lr = walk.update.lr;
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
                    <th>{format!("this update (lr {:.0e}, {} epochs)", walk.update.lr, walk.update.epochs)}</th>
                    <th>{replay.as_ref().map_or("pushed harder".to_string(), |r| format!("pushed (lr {:.0e}, {} epochs)", r.update.lr, r.update.epochs))}</th>
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
            let eps = walk.update.coeffs.clip_ratio;
            let clipped: Vec<_> = r.policy_after[row]
                .tokens
                .iter()
                .filter(|p| policy_case(p.ratio, p.advantage, eps).clipped_wins)
                .map(|p| {
                    let t = p.t;
                    let up = p.advantage > 0.0;
                    view! {
                        <li>
                            <button class="tok" data-testid=format!("pushed-clipped-{t}") on:click=move |_| state.pick(Some(t))>
                                {show_token(&response_token(&walk, row, t))}
                            </button>
                            {format!(" {} ρ = {}, A = {}", if up { "▲" } else { "▼" }, num(p.ratio), num(p.advantage))}
                        </li>
                    }
                })
                .collect();
            let n = clipped.len();
            view! {
                <p class="explain" data-testid="push-stopped">
                    {if n == 0 {
                        format!("No token of response {} left the band on the side its advantage pushes.", row + 1)
                    } else {
                        format!(
                            "What clipping stops: in response {}, {n} tokens went past the band on the side their advantage pushes \
                             (▲: Â > 0 and ρ above 1 + ε; ▼: Â < 0 and ρ below 1 − ε). From there min() takes the flat clipped branch, \
                             so each token's own term no longer pushes it in further epochs; shared weights, other tokens and \
                             AdamW's momentum can still move it. Without the clip that term would keep pushing: a ▲ token's ratio \
                             further up, a ▼ token's further down.",
                            row + 1
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
            <p class="explain">
                "At these settings one update barely moves the policy, so almost no ratio leaves the band. "
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
                <button class="primary" data-testid="btn-push" on:click=move |_| state.push_harder(base_lr * factor.get_untracked(), epochs.get_untracked())>
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
                <output data-testid=format!("wi-{key}-value")>{move || format!("{:.2}", settings.with(|s| get(s)))}</output>
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
                    format!("{flips} of response {}'s {real} tokens change the sign of the advantage the update would use.", row + 1)
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
                <summary>"These inputs for " <code>"ppo-lens gae --whiten"</code></summary>
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
