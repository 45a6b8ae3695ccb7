//! GRPO's math against TRL's GRPOTrainer: the advantages and losses of
//! tests/fixtures/grpo/trl_cases.json were computed by TRL's own code
//! (scripts/make_grpo_fixtures.py); the scalar and the tensor forms must give the same numbers.

use ppo_lens::compute::{Compute, block_on, read_f32};
use ppo_lens::ppo::group_advantages::{
    RewardScale, broadcast_rows, group_advantages, group_advantages_ref, scores_tensor,
};
use ppo_lens::ppo::grpo_loss::{GrpoRows, LossAgg, grpo_loss, grpo_loss_ref};
use serde::Deserialize;

mod common;

use common::rows_tensor as t2;

#[derive(Deserialize)]
struct Case {
    loss_type: String,
    loss_agg_mode: String,
    scale_rewards: String,
    beta: f32,
    epsilon: f32,
    group_size: usize,
    rewards: Vec<f32>,
    advantages: Vec<f32>,
    response_mask: Vec<Vec<f32>>,
    logprobs_new: Vec<Vec<f32>>,
    logprobs_old: Vec<Vec<f32>>,
    ref_logprobs: Vec<Vec<f32>>,
    loss: f32,
}

#[derive(Deserialize)]
struct Fixture {
    made_by: String,
    cases: Vec<Case>,
}

fn cases() -> Fixture {
    common::json_fixture("grpo/trl_cases.json")
}

#[test]
fn advantages_and_losses_equal_trl() {
    let fixture = cases();
    assert!(fixture.made_by.starts_with("trl "), "{}", fixture.made_by);
    let device = Compute::flex().device;
    for (k, c) in fixture.cases.iter().enumerate() {
        let what = format!("case {k} ({} {})", c.loss_type, c.scale_rewards);
        let scale = RewardScale::parse(&c.scale_rewards).unwrap();
        let agg = LossAgg::parse(&c.loss_agg_mode).unwrap();

        let trace = group_advantages_ref(&c.rewards, c.group_size, scale).unwrap();
        for (i, (ours, trl)) in trace.advantages().iter().zip(&c.advantages).enumerate() {
            assert!(
                (ours - trl).abs() < 1e-5,
                "{what}: A[{i}] {ours} vs TRL {trl}"
            );
        }
        let tensor = block_on(read_f32(group_advantages(
            scores_tensor(&c.rewards, &device),
            t2(&c.response_mask, &device),
            c.group_size,
            scale,
        )))
        .unwrap();
        let want = broadcast_rows(&c.advantages, &c.response_mask);
        for (ours, trl) in tensor.iter().zip(want.iter().flatten()) {
            assert!(
                (ours - trl).abs() < 1e-5,
                "{what}: tensor A {ours} vs TRL {trl}"
            );
        }

        // The loss from TRL's own advantages, spread over the tokens as TRL broadcasts them.
        let rows = GrpoRows {
            logprobs_new: &c.logprobs_new,
            logprobs_old: &c.logprobs_old,
            ref_logprobs: &c.ref_logprobs,
            advantages: &want,
            response_mask: &c.response_mask,
        };
        let scalar = grpo_loss_ref(&rows, c.epsilon, c.beta, agg);
        assert!(
            (scalar.loss - c.loss).abs() < 2e-5,
            "{what}: loss {} vs TRL {}",
            scalar.loss,
            c.loss
        );
        let tensor = grpo_loss(
            t2(&c.logprobs_new, &device),
            t2(&c.logprobs_old, &device),
            t2(&c.ref_logprobs, &device),
            t2(&want, &device),
            t2(&c.response_mask, &device),
            c.epsilon,
            c.beta,
            agg,
        );
        let loss = block_on(read_f32(tensor.loss)).unwrap()[0];
        assert!(
            (loss - c.loss).abs() < 2e-5,
            "{what}: tensor loss {loss} vs TRL {}",
            c.loss
        );
    }
    // The two aggregations differ on the same numbers: the fixture's masks have unequal lengths.
    assert!((fixture.cases[0].loss - fixture.cases[1].loss).abs() > 1e-3);
}
