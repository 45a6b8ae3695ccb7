//! A way in for a beginner, and the side panel every stage has: the PPO loop as a diagram with
//! this batch's tensor shapes (stage 0, and small in every stage's head), the tour, glossary
//! terms, "what to notice" notes computed from the batch, and where an explained number comes
//! from.

use leptos::prelude::*;

use super::select::exact;
use super::state::{AppState, Stage};
use crate::explain::format::num;
use crate::explain::guide::{LOOP, TOUR, gloss, tour_member_note};
use crate::explain::notes::Note;
use crate::explain::provenance::Quantity;

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
                {move || state.walk.with(|w| w.as_ref().and_then(|w| tour_member_note(w, *stage))).map(|note| view! {
                    <p class="tour-member" data-testid="tour-member">{note}</p>
                })}
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
