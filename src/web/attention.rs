//! The causal-mask stage's attention maps: every layer and head small, and one head enlarged
//! with the tokens written on both axes, a readout of the weight under the pointer, the causal
//! mask and the padding drawn differently, a legend that states the colour scale, and a
//! marker on row `prompt_len − 1`. The maps follow the response picker: the iteration kept
//! one response's, the worker computes any other kept one's on request.

use std::sync::Arc;

use leptos::prelude::*;
use wasm_bindgen::JsCast;

use super::classroom::{canvas_by_id, fit_canvas, handout_buttons, scale};
use super::select::show_token;
use super::state::{AppState, Asked};
use crate::explain::stage::real_len;
use crate::lab::walkthrough::{AttentionMaps, Walkthrough};
use crate::palette;

/// The thumbnails' and the enlarged map's side in CSS pixels at normal size.
const THUMB: f64 = 150.0;
const BIG: f64 = 560.0;
/// Prompt tokens the enlarged map shows before the response (row `P − 1` among them).
const PROMPT_TAIL: usize = 8;

/// Weight 0 → white, 1 → deep blue, on √weight (which spreads the small weights apart).
fn weight_colour(w: f32) -> String {
    let (r, g, b) = palette::weight_colour(w);
    format!("rgb({r},{g},{b})")
}

const CAUSAL: &str = palette::CAUSAL_MASK;
const PADDING: &str = palette::PADDING;
const PADDING_HATCH: &str = palette::PADDING_HATCH;
const EDGE: &str = palette::RESPONSE_EDGE;

#[derive(Clone, Copy, PartialEq)]
enum Cell {
    Weight(f32),
    /// The key comes after the query.
    Causal,
    /// The query or the key is padding: the prompt's left padding, or a position after the
    /// response ended.
    Padding,
}

fn cell(att: &AttentionMaps, mask: &[u8], l: usize, h: usize, q: usize, k: usize) -> Cell {
    if mask[k] == 0 || mask[q] == 0 {
        Cell::Padding
    } else if k > q {
        Cell::Causal
    } else {
        Cell::Weight(att.weight(l, h, q, k))
    }
}

/// Draws positions `[start, end)` of one head at `size` CSS pixels.
#[allow(clippy::too_many_arguments)]
fn draw(
    canvas: &web_sys::HtmlCanvasElement,
    att: &AttentionMaps,
    l: usize,
    h: usize,
    mask: &[u8],
    prompt_len: usize,
    (start, end): (usize, usize),
    size: f64,
) {
    let k = fit_canvas(canvas, size, size);
    let Some(ctx) = canvas
        .get_context("2d")
        .ok()
        .flatten()
        .and_then(|c| c.dyn_into::<web_sys::CanvasRenderingContext2d>().ok())
    else {
        return;
    };
    let _ = ctx.set_transform(k, 0.0, 0.0, k, 0.0, 0.0);
    let n = end - start;
    let c = size / n as f64;
    ctx.set_fill_style_str("#ffffff");
    ctx.fill_rect(0.0, 0.0, size, size);
    for i in 0..n {
        for j in 0..n {
            let (x, y) = (j as f64 * c, i as f64 * c);
            match cell(att, mask, l, h, start + i, start + j) {
                Cell::Weight(w) => {
                    ctx.set_fill_style_str(&weight_colour(w));
                    ctx.fill_rect(x, y, c + 0.5, c + 0.5);
                }
                Cell::Causal => {
                    ctx.set_fill_style_str(CAUSAL);
                    ctx.fill_rect(x, y, c + 0.5, c + 0.5);
                }
                Cell::Padding => {
                    ctx.set_fill_style_str(PADDING);
                    ctx.fill_rect(x, y, c + 0.5, c + 0.5);
                    // A hatch, so padding reads as padding without colour.
                    ctx.set_stroke_style_str(PADDING_HATCH);
                    ctx.set_line_width((c / 6.0).clamp(0.5, 1.5));
                    ctx.begin_path();
                    ctx.move_to(x, y + c);
                    ctx.line_to(x + c, y);
                    ctx.stroke();
                }
            }
        }
    }
    // Where the response starts, on both axes.
    if prompt_len > start && prompt_len < end {
        let edge = (prompt_len - start) as f64 * c;
        ctx.set_stroke_style_str(EDGE);
        ctx.set_line_width(1.5);
        ctx.begin_path();
        ctx.move_to(edge, 0.0);
        ctx.line_to(edge, size);
        ctx.move_to(0.0, edge);
        ctx.line_to(size, edge);
        ctx.stroke();
    }
}

