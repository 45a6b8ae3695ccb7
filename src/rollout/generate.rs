//! Generation for PPO and the teacher-forced pass that must agree with it.
//!
//! Layout of one sequence (P = padded prompt length, R = response steps):
//! ```text
//! position:  0 .. P-1 | P      P+1     ..  P+R-1
//! ids:       prompt   | resp_0 resp_1  ..  resp_{R-1}
//! ```
//! The logits at position P - 1 + t predict response token t, and the value there is V(s_t), the
//! state before token t. That is the `prompt_len - 1` slice.

use burn::tensor::{Int, Tensor, TensorData};

use super::sampling::{SamplingParams, sample_rows};
use crate::compute::{read_f32, yield_to_browser};
use crate::model::Qwen2Model;
use crate::rng::Rng;

/// One batch of sampled responses and what the policy said while sampling them.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Rollout {
    /// P: prompts are left-padded to this length.
    pub prompt_len: usize,
    /// `[B][P + R]`: padded prompt, then the response (pad after EOS).
    pub ids: Vec<Vec<u32>>,
    /// `[B][P + R]`: 1 on real prompt tokens and on response tokens up to and including EOS.
    pub attention_mask: Vec<Vec<u8>>,
    /// `[B][R]`: 1 on response tokens up to and including EOS, 0 after.
    pub response_mask: Vec<Vec<f32>>,
    /// `[B][R]`: log pi_old(token | state) under softmax(logits / temperature); 0 on padding.
    pub logprobs: Vec<Vec<f32>>,
    /// `[B][R]`: V_old(state before the token); 0 on padding.
    pub values: Vec<Vec<f32>>,
    /// `[B][R]`: the most likely candidates `(id, probability)` at each step.
    pub top: Vec<Vec<Vec<(u32, f32)>>>,
    /// Whether each row ended with EOS (otherwise it hit max_new_tokens).
    pub finished: Vec<bool>,
}

impl Rollout {
    pub fn response_len(&self) -> usize {
        self.response_mask.first().map_or(0, Vec::len)
    }

    /// The response ids of row `b` up to and including EOS.
    pub fn response_ids(&self, b: usize) -> Vec<u32> {
        let r = self.response_mask[b].iter().filter(|&&m| m > 0.0).count();
        self.ids[b][self.prompt_len..self.prompt_len + r].to_vec()
    }
}

/// Sample up to `max_new_tokens` tokens after each prompt. A row stops at its first id in
/// `eos_ids` (the EOS stays in the response mask); then it is fed `pad_id` (masked) until every
/// row is done. `n_top` candidates are kept per step for display. `on_step` sees each step's
/// sampled ids, one per row (`pad_id` for finished rows), as soon as they are drawn.
#[allow(clippy::too_many_arguments)]
pub async fn rollout(
    model: &Qwen2Model,
    prompts: &[Vec<u32>],
    params: &SamplingParams,
    max_new_tokens: usize,
    eos_ids: &[u32],
    pad_id: u32,
    n_top: usize,
    rng: &mut Rng,
    on_step: &mut dyn FnMut(&[u32]),
) -> Result<Rollout, String> {
    if prompts.is_empty() || prompts.iter().any(Vec::is_empty) {
        return Err("every prompt needs at least one token".into());
    }
    if max_new_tokens == 0 {
        return Err("max_new_tokens must be at least 1".into());
    }
    let device = model.device();
    let vocab = model.config.vocab_size;
    let b = prompts.len();
    let p = prompts.iter().map(Vec::len).max().unwrap_or(0);

    // Left padding: real tokens end at position P - 1 in every row.
    let mut ids: Vec<Vec<u32>> = prompts
        .iter()
        .map(|q| [vec![pad_id; p - q.len()], q.clone()].concat())
        .collect();
    let mut attention_mask: Vec<Vec<u8>> = prompts
        .iter()
        .map(|q| [vec![0u8; p - q.len()], vec![1u8; q.len()]].concat())
        .collect();
    let (out, mut cache) = model.prefill(
        rows_tensor(&ids, &device),
        rows_tensor(&attention_mask, &device),
    );
    let mut logits = read_f32(out.logits).await?; // [B * V]: the last position's
    let mut values = read_f32(out.values.narrow(1, p - 1, 1)).await?; // [B]

    let mut response_mask = vec![Vec::new(); b];
    let mut logprobs = vec![Vec::new(); b];
    let mut state_values = vec![Vec::new(); b];
    let mut top = vec![Vec::new(); b];
    let mut finished = vec![false; b];
    for step in 0..max_new_tokens {
        yield_to_browser().await;
        // One uniform draw per unfinished row, in row order, then the rows sampled at once.
        let draws: Vec<(usize, f64)> = (0..b)
            .filter(|&row| !finished[row])
            .map(|row| (row, rng.unit()))
            .collect();
        let mut sampled = sample_rows(&logits, vocab, &draws, params, n_top).into_iter();
        let mut next = Vec::with_capacity(b);
        for row in 0..b {
            if finished[row] {
                next.push(pad_id);
                response_mask[row].push(0.0);
                logprobs[row].push(0.0);
                state_values[row].push(0.0);
                top[row].push(Vec::new());
                continue;
            }
            let s = sampled.next().expect("one sample per unfinished row");
            next.push(s.id);
            response_mask[row].push(1.0);
            logprobs[row].push(s.logprob);
            state_values[row].push(values[row]);
            top[row].push(s.top);
            if eos_ids.contains(&s.id) {
                finished[row] = true;
            }
        }
        for row in 0..b {
            ids[row].push(next[row]);
            attention_mask[row].push(response_mask[row][step] as u8);
        }
        on_step(&next);
        if finished.iter().all(|&f| f) || step + 1 == max_new_tokens {
            break;
        }
        let column: Vec<Vec<u32>> = next.iter().map(|&id| vec![id]).collect(); // [B, 1]
        let (out, c) = model.decode(rows_tensor(&column, &device), cache);
        cache = c;
        logits = read_f32(out.logits).await?;
        values = read_f32(out.values).await?;
    }
    Ok(Rollout {
        prompt_len: p,
        ids,
        attention_mask,
        response_mask,
        logprobs,
        values: state_values,
        top,
        finished,
    })
}

