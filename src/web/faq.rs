//! The FAQ in the page: every answer of docs/FAQ.md, offline, and under the stage tabs the
//! questions that point to the stage on show. Links to a stage switch stages in place.

use leptos::prelude::*;

use super::state::{AppState, Stage};
use crate::faq::{Block, Entry, Inline, entries};

/// Opens the question `anchor` and scrolls to it.
fn open_question(anchor: &str) {
    let Some(element) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.get_element_by_id(anchor))
    else {
        return;
    };
    let _ = element.set_attribute("open", "");
    element.scroll_into_view();
}

fn inline_view(inline: Inline, state: AppState) -> AnyView {
    match inline {
        Inline::Text(text) => text.into_any(),
        Inline::Code(code) => view! { <code>{code}</code> }.into_any(),
        Inline::Stage { text, stage } => match Stage::parse(&stage) {
            Some(stage) => view! {
                <button class="link" data-testid=format!("faq-stage-link-{}", stage.key()) on:click=move |_| {
                    state.goto(stage);
                    if let Some(tabs) = web_sys::window()
                        .and_then(|w| w.document())
                        .and_then(|d| d.query_selector("[data-testid=stage-tabs]").ok().flatten())
                    {
                        tabs.scroll_into_view();
                    }
                }>{text}</button>
            }
            .into_any(),
            None => text.into_any(),
        },
        Inline::Question { text, anchor } => view! {
            <button class="link" on:click=move |_| open_question(&anchor)>{text}</button>
        }
        .into_any(),
        Inline::Doc { text, path } => {
            view! { <span>{text} " (" <code>{path}</code> ")"</span> }.into_any()
        }
    }
}

fn line_view(inlines: Vec<Inline>, state: AppState) -> Vec<AnyView> {
    inlines
        .into_iter()
        .map(|inline| inline_view(inline, state))
        .collect()
}

fn entry_view(entry: Entry, state: AppState) -> impl IntoView {
    let blocks = entry
        .blocks
        .into_iter()
        .map(|block| match block {
            Block::Paragraph(inlines) => view! { <p>{line_view(inlines, state)}</p> }.into_any(),
            Block::List(items) => {
                let items = items
                    .into_iter()
                    .map(|item| view! { <li>{line_view(item, state)}</li> })
                    .collect_view();
                view! { <ul>{items}</ul> }.into_any()
            }
            Block::Code(code) => view! { <pre><code>{code}</code></pre> }.into_any(),
        })
        .collect_view();
    view! {
        <details class="faq-entry" id=entry.anchor.clone() data-testid=format!("faq-{}", entry.anchor)>
            <summary>{entry.question}</summary>
            <div class="faq-answer">{blocks}</div>
        </details>
    }
}

/// Every question, by category.
#[component]
pub fn Faq(state: AppState) -> impl IntoView {
    let mut sections: Vec<(String, Vec<Entry>)> = Vec::new();
    for entry in entries() {
        match sections.last_mut() {
            Some((category, list)) if *category == entry.category => list.push(entry),
            _ => sections.push((entry.category.clone(), vec![entry])),
        }
    }
    let sections = sections
        .into_iter()
        .map(|(category, list)| {
            let list = list
                .into_iter()
                .map(|entry| entry_view(entry, state))
                .collect_view();
            view! { <h3>{category}</h3> {list} }
        })
        .collect_view();
    view! {
        <section class="card faq" data-testid="faq">
            <h2>"Questions students ask"</h2>
            <p class="explain">
                "The FAQ (docs/FAQ.md), answered for ppo-lens. A link to a stage switches to it."
            </p>
            {sections}
        </section>
    }
}

/// The questions whose answers point to the stage on show.
#[component]
pub fn StageQuestions(state: AppState) -> impl IntoView {
    let all = entries();
    move || {
        let key = state.stage.get().key();
        let links = all
            .iter()
            .filter(|entry| entry.stages().iter().any(|s| s == key))
            .map(|entry| {
                let anchor = entry.anchor.clone();
                let testid = format!("stage-question-{anchor}");
                view! {
                    <button class="link" data-testid=testid on:click=move |_| open_question(&anchor)>
                        {entry.question.clone()}
                    </button>
                }
            })
            .collect_view();
        view! {
            <p class="stage-questions" data-testid="stage-questions">
                <span class="label">"Questions on this stage: "</span>
                {links}
            </p>
        }
    }
}
