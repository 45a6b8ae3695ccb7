//! Every sentence the page computes about whether a token learns, checked against burn's
//! autodiff on the losses the trainer minimises: over a grid of cases, the gradient of the real
//! loss with respect to a token's log-probability (or value) is 0 exactly when the verdict says
//! so. The page's clip explorer, its six clip cases, the ▲/▼ marks and the GRPO panel's
//! zero-spread note all read the functions tested here.

use burn::tensor::{Device, Tensor, TensorData};
use ppo_lens::compute::{block_on, read_f32};
use ppo_lens::explore::{Band, ValueMove, clip_cases, policy_case, value_case};
use ppo_lens::ppo::group_advantages::{RewardScale, group_advantages, scores_tensor};
use ppo_lens::ppo::grpo_loss::{LossAgg, grpo_loss};
use ppo_lens::ppo::policy_loss::{PolicyClip, policy_loss, policy_loss_ref};
use ppo_lens::ppo::value_loss::value_loss;

fn row(values: &[f32], device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(values.to_vec(), [1, values.len()]), device)
}

fn read(t: Tensor<2>) -> Vec<f32> {
    block_on(read_f32(t)).unwrap()
}

const EPS: f32 = 0.2;

/// Ratios on both sides of [0.8, 1.2] and inside it, none on an edge (where the clamp's
/// gradient is a convention, not a fact about the loss).
const RATIOS: [f32; 10] = [0.3, 0.6, 0.75, 0.9, 1.0, 1.1, 1.15, 1.3, 1.8, 3.0];
const ADVANTAGES: [f32; 5] = [-1.7, -0.4, 0.0, 0.25, 2.0];

#[test]
fn the_policy_verdict_says_zero_gradient_exactly_where_the_clipped_surrogate_has_one() {
    let device = Device::flex().autodiff();
    let cases: Vec<(f32, f32)> = RATIOS
        .iter()
        .flat_map(|&r| ADVANTAGES.iter().map(move |&a| (r, a)))
        .collect();
    let new: Vec<f32> = cases.iter().map(|(r, _)| r.ln()).collect();
    let old = vec![0.0; cases.len()];
    let adv: Vec<f32> = cases.iter().map(|(_, a)| *a).collect();
    let mask = vec![1.0; cases.len()];

    let logp = row(&new, &device).require_grad();
    let out = policy_loss(
        logp.clone(),
        row(&old, &device),
        row(&adv, &device),
        row(&mask, &device),
        EPS,
    );
    let grad = read(logp.grad(&out.loss.backward()).unwrap());
    // The scalar trace the page draws its ▲/▼ marks from, on the same numbers.
    let trace = policy_loss_ref(&new, &old, &adv, &mask, EPS);

    let mut clipped = 0;
    for (i, &(r, a)) in cases.iter().enumerate() {
        // The ratio as the loss computed it.
        let ratio = (new[i] - old[i]).exp();
        let case = policy_case(ratio, a, EPS);
        let zero = grad[i] == 0.0;
        assert_eq!(
            zero,
            !case.pushes,
            "ρ = {r}, A = {a}: gradient {}, verdict: {}",
            grad[i],
            case.verdict()
        );
        // The verdict's words follow its flag.
        assert_eq!(
            case.verdict().contains("gradient 0"),
            zero,
            "{}",
            case.verdict()
        );
        // The ▲/▼ marks: a token is marked exactly when the clip (not A = 0) zeroed it.
        let mark = trace.tokens[i].clip;
        assert_eq!(
            mark != PolicyClip::No,
            case.clipped_wins,
            "ρ = {r}, A = {a}"
        );
        assert_eq!(mark == PolicyClip::AboveBand, case.clipped_wins && a > 0.0);
        assert_eq!(mark == PolicyClip::BelowBand, case.clipped_wins && a < 0.0);
        // The clip only ever zeroes the side the advantage pushes.
        if case.clipped_wins {
            clipped += 1;
            assert!(
                (a > 0.0 && case.band == Band::Above) || (a < 0.0 && case.band == Band::Below),
                "ρ = {r}, A = {a}"
            );
        }
    }
    // The six cases count the same tokens as clipped.
    let cases_count = clip_cases(std::slice::from_ref(&trace), EPS);
    assert_eq!(cases_count.clipped, clipped);
    assert_eq!(cases_count.counts[0][2] + cases_count.counts[1][0], clipped);
    assert!(clipped >= 4, "the grid must clip on both sides: {clipped}");
}

