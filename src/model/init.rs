//! Fresh models: a seeded random init in the style of transformers' `_init_weights` (normal
//! weights with std `initializer_range`, zero biases, unit norms), and the value head's init.

use burn::tensor::Device;

use super::config::Qwen2Config;
use super::weights::{Precision, Source, ValueHeadInit, ValueHeadSource, build};
use super::{ModelError, Qwen2Model};
use crate::rng::Rng;

struct RandomSource {
    rng: Rng,
    std: f64,
}

impl Source for RandomSource {
    fn read(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, ModelError> {
        let n: usize = shape.iter().product();
        Ok(if name.ends_with(".bias") {
            vec![0.0; n]
        } else if name.contains("norm") {
            vec![1.0; n]
        } else {
            (0..n)
                .map(|_| (self.rng.normal() * self.std) as f32)
                .collect()
        })
    }
}

/// A model with seeded random weights (std `initializer_range`, transformers' default 0.02).
pub fn init_random(
    config: &Qwen2Config,
    seed: u64,
    initializer_range: f64,
    value_init: ValueHeadInit,
    precision: Precision,
    device: &Device,
) -> Result<Qwen2Model, ModelError> {
    let mut source = RandomSource {
        rng: Rng::new(seed),
        std: initializer_range,
    };
    build(
        config,
        &mut source,
        ValueHeadSource::Init(value_init, seed.wrapping_add(1)),
        precision,
        device,
    )
}
