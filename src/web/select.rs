//! One token followed through every view: the token strip, rows and cells that light up when
//! their token is picked or hovered, cells that explain where their number comes from, and the
//! current step kept in sight.

use leptos::prelude::*;
use wasm_bindgen::JsCast;

use super::state::AppState;
use crate::explain::format::num;
use crate::explain::provenance::Quantity;
use crate::lab::walkthrough::Walkthrough;

/// A number for tests and for copying: the shortest text that reads back as the same f32.
pub fn exact(x: f32) -> String {
    format!("{x:?}")
}

pub use crate::explain::format::show_token;

/// Response token `t` of `row` as text.
pub fn response_token(walk: &Walkthrough, row: usize, t: usize) -> String {
    walk.tokens[row][walk.experience.rollout.prompt_len + t].clone()
}

/// Whether `testid` is one of the inputs of the number being explained.
fn is_source(state: AppState, testid: &str) -> bool {
    state.provenance.with(|p| {
        p.as_ref()
            .is_some_and(|p| p.terms.iter().any(|term| term.testid == testid))
    })
}

/// A number cell: shown rounded, exact in `data-v`; lit when it is an input of the number
/// being explained.
pub fn cell(state: AppState, testid: String, x: f32) -> impl IntoView {
    let id = testid.clone();
    view! {
        <td class="num" class:src=move || is_source(state, &id) data-testid=testid data-v=exact(x)>{num(x)}</td>
    }
}

/// A number cell that explains itself when clicked (or Enter): its inputs light up and the
/// arithmetic is written out beside the table.
pub fn explain_cell(
    state: AppState,
    testid: String,
    shown: String,
    x: f32,
    t: usize,
    quantity: Quantity,
) -> impl IntoView {
    let id = testid.clone();
    let explained = move || state.token.get() == Some(t) && state.focus.get() == Some(quantity);
    view! {
        <td
            class="num explainable"
            class:explained=explained
            class:src=move || is_source(state, &id)
            tabindex="0"
            title="where does this number come from?"
            data-testid=testid
            data-v=exact(x)
            on:click=move |ev| {
                ev.stop_propagation();
                state.explain(t, quantity);
            }
            on:keydown=move |ev: web_sys::KeyboardEvent| {
                if ev.key() == "Enter" {
                    ev.stop_propagation();
                    state.explain(t, quantity);
                }
            }
        >
            {shown}
        </td>
    }
}

/// Moves the keyboard focus to the element `testid`, if it is there.
fn focus_testid(testid: &str) -> bool {
    let element = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| {
            d.query_selector(&format!("[data-testid=\"{testid}\"]"))
                .ok()
                .flatten()
        })
        .and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok());
    match element {
        Some(element) => element.focus().is_ok(),
        None => false,
    }
}

/// A table row for response token `t`: lit when its token is picked or hovered; a click
/// picks it; ↑ ↓ move the pick to the row above or below when the row has the focus.
/// `prefix` names the rows of one table (`gae-row` gives `gae-row-7`).
pub fn token_row(
    state: AppState,
    prefix: &'static str,
    t: usize,
    class: String,
    current: bool,
    children: impl IntoView + 'static,
) -> impl IntoView {
    view! {
        <tr
            class=class
            class:sel=move || state.shown_token() == Some(t)
            data-current=current.then_some("1")
            data-testid=format!("{prefix}-{t}")
            data-t=t
            tabindex="0"
            on:click=move |_| state.pick(Some(t))
            on:mouseenter=move |_| state.hover.set(Some(t))
            on:mouseleave=move |_| state.hover.set(None)
            on:focus=move |_| state.pick(Some(t))
            on:keydown=move |ev: web_sys::KeyboardEvent| {
                let next = match ev.key().as_str() {
                    "ArrowDown" => Some(t + 1),
                    "ArrowUp" => t.checked_sub(1),
                    _ => None,
                };
                if let Some(n) = next {
                    ev.prevent_default();
                    if focus_testid(&format!("{prefix}-{n}")) {
                        state.pick(Some(n));
                    }
                }
            }
        >
            {children}
        </tr>
    }
}

