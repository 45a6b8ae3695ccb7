//! Task rewards: a score for a whole response, given at its last real token.

pub mod gsm8k;

pub use gsm8k::{GsmScore, extract_answer, gsm8k_reward, normalize_number};
