//! Stage 0, the overview: the PPO loop as a diagram with this batch's shapes on its arrows (a
//! node opens its stage), the objective, the glossary, and the misconceptions this batch
//! disproves.

use leptos::prelude::*;
use wasm_bindgen::JsCast;

use crate::explain::guide::{GLOSSARY, LOOP, OBJECTIVE, loop_edges};
use crate::lab::walkthrough::Walkthrough;
use crate::misconceptions::misconceptions;
use crate::web::state::{AppState, Stage};

/// The PPO loop as an SVG: seven nodes on an ellipse, each arrow labelled with the tensor it
/// carries and this batch's shape. The node of the stage on show is lit.
fn loop_svg(walk: &Walkthrough, lit: Stage) -> String {
    let edges = loop_edges(walk);
    let (cx, cy, rx, ry) = (480.0f64, 215.0f64, 370.0f64, 160.0f64);
    let at = |i: usize| {
        let angle = -std::f64::consts::FRAC_PI_2 + i as f64 * std::f64::consts::TAU / 7.0;
        (cx + rx * angle.cos(), cy + ry * angle.sin())
    };
    // Each box as wide as its label needs (21px sans: about 11.5px a character) and at least 240.
    let h = 50.0;
    let width = |i: usize| (LOOP[i].label.chars().count() as f64 * 11.5 + 36.0).max(240.0);
    let mut svg = String::from(
        "<svg viewBox=\"-290 -5 1540 450\" role=\"img\" aria-label=\"The PPO loop\" class=\"loop-svg\">\
         <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" \
         markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" \
         class=\"arrow-head\"/></marker></defs>",
    );
    for (i, label) in edges.iter().enumerate() {
        let j = (i + 1) % 7;
        let (x1, y1) = at(i);
        let (x2, y2) = at(j);
        // From the edge of one box to the edge of the next.
        let (dx, dy) = (x2 - x1, y2 - y1);
        let shrink = |x: f64, y: f64, w: f64, s: f64| {
            let k = ((w / 2.0) / dx.abs().max(1e-9)).min((h / 2.0) / dy.abs().max(1e-9));
            (x + s * dx * k.min(0.45), y + s * dy * k.min(0.45))
        };
        let (ax, ay) = shrink(x1, y1, width(i), 1.0);
        let (bx, by) = shrink(x2, y2, width(j), -1.0);
        // The label sits outside the ellipse, beside the arrow's middle; under the bottom arrow
        // it goes below both boxes, clear of the arrow and of them.
        let (mx, my) = ((x1 + x2) / 2.0, (y1 + y2) / 2.0);
        let (ox, oy) = (mx - cx, my - cy);
        let out = (ox * ox + oy * oy).sqrt().max(1.0);
        let (lx, ly) = if ox.abs() <= 40.0 && oy > 0.0 {
            (mx, y1.max(y2) + h / 2.0 + 24.0)
        } else {
            (mx + 26.0 * ox / out, my + 26.0 * oy / out)
        };
        let anchor = if ox > 40.0 {
            "start"
        } else if ox < -40.0 {
            "end"
        } else {
            "middle"
        };
        svg.push_str(&format!(
            "<line x1=\"{ax:.1}\" y1=\"{ay:.1}\" x2=\"{bx:.1}\" y2=\"{by:.1}\" class=\"loop-arrow\" \
             marker-end=\"url(#arrow)\"/><text x=\"{lx:.1}\" y=\"{ly:.1}\" text-anchor=\"{anchor}\" \
             class=\"loop-edge\" data-testid=\"loop-edge-{i}\">{label}</text>",
        ));
    }
    for (i, node) in LOOP.iter().enumerate() {
        let (x, y) = at(i);
        let w = width(i);
        let lit_class = if node.stage == lit { " lit" } else { "" };
        svg.push_str(&format!(
            "<g class=\"loop-node{lit_class}\" data-testid=\"loop-node-{key}\" data-stage=\"{stage}\" \
             tabindex=\"0\" role=\"button\"><rect x=\"{rx:.1}\" y=\"{ry:.1}\" width=\"{w:.1}\" height=\"{h}\" \
             rx=\"10\"/><text x=\"{x:.1}\" y=\"{ty:.1}\" text-anchor=\"middle\">{label}</text></g>",
            key = node.key,
            stage = node.stage.key(),
            rx = x - w / 2.0,
            ry = y - h / 2.0,
            ty = y + 7.0,
            label = node.label,
        ));
    }
    svg.push_str("</svg>");
    svg
}

