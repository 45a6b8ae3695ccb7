//! What the page's classroom views compute: where each token sits against the policy and value
//! clips, and the what-if recompute of a batch's rewards and advantages under other settings.
//!
//! - [`policy_case`] and [`value_case`]: for one token, which branch of the clipped objective
//!   counts and whether the token still has a gradient; [`clip_cases`] counts the batch's
//!   tokens in each of the six cases (sign of A × below / inside / above the band);
//! - [`what_if`]: the token rewards, GAE, returns and whitened advantages of a batch, with
//!   other γ, λ, β, KL estimator and whitening, computed by the same scalar functions whose
//!   equality with the trainer's tensor code the `ppo` tests prove; no model pass;
//! - [`compare_members`]: the picked members of the policy-gradient family on one batch.
//!
//! No UI here: the page draws these, `tests/explore.rs` checks them.

pub mod clip;
pub mod family;
pub mod grpo;
pub mod what_if;

pub use clip::{
    Band, ClipCases, PolicyCase, ValueCase, ValueMove, clip_cases, policy_case, surrogate,
    value_case,
};
pub use family::{FamilyComparison, MemberParams, compare_members};
pub use grpo::{AdvantageComparison, CriticCost, compare_advantages, zero_spread_effects};
pub use what_if::{WhatIf, WhatIfResult, gae_input_json, what_if};
