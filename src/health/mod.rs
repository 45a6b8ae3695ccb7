//! Is this run healthy? Findings read from the metric history (the names of metrics.jsonl).
//!
//! The tutorial's FAQ says how to read a PPO run: reward should rise and plateau, the value loss
//! fall and settle, approx KL stay small and stable, clip fractions stay low (below 0.1 or 0.2;
//! above 0.5 the updates are too aggressive), a pre-clip gradient norm far above `max_grad_norm`
//! means unstable gradients, and a constant value loss means the critic is not learning. Each
//! [`Check`] here turns one of those sentences into a test on the history's last iterations,
//! with its threshold a named constant, and says what it means and what to try.
//!
//! No I/O here: the trainer and the page pass their history in.

pub mod advice;
pub mod check;
pub mod history;
pub mod watch;

pub use advice::{Knob, fill};
pub use check::{AdvantageScale, Check, Finding, KlKnob, RunSettings};
pub use history::{History, explained_variance};
pub use watch::{Watch, findings};