/// The enlarged map as an SVG file: a rectangle per cell, the tokens on both axes.
fn map_svg(
    att: &AttentionMaps,
    tokens: &[String],
    mask: &[u8],
    l: usize,
    h: usize,
    (start, end): (usize, usize),
) -> String {
    let n = end - start;
    let (c, margin) = (14.0, 120.0);
    let side = margin + c * n as f64;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {side} {side}\" font-family=\"monospace\" font-size=\"10\">\
         <rect width=\"{side}\" height=\"{side}\" fill=\"#ffffff\"/>\
         <text x=\"4\" y=\"14\" font-size=\"11\">layer {l}, head {h}: colour = √weight</text>"
    );
    for i in 0..n {
        let label = show_token(&tokens[start + i])
            .replace('&', "&amp;")
            .replace('<', "&lt;");
        let at = margin + (i as f64 + 0.75) * c;
        svg += &format!(
            "<text x=\"{:.1}\" y=\"{at:.1}\" text-anchor=\"end\">{label}</text>",
            margin - 4.0
        );
        svg += &format!(
            "<text transform=\"translate({at:.1} {:.1}) rotate(-90)\">{label}</text>",
            margin - 4.0
        );
        for j in 0..n {
            let fill = match cell(att, mask, l, h, start + i, start + j) {
                Cell::Weight(w) => weight_colour(w),
                Cell::Causal => CAUSAL.into(),
                Cell::Padding => PADDING.into(),
            };
            svg += &format!(
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{c}\" height=\"{c}\" fill=\"{fill}\"/>",
                margin + j as f64 * c,
                margin + i as f64 * c
            );
        }
    }
    svg + "</svg>"
}

/// One token on an axis of the enlarged map, at offset `pos - start` cells of `c` pixels.
fn axis_label(
    text: String,
    axis: &'static str,
    pos: usize,
    start: usize,
    c: f64,
    font: f64,
    prompt_len: usize,
) -> impl IntoView {
    let i = pos - start;
    let style = if axis == "y" {
        format!(
            "top:{:.2}px;height:{c:.2}px;font-size:{font:.1}px;line-height:{c:.2}px",
            i as f64 * c
        )
    } else {
        format!(
            "left:{:.2}px;width:{c:.2}px;font-size:{font:.1}px",
            i as f64 * c
        )
    };
    view! {
        <span
            class=format!("ax ax-{axis}")
            class:p-minus-1={pos + 1 == prompt_len}
            class:in-response={pos >= prompt_len}
            data-testid=format!("attn-{axis}label-{pos}")
            data-pos=pos
            data-t=(pos >= prompt_len).then(|| (pos - prompt_len).to_string())
            title=format!("position {pos}: {text}")
            style=style
        >
            {text.clone()}
        </span>
    }
}

/// The maps of the shown response: the batch's own, or the worker's answer for another row.
fn maps_for(
    state: AppState,
    walk: &Walkthrough,
    row: usize,
) -> Result<Option<Arc<AttentionMaps>>, String> {
    if let Some(att) = walk.attention.as_ref().filter(|a| a.row == row) {
        return Ok(Some(Arc::new(att.clone())));
    }
    match state.attention.get() {
        Asked::Done(a) if a.row == row => Ok(Some(a)),
        Asked::Failed(err) => Err(err),
        _ => Ok(None),
    }
}

/// The attention part of the causal-mask stage for response `row`.
/// The followed token's row (as a query, `kind` "row") or column (as a key, "col") outlined over
/// a map of the positions `window()` gives (start, end); hidden when the window leaves it out.
/// `p` is the prompt's length: token t is position p + t.
fn followed(
    state: AppState,
    p: usize,
    window: impl Fn() -> (usize, usize) + Copy + Send + Sync + 'static,
    kind: &'static str,
    testid: String,
) -> impl IntoView {
    let style = move || {
        let pos = p + state.shown_token()?;
        let (start, end) = window();
        (start <= pos && pos < end).then(|| {
            let span = (end - start) as f64;
            let (at, size) = (100.0 * (pos - start) as f64 / span, 100.0 / span);
            if kind == "row" {
                format!("top:{at:.2}%;height:{size:.2}%")
            } else {
                format!("left:{at:.2}%;width:{size:.2}%")
            }
        })
    };
    view! {
        <span class=format!("attn-sel attn-sel-{kind}") class:sel=move || style().is_some()
            data-testid=testid
            style=move || style().unwrap_or_else(|| "display:none".into())></span>
    }
}