/// (V_old, c, R, V_new), the whole grid, none with V_new on a band edge.
fn value_grid() -> Vec<(f32, f32, f32, f32)> {
    let mut grid = Vec::new();
    for (v_old, c) in [(0.0f32, 0.2f32), (1.0, 0.5)] {
        for r_off in [-2.0f32, -0.6, -0.1, 0.0, 0.15, 0.3, 0.45, 1.0, 2.5] {
            for v_off in [
                -3.0f32, -0.9, -0.35, -0.05, 0.0, 0.1, 0.27, 0.4, 0.55, 0.8, 1.6,
            ] {
                let (ret, v_new) = (v_old + r_off, v_old + v_off);
                if (v_new - (v_old - c)).abs() < 1e-6 || (v_new - (v_old + c)).abs() < 1e-6 {
                    continue;
                }
                grid.push((v_old, c, ret, v_new));
            }
        }
    }
    grid
}

#[test]
fn the_value_verdict_says_zero_gradient_exactly_where_the_clipped_value_loss_has_one() {
    let device = Device::flex().autodiff();
    // One column a case; the clip range is one number per call, so one pass per c.
    let mut seen = std::collections::BTreeSet::new();
    for c in [0.2f32, 0.5] {
        let grid: Vec<_> = value_grid().into_iter().filter(|g| g.1 == c).collect();
        let v_old: Vec<f32> = grid.iter().map(|g| g.0).collect();
        let ret: Vec<f32> = grid.iter().map(|g| g.2).collect();
        let v_new: Vec<f32> = grid.iter().map(|g| g.3).collect();
        let mask = vec![1.0; grid.len()];
        let values = row(&v_new, &device).require_grad();
        let out = value_loss(
            values.clone(),
            row(&v_old, &device),
            row(&ret, &device),
            row(&mask, &device),
            c,
        );
        let grad = read(values.grad(&out.loss.backward()).unwrap());
        for (i, &(vo, c, r, vn)) in grid.iter().enumerate() {
            let case = value_case(vo, vn, r, c);
            // A tie between the two errors outside the band is where max() has no single
            // gradient: not a case a verdict can be right or wrong about.
            if case.band != Band::Inside && (case.clipped - case.unclipped).abs() < 1e-5 {
                continue;
            }
            let zero = grad[i] == 0.0;
            let verdict = case.verdict();
            assert_eq!(
                zero, !case.learns,
                "V_old {vo}, V_new {vn}, R {r}, c {c}: gradient {}, verdict: {verdict}",
                grad[i]
            );
            assert_eq!(
                verdict.contains("gradient is 0") || verdict.contains("no value gradient"),
                zero,
                "{verdict}"
            );
            // The verdict names the direction V_new moved, from the numbers.
            match case.moved {
                ValueMove::Toward => assert!(
                    verdict.contains("toward R") || case.band == Band::Inside,
                    "{verdict}"
                ),
                ValueMove::Away => assert!(
                    verdict.contains("away from R") || case.band == Band::Inside,
                    "{verdict}"
                ),
                ValueMove::Still => assert_eq!(case.band, Band::Inside),
            }
            // Where the clip zeroes the gradient: outside the band, having moved toward R.
            if case.clip_zeroes {
                assert!(
                    case.band != Band::Inside && case.moved == ValueMove::Toward,
                    "{verdict}"
                );
                assert!(case.overshoot < (case.ret - edge(&case)).abs(), "{verdict}");
            }
            seen.insert(kind(&case));
        }
    }
    // The grid reaches every kind of case on both sides of the band.
    for side in [Band::Below, Band::Above] {
        for k in ["clipped toward", "away", "overshot"] {
            assert!(
                seen.contains(&(side.key(), k)),
                "no case {k} {side:?}: {seen:?}"
            );
        }
    }
    assert!(seen.contains(&("inside", "inside")));
}

fn edge(case: &ppo_lens::explore::ValueCase) -> f32 {
    if case.value_new >= case.value_old {
        case.value_old + case.c
    } else {
        case.value_old - case.c
    }
}

fn kind(case: &ppo_lens::explore::ValueCase) -> (&'static str, &'static str) {
    let k = if case.band == Band::Inside {
        "inside"
    } else if case.clip_zeroes {
        "clipped toward"
    } else if case.moved == ValueMove::Away {
        "away"
    } else {
        "overshot"
    };
    (case.band.key(), k)
}

