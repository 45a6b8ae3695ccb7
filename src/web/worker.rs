//! The page's compute runs in a dedicated Web Worker; the page's own thread only draws.
//!
//! A forward pass, a backward pass or an AdamW step takes from tens to hundreds of milliseconds,
//! and none of it can be cut into pieces short enough to keep every frame under 50 ms. So the
//! worker owns the device and the model ([`LabServer`]) and the page sends it requests
//! ([`crate::lab::wire`]).
//!
//! The worker runs the same wasm as the page: the page posts its compiled `WebAssembly.Module`
//! to a small module script that imports the same wasm-bindgen glue and instantiates it; `main`
//! then finds itself in a worker and calls [`serve`] instead of mounting the app. Nothing is
//! fetched twice and nothing leaves the page's origin, so the page still works offline.
//!
//! - page side: [`spawn`], then [`start`], [`self_check`], [`bench`], [`reset`], [`iterate`];
//!   each is one request and awaits its reply (the worker answers in order).
//! - worker side: [`serve`] answers requests one at a time.

use std::cell::RefCell;
use std::collections::VecDeque;

use futures_channel::oneshot;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use crate::compute::{BackendKind, Compute};
use crate::lab::server::LabServer;
use crate::lab::settings::LabSettings;
use crate::lab::walkthrough::{AttentionMaps, Replay};
use crate::lab::wire::{self, BenchResults, Iterated, Message, Notice, Progress, Reply, Request};
use crate::selfcheck::SelfCheck;

#[wasm_bindgen]
extern "C" {
    /// The URL of wasm-bindgen's glue module (`ppo-lens-<hash>.js`): the worker imports it.
    #[wasm_bindgen(thread_local_v2, js_namespace = ["import", "meta"], js_name = url)]
    static GLUE_URL: js_sys::JsString;
}

/// True in the worker: its global scope is not a window.
pub fn in_worker() -> bool {
    js_sys::global()
        .dyn_into::<web_sys::DedicatedWorkerGlobalScope>()
        .is_ok()
}

// ---------------------------------------------------------------------------------------------
// The page's side.

struct Client {
    worker: web_sys::Worker,
    /// The worker has said [`Message::Ready`]; before that, requests wait in `outbox`.
    ready: bool,
    outbox: Vec<Vec<u8>>,
    /// One per request sent and not yet answered, oldest first.
    pending: VecDeque<oneshot::Sender<Result<Reply, String>>>,
    /// Why the worker can answer nothing more.
    failed: Option<String>,
    /// When the worker said it was ready, ms after the page's navigation started.
    ready_at_ms: Option<f64>,
}

type ProgressFn = Box<dyn Fn(Progress)>;

thread_local! {
    static CLIENT: RefCell<Option<Client>> = const { RefCell::new(None) };
    static PROGRESS: RefCell<Option<ProgressFn>> = const { RefCell::new(None) };
}

/// What a browser error says: an Error's message, a thrown string, or the value as the console
/// would show it (never `JsValue(…)`).
fn said(err: &JsValue) -> String {
    if let Some(e) = err.dyn_ref::<js_sys::Error>() {
        String::from(e.message())
    } else if let Some(text) = err.as_string() {
        text
    } else {
        String::from(js_sys::JSON::stringify(err).unwrap_or_else(|_| "an unknown error".into()))
    }
}

fn post(worker: &web_sys::Worker, bytes: &[u8]) -> Result<(), String> {
    let array = js_sys::Uint8Array::from(bytes);
    let buffer = array.buffer();
    worker
        .post_message_with_transfer(&buffer, &js_sys::Array::of1(&buffer))
        .map_err(|err| format!("could not send a request to the worker: {}", said(&err)))
}

fn bytes_of(event: &web_sys::MessageEvent) -> Vec<u8> {
    js_sys::Uint8Array::new(&event.data()).to_vec()
}

