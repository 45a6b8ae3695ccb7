//! The policy-gradient family against TRL: tests/fixtures/family/trl_cases.json holds advantages
//! and losses computed by TRL's own GRPOTrainer (loss types dr_grpo, dapo, and grpo with a
//! decoupled clip) and RLOOTrainer (scripts/make_family_fixtures.py). The scalar and the tensor
//! forms of src/ppo/'s pieces, chosen as src/ppo/family.rs's presets choose them, must give the
//! same numbers.

use burn::tensor::{Tensor, TensorData};
use ppo_lens::compute::{Compute, block_on, read_f32};
use ppo_lens::ppo::batch_baseline::{normalise_over_batch, normalise_over_batch_ref};
use ppo_lens::ppo::clip_range::ClipRange;
use ppo_lens::ppo::family::{Baseline, Family, KlPlacement, Scale, Unit};
use ppo_lens::ppo::group_advantages::{
    RewardScale, broadcast_rows, group_advantages_ref, scores_tensor,
};
use ppo_lens::ppo::grpo_loss::{GrpoRows, LossAgg, grpo_loss, grpo_loss_ref};
use ppo_lens::ppo::leave_one_out::{leave_one_out_advantages, leave_one_out_ref};
use ppo_lens::ppo::member_advantages::{BatchView, member_advantages};
use ppo_lens::ppo::policy_loss::policy_loss;
use ppo_lens::ppo::sequence_kl::{kl_penalised_scores, kl_penalised_scores_ref};
use ppo_lens::ppo::sequence_loss::{sequence_loss, sequence_loss_ref};
use serde::Deserialize;

mod common;

use common::rows_tensor as t2;

#[derive(Deserialize)]
struct Case {
    trainer: String,
    loss_type: String,
    scale_rewards: Option<String>,
    normalize_advantages: bool,
    beta: f32,
    epsilon: f32,
    epsilon_high: f32,
    group_size: usize,
    max_completion_length: usize,
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

fn fixture() -> Fixture {
    common::json_fixture("family/trl_cases.json")
}

fn read(x: Tensor<1>) -> Vec<f32> {
    block_on(read_f32(x)).unwrap()
}

fn close(ours: &[f32], trl: &[f32], tol: f32, what: &str) {
    assert_eq!(ours.len(), trl.len(), "{what}");
    for (i, (o, t)) in ours.iter().zip(trl).enumerate() {
        assert!((o - t).abs() < tol, "{what}[{i}]: {o} vs TRL {t}");
    }
}

/// The cases one trainer made, `n` of them.
fn of_trainer<'a>(fixture: &'a Fixture, trainer: &str, n: usize) -> Vec<&'a Case> {
    let cases: Vec<&Case> = fixture
        .cases
        .iter()
        .filter(|c| c.trainer == trainer)
        .collect();
    assert_eq!(cases.len(), n, "{trainer}");
    cases
}

/// The member whose preset TRL's settings are, and the clip TRL used.
fn member(c: &Case) -> (Family, ClipRange) {
    let family = match c.loss_type.as_str() {
        "dr_grpo" => Family::DrGrpo,
        "dapo" => Family::Dapo,
        "grpo" => Family::Grpo,
        "rloo" => Family::Rloo,
        other => panic!("no member for TRL's {other}"),
    };
    (family, ClipRange::new(c.epsilon, c.epsilon_high).unwrap())
}

