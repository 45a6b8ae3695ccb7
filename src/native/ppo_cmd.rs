//! `ppo-lens gae` and `ppo-lens losses`: the PPO pieces on numbers from a JSON file.
//!
//! Both run the tensor code training runs (on flex, the CPU backend) and print JSON; `gae
//! --table` prints the reverse sweep from the scalar trace instead, with every formula filled in.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Result, anyhow};
use burn::tensor::{Tensor, TensorData};
use serde_json::{Value, json};

use super::inputs::{InputFile, Rows};
use crate::compute::{Compute, block_on, read_f32};
use crate::ppo::gae::{GaeParams, gae, gae_ref};
use crate::ppo::losses::{LossCoeffs, LossInputs, ppo_losses};
use crate::ppo::whiten::{masked_whiten, masked_whiten_ref};

const GAE_KEYS: &[&str] = &["rewards", "values", "mask", "gamma", "lam"];

const LOSS_KEYS: &[&str] = &[
    "logprobs_old",
    "logprobs_new",
    "advantages",
    "values_old",
    "values_new",
    "returns",
    "mask",
    "clip_ratio",
    "clip_range_value",
    "vf_coef",
    "entropy_coeff",
    "logits",
];

/// Runs `gae` and returns what to print.
pub fn gae_command(input: &Path, whiten: bool, table: bool) -> Result<String> {
    let file = InputFile::read(input, GAE_KEYS)?;
    let rewards = file.rows("rewards")?;
    let values = file.rows_like("values", &rewards, "rewards")?;
    let mask = file.mask("mask", &rewards, "rewards")?;
    let gamma = file.number("gamma")?;
    let lam = file.number("lam")?;
    let params = GaeParams::new(gamma, lam).map_err(|err| anyhow!("{}: {err}", input.display()))?;
    if whiten {
        file.require_real_tokens(&mask, "mask", 2, "--whiten (an unbiased variance)")?;
    }

    if table {
        return Ok(gae_table(&rewards, &values, &mask, params, whiten));
    }

    let device = Compute::flex().device;
    let shape = [rewards.len(), rewards[0].len()];
    let tensor =
        |rows: &Rows| Tensor::<2>::from_data(TensorData::new(rows.concat(), shape), &device);
    let out = gae(tensor(&rewards), tensor(&values), tensor(&mask), params);
    let mut result = json!({
        "deltas": to_rows(out.deltas, shape[1])?,
        "advantages": to_rows(out.advantages.clone(), shape[1])?,
        "returns": to_rows(out.returns, shape[1])?,
    });
    if whiten {
        result["whitened"] = to_rows(masked_whiten(out.advantages, tensor(&mask)), shape[1])?;
    }
    Ok(serde_json::to_string_pretty(&result)?)
}

/// Runs `gae --quiz`: the faded worked example on the file's first sequence, answers from stdin.
pub fn gae_quiz_command(input: &Path) -> Result<()> {
    let file = InputFile::read(input, GAE_KEYS)?;
    let rewards = file.rows("rewards")?;
    let values = file.rows_like("values", &rewards, "rewards")?;
    let mask = file.mask("mask", &rewards, "rewards")?;
    let params = GaeParams::new(file.number("gamma")?, file.number("lam")?)
        .map_err(|err| anyhow!("{}: {err}", input.display()))?;
    let stdin = std::io::stdin();
    let typed = std::io::IsTerminal::is_terminal(&stdin);
    super::gae_quiz::gae_quiz(
        &rewards,
        &values,
        &mask,
        params,
        stdin.lock(),
        std::io::stdout().lock(),
        !typed,
    )
    .map_err(|err| anyhow!("{}: {err}", input.display()))?;
    Ok(())
}

