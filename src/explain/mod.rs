//! What the page says about the numbers it shows, computed from those numbers. No UI here: the
//! page arranges these, and `tests/explain.rs` checks them on a real iteration.
//!
//! - [`format`]: numbers and tokens as text;
//! - [`stage`]: the stages in order, and their steps for a response;
//! - [`provenance`]: where one number of a stage comes from, the arithmetic written out and
//!   recomputed from the shown inputs;
//! - [`notes`]: "what to notice" for each stage, each claim checked against this batch;
//! - [`math`]: the stage formulas as MathML with the live numbers substituted;
//! - [`guide`]: the loop's nodes and tensors, the objective, the tour and the glossary.

pub mod format;
pub mod guide;
pub mod math;
pub mod notes;
pub mod provenance;
pub mod stage;
