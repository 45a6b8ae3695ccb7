//! Profiles the page's main thread with Chromium's sampling profiler: a diagnostic for finding
//! what blocks the page, not a pass/fail check, so it is never run by `scripts/test.sh`.
//!
//! ```sh
//! trunk build && cargo test --test page_profile -- --ignored --nocapture --test-threads=1
//! ```
//!
//! Each test prints the functions the main thread spent the most time in (including what they
//! called) and writes the whole profile under `<target>/screenshots/`; Chromium's DevTools
//! (Performance, "Load profile") opens it with the wasm functions named.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::browser::Page;
use serde_json::{Value, json};

const STARTUP: Duration = Duration::from_secs(240);

async fn start_profiler(page: &Page) {
    page.cdp("Profiler.enable", json!({})).await;
    // Every 0.2 ms: a 50 ms task shows as some 250 samples.
    page.cdp("Profiler.setSamplingInterval", json!({ "interval": 200 }))
        .await;
    page.cdp("Profiler.start", json!({})).await;
}

/// Stops the profiler, saves the profile as `name` and prints its hottest functions.
async fn stop_profiler(page: &Page, name: &str) {
    let profile = page.cdp("Profiler.stop", json!({})).await["profile"].take();
    let path = common::browser::screenshot_dir().join(name);
    std::fs::write(&path, profile.to_string()).expect("write profile");
    eprintln!("profile written to {}", path.display());
    for (ms, function) in hottest(&profile, 25) {
        eprintln!("{ms:9.1} ms  {function}");
    }
}

/// The functions with the most samples in them or in what they called, with their ms.
fn hottest(profile: &Value, count: usize) -> Vec<(f64, String)> {
    let nodes = profile["nodes"].as_array().expect("profile nodes");
    let mut name = HashMap::new();
    let mut parent = HashMap::new();
    for node in nodes {
        let id = node["id"].as_u64().expect("node id");
        let frame = &node["callFrame"];
        let function = frame["functionName"].as_str().unwrap_or_default();
        let label = if function.is_empty() {
            format!("(anonymous, {})", frame["url"].as_str().unwrap_or_default())
        } else {
            function.to_string()
        };
        name.insert(id, label);
        for child in node["children"].as_array().into_iter().flatten() {
            parent.insert(child.as_u64().expect("child id"), id);
        }
    }
    let samples = profile["samples"].as_array().expect("samples");
    let deltas = profile["timeDeltas"].as_array().expect("timeDeltas");
    let mut micros: HashMap<&str, f64> = HashMap::new();
    for (sample, delta) in samples.iter().zip(deltas) {
        let mut id = sample.as_u64();
        let mut seen = HashSet::new();
        while let Some(at) = id {
            let label = name[&at].as_str();
            if seen.insert(label) {
                *micros.entry(label).or_default() += delta.as_f64().unwrap_or(0.0);
            }
            id = parent.get(&at).copied();
        }
    }
    let mut ranked: Vec<_> = micros
        .into_iter()
        .map(|(label, us)| (us / 1000.0, label.to_string()))
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    ranked.truncate(count);
    ranked
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "diagnostic: needs the page built by trunk and Debian's chromium"]
async fn profile_the_page_while_training() {
    let page = Page::open("?backend=flex&rollouts=32").await;
    page.wait_state("status", "idle", STARTUP).await;
    start_profiler(&page).await;
    page.click("btn-train").await;
    let deadline = Instant::now() + Duration::from_secs(300);
    let count = |s: &str| s.split(',').filter(|x| !x.is_empty()).count();
    while count(&page.attr("reward-history", "data-values").await) < 5 {
        assert!(
            Instant::now() < deadline,
            "four iterations took over 5 minutes"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop_profiler(&page, "page-training.cpuprofile").await;
    page.open_diagnostics().await;
    eprintln!(
        "longest task while training, ms: {}",
        page.text("longest-block-training").await
    );
    page.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "diagnostic: needs the page built by trunk and Debian's chromium"]
async fn profile_the_page_starting() {
    // Open once, then profile a reload: the profiler follows the page across it.
    let page = Page::open("?backend=flex").await;
    page.wait_state("status", "idle", STARTUP).await;
    start_profiler(&page).await;
    page.client
        .execute("location.reload()", vec![])
        .await
        .expect("reload");
    tokio::time::sleep(Duration::from_secs(1)).await;
    page.wait_state("status", "idle", STARTUP).await;
    stop_profiler(&page, "page-start.cpuprofile").await;
    page.open_diagnostics().await;
    eprintln!(
        "longest task since the reload, ms: {}",
        page.text("longest-block").await
    );
    page.finish().await;
}

/// The page's own milliseconds on flex for the demo batch: ready after navigation, then the mean
/// of the next iterations while training. For comparing builds (a profile or flag change) on
/// one machine: `PPO_LENS_ITERATIONS=N` iterations (default 8).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "diagnostic: needs the page built by trunk and Debian's chromium"]
async fn iteration_times_on_flex() {
    let wanted: usize = std::env::var("PPO_LENS_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let page = Page::open("?backend=flex").await;
    page.wait_state("status", "idle", STARTUP).await;
    page.open_diagnostics().await;
    let ready = page.text("time-ready").await;
    let first = page.text("time-total").await;
    page.click("btn-train").await;
    let deadline = Instant::now() + Duration::from_secs(600);
    let count = |s: &str| s.split(',').filter(|x| !x.is_empty()).count();
    while count(&page.attr("reward-history", "data-values").await) < wanted + 1 {
        assert!(
            Instant::now() < deadline,
            "{wanted} iterations took over 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    page.click("btn-train").await;
    let mut parts = vec![format!("ready {ready}"), format!("first iteration {first}")];
    for key in [
        "rollout", "score", "gae", "mask", "update", "after", "total", "mean",
    ] {
        parts.push(format!("{key} {}", page.text(&format!("time-{key}")).await));
    }
    eprintln!("page on flex, demo batch, ms: {}", parts.join(", "));
    page.finish().await;
}