/// Starts the worker. Requests may be sent at once: they wait until it has loaded.
pub fn spawn() -> Result<(), String> {
    let glue = String::from(GLUE_URL.with(|url| url.clone()));
    let glue = serde_json::to_string(&glue).map_err(|e| e.to_string())?;
    // The worker's whole script: import the glue, take the module, instantiate it (which runs
    // `main`, which calls `serve`). Messages sent before `serve` listens are not lost: the page
    // holds its requests until the worker says it is ready.
    let source = format!(
        "import init from {glue};\n\
         self.onmessage = async (event) => {{\n\
           self.onmessage = null;\n\
           await init({{ module_or_path: event.data }});\n\
         }};\n"
    );
    let options = web_sys::BlobPropertyBag::new();
    options.set_type("text/javascript");
    let blob = web_sys::Blob::new_with_str_sequence_and_options(
        &js_sys::Array::of1(&source.into()),
        &options,
    )
    .map_err(|err| format!("could not make the worker's script: {}", said(&err)))?;
    let url = web_sys::Url::create_object_url_with_blob(&blob)
        .map_err(|err| format!("could not make the worker's script: {}", said(&err)))?;
    let options = web_sys::WorkerOptions::new();
    options.set_type(web_sys::WorkerType::Module);
    let worker = web_sys::Worker::new_with_options(&url, &options).map_err(|err| {
        format!(
            "this browser could not start a module Web Worker: {}",
            said(&err)
        )
    })?;

    let on_message = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(|event| {
        receive(&bytes_of(&event));
    });
    worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
    // An error inside the worker arrives as an ErrorEvent with a message; a worker script that
    // could not be loaded raises a plain Event, which has none.
    let on_error = Closure::<dyn FnMut(web_sys::Event)>::new(|event: web_sys::Event| {
        let message = js_sys::Reflect::get(&event, &"message".into())
            .ok()
            .and_then(|m| m.as_string())
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| "its script could not be loaded".into());
        fail(format!("the worker failed: {message}"));
    });
    worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    on_error.forget();

    worker
        .post_message(&wasm_bindgen::module())
        .map_err(|err| {
            format!(
                "could not hand the wasm module to the worker: {}",
                said(&err)
            )
        })?;
    CLIENT.with(|c| {
        *c.borrow_mut() = Some(Client {
            worker,
            ready: false,
            outbox: Vec::new(),
            pending: VecDeque::new(),
            failed: None,
            ready_at_ms: None,
        })
    });
    Ok(())
}

/// When the worker said it was ready (its module instantiated), ms after navigation started.
pub fn ready_at_ms() -> Option<f64> {
    CLIENT.with(|c| c.borrow().as_ref()?.ready_at_ms)
}

/// Where the worker's progress goes: benchmark mode's lines, the rollout token by token.
pub fn on_progress(show: impl Fn(Progress) + 'static) {
    PROGRESS.with(|p| *p.borrow_mut() = Some(Box::new(show)));
}

/// Every request waiting, and every later one, gets `reason` as its error.
fn fail(reason: String) {
    let waiting = CLIENT.with(|c| {
        let mut c = c.borrow_mut();
        let Some(client) = c.as_mut() else {
            return VecDeque::new();
        };
        client.failed.get_or_insert(reason.clone());
        std::mem::take(&mut client.pending)
    });
    for tx in waiting {
        let _ = tx.send(Err(reason.clone()));
    }
}

fn receive(bytes: &[u8]) {
    let message = match wire::decode::<Message>(bytes, "message") {
        Ok(message) => message,
        Err(err) => return fail(err),
    };
    match message {
        Message::Ready => CLIENT.with(|c| {
            if let Some(client) = c.borrow_mut().as_mut() {
                client.ready = true;
                client.ready_at_ms = Some(super::clock::since_navigation_ms());
                for bytes in std::mem::take(&mut client.outbox) {
                    if let Err(err) = post(&client.worker, &bytes) {
                        client.failed.get_or_insert(err);
                    }
                }
            }
        }),
        Message::Progress(progress) => PROGRESS.with(|p| {
            if let Some(show) = p.borrow().as_ref() {
                show(progress);
            }
        }),
        Message::Reply(reply) => {
            let tx = CLIENT.with(|c| c.borrow_mut().as_mut()?.pending.pop_front());
            match tx {
                Some(tx) => {
                    let _ = tx.send(Ok(reply));
                }
                None => fail("the worker answered a request nobody made".into()),
            }
        }
        Message::Panicked(what) => fail(format!("the worker panicked: {what}")),
    }
}

