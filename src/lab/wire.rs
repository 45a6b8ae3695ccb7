//! The messages between the page and the Web Worker that computes for it.
//!
//! The page's thread only draws: the model, the optimizer and every PPO iteration live in a
//! dedicated worker (`web::worker`), so a forward pass or an AdamW step never blocks a frame.
//! The two sides share no memory; they exchange these messages, encoded with `postcard`
//! (compact, and exact for every `f32`, NaN and infinities included, which JSON is not).
//!
//! The worker answers requests in the order they came, one [`Reply`] each; while it works on one
//! it may send [`Message::Progress`]: lines, and the rollout token by token. Everything here is plain data, so native tests can
//! check that a real iteration survives the trip unchanged.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::compute::BackendKind;
use crate::lab::settings::LabSettings;
use crate::lab::walkthrough::{AttentionMaps, Replay, StageTimes, Walkthrough};
use crate::selfcheck::SelfCheck;

/// The page's benchmark mode on one backend: milliseconds per stage of the page's own
/// iterations.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StageBench {
    /// The first iteration: on WebGPU it includes compiling every shader.
    pub first: StageTimes,
    /// The median of each stage over the iterations after the first.
    pub median: StageTimes,
    /// How many iterations the median is over.
    pub iterations: usize,
}

/// What the page asks of the worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// Pick the backend: WebGPU unless `backend` (the URL's `?backend=`) says otherwise, flex
    /// when WebGPU cannot be had. Answered by [`Reply::Started`].
    Start { backend: Option<String> },
    /// The backend self-check. Answered by [`Reply::SelfCheck`].
    SelfCheck,
    /// Benchmark mode: `iterations` timed iterations of `settings` on WebGPU (when the worker
    /// runs on it) and on flex. Answered by [`Reply::Bench`], with progress lines before.
    Bench {
        settings: LabSettings,
        iterations: usize,
    },
    /// A fresh run: the pretrained model, a new optimizer, the problems drawn with the seed.
    Reset(LabSettings),
    /// The next PPO iteration with these settings, keeping the attention maps of one row;
    /// `pinned` (a problem's index) is asked in row 0.
    Iterate {
        settings: LabSettings,
        attention_row: Option<usize>,
        pinned: Option<usize>,
    },
    /// A kept iteration's update run again on its batch from its start, with learning rate
    /// `lr` and `epochs`. Answered by [`Reply::Replay`]; the trained model is not changed.
    Replay {
        iteration: usize,
        lr: f64,
        epochs: usize,
    },
    /// The attention maps of one response of a kept iteration. Answered by [`Reply::Attention`].
    Attention { iteration: usize, row: usize },
}

/// Something the page must tell the reader about the backend.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Notice {
    /// WebGPU was wanted and could not be had: the page runs, more slowly, on the CPU.
    Fallback(String),
    /// The reader asked for this (for example `?backend=flex`), or a URL value was refused.
    Info(String),
}

/// Benchmark mode's result: each backend's stage times; WebGPU is None without it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchResults {
    pub webgpu: Option<StageBench>,
    pub webgpu_adapter: String,
    pub flex: StageBench,
}

/// One iteration, as the page shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Iterated {
    /// Iterations done so far in this run, this one included.
    pub iteration: usize,
    /// Which problem each row asked (indices into the lab's problems).
    pub problems: Vec<usize>,
    pub walk: Walkthrough,
    /// With the `exercises` feature: whose code each exercise ran (`exercises::ran_summary`).
    pub exercises_ran: String,
}

/// The worker's answer to one [`Request`], in the same order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Reply {
    Started {
        kind: BackendKind,
        /// `WebGPU · <adapter>`, or the backend's label.
        summary: String,
        notices: Vec<Notice>,
    },
    /// The check and how long it took in ms, or why it could not run.
    SelfCheck(Result<(SelfCheck, f64), String>),
    Bench(Result<Box<BenchResults>, String>),
    Reset(Result<(), String>),
    Iteration(Result<Box<Iterated>, String>),
    Replay(Result<Box<Replay>, String>),
    Attention(Result<Box<AttentionMaps>, String>),
    /// The request came before the worker could answer it (anything before `Start`).
    Refused(String),
}

/// What the worker says about the request under way, before its reply.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Progress {
    /// A line for the reader (benchmark mode shows it).
    Line(String),
    /// An iteration's rollout, after each sampled token.
    Sampling(Sampling),
}