/// What one teacher-forced pass gives for the response part of a batch.
pub struct ResponseOutputs {
    /// `[B, R]`: log softmax(logits / temperature) at each response token.
    pub logprobs: Tensor<2>,
    /// `[B, R]`: V(state before each response token).
    pub values: Tensor<2>,
    /// `[B, R, V]`: the tempered logits that scored them (for the entropy bonus).
    pub logits: Tensor<3>,
    /// `[B, R]`: the entropy of each of those distributions, where the same pass over the logits
    /// gave it (flex natively, [`fused_scores`](super::fused_scores)); `None` elsewhere, and the
    /// entropy is computed from `logits`.
    pub entropy: Option<Tensor<2>>,
}

/// One pass over `ids [B, P + R]`: the logits at position P - 1 + t score response token t.
/// Gradients flow through it when the model lives on an autodiff device.
pub fn response_outputs(
    model: &Qwen2Model,
    ids: Tensor<2, Int>,
    attention_mask: Tensor<2, Int>,
    prompt_len: usize,
    temperature: f32,
) -> ResponseOutputs {
    let [_, s] = ids.dims();
    let r = s - prompt_len;
    // Logits only where a response token is predicted: positions P - 1 .. P + R - 2.
    let out = model.forward_window(ids.clone(), attention_mask, prompt_len - 1, r);
    // x / 1 is x: at temperature 1 the division (forward and backward over [B, R, V]) is skipped.
    let logits = if temperature == 1.0 {
        out.logits
    } else {
        out.logits.div_scalar(temperature)
    }; // [B, R, V]
    let targets = ids.narrow(1, prompt_len, r); // [B, R]
    let values = out.values.narrow(1, prompt_len - 1, r); // [B, R]
    if let Some((logprobs, entropy)) = fused(&logits, &targets) {
        return ResponseOutputs {
            logprobs,
            values,
            logits,
            entropy: Some(entropy),
        };
    }
    let picked = logits.clone().gather(2, targets.unsqueeze_dim::<3>(2)); // [B, R, 1]
    let logprobs = (picked - logsumexp(logits.clone())).squeeze_dim::<2>(2); // [B, R]
    ResponseOutputs {
        logprobs,
        values,
        logits,
        entropy: None,
    }
}

/// Logprobs and entropies `[B, R]` of `logits [B, R, V]` at `targets [B, R]` in one pass on
/// flex ([`fused_scores`](super::fused_scores)); `None` where it does not run.
#[cfg(not(target_arch = "wasm32"))]
fn fused(logits: &Tensor<3>, targets: &Tensor<2, Int>) -> Option<(Tensor<2>, Tensor<2>)> {
    let [b, r, v] = logits.dims();
    // Only flex takes it, and flex reads its ids back at once.
    let flat = logits.clone().reshape([b * r, v]);
    if flat
        .clone()
        .try_into_primitive::<burn::backend::Flex>()
        .is_err()
        && flat
            .clone()
            .try_into_primitive::<burn::backend::Autodiff<burn::backend::Flex>>()
            .is_err()
    {
        return None;
    }
    let ids: Vec<u32> = targets
        .clone()
        .into_data()
        .iter::<i64>()
        .map(|id| u32::try_from(id).unwrap_or(u32::MAX))
        .collect();
    let scores = super::fused_scores::logprobs_and_entropy(&flat, &ids)?; // [B * R, 2]
    let column = |c: usize| scores.clone().narrow(1, c, 1).reshape([b, r]);
    Some((column(0), column(1)))
}

#[cfg(target_arch = "wasm32")]
fn fused(_: &Tensor<3>, _: &Tensor<2, Int>) -> Option<(Tensor<2>, Tensor<2>)> {
    None // the page composes burn's ops (WebGPU, or flex in the browser)
}

/// `log(sum(exp(z)))` along the last dimension, kept as size 1, with the maximum taken out first
/// so that `exp` never overflows.
pub fn logsumexp<const D: usize>(logits: Tensor<D>) -> Tensor<D> {
    let last = D - 1;
    let max = logits.clone().max_dim(last).detach();
    (logits - max.clone()).exp().sum_dim(last).log() + max
}

/// Rows of `u32`/`u8` as an Int tensor (ids or masks for [`response_outputs`]).
pub fn rows_tensor<T: Copy + Into<i64>>(
    rows: &[Vec<T>],
    device: &burn::tensor::Device,
) -> Tensor<2, Int> {
    let (b, t) = (rows.len(), rows.first().map_or(0, Vec::len));
    let flat: Vec<i64> = rows
        .iter()
        .flat_map(|r| r.iter().map(|&x| x.into()))
        .collect();
    Tensor::from_data(TensorData::new(flat, [b, t]), device)
}