#[test]
fn the_value_direction_is_read_from_v_old_v_new_and_r_on_both_sides_of_the_band() {
    // V_old = 0, c = 0.2: the band is [-0.2, 0.2].
    let cases = [
        // (V_new, R, moved, overshoot, the clipped error wins)
        (0.5, 1.0, ValueMove::Toward, 0.0, true), // up toward R above, short of it
        (-0.5, -1.0, ValueMove::Toward, 0.0, true), // down toward R below, short of it
        (-0.5, 1.0, ValueMove::Away, 0.0, false), // down, R above
        (0.5, -1.0, ValueMove::Away, 0.0, false), // up, R below
        (0.35, 0.3, ValueMove::Toward, 0.05, true), // passed R by 0.05 < 0.3 - 0.2
        (-0.35, -0.3, ValueMove::Toward, 0.05, true),
        (0.6, 0.3, ValueMove::Toward, 0.3, false), // passed R by 0.3 > 0.1
        (-0.6, -0.3, ValueMove::Toward, 0.3, false),
        (0.5, 0.0, ValueMove::Away, 0.0, false), // R = V_old: every move is away
        (0.1, 1.0, ValueMove::Toward, 0.0, false), // inside: both errors equal
        (0.0, 1.0, ValueMove::Still, 0.0, false),
    ];
    for (v_new, ret, moved, overshoot, clipped) in cases {
        let case = value_case(0.0, v_new, ret, 0.2);
        assert_eq!(case.moved, moved, "V_new {v_new}, R {ret}");
        assert!(
            (case.overshoot - overshoot).abs() < 1e-6,
            "V_new {v_new}, R {ret}: {case:?}"
        );
        assert_eq!(
            case.clip_zeroes, clipped,
            "V_new {v_new}, R {ret}: {case:?}"
        );
        assert_eq!(case.learns, !clipped, "V_new {v_new}, R {ret}");
    }
    let toward = value_case(0.0, 0.5, 1.0, 0.2).verdict();
    assert!(
        toward.starts_with("V_new = 0.500 moved toward R = 1.000 from V_old = 0.000"),
        "{toward}"
    );
    let away = value_case(0.0, -0.5, 1.0, 0.2).verdict();
    assert!(
        away.contains("moved away from R") && away.contains("pulls V_new back toward R"),
        "{away}"
    );
}

/// GRPO's zero-spread groups: every advantage is 0, so the policy-gradient term gives those
/// tokens no gradient (no reward signal), but the β·k3 KL term still does.
#[test]
fn a_zero_spread_group_has_no_reward_signal_but_the_kl_term_still_moves_it() {
    let device = Device::flex().autodiff();
    // Two groups of 2: rewards (1, 1) equal, (0, 1) not; 3 tokens each.
    let scores = scores_tensor(&[1.0, 1.0, 0.0, 1.0], &device);
    let mask = Tensor::<2>::ones([4, 3], &device);
    let adv = group_advantages(scores, mask.clone(), 2, RewardScale::Group);
    let a = read(adv.clone());
    assert!(a[..6].iter().all(|&x| x == 0.0), "{a:?}");
    assert!(a[6..].iter().all(|&x| x != 0.0), "{a:?}");

    let new: Vec<f32> = (0..12).map(|i| -1.0 - 0.1 * i as f32).collect();
    let old: Vec<f32> = new.iter().map(|x| x + 0.05).collect();
    let reference: Vec<f32> = new.iter().map(|x| x - 0.3).collect();
    let t = |v: &[f32]| Tensor::<2>::from_data(TensorData::new(v.to_vec(), [4, 3]), &device);
    for beta in [0.0f32, 0.04] {
        let logp = t(&new).require_grad();
        let out = grpo_loss(
            logp.clone(),
            t(&old),
            t(&reference),
            adv.clone(),
            mask.clone(),
            EPS,
            beta,
            LossAgg::TokenMean,
        );
        let grad = read(logp.grad(&out.loss.backward()).unwrap());
        let zero_group_moves = grad[..6].iter().any(|&g| g != 0.0);
        assert_eq!(zero_group_moves, beta > 0.0, "β = {beta}: {grad:?}");
        assert!(grad[6..].iter().all(|&g| g != 0.0), "β = {beta}: {grad:?}");
    }
}
