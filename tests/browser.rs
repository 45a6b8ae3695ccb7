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