/// Stage 0: the loop, what is optimised, the tour's start, and the glossary.
pub(super) fn overview(state: AppState, walk: &Walkthrough) -> impl IntoView {
    let svg = loop_svg(walk, Stage::Overview);
    let ro = &walk.experience.rollout;
    let glossary = GLOSSARY
        .iter()
        .map(|(word, definition)| {
            view! {
                <div class="glossary-entry" data-testid=format!("glossary-{}", word.replace(' ', "-"))>
                    <dt>{*word}</dt>
                    <dd>{*definition}</dd>
                </div>
            }
        })
        .collect_view();
    view! {
        <div class="overview">
            <div
                class="loop-diagram stage-data"
                data-testid="loop-diagram"
                inner_html=svg
                on:click=move |ev| go_to_node(state, ev.target())
                on:keydown=move |ev: web_sys::KeyboardEvent| {
                    if ev.key() == "Enter" {
                        go_to_node(state, ev.target());
                    }
                }
            ></div>
            <div class="overview-side">
                <p class="objective" data-testid="objective">{OBJECTIVE}</p>
                <p class="explain">
                    {format!(
                        "This iteration: {} responses, each up to {}, written by a {}-layer model \
                         with a value head. Click a box to open its stage, or take the tour.",
                        ro.ids.len(),
                        crate::explain::format::count(ro.response_len(), "token", "tokens"),
                        walk.attention.as_ref().map_or(0, |a| a.maps.len())
                    )}
                </p>
                <button class="primary" data-testid="tour-start" on:click=move |_| state.tour_to(0)>"take the tour ▶"</button>
                <h3>"Glossary"</h3>
                <dl class="glossary" data-testid="glossary">{glossary}</dl>
            </div>
            {misconceptions_card(state, walk)}
        </div>
    }
}

/// Common mistakes about PPO as questions, each answered with this batch's numbers and a
/// button to the stage that shows it. Closed until opened: think of an answer first.
fn misconceptions_card(state: AppState, walk: &Walkthrough) -> impl IntoView {
    let items = misconceptions(walk)
        .into_iter()
        .map(|m| {
            let stage = m.stage;
            let key = m.key;
            view! {
                <details class="misconception" data-testid=format!("mis-{key}") data-v=m.value.to_string()>
                    <summary>{m.question}</summary>
                    <p class="explain" data-testid=format!("mis-{key}-answer")>{m.answer}</p>
                    <button data-testid=format!("mis-{key}-go") on:click=move |_| state.goto(stage)>
                        {format!("show me: stage {}", stage.title())}
                    </button>
                </details>
            }
        })
        .collect_view();
    view! {
        <section class="card misconceptions" data-testid="misconceptions">
            <h3>"Check yourself: six common mistakes"</h3>
            <p class="note">"Answer each question in your head, then open it: the answer is worked out on this batch."</p>
            {items}
        </section>
    }
}

/// The stage of the loop node an event hit, if any.
fn go_to_node(state: AppState, target: Option<web_sys::EventTarget>) {
    let stage = target
        .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
        .and_then(|e| e.closest("[data-stage]").ok().flatten())
        .and_then(|e| e.get_attribute("data-stage"))
        .and_then(|key| Stage::parse(&key));
    if let Some(stage) = stage {
        state.goto(stage);
    }
}
