//! The page in a real browser: headless Chromium, WebGPU through SwiftShader when there is no GPU.
//!
//! These need the page built by `trunk build` and Debian's chromium and chromium-driver, so plain
//! `cargo test` skips them; `scripts/test.sh` builds the page and runs them with `--ignored`.

mod common;

use std::time::Duration;

use common::browser::Page;

/// SwiftShader compiles every WebGPU shader on the CPU; the first dispatches take seconds.
const STARTUP: Duration = Duration::from_secs(240);

/// The hand-worked numbers of the self-check (see src/selfcheck.rs): H([1,2,3]) = 0.8323956,
/// H(uniform over 3) = ln 3, and the gradient of logsumexp is softmax.
async fn assert_self_check_numbers(page: &Page) {
    assert_eq!(page.text("entropy-0").await, "0.832396");
    assert_eq!(page.text("entropy-1").await, "1.098612");
    assert_eq!(page.text("grad-0").await, "[0.090031, 0.244728, 0.665241]");
    assert_eq!(page.text("grad-1").await, "[0.333333, 0.333333, 0.333333]");
    assert!(page.text("selfcheck-status").await.starts_with("passed"));
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the page built by trunk and Debian's chromium; run scripts/test.sh"]
async fn page_computes_on_webgpu() {
    let page = Page::open("").await;
    page.wait_state("selfcheck-status", "passed", STARTUP).await;

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
    let page = Page::open("?rollouts=2&max_new_tokens=10&minibatch=2").await;
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
    let file = std::env::temp_dir().join(format!("ppo-lens-page-gae-{}.json", std::process::id()));
    std::fs::write(&file, &input).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ppo-lens"))
        .args(["gae", "--whiten", "--input"])
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
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
    assert!(
        page.text("sb-steps")
            .await
            .contains("A_1 = 0.200 + 0.9 × 0.95 × 1 × (-1.000) = -0.655")
    );
    page.scroll_to("sandbox").await;
    page.screenshot("sandbox-worked-example.png").await;

    // A bad cell is flagged where it is, and nothing is computed from it.
    page.type_into("sb-reward-1", "abc").await;
    assert!(page.attr("sb-reward-1", "class").await.contains("bad"));
    assert!(
        page.text("sb-errors")
            .await
            .contains("reward at t = 1: `abc` is not a number")
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
    let count = |s: &str| s.split(',').filter(|x| !x.is_empty()).count();
    let deadline = std::time::Instant::now() + Duration::from_secs(900);
    loop {
        let values = page.attr("reward-history", "data-values").await;
        if count(&values) >= 21 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "training too slow: {values}"
        );
        assert_ne!(
            page.attr("status", "data-state").await,
            "failed",
            "{}",
            page.text("status").await
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    page.click("btn-train").await;
    page.wait_state("status", "idle", Duration::from_secs(120))
        .await;
    let rewards: Vec<f64> = page
        .attr("reward-history", "data-values")
        .await
        .split(',')
        .map(|x| x.parse().unwrap())
        .collect();
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

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the page built by trunk and Debian's chromium; run scripts/test.sh"]
async fn benchmark_mode_times_every_stage_on_webgpu_and_flex() {
    // A small batch: SwiftShader runs WebGPU on the CPU.
    let page = Page::open("?bench=1&rollouts=2&max_new_tokens=6&minibatch=2").await;
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
    // calls them once instead. The wrappers' names are in the wasm's name section.
    let wasm = std::fs::read_dir(common::browser::dist_dir())
        .expect("dist dir")
        .map(|entry| entry.expect("dist entry").path())
        .find(|path| path.extension().is_some_and(|e| e == "wasm"))
        .expect("a .wasm in dist/");
    let bytes = std::fs::read(&wasm).expect("read the page's wasm");
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
