//! The classroom views' numbers on real iterations of the tiny model: a replay with the
//! iteration's own settings is its update again, pushing harder makes tokens clip, a pinned
//! problem stays in row 0, attention maps of any kept row, and the what-if recompute.

mod common;

use burn::tensor::Device;
use ppo_lens::compute::block_on;
use ppo_lens::explore::{WhatIf, clip_cases, gae_input_json, policy_case, what_if};
use ppo_lens::lab::run::{KEPT_ITERATIONS, Lab};
use ppo_lens::lab::settings::LabSettings;
use ppo_lens::ppo::gae::GaeParams;
use ppo_lens::ppo::rewards::KlEstimator;

fn settings() -> LabSettings {
    LabSettings {
        rollouts: 6,
        minibatch: 3,
        max_new_tokens: 16,
        ..LabSettings::default()
    }
}

#[test]
fn a_replay_with_the_iterations_own_settings_is_its_update_and_pushing_harder_clips() {
    let s = settings();
    let mut lab = Lab::new(&s, &Device::flex()).unwrap();
    let first = block_on(lab.iterate(&s, Some(0))).unwrap();
    let second = block_on(lab.iterate(&s, Some(0))).unwrap();
    for (iteration, walk) in [(1, &first), (2, &second)] {
        let same = block_on(lab.replay(iteration, s.lr, s.epochs)).unwrap();
        assert_eq!(same.stats, walk.stats, "iteration {iteration}");
        assert_eq!(same.policy_after, walk.policy_after);
        assert_eq!(same.value_after, walk.value_after);
    }
    // The replay changed nothing: the next iteration is the one a lab without replays makes.
    let third = block_on(lab.iterate(&s, Some(0))).unwrap();
    let mut plain = Lab::new(&s, &Device::flex()).unwrap();
    for _ in 0..2 {
        block_on(plain.iterate(&s, Some(0))).unwrap();
    }
    let mut expected = block_on(plain.iterate(&s, Some(0))).unwrap();
    expected.times = third.times;
    assert_eq!(third, expected);

    let eps = s.clip;
    let normal = clip_cases(&first.policy_after, eps);
    let harder = block_on(lab.replay(1, s.lr * 10.0, 8)).unwrap();
    let pushed = clip_cases(&harder.policy_after, eps);
    assert_eq!(harder.update.epochs, 8);
    assert!(
        pushed.clipped > normal.clipped
            && harder.stats.policy_clip_frac > first.stats.policy_clip_frac,
        "normal {normal:?} {:?}, pushed {pushed:?} {:?}",
        first.stats,
        harder.stats
    );
    assert!(harder.stats.policy_clip_frac > 0.0 && harder.stats.approx_kl > first.stats.approx_kl);
    // The six cases count every real token once, and the clipped ones are where the loss says.
    let real: usize = harder.policy_after.iter().map(|p| p.tokens.len()).sum();
    let counted: usize = pushed.counts.iter().flatten().sum::<usize>() + pushed.zero;
    assert_eq!((pushed.total, counted), (real, real));
    let flagged = harder
        .policy_after
        .iter()
        .flat_map(|p| &p.tokens)
        .filter(|t| t.clip != ppo_lens::ppo::policy_loss::PolicyClip::No)
        .count();
    assert_eq!(pushed.clipped, flagged);
    assert_eq!(pushed.clipped, pushed.counts[0][2] + pushed.counts[1][0]);
    for t in harder.policy_after.iter().flat_map(|p| &p.tokens) {
        assert_eq!(
            policy_case(t.ratio, t.advantage, eps).clipped_wins,
            t.clip != ppo_lens::ppo::policy_loss::PolicyClip::No
        );
    }

    for (lr, epochs, needle) in [
        (0.0, 2, "learning rate 0"),
        (1e-4, 0, "epochs 0"),
        (1e-4, 99, "epochs 99"),
    ] {
        let err = block_on(lab.replay(1, lr, epochs)).unwrap_err();
        assert!(err.contains(needle), "{err}");
    }
    let err = block_on(lab.replay(7, s.lr, 1)).unwrap_err();
    assert!(err.contains("iteration 7"), "{err}");
}

#[test]
fn only_the_last_iterations_are_kept() {
    let s = LabSettings {
        rollouts: 2,
        minibatch: 2,
        max_new_tokens: 2,
        epochs: 1,
        ..LabSettings::default()
    };
    let mut lab = Lab::new(&s, &Device::flex()).unwrap();
    for _ in 0..KEPT_ITERATIONS + 1 {
        block_on(lab.iterate(&s, None)).unwrap();
    }
    let err = block_on(lab.attention(1, 0)).unwrap_err();
    assert!(
        err.contains("no longer kept") && err.contains("the last 20"),
        "{err}"
    );
    assert!(block_on(lab.attention(2, 0)).is_ok());
}

