//! The page's setup in its URL: the settings, stage, iteration, response and token a shared
//! link asks for (each refused value named in a notice), and the URL kept in step as they change.

use leptos::prelude::*;

use super::state::{AppState, Stage};
use crate::lab::setting_keys::SETTING_KEYS;
use crate::lab::settings::LabSettings;
use crate::lab::wire::Notice;

/// What the URL asks the page to show once it is ready: an iteration (reached by computing the
/// ones before it with the same settings and seed), a response and a token of it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct UrlTarget {
    pub(super) stage: Stage,
    /// `?predict=`: predict mode on from the start, and the question to ask first.
    pub(super) predict: Option<crate::predict::Start>,
    pub(super) iteration: usize,
    /// The response's index (the URL counts from 1, as the picker does).
    pub(super) row: Option<usize>,
    pub(super) token: Option<usize>,
}

/// The most iterations `?iteration=` may ask the page to compute before it shows one.
const MAX_URL_ITERATION: usize = 200;

/// `?key=` as a whole number in `lo..=hi`, with a notice naming the key when it is not one.
fn url_count(key: &str, lo: usize, hi: usize, notices: &mut Vec<Notice>) -> Option<usize> {
    let value = url_param(key)?;
    match value.parse::<usize>() {
        Ok(n) if (lo..=hi).contains(&n) => Some(n),
        _ => {
            notices.push(Notice::Info(format!(
                "Ignoring ?{key}={value} from the URL: expected a whole number from {lo} to {hi}."
            )));
            None
        }
    }
}

/// The settings, stage and presenter mode the URL asks for, with a notice for each refused value.
pub(super) fn settings_from_url() -> (LabSettings, UrlTarget, bool, Vec<Notice>) {
    let mut settings = LabSettings::default();
    let mut notices = Vec::new();
    for key in SETTING_KEYS {
        if let Some(value) = url_param(key.key) {
            if let Err(err) = settings.set(key.key, &value) {
                notices.push(Notice::Info(format!(
                    "Ignoring ?{}={value} from the URL: {err}. Using {}.",
                    key.key,
                    LabSettings::default().get(key.key).unwrap_or_default()
                )));
            }
        }
    }
    // Values fine alone but not together (`?algo=grpo` with one sample per prompt): the one
    // that stops the run goes back to its default, named like a refused value.
    for (key, had, why) in settings.settle() {
        let had = url_param(key).unwrap_or(had);
        notices.push(Notice::Info(format!(
            "Ignoring ?{key}={had} from the URL: {why}. Using {}.",
            settings.get(key).unwrap_or_default()
        )));
    }
    let stage = match url_param("stage") {
        None => Stage::Overview,
        Some(key) => Stage::parse(&key).unwrap_or_else(|| {
            notices.push(Notice::Info(format!(
                "Ignoring ?stage={key}: expected one of overview, rollout, score, values, gae, update, mask."
            )));
            Stage::Overview
        }),
    };
    let presenter = url_param("presenter").is_some_and(|v| v == "1" || v == "true");
    // `?predict=1`, or `?predict=<stage or question>` to start there (unless ?stage= says where).
    let predict = match url_param("predict") {
        None => None,
        Some(value) => match crate::predict::from_url(&value) {
            Ok(start) => Some(start),
            Err(err) => {
                notices.push(Notice::Info(format!("Ignoring ?predict={value}: {err}.")));
                None
            }
        },
    };
    let stage = match predict.and_then(|p| p.stage) {
        Some(at) if url_param("stage").is_none() => at,
        _ => stage,
    };
    let target = UrlTarget {
        stage,
        predict,
        iteration: url_count("iteration", 1, MAX_URL_ITERATION, &mut notices).unwrap_or(1),
        row: url_count("response", 1, settings.rollouts, &mut notices).map(|r| r - 1),
        token: url_count("token", 0, settings.max_new_tokens - 1, &mut notices),
    };
    (settings, target, presenter, notices)
}

/// The setup in the URL, rewritten whenever it changes (without reloading).
pub(super) fn keep_url_in_sync(state: AppState) {
    Effect::new(move |_| {
        let mut pairs: Vec<(String, String)> = Vec::new();
        if let Some(backend) = url_param("backend") {
            pairs.push(("backend".into(), backend));
        }
        for (k, v) in state.settings.get().changed() {
            pairs.push((k.into(), v));
        }
        let stage = state.stage.get();
        if stage != Stage::Overview {
            pairs.push(("stage".into(), stage.key().into()));
        }
        let iteration = state.iteration();
        let row = state.row.get();
        let token = state.token.get();
        if iteration > 1 || token.is_some() {
            pairs.push(("iteration".into(), iteration.to_string()));
        }
        if row > 0 || token.is_some() {
            pairs.push(("response".into(), (row + 1).to_string()));
        }
        if let Some(t) = token {
            pairs.push(("token".into(), t.to_string()));
        }
        if state.presenter.get() {
            pairs.push(("presenter".into(), "1".into()));
        }
        if state.predict.on.get() {
            pairs.push(("predict".into(), "1".into()));
        }
        let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let url = if query.is_empty() {
            window().location().pathname().unwrap_or_default()
        } else {
            format!("?{}", query.join("&"))
        };
        if let Ok(history) = window().history() {
            let _ = history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&url));
        }
    });
}

/// `?name=` from the page's URL.
pub(super) fn url_param(name: &str) -> Option<String> {
    let search = web_sys::window()?.location().search().ok()?;
    web_sys::UrlSearchParams::new_with_str(&search)
        .ok()?
        .get(name)
}