/// The rollout under way, as the page shows it while the tokens are drawn.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    /// Tokens sampled so far in every row: 1 after the first step.
    pub step: usize,
    /// At most this many (`max_new_tokens`).
    pub of: usize,
    /// The first response so far, decoded as the reward will read it.
    pub text: String,
    /// The first response has ended (its EOS was sampled); the others may go on.
    pub finished: bool,
}

/// Everything the worker sends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// The worker has loaded and listens: requests may be sent.
    Ready,
    Progress(Progress),
    Reply(Reply),
    /// The worker panicked; it answers nothing more.
    Panicked(String),
}

/// Encodes a message for `postMessage`.
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    // Every type here is plain data with no map keys or floats postcard could refuse.
    postcard::to_allocvec(message).expect("postcard encodes plain data")
}

/// Decodes a message, naming what it expected when the bytes are not one.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, String> {
    postcard::from_bytes(bytes).map_err(|err| {
        format!(
            "a {what} from the worker could not be read ({} bytes): {err}",
            bytes.len()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selfcheck::SelfCheckRow;

    #[test]
    fn requests_and_replies_round_trip() {
        let settings = LabSettings {
            gamma: 0.9,
            ..LabSettings::default()
        };
        let requests = [
            Request::Start {
                backend: Some("flex".into()),
            },
            Request::SelfCheck,
            Request::Bench {
                settings: settings.clone(),
                iterations: 3,
            },
            Request::Reset(settings.clone()),
            Request::Iterate {
                settings,
                attention_row: Some(2),
                pinned: Some(7),
            },
            Request::Replay {
                iteration: 3,
                lr: 3e-4,
                epochs: 8,
            },
            Request::Attention {
                iteration: 3,
                row: 1,
            },
        ];
        for request in requests {
            assert_eq!(
                decode::<Request>(&encode(&request), "request").unwrap(),
                request
            );
        }
        let messages = [
            Message::Ready,
            Message::Progress(Progress::Line("flex: 1 + 2 iterations…".into())),
            Message::Progress(Progress::Sampling(Sampling {
                step: 3,
                of: 48,
                text: "Max has".into(),
                finished: false,
            })),
            Message::Reply(Reply::Started {
                kind: BackendKind::WebGpu,
                summary: "WebGPU · google swiftshader".into(),
                notices: vec![Notice::Info("asked".into()), Notice::Fallback("no".into())],
            }),
            Message::Reply(Reply::Reset(Err("tiny/config.json is broken".into()))),
            Message::Panicked("index out of bounds".into()),
        ];
        for message in messages {
            assert_eq!(
                decode::<Message>(&encode(&message), "message").unwrap(),
                message
            );
        }
    }

    #[test]
    fn non_finite_numbers_survive_exactly() {
        // A student's exercise can produce NaN or infinities; the page must show them as they are.
        let check = SelfCheck {
            rows: vec![SelfCheckRow {
                logits: [f32::NAN, f32::INFINITY, -0.0],
                entropy: f32::NAN,
                expected_entropy: f64::INFINITY,
                grad_logsumexp: [f32::NEG_INFINITY, 1e-38, f32::MAX],
                expected_softmax: [0.1, 0.2, 1e-300],
            }],
            max_abs_error: f64::NAN,
        };
        let reply = Reply::SelfCheck(Ok((check, 12.5)));
        let back: Reply = decode(&encode(&reply), "reply").unwrap();
        let Reply::SelfCheck(Ok((back, ms))) = back else {
            panic!("wrong variant: {back:?}");
        };
        assert_eq!(ms, 12.5);
        assert!(back.max_abs_error.is_nan());
        let row = &back.rows[0];
        assert!(row.logits[0].is_nan() && row.entropy.is_nan());
        assert_eq!(row.logits[1], f32::INFINITY);
        assert!(row.logits[2] == 0.0 && row.logits[2].is_sign_negative());
        assert_eq!(row.expected_entropy, f64::INFINITY);
        assert_eq!(row.grad_logsumexp, [f32::NEG_INFINITY, 1e-38, f32::MAX]);
        assert_eq!(row.expected_softmax[2], 1e-300);
    }

    #[test]
    fn garbage_is_an_error_naming_what_was_expected() {
        let err = decode::<Message>(&[250, 1, 2], "message").unwrap_err();
        assert!(err.contains("a message from the worker"), "{err}");
        assert!(err.contains("3 bytes"), "{err}");
    }
}
