//! Task data: GSM8K jsonl and the seeded GSM-mini generator, both as [`Problem`]s.

pub mod gsm8k;
pub mod gsm_mini;

pub use gsm_mini::gsm_mini;
pub use gsm8k::{Problem, parse_gsm8k_jsonl};
