//! The page's tiny model and its GSM-mini prompts, and gradients read back, for the tests that
//! compare two paths (flex and wgpu; the CPU kernels and burn's ops) on the same model.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use ppo_lens::compute::{block_on, read_f32};
use ppo_lens::data::gsm_mini::gsm_mini;
use ppo_lens::lab::run::{TINY_CONFIG, TINY_TOKENIZER, TINY_WEIGHTS};
use ppo_lens::model::chat::gsm8k_prompt;
use ppo_lens::model::tokenizer::TextTokenizer;
use ppo_lens::model::{Precision, Qwen2Config, Qwen2Model, ValueHeadInit, WeightFiles, load_model};
use ppo_lens::ppo::update::PpoBatch;
use ppo_lens::rollout::Rollout;

/// `n` GSM-mini problems (drawn with `seed`) in the chat template, tokenized by the tiny model's
/// tokenizer, with its end-of-turn id (EOS) and its padding id.
pub fn tiny_prompts(n: usize, seed: u64) -> (Vec<Vec<u32>>, u32, u32) {
    let tokenizer = TextTokenizer::from_bytes(TINY_TOKENIZER, "tiny/tokenizer.json").unwrap();
    let prompts = gsm_mini(n, seed)
        .iter()
        .map(|p| tokenizer.encode(&gsm8k_prompt(&p.question)).unwrap())
        .collect();
    let eos = tokenizer.token_id("<|im_end|>").unwrap();
    let pad = tokenizer.token_id("<|endoftext|>").unwrap();
    (prompts, eos, pad)
}

/// The tiny model's shipped weights on `device`, with a value head drawn with seed 3.
pub fn tiny_model(device: &Device) -> Qwen2Model {
    let config = Qwen2Config::from_json(TINY_CONFIG, "tiny/config.json").unwrap();
    let files = [("tiny/model.safetensors".to_string(), TINY_WEIGHTS)];
    let weights = WeightFiles::parse(&files).unwrap();
    load_model(
        &config,
        &weights,
        None,
        ValueHeadInit::Normal { std: 0.05 },
        3,
        Precision::F32,
        device,
    )
    .unwrap()
}

/// Every gradient in `grads` read back to the host, parameter by parameter in `model`'s order.
pub fn host_grads(model: &Qwen2Model, grads: &GradientsParams) -> Vec<f32> {
    struct Collect<'a>(&'a GradientsParams, Vec<f32>);
    impl ModuleVisitor for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.0.get::<D>(param.id) {
                self.1.extend(block_on(read_f32(g)).unwrap());
            }
        }
    }
    let mut c = Collect(grads, Vec::new());
    model.visit(&mut c);
    c.1
}

/// Every parameter read back to the host, in the order [`host_grads`] reads gradients.
pub fn host_params(model: &Qwen2Model) -> Vec<f32> {
    struct Collect(Vec<f32>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.extend(block_on(read_f32(param.val())).unwrap());
        }
    }
    let mut c = Collect(Vec::new());
    model.visit(&mut c);
    c.0
}

/// A PPO batch from rollout `r` with made-up advantages, +1 on even rows and -1 on odd ones:
/// the reference and old logprobs are the rollout's, returns = old values + advantages.
pub fn alternating_batch(r: Rollout) -> PpoBatch {
    let advantages: Vec<Vec<f32>> = (0..r.ids.len())
        .map(|b| vec![if b % 2 == 0 { 1.0 } else { -1.0 }; r.response_len()])
        .collect();
    let returns = r
        .values
        .iter()
        .zip(&advantages)
        .map(|(v, a)| v.iter().zip(a).map(|(v, a)| v + a).collect())
        .collect();
    PpoBatch {
        prompt_len: r.prompt_len,
        ids: r.ids,
        attention_mask: r.attention_mask,
        response_mask: r.response_mask,
        ref_logprobs: r.logprobs.clone(),
        old_logprobs: r.logprobs,
        old_values: r.values,
        advantages,
        returns,
    }
}
