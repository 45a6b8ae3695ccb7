//! Rollouts: sampling responses token by token with the KV cache, keeping what PPO needs, and
//! the teacher-forced pass that scores a whole batch of sequences at once.

#[cfg(not(target_arch = "wasm32"))]
pub mod fused_scores;
pub mod generate;
pub mod sampling;

pub use generate::{Rollout, response_outputs, rollout};
pub use sampling::{Sampled, SamplingParams, sample};