/// Sends one request and waits for its reply.
async fn call(request: Request) -> Result<Reply, String> {
    let (tx, rx) = oneshot::channel();
    CLIENT.with(|c| {
        let mut c = c.borrow_mut();
        let client = c.as_mut().ok_or("the worker was not started")?;
        if let Some(err) = &client.failed {
            return Err(err.clone());
        }
        let bytes = wire::encode(&request);
        if client.ready {
            post(&client.worker, &bytes)?;
        } else {
            client.outbox.push(bytes);
        }
        client.pending.push_back(tx);
        Ok::<_, String>(())
    })?;
    match rx
        .await
        .map_err(|_| "the worker stopped before answering".to_string())??
    {
        Reply::Refused(err) => Err(err),
        reply => Ok(reply),
    }
}

fn unexpected(reply: Reply) -> String {
    let name = match reply {
        Reply::Started { .. } => "Started",
        Reply::SelfCheck(_) => "SelfCheck",
        Reply::Bench(_) => "Bench",
        Reply::Reset(_) => "Reset",
        Reply::Iteration(_) => "Iteration",
        Reply::Replay(_) => "Replay",
        Reply::Attention(_) => "Attention",
        Reply::Refused(_) => "Refused",
    };
    format!("the worker answered out of order (a {name} reply)")
}

/// Asks the worker to pick its backend (`?backend=` when given): the kind, the header's summary,
/// and what to tell the reader.
pub async fn start(backend: Option<String>) -> Result<(BackendKind, String, Vec<Notice>), String> {
    match call(Request::Start { backend }).await? {
        Reply::Started {
            kind,
            summary,
            notices,
        } => Ok((kind, summary, notices)),
        other => Err(unexpected(other)),
    }
}

pub async fn self_check() -> Result<(SelfCheck, f64), String> {
    match call(Request::SelfCheck).await? {
        Reply::SelfCheck(result) => result,
        other => Err(unexpected(other)),
    }
}

pub async fn bench(settings: LabSettings, iterations: usize) -> Result<Box<BenchResults>, String> {
    match call(Request::Bench {
        settings,
        iterations,
    })
    .await?
    {
        Reply::Bench(result) => result,
        other => Err(unexpected(other)),
    }
}

pub async fn reset(settings: LabSettings) -> Result<(), String> {
    match call(Request::Reset(settings)).await? {
        Reply::Reset(result) => result,
        other => Err(unexpected(other)),
    }
}

pub async fn iterate(
    settings: LabSettings,
    attention_row: Option<usize>,
    pinned: Option<usize>,
) -> Result<Iterated, String> {
    match call(Request::Iterate {
        settings,
        attention_row,
        pinned,
    })
    .await?
    {
        Reply::Iteration(result) => result.map(|b| *b),
        other => Err(unexpected(other)),
    }
}

/// Replays a kept iteration's update with learning rate `lr` and `epochs`.
pub async fn replay(iteration: usize, lr: f64, epochs: usize) -> Result<Replay, String> {
    match call(Request::Replay {
        iteration,
        lr,
        epochs,
    })
    .await?
    {
        Reply::Replay(result) => result.map(|b| *b),
        other => Err(unexpected(other)),
    }
}

/// The attention maps of response `row` of a kept iteration.
pub async fn attention(iteration: usize, row: usize) -> Result<AttentionMaps, String> {
    match call(Request::Attention { iteration, row }).await? {
        Reply::Attention(result) => result.map(|b| *b),
        other => Err(unexpected(other)),
    }
}

