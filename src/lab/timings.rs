//! What the page measures about itself: when each step of its start was done, counted from the
//! moment navigation started (the page's `performance.now()`), and how long each iteration took,
//! both in the worker (per stage) and as the student waits for it (request to stage shown).
//!
//! The page writes it as JSON in its Timings panel (`data-testid="timings-json"`), so a script
//! (the browser tests, docs/performance.md's method) reads the same figures a person sees.

use serde::{Deserialize, Serialize};

use crate::lab::walkthrough::StageTimes;
use crate::lab::wire::BenchResults;

/// How many iterations the report keeps, the latest last.
pub const KEPT: usize = 50;

/// The page's wasm file as the browser's Resource Timing reports it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WasmLoad {
    /// Its URL's file name (`ppo-lens-<hash>_bg.wasm`).
    pub file: String,
    /// The request started, ms after navigation.
    pub fetch_start_ms: f64,
    /// Its last byte arrived, ms after navigation.
    pub response_end_ms: f64,
    /// Bytes on the wire (compressed when the server compresses; 0 from the browser's cache).
    pub transfer_bytes: f64,
    /// Bytes of the module itself.
    pub decoded_bytes: f64,
}

/// One iteration, from the page's side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IterationTiming {
    /// The run's iteration number (1 for the first).
    pub iteration: usize,
    /// Computed while training (no stepping through between iterations).
    pub training: bool,
    /// The worker's own milliseconds per stage.
    pub worker: StageTimes,
    /// From the request to its reply decoded in the page: the worker's time plus the messages.
    pub reply_ms: f64,
    /// From the request to the iteration shown and the page idle again: what a student waits.
    pub shown_ms: f64,
}

/// The page's timings since navigation started. Every `_ms` field that names a moment
/// (`..._at_ms`) counts from navigation; the others are durations.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PageTimings {
    /// The backend's key (`webgpu`, `flex`) once chosen.
    pub backend: Option<String>,
    /// The page's wasm download, when the browser reports it.
    pub wasm: Option<WasmLoad>,
    /// The page's wasm was compiled and instantiated and its `main` ran (the app mounts).
    pub app_started_at_ms: Option<f64>,
    /// The worker has instantiated the same module and listens.
    pub worker_ready_at_ms: Option<f64>,
    /// The worker has chosen its backend (asking WebGPU for an adapter and a device).
    pub backend_ready_at_ms: Option<f64>,
    /// The backend self-check's own duration in the worker.
    pub self_check_ms: Option<f64>,
    pub self_check_done_at_ms: Option<f64>,
    /// Benchmark mode's results (`?bench=N`): per stage on WebGPU and on flex.
    pub bench: Option<BenchResults>,
    pub bench_done_at_ms: Option<f64>,
    /// The worker has built the tiny model for the run.
    pub model_loaded_at_ms: Option<f64>,
    /// The first iteration is shown and the page is idle: a student can step through.
    pub first_iteration_at_ms: Option<f64>,
    /// The last [`KEPT`] iterations, oldest first.
    pub iterations: Vec<IterationTiming>,
    /// The median of `shown_ms` over the kept iterations after the run's first (stepping
    /// through and training alike); None before a second iteration.
    pub next_iteration_median_ms: Option<f64>,
    /// The page's own wasm memory (the worker has its own), bytes, at the last iteration shown.
    pub page_memory_bytes: Option<f64>,
    /// The longest task that blocked the page's thread, ms (only tasks over 50 ms are reported
    /// by the browser; 0 when none was).
    pub longest_block_ms: f64,
}

impl PageTimings {
    /// Keeps `timing`, dropping the oldest beyond [`KEPT`], and updates the median.
    pub fn push(&mut self, timing: IterationTiming) {
        self.iterations.push(timing);
        if self.iterations.len() > KEPT {
            self.iterations.remove(0);
        }
        let mut later: Vec<f64> = self
            .iterations
            .iter()
            .filter(|t| t.iteration > 1)
            .map(|t| t.shown_ms)
            .collect();
        later.sort_by(f64::total_cmp);
        self.next_iteration_median_ms = median(&later);
    }

    /// The report as the page shows it: indented JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("timings are plain numbers and strings")
    }
}

/// The middle value of sorted `xs` (the mean of the two middle ones for an even count).
fn median(xs: &[f64]) -> Option<f64> {
    match xs.len() {
        0 => None,
        n if n % 2 == 1 => Some(xs[n / 2]),
        n => Some((xs[n / 2 - 1] + xs[n / 2]) / 2.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(iteration: usize, shown_ms: f64) -> IterationTiming {
        IterationTiming {
            iteration,
            shown_ms,
            ..Default::default()
        }
    }

    #[test]
    fn the_median_leaves_out_the_first_iteration() {
        let mut t = PageTimings::default();
        t.push(at(1, 2000.0));
        assert_eq!(t.next_iteration_median_ms, None);
        t.push(at(2, 500.0));
        assert_eq!(t.next_iteration_median_ms, Some(500.0));
        t.push(at(3, 300.0));
        assert_eq!(t.next_iteration_median_ms, Some(400.0));
        t.push(at(4, 900.0));
        assert_eq!(t.next_iteration_median_ms, Some(500.0));
        // A reset starts a new run: its first iteration is left out too.
        t.push(at(1, 4000.0));
        assert_eq!(t.next_iteration_median_ms, Some(500.0));
    }

    #[test]
    fn only_the_latest_iterations_are_kept() {
        let mut t = PageTimings::default();
        for i in 1..=KEPT + 7 {
            t.push(at(i, i as f64));
        }
        assert_eq!(t.iterations.len(), KEPT);
        assert_eq!(t.iterations[0].iteration, 8);
        // The median of 8..=57 is 32.5.
        assert_eq!(t.next_iteration_median_ms, Some(32.5));
    }

    #[test]
    fn the_report_reads_back() {
        let mut t = PageTimings {
            backend: Some("flex".into()),
            app_started_at_ms: Some(310.5),
            ..Default::default()
        };
        t.push(at(1, 1200.0));
        let back: PageTimings = serde_json::from_str(&t.to_json()).unwrap();
        assert_eq!(back, t);
    }
}