/// The response as token chips, shown on every stage: hover or click one to follow it through
/// every view. On the Rollout stage, tokens not sampled yet are hidden (`revealed` is the last
/// one shown, the current step).
pub fn token_strip(
    state: AppState,
    walk: &Walkthrough,
    row: usize,
    real: usize,
    revealed: Option<usize>,
) -> impl IntoView {
    let chips = (0..real)
        .map(|t| {
            let hidden = revealed.is_some_and(|r| t > r);
            let current = revealed == Some(t);
            let text = if hidden {
                "·".to_string()
            } else {
                show_token(&response_token(walk, row, t))
            };
            view! {
                <button
                    class="tok"
                    class:current=current
                    class:hidden=hidden
                    class:sel=move || state.shown_token() == Some(t)
                    data-testid=format!("resp-tok-{t}")
                    title=format!("token t = {t}: follow it through every view")
                    on:click=move |_| state.pick(if state.token.get_untracked() == Some(t) { None } else { Some(t) })
                    on:mouseenter=move |_| state.hover.set(Some(t))
                    on:mouseleave=move |_| state.hover.set(None)
                >
                    {text}
                </button>
            }
        })
        .collect_view();
    view! {
        <div class="response" data-testid="response-tokens" aria-label="The response's tokens: pick one to follow it">
            {chips}
        </div>
    }
}

/// After every step, stage change and new iteration, scrolls the element the step filled
/// (`data-current`) into view, just below the sticky bar; and keeps `--bar-h` equal to the
/// sticky bar's height so that rows scroll to just under it.
pub fn keep_current_in_sight(state: AppState) {
    Effect::new(move |_| {
        state.stage.track();
        state.cursor.track();
        state.row.track();
        state.walk.track();
        request_animation_frame(|| {
            // The stage's head may have changed height with the stage.
            set_bar_height();
            let Some(document) = web_sys::window().and_then(|w| w.document()) else {
                return;
            };
            // A question predict mode asks comes first: the class must see it, not the blurred
            // stage under it.
            let asking = document
                .query_selector(".predict-q[data-state=\"asking\"]")
                .ok()
                .flatten();
            let current = asking.or_else(|| {
                document
                    .query_selector(".stage [data-current]")
                    .ok()
                    .flatten()
            });
            if let Some(current) = current {
                // A row scrolls to just below its table's head, which sticks under the stage's
                // (style.css, 1200 px and up).
                let thead = current
                    .closest("table")
                    .ok()
                    .flatten()
                    .and_then(|table| table.query_selector(":scope > thead").ok().flatten());
                if let Some(thead) = thead {
                    set_root_px("--thead-h", thead.get_bounding_client_rect().height());
                }
                let options = web_sys::ScrollIntoViewOptions::new();
                options.set_block(web_sys::ScrollLogicalPosition::Nearest);
                current.scroll_into_view_with_scroll_into_view_options(&options);
            }
        });
    });
    // Once the page is mounted: watch the bar's size for as long as the page lives.
    request_animation_frame(|| {
        let on_resize = wasm_bindgen::closure::Closure::<dyn FnMut()>::new(set_bar_height);
        if let (Ok(observer), Some(bar)) = (
            web_sys::ResizeObserver::new(on_resize.as_ref().unchecked_ref()),
            query(".sticky-bar"),
        ) {
            observer.observe(&bar);
        }
        on_resize.forget();
    });
}

fn query(selector: &str) -> Option<web_sys::Element> {
    web_sys::window()?
        .document()?
        .query_selector(selector)
        .ok()
        .flatten()
}

/// `--bar-h` on the document: the sticky bar's height in px; and `--head-h`, the height of the
/// stage's head, which stays pinned under the bar (so that no half-hidden row of it is left).
fn set_bar_height() {
    let Some(bar) = query(".sticky-bar") else {
        return;
    };
    set_root_px("--bar-h", bar.get_bounding_client_rect().height());
    let head = query(".stage-head").map_or(0.0, |h| h.get_bounding_client_rect().height());
    set_root_px("--head-h", head);
}

/// Sets the CSS variable `name` on the document's root element to `px` pixels, rounded.
fn set_root_px(name: &str, px: f64) {
    if let Some(root) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.document_element())
        .and_then(|root| root.dyn_into::<web_sys::HtmlElement>().ok())
    {
        let _ = root.style().set_property(name, &format!("{px:.0}px"));
    }
}