#[test]
fn a_pinned_problem_is_asked_in_row_0_and_attention_follows_any_row() {
    let s = settings();
    let mut lab = Lab::new(&s, &Device::flex()).unwrap();
    let walk = block_on(lab.iterate(&s, Some(2))).unwrap();
    let problems = lab.problems().to_vec();
    assert_eq!(problems.len(), s.rollouts);
    // The maps the iteration kept for row 2 are the ones asked for afterwards.
    assert_eq!(
        block_on(lab.attention(1, 2)).unwrap(),
        walk.attention.unwrap()
    );
    let other = block_on(lab.attention(1, 4)).unwrap();
    assert_eq!(other.row, 4);
    assert!(
        block_on(lab.attention(1, 6))
            .unwrap_err()
            .contains("outside the batch of 6")
    );

    let pinned = problems[3];
    lab.pinned = Some(pinned);
    for _ in 0..3 {
        let walk = block_on(lab.iterate(&s, None)).unwrap();
        assert_eq!(lab.problems()[0], pinned);
        let mut sorted = lab.problems().to_vec();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), s.rollouts, "distinct problems");
        assert_eq!(walk.experience.responses.len(), s.rollouts);
    }
    lab.pinned = Some(10_000);
    let err = block_on(lab.iterate(&s, None)).unwrap_err();
    assert!(err.contains("pinned problem 10000"), "{err}");
}

fn assert_rows(name: &str, got: &[Vec<f32>], expected: &[Vec<f32>], tol: f32) {
    assert_eq!(got.len(), expected.len(), "{name}");
    for (b, (g, e)) in got.iter().zip(expected).enumerate() {
        for (t, (g, e)) in g.iter().zip(e).enumerate() {
            assert!((g - e).abs() <= tol, "{name}[{b}][{t}]: {g} vs {e}");
        }
    }
}