pub fn attention_view(state: AppState, walk: Arc<Walkthrough>, row: usize) -> impl IntoView {
    Effect::new(move |_| state.fetch_attention());
    let whole = RwSignal::new(false);
    let hover = RwSignal::new(None::<(usize, usize)>);
    move || {
        let att = match maps_for(state, &walk, row) {
            Ok(Some(att)) => att,
            Ok(None) => {
                return view! { <p class="note" data-testid="attn-loading">{format!("Computing response {}'s attention maps…", row + 1)}</p> }.into_any();
            }
            Err(err) => {
                return view! { <p class="banner warn" data-testid="attn-error">{err}</p> }
                    .into_any();
            }
        };
        let p = walk.experience.rollout.prompt_len;
        let mask = walk.experience.rollout.attention_mask[row].clone();
        let tokens = walk.tokens[row].clone();
        let layers = att.maps.len();
        let heads = att.maps.first().map_or(0, Vec::len);
        let n = att.len;
        let real = real_len(&walk, row);
        let first_real = mask.iter().position(|&m| m == 1).unwrap_or(0);
        let window = move || {
            if whole.get() {
                (0, n)
            } else {
                (
                    (p - 1).saturating_sub(PROMPT_TAIL - 1).max(first_real),
                    (p + real).min(n),
                )
            }
        };
        let (l, h) = state.head.get();
        let (l, h) = (
            l.min(layers.saturating_sub(1)),
            h.min(heads.saturating_sub(1)),
        );
        let s = scale(state);

        // The thumbnails: every layer and head; a click enlarges one.
        let thumbs = (0..layers)
            .flat_map(|l| (0..heads).map(move |h| (l, h)))
            .map(|(tl, th)| {
                let node = NodeRef::<leptos::html::Canvas>::new();
                let (att, mask) = (att.clone(), mask.clone());
                Effect::new(move |_| {
                    if let Some(canvas) = node.get() {
                        draw(&canvas, &att, tl, th, &mask, p, (0, n), THUMB * s);
                    }
                });
                let overlay = move |kind: &'static str| {
                    followed(state, p, move || (0, n), kind, format!("attn-sel-{kind}-{tl}-{th}"))
                };
                view! {
                    <figure class="attn" class:picked={tl == l && th == h}>
                        <button class="attn-box" title=format!("enlarge layer {tl}, head {th}") data-testid=format!("attn-pick-{tl}-{th}")
                            on:click=move |_| state.head.set((tl, th))>
                            <canvas node_ref=node data-testid=format!("attn-{tl}-{th}")></canvas>
                            {overlay("row")}
                            {overlay("col")}
                        </button>
                        <figcaption>{format!("layer {tl}, head {th}")}</figcaption>
                    </figure>
                }
            })
            .collect_view();

        // The enlarged head.
        let big = NodeRef::<leptos::html::Canvas>::new();
        {
            let (att, mask) = (att.clone(), mask.clone());
            Effect::new(move |_| {
                let w = window();
                if let Some(canvas) = big.get() {
                    draw(&canvas, &att, l, h, &mask, p, w, BIG * s);
                }
            });
        }
        let readout = {
            let (att, mask, tokens) = (att.clone(), mask.clone(), tokens.clone());
            move || {
                let (q, k) = hover.get()?;
                let tok = |pos: usize| show_token(&tokens[pos]);
                let what = match cell(&att, &mask, l, h, q, k) {
                    Cell::Weight(w) => {
                        format!("weight {w:.4} ({:.1}% of its attention)", 100.0 * w)
                    }
                    Cell::Causal => "masked: the key comes after the query".to_string(),
                    Cell::Padding => {
                        "masked: padding (before the prompt or after the response ended)"
                            .to_string()
                    }
                };
                Some(format!(
                    "query {q} “{}” → key {k} “{}”: {what}",
                    tok(q),
                    tok(k)
                ))
            }
        };
        let on_move = move |ev: web_sys::MouseEvent| {
            let (start, end) = window();
            let c = BIG * s / (end - start) as f64;
            let (i, j) = (
                (ev.offset_y() as f64 / c) as usize,
                (ev.offset_x() as f64 / c) as usize,
            );
            hover.set((i < end - start && j < end - start).then(|| (start + i, start + j)));
        };
        let p1 = move || {
            let (start, end) = window();
            let c = BIG * s / (end - start) as f64;
            (p > start && p - 1 < end)
                .then(|| format!("top:{:.2}px;height:{c:.2}px", (p - 1 - start) as f64 * c))
        };
        // The followed token's row (as a query) and column (as a key) on the enlarged map, as
        // the thumbnails outline them; nothing when the window leaves it out.
        let big_overlay = move |kind: &'static str| {
            followed(state, p, window, kind, format!("attn-big-sel-{kind}"))
        };
        let svg = {
            let (att, mask, tokens) = (att.clone(), mask.clone(), tokens.clone());
            move || Some(map_svg(&att, &tokens, &mask, l, h, window()))
        };
        let name = format!("attention-l{l}-h{h}-response{}", row + 1);
        // The tokens on one axis: every one, or every k-th when the cells are smaller than
        // the font (row P − 1 always).
        let labels = {
            let tokens = Arc::new(tokens.clone());
            move |axis: &'static str| {
                let tokens = tokens.clone();
                move || {
                    let (start, end) = window();
                    let c = BIG * s / (end - start) as f64;
                    let font = (c * 0.85).clamp(6.0, 15.0 * s);
                    let step = (font / c).ceil().max(1.0) as usize;
                    (start..end)
                        .filter(|pos| (pos - start) % step == 0 || *pos + 1 == p)
                        .map(|pos| {
                            axis_label(show_token(&tokens[pos]), axis, pos, start, c, font, p)
                        })
                        .collect_view()
                }
            }
        };
        view! {
            <div class="attn-big stage-data" data-testid="attn-big" data-layer=l data-head=h data-row=row>
                <div class="attn-big-controls">
                    <label>"layer "
                        <select data-testid="attn-layer" aria-label="layer" on:change=move |ev| {
                            if let Ok(x) = event_target_value(&ev).parse() { state.head.update(|lh| lh.0 = x); }
                        }>
                            {(0..layers).map(|x| view! { <option value=x.to_string() selected={x == l}>{x}</option> }).collect_view()}
                        </select>
                    </label>
                    <label>" head "
                        <select data-testid="attn-head" aria-label="head" on:change=move |ev| {
                            if let Ok(x) = event_target_value(&ev).parse() { state.head.update(|lh| lh.1 = x); }
                        }>
                            {(0..heads).map(|x| view! { <option value=x.to_string() selected={x == h}>{x}</option> }).collect_view()}
                        </select>
                    </label>
                    <label>" positions "
                        <select data-testid="attn-window" aria-label="positions shown" on:change=move |ev| whole.set(event_target_value(&ev) == "all")>
                            <option value="response" selected=move || !whole.get()>{format!("the response and the prompt's last {PROMPT_TAIL} tokens")}</option>
                            <option value="all" selected=move || whole.get()>"the whole sequence"</option>
                        </select>
                    </label>
                    " " {handout_buttons(name, true, || canvas_by_id("attn-big-canvas"), svg)}
                </div>
                <p class="note" data-testid="attn-row-note">
                    {format!("Response {}, layer {l}, head {h}: each row is a query position, each column a key it may attend to.", row + 1)}
                </p>
                <div class="attn-frame" style=move || format!("--attn-size:{:.0}px", BIG * s)>
                    <div class="attn-corner">"query ↓ key →"</div>
                    <div class="attn-xlabels" data-testid="attn-xlabels">{labels("x")}</div>
                    <div class="attn-ylabels" data-testid="attn-ylabels">{labels("y")}</div>
                    <div class="attn-canvas-box">
                        <canvas node_ref=big data-testid="attn-big-canvas" on:mousemove=on_move on:mouseleave=move |_| hover.set(None)></canvas>
                        <a class="attn-p1" href="#alignment" data-testid="attn-p1-marker" title="row P − 1: its logits predict response token 0 (see the alignment table)"
                            style=move || p1().unwrap_or_else(|| "display:none".into())></a>
                        {big_overlay("row")}
                        {big_overlay("col")}
                    </div>
                </div>
                <p class="readout" data-testid="attn-readout" aria-live="polite">
                    {move || readout().unwrap_or_else(|| "Point at a cell to read its weight and its two tokens.".into())}
                </p>
                <div class="attn-legend" data-testid="attn-legend">
                    <span class="scale">
                        <span class="scale-bar"></span>
                        {[0.0f32, 0.01, 0.1, 0.25, 0.5, 1.0].map(|w| view! {
                            <span class="scale-tick" style=format!("left:{:.1}%", 100.0 * w.sqrt())>{if w == 0.0 { "0".to_string() } else { format!("{w}") }}</span>
                        }).collect_view()}
                    </span>
                    <span class="legend-text">"colour = √weight: white is 0, deep blue is 1 (the square root spreads the small weights apart)"</span>
                    <span><span class="swatch causal"></span>" causal mask: the key comes after the query"</span>
                    <span><span class="swatch padding"></span>" padding, before the prompt or after the response ended (hatched)"</span>
                    <span><span class="swatch edge"></span>" where the response starts"</span>
                    <span><span class="swatch p1"></span>" row P − 1 (predicts response token 0)"</span>
                </div>
                <div class="attn-grid" data-testid="attention-maps">{thumbs}</div>
            </div>
        }
        .into_any()
    }
}