// ---------------------------------------------------------------------------------------------
// The worker's side.

fn scope() -> web_sys::DedicatedWorkerGlobalScope {
    js_sys::global().unchecked_into()
}

fn send(message: &Message) {
    let array = js_sys::Uint8Array::from(wire::encode(message).as_slice());
    let buffer = array.buffer();
    // Posting to the page fails only when the page is gone; then nobody is listening.
    let _ = scope().post_message_with_transfer(&buffer, &js_sys::Array::of1(&buffer));
}

thread_local! {
    static QUEUE: RefCell<VecDeque<Request>> = const { RefCell::new(VecDeque::new()) };
    static BUSY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static SERVER: RefCell<Option<LabServer>> = const { RefCell::new(None) };
}

/// The worker's `main`: listens for requests and tells the page it is ready.
pub fn serve() {
    std::panic::set_hook(Box::new(|info| {
        console_error_panic_hook::hook(info);
        send(&Message::Panicked(info.to_string()));
    }));
    let on_message = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(|event| {
        match wire::decode::<Request>(&bytes_of(&event), "request") {
            Ok(request) => {
                QUEUE.with(|q| q.borrow_mut().push_back(request));
                pump();
            }
            // The page and the worker are the same wasm; a bad request is a bug worth reporting.
            Err(err) => send(&Message::Panicked(err)),
        }
    });
    scope().set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
    send(&Message::Ready);
}

/// Answers the queued requests one at a time, in order.
fn pump() {
    if BUSY.with(|b| b.replace(true)) {
        return;
    }
    wasm_bindgen_futures::spawn_local(async {
        while let Some(request) = QUEUE.with(|q| q.borrow_mut().pop_front()) {
            let reply = answer(request).await;
            send(&Message::Reply(reply));
        }
        BUSY.with(|b| b.set(false));
    });
}

async fn answer(request: Request) -> Reply {
    // Taken out while it works, so no RefCell borrow is held across an await.
    let server = SERVER.with(|s| s.borrow_mut().take());
    let (server, reply) = match (server, request) {
        (None, Request::Start { backend }) => {
            let (compute, notices) = choose_backend(backend.as_deref()).await;
            let reply = Reply::Started {
                kind: compute.kind,
                summary: compute.summary(),
                notices,
            };
            (Some(LabServer::new(compute)), reply)
        }
        (None, _) => (
            None,
            Reply::Refused("the worker has no backend yet: the page must send Start first".into()),
        ),
        (Some(mut server), request) => {
            let reply = server
                .handle(request, &|progress| send(&Message::Progress(progress)))
                .await;
            (Some(server), reply)
        }
    };
    SERVER.with(|s| *s.borrow_mut() = server);
    reply
}