fn rows_of(v: &serde_json::Value, key: &str) -> Vec<Vec<f32>> {
    v[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect()
}

#[test]
fn what_if_with_the_batch_settings_is_the_batch_and_other_settings_match_the_cli() {
    let s = settings();
    let mut lab = Lab::new(&s, &Device::flex()).unwrap();
    let walk = block_on(lab.iterate(&s, None)).unwrap();
    let exp = &walk.experience;
    let params = walk.gae[0].params;
    let own = what_if(exp, WhatIf::of(exp, params, true)).unwrap();
    assert_rows("kl", &own.kl, &exp.kl, 1e-6);
    assert_rows("rewards", &own.rewards, &exp.rewards, 1e-6);
    assert_rows("advantages", &own.advantages, &exp.raw_advantages, 1e-5);
    assert_rows("returns", &own.returns, &exp.returns, 1e-5);
    assert_rows("used", &own.used, &exp.advantages, 1e-5);

    for estimator in [KlEstimator::K1, KlEstimator::K2, KlEstimator::K3] {
        let w = WhatIf {
            gamma: 0.9,
            lam: 0.5,
            kl_coeff: 0.3,
            estimator,
            whiten: true,
        };
        let got = what_if(exp, w).unwrap();
        for (b, row) in got.kl.iter().enumerate() {
            for (t, k) in row.iter().enumerate() {
                let m = exp.rollout.response_mask[b][t];
                let want =
                    m * estimator.estimate(exp.rollout.logprobs[b][t], exp.ref_logprobs[b][t]);
                assert_eq!(*k, want, "{estimator:?} kl[{b}][{t}]");
            }
        }
        let cli = common::cli::gae_whiten(
            &gae_input_json(
                &got.rewards,
                &exp.rollout.values,
                &exp.rollout.response_mask,
                w.gamma,
                w.lam,
            ),
            &format!("explore-{estimator:?}"),
        );
        assert_rows(
            "advantages vs cli",
            &got.advantages,
            &rows_of(&cli, "advantages"),
            1e-6,
        );
        assert_rows(
            "returns vs cli",
            &got.returns,
            &rows_of(&cli, "returns"),
            1e-6,
        );
        assert_rows(
            "whitened vs cli",
            &got.used,
            &rows_of(&cli, "whitened"),
            1e-6,
        );
    }
    let off = what_if(
        exp,
        WhatIf {
            whiten: false,
            ..WhatIf::of(exp, params, true)
        },
    )
    .unwrap();
    assert_eq!(off.used, off.advantages);
    let err = what_if(
        exp,
        WhatIf {
            gamma: 1.5,
            ..WhatIf::of(exp, GaeParams::new(1.0, 0.95).unwrap(), true)
        },
    )
    .unwrap_err();
    assert!(err.contains("gamma = 1.5"), "{err}");
    let err = what_if(
        exp,
        WhatIf {
            kl_coeff: -1.0,
            ..WhatIf::of(exp, params, true)
        },
    )
    .unwrap_err();
    assert!(err.contains("β = -1"), "{err}");
}

/// Samples per prompt: the lab arranges the batch as groups of one problem, computes GRPO's
/// advantages beside PPO's on the same responses, and trains with either.
#[test]
fn grouped_batches_carry_both_advantages_and_grpo_trains() {
    use ppo_lens::explore::compare_advantages;
    use ppo_lens::ppo::family::Family;
    use ppo_lens::ppo::group_advantages::{RewardScale, broadcast_rows, group_advantages_ref};

    // At 48 new tokens the first batch has a group whose rewards differ, so the two advantages
    // have something to disagree on.
    let mut s = LabSettings {
        rollouts: 8,
        minibatch: 4,
        max_new_tokens: 48,
        group: 4,
        ..LabSettings::default()
    };
    let mut lab = Lab::new(&s, &Device::flex()).unwrap();
    let ppo = block_on(lab.iterate(&s, Some(0))).unwrap();
    let exp = &ppo.experience;
    // Rows 0-3 ask one problem, rows 4-7 another.
    let prompts: Vec<&Vec<u32>> = exp.rollout.ids.iter().collect();
    let p = exp.rollout.prompt_len;
    for b in 1..4 {
        assert_eq!(prompts[b][..p], prompts[0][..p]);
        assert_eq!(prompts[4 + b][..p], prompts[4][..p]);
    }
    assert_ne!(prompts[0][..p], prompts[4][..p]);
    let scores: Vec<f32> = exp.scores.iter().map(|s| s.reward()).collect();
    let want = group_advantages_ref(&scores, 4, RewardScale::Group).unwrap();
    assert_eq!(exp.group.as_ref(), Some(&want));
    let rows = broadcast_rows(&want.advantages(), &exp.rollout.response_mask);
    for (got, want) in exp
        .group_advantages
        .iter()
        .flatten()
        .zip(rows.iter().flatten())
    {
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }
    // PPO trained on GAE's advantages: the value loss ran.
    assert_eq!(exp.member, Family::Ppo);
    assert!(ppo.stats.loss_value > 0.0 && ppo.stats.loss_kl == 0.0);
    let c = compare_advantages(exp).unwrap();
    assert_eq!(
        c.real_tokens,
        exp.rollout
            .response_mask
            .iter()
            .flatten()
            .filter(|&&m| m == 1.0)
            .count()
    );
    // Exactly the real tokens where the two advantages have opposite signs, each once.
    assert_eq!(c.disagree.len(), exp.rollout.ids.len());
    assert!(c.disagree_total() > 0);
    // The tokens of the groups whose rewards are all equal, and those groups.
    let group = exp.group.as_ref().unwrap();
    let zero_groups: Vec<usize> = (0..group.groups.len())
        .filter(|&g| group.groups[g].zero_spread)
        .collect();
    assert_eq!(c.zero_groups, zero_groups);
    assert!(zero_groups.len() < group.groups.len(), "{scores:?}");
    let zero_tokens: usize = (zero_groups.iter())
        .flat_map(|&g| {
            let step = &group.groups[g];
            step.first_row..step.first_row + step.rewards.len()
        })
        .map(|b| {
            exp.rollout.response_mask[b]
                .iter()
                .filter(|&&m| m == 1.0)
                .count()
        })
        .sum();
    assert_eq!(c.zero_tokens, zero_tokens);
    for (b, tokens) in c.disagree.iter().enumerate() {
        let want: Vec<usize> = (0..exp.rollout.response_len())
            .filter(|&t| exp.rollout.response_mask[b][t] == 1.0)
            .filter(|&t| exp.advantages[b][t] * exp.group_advantages[b][t] < 0.0)
            .collect();
        assert_eq!(tokens, &want, "row {b}");
    }

    // GRPO: the group advantages are the update's; no value loss, the KL term is there.
    s.algo = Family::Grpo;
    let grpo = block_on(lab.iterate(&s, Some(0))).unwrap();
    assert_eq!(grpo.experience.member, Family::Grpo);
    assert_eq!(grpo.update.grpo.map(|g| g.beta), Some(s.beta));
    assert_eq!(grpo.stats.loss_value, 0.0);
    assert!(grpo.stats.loss_kl.is_finite() && grpo.stats.optimizer_steps == 4);
    assert_eq!(
        grpo.experience.batch().advantages,
        grpo.experience.group_advantages
    );

    // Settings that cannot be grouped are refused by name.
    s.group = 3;
    let err = block_on(lab.iterate(&s, Some(0))).unwrap_err();
    assert_eq!(
        err,
        "samples per prompt (3) does not divide rollouts per iteration (8)"
    );
    s.group = 1;
    let err = block_on(lab.iterate(&s, Some(0))).unwrap_err();
    assert!(
        err.starts_with("GRPO compares samples of one prompt"),
        "{err}"
    );
}

/// Every member trains in the page's lab as `Family::setup` makes it (the trainer's setup too):
/// the update's critic-free loss is the member's, the advantages it takes are the ones
/// `compare_members` shows for the batch (RLOO's and REINFORCE's with the `beta` setting), and
/// DAPO's update sees only the groups whose rewards differ. What a member cannot run is refused
/// by name.
#[test]
fn every_member_trains_in_the_lab_as_its_setup_says() {
    use ppo_lens::explore::compare_members;
    use ppo_lens::ppo::Algorithm;
    use ppo_lens::ppo::family::Family;

    let base = LabSettings {
        rollouts: 8,
        minibatch: 4,
        max_new_tokens: 48,
        group: 4,
        ..LabSettings::default()
    };
    let rloo_alone = LabSettings {
        algo: Family::Rloo,
        group: 1,
        ..base.clone()
    };
    let err = rloo_alone.groups().unwrap_err();
    assert!(err.key == "algo" && err.message.contains("RLOO"), "{err}");
    let reinforce_twice = LabSettings {
        algo: Family::Reinforce,
        ..base.clone()
    };
    let err = reinforce_twice.groups().unwrap_err();
    assert!(
        err.key == "epochs" && err.message.contains("REINFORCE"),
        "{err}"
    );
    // DAPO's lower clip must stay under its upper one.
    let dapo_wide = LabSettings {
        algo: Family::Dapo,
        clip: 0.3,
        ..base.clone()
    };
    let err = dapo_wide.groups().unwrap_err();
    assert!(err.key == "clip" && err.message.contains("0.28"), "{err}");
    for f in Family::ALL {
        let s = LabSettings {
            algo: f,
            epochs: if f == Family::Reinforce { 1 } else { 2 },
            ..base.clone()
        };
        let mut lab = Lab::new(&s, &Device::flex()).unwrap();
        let walk = block_on(lab.iterate(&s, Some(0))).unwrap();
        let e = &walk.experience;
        assert_eq!(e.member, f);
        assert_eq!(walk.update.grpo, s.member_setup().grpo, "{}", f.name());
        let cmp = compare_members(e, &[f], walk.family);
        assert_eq!(walk.family, s.member_params());
        let shown = cmp.members[0].1.as_ref().unwrap();
        let used = match e.algorithm() {
            Algorithm::Ppo => &e.advantages,
            Algorithm::Grpo => &e.group_advantages,
        };
        assert_eq!(used.len(), shown.tokens.len(), "{}", f.name());
        assert!(
            used.iter()
                .zip(&shown.tokens)
                .all(|(a, b)| a.len() == b.len())
        );
        for (got, want) in used.iter().flatten().zip(shown.tokens.iter().flatten()) {
            assert!(
                (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                "{}: the update's {got}, the panel's {want}",
                f.name()
            );
        }
        // The Update stage's tokens (and the clip explorer) carry the advantages the update used.
        for (b, trace) in walk.policy_after.iter().enumerate() {
            for tok in &trace.tokens {
                assert_eq!(tok.advantage, used[b][tok.t], "{} row {b}", f.name());
            }
        }
        // DAPO's update sees the rows the panel does not mark dropped.
        let kept_rows = shown.dropped.iter().filter(|d| !**d).count();
        assert_eq!(e.kept.is_some(), f == Family::Dapo, "{}", f.name());
        if f == Family::Dapo {
            assert_eq!(e.batch().ids.len(), kept_rows);
        }
        // A batch with something to learn from: a group whose rewards differ, so every member
        // has an advantage that is not 0 and DAPO keeps that group.
        let rewards: Vec<f32> = e.scores.iter().map(|s| s.reward()).collect();
        assert!(
            rewards.chunks(4).any(|g| g.iter().any(|r| *r != g[0])),
            "{}: {rewards:?}",
            f.name()
        );
        assert!(used.iter().flatten().any(|a| *a != 0.0), "{}", f.name());
        assert!(walk.stats.optimizer_steps > 0, "{}", f.name());
    }
}
