//! Drives the built page in headless Chromium through Debian's chromedriver.
//!
//! `Page::open` serves `dist/` (what `trunk build` wrote) on a free loopback port, starts
//! chromedriver and a Chromium with WebGPU on (SwiftShader when there is no GPU) and a fresh
//! profile, and opens the page. Every console message is collected; `finish` fails the test
//! on any error among them.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use super::temp::TempDir;

/// The flags every browser test runs Chromium with.
pub const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--enable-unsafe-webgpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--window-size=1280,900",
    // Offline but for the page's own server: every other host fails to resolve, so anything
    // the page fetched from elsewhere would break it in every test (and `Page::requests` lists
    // what it asked for).
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
];

/// Where `trunk build` put the page: `$PPO_LENS_DIST` or `dist/` in the crate.
pub fn dist_dir() -> PathBuf {
    std::env::var_os("PPO_LENS_DIST")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("dist"))
}

/// Screenshots go to `<target>/screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target tmp dir has a parent")
        .join("screenshots");
    std::fs::create_dir_all(&dir).expect("create screenshot dir");
    dir
}

pub struct Page {
    pub client: Client,
    pub server: SocketAddr,
    chromedriver: Child,
    downloads: PathBuf,
    _profile: TempDir,
}

impl Page {
    /// Opens `/<query>` of the built page, with Chromium's flags less `left_out`.
    pub async fn open_with(query: &str, left_out: &[&str]) -> Page {
        let dist = dist_dir();
        assert!(
            dist.join("index.html").is_file(),
            "{} has no index.html: build the page first (scripts/test.sh runs `trunk build`)",
            dist.display()
        );
        let server = serve_dir(dist);

        let port = free_port();
        let chromedriver_bin =
            std::env::var("PPO_LENS_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let chromedriver = Command::new(&chromedriver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| {
                panic!("could not start `{chromedriver_bin}` ({err}); install chromium-driver")
            });
        wait_for_port(port, Duration::from_secs(20));

        let profile = TempDir::new("ppo-lens-chromium");
        std::fs::create_dir_all(&profile).expect("create the browser's profile dir");
        let downloads = profile.join("downloads");
        let mut args: Vec<String> = CHROMIUM_FLAGS
            .iter()
            .filter(|flag| !left_out.contains(flag))
            .map(|s| s.to_string())
            .collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let binary =
            std::env::var("PPO_LENS_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": binary,
                "args": args,
                // Saved handouts land in the profile, where `Page::downloaded` reads them. A test
                // saves a dozen from one tab: Chromium's limit on a page's repeated downloads
                // (which asks, and headless cannot answer) is lifted, as a teacher who saves
                // every chart would allow it.
                "prefs": {
                    "download.default_directory": downloads.display().to_string(),
                    "download.prompt_for_download": false,
                    "profile.default_content_setting_values.automatic_downloads": 1,
                },
            },
            // The browser log for console errors; the performance log for every request.
            "goog:loggingPrefs": { "browser": "ALL", "performance": "ALL" },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("chromedriver session");

