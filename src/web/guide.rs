//! A way in for a beginner, and the side panel every stage has: the PPO loop as a diagram with
//! this batch's tensor shapes (stage 0, and small in every stage's head), the tour, glossary
//! terms, "what to notice" notes computed from the batch, and where an explained number comes
//! from.

use leptos::prelude::*;
use wasm_bindgen::JsCast;

use super::select::exact;
use super::state::{AppState, Stage};
use crate::explain::{self, GLOSSARY, LOOP, Note, OBJECTIVE, Quantity, TOUR, gloss, num};
use crate::lab::walkthrough::Walkthrough;
use crate::misconceptions::misconceptions;

/// A word of the glossary: hover it, or focus it with Tab, to read what it means.
pub fn term(word: &'static str, shown: &'static str) -> impl IntoView {
    let definition = gloss(word).unwrap_or_default();
    view! {
        <dfn class="term" tabindex="0" data-term=word>
            {shown}
            <span class="gloss" role="tooltip" data-gloss=word>{definition}</span>
        </dfn>
    }
}

/// The loop small, in each stage's head: where this stage sits in the iteration.
pub fn mini_loop(state: AppState, stage: Stage) -> impl IntoView {
    let nodes = LOOP
        .iter()
        .map(|node| {
            let target = node.stage;
            view! {
                <li>
                    <button
                        class="loop-pill"
                        class:lit={node.stage == stage}
                        data-testid=format!("mini-loop-{}", node.key)
                        title=format!("go to {}", target.title())
                        on:click=move |_| state.goto(target)
                    >
                        {node.label}
                    </button>
                </li>
            }
        })
        .collect_view();
    view! { <ol class="mini-loop" data-testid="mini-loop" aria-label="The PPO loop; this stage is lit">{nodes}</ol> }
}

/// The PPO loop as an SVG: seven nodes on an ellipse, each arrow labelled with the tensor it
/// carries and this batch's shape. The node of the stage on show is lit.
fn loop_svg(walk: &Walkthrough, lit: Stage) -> String {
    let edges = explain::loop_edges(walk);
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
pub fn overview(state: AppState, walk: &Walkthrough) -> impl IntoView {
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
                        "This iteration: {} responses, each up to {} tokens, written by a {}-layer model \
                         with a value head. Click a box to open its stage, or take the tour.",
                        ro.ids.len(),
                        ro.response_len(),
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

/// The tour's card while it runs: one sentence for the stage on show, previous / next, Esc.
#[component]
pub fn TourCard(state: AppState) -> impl IntoView {
    move || {
        let i = state.tour.get()?;
        let (stage, sentence) = TOUR.get(i)?;
        let last = i + 1 == TOUR.len();
        Some(view! {
            <aside class="tour" data-testid="tour" data-stop=i data-stage=stage.key() role="dialog" aria-label="Tour">
                <span class="tour-count">{format!("tour {} of {}", i + 1, TOUR.len())}</span>
                <p data-testid="tour-text">{*sentence}</p>
                <div class="tour-buttons">
                    <button data-testid="tour-prev" disabled={i == 0} on:click=move |_| state.tour_to(i.saturating_sub(1))>"◀ previous"</button>
                    <button class="primary" data-testid="tour-next" on:click=move |_| state.tour_to(i + 1)>
                        {if last { "finish" } else { "next ▶" }}
                    </button>
                    <button data-testid="tour-end" title="leave the tour (Esc)" on:click=move |_| state.tour.set(None)>"leave (Esc)"</button>
                </div>
            </aside>
        })
    }
}

/// "What to notice": the notes that hold for this batch; each can jump to its token.
pub fn notes_view(state: AppState, notes: Vec<Note>) -> impl IntoView {
    if notes.is_empty() {
        return ().into_any();
    }
    let items = notes
        .into_iter()
        .map(|n| {
            let tokens: Vec<String> = n.tokens.iter().map(|t| t.to_string()).collect();
            let jump = n.tokens.first().copied();
            view! {
                <li
                    data-testid=format!("note-{}", n.key)
                    data-tokens=tokens.join(",")
                    data-v=n.value.map(exact).unwrap_or_default()
                >
                    {n.text}
                    {jump.map(|t| view! {
                        " " <button class="link" data-testid=format!("note-jump-{}", n.key) on:click=move |_| state.pick(Some(t))>
                            {format!("show t = {t}")}
                        </button>
                    })}
                </li>
            }
        })
        .collect_view();
    view! {
        <section class="notes" data-testid="notes">
            <h3>"What to notice"</h3>
            <ul>{items}</ul>
        </section>
    }
    .into_any()
}

/// Where the explained number comes from, when it belongs to `stage`; otherwise a hint saying
/// which cells explain themselves here.
pub fn provenance_view(state: AppState, stage: Stage) -> impl IntoView {
    let hint = match stage {
        Stage::Gae => Some("Click any A_t or R_t cell to see the cells it is made of."),
        Stage::Score => Some("Show all, then click any r_t cell to see how it was made."),
        Stage::Update => Some("Show all, then click any ratio cell to see how it was made."),
        _ => None,
    };
    let belongs = move |q: Quantity| match q {
        Quantity::Advantage | Quantity::Return => stage == Stage::Gae,
        Quantity::Reward => stage == Stage::Score,
        Quantity::Ratio => stage == Stage::Update,
    };
    move || {
        let Some(p) = state.provenance.get().filter(|p| belongs(p.quantity)) else {
            return hint
                .map(|h| view! { <p class="note prov-hint">{h}</p> })
                .into_any();
        };
        let terms = p
            .terms
            .iter()
            .map(|term| {
                view! {
                    <li data-testid=format!("prov-term-{}", term.testid)>
                        <span class="sym">{term.symbol.clone()}</span>" = "<span class="num">{num(term.value)}</span>
                    </li>
                }
            })
            .collect_view();
        let constants = p
            .constants
            .iter()
            .map(|(symbol, value)| view! { <li><span class="sym">{*symbol}</span>" = "<span class="num">{value.to_string()}</span></li> })
            .collect_view();
        let lines = p
            .lines
            .iter()
            .map(|line| view! { <div>{line.clone()}</div> })
            .collect_view();
        let ids: Vec<String> = p.terms.iter().map(|t| t.testid.clone()).collect();
        view! {
            <section
                class="provenance"
                data-testid="provenance"
                data-quantity=p.quantity.key()
                data-t=p.t
                data-terms=ids.join(",")
            >
                <h3>{format!("Where {} comes from", symbol(p.quantity, p.t))}</h3>
                <ul class="terms">{terms}{constants}</ul>
                <div class="arith" data-testid="prov-arith">{lines}</div>
                <p class="note">
                    "From the lit cells: " <strong data-testid="prov-recomputed" data-v=exact(p.recomputed)>{num(p.recomputed)}</strong>
                    "; the table shows " <span data-testid="prov-value" data-v=exact(p.value)>{num(p.value)}</span> "."
                </p>
                <button class="link" data-testid="prov-clear" on:click=move |_| state.focus.set(None)>"close"</button>
            </section>
        }
        .into_any()
    }
}

fn symbol(q: Quantity, t: usize) -> String {
    match q {
        Quantity::Advantage => format!("A_{t}"),
        Quantity::Return => format!("R_{t}"),
        Quantity::Reward => format!("r_{t}"),
        Quantity::Ratio => format!("ρ_{t}"),
    }
}
