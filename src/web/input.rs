//! Keyboard and timers: the keys that drive the page, the play timer, and the long-task watch.

use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;

use super::clock::since_navigation_ms;
use super::predict;
use super::state::{Activity, AppState};

/// space: step · ← →: stages · p: play/pause · f: presenter mode · t: tour · Esc: leave the
/// tour, else clear the picked token. Ignored while typing.
pub(super) fn listen_to_keys(state: AppState) {
    let handle = window_event_listener(leptos::ev::keydown, move |ev: web_sys::KeyboardEvent| {
        if ev.ctrl_key() || ev.alt_key() || ev.meta_key() {
            return;
        }
        let typing = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
            .is_some_and(|el| matches!(el.tag_name().as_str(), "INPUT" | "SELECT" | "TEXTAREA"));
        if typing {
            return;
        }
        match ev.key().as_str() {
            " " => {
                ev.prevent_default();
                state.step();
            }
            "ArrowRight" => state.shift_stage(1),
            "ArrowLeft" => state.shift_stage(-1),
            "p" => state.playing.update(|p| *p = !*p),
            "f" => state.presenter.update(|p| *p = !*p),
            "t" => state.tour_to(0),
            "Escape" => {
                if state.tour.get_untracked().is_some() {
                    state.tour.set(None);
                } else {
                    state.focus.set(None);
                    state.pick(None);
                }
            }
            _ => {}
        }
    });
    // The listener lives as long as the page.
    std::mem::forget(handle);
}

/// One step every `speed_ms` while playing.
pub(super) fn play_timer(state: AppState) {
    let last = std::cell::Cell::new(0.0);
    let tick = move || {
        let now = since_navigation_ms();
        if !state.playing.get_untracked() {
            last.set(now);
            return;
        }
        if now - last.get() >= state.speed_ms.get_untracked() as f64 {
            last.set(now);
            // Play stops at a question: the student answers before the stage goes on.
            if untrack(|| predict::pending(state)) {
                state.playing.set(false);
                return;
            }
            state.step();
        }
    };
    // The interval runs as long as the page; dropping its handle does not clear it.
    let _ = set_interval_with_handle(tick, std::time::Duration::from_millis(50));
}

/// Records the longest task that kept the page's thread busy (the browser reports tasks over
/// 50 ms as `longtask` entries).
pub(super) fn watch_long_tasks(state: AppState) {
    let callback = Closure::<dyn FnMut(web_sys::PerformanceObserverEntryList)>::new(
        move |list: web_sys::PerformanceObserverEntryList| {
            for entry in list.get_entries().iter() {
                if let Ok(entry) = entry.dyn_into::<web_sys::PerformanceEntry>() {
                    let d = entry.duration();
                    state.longest_block_ms.update(|m| *m = m.max(d));
                    if state.activity.get_untracked() == Activity::Training {
                        state.longest_block_training_ms.update(|m| *m = m.max(d));
                    }
                }
            }
        },
    );
    if let Ok(observer) = web_sys::PerformanceObserver::new(callback.as_ref().unchecked_ref()) {
        let init = web_sys::PerformanceObserverInit::new(&js_sys::Array::of1(&"longtask".into()));
        observer.observe(&init);
    }
    callback.forget();
}