/// The reverse sweep of every sequence as aligned text.
fn gae_table(
    rewards: &Rows,
    values: &Rows,
    mask: &Rows,
    params: GaeParams,
    whiten: bool,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "GAE with gamma = {}, lambda = {}: from the last real token back to the first\n\
         delta_t = r_t + gamma * V_(t+1) * m_(t+1) - V_t\n\
         A_t     = delta_t + gamma * lambda * m_(t+1) * A_(t+1)\n\
         R_t     = A_t + V_t",
        params.gamma, params.lam
    );
    let mut all_advantages = Vec::new();
    for (b, ((r, v), m)) in rewards.iter().zip(values).zip(mask).enumerate() {
        let trace = gae_ref(r, v, m, params);
        let _ = writeln!(
            out,
            "\nsequence {b}: {} real token(s) of {}",
            trace.steps.len(),
            r.len()
        );
        out.push_str(&super::gae_quiz::sweep_table(&trace, 0, true));
        for step in &trace.steps {
            let _ = writeln!(out, "  {}", step.delta_formula(params.gamma));
            let _ = writeln!(out, "  {}", step.advantage_formula(params));
        }
        all_advantages.extend(trace.advantages);
    }
    if whiten {
        let flat_mask: Vec<f32> = mask.concat();
        // Inputs were checked for two real tokens, so whitening cannot fail here.
        if let Ok(w) = masked_whiten_ref(&all_advantages, &flat_mask) {
            let _ = writeln!(
                out,
                "\nwhitened over {} real tokens: mean {:.4}, unbiased std {:.4}; (A - mean) / std",
                w.count, w.mean, w.std
            );
            for (b, row) in w.whitened.chunks(rewards[0].len()).enumerate() {
                let cells: Vec<String> = row.iter().map(|x| format!("{x:>9.4}")).collect();
                let _ = writeln!(out, "  sequence {b}: {}", cells.join(" "));
            }
        }
    }
    out
}

/// Runs `losses` and returns what to print.
pub fn losses_command(input: &Path) -> Result<String> {
    let file = InputFile::read(input, LOSS_KEYS)?;
    let logprobs_old = file.rows("logprobs_old")?;
    let like = (&logprobs_old, "logprobs_old");
    let logprobs_new = file.rows_like("logprobs_new", like.0, like.1)?;
    let advantages = file.rows_like("advantages", like.0, like.1)?;
    let values_old = file.rows_like("values_old", like.0, like.1)?;
    let values_new = file.rows_like("values_new", like.0, like.1)?;
    let returns = file.rows_like("returns", like.0, like.1)?;
    let mask = file.mask("mask", like.0, like.1)?;
    file.require_real_tokens(&mask, "mask", 1, "a masked mean")?;
    let logits = file.optional_cube("logits", like.0, like.1)?;
    let coeffs = LossCoeffs {
        clip_ratio: file.number_in("clip_ratio", 0.0, 1.0, true)?,
        clip_range_value: file.number_in("clip_range_value", 0.0, f32::INFINITY, true)?,
        vf_coef: file.number_in("vf_coef", 0.0, f32::INFINITY, false)?,
        entropy_coeff: file.number_in("entropy_coeff", 0.0, f32::INFINITY, false)?,
    };

    let device = Compute::flex().device;
    let shape = [logprobs_old.len(), logprobs_old[0].len()];
    let tensor =
        |rows: &Rows| Tensor::<2>::from_data(TensorData::new(rows.concat(), shape), &device);
    let logits = logits.map(|cube| {
        let vocab = cube[0][0].len();
        let flat: Vec<f32> = cube.into_iter().flatten().flatten().collect();
        Tensor::<3>::from_data(TensorData::new(flat, [shape[0], shape[1], vocab]), &device)
    });
    let losses = ppo_losses(
        LossInputs {
            logprobs_new: tensor(&logprobs_new),
            logprobs_old: tensor(&logprobs_old),
            advantages: tensor(&advantages),
            values_new: tensor(&values_new),
            values_old: tensor(&values_old),
            returns: tensor(&returns),
            response_mask: tensor(&mask),
            logits,
            token_entropy: None,
        },
        coeffs,
    );
    let scalar = |t: Tensor<1>| -> Result<Value> {
        Ok(json!(block_on(read_f32(t)).map_err(|e| anyhow!(e))?[0]))
    };
    let result = json!({
        "policy_loss": scalar(losses.policy)?,
        "value_loss": scalar(losses.value)?,
        "entropy": match losses.entropy { Some(e) => scalar(e)?, None => Value::Null },
        "total_loss": scalar(losses.total)?,
        "policy_clip_frac": scalar(losses.policy_clip_frac)?,
        "value_clip_frac": scalar(losses.value_clip_frac)?,
        "approx_kl": scalar(losses.approx_kl)?,
    });
    Ok(serde_json::to_string_pretty(&result)?)
}

/// A `[B, T]` tensor as JSON rows.
fn to_rows(tensor: Tensor<2>, len: usize) -> Result<Value> {
    let flat = block_on(read_f32(tensor)).map_err(|err| anyhow!(err))?;
    Ok(json!(flat.chunks(len).collect::<Vec<_>>()))
}