#[test]
fn group_members_equal_trls_grpo_trainer() {
    let fixture = fixture();
    assert!(fixture.made_by.starts_with("trl "), "{}", fixture.made_by);
    let device = Compute::flex().device;
    for c in of_trainer(&fixture, "grpo", 3) {
        let (family, clip) = member(c);
        let what = format!("{} ({})", family.name(), c.loss_type);
        let objective = family.objective(c.epsilon, c.max_completion_length);
        assert_eq!(objective.baseline, Baseline::GroupMean, "{what}");
        let scale = match objective.scale {
            Scale::GroupStd => RewardScale::Group,
            Scale::None => RewardScale::None,
            Scale::BatchWhiten => panic!("{what}: a group member whitens"),
        };
        assert_eq!(Some(scale.name()), c.scale_rewards.as_deref(), "{what}");
        let Unit::Token(agg) = objective.unit else {
            panic!("{what}: a group member has one ratio per token")
        };
        // The preset's clip is TRL's where the member fixes it (DAPO's 0.28).
        if family != Family::Grpo {
            assert_eq!(objective.clip, Some(clip), "{what}");
        }
        let beta = match objective.kl {
            KlPlacement::Loss => c.beta,
            KlPlacement::Off => {
                assert_eq!(c.beta, 0.0, "{what}");
                0.0
            }
            other => panic!("{what}: KL {other:?}"),
        };

        let trace = group_advantages_ref(&c.rewards, c.group_size, scale).unwrap();
        close(
            &trace.advantages(),
            &c.advantages,
            1e-5,
            &format!("{what}: A"),
        );

        let advantages = broadcast_rows(&c.advantages, &c.response_mask);
        let rows = GrpoRows {
            logprobs_new: &c.logprobs_new,
            logprobs_old: &c.logprobs_old,
            ref_logprobs: &c.ref_logprobs,
            advantages: &advantages,
            response_mask: &c.response_mask,
        };
        let scalar = grpo_loss_ref(&rows, clip, beta, agg);
        close(&[scalar.loss], &[c.loss], 2e-5, &format!("{what}: loss"));
        let tensor = grpo_loss(
            t2(&c.logprobs_new, &device),
            t2(&c.logprobs_old, &device),
            t2(&c.ref_logprobs, &device),
            t2(&advantages, &device),
            t2(&c.response_mask, &device),
            clip,
            beta,
            agg,
        );
        close(
            &read(tensor.loss),
            &[c.loss],
            2e-5,
            &format!("{what}: tensor loss"),
        );
    }
}

#[test]
fn the_aggregation_and_the_clip_change_the_loss() {
    // On the dr_grpo case's numbers, GRPO's own aggregation and DAPO's give other losses (the
    // masks hold responses of 1 and 6 tokens), and the symmetric clip another than clip-higher.
    let fixture = fixture();
    let c = &fixture.cases[0];
    assert_eq!(c.loss_type, "dr_grpo");
    let advantages = broadcast_rows(&c.advantages, &c.response_mask);
    let rows = GrpoRows {
        logprobs_new: &c.logprobs_new,
        logprobs_old: &c.logprobs_old,
        ref_logprobs: &c.ref_logprobs,
        advantages: &advantages,
        response_mask: &c.response_mask,
    };
    let loss = |clip: ClipRange, agg| grpo_loss_ref(&rows, clip, c.beta, agg).loss;
    let sym = ClipRange::symmetric(0.2);
    let dr = LossAgg::SeqMeanTokenSumNorm {
        max_len: c.max_completion_length,
    };
    let base = loss(sym, dr);
    let moved = |x: f32| (x / base - 1.0).abs();
    // token-mean divides the same sum by the 86 real tokens instead of 16 x 6 = 96.
    assert!((moved(loss(sym, LossAgg::TokenMean)) - (96.0 / 86.0 - 1.0)).abs() < 1e-4);
    assert!(moved(loss(sym, LossAgg::SeqMeanTokenMean)) > 0.05);
    let higher = loss(ClipRange::new(0.2, 0.28).unwrap(), dr);
    assert!(moved(higher) > 0.01, "{higher} vs {base}");
}

#[test]
fn rloo_equals_trls_rloo_trainer() {
    let fixture = fixture();
    let device = Compute::flex().device;
    for c in of_trainer(&fixture, "rloo", 2) {
        let (family, clip) = member(c);
        let what = format!(
            "RLOO (beta {}, normalised {})",
            c.beta, c.normalize_advantages
        );
        let objective = family.objective(c.epsilon, c.max_completion_length);
        assert_eq!(objective.baseline, Baseline::LeaveOneOut);
        assert_eq!(objective.unit, Unit::Response);
        assert_eq!(objective.kl, KlPlacement::ResponseReward);

        // The KL in each response's score, from the model's logprobs at generation (the new
        // ones: the model has not moved) and the reference's; then the leave-one-out baseline.
        let scored = kl_penalised_scores_ref(
            &c.rewards,
            &c.logprobs_new,
            &c.ref_logprobs,
            &c.response_mask,
            c.beta,
        );
        assert!(
            scored.iter().any(|s| s.kl.abs() > 1e-2),
            "{what}: the KL is not 0"
        );
        let penalised: Vec<f32> = scored.iter().map(|s| s.penalised).collect();
        let mut advantages = leave_one_out_ref(&penalised, c.group_size)
            .unwrap()
            .advantages();
        if c.normalize_advantages {
            advantages = normalise_over_batch_ref(&advantages).unwrap().0;
        }
        close(&advantages, &c.advantages, 2e-5, &format!("{what}: A"));

        let (scores, _) = kl_penalised_scores(
            scores_tensor(&c.rewards, &device),
            t2(&c.logprobs_new, &device),
            t2(&c.ref_logprobs, &device),
            t2(&c.response_mask, &device),
            c.beta,
        );
        let mut tensor = leave_one_out_advantages(scores, c.group_size);
        if c.normalize_advantages {
            tensor = normalise_over_batch(tensor);
        }
        close(
            &read(tensor),
            &c.advantages,
            2e-5,
            &format!("{what}: tensor A"),
        );

        // One ratio per response, on TRL's advantages.
        let scalar = sequence_loss_ref(
            &c.logprobs_new,
            &c.logprobs_old,
            &c.advantages,
            &c.response_mask,
            clip,
        );
        assert!(scalar.clip_frac > 0.0, "{what}: some response is clipped");
        close(&[scalar.loss], &[c.loss], 2e-5, &format!("{what}: loss"));
        let tensor = sequence_loss(
            t2(&c.logprobs_new, &device),
            t2(&c.logprobs_old, &device),
            scores_tensor(&c.advantages, &device),
            t2(&c.response_mask, &device),
            clip,
        );
        close(
            &read(tensor.loss),
            &[c.loss],
            2e-5,
            &format!("{what}: tensor loss"),
        );
    }
}

