//! The page in a real browser: headless Chromium, WebGPU through SwiftShader when there is no GPU.
//!
//! These need the page built by `trunk build` and Debian's chromium and chromium-driver, so plain
//! `cargo test` skips them; `scripts/test.sh` builds the page and runs them with `--ignored`.

mod common;

use std::path::Path;
use std::time::Duration;

use common::browser::Page;
use ppo_lens::lab::timings::PageTimings;

/// SwiftShader compiles every WebGPU shader on the CPU; the first dispatches take seconds.
const STARTUP: Duration = Duration::from_secs(240);

/// The hand-worked numbers of the self-check (see src/selfcheck.rs): H([1,2,3]) = 0.8323956,
/// H(uniform over 3) = ln 3, and the gradient of logsumexp is softmax.
async fn assert_self_check_numbers(page: &Page) {
    page.open_diagnostics().await;
    assert_eq!(page.text("entropy-0").await, "0.832396");
    assert_eq!(page.text("entropy-1").await, "1.098612");
    assert_eq!(page.text("grad-0").await, "[0.090031, 0.244728, 0.665241]");
    assert_eq!(page.text("grad-1").await, "[0.333333, 0.333333, 0.333333]");
    assert!(page.text("selfcheck-status").await.starts_with("passed"));
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the page built by trunk and Debian's chromium; run scripts/test.sh"]
async fn page_computes_on_webgpu() {
    // Headless Chromium here has only SwiftShader, a GPU emulated on the CPU: unasked, the page
    // runs on flex and says why.
    let page = Page::open("").await;
    page.wait_state("selfcheck-status", "passed", STARTUP).await;
    assert_eq!(page.attr("backend", "data-kind").await, "flex");
    let banner = page.text("fallback-banner").await;
    assert!(
        banner.contains("is a software one") && banner.contains("?backend=webgpu"),
        "{banner}"
    );
    assert!(banner.to_lowercase().contains("swiftshader"), "{banner}");
    page.screenshot("page-software-adapter.png").await;
    page.finish().await;

    // Asked for, WebGPU it is, on the emulated GPU, with a word on why it is slow.
    let page = Page::open("?backend=webgpu").await;
    page.wait_state("selfcheck-status", "passed", STARTUP).await;
    assert!(
        page.text("info-banner")
            .await
            .contains("emulates a GPU on the CPU")
    );

    let backend = page.text("backend-value").await;
    // `WebGPU · <adapter>`: the backend and the adapter the browser reports.
    let adapter = backend
        .strip_prefix("WebGPU · ")
        .unwrap_or_else(|| panic!("the header should read `WebGPU · <adapter>`, got `{backend}`"));
    assert!(
        !adapter.trim().is_empty(),
        "empty adapter name in `{backend}`"
    );
    assert!(
        !page.exists("fallback-banner").await,
        "no fallback banner on WebGPU"
    );
    assert_self_check_numbers(&page).await;

    let shot = page.screenshot("page-webgpu.png").await;
    eprintln!("screenshot: {}", shot.display());
    page.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the page built by trunk and Debian's chromium; run scripts/test.sh"]
async fn url_can_ask_for_the_cpu_backend() {
    let page = Page::open("?backend=flex").await;
    page.wait_state("selfcheck-status", "passed", STARTUP).await;

    assert!(page.text("backend").await.contains("flex"));
    assert!(page.text("info-banner").await.contains("?backend=flex"));
    assert!(!page.exists("fallback-banner").await);
    assert_self_check_numbers(&page).await;
    page.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the page built by trunk and Debian's chromium; run scripts/test.sh"]
async fn without_webgpu_the_page_falls_back_to_flex_with_a_banner() {
    // Without --enable-unsafe-webgpu, headless Chromium on Linux has navigator.gpu but its
    // requestAdapter() answers null: WebGPU initialisation fails as on a browser without it.
    let page = Page::open_with("", &["--enable-unsafe-webgpu"]).await;
    page.wait_state("selfcheck-status", "passed", STARTUP).await;

    assert!(page.text("backend").await.contains("flex"));
    let banner = page.text("fallback-banner").await;
    assert!(banner.contains("WebGPU is unavailable"), "{banner}");
    assert_self_check_numbers(&page).await;
    page.screenshot("page-fallback.png").await;
    page.finish().await;
}

/// Waits for the page's first PPO iteration (the tiny model loaded, one iteration computed).
async fn wait_ready(page: &Page, timeout: Duration) {
    page.wait_state("status", "idle", timeout).await;
}

/// The page's milliseconds per stage for the last iteration, for the session note.
async fn report_timings(page: &Page, label: &str) {
    page.open_diagnostics().await;
    let mut parts = Vec::new();
    for key in [
        "rollout", "score", "gae", "mask", "update", "after", "total", "mean", "ready",
    ] {
        parts.push(format!("{key} {}", page.text(&format!("time-{key}")).await));
    }
    parts.push(format!(
        "longest blocked task {}",
        page.text("longest-block").await
    ));
    parts.push(format!(
        "while training {}",
        page.text("longest-block-training").await
    ));
    eprintln!("timings on {label} (ms): {}", parts.join(", "));
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the page built by trunk and Debian's chromium; run scripts/test.sh"]
async fn one_iteration_steps_through_every_stage_on_webgpu() {
    // A small batch: SwiftShader runs WebGPU on the CPU.
    let page = Page::open("?backend=webgpu&rollouts=2&max_new_tokens=10&minibatch=2").await;
    // While the first iteration is computed, its rollout shows up token by token (a token
    // takes about half a second on SwiftShader).
    let live = page
        .wait_text("live-rollout", Duration::from_secs(300), |text| {
            let step = text
                .strip_prefix("sampling: token ")
                .and_then(|rest| rest.split(' ').next())
                .and_then(|n| n.parse::<usize>().ok());
            step.is_some_and(|n| n >= 2)
        })
        .await;
    assert!(live.contains("of at most 10"), "{live}");
    page.screenshot("live-rollout.png").await;
    wait_ready(&page, Duration::from_secs(420)).await;
    assert!(
        !page.exists("live-rollout").await,
        "the live rollout goes once the iteration is ready"
    );
    assert!(page.text("backend-value").await.starts_with("WebGPU"));
    assert_eq!(page.text("iteration").await, "iteration 1");
    // The page opens on the overview; space goes on to the rollout.
    assert!(page.exists("stage-overview").await);
    assert!(page.has_class("loop-node-policy", "lit").await);
    page.screenshot("stage-0-overview.png").await;
    page.press(" ").await;

    for (i, stage) in ["rollout", "score", "values", "gae", "update", "mask"]
        .into_iter()
        .enumerate()
    {
        assert!(
            page.exists(&format!("stage-{stage}")).await,
            "stage {stage}"
        );
        if stage == "rollout" {
            // The first token and its candidates, then space reveals the next token.
            assert!(page.exists("cand-0").await);
            assert!(page.exists("resp-tok-0").await);
            assert!(page.text("stage-progress").await.starts_with("step 1 of"));
        }
        if stage == "mask" {
            assert_eq!(page.attr("tf-check", "data-state").await, "passed");
            assert!(page.number("tf-max-diff").await < 1e-4);
            assert!(page.exists("attn-1-3").await, "2 layers x 4 heads");
            assert_eq!(page.attr("attn-big", "data-row").await, "0");
            // The big map: its canvas, and one query label per row and one key label per
            // column over the same positions.
            assert!(page.exists("attn-big-canvas").await);
            let labels = page
                .js("return [...document.querySelectorAll('.attn-ylabels .ax-y')].map(e => e.dataset.pos).join(',') + '|' + \
                     [...document.querySelectorAll('.attn-xlabels .ax-x')].map(e => e.dataset.pos).join(',');")
                .await;
            let (rows, cols) = labels.as_str().unwrap().split_once('|').unwrap();
            assert!(
                !rows.is_empty() && rows == cols,
                "query labels {rows}, key labels {cols}"
            );
            assert!(page.url().await.contains("stage=mask"));
        }
        // Every step of the stage, shown, then the screenshot.
        page.click("btn-all").await;
        page.scroll_to(&format!("stage-{stage}")).await;
        page.screenshot(&format!("stage-{}-{stage}.png", i + 1))
            .await;
        if stage == "update" {
            assert!(page.number("loss-value").await.is_finite());
            assert!(page.number("grad-norm").await > 0.0);
            assert!(page.exists("upd-ratio-0").await);
            // The clip explorer reads the same numbers on WebGPU.
            let t = page.attr("clip-explorer", "data-t").await;
            let dot: f64 = page
                .js("return Number(document.querySelector('[data-testid=clip-dot-after]').dataset.ratio);")
                .await
                .as_f64()
                .unwrap();
            assert_eq!(dot, page.number(&format!("upd-ratio-{t}")).await);
        }
        if stage == "gae" {
            assert!(page.text("gae-formula").await.contains("whitening"));
        }
        if stage != "mask" {
            page.press(" ").await;
        }
    }
    // Arrows move between stages; p plays; space after the last stage starts the next iteration.
    page.press("\u{E012}").await; // arrow left
    assert!(page.exists("stage-update").await);
    page.press("\u{E014}").await; // arrow right
    assert!(page.exists("stage-mask").await);
    page.press(" ").await;
    page.wait_text("iteration", Duration::from_secs(300), |t| {
        t == "iteration 2"
    })
    .await;
    wait_ready(&page, Duration::from_secs(300)).await;
    assert!(page.exists("stage-rollout").await);
    page.press("p").await;
    assert!(page.text("btn-play").await.starts_with("pause"));
    page.press("p").await;
    page.click("btn-presenter").await;
    page.screenshot("page-presenter.png").await;
    assert!(page.url().await.contains("presenter=1"));
    report_timings(&page, "WebGPU (SwiftShader), 2 rollouts x 10 tokens").await;
    page.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the page built by trunk and Debian's chromium; run scripts/test.sh"]
async fn gae_table_equals_the_command_line() {
    let page = Page::open("?backend=flex&rollouts=4&seed=7&stage=gae").await;
    wait_ready(&page, STARTUP).await;
    assert!(page.exists("stage-gae").await);
    let input = page.text_content("gae-json").await;
    let cli = common::cli::gae_whiten(&input, "page-gae");
    let inputs: serde_json::Value = serde_json::from_str(&input).unwrap();
    let at = |v: &serde_json::Value, key: &str, b: usize, t: usize| v[key][b][t].as_f64().unwrap();

    for row in [0usize, 3] {
        page.click(&format!("row-{row}")).await;
        page.click("btn-all").await;
        let mut t = 0;
        while page.exists(&format!("gae-row-{t}")).await {
            // The inputs the page shows are the ones it exported...
            assert_eq!(
                page.number(&format!("gae-reward-{t}")).await,
                at(&inputs, "rewards", row, t)
            );
            assert_eq!(
                page.number(&format!("gae-value-{t}")).await,
                at(&inputs, "values", row, t)
            );
            // ...and what it computed is what `ppo-lens gae` computes from them.
            for (cell, key) in [
                ("delta", "deltas"),
                ("adv", "advantages"),
                ("ret", "returns"),
                ("white", "whitened"),
            ] {
                let shown = page.number(&format!("gae-{cell}-{t}")).await;
                let expected = at(&cli, key, row, t);
                assert!(
                    (shown - expected).abs() <= 1e-5 * (1.0 + expected.abs()),
                    "row {row} t {t} {key}: page {shown}, cli {expected}"
                );
            }
            t += 1;
        }
        assert!(t > 0, "row {row} has no GAE rows");
        let mask_len = inputs["mask"][row]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m.as_f64() == Some(1.0))
            .count();
        assert_eq!(t, mask_len, "one table row per real token");
    }
    page.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the page built by trunk and Debian's chromium; run scripts/test.sh"]
async fn sandbox_reproduces_the_worked_example() {
    let page = Page::open("?backend=flex").await;
    page.wait_text("sb-delta-0", STARTUP, |t| !t.is_empty())
        .await;
    let outputs = |name: &'static str| {
        let page = &page;
        async move {
            let mut v = Vec::new();
            for t in 0..3 {
                v.push(page.number(&format!("sb-{name}-{t}")).await);
            }
            v
        }
    };
    let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5);
    // Change gamma: delta_0 = 1 + 0.99 * 2.5 - 2 = 1.475.
    page.type_into("sb-gamma", "0.99").await;
    assert!((page.number("sb-delta-0").await - 1.475).abs() < 1e-5);
    // Type the worked example back in: rewards 1, 0, 2; values 2.0, 2.5, 3.0; gamma 0.9.
    page.type_into("sb-gamma", "0.9").await;
    for (t, (r, v)) in [("1", "2.0"), ("0", "2.5"), ("2", "3.0")]
        .iter()
        .enumerate()
    {
        page.type_into(&format!("sb-reward-{t}"), r).await;
        page.type_into(&format!("sb-value-{t}"), v).await;
    }
    assert!(close(&outputs("delta").await, &[1.25, 0.2, -1.0]));
    // A_1 = 0.2 + 0.9 * 0.95 * (-1) = -0.655; A_0 = 1.25 + 0.855 * (-0.655) = 0.689975.
    assert!(close(&outputs("adv").await, &[0.689975, -0.655, -1.0]));
    assert!(close(&outputs("ret").await, &[2.689975, 1.845, 2.0]));
    // The steps are typeset as the GAE stage's, in its notation (δ, a real minus sign).
    let formula = |testid: &'static str| {
        let page = &page;
        async move {
            page.js(&format!(
                "return document.querySelector('[data-testid={testid}]').textContent.replace(/\\s+/g, '');"
            ))
            .await
            .as_str()
            .unwrap()
            .to_string()
        }
    };
    assert_eq!(
        formula("sb-adv-formula-1").await,
        "A1=0.200+0.9×0.95×1×(−1.000)=−0.655"
    );
    assert_eq!(
        formula("sb-delta-formula-2").await,
        "δ2=2.000+0.9×0.000×0−3.000=−1.000"
    );
    assert!((page.number("sb-adv-formula-1").await + 0.655).abs() < 1e-5);
    assert_eq!(
        formula("sb-general").await,
        "δt=rt+γ·Vt+1·mt+1−VtAt=δt+γλ·mt+1·At+1"
    );
    page.scroll_to("sandbox").await;
    page.screenshot("sandbox-worked-example.png").await;

    // A bad cell is flagged where it is, and nothing is computed from it.
    page.type_into("sb-reward-1", "abc").await;
    assert!(page.attr("sb-reward-1", "class").await.contains("bad"));
    assert!(
        page.text("sb-errors")
            .await
            .contains("reward at t = 1: “abc” is not a number")
    );
    assert_eq!(page.text("sb-delta-0").await, "·");
    page.type_into("sb-reward-1", "0").await;
    // A real token after padding is refused too.
    page.type_into("sb-mask-1", "0").await;
    assert!(page.text("sb-errors").await.contains("padding"));
    assert!(page.attr("sb-mask-2", "class").await.contains("bad"));
    page.scroll_to("sandbox").await;
    page.screenshot("sandbox-bad-cell.png").await;
    page.click("sb-example").await;
    assert!(close(&outputs("adv").await, &[0.689975, -0.655, -1.0]));
    page.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the page built by trunk and Debian's chromium; run scripts/test.sh"]
async fn twenty_iterations_raise_the_reward() {
    // configs/config_debug.yaml's batch on flex: long runs are for the CPU backend here.
    let page = Page::open("?backend=flex&rollouts=32").await;
    wait_ready(&page, STARTUP).await;
    report_timings(&page, "flex, 32 rollouts x 48 tokens (first iteration)").await;
    page.click("btn-train").await;
    // A hang guard, not a speed check: the page's speed is measured by `?bench=N`.
    let limit = common::hang_guard(Duration::from_secs(900));
    let deadline = std::time::Instant::now() + limit;
    loop {
        let values = page.reward_history().await;
        if values.len() >= 21 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no 21st iteration within the hang guard ({limit:?}); rewards so far: {values:?}"
        );
        assert_ne!(
            page.attr("status", "data-state").await,
            "failed",
            "{}",
            page.text("status").await
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    page.stop_training().await;
    page.wait_state("status", "idle", Duration::from_secs(120))
        .await;
    let rewards = page.reward_history().await;
    // Iteration 1 is the stepped-through one; 2..=21 are the 20 trained.
    let trained = &rewards[1..21];
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len() as f64;
    let (first, last) = (mean(&trained[..5]), mean(&trained[15..]));
    eprintln!(
        "reward mean over 20 iterations: first five {first:.3}, last five {last:.3}: {trained:?}"
    );
    assert!(
        last > first + 0.05,
        "reward did not rise: {first:.3} -> {last:.3}"
    );
    report_timings(&page, "flex, 32 rollouts x 48 tokens (while training)").await;
    page.scroll_to("charts").await;
    page.screenshot("charts-after-training.png").await;
    page.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the page built by trunk and Debian's chromium; run scripts/test.sh"]
async fn faq_answers_open_from_their_stage_and_switch_stages() {
    let page = Page::open("?backend=flex&stage=gae").await;
    wait_ready(&page, STARTUP).await;
    // Under the tabs: the questions whose answers point to the GAE stage.
    let questions = page.text("stage-questions").await;
    assert!(questions.contains("GAE in detail"), "{questions}");
    assert!(
        questions.contains("Why are advantages whitened?"),
        "{questions}"
    );
    // A closed answer shows only its question; the stage's link opens it.
    assert!(!page.text("faq-gae-in-detail").await.contains("0.689975"));
    page.click("stage-question-gae-in-detail").await;
    let answer = page.text("faq-gae-in-detail").await;
    assert!(
        answer.contains("advantages 0.689975, -0.655, -1"),
        "{answer}"
    );
    page.screenshot("faq-gae-in-detail.png").await;
    // Every question of docs/FAQ.md is in the page.
    let faq = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/FAQ.md")).unwrap();
    let all = page.text_content("faq").await;
    for question in faq.lines().filter_map(|l| l.strip_prefix("### ")) {
        assert!(
            all.contains(question.trim()),
            "the page has no `{question}`"
        );
    }
    // A link to a stage inside an answer switches the page to it, and the URL follows.
    page.click("faq-why-a-frozen-reference-model").await;
    page.click("faq-stage-link-score").await;
    assert_eq!(page.attr("tab-score", "aria-selected").await, "true");
    assert!(page.url().await.contains("stage=score"));
    page.finish().await;
}

/// The Timings panel's report (`data-testid="timings-json"`).
async fn page_timings(page: &Page) -> PageTimings {
    let json = page.text_content("timings-json").await;
    serde_json::from_str(&json).unwrap_or_else(|err| panic!("timings-json: {err}\n{json}"))
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the page built by trunk and Debian's chromium; run scripts/test.sh"]
async fn the_page_reports_its_start_and_iterations_as_json() {
    // The demo batch on flex, as a student opens it with ?backend=flex.
    let page = Page::open("?backend=flex").await;
    wait_ready(&page, STARTUP).await;
    page.click("btn-iterate").await;
    page.wait_text("iteration", STARTUP, |t| t == "iteration 2")
        .await;
    wait_ready(&page, STARTUP).await;
    let t = page_timings(&page).await;
    assert_eq!(t.backend.as_deref(), Some("flex"));
    // The page's own wasm, as Resource Timing saw it: the module is megabytes.
    let wasm = t.wasm.as_ref().expect("the wasm's resource timing");
    assert!(wasm.file.ends_with(".wasm"), "{}", wasm.file);
    assert!(wasm.decoded_bytes > 1e6, "{} bytes", wasm.decoded_bytes);
    assert!(wasm.fetch_start_ms <= wasm.response_end_ms);
    // Every step of the start happened, in order.
    let moments = [
        ("wasm downloaded", Some(wasm.response_end_ms)),
        ("page running", t.app_started_at_ms),
        ("worker ready", t.worker_ready_at_ms),
        ("backend chosen", t.backend_ready_at_ms),
        ("self-check done", t.self_check_done_at_ms),
        ("model loaded", t.model_loaded_at_ms),
        ("first iteration", t.first_iteration_at_ms),
    ];
    for pair in moments.windows(2) {
        let (a, at) = pair[0];
        let (b, bt) = pair[1];
        let (at, bt) = (
            at.unwrap_or_else(|| panic!("no {a}")),
            bt.unwrap_or_else(|| panic!("no {b}")),
        );
        assert!(0.0 < at && at <= bt, "{a} at {at} ms, {b} at {bt} ms");
    }
    assert!(t.self_check_ms.is_some_and(|ms| ms > 0.0));
    assert!(t.bench.is_none(), "no benchmark without ?bench");
    // One module: the page fetches and compiles the wasm once and posts the compiled module to
    // its worker, which instantiates it without a request of its own.
    let requests = page.requests().await;
    let wasm_requests: Vec<_> = requests.iter().filter(|u| u.ends_with(".wasm")).collect();
    assert_eq!(wasm_requests.len(), 1, "{requests:?}");
    let memory = t.page_memory_bytes.expect("the page's wasm memory");
    assert!(memory >= 64.0 * 1024.0, "{memory} bytes");
    // Two iterations, stepping through: each waited for at least as long as the worker worked
    // and its reply took.
    assert_eq!(t.iterations.len(), 2, "{t:?}");
    for (i, it) in t.iterations.iter().enumerate() {
        assert_eq!(it.iteration, i + 1);
        assert!(!it.training);
        assert!(
            it.worker.rollout_ms > 0.0 && it.worker.update_ms > 0.0,
            "{it:?}"
        );
        assert!(
            it.worker.total_ms() <= it.reply_ms && it.reply_ms <= it.shown_ms,
            "{it:?}"
        );
    }
    assert_eq!(t.next_iteration_median_ms, Some(t.iterations[1].shown_ms));
    // The panel shows the same figures.
    page.open_diagnostics().await;
    let shown = |testid: &'static str| {
        let page = &page;
        async move { page.text(testid).await.parse::<f64>().unwrap() }
    };
    assert_eq!(
        shown("time-ready").await,
        t.first_iteration_at_ms.unwrap().round()
    );
    assert_eq!(shown("time-next").await, t.iterations[1].shown_ms.round());
    eprintln!(
        "page start on flex, demo batch (ms after navigation): wasm {:.0} ({:.1} MB), running {:.0}, worker {:.0}, backend {:.0}, self-check {:.0}, model {:.0}, first iteration {:.0}; next iteration {:.0} (worker {:.0}, reply {:.0}); the page's wasm memory {:.1} MB",
        wasm.response_end_ms,
        wasm.decoded_bytes / 1e6,
        t.app_started_at_ms.unwrap(),
        t.worker_ready_at_ms.unwrap(),
        t.backend_ready_at_ms.unwrap(),
        t.self_check_done_at_ms.unwrap(),
        t.model_loaded_at_ms.unwrap(),
        t.first_iteration_at_ms.unwrap(),
        t.iterations[1].shown_ms,
        t.iterations[1].worker.total_ms(),
        t.iterations[1].reply_ms,
        memory / 1e6,
    );
    page.scroll_to("timings").await;
    page.screenshot("page-timings.png").await;
    page.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the page built by trunk and Debian's chromium; run scripts/test.sh"]
async fn benchmark_mode_times_every_stage_on_webgpu_and_flex() {
    // A small batch: SwiftShader runs WebGPU on the CPU.
    let page = Page::open("?backend=webgpu&bench=1&rollouts=2&max_new_tokens=6&minibatch=2").await;
    page.wait_state("bench", "done", Duration::from_secs(600))
        .await;
    let mut report = Vec::new();
    for stage in [
        "rollout", "score", "gae", "mask", "update", "after", "total", "first",
    ] {
        let webgpu: f64 = page
            .text(&format!("bench-{stage}-webgpu"))
            .await
            .parse()
            .unwrap();
        let flex: f64 = page
            .text(&format!("bench-{stage}-flex"))
            .await
            .parse()
            .unwrap();
        assert!(webgpu >= 0.0 && flex >= 0.0, "{stage}: {webgpu} / {flex}");
        if stage != "gae" {
            assert!(webgpu > 0.0 && flex > 0.0, "{stage}: {webgpu} / {flex}");
        }
        report.push(format!("{stage} {webgpu} / {flex}"));
    }
    eprintln!(
        "page benchmark, ms WebGPU (SwiftShader) / flex, 2 rollouts x 6 tokens: {}",
        report.join(", ")
    );
    // The report has the same figures, WebGPU's adapter named.
    let bench = page_timings(&page)
        .await
        .bench
        .expect("the benchmark in the report");
    let gpu = bench.webgpu.as_ref().expect("WebGPU's figures");
    assert!(!bench.webgpu_adapter.is_empty());
    assert_eq!(bench.flex.iterations, 1);
    assert_eq!(
        page.text("bench-total-flex").await,
        format!("{:.1}", bench.flex.median.total_ms())
    );
    assert!(gpu.first.total_ms() > 0.0);
    page.scroll_to("bench").await;
    page.screenshot("page-benchmark.png").await;
    // Then the page starts as usual.
    wait_ready(&page, STARTUP).await;
    page.finish().await;
}

#[test]
#[ignore = "needs the page built by trunk; run scripts/test.sh"]
fn the_page_runs_its_constructors_once() {
    // wasm-ld wraps every export of a module that never calls `__wasm_call_ctors` itself in a
    // `<name>.command_export` function that runs all the static constructors first; src/main.rs
    // calls them once instead. The wrappers' names are in the wasm's name section, which
    // wasm-opt drops from dist/; Trunk keeps wasm-bindgen's output, names and all, in
    // <target>/wasm-bindgen/release/. It is the build dist/ came from when the JS glue is the same.
    let staged = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("wasm-bindgen/release");
    let glue = std::fs::read_dir(common::browser::dist_dir())
        .expect("dist dir")
        .map(|entry| entry.expect("dist entry").path())
        .find(|path| {
            path.extension().is_some_and(|e| e == "js")
                && path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("ppo-lens-"))
        })
        .expect("the page's JS glue in dist/");
    assert!(
        std::fs::read(&glue).ok() == std::fs::read(staged.join("ppo-lens.js")).ok(),
        "{} is not the glue of the last trunk build into this target dir ({})",
        glue.display(),
        staged.display()
    );
    let wasm = staged.join("ppo-lens_bg.wasm");
    let bytes = std::fs::read(&wasm).expect("read the page's wasm before wasm-opt");
    let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(
        has(b"\x04name"),
        "{} has no name section: nothing to check",
        wasm.display()
    );
    assert!(
        has(b"__wasm_call_ctors"),
        "the page's wasm names no constructors"
    );
    assert!(
        !has(b".command_export"),
        "{}: wasm-ld wrapped the exports in constructor calls",
        wasm.display()
    );
}

// ---- The page teaches: the current step in sight, one token followed everywhere, where a
// ---- number comes from, the loop and the tour, notes computed from the batch.

/// The stages in tab order.
const STAGES: [&str; 7] = [
    "overview", "rollout", "score", "values", "gae", "update", "mask",
];

/// Where an element is in the viewport: `[top, bottom, innerHeight, sticky bar's bottom]`.
async fn placement(page: &Page, selector: &str) -> [f64; 4] {
    let script = format!(
        "const el = document.querySelector('{selector}'); if (!el) return null;
         const r = el.getBoundingClientRect();
         const bar = document.querySelector('.sticky-bar').getBoundingClientRect();
         return [r.top, r.bottom, window.innerHeight, bar.bottom];"
    );
    let v = page.js(&script).await;
    assert!(!v.is_null(), "no element matches {selector}");
    let at = |i: usize| v[i].as_f64().unwrap();
    [at(0), at(1), at(2), at(3)]
}

/// The page's numbers of one kind, by token: `data-v` of `prefix-0`, `prefix-1`, …
async fn column(page: &Page, prefix: &str) -> Vec<f64> {
    page.column(prefix).await
}

async fn no_console_errors(page: &Page, context: &str) {
    let errors: Vec<_> = page
        .console()
        .await
        .into_iter()
        .filter(|(level, _)| level == "SEVERE")
        .collect();
    assert!(errors.is_empty(), "{context}: console errors {errors:#?}");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the page built by trunk and Debian's chromium; run scripts/test.sh"]
async fn at_1280x800_every_stage_shows_its_data_on_the_first_screen() {
    let page = Page::open("?backend=flex&rollouts=16").await;
    page.set_viewport(1280, 800).await;
    wait_ready(&page, STARTUP).await;
    // A new student lands on the overview.
    assert!(page.exists("stage-overview").await);
    // How many stages were long enough to check that their head stays pinned under the bar.
    let mut pinned = 0;
    let mut scrolled = Vec::new();
    let mut side_terms = 0;
    for presenter in [false, true] {
        if presenter {
            page.press("f").await;
        }
        for stage in STAGES {
            page.click(&format!("tab-{stage}")).await;
            // After the stage has scrolled its current step into view: back to the top.
            page.settle().await;
            page.js("window.scrollTo(0, 0); return null;").await;
            page.settle().await;
            let [top, _, height, _] = placement(&page, ".stage .stage-data").await;
            assert!(
                top < height - 200.0,
                "{stage} (presenter {presenter}): the data starts at {top}px of {height}"
            );
            let mode = if presenter { "presenter" } else { "normal" };
            page.screenshot(&format!("first-screen-{mode}-{stage}.png"))
                .await;
            // The folded prompt names the question, not the template's last header.
            if page.exists("prompt").await {
                let summary = page.text("prompt").await;
                assert!(
                    !summary.contains("<|im_") && summary.len() > "prompt".len() + 8,
                    "{stage}: the prompt reads {summary:?}"
                );
            }
            // Every column of its tables and every formula in full, without scrolling.
            for part in page.hidden_behind_scroll_bars().await {
                scrolled.push(format!("{mode} {stage}: {part}"));
            }
            // A glossary term's note in the side column, shown, lies inside the column.
            let notes = page
                .js("const side = [...document.querySelectorAll('.stage .stage-side')].find(e => e.offsetParent !== null);\
                     if (!side) return [0, []];\
                     const terms = [...side.querySelectorAll('dfn.term')];\
                     const out = terms.map(d => { d.focus({ preventScroll: true }); const g = d.querySelector('.gloss').getBoundingClientRect();\
                       const s = side.getBoundingClientRect(); const wide = side.scrollWidth > side.clientWidth + 1;\
                       d.blur(); return (g.width > 0 && g.left >= s.left - 1 && g.right <= s.left + side.clientWidth + 1 && !wide)\
                         ? null : d.dataset.term + ' ' + g.left + '..' + g.right + ' in ' + s.left + '..' + (s.left + side.clientWidth); })\
                       .filter(x => x !== null);\
                     return [terms.length, out];")
                .await;
            side_terms += notes[0].as_u64().unwrap();
            for bad in notes[1].as_array().unwrap() {
                scrolled.push(format!("{mode} {stage}: the note of {bad}"));
            }
            // The bar (controls, tabs, step counter, responses) stays on screen while the
            // stage scrolls.
            page.js("window.scrollTo(0, 1200); return null;").await;
            page.settle().await;
            let [bar_top, bar_bottom, _, _] = placement(&page, ".sticky-bar").await;
            let scrolled = page.js("return window.scrollY;").await.as_f64().unwrap();
            if scrolled > 0.0 {
                assert!(
                    bar_top.abs() < 1.0,
                    "{stage}: the bar scrolled away ({bar_top})"
                );
            }
            // The stage's head stays whole, pinned just under the bar, rather than cut off
            // under it.
            // (While the stage's card reaches below the bar: a short stage scrolls away whole.)
            let [head_top, head_bottom, _, _] = placement(&page, ".stage .stage-head").await;
            let [_, card_bottom, _, _] = placement(&page, ".stage").await;
            if scrolled > 0.0 && card_bottom > bar_bottom + (head_bottom - head_top) + 20.0 {
                pinned += 1;
                assert!(
                    head_top >= bar_bottom - 2.0,
                    "{stage}: the stage's head is at {head_top}, the bar ends at {bar_bottom}"
                );
            }
            for part in ["btn-step", "tab-gae", "stage-progress", "row-0"] {
                let [t, b, _, _] = placement(&page, &format!("[data-testid=\"{part}\"]")).await;
                assert!(
                    t >= 0.0 && b <= bar_bottom + 1.0,
                    "{stage}: {part} out of sight"
                );
            }
        }
    }
    assert!(
        pinned >= 2,
        "only {pinned} stages were long enough to check the pinned head"
    );
    assert!(
        side_terms >= 3,
        "{side_terms} glossary terms in the side columns"
    );
    assert!(
        scrolled.is_empty(),
        "parts hidden behind a scroll bar at 1280 x 800:\n{}",
        scrolled.join("\n")
    );
    page.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the page built by trunk and Debian's chromium; run scripts/test.sh"]
async fn stepping_keeps_the_current_row_and_its_formula_in_sight() {
    let page = Page::open("?backend=flex&rollouts=4&stage=gae").await;
    page.set_viewport(1280, 800).await;
    wait_ready(&page, STARTUP).await;
    assert!(page.exists("stage-gae").await);
    let rows = column(&page, "gae-reward").await.len();
    assert!(rows >= 2, "the first response has {rows} tokens");
    // The table keeps to its column: wide numbers scroll it sideways instead of running under
    // the side column.
    let clear = page
        .js("const t = document.querySelector('[data-testid=\"gae-table\"]').parentElement.getBoundingClientRect();
             const s = document.querySelector('.stage-side').getBoundingClientRect();
             return [t.right, s.left];")
        .await;
    let (right, side) = (clear[0].as_f64().unwrap(), clear[1].as_f64().unwrap());
    assert!(
        right <= side + 1.0,
        "the GAE table ends at {right}px, the side column starts at {side}px"
    );
    // The sweep runs from the last token back; after every step the row it filled and the
    // formula with its numbers are both on screen, below the sticky bar.
    for step in 0..rows {
        let current = rows - 1 - step;
        page.settle().await;
        let row = format!("[data-testid=\"gae-row-{current}\"]");
        assert!(
            page.has_class(&format!("gae-row-{current}"), "current")
                .await
        );
        let [top, bottom, height, _] = placement(&page, &row).await;
        // Below the bar and the stage's head pinned under it.
        let [_, bar, _, _] = placement(&page, ".stage .stage-head").await;
        assert!(
            top >= bar - 1.0 && bottom <= height + 1.0,
            "step {step}: row {current} at {top}..{bottom}, the head ends at {bar}, window {height}"
        );
        // The table's column heads stay in sight between the stage's head and the row.
        let [htop, hbottom, _, _] = placement(&page, "[data-testid=\"gae-table\"] > thead").await;
        assert!(
            htop >= bar - 1.0 && hbottom <= top + 1.0,
            "step {step}: the column heads at {htop}..{hbottom}, the stage head ends at {bar}, \
             row {current} starts at {top}"
        );
        let [ftop, fbottom, _, _] = placement(&page, "[data-testid=\"gae-formula\"]").await;
        assert!(
            ftop >= bar - 1.0 && fbottom <= height + 1.0,
            "step {step}: formula at {ftop}..{fbottom}"
        );
        assert_eq!(
            page.attr("gae-formula", "data-t").await,
            current.to_string()
        );
        // The formula's A_t is the row's A_t.
        assert_eq!(
            page.number("gae-adv-formula").await,
            page.number(&format!("gae-adv-{current}")).await
        );
        if step == rows / 2 {
            page.screenshot("gae-sweep-in-sight.png").await;
        }
        page.press(" ").await;
    }
    // Then whitening, with the batch's mean and std beside the table.
    assert!(page.text("gae-formula").await.contains("whitening"));
    page.screenshot("gae-whitened.png").await;
    let cut = page.hidden_behind_scroll_bars().await;
    assert!(cut.is_empty(), "{cut:?}");

    // The rollout too: the newest token's row stays in sight.
    page.click("tab-rollout").await;
    let tokens = rows.min(12);
    for t in 0..tokens {
        page.settle().await;
        let [top, bottom, height, bar] =
            placement(&page, &format!("[data-testid=\"ro-row-{t}\"]")).await;
        assert!(
            top >= bar - 1.0 && bottom <= height + 1.0,
            "rollout step {t}"
        );
        let [_, head, _, _] = placement(&page, ".stage .stage-head").await;
        let [htop, hbottom, _, _] = placement(
            &page,
            &format!("table:has([data-testid=\"ro-row-{t}\"]) > thead"),
        )
        .await;
        assert!(
            htop >= head - 1.0 && hbottom <= top + 1.0,
            "rollout step {t}: the column heads at {htop}..{hbottom}, the stage head ends at \
             {head}, the row starts at {top}"
        );
        page.press(" ").await;
    }
    page.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the page built by trunk and Debian's chromium; run scripts/test.sh"]
async fn one_token_is_followed_through_every_view_and_shared_by_url() {
    let page = Page::open("?backend=flex&rollouts=4&stage=rollout").await;
    wait_ready(&page, STARTUP).await;
    page.click("btn-all").await;
    let real = column(&page, "logp").await.len();
    // Not the last token, so that the keyboard check below has a next one to move to.
    assert!(real >= 2, "the first response has {real} token(s)");
    let t = 3.min(real - 2);
    page.click(&format!("resp-tok-{t}")).await;
    let mut lit = Vec::new();
    let mut check = |view: String, on: bool| {
        assert!(on, "{view} is not highlighted for token {t}");
        lit.push(view);
    };
    check(
        format!("resp-tok-{t}"),
        page.has_class(&format!("resp-tok-{t}"), "sel").await,
    );
    check(
        "candidates".into(),
        page.has_class("candidates-box", "sel").await,
    );
    assert_eq!(page.attr("candidates-box", "data-t").await, t.to_string());
    check(
        format!("ro-row-{t}"),
        page.has_class(&format!("ro-row-{t}"), "sel").await,
    );
    for (stage, row) in [
        ("score", "kl-row"),
        ("values", "vbar-row"),
        ("gae", "gae-row"),
        ("update", "upd-row"),
    ] {
        page.click(&format!("tab-{stage}")).await;
        page.click("btn-all").await;
        check(
            format!("{row}-{t}"),
            page.has_class(&format!("{row}-{t}"), "sel").await,
        );
        // Only that token's row.
        let other = if t == 0 { 1 } else { 0 };
        assert!(!page.has_class(&format!("{row}-{other}"), "sel").await);
        assert!(page.has_class(&format!("resp-tok-{t}"), "sel").await);
    }
    page.click("tab-mask").await;
    for kind in ["row", "col"] {
        check(
            format!("attention {kind}"),
            page.has_class(&format!("attn-sel-{kind}-0-0"), "sel").await,
        );
    }
    // The outlined row sits at position P + t of the map.
    let style = page.attr("attn-sel-row-0-0", "style").await;
    assert!(style.contains("top:"), "{style}");
    // The enlarged map outlines it too: its row and column cross on the cell where the token
    // attends to itself, as the readout under the pointer there says.
    for kind in ["row", "col"] {
        check(
            format!("enlarged attention {kind}"),
            page.has_class(&format!("attn-big-sel-{kind}"), "sel").await,
        );
    }
    let readout = page
        .js("const r = document.querySelector('[data-testid=attn-big-sel-row]').getBoundingClientRect();\
             const c = document.querySelector('[data-testid=attn-big-sel-col]').getBoundingClientRect();\
             const canvas = document.querySelector('[data-testid=attn-big-canvas]');\
             canvas.dispatchEvent(new MouseEvent('mousemove', {bubbles: true,\
               clientX: c.left + c.width / 2, clientY: r.top + r.height / 2}));\
             return null;")
        .await;
    assert!(readout.is_null());
    page.settle().await;
    let readout = page.text("attn-readout").await;
    let token = page.text(&format!("resp-tok-{t}")).await;
    let (query, key) = readout
        .split_once(" → key ")
        .unwrap_or_else(|| panic!("no cell under the outlines: {readout}"));
    assert_eq!(
        query
            .trim_start_matches("query ")
            .split_once(' ')
            .map(|(q, _)| q),
        key.split_once(' ').map(|(k, _)| k),
        "{readout}"
    );
    assert!(
        query.contains(&format!("“{token}”")),
        "{readout} (token {t} is {token})"
    );
    assert_eq!(lit.len(), 11, "{lit:?}");
    page.screenshot("token-followed-mask.png").await;
    let url = page.url().await;
    assert!(
        url.contains(&format!("iteration=1&response=1&token={t}")),
        "{url}"
    );

    // Keyboard: ↓ on a focused row moves the pick to the next token.
    page.click("tab-gae").await;
    page.click("btn-all").await;
    page.press_on(&format!("gae-row-{t}"), "\u{E015}").await; // arrow down
    let next = t + 1;
    assert!(page.has_class(&format!("gae-row-{next}"), "sel").await);
    assert!(page.url().await.contains(&format!("token={next}")));
    // Hovering another token lights it everywhere while the pointer stays.
    page.js(
        "document.querySelector('[data-testid=\"resp-tok-0\"]').dispatchEvent(new MouseEvent('mouseenter')); return null;",
    )
    .await;
    assert!(page.has_class("gae-row-0", "sel").await);
    page.js(
        "document.querySelector('[data-testid=\"resp-tok-0\"]').dispatchEvent(new MouseEvent('mouseleave')); return null;",
    )
    .await;
    assert!(!page.has_class("gae-row-0", "sel").await);
    page.finish().await;

    // A shared link opens the same token of the same response of the same iteration. A value
    // it cannot take, alone (gamma) or with the others (GRPO needs samples per prompt), is
    // named in a notice and left at its default.
    let page = Page::open(
        "?backend=flex&rollouts=4&stage=gae&iteration=2&response=2&token=1&gamma=abc&algo=grpo",
    )
    .await;
    page.wait_text("iteration", STARTUP, |t| t == "iteration 2")
        .await;
    wait_ready(&page, STARTUP).await;
    let notices = page
        .js(
            "return [...document.querySelectorAll('[data-testid=info-banner]')]\
             .map(b => b.textContent).join('\\n');",
        )
        .await;
    let notices = notices.as_str().unwrap();
    for said in [
        "Ignoring ?gamma=abc from the URL: “abc” is not a number. Using 1.",
        "Ignoring ?algo=grpo from the URL: GRPO compares samples of one prompt: set samples per \
         prompt to 2 or more, dividing rollouts per iteration (4). Using ppo.",
    ] {
        assert!(notices.contains(said), "{said} in {notices}");
    }
    let value =
        |key: &str| format!("return document.querySelector('[data-testid=\"set-{key}\"]').value;");
    assert_eq!(page.js(&value("algo")).await, "ppo");
    assert_eq!(page.js(&value("gamma")).await, "1");
    page.wait_text("picked-token", Duration::from_secs(30), |t| {
        t.starts_with("token t = 1")
    })
    .await;
    assert!(page.has_class("row-1", "selected").await);
    assert!(page.exists("stage-gae").await);
    assert!(page.has_class("gae-row-1", "sel").await);
    page.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the page built by trunk and Debian's chromium; run scripts/test.sh"]
async fn a_picked_number_shows_where_it_comes_from() {
    let page = Page::open("?backend=flex&rollouts=4&stage=gae").await;
    wait_ready(&page, STARTUP).await;
    page.click("btn-all").await;
    let inputs: serde_json::Value =
        serde_json::from_str(&page.text_content("gae-json").await).unwrap();
    let (gamma, lam) = (
        inputs["gamma"].as_f64().unwrap(),
        inputs["lam"].as_f64().unwrap(),
    );
    let real = column(&page, "gae-adv").await.len();
    assert!(real >= 3);
    let t = 1;
    page.click(&format!("gae-adv-{t}")).await;
    assert_eq!(page.attr("provenance", "data-quantity").await, "adv");
    let terms = page.attr("provenance", "data-terms").await;
    let expected = [
        "gae-reward-1",
        "gae-value-1",
        "gae-value-2",
        "gae-adv-2",
        "gae-delta-1",
    ];
    assert_eq!(terms, expected.join(","));
    for term in expected {
        assert!(page.has_class(term, "src").await, "{term} is not lit");
    }
    assert!(!page.has_class("gae-reward-0", "src").await);
    assert!(page.has_class("gae-adv-1", "explained").await);
    // The arithmetic, done here on the lit cells, is the shown A_t.
    let n = |id: &'static str| page.number(id);
    let a = n("gae-reward-1").await + gamma * n("gae-value-2").await - n("gae-value-1").await
        + gamma * lam * n("gae-adv-2").await;
    let shown = n("gae-adv-1").await;
    assert!((a - shown).abs() < 1e-5, "{a} against {shown}");
    assert!((n("prov-recomputed").await - shown).abs() < 1e-6);
    let arith = page.text("prov-arith").await;
    assert!(arith.contains("A_1 = δ_1 + γ · λ · A_2"), "{arith}");
    page.screenshot("provenance-advantage.png").await;
    let cut = page.hidden_behind_scroll_bars().await;
    assert!(cut.is_empty(), "{cut:?}");

    // A return is A_t + V_t.
    page.click("gae-ret-1").await;
    assert_eq!(
        page.attr("provenance", "data-terms").await,
        "gae-adv-1,gae-value-1"
    );
    let r = n("gae-adv-1").await + n("gae-value-1").await;
    assert!((r - n("gae-ret-1").await).abs() < 1e-5);

    // A token reward: −β·KL_t, plus the score on the last token.
    let beta: f64 = page
        .js("return document.querySelector('[data-testid=\"set-kl\"]').value;")
        .await
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    page.click("tab-score").await;
    page.click("btn-all").await;
    let last = real - 1;
    page.click(&format!("reward-{last}")).await;
    let terms = page.attr("provenance", "data-terms").await;
    assert!(terms.ends_with("score-0"), "{terms}");
    assert!(page.has_class("score-0", "src").await);
    let reward = -beta * page.number(&format!("kl-{last}")).await + n("score-0").await;
    assert!((reward - page.number(&format!("reward-{last}")).await).abs() < 1e-5);
    page.click("reward-0").await;
    assert!(
        !page
            .attr("provenance", "data-terms")
            .await
            .contains("score")
    );

    // A ratio: exp(new − old).
    page.click("tab-update").await;
    page.click("btn-all").await;
    page.click("upd-ratio-0").await;
    assert_eq!(
        page.attr("provenance", "data-terms").await,
        "upd-new-0,upd-old-0"
    );
    let ratio = (n("upd-new-0").await - n("upd-old-0").await).exp();
    assert!((ratio - n("upd-ratio-0").await).abs() < 1e-5);
    page.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the page built by trunk and Debian's chromium; run scripts/test.sh"]
async fn the_loop_diagram_the_tour_and_the_glossary_guide_a_beginner() {
    let page = Page::open("?backend=flex&rollouts=4&max_new_tokens=12").await;
    page.set_viewport(1280, 800).await;
    wait_ready(&page, STARTUP).await;
    assert!(page.exists("stage-overview").await);
    assert!(page.has_class("loop-node-policy", "lit").await);
    assert!(!page.has_class("loop-node-gae", "lit").await);
    // Each arrow carries its tensor with this batch's shape.
    // The ids hold the prompt and the response, the log-probabilities the response only.
    let ids = page.text("loop-edge-1").await;
    let width: usize = ids
        .strip_prefix("ids [4 × ")
        .and_then(|rest| rest.strip_suffix("], log π_old [4 × 12]"))
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("{ids}"));
    assert!(width > 12, "{ids}");
    assert_eq!(page.text("loop-edge-3").await, "V(s_t) [4 × 12], for GAE");
    assert_eq!(
        page.text("loop-edge-6").await,
        "new θ (2 epochs × 1 mini-batch)"
    );
    // Every box holds its label, and no arrow's label sits on a box or under an arrow.
    let layout = page
        .js("const boxes = [...document.querySelectorAll('.loop-node')].map(g => [g.dataset.testid, g.querySelector('rect').getBBox(), g.querySelector('text').getBBox()]);
             const out = [];
             for (const [id, r, t] of boxes) if (t.x < r.x || t.x + t.width > r.x + r.width) out.push(id + ' spills out of its box');
             const hit = (b, x, y) => x >= b.x && x <= b.x + b.width && y >= b.y && y <= b.y + b.height;
             const meet = (a, b) => a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
             const lines = [...document.querySelectorAll('.loop-arrow')];
             for (const label of document.querySelectorAll('.loop-edge')) {
               const l = label.getBBox();
               for (const [id, r] of boxes) if (meet(l, r)) out.push(label.dataset.testid + ' on ' + id);
               lines.forEach((line, i) => {
                 const [x1, y1, x2, y2] = ['x1', 'y1', 'x2', 'y2'].map(k => line[k].baseVal.value);
                 for (let s = 0; s <= 20; s++) if (hit(l, x1 + (x2 - x1) * s / 20, y1 + (y2 - y1) * s / 20)) { out.push(label.dataset.testid + ' under arrow ' + i); break; }
               });
             }
             return out;")
        .await;
    assert_eq!(layout, serde_json::json!([]), "the loop diagram's layout");
    page.screenshot("overview.png").await;
    // A box opens its stage; the small loop in its head lights it.
    page.js("document.querySelector('[data-testid=\"loop-node-gae\"] rect').dispatchEvent(new MouseEvent('click', {bubbles: true})); return null;").await;
    assert!(page.exists("stage-gae").await);
    assert!(page.has_class("mini-loop-gae", "lit").await);
    assert!(!page.has_class("mini-loop-rollout", "lit").await);

    // The tour: t starts it, next walks the stages, Esc leaves.
    page.press("t").await;
    assert_eq!(page.attr("tour", "data-stop").await, "0");
    assert!(page.exists("stage-overview").await);
    let texts: Vec<String> = ppo_lens::explain::guide::TOUR
        .iter()
        .map(|(_, s)| s.to_string())
        .collect();
    for (i, stage) in STAGES.iter().enumerate() {
        assert!(
            page.exists(&format!("stage-{stage}")).await,
            "tour stop {i}"
        );
        assert_eq!(page.text("tour-text").await, texts[i]);
        // Under PPO the tour's own sentences hold.
        assert!(!page.exists("tour-member").await, "tour stop {i}");
        // The tour asks before it shows, where the stage has a question on this batch.
        if *stage == "values" {
            assert_eq!(
                page.attr("predict-advantage-sign", "data-state").await,
                "asking"
            );
            assert_eq!(page.attr("stage-view", "data-withheld").await, "true");
        }
        if i == 4 {
            page.screenshot("tour-gae.png").await;
        }
        if i + 1 < STAGES.len() {
            page.click("tour-next").await;
        }
    }
    page.click("tour-prev").await;
    assert!(page.exists("stage-update").await);
    page.press("\u{E00C}").await; // Escape
    assert!(!page.exists("tour").await);
    assert!(
        !page.exists("predict").await,
        "out of the tour, predict mode is off again"
    );

    // Glossary terms explain themselves on focus (or hover), and hide again.
    let shown = "const g = document.querySelector('.stage dfn.term .gloss'); return getComputedStyle(g).display;";
    assert_eq!(page.js(shown).await, "none");
    page.js("document.querySelector('.stage dfn.term').focus(); return null;")
        .await;
    assert_eq!(page.js(shown).await, "block");
    let word = page
        .js("return document.querySelector('.stage dfn.term').dataset.term;")
        .await;
    let word = word.as_str().unwrap();
    let gloss = page
        .js("return document.querySelector('.stage dfn.term .gloss').textContent;")
        .await;
    assert_eq!(gloss.as_str(), ppo_lens::explain::guide::gloss(word));

    // The misconceptions card: six questions, closed until a student opens one; each answer is
    // written on this batch and takes the student to the stage that shows it.
    page.click("tab-overview").await;
    let keys = [
        "advantage-not-reward",
        "clip-not-cap",
        "whitening-flips",
        "kl-reward-or-loss",
        "approx-kl",
        "value-clip",
    ];
    let shown = page
        .js("return [...document.querySelectorAll('details.misconception')].map(d => [d.dataset.testid, d.open]);")
        .await;
    let expected: Vec<_> = keys
        .iter()
        .map(|k| serde_json::json!([format!("mis-{k}"), false]))
        .collect();
    assert_eq!(shown, serde_json::Value::Array(expected));
    page.js("document.querySelector('[data-testid=\"mis-clip-not-cap\"] summary').click(); document.querySelector('[data-testid=\"mis-value-clip\"] summary').click(); return null;")
        .await;
    let answer = page.text("mis-clip-not-cap-answer").await;
    let outside = page.attr("mis-clip-not-cap", "data-v").await;
    assert!(
        answer.contains(&format!("After this update {outside} of the batch's")),
        "{answer}"
    );
    assert!(
        page.text("mis-value-clip-answer")
            .await
            .contains("moving toward the return R")
    );
    page.show("misconceptions").await;
    page.screenshot("misconceptions.png").await;
    page.click("mis-clip-not-cap-go").await;
    assert!(page.exists("stage-update").await);
    page.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the page built by trunk and Debian's chromium; run scripts/test.sh"]
async fn every_note_is_true_of_the_numbers_on_screen() {
    let page = Page::open("?backend=flex&rollouts=6&stage=gae").await;
    wait_ready(&page, STARTUP).await;
    page.click("btn-all").await;
    // Whitening: the sign flips the note lists are exactly the tokens whose sign changed.
    let adv = column(&page, "gae-adv").await;
    let white = column(&page, "gae-white").await;
    let listed: Vec<usize> = page
        .attr("note-sign-flip", "data-tokens")
        .await
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    let mut flips = 0;
    for t in 0..adv.len() {
        let flipped = adv[t] != 0.0 && (adv[t] > 0.0) != (white[t] > 0.0);
        assert_eq!(
            listed.contains(&t),
            flipped,
            "t {t}: {} -> {}",
            adv[t],
            white[t]
        );
        flips += usize::from(flipped);
    }
    // The response has flips to list, so the check above saw both sides.
    assert!(
        flips > 0 && flips < adv.len(),
        "{flips} of {} flipped",
        adv.len()
    );
    // The last token's advantage is its delta.
    let last = adv.len() - 1;
    assert_eq!(page.number("note-last-delta").await, adv[last]);
    assert_eq!(page.number(&format!("gae-delta-{last}")).await, adv[last]);

    // Score, iteration 1: KL is rounding only, and the note says how small.
    page.click("tab-score").await;
    page.click("btn-all").await;
    let bound = page.number("note-kl-zero").await;
    assert!(bound < 1e-3, "{bound}");
    assert!(column(&page, "kl").await.iter().all(|k| k.abs() <= bound));
    assert_eq!(
        page.attr("note-score-last", "data-tokens").await,
        last.to_string()
    );

    // Update: the largest move is the largest |ratio − 1|; the rollout's most uncertain step
    // is the highest entropy of the response.
    page.click("tab-update").await;
    page.click("btn-all").await;
    let ratios = column(&page, "upd-ratio").await;
    let t: usize = page
        .attr("note-largest-move", "data-tokens")
        .await
        .parse()
        .unwrap();
    assert!(
        ratios
            .iter()
            .all(|r| (r - 1.0).abs() <= (ratios[t] - 1.0).abs())
    );
    assert_eq!(
        page.number("note-policy-loss-zero").await,
        page.number("grad-norm").await
    );
    let entropy = column(&page, "upd-ent").await;
    page.click("tab-rollout").await;
    let t: usize = page
        .attr("note-most-uncertain", "data-tokens")
        .await
        .parse()
        .unwrap();
    assert!(entropy.iter().all(|e| *e <= entropy[t]));
    // "show t" picks the token the note is about.
    page.click("note-jump-most-uncertain").await;
    assert!(page.has_class(&format!("resp-tok-{t}"), "sel").await);
    page.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the page built by trunk and Debian's chromium; run scripts/test.sh"]
async fn every_max_new_tokens_renders_every_stage() {
    // Each length as a URL would give it: the settings field, then a fresh iteration.
    let page = Page::open("?backend=flex&rollouts=2&minibatch=2&max_new_tokens=1&stage=mask").await;
    page.set_viewport(1280, 800).await;
    wait_ready(&page, STARTUP).await;
    assert!(page.exists("stage-mask").await);
    assert_eq!(
        page.text("align-0").await.contains("response token 0"),
        true
    );
    assert!(!page.exists("align-1").await);
    let mut ended_early = 0;
    for n in 1..=96usize {
        if n > 1 {
            page.type_into("set-max_new_tokens", &n.to_string()).await;
            page.click("apply-settings").await;
            page.click("btn-iterate").await;
            page.wait_text("iteration", STARTUP, |t| t == format!("iteration {n}"))
                .await;
            wait_ready(&page, STARTUP).await;
        }
        for stage in STAGES {
            page.click(&format!("tab-{stage}")).await;
            page.click("btn-all").await;
            assert!(page.exists(&format!("stage-{stage}")).await, "{n}: {stage}");
        }
        // Padding after the end is named as padding in the alignment table.
        let real = page
            .js("return document.querySelectorAll('.stage [data-testid^=\"resp-tok-\"]').length;")
            .await
            .as_u64()
            .unwrap() as usize;
        // The table shows the first four positions and the response's end: its last token,
        // and the first padding when it ended before max_new_tokens.
        let rows = page
            .js(
                "return [...document.querySelectorAll('#alignment tr')].map(r => \
                 [r.dataset.testid, r.textContent]);",
            )
            .await;
        let rows: Vec<(String, String)> = serde_json::from_value(rows).unwrap();
        // The batch's response positions: n, or fewer when every response ended before n.
        let r_len: usize = page
            .attr("alignment", "data-response-len")
            .await
            .parse()
            .unwrap();
        assert!(
            real <= r_len && r_len <= n,
            "{real} real, {r_len} positions, {n} tokens"
        );
        let mut want: Vec<usize> = (0..r_len.min(4)).collect();
        want.extend(
            [real.saturating_sub(1), real]
                .into_iter()
                .filter(|&t| t < r_len && t >= 4),
        );
        want.dedup();
        let shown: Vec<usize> = rows
            .iter()
            .filter_map(|(id, _)| id.strip_prefix("align-")?.parse().ok())
            .collect();
        assert_eq!(shown, want, "{n} tokens, {real} real: {rows:?}");
        for (id, text) in &rows {
            match id.strip_prefix("align-").map(str::parse::<usize>) {
                Some(Ok(t)) => assert_eq!(
                    text.contains("padding"),
                    t >= real,
                    "{n} tokens, t {t}, {real} real: {text}"
                ),
                _ => assert_eq!(id, "align-gap", "{rows:?}"),
            }
        }
        // Between rows t and t', the query positions P + t to P + t' − 2 are not shown.
        let p: usize = page
            .attr("alignment", "data-prompt-len")
            .await
            .parse()
            .unwrap();
        let gaps: Vec<&str> = (rows.iter())
            .filter(|(id, _)| id == "align-gap")
            .map(|(_, text)| text.trim_start_matches(['⋮', ' ', '\n']).trim_end())
            .collect();
        let want_gaps: Vec<String> = (want.windows(2))
            .filter(|w| w[1] > w[0] + 1)
            .map(|w| match (p + w[0], p + w[1] - 2) {
                (from, to) if from == to => format!("position {from} not shown"),
                (from, to) => format!("positions {from} to {to} not shown"),
            })
            .collect();
        assert_eq!(gaps, want_gaps, "{n} tokens, {real} real: {rows:?}");
        if real < r_len && real >= 4 {
            if ended_early == 0 {
                page.scroll_to("alignment").await;
                page.screenshot("mask-alignment-end.png").await;
            }
            // The padding row's words wrap inside the data column: no table runs under the
            // side notes at 1280 x 800.
            let cut = page.hidden_behind_scroll_bars().await;
            assert!(cut.is_empty(), "{n} tokens, {real} real: {cut:?}");
            ended_early += 1;
        }
        no_console_errors(&page, &format!("max_new_tokens={n}")).await;
    }
    // Some response ended past the first four positions, so its padding row was checked.
    assert!(ended_early > 0);
    page.finish().await;
}