        client
            .goto(&format!("http://{server}/{query}"))
            .await
            .expect("open page");
        Page {
            client,
            server,
            chromedriver,
            downloads,
            _profile: profile,
        }
    }

    pub async fn open(query: &str) -> Page {
        Self::open_with(query, &[]).await
    }

    /// Clicks "stop training" and waits until the page has taken the stop: the button reads
    /// "stopping…" (training ends after the iteration under way) or training has already
    /// stopped. A click the page has not taken after 10 s (once in many runs the training went on
    /// for minutes after the click) is clicked again, and the test fails if that one is not taken
    /// either.
    pub async fn stop_training(&self) {
        for attempt in 1..=2 {
            self.click("btn-train").await;
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let label = self.text("btn-train").await;
                if label.starts_with("stopping") || label.starts_with("train") {
                    return;
                }
                if Instant::now() >= deadline {
                    eprintln!("stop click {attempt} not taken: the button reads `{label}`");
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        panic!("training did not take either stop click");
    }

    /// Waits until the element with `data-testid=testid` exists and its `data-state` is `state`.
    /// Fails early with the element's text if it reaches `failed` instead. `timeout` is a hang
    /// guard ([`super::hang_guard`]).
    pub async fn wait_state(&self, testid: &str, state: &str, timeout: Duration) {
        let deadline = Instant::now() + super::hang_guard(timeout);
        let mut last = String::from("(element not found)");
        while Instant::now() < deadline {
            if let Ok(el) = self.client.find(Locator::Css(&testid_css(testid))).await {
                let got = el
                    .attr("data-state")
                    .await
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                last = format!("{got}: {}", el.text().await.unwrap_or_default());
                if got == state {
                    return;
                }
                if got == "failed" && state != "failed" {
                    self.dump_console().await;
                    panic!("{testid} failed: {last}");
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.dump_console().await;
        panic!("{testid} did not reach `{state}` in {timeout:?}; last seen {last}");
    }

    /// Unfolds the page's Diagnostics section (timings, the backend self-check), so that
    /// their text is rendered and can be read.
    pub async fn open_diagnostics(&self) {
        self.js("const d = document.querySelector('[data-testid=diagnostics]'); if (d) { d.open = true; } return null;")
            .await;
    }

    /// The visible text of the element with `data-testid=testid`.
    pub async fn text(&self, testid: &str) -> String {
        self.client
            .find(Locator::Css(&testid_css(testid)))
            .await
            .unwrap_or_else(|err| panic!("no element with data-testid={testid}: {err}"))
            .text()
            .await
            .expect("element text")
    }

    pub async fn exists(&self, testid: &str) -> bool {
        !self
            .client
            .find_all(Locator::Css(&testid_css(testid)))
            .await
            .expect("find_all")
            .is_empty()
    }

    /// The attribute `name` of the element with `data-testid=testid`.
    pub async fn attr(&self, testid: &str, name: &str) -> String {
        self.client
            .find(Locator::Css(&testid_css(testid)))
            .await
            .unwrap_or_else(|err| panic!("no element with data-testid={testid}: {err}"))
            .attr(name)
            .await
            .expect("attribute")
            .unwrap_or_else(|| panic!("{testid} has no attribute {name}"))
    }

    /// The exact number a cell carries in `data-v`.
    pub async fn number(&self, testid: &str) -> f64 {
        let v = self.attr(testid, "data-v").await;
        v.parse()
            .unwrap_or_else(|_| panic!("{testid}: data-v `{v}` is not a number"))
    }

    /// The exact values (`data-v`) of `<prefix>-0`, `<prefix>-1`, ... up to the first missing.
    pub async fn column(&self, prefix: &str) -> Vec<f64> {
        let script = format!(
            "const out = []; for (let t = 0; ; t++) {{
               const el = document.querySelector('[data-testid=\"{prefix}-' + t + '\"]');
               if (!el) return out; out.push(parseFloat(el.dataset.v)); }}"
        );
        self.js(&script)
            .await
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect()
    }

    /// The reward mean of every iteration of this run, exact, from the charts' data.
    pub async fn reward_history(&self) -> Vec<f64> {
        self.attr("reward-history", "data-values")
            .await
            .split(',')
            .filter(|v| !v.is_empty())
            .map(|v| {
                v.parse()
                    .unwrap_or_else(|_| panic!("reward-history: `{v}` is not a number"))
            })
            .collect()
    }

    /// Runs `script` as an async function: it ends by calling `arguments[arguments.length - 1]`
    /// with its result.
    pub async fn js_async(&self, script: &str) -> Value {
        self.client
            .execute_async(script, vec![])
            .await
            .unwrap_or_else(|err| panic!("script failed: {err}\n{script}"))
    }

    pub async fn click(&self, testid: &str) {
        // To the middle of the window first: the sticky controls bar would take a click at the
        // top edge. Content above the element can still change height between the scroll and the
        // click (the live rollout folds away when an iteration is done), leaving it under the
        // bar: then scroll again, after a frame, and click again.
        let script = format!(
            "const el = document.querySelector('{}'); if (el) el.scrollIntoView({{block: 'center'}});",
            testid_css(testid)
        );
        for attempt in 0..3 {
            self.client.execute(&script, vec![]).await.expect("scroll");
            let result = self
                .client
                .find(Locator::Css(&testid_css(testid)))
                .await
                .unwrap_or_else(|err| panic!("no element with data-testid={testid}: {err}"))
                .click()
                .await;
            match result {
                Ok(()) => return,
                Err(err) if attempt < 2 && err.to_string().contains("click intercepted") => {
                    self.settle().await;
                }
                Err(err) => panic!("cannot click {testid}: {err}"),
            }
        }
    }

    /// Replaces the text of the input `testid` with `text`, as typing would.
    pub async fn type_into(&self, testid: &str, text: &str) {
        let input = self
            .client
            .find(Locator::Css(&testid_css(testid)))
            .await
            .unwrap_or_else(|err| panic!("no input with data-testid={testid}: {err}"));
        input.clear().await.expect("clear input");
        input.send_keys(text).await.expect("type");
    }

    /// Presses a key on the page (not in an input): `" "`, `"p"`, or a WebDriver key code
    /// such as `"\u{E014}"` (arrow right).
    pub async fn press(&self, key: &str) {
        let body = self.client.find(Locator::Css("body")).await.expect("body");
        body.send_keys(key).await.expect("send key");
    }

    /// Presses a key with the element `testid` focused (a table row, a cell).
    pub async fn press_on(&self, testid: &str, key: &str) {
        self.client
            .find(Locator::Css(&testid_css(testid)))
            .await
            .unwrap_or_else(|err| panic!("no element with data-testid={testid}: {err}"))
            .send_keys(key)
            .await
            .expect("send key");
    }

    /// Waits until `check` holds for the text of `testid`; `timeout` is a hang guard
    /// ([`super::hang_guard`]).
    pub async fn wait_text(
        &self,
        testid: &str,
        timeout: Duration,
        check: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + super::hang_guard(timeout);
        let mut last = String::from("(element not found)");
        while Instant::now() < deadline {
            if let Ok(el) = self.client.find(Locator::Css(&testid_css(testid))).await {
                last = el.text().await.unwrap_or_default();
                if check(&last) {
                    return last;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.dump_console().await;
        panic!("{testid} did not reach the expected text in {timeout:?}; last seen `{last}`");
    }

    /// The full text of `testid`, hidden or not (`textContent`).
    pub async fn text_content(&self, testid: &str) -> String {
        let script = format!(
            "const el = document.querySelector('{}'); return el ? el.textContent : null;",
            testid_css(testid).replace('\'', "\\'")
        );
        match self
            .client
            .execute(&script, vec![])
            .await
            .expect("run script")
        {
            Value::String(text) => text,
            other => panic!("no element with data-testid={testid} ({other})"),
        }
    }

    /// Scrolls `testid` to the top of the window (before a screenshot).
    pub async fn scroll_to(&self, testid: &str) {
        let script = format!(
            "const el = document.querySelector('{}'); if (el) el.scrollIntoView(); window.scrollBy(0, -70);",
            testid_css(testid)
        );
        self.client.execute(&script, vec![]).await.expect("scroll");
    }

    /// Runs `script` (a function body: `return` gives the result) in the page.
    pub async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|err| panic!("script failed: {err}\n{script}"))
    }

    /// Whether the element `testid` has the class `class`.
    pub async fn has_class(&self, testid: &str, class: &str) -> bool {
        let script = format!(
            "const el = document.querySelector('{}'); return el ? el.classList.contains('{class}') : null;",
            testid_css(testid).replace('\'', "\\'")
        );
        match self.js(&script).await {
            Value::Bool(b) => b,
            other => panic!("no element with data-testid={testid} ({other})"),
        }
    }

    /// Sets the viewport to `width` x `height` CSS pixels: the window is resized to that plus
    /// the browser's own frame (outer less inner size), read after the last resize has reached
    /// the page, until the page's innerWidth and innerHeight are those.
    pub async fn set_viewport(&self, width: u32, height: u32) {
        let sizes = || async {
            self.settle().await;
            let v = self
                .js("return [window.innerWidth, window.innerHeight, window.outerWidth, window.outerHeight];")
                .await;
            let at = |i: usize| v[i].as_u64().unwrap() as u32;
            (at(0), at(1), at(2), at(3))
        };
        for _ in 0..5 {
            let (iw, ih, ow, oh) = sizes().await;
            if (iw, ih) == (width, height) {
                return;
            }
            self.client
                .set_window_size(
                    width + ow.saturating_sub(iw),
                    height + oh.saturating_sub(ih),
                )
                .await
                .expect("resize window");
        }
        let (iw, ih, ..) = sizes().await;
        assert!(
            (iw, ih) == (width, height),
            "could not set the viewport to {width}x{height}: it is {iw}x{ih}"
        );
    }

    /// What the stage on show hides behind a scroll bar: each table of numbers that does not
    /// show all its columns (its `.table-scroll` box scrolls sideways), each formula cut to its
    /// box, the side column when it scrolls sideways (with what sticks out), and each table of
    /// the data column that runs under the side column, one line each with the sizes. Empty
    /// when everything fits.
    pub async fn hidden_behind_scroll_bars(&self) -> Vec<String> {
        let found = self
            .js("const shown = e => e.offsetParent !== null;\
                 const cut = e => e.scrollWidth > e.clientWidth + 1 || e.scrollHeight > e.clientHeight + 1;\
                 const tables = [...document.querySelectorAll('.stage .table-scroll')].filter(shown)\
                   .filter(cut).map(e => 'table ' + (e.querySelector('table').dataset.testid || '?')\
                     + ' ' + e.scrollWidth + ' > ' + e.clientWidth + ' px');\
                 const maths = [...document.querySelectorAll('.stage .math')].filter(shown)\
                   .filter(cut).map(e => 'formula \"' + e.textContent.slice(0, 40) + '\" '\
                     + e.scrollWidth + 'x' + e.scrollHeight + ' > ' + e.clientWidth + 'x' + e.clientHeight + ' px');\
                 const sides = [...document.querySelectorAll('.stage .stage-side')].filter(shown)\
                   .filter(e => e.scrollWidth > e.clientWidth + 1).map(e => {\
                     const edge = e.getBoundingClientRect().left + e.clientWidth;\
                     const wide = [...e.querySelectorAll('*')].filter(c => c.getBoundingClientRect().right > edge + 1)\
                       .map(c => c.tagName.toLowerCase() + (c.dataset.testid ? '[' + c.dataset.testid + ']' : '.' + c.className));\
                     return 'side column ' + e.scrollWidth + ' > ' + e.clientWidth + ' px: ' + wide.slice(0, 4).join(', ');\
                   });\
                 const side = [...document.querySelectorAll('.stage .stage-side')].find(shown);\
                 const s = side ? side.getBoundingClientRect() : null;\
                 const under = !s ? [] : [...document.querySelectorAll('.stage table')].filter(shown)\
                   .filter(t => !t.closest('.stage-side')).filter(t => { const r = t.getBoundingClientRect();\
                     return r.left < s.left && r.right > s.left + 1 && r.top < s.bottom && r.bottom > s.top; })\
                   .map(t => 'table ' + (t.dataset.testid || t.className) + ' runs under the side column: '\
                     + t.getBoundingClientRect().right + ' > ' + s.left + ' px');\
                 const stages = [...document.querySelectorAll('.stage')].filter(shown).length;\
                 const mathml = [...document.querySelectorAll('.stage math')]\
                   .filter(m => m.getClientRects().length > 0 && !m.closest('.math')).length;\
                 return [tables.concat(maths, sides, under), stages, mathml];")
            .await;
        // The check reads the page by class: a renamed class would make it pass on nothing.
        assert!(
            found[1].as_u64() > Some(0),
            "hidden_behind_scroll_bars: no `.stage` on show, so nothing was checked"
        );
        assert_eq!(
            found[2].as_u64(),
            Some(0),
            "hidden_behind_scroll_bars: formulas outside a `.math` box, unchecked"
        );
        found[0]
            .as_array()
            .expect("a list")
            .iter()
            .map(|v| v.as_str().expect("a line").to_string())
            .collect()
    }

    /// The page's current address.
    pub async fn url(&self) -> String {
        self.client
            .current_url()
            .await
            .expect("current url")
            .to_string()
    }

    /// Scrolls `testid` to just below the sticky bar (and the stage's head pinned under it),
    /// for a screenshot.
    pub async fn show(&self, testid: &str) {
        self.js(&format!(
            "const el = document.querySelector('[data-testid={testid}]'); const head = document.querySelector('.stage .stage-head'); \
             const bar = document.querySelector('.sticky-bar').getBoundingClientRect().height + (head ? head.getBoundingClientRect().height : 0);\
             window.scrollTo(0, window.scrollY + el.getBoundingClientRect().top - bar - 8); return null;"
        ))
        .await;
        self.settle().await;
    }

    /// Waits until the page has done what the last action set off: the tasks already queued
    /// (Leptos runs its effects in them), then two animation frames: the page scrolls the
    /// current step into view and measures its sticky bar in the first, and the second comes
    /// after the layout of what that changed. A wait on the page's own events, not on a clock.
    pub async fn settle(&self) {
        self.js_async(
            "const done = arguments[arguments.length - 1]; \
             setTimeout(() => requestAnimationFrame(() => requestAnimationFrame(() => done(null))), 0);",
        )
        .await;
    }

    /// Saves a PNG screenshot under `<target>/screenshots/` and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        let path = screenshot_dir().join(name);
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// Every console message since the last call, as (level, message).
    pub async fn console(&self) -> Vec<(String, String)> {
        let logs = self
            .chrome("se/log", r#"{"type":"browser"}"#.into())
            .await
            .expect("read browser log");
        logs.as_array()
            .into_iter()
            .flatten()
            .map(|entry| {
                (
                    entry["level"].as_str().unwrap_or("").to_string(),
                    entry["message"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    /// The URL of every request the page and its workers sent since the last call (from
    /// chromedriver's performance log).
    pub async fn requests(&self) -> Vec<String> {
        let logs = self
            .chrome("se/log", r#"{"type":"performance"}"#.into())
            .await
            .expect("read performance log");
        logs.as_array()
            .into_iter()
            .flatten()
            .filter_map(|entry| {
                let event: Value = serde_json::from_str(entry["message"].as_str()?).ok()?;
                let event = &event["message"];
                (event["method"] == "Network.requestWillBeSent")
                    .then(|| event["params"]["request"]["url"].as_str().map(String::from))
                    .flatten()
            })
            .collect()
    }

    /// The bytes of a file the page saved (a handout), once the download has finished. `timeout`
    /// is a hang guard.
    pub async fn downloaded(&self, name: &str, timeout: Duration) -> Vec<u8> {
        let path = self.downloads.join(name);
        let partial = self.downloads.join(format!("{name}.crdownload"));
        let deadline = Instant::now() + super::hang_guard(timeout);
        loop {
            if path.is_file() && !partial.exists() {
                return std::fs::read(&path).expect("read the saved file");
            }
            assert!(
                Instant::now() < deadline,
                "{name} was not saved to {} within {timeout:?}",
                self.downloads.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs a Chrome DevTools Protocol command on the page (chromedriver's `goog/cdp/execute`)
    /// and returns its result: the profiler and tracing, which WebDriver has no command for.
    pub async fn cdp(&self, cmd: &str, params: Value) -> Value {
        let body = json!({ "cmd": cmd, "params": params }).to_string();
        self.chrome("goog/cdp/execute", body)
            .await
            .unwrap_or_else(|err| panic!("CDP {cmd}: {err}"))
    }

    async fn chrome(
        &self,
        path: &'static str,
        body: String,
    ) -> Result<Value, fantoccini::error::CmdError> {
        let session = self
            .client
            .session_id()
            .await
            .expect("session id")
            .expect("a session");
        self.client
            .issue_cmd(ChromeCommand {
                session,
                path,
                body,
            })
            .await
    }

    async fn dump_console(&self) {
        for (level, message) in self.console().await {
            eprintln!("console {level}: {message}");
        }
    }

    /// Fails on any console error, then closes the browser.
    pub async fn finish(mut self) {
        let errors: Vec<_> = self
            .console()
            .await
            .into_iter()
            .filter(|(level, _)| level == "SEVERE")
            .collect();
        self.client.clone().close().await.expect("close browser");
        let _ = self.chromedriver.kill();
        let _ = self.chromedriver.wait();
        assert!(errors.is_empty(), "console errors: {errors:#?}");
    }
}

/// The CSS selector of the element with `data-testid=testid`.
pub fn testid_css(testid: &str) -> String {
    format!("[data-testid=\"{testid}\"]")
}

/// A POST to one of chromedriver's own endpoints under the session, which W3C WebDriver (and
/// so fantoccini) has no method for: the browser's console log, the DevTools Protocol.
#[derive(Debug)]
struct ChromeCommand {
    session: String,
    /// The endpoint under `session/<id>/`.
    path: &'static str,
    body: String,
}

impl WebDriverCompatibleCommand for ChromeCommand {
    fn endpoint(
        &self,
        base_url: &url::Url,
        _session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!("session/{}/{}", self.session, self.path))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(self.body.clone()))
    }
}

/// Serves `root` over HTTP on a free loopback port, one thread per connection, forever.
fn serve_dir(root: PathBuf) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let root = root.clone();
            std::thread::spawn(move || {
                let _ = serve_one(stream, &root);
            });
        }
    });
    addr
}

fn serve_one(mut stream: TcpStream, root: &Path) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Drain the headers.
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let path = path.split(['?', '#']).next().unwrap_or("/");
    let relative = if path == "/" {
        "index.html"
    } else {
        path.trim_start_matches('/')
    };
    let file = root.join(relative);
    let inside = !relative.split('/').any(|part| part == "..");
    match std::fs::read(&file) {
        Ok(body) if inside => {
            let header = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                content_type(&file),
                body.len()
            );
            stream.write_all(header.as_bytes())?;
            stream.write_all(&body)
        }
        _ => stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    }
}

fn content_type(file: &Path) -> &'static str {
    match file.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript",
        Some("wasm") => "application/wasm",
        Some("css") => "text/css",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn wait_for_port(port: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("chromedriver did not listen on port {port} within {timeout:?}");
}