/// WebGPU unless `asked` says flex; flex with a banner when WebGPU cannot be had, or when the
/// browser's adapter is a software one (a GPU emulated on the CPU, slower than flex) and the
/// URL did not ask for WebGPU.
async fn choose_backend(asked: Option<&str>) -> (Compute, Vec<Notice>) {
    let mut notices = Vec::new();
    let mut webgpu_asked = false;
    if let Some(asked) = asked {
        match BackendKind::parse(asked) {
            Ok(BackendKind::Flex) => {
                notices.push(Notice::Info(
                    "Running on flex, burn's CPU backend, because the URL asks for it \
                     (?backend=flex). Remove it to use WebGPU."
                        .into(),
                ));
                return (Compute::flex(), notices);
            }
            Ok(BackendKind::WebGpu) => webgpu_asked = true,
            Ok(other) => notices.push(Notice::Info(format!(
                "?backend={} is not available in a browser; trying WebGPU.",
                other.key()
            ))),
            Err(err) => notices.push(Notice::Info(format!("Ignoring ?backend: {err}."))),
        }
    }

    let reason = if gpu().is_none() {
        "this browser does not offer WebGPU (navigator.gpu is missing)".to_string()
    } else {
        let adapter = browser_adapter().await;
        match adapter {
            Some(BrowserAdapter {
                name,
                software: true,
            }) if !webgpu_asked => {
                notices.push(Notice::Fallback(format!(
                    "This browser's WebGPU adapter ({}) is a software one: it emulates a GPU on \
                     the CPU, far slower than flex, burn's own CPU backend. ppo-lens runs the \
                     same computation on flex instead. Add ?backend=webgpu to the URL to run \
                     on the emulated GPU anyway.",
                    name.as_deref().unwrap_or("unnamed")
                )));
                return (Compute::flex(), notices);
            }
            _ => match Compute::wgpu().await {
                Ok(mut compute) => {
                    // wgpu's adapter name is empty in browsers; GPUAdapter.info has what they
                    // share.
                    if compute.adapter.is_none() {
                        compute.adapter = adapter.as_ref().and_then(|a| a.name.clone());
                    }
                    if adapter.is_some_and(|a| a.software) {
                        notices.push(Notice::Info(format!(
                            "Running on WebGPU because the URL asks for it (?backend=webgpu): \
                             its adapter ({}) emulates a GPU on the CPU, so every step is slow. \
                             Remove it to run on flex.",
                            compute.adapter.as_deref().unwrap_or("unnamed")
                        )));
                    }
                    return (compute, notices);
                }
                Err(err) => err,
            },
        }
    };
    notices.push(Notice::Fallback(format!(
        "WebGPU is unavailable: {reason}. ppo-lens runs the same computation on flex, burn's \
         CPU backend, instead: only slower."
    )));
    (Compute::flex(), notices)
}

/// `navigator.gpu` of this global scope (a window or a worker), when the browser has one.
fn gpu() -> Option<JsValue> {
    let navigator = js_sys::Reflect::get(&js_sys::global(), &"navigator".into()).ok()?;
    js_sys::Reflect::get(&navigator, &"gpu".into())
        .ok()
        .filter(|gpu| !gpu.is_undefined() && !gpu.is_null())
}

/// The browser's WebGPU adapter as it describes itself (`GPUAdapter.info`).
struct BrowserAdapter {
    /// Its description when given, else vendor and architecture (`google swiftshader`).
    name: Option<String>,
    /// The browser says it is a fallback adapter (`isFallbackAdapter`), or its vendor,
    /// architecture or description names a software one ([`crate::compute::is_software_adapter`]).
    software: bool,
}

/// None when the browser gives no adapter or says nothing about it.
async fn browser_adapter() -> Option<BrowserAdapter> {
    use js_sys::{Function, Reflect};

    let gpu = gpu()?;
    let request: Function = Reflect::get(&gpu, &"requestAdapter".into())
        .ok()?
        .dyn_into()
        .ok()?;
    let promise: js_sys::Promise = request.call0(&gpu).ok()?.dyn_into().ok()?;
    let adapter = wasm_bindgen_futures::JsFuture::from(promise).await.ok()?;
    if adapter.is_null() || adapter.is_undefined() {
        return None;
    }
    let info = Reflect::get(&adapter, &"info".into()).ok()?;
    let field = |name: &str| {
        Reflect::get(&info, &name.into())
            .ok()
            .and_then(|v| v.as_string())
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    // `GPUAdapterInfo.isFallbackAdapter`, or the older `GPUAdapter.isFallbackAdapter`.
    let flagged = [&info, &adapter].iter().any(|object| {
        Reflect::get(object, &"isFallbackAdapter".into())
            .ok()
            .and_then(|v| v.as_bool())
            .unwrap_or(false)
    });
    let all: Vec<String> = ["vendor", "architecture", "device", "description"]
        .iter()
        .filter_map(|n| field(n))
        .collect();
    let name = field("description").or_else(|| {
        let parts: Vec<String> = ["vendor", "architecture"]
            .iter()
            .filter_map(|n| field(n))
            .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    });
    Some(BrowserAdapter {
        name,
        software: flagged || crate::compute::is_software_adapter(&all.join(" ")),
    })
}
