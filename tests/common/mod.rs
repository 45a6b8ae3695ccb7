//! Helpers shared by the integration tests.

#![allow(dead_code)]

pub mod browser;
pub mod cli;
pub mod temp;
pub mod tiny;

use std::time::Duration;

/// How long a test may wait for something that must happen: a guard against a hang, not a
/// speed check (speed is measured by `ppo-lens bench` and the page's `?bench=N`). Each limit is
/// generous for this project's 2-core machines; `PPO_LENS_TIMEOUT_SCALE=3` triples every one of
/// them on a slower machine.
pub fn hang_guard(limit: Duration) -> Duration {
    match std::env::var("PPO_LENS_TIMEOUT_SCALE") {
        Err(_) => limit,
        Ok(text) => match text.parse::<f64>() {
            Ok(scale) if scale > 0.0 && scale.is_finite() => limit.mul_f64(scale),
            _ => panic!("PPO_LENS_TIMEOUT_SCALE must be a positive number, found `{text}`"),
        },
    }
}
