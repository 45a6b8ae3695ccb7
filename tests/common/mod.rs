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

/// A JSON fixture under tests/fixtures/, read and parsed (a panic names the file).
pub fn json_fixture<T: serde::de::DeserializeOwned>(relative: &str) -> T {
    let path = format!("{}/tests/fixtures/{relative}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Rows of equal length as a `[rows, len]` tensor on `device`.
pub fn rows_tensor(rows: &[Vec<f32>], device: &burn::tensor::Device) -> burn::tensor::Tensor<2> {
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    let shape = [rows.len(), rows.first().map_or(0, Vec::len)];
    burn::tensor::Tensor::from_data(burn::tensor::TensorData::new(flat, shape), device)
}