/// The iteration hands the update each member's advantages: one real iteration of the tiny
/// model (8 prompts x 4 samples), then the same advantages recomputed by the scalar forms from
/// what the experience recorded (its scores, logprobs, the reference's, the mask).
#[test]
fn the_iteration_gives_each_members_advantages() {
    use ppo_lens::data::gsm_mini::gsm_mini;
    use ppo_lens::lab::run::{TINY_CONFIG, TINY_TOKENIZER};
    use ppo_lens::model::chat::gsm8k_prompt;
    use ppo_lens::model::tokenizer::TextTokenizer;
    use ppo_lens::model::{Precision, Qwen2Config, ValueHeadInit, init_random};
    use ppo_lens::ppo::REFERENCE;
    use ppo_lens::ppo::gae::GaeParams;
    use ppo_lens::ppo::group_advantages::GroupParams;
    use ppo_lens::ppo::iteration::{ExperienceConfig, ScoreAdvantages, Task, collect_experience};
    use ppo_lens::ppo::rewards::KlEstimator;
    use ppo_lens::rng::Rng;
    use ppo_lens::rollout::SamplingParams;

    let device = Compute::flex().device;
    let model = common::tiny::tiny_model(&device);
    // A reference that differs from the policy, so that the KL in each score is not 0.
    let config = Qwen2Config::from_json(TINY_CONFIG, "tiny/config.json").unwrap();
    let reference = init_random(
        &config,
        7,
        0.02,
        ValueHeadInit::Zeros,
        Precision::F32,
        &device,
    )
    .unwrap();
    let tokenizer = TextTokenizer::from_bytes(TINY_TOKENIZER, "tiny/tokenizer.json").unwrap();
    let (_, eos, pad) = common::tiny::tiny_prompts(1, 0);
    let tasks: Vec<Task> = gsm_mini(8, 11)
        .iter()
        .flat_map(|p| {
            let task = Task {
                prompt_ids: tokenizer.encode(&gsm8k_prompt(&p.question)).unwrap(),
                reference_answer: p.final_answer().unwrap(),
            };
            std::iter::repeat_n(task, 4)
        })
        .collect();
    let run = |group: Option<GroupParams>, score_advantages: ScoreAdvantages| {
        let config = ExperienceConfig {
            sampling: SamplingParams::new(1.0, 0, 1.0).unwrap(),
            max_new_tokens: 48,
            eos_ids: vec![eos],
            pad_id: pad,
            n_top: 0,
            gae: GaeParams::new(1.0, 0.95).unwrap(),
            kl_coeff: 0.05,
            kl_estimator: KlEstimator::K1,
            whiten_advantages: true,
            group,
            member: match score_advantages.baseline {
                Baseline::LeaveOneOut => Family::Rloo,
                _ => Family::Reinforce,
            },
            score_advantages,
        };
        block_on(collect_experience(
            &model,
            &reference,
            &tokenizer,
            &tasks,
            &config,
            &REFERENCE,
            &mut Rng::new(5),
        ))
        .unwrap()
    };
    let grouped = Some(GroupParams {
        group_size: 4,
        scale: RewardScale::None,
    });
    for (group, sa) in [
        (
            grouped,
            ScoreAdvantages {
                baseline: Baseline::LeaveOneOut,
                score_kl: 0.5,
                normalise: false,
                dynamic_sampling: false,
            },
        ),
        (
            grouped,
            ScoreAdvantages {
                baseline: Baseline::LeaveOneOut,
                score_kl: 0.0,
                normalise: true,
                dynamic_sampling: false,
            },
        ),
        (
            None,
            ScoreAdvantages {
                baseline: Baseline::BatchMean,
                score_kl: 0.5,
                normalise: false,
                dynamic_sampling: false,
            },
        ),
    ] {
        let e = run(group, sa);
        let what = format!("{sa:?}");
        let scores: Vec<f32> = e.scores.iter().map(|s| s.reward()).collect();
        let mask = &e.rollout.response_mask;
        let penalised: Vec<f32> = kl_penalised_scores_ref(
            &scores,
            &e.rollout.logprobs,
            &e.ref_logprobs,
            mask,
            sa.score_kl,
        )
        .iter()
        .map(|s| s.penalised)
        .collect();
        let mut want = match sa.baseline {
            Baseline::LeaveOneOut => leave_one_out_ref(&penalised, 4).unwrap().advantages(),
            _ => {
                ppo_lens::ppo::batch_baseline::batch_mean_ref(&penalised)
                    .unwrap()
                    .advantages
            }
        };
        if sa.normalise {
            want = normalise_over_batch_ref(&want).unwrap().0;
        }
        assert!(want.iter().any(|a| a.abs() > 1e-2), "{what}: some signal");
        if sa.score_kl > 0.0 {
            // The KL moved the scores: the advantages are not those of the raw scores.
            assert!(
                penalised
                    .iter()
                    .zip(&scores)
                    .any(|(p, s)| (p - s).abs() > 1e-2),
                "{what}"
            );
        }
        // The summed KLs are tens of nats: f32 sums in another order differ by about 1e-6 of them.
        let scale = penalised.iter().fold(1f32, |m, p| m.max(p.abs()));
        let want = broadcast_rows(&want, mask);
        let batch = e.batch();
        for (got, want) in batch.advantages.iter().flatten().zip(want.iter().flatten()) {
            assert!((got - want).abs() < 1e-5 * scale, "{what}: {got} vs {want}");
        }
        // The comparison the page shows gives the member's own numbers (unnormalised members).
        if !sa.normalise {
            let member = match sa.baseline {
                Baseline::LeaveOneOut => Family::Rloo,
                _ => Family::Reinforce,
            };
            let view = BatchView {
                scores: &scores,
                logprobs: &e.rollout.logprobs,
                ref_logprobs: &e.ref_logprobs,
                response_mask: mask,
                ppo_advantages: &e.advantages,
                group_size: if group.is_some() { 4 } else { 1 },
                max_len: mask[0].len(),
            };
            let shown = member_advantages(member, &view, sa.score_kl).unwrap();
            for (got, want) in shown
                .tokens
                .iter()
                .flatten()
                .zip(batch.advantages.iter().flatten())
            {
                assert!(
                    (got - want).abs() < 1e-5 * scale,
                    "{what}: shown {got} vs {want}"
                );
            }
        }
    }
}

/// The pushes the page's comparison shows are the losses' own gradients: at the update's first
/// step (new log-probabilities equal to the old, the ratio 1) the derivative of each member's
/// surrogate loss, computed by its loss function over the rows it keeps, with respect to a
/// token's new log-probability is minus `A * w`: central differences of the scalar form on every
/// real token, and autodiff through the tensor form the update runs.
#[test]
fn each_members_pushes_are_its_losss_gradient_at_the_first_step() {
    use ppo_lens::ppo::policy_loss::policy_loss_ref;
    let fixture = fixture();
    let c = &of_trainer(&fixture, "grpo", 3)[0];
    let (b, g) = (c.response_mask.len(), c.group_size);
    assert!(b >= 2 * g, "two groups at least");
    // Group 0 keeps TRL's rewards; group 1 is all wrong, so DAPO drops it.
    let mut scores = c.rewards.clone();
    scores[g..2 * g].fill(0.0);
    let lengths: Vec<f32> = c.response_mask.iter().map(|m| m.iter().sum()).collect();
    assert!(lengths.iter().any(|&l| l != lengths[0]), "{lengths:?}");
    let ppo: Vec<Vec<f32>> = (c.response_mask.iter().enumerate())
        .map(|(i, m)| m.iter().map(|x| x * (i as f32 - 2.5)).collect())
        .collect();
    let max_len = c.response_mask[0].len();
    let view = BatchView {
        scores: &scores,
        logprobs: &c.logprobs_old,
        ref_logprobs: &c.ref_logprobs,
        response_mask: &c.response_mask,
        ppo_advantages: &ppo,
        group_size: g,
        max_len,
    };
    for f in Family::ALL {
        let m = member_advantages(f, &view, 0.1).unwrap();
        let objective = f.objective(0.2, max_len);
        let keep = |rows: &[Vec<f32>]| -> Vec<Vec<f32>> {
            (rows.iter().zip(&m.dropped))
                .filter(|(_, d)| !**d)
                .map(|(r, _)| r.clone())
                .collect()
        };
        let (old, mask, adv) = (
            keep(&c.logprobs_old),
            keep(&c.response_mask),
            keep(&m.tokens),
        );
        let loss = |new: &[Vec<f32>]| -> f64 {
            let new = keep(new);
            let loss = match (f, objective.unit) {
                (Family::Ppo, _) => {
                    let flat =
                        |x: &[Vec<f32>]| -> Vec<f32> { x.iter().flatten().copied().collect() };
                    policy_loss_ref(&flat(&new), &flat(&old), &flat(&adv), &flat(&mask), 0.2).loss
                }
                (_, Unit::Token(agg)) => {
                    let rows = GrpoRows {
                        logprobs_new: &new,
                        logprobs_old: &old,
                        ref_logprobs: &keep(&c.ref_logprobs),
                        advantages: &adv,
                        response_mask: &mask,
                    };
                    grpo_loss_ref(&rows, objective.clip.unwrap(), 0.0, agg).loss
                }
                (_, Unit::Response) => {
                    let per = m.per_response.as_ref().unwrap();
                    let per: Vec<f32> = (per.iter().zip(&m.dropped))
                        .filter(|(_, d)| !**d)
                        .map(|(a, _)| *a)
                        .collect();
                    sequence_loss_ref(
                        &new,
                        &old,
                        &per,
                        &mask,
                        objective.clip.unwrap_or(ClipRange::NONE),
                    )
                    .loss
                }
            };
            loss as f64
        };
        // The tensor loss the update runs, through autodiff: its gradient with respect to the
        // new log-probabilities of the kept rows is minus the push of each token.
        let device = burn::tensor::Device::flex().autodiff();
        let rows = |x: &[Vec<f32>]| t2(x, &device);
        let new = rows(&old).require_grad();
        let tensor_loss = match (f, objective.unit) {
            (Family::Ppo, _) => {
                policy_loss(new.clone(), rows(&old), rows(&adv), rows(&mask), 0.2).loss
            }
            (_, Unit::Token(agg)) => {
                let reference = rows(&keep(&c.ref_logprobs));
                let clip = objective.clip.unwrap();
                grpo_loss(
                    new.clone(),
                    rows(&old),
                    reference,
                    rows(&adv),
                    rows(&mask),
                    clip,
                    0.0,
                    agg,
                )
                .loss
            }
            (_, Unit::Response) => {
                let per: Vec<f32> = (m.per_response.as_ref().unwrap().iter())
                    .zip(&m.dropped)
                    .filter(|(_, d)| !**d)
                    .map(|(a, _)| *a)
                    .collect();
                let per =
                    Tensor::<1>::from_data(TensorData::new(per.clone(), [per.len()]), &device);
                let clip = objective.clip.unwrap_or(ClipRange::NONE);
                sequence_loss(new.clone(), rows(&old), per, rows(&mask), clip).loss
            }
        };
        let grad: Vec<f32> = (new
            .grad(&tensor_loss.backward())
            .unwrap()
            .to_data()
            .iter::<f32>())
        .collect();
        let kept: Vec<usize> = (0..b).filter(|&i| !m.dropped[i]).collect();
        assert_eq!(grad.len(), kept.len() * max_len);
        for (k, &i) in kept.iter().enumerate() {
            for t in 0..max_len {
                let (got, push) = (grad[k * max_len + t], m.push(i, t));
                assert!(
                    (got + push).abs() <= 1e-4 * push.abs() + 1e-7,
                    "{}: autodiff row {i} token {t}: gradient {got}, push {push}",
                    f.name()
                );
            }
        }

        let h = 1e-2f32;
        let mut pushed = 0;
        for i in 0..b {
            for t in 0..max_len {
                if c.response_mask[i][t] == 0.0 {
                    continue;
                }
                let mut new = c.logprobs_old.clone();
                new[i][t] += h;
                let up = loss(&new);
                new[i][t] -= 2.0 * h;
                let gradient = (up - loss(&new)) / (2.0 * h as f64);
                let push = m.push(i, t) as f64;
                assert!(
                    (gradient + push).abs() <= 1e-3 * push.abs() + 1e-6,
                    "{} row {i} token {t}: gradient {gradient}, push {push}",
                    f.name()
                );
                pushed += usize::from(push != 0.0);
            }
        }
        assert!(pushed > 0, "{}", f.name());
    }
}
