//! What the page says about its numbers (`ppo_lens::explain`), on real iterations of the tiny
//! model: every provenance recomputes the number it explains from the cells it names, every
//! note's claim holds for the batch, and the loop's shapes are the batch's.

use burn::tensor::Device;
use ppo_lens::compute::block_on;
use ppo_lens::explain::format::num;
use ppo_lens::explain::guide::{LOOP, TOUR, loop_edges, tour_member_note};
use ppo_lens::explain::math;
use ppo_lens::explain::notes::notes;
use ppo_lens::explain::provenance::{Quantity, provenance};
use ppo_lens::explain::stage::{
    StageKey, exercise_check_inputs, followed, left_out, left_out_token, real_len,
};
use ppo_lens::lab::run::Lab;
use ppo_lens::lab::settings::LabSettings;
use ppo_lens::lab::walkthrough::Walkthrough;
use ppo_lens::ppo::gae::{GaeParams, GaeStep};

fn two_iterations(settings: &LabSettings) -> (Walkthrough, Walkthrough) {
    let mut lab = Lab::new(settings, &Device::flex()).unwrap();
    let first = block_on(lab.iterate(settings, Some(0))).unwrap();
    let second = block_on(lab.iterate(settings, Some(0))).unwrap();
    (first, second)
}

fn settings() -> LabSettings {
    LabSettings {
        rollouts: 6,
        minibatch: 3,
        max_new_tokens: 20,
        ..LabSettings::default()
    }
}

/// The value a provenance term names, read from the walkthrough the way the page's cell shows it.
fn cell_value(walk: &Walkthrough, row: usize, testid: &str) -> f32 {
    let (name, index) = testid.rsplit_once('-').unwrap();
    let i: usize = index.parse().unwrap();
    let exp = &walk.experience;
    let policy = |t: usize| {
        walk.policy_after[row]
            .tokens
            .iter()
            .find(|p| p.t == t)
            .unwrap()
            .clone()
    };
    match name {
        "gae-reward" => exp.rewards[row][i],
        "gae-value" => exp.rollout.values[row][i],
        "gae-delta" => walk.gae[row].deltas[i],
        "gae-adv" => walk.gae[row].advantages[i],
        "kl-logp" => exp.rollout.logprobs[row][i],
        "kl-ref" => exp.ref_logprobs[row][i],
        "kl" => exp.kl[row][i],
        "score" => exp.scores[i].reward(),
        "upd-new" => policy(i).logp_new,
        "upd-old" => policy(i).logp_old,
        other => panic!("unexpected term cell {other}"),
    }
}

/// A provenance's number from its terms and constants, by the formula of its quantity, written
/// here apart from the provenance's own arithmetic.
fn from_terms(p: &ppo_lens::explain::provenance::Provenance) -> f32 {
    let t = p.t;
    let term = |symbol: String| p.terms.iter().find(|x| x.symbol == symbol).map(|x| x.value);
    let constant = |symbol: &str| p.constants.iter().find(|c| c.0 == symbol).unwrap().1;
    match p.quantity {
        Quantity::Advantage => {
            let (g, l) = (constant("γ"), constant("λ"));
            let n = t + 1;
            // Past the last real token, V_{t+1} and A_{t+1} are not named: they are 0.
            let next_v = term(format!("V_{n}")).unwrap_or(0.0);
            let next_a = term(format!("A_{n}")).unwrap_or(0.0);
            term(format!("r_{t}")).unwrap() + g * next_v - term(format!("V_{t}")).unwrap()
                + g * l * next_a
        }
        Quantity::Return => term(format!("A_{t}")).unwrap() + term(format!("V_{t}")).unwrap(),
        Quantity::Reward => {
            -constant("β") * term(format!("KL_{t}")).unwrap()
                + term("score".to_string()).unwrap_or(0.0)
        }
        Quantity::Ratio => (term(format!("log π_new,{t}")).unwrap()
            - term(format!("log π_old,{t}")).unwrap())
        .exp(),
    }
}

#[test]
fn every_provenance_recomputes_its_number_from_the_cells_it_names() {
    let (first, second) = two_iterations(&settings());
    for walk in [&first, &second] {
        for row in 0..walk.gae.len() {
            let real = real_len(walk, row);
            for t in 0..real {
                for q in [
                    Quantity::Advantage,
                    Quantity::Return,
                    Quantity::Reward,
                    Quantity::Ratio,
                ] {
                    let p = provenance(walk, row, t, q).unwrap();
                    assert_eq!(p.testid, q.testid(t));
                    // The named cells hold the values the provenance used...
                    for term in &p.terms {
                        assert_eq!(
                            cell_value(walk, row, &term.testid),
                            term.value,
                            "{q:?} row {row} t {t}: {}",
                            term.testid
                        );
                    }
                    // ...and the arithmetic on them gives the shown number, both as the
                    // provenance does it and as this test does it from the named terms.
                    let ours = from_terms(&p);
                    for again in [p.recomputed, ours] {
                        assert!(
                            (again - p.value).abs() <= 1e-5 * (1.0 + p.value.abs()),
                            "{q:?} row {row} t {t}: {again} against {}",
                            p.value
                        );
                    }
                    assert!(!p.lines.is_empty());
                }
                // A_t names A_{t+1} and V_{t+1} exactly when token t + 1 is real.
                let a = provenance(walk, row, t, Quantity::Advantage).unwrap();
                let names_next = a
                    .terms
                    .iter()
                    .any(|x| x.testid == format!("gae-adv-{}", t + 1));
                assert_eq!(names_next, t + 1 < real, "row {row} t {t}");
                // r_t names the score on the last real token only.
                let r = provenance(walk, row, t, Quantity::Reward).unwrap();
                let names_score = r.terms.iter().any(|x| x.testid == format!("score-{row}"));
                assert_eq!(names_score, t + 1 == real, "row {row} t {t}");
            }
            // Padding has nothing to explain.
            assert!(provenance(walk, row, real, Quantity::Advantage).is_none());
        }
    }
}

#[test]
fn a_hand_worked_advantage_reads_as_its_formula() {
    let (walk, _) = two_iterations(&settings());
    let row = 0;
    let t = 0;
    assert!(
        real_len(&walk, row) >= 2,
        "the first response has two tokens"
    );
    let p = provenance(&walk, row, t, Quantity::Advantage).unwrap();
    // The arithmetic from the lit cells gives the advantage the trainer's tensor GAE computed
    // (a different implementation: one batched sweep), and the one the table shows.
    let exp = &walk.experience;
    assert!(
        (p.recomputed - exp.raw_advantages[row][t]).abs() < 1e-5,
        "{} vs the tensor GAE's {}",
        p.recomputed,
        exp.raw_advantages[row][t]
    );
    assert_eq!(p.value, walk.gae[row].advantages[t]);
    assert!(
        p.lines[0].starts_with("δ_0 = r_0 + γ · V_1 − V_0 = "),
        "{}",
        p.lines[0]
    );
    assert!(
        p.lines[1].starts_with("A_0 = δ_0 + γ · λ · A_1 = "),
        "{}",
        p.lines[1]
    );
    assert_eq!(
        p.terms
            .iter()
            .map(|x| x.testid.as_str())
            .collect::<Vec<_>>(),
        [
            "gae-reward-0",
            "gae-value-0",
            "gae-value-1",
            "gae-adv-1",
            "gae-delta-0"
        ]
    );
}

#[test]
fn every_note_holds_for_its_batch() {
    use ppo_lens::ppo::rewards::KlEstimator;
    use std::collections::BTreeSet;
    let (first, second) = two_iterations(&settings());
    let (mut score_cases, mut kinds) = (BTreeSet::new(), BTreeSet::new());
    for (iteration, walk) in [(1, &first), (2, &second)] {
        let exp = &walk.experience;
        let mask = &exp.rollout.response_mask;
        let r_len = exp.rollout.response_len();
        for row in 0..walk.gae.len() {
            let real = real_len(walk, row);
            for stage in StageKey::ALL {
                let all = notes(walk, stage, row, iteration);
                // Each note is there exactly when what it describes holds.
                let keys: Vec<&str> = all.iter().map(|n| n.key).collect();
                let batch_kl = (0..mask.len())
                    .flat_map(|b| (0..real_len(walk, b)).map(move |t| (b, t)))
                    .fold(0f32, |m, (b, t)| m.max(exp.kl[b][t].abs()));
                let whiten = walk.whiten.is_some();
                let expected: Vec<&str> = match stage {
                    StageKey::Overview => vec![],
                    StageKey::Rollout => vec!["most-uncertain", "not-argmax"],
                    StageKey::Score => [
                        ("kl-zero", iteration == 1 && batch_kl < 1e-3),
                        (
                            "kl-negative",
                            exp.kl_estimator == KlEstimator::K1
                                && exp.kl[row][..real].iter().any(|&k| k < 0.0)
                                && batch_kl > 1e-4
                                && !(iteration == 1 && batch_kl < 1e-3),
                        ),
                        ("score-last", true),
                    ]
                    .into_iter()
                    .filter_map(|(k, on)| on.then_some(k))
                    .collect(),
                    StageKey::Values => {
                        // A jump to name only where the values are not all equal.
                        let v = &exp.rollout.values[row][..real];
                        let moves = v.windows(2).any(|w| w[1] != w[0]);
                        vec!["first-value", "value-jump"][..1 + usize::from(moves)].to_vec()
                    }
                    StageKey::Gae => vec!["last-delta", "sign-flip", "pushed-up"]
                        [..if whiten { 3 } else { 1 }]
                        .to_vec(),
                    StageKey::Update => vec!["policy-loss-zero", "largest-move"],
                    StageKey::Mask => vec!["left-padding"],
                };
                assert_eq!(keys, expected, "row {row} {stage:?}");
                kinds.extend(keys);
                for n in all {
                    assert!(
                        n.tokens.iter().all(|&t| t < real),
                        "{}: tokens {:?}",
                        n.key,
                        n.tokens
                    );
                    match n.key {
                        "most-uncertain" => {
                            let t = n.tokens[0];
                            let e = &walk.entropy[row][..real];
                            assert!(e.iter().all(|&x| x <= e[t]));
                            // "Several ways" only where a second token had a real chance.
                            assert_eq!(
                                n.text.contains("could have gone several ways"),
                                e[t] >= 0.1,
                                "{}",
                                n.text
                            );
                        }
                        "not-argmax" => {
                            let p = exp.rollout.prompt_len;
                            for t in 0..real {
                                let top = exp.rollout.top[row][t][0].0;
                                let sampled = exp.rollout.ids[row][p + t];
                                assert_eq!(n.tokens.contains(&t), top != sampled, "t {t}");
                            }
                        }
                        "kl-zero" => {
                            assert_eq!(iteration, 1);
                            // The policy is the reference: KL is rounding only.
                            assert!(n.value.unwrap() < 1e-4, "{:?}", n.value);
                            // The bound as the page writes numbers (a real minus sign, which
                            // never breaks the number across lines).
                            assert!(
                                n.text
                                    .contains(&format!("in the batch: {};", num(n.value.unwrap()))),
                                "{}",
                                n.text
                            );
                        }
                        "kl-negative" => {
                            for t in 0..real {
                                assert_eq!(n.tokens.contains(&t), exp.kl[row][t] < 0.0);
                            }
                            // A bonus only where β charges the KL.
                            assert_eq!(
                                n.text.contains("the penalty is a bonus"),
                                exp.kl_coeff > 0.0,
                                "{}",
                                n.text
                            );
                        }
                        "score-last" => {
                            assert_eq!(n.tokens, [real - 1]);
                            assert_eq!(n.value, Some(exp.rewards[row][real - 1]));
                            // What the other tokens' rewards are beside the score, in the words
                            // that fit their size.
                            let others = exp.rewards[row][..real - 1]
                                .iter()
                                .fold(0f32, |m, r| m.max(r.abs()));
                            let score = exp.scores[row].reward();
                            let (case, said) = if real == 1 {
                                ("one token", "This response has one token".to_string())
                            } else if others <= 1e-4 {
                                (
                                    "about 0",
                                    format!("about 0 here (largest |r_t| {})", num(others)),
                                )
                            } else if others < 0.1 * score.abs() {
                                (
                                    "small",
                                    format!(
                                        "at most {} in size here, small beside the score.",
                                        num(others)
                                    ),
                                )
                            } else if score == 0.0 {
                                (
                                    "all the reward",
                                    format!(
                                        "up to {} in size here: with a score of 0 the penalties \
                                         are all the reward this response gets.",
                                        num(others)
                                    ),
                                )
                            } else {
                                (
                                    "not small",
                                    format!(
                                        "up to {} in size here, not small beside the score.",
                                        num(others)
                                    ),
                                )
                            };
                            assert!(n.text.contains(&said), "{said} in {}", n.text);
                            assert!(
                                n.text.starts_with(&format!(
                                    "The score {} lands on the last token only (t = {}).",
                                    num(score),
                                    real - 1
                                )),
                                "{}",
                                n.text
                            );
                            score_cases.insert(case);
                        }
                        "first-value" => assert_eq!(n.value, Some(exp.rollout.values[row][0])),
                        "value-jump" => {
                            let v = &exp.rollout.values[row][..real];
                            let t = n.tokens[0];
                            let jump = (v[t + 1] - v[t]).abs();
                            assert!(v.windows(2).all(|w| (w[1] - w[0]).abs() <= jump));
                        }
                        "last-delta" => {
                            let g = &walk.gae[row];
                            assert_eq!(g.advantages[real - 1], g.deltas[real - 1]);
                            assert_eq!(n.tokens, [real - 1]);
                            assert_eq!(n.value, Some(g.advantages[real - 1]));
                            // A response cut at max_new_tokens is said to be.
                            assert_eq!(
                                n.text.contains("This response was cut at max new tokens"),
                                !exp.rollout.finished[row],
                                "{}",
                                n.text
                            );
                        }
                        "sign-flip" => {
                            let w = walk.whiten.as_ref().unwrap();
                            let g = &walk.gae[row];
                            for t in 0..real {
                                let (a, white) = (g.advantages[t], w.whitened[row * r_len + t]);
                                // Opposite signs: an Â of 0 has no sign to flip to.
                                let flipped = a * white < 0.0;
                                assert_eq!(n.tokens.contains(&t), flipped, "t {t}");
                                // Whitening turns 0 < A < mean negative, and mean < A < 0
                                // positive when the mean is negative.
                                if (a > 0.0 && a < w.mean) || (a < 0.0 && a > w.mean) {
                                    assert!(flipped, "t {t}: {a}, mean {}", w.mean);
                                }
                            }
                            assert_eq!(
                                n.text.contains("changed the sign of no advantage"),
                                n.tokens.is_empty(),
                                "{}",
                                n.text
                            );
                            // The clause the note picks follows the mean's sign, and its
                            // inequality is held on one line.
                            if !n.tokens.is_empty() {
                                assert!(
                                    n.text.contains("\u{a0}<\u{a0}A_t\u{a0}<\u{a0}")
                                        && !n.text.contains(" <")
                                        && !n.text.contains("< "),
                                    "{}",
                                    n.text
                                );
                                assert_eq!(
                                    n.text.contains("is negative here"),
                                    w.mean < 0.0,
                                    "{}",
                                    n.text
                                );
                            }
                        }
                        "pushed-up" => {
                            let w = walk.whiten.as_ref().unwrap();
                            let up = (0..mask.len())
                                .flat_map(|b| (0..r_len).map(move |t| (b, t)))
                                .filter(|&(b, t)| {
                                    mask[b][t] > 0.0 && w.whitened[b * r_len + t] > 0.0
                                })
                                .count();
                            assert_eq!(n.value, Some(up as f32));
                            let real_tokens: usize =
                                (0..mask.len()).map(|b| real_len(walk, b)).sum();
                            // The count's sentence (each kind of count is checked on its own in
                            // pushed_up_says_what_the_count_allows).
                            let said = ppo_lens::explain::notes::pushed_up(
                                up,
                                real_tokens,
                                false,
                                ppo_lens::ppo::family::Family::Ppo,
                            );
                            assert_eq!(n.text, said);
                            assert!(n.text.contains(&format!(" {up} ")), "{}", n.text);
                        }
                        "policy-loss-zero" => {
                            assert_eq!(n.value, Some(walk.stats.grad_norm));
                            // Every number it names is the number it says.
                            for named in [
                                num(walk.teacher_forced_max_diff),
                                num(walk.stats.loss_policy),
                                num(walk.stats.grad_norm),
                                format!("{} steps", walk.stats.optimizer_steps),
                            ] {
                                assert!(n.text.contains(&named), "{named}: {}", n.text);
                            }
                            assert!(!n.text.contains("exactly 1"), "{}", n.text);
                        }
                        "largest-move" => {
                            let t = n.tokens[0];
                            let tokens = &walk.policy_after[row].tokens;
                            let r = tokens.iter().find(|p| p.t == t).unwrap().ratio;
                            assert!(
                                tokens
                                    .iter()
                                    .all(|p| (p.ratio - 1.0).abs() <= (r - 1.0).abs())
                            );
                        }
                        "left-padding" => {
                            let p = exp.rollout.prompt_len;
                            let pads = exp.rollout.attention_mask[row][..p]
                                .iter()
                                .filter(|&&m| m == 0)
                                .count();
                            assert_eq!(n.value, Some(pads as f32));
                            // In words that agree with the count.
                            match pads {
                                0 => assert!(n.text.contains("no left padding"), "{}", n.text),
                                1 => assert!(
                                    n.text.contains("has 1 position of left padding")
                                        && n.text.contains("attends to it, so it changes"),
                                    "{}",
                                    n.text
                                ),
                                _ => assert!(
                                    n.text.contains(&format!("has {pads} positions of"))
                                        && n.text.contains("so they change"),
                                    "{}",
                                    n.text
                                ),
                            }
                        }
                        other => panic!("a note without a check: {other}"),
                    }
                }
            }
        }
        // Iteration 1 says KL is 0; iteration 2 does not.
        let has_kl_zero = notes(walk, StageKey::Score, 0, iteration)
            .iter()
            .any(|n| n.key == "kl-zero");
        assert_eq!(has_kl_zero, iteration == 1);
        // The sign-flip note on the mirrored batch (every advantage negated, before and after
        // whitening): the same tokens flip, and the clause follows the mean's other sign.
        let mut mirrored = walk.clone();
        let w = mirrored.whiten.as_mut().unwrap();
        w.mean = -w.mean;
        w.whitened.iter_mut().for_each(|x| *x = -*x);
        for g in &mut mirrored.gae {
            g.advantages.iter_mut().for_each(|x| *x = -*x);
        }
        let mean = walk.whiten.as_ref().unwrap().mean;
        for row in 0..walk.gae.len() {
            let flip = |walk: &Walkthrough| {
                notes(walk, StageKey::Gae, row, iteration)
                    .into_iter()
                    .find(|n| n.key == "sign-flip")
                    .unwrap()
            };
            let (before, after) = (flip(walk), flip(&mirrored));
            assert_eq!(before.tokens, after.tokens, "row {row}");
            if !before.tokens.is_empty() {
                assert_eq!(before.text.contains("is negative here"), mean < 0.0);
                assert_eq!(after.text.contains("is negative here"), mean > 0.0);
                assert_eq!(
                    after.text.ends_with(" positive."),
                    mean > 0.0,
                    "{}",
                    after.text
                );
            }
        }
    }
    // The two batches reach every note, and three of the score note's wordings.
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        [
            "first-value",
            "kl-negative",
            "kl-zero",
            "largest-move",
            "last-delta",
            "left-padding",
            "most-uncertain",
            "not-argmax",
            "policy-loss-zero",
            "pushed-up",
            "score-last",
            "sign-flip",
            "value-jump"
        ]
    );
    assert!(score_cases.len() >= 3, "{score_cases:?}");
}

#[test]
fn a_one_token_response_renders_every_explanation() {
    // max_new_tokens = 1: every response is one token; nothing may assume more.
    let settings = LabSettings {
        rollouts: 2,
        minibatch: 2,
        max_new_tokens: 1,
        ..LabSettings::default()
    };
    let mut lab = Lab::new(&settings, &Device::flex()).unwrap();
    let walk = block_on(lab.iterate(&settings, Some(0))).unwrap();
    assert_eq!(
        exercise_check_inputs(&walk),
        "Both computed on this batch as one mini-batch, through the policy after the update. \
         Exercise 5 uses your exercises 1-3, so a mistake there shows in its total too."
    );
    for row in 0..2 {
        assert_eq!(real_len(&walk, row), 1);
        for stage in StageKey::ALL {
            for n in notes(&walk, stage, row, 1) {
                assert!(!n.text.is_empty(), "{}", n.key);
                assert!(
                    n.tokens.iter().all(|&t| t == 0),
                    "{}: {:?}",
                    n.key,
                    n.tokens
                );
            }
        }
        // The one token is the last: the sweep's first note says A_0 = δ_0, the score lands on
        // it, and no note speaks of a second token.
        let gae = notes(&walk, StageKey::Gae, row, 1);
        let last = gae.iter().find(|n| n.key == "last-delta").unwrap();
        assert!(
            last.text.contains("t = 0") && last.tokens == [0],
            "{}",
            last.text
        );
        let score = notes(&walk, StageKey::Score, row, 1);
        let on_last = score.iter().find(|n| n.key == "score-last").unwrap();
        assert!(on_last.text.contains("has one token"), "{}", on_last.text);
        let a = provenance(&walk, row, 0, Quantity::Advantage).unwrap();
        assert!(a.lines[0].contains("last token"), "{}", a.lines[0]);
    }
}

#[test]
fn the_loop_carries_the_batch_shapes_and_the_tour_visits_every_stage() {
    let (walk, _) = two_iterations(&settings());
    let edges = loop_edges(&walk);
    let p = walk.experience.rollout.prompt_len;
    assert_eq!(edges[0], format!("prompts [6 × {p}]"));
    assert_eq!(
        edges[1],
        format!("ids [6 × {}], log π_old [6 × 20]", p + 20)
    );
    assert!(edges[5].contains("[6 × 20]"));
    assert_eq!(LOOP.len(), edges.len());
    // Every stage but the causal mask (inside the update) has a node; the tour visits all seven.
    for stage in StageKey::ALL {
        assert!(TOUR.iter().any(|(s, _)| *s == stage), "{stage:?}");
    }
    assert_eq!(TOUR.len(), StageKey::ALL.len());
    // Under PPO the tour's own sentences hold: no stop adds a member's note.
    for stage in StageKey::ALL {
        assert_eq!(tour_member_note(&walk, stage), None, "{stage:?}");
    }
}

/// The text of MathML: its tags left out.
fn math_text(markup: &str) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    for c in markup.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text
}

#[test]
fn long_formulas_break_between_terms_and_never_inside_a_number_or_a_nested_bracket() {
    // A step with negative numbers, fenced as (−x): no break inside a fence.
    let step = GaeStep {
        t: 22,
        reward: -0.1,
        value: -0.073,
        next_value: -0.25,
        next_mask: 1.0,
        delta: -0.277,
        next_advantage: -0.5,
        advantage: -0.75,
        ret: -0.823,
    };
    let [_, filled] = math::delta(&step, 1.0);
    let pieces: Vec<String> = filled.split("<wbr>").map(math_text).collect();
    assert_eq!(
        pieces,
        ["δ22=(−0.100)", "+1×(−0.250)×1", "−(−0.0730)", "=−0.277"],
        "{filled}"
    );
    // The temperature is named, then given: not softmax(z/1).
    let sampling: String = math::sampling(1.0).split("<wbr>").map(math_text).collect();
    assert_eq!(sampling, "pt=softmax(ztτ),τ=1");
    // A negative number's sign is part of it, not an operator spaced as one: "(−0.100)".
    assert!(
        filled.contains("<mo>(</mo><mn>−0.100</mn><mo>)</mo>")
            && !filled.contains("<mo>−</mo><mn>"),
        "{filled}"
    );
    // A piece's leading operator keeps the spacing of one between two terms.
    for piece in filled.split("<wbr>").skip(1) {
        assert!(
            piece.starts_with("<math class=\"piece\"><mrow><mo form=\"infix\">"),
            "{piece}"
        );
    }
    let [_, filled] = math::advantage(
        &step,
        GaeParams {
            gamma: 1.0,
            lam: 0.95,
        },
    );
    assert_eq!(filled.split("<wbr>").count(), 3, "{filled}");
    // The objective: min's two arguments (clip(..) whole: its commas are a bracket deeper),
    // then the ratio's definition, its own "=" kept with its left side.
    let objective = math::clipped_objective(0.2);
    let pieces: Vec<String> = objective.split("<wbr>").map(math_text).collect();
    assert_eq!(
        pieces,
        ["Lt=−min(ρtA^t,", "clip(ρt,0.80,1.20)A^t),", "ρt=πnewπold"],
        "{objective}"
    );
    let rloo: Vec<String> = math::response_objective(Some((0.8, 1.2)))
        .split("<wbr>")
        .map(math_text)
        .collect();
    assert_eq!(rloo.len(), 3, "{rloo:?}");
    assert!(rloo[2].starts_with("ρi=∏"), "{rloo:?}");
    // A formula with one term on each side stays one displayed block.
    let whiten = math::whiten(0.305, 0.284);
    assert!(
        whiten.starts_with("<math display=\"block\">") && !whiten.contains("<wbr>"),
        "{whiten}"
    );
    // Cutting keeps every symbol, in order.
    let reward = math::reward(0.05);
    assert_eq!(
        math_text(&reward),
        "rt=−0.050·KLt+[t=tlast]·score",
        "{reward}"
    );
    assert_eq!(reward.split("<wbr>").count(), 2, "{reward}");
}

#[test]
fn formulas_are_mathml_with_the_step_numbers() {
    let (walk, _) = two_iterations(&settings());
    let step = &walk.gae[0].steps[0];
    let [general, filled] = math::delta(step, walk.gae[0].params.gamma);
    assert!(general.starts_with("<math"));
    // V_{t+1} as a subscript with its own row, never "V(s_t+1)".
    assert!(general.contains(
        "<msub><mi>V</mi><mrow><mi>t</mi><mo lspace=\"0\" rspace=\"0\">+</mo><mn>1</mn></mrow></msub>"
    ));
    let delta = ppo_lens::explain::format::num(step.delta);
    let shown = delta.trim_start_matches('−');
    assert!(filled.contains(&format!("<mn>{shown}</mn>")), "{filled}");
    assert!(filled.ends_with("</mrow></math>"));
    // Balanced tags: as many openings as closings of each element used.
    for tag in ["math", "mrow", "msub", "mi", "mo", "mn"] {
        let open = filled.matches(&format!("<{tag}>")).count()
            + filled.matches(&format!("<{tag} ")).count();
        let close = filled.matches(&format!("</{tag}>")).count();
        assert_eq!(open, close, "{tag} in {filled}");
    }
    // The update's formula for each kind of member: PPO's band, DAPO's wider one above, RLOO's
    // clip on the response's ratio (a product over its tokens), REINFORCE's unclipped term.
    let ppo = math::clipped_objective(0.2);
    assert!(
        ppo.contains("<mn>0.80</mn><mo>,</mo><mn>1.20</mn>"),
        "{ppo}"
    );
    // The band's edges in full, as the clip explorer and the predict cards write them.
    let eighth = math::clipped_objective(0.125);
    assert!(
        eighth.contains("<mn>0.875</mn><mo>,</mo><mn>1.125</mn>"),
        "{eighth}"
    );
    let dapo = math::clipped_objective_in(0.8, 1.28);
    assert!(
        dapo.contains("<mn>0.80</mn><mo>,</mo><mn>1.28</mn>"),
        "{dapo}"
    );
    let rloo = math::response_objective(Some((0.8, 1.2)));
    assert!(
        rloo.contains("<mi>min</mi>") && rloo.contains("<mo>∏</mo>"),
        "{rloo}"
    );
    assert!(
        rloo.contains("<mn>0.80</mn><mo>,</mo><mn>1.20</mn>"),
        "{rloo}"
    );
    let reinforce = math::response_objective(None);
    assert!(
        !reinforce.contains("clip") && !reinforce.contains("min"),
        "{reinforce}"
    );
    assert!(reinforce.contains("<mo>∏</mo>"), "{reinforce}");
    for formula in [&dapo, &rloo, &reinforce] {
        for tag in ["math", "mrow", "msub", "mi", "mo", "mn", "mfrac", "munder"] {
            let open = formula.matches(&format!("<{tag}>")).count()
                + formula.matches(&format!("<{tag} ")).count();
            assert_eq!(
                open,
                formula.matches(&format!("</{tag}>")).count(),
                "{tag} in {formula}"
            );
        }
    }
}

/// The misconceptions card: every number an answer turns on, recomputed from the batch, and
/// each answer pointing at a stage.
#[test]
fn every_misconception_is_answered_with_its_batchs_numbers() {
    use ppo_lens::explain::format::count;
    use ppo_lens::explore::{ValueMove, value_case};
    use ppo_lens::misconceptions::misconceptions;
    // Two iterations, and the first again with an update pushed harder (ten times the learning
    // rate, 8 epochs), so that ratios leave the band in one batch and stay inside it in another.
    let s = settings();
    let mut lab = Lab::new(&s, &Device::flex()).unwrap();
    let first = block_on(lab.iterate(&s, Some(0))).unwrap();
    let second = block_on(lab.iterate(&s, Some(0))).unwrap();
    let hard = LabSettings {
        lr: s.lr * 10.0,
        epochs: 8,
        ..s.clone()
    };
    let pushed = block_on(
        Lab::new(&hard, &Device::flex())
            .unwrap()
            .iterate(&hard, Some(0)),
    )
    .unwrap();
    let mut outside_counts = Vec::new();
    for walk in [&first, &second, &pushed] {
        let exp = &walk.experience;
        let r_len = exp.rollout.response_len();
        let n_real = count(
            (0..walk.gae.len()).map(|b| real_len(walk, b)).sum(),
            "token",
            "tokens",
        );
        let real: Vec<(usize, usize)> = (0..walk.gae.len())
            .flat_map(|b| (0..real_len(walk, b)).map(move |t| (b, t)))
            .collect();
        let all = misconceptions(walk);
        let keys: Vec<&str> = all.iter().map(|m| m.key).collect();
        assert_eq!(
            keys,
            [
                "advantage-not-reward",
                "clip-not-cap",
                "whitening-flips",
                "kl-reward-or-loss",
                "approx-kl",
                "value-clip"
            ]
        );
        for m in &all {
            assert!(m.question.ends_with('?'), "{}", m.question);
            assert_ne!(m.stage, StageKey::Overview, "{}: points nowhere", m.key);
            let expected = match m.key {
                "advantage-not-reward" => real
                    .iter()
                    .filter(|&&(b, t)| exp.rewards[b][t] * exp.advantages[b][t] < 0.0)
                    .count() as f32,
                "clip-not-cap" => {
                    let eps = walk.update.coeffs.clip_ratio;
                    walk.policy_after
                        .iter()
                        .flat_map(|p| &p.tokens)
                        .filter(|p| p.ratio < 1.0 - eps || p.ratio > 1.0 + eps)
                        .count() as f32
                }
                "whitening-flips" => {
                    let w = walk.whiten.as_ref().unwrap();
                    real.iter()
                        .filter(|&&(b, t)| {
                            let a = walk.gae[b].advantages[t];
                            let white = w.whitened[b * r_len + t];
                            a != 0.0 && (a > 0.0) != (white > 0.0)
                        })
                        .count() as f32
                }
                "kl-reward-or-loss" => {
                    let sum: f64 = real.iter().map(|&(b, t)| exp.kl[b][t] as f64).sum();
                    (sum / real.len() as f64) as f32
                }
                "approx-kl" => walk.stats.approx_kl,
                "value-clip" => {
                    let c = walk.update.coeffs.clip_range_value;
                    let zeroed: Vec<_> = walk
                        .value_after
                        .iter()
                        .flat_map(|v| &v.tokens)
                        .map(|v| value_case(v.value_old, v.value_new, v.ret, c))
                        .filter(|case| case.clip_zeroes)
                        .collect();
                    // Every token the value clip zeroes moved toward its return.
                    assert!(zeroed.iter().all(|case| case.moved == ValueMove::Toward));
                    // The same count as the trace's own flag, outside the band (inside it the
                    // two errors are equal, and rounding may flag either).
                    let flagged = walk
                        .value_after
                        .iter()
                        .flat_map(|v| &v.tokens)
                        .filter(|v| v.was_clipped && (v.value_new - v.value_old).abs() > c)
                        .count();
                    assert_eq!(zeroed.len(), flagged);
                    zeroed.len() as f32
                }
                other => panic!("a misconception without a check: {other}"),
            };
            assert_eq!(m.value, expected, "{}", m.key);
            // The number is in the answer, in the sentence that says what it counts.
            let n = expected as usize;
            let said: Vec<String> = match m.key {
                "advantage-not-reward" => vec![format!(
                    "On {n} of the batch's {n_real}, r_t and the advantage the update used have \
                     opposite signs."
                )],
                "clip-not-cap" => {
                    let eps = walk.update.coeffs.clip_ratio;
                    // Past the band on the side the token's advantage pushes.
                    let past = (walk.policy_after.iter().flat_map(|p| &p.tokens))
                        .filter(|p| {
                            (p.advantage > 0.0 && p.ratio > 1.0 + eps)
                                || (p.advantage < 0.0 && p.ratio < 1.0 - eps)
                        })
                        .count();
                    outside_counts.push(n);
                    vec![
                        format!(
                            "After this update {n} of the batch's {n_real} {} a ratio outside \
                             [{:.2}, {:.2}] (the furthest at ρ = ",
                            if n == 1 { "has" } else { "have" },
                            1.0 - eps,
                            1.0 + eps
                        ),
                        if past == 1 {
                            "and 1 of those is past the band on its advantage's side.".to_string()
                        } else {
                            format!(
                                "and {past} of those are past the band on their advantage's side."
                            )
                        },
                        if n == 0 {
                            "This update was a gentle one: push harder".to_string()
                        } else {
                            "Push harder in the Update stage to see ratios go further still."
                                .to_string()
                        },
                    ]
                }
                "whitening-flips" => {
                    vec![format!("In this batch {n} of the {n_real} changed sign")]
                }
                "kl-reward-or-loss" => {
                    vec![format!("the mean KL_t over this batch is {}", num(m.value))]
                }
                "approx-kl" => vec![format!("approx KL, {} here,", num(m.value))],
                "value-clip" => {
                    let c = walk.update.coeffs.clip_range_value;
                    let left = (walk.value_after.iter().flat_map(|v| &v.tokens))
                        .filter(|v| (v.value_new - v.value_old).abs() > c)
                        .count();
                    vec![format!(
                        "After this update {} {} where the clip zeroes the gradient, and {} left \
                         the band away from R or past it",
                        count(n, "token", "tokens"),
                        if n == 1 { "sits" } else { "sit" },
                        count(left - n, "token", "tokens")
                    )]
                }
                _ => unreachable!(),
            };
            for said in said {
                assert!(
                    m.answer.contains(&said),
                    "{}: {said} in {}",
                    m.key,
                    m.answer
                );
            }
        }
        // What a flipped token went through follows the mean's sign: above a positive mean's
        // batch a better-than-expected token is pushed down, under a negative one a worse one up.
        let mut mirrored = walk.clone();
        let w = mirrored.whiten.as_mut().unwrap();
        w.mean = -w.mean;
        for (walk, mean) in [
            (walk, walk.whiten.as_ref().unwrap().mean),
            (&mirrored, -walk.whiten.as_ref().unwrap().mean),
        ] {
            let answer = misconceptions(walk)
                .into_iter()
                .find(|m| m.key == "whitening-flips")
                .unwrap()
                .answer;
            let (turn, said) = if mean > 0.0 {
                (
                    "turns negative",
                    "do better than the critic expected and still be pushed down",
                )
            } else {
                (
                    "turns positive",
                    "do worse than the critic expected and still be pushed up",
                )
            };
            assert!(
                answer.contains(turn) && answer.contains(said),
                "mean {mean}: {answer}"
            );
        }
        // The KL penalty is written with its sign where it acts: −β·KL_t adds −β·mean to r_t.
        let kl = all.iter().find(|m| m.key == "kl-reward-or-loss").unwrap();
        let adds = format!("adds {} to", num(-exp.kl_coeff * kl.value));
        assert!(kl.answer.contains(&adds), "{adds} in {}", kl.answer);
        // PPO's β is named as its setting, apart from the critic-free members' own β.
        let beta = format!("β = kl_coeff = {}", num(exp.kl_coeff));
        assert!(kl.answer.contains(&beta), "{beta} in {}", kl.answer);
    }
    // Both of the clip answer's hints were checked: a batch with no ratio outside the band and
    // one with some.
    assert!(
        outside_counts.contains(&0) && outside_counts.iter().any(|&n| n > 0),
        "{outside_counts:?}"
    );
}

/// Under the critic-free members the Update stage's sentences describe the update that ran:
/// tokens are marked against the member's own band (DAPO's is wider above), a member that takes
/// one ratio per response (RLOO, REINFORCE) marks no token and is described by its response's
/// ratio, the advantages quoted are the member's, and the loss's terms are its own.
#[test]
fn the_update_is_described_in_the_members_own_terms() {
    use ppo_lens::explore::policy_case;
    use ppo_lens::misconceptions::misconceptions;
    use ppo_lens::ppo::clip_range::ClipRange;
    use ppo_lens::ppo::family::{DAPO_EPS_HIGH, Family};
    use ppo_lens::ppo::loss_agg::LossAgg;
    use ppo_lens::ppo::policy_loss::PolicyClip;
    use ppo_lens::predict::ask::question;
    use ppo_lens::predict::question::Kind;
    for member in [Family::Dapo, Family::Rloo, Family::Reinforce] {
        // At 48 new tokens the first batch has a group whose rewards differ (tests/explore.rs),
        // so DAPO's dynamic sampling keeps it and every member takes steps.
        let s = LabSettings {
            algo: member,
            rollouts: 8,
            minibatch: 4,
            max_new_tokens: 48,
            group: 4,
            epochs: if member == Family::Reinforce { 1 } else { 2 },
            ..LabSettings::default()
        };
        let mut lab = Lab::new(&s, &Device::flex()).unwrap();
        let walk = block_on(lab.iterate(&s, Some(0))).unwrap();
        let exp = &walk.experience;
        assert_eq!(exp.member, member);
        assert!(walk.stats.optimizer_steps > 0, "{}", member.name());
        let eps = walk.update.coeffs.clip_ratio;
        let name = member.name();
        // The loop's last arrow counts the mini-batches the update ran: under DAPO's dynamic
        // sampling, of the groups that stayed.
        let rows = exp.kept.as_ref().map_or(8, |k| k.rows.len());
        assert_eq!(exp.kept.is_some(), member == Family::Dapo);
        let minibatches = rows.div_ceil(4);
        assert!(
            loop_edges(&walk)[6].ends_with(&format!(
                "× {minibatches} mini-batch{})",
                if minibatches == 1 { "" } else { "es" }
            )),
            "{name}: {rows} rows in {}",
            loop_edges(&walk)[6]
        );
        // Each tour stop but the causal mask says what the member does instead of PPO.
        let tour = |stage| tour_member_note(&walk, stage).unwrap_or_default();
        assert_eq!(tour_member_note(&walk, StageKey::Mask), None);
        assert!(tour(StageKey::Overview).contains(name), "{name}");
        let (score, values, gae, update) = (
            tour(StageKey::Score),
            tour(StageKey::Values),
            tour(StageKey::Gae),
            tour(StageKey::Update),
        );
        assert!(
            score.contains("does not use these token rewards"),
            "{score}"
        );
        let beta = format!("β = {}", num(walk.family.beta));
        assert_eq!(score.contains(&beta), member != Family::Dapo, "{score}");
        assert_eq!(
            score.contains("no KL term"),
            member == Family::Dapo,
            "{score}"
        );
        let baseline = match member {
            Family::Dapo => "the mean score of its group",
            Family::Rloo => "the other responses to its prompt",
            _ => "the batch's mean score",
        };
        assert!(values.contains(baseline), "{values}");
        // The GAE stop gives the member's own advantage: the KL comes off the scores of the
        // members that charge it per response, and DAPO divides by its groups' std.
        assert!(
            gae.contains(member.response_advantage(exp.group_scaled())),
            "{gae}"
        );
        assert_eq!(
            gae.contains("β times its KL"),
            member != Family::Dapo,
            "{gae}"
        );
        assert_eq!(
            gae.contains("in the group's standard deviations"),
            member == Family::Dapo,
            "{gae}"
        );
        let said_band = match member {
            Family::Dapo => format!("each token's ratio to [{:.2}, 1.28]", 1.0 - eps),
            Family::Rloo => format!(
                "the product of its tokens' ratios, and clips that to [{:.2}, {:.2}]",
                1.0 - eps,
                1.0 + eps
            ),
            _ => "has no clip".to_string(),
        };
        assert!(update.contains(&said_band), "{said_band} in {update}");
        // The pinned table follows no value (there is no critic) and the member's own
        // advantage, one value on every token of a response.
        let f = followed(&walk, 0);
        assert_eq!(f.start_value, None, "{name}");
        assert!(
            (f.mean_advantage - exp.group_advantages[0][0]).abs() < 1e-6,
            "{name}: {f:?} against {}",
            exp.group_advantages[0][0]
        );
        let per_response = member != Family::Dapo;
        assert_eq!(walk.update.token_band().is_none(), per_response);
        if !per_response {
            assert_eq!(
                walk.update.token_band(),
                Some(ClipRange::new(eps, DAPO_EPS_HIGH).unwrap())
            );
        }
        // Each token's flag against the member's own band; none where a ratio covers a response.
        let band = ClipRange::new(eps, DAPO_EPS_HIGH).unwrap();
        for trace in &walk.policy_after {
            for p in &trace.tokens {
                let want = !per_response && policy_case(p.ratio, p.advantage, band).clipped_wins;
                assert_eq!(p.clip != PolicyClip::No, want, "{name}: {p:?}");
            }
        }
        // The misconceptions: the advantages the update used, the member's clip.
        let used = exp.every_row().advantages;
        let all = misconceptions(&walk);
        let adv = all
            .iter()
            .find(|m| m.key == "advantage-not-reward")
            .unwrap();
        let opposite = (0..walk.gae.len())
            .flat_map(|b| (0..real_len(&walk, b)).map(move |t| (b, t)))
            .filter(|&(b, t)| exp.rewards[b][t] * used[b][t] < 0.0)
            .count();
        assert_eq!(adv.value, opposite as f32, "{name}");
        assert!(
            adv.answer
                .contains(&format!("{name}'s update uses one advantage per response"))
        );
        let clip = all.iter().find(|m| m.key == "clip-not-cap").unwrap();
        let outside = if per_response {
            (0..exp.rollout.ids.len())
                .map(|b| walk.response_ratio(b).unwrap().ratio)
                .filter(|r| *r < 1.0 - eps || *r > 1.0 + eps)
                .count()
        } else {
            (walk.policy_after.iter().flat_map(|p| &p.tokens))
                .filter(|p| p.ratio < 1.0 - eps || p.ratio > 1.0 + DAPO_EPS_HIGH)
                .count()
        };
        assert_eq!(clip.value, outside as f32, "{name}");
        if per_response {
            assert!(
                clip.answer.contains("one ratio per response"),
                "{}",
                clip.answer
            );
        } else {
            assert!(
                clip.answer.contains("[0.80, 1.28], DAPO's band"),
                "{}",
                clip.answer
            );
        }
        // Whitened advantages push tokens only in PPO's update: under another member the
        // misconception and the GAE stage's note say what PPO would do, and that this one did not.
        let w = walk.whiten.as_ref().expect("whitening is on by default");
        let flips = all.iter().find(|m| m.key == "whitening-flips").unwrap();
        assert!(
            flips
                .answer
                .contains(&format!("{name}'s update did not use these advantages"))
                && (w.mean == 0.0 || flips.answer.contains("under PPO, a token")),
            "{}",
            flips.answer
        );
        let pushed = notes(&walk, StageKey::Gae, 0, 1)
            .into_iter()
            .find(|n| n.key == "pushed-up")
            .unwrap();
        assert!(
            pushed.text.contains("so PPO would push")
                && pushed.text.contains(&format!(
                    "({name}'s update used its own advantages instead)"
                ))
                && !pushed.text.contains("pushed up (Â > 0)"),
            "{}",
            pushed.text
        );
        // No member but PPO has a value loss: the value clip's answer counts nothing.
        let value = all.iter().find(|m| m.key == "value-clip").unwrap();
        assert!(
            value.answer.contains(&format!(
                "trained with {name}, which has no critic and so no value loss"
            )) && value.value == 0.0,
            "{}",
            value.answer
        );
        for row in 0..exp.rollout.ids.len() {
            // A response's own ratio is the product of its tokens' ratios.
            if let Some(whole) = walk.response_ratio(row) {
                let tokens = &walk.policy_after[row].tokens;
                let product: f64 = tokens.iter().map(|p| p.ratio as f64).product();
                assert!((whole.ratio as f64 - product).abs() < 1e-4 * product.max(1.0));
                assert_eq!(
                    whole.clipped,
                    member == Family::Rloo && {
                        let c = policy_case(whole.ratio, whole.advantage, eps);
                        c.clipped_wins
                    }
                );
            }
            // A response DAPO's dynamic sampling left out is said to be, in the Update stage and
            // the clip explorer; one the update trained on is not.
            let out = left_out(&walk, row);
            assert_eq!(out.is_some(), !exp.row_used(row), "{name} {row}");
            assert_eq!(left_out_token(&walk, row).is_some(), !exp.row_used(row));
            if let Some(out) = out {
                let kept = exp.kept.as_ref().unwrap().rows.len();
                assert!(
                    out.contains(&format!("Response {}'s group had equal rewards", row + 1))
                        && out.contains(&format!("the {kept} responses the update kept")),
                    "{out}"
                );
                let tokens = &walk.policy_after[row].tokens;
                assert!(tokens.iter().all(|p| p.advantage == 0.0), "{name} {row}");
            }
            // The ratio question is asked only where a token's own ratio is clipped.
            let q = question(&walk, Kind::RatioClipped, row, 1);
            if per_response {
                assert!(q.is_none(), "{name}");
            } else if let Some(q) = q {
                assert!(q.prompt.contains("[0.80, 1.28]"), "{}", q.prompt);
            }
            let update_notes = notes(&walk, StageKey::Update, row, 1);
            let zero = update_notes.iter().find(|n| n.key == "policy-loss-zero");
            if let Some(zero) = zero {
                // DAPO's β is 0; RLOO and REINFORCE put their KL in the score.
                assert!(
                    zero.text.contains("(policy and entropy terms together)"),
                    "{}",
                    zero.text
                );
                // The advantages averaged as the member's loss averages them.
                let g = walk.update.grpo.unwrap();
                let agg = if g.per_response {
                    LossAgg::SeqMeanTokenMean
                } else {
                    g.agg
                };
                let used = exp.batch();
                let mean = agg.apply_ref(&used.advantages, &used.response_mask);
                let quoted = format!(
                    "the advantages {name}'s update used give {} here",
                    num(mean)
                );
                assert!(zero.text.contains(&quoted), "{quoted} in {}", zero.text);
            }
            if let Some(moved) = update_notes.iter().find(|n| n.key == "largest-move") {
                assert_eq!(
                    moved.text.contains("one ratio per response"),
                    per_response,
                    "{}",
                    moved.text
                );
            }
        }
    }
}

/// By hand: a token at ρ = 1.25 with Â > 0 is past PPO's band (1.2) but inside DAPO's (1.28),
/// and a response whose two tokens moved by 1.1 and 1.2 has the ratio 1.32, past RLOO's band on
/// its advantage's side, never clipped without a clip (REINFORCE), pushed neither way at Â = 0.
#[test]
fn bands_and_response_ratios_by_hand() {
    use ppo_lens::lab::walkthrough::response_ratio;
    use ppo_lens::ppo::clip_range::ClipRange;
    use ppo_lens::ppo::grpo_loss::GrpoCoeffs;
    use ppo_lens::ppo::loss_agg::LossAgg;
    use ppo_lens::ppo::policy_loss::{PolicyClip, policy_loss_ref};
    let new = [1.25f32.ln()];
    let clip_of =
        |band: ClipRange| policy_loss_ref(&new, &[0.0], &[1.0], &[1.0], band).tokens[0].clip;
    assert_eq!(clip_of(ClipRange::symmetric(0.2)), PolicyClip::AboveBand);
    assert_eq!(clip_of(ClipRange::new(0.2, 0.28).unwrap()), PolicyClip::No);
    assert_eq!(clip_of(ClipRange::NONE), PolicyClip::No);

    let (first, _) = two_iterations(&settings());
    let config = |clip: ClipRange, per_response: bool| {
        let mut c = first.update;
        c.grpo = Some(GrpoCoeffs {
            beta: 0.0,
            agg: LossAgg::TokenMean,
            clip,
            per_response,
        });
        c
    };
    let new = [1.1f32.ln(), 1.2f32.ln(), 0.0];
    let mask = [1.0, 1.0, 0.0];
    let trace = |a: f32| policy_loss_ref(&new, &[0.0; 3], &[a, a, 0.0], &mask, ClipRange::NONE);
    let rloo = config(ClipRange::symmetric(0.2), true);
    let whole = response_ratio(&rloo, &trace(0.5)).unwrap();
    assert!((whole.ratio - 1.32).abs() < 1e-5, "{whole:?}");
    assert_eq!(whole.advantage, 0.5);
    assert!(whole.clipped);
    // Â < 0 pushes down: 1.32 is past the band on the other side, so the term still pushes.
    assert!(!response_ratio(&rloo, &trace(-0.5)).unwrap().clipped);
    assert!(!response_ratio(&rloo, &trace(0.0)).unwrap().clipped);
    let reinforce = config(ClipRange::NONE, true);
    assert!(!response_ratio(&reinforce, &trace(0.5)).unwrap().clipped);
    // Members that clip each token have no response ratio.
    assert!(response_ratio(&config(ClipRange::symmetric(0.2), false), &trace(0.5)).is_none());
    assert!(response_ratio(&first.update, &trace(0.5)).is_none());
}

/// Evaluates the arithmetic a line prints: numbers (a real minus sign, an exponent such as
/// `1.2e−6`), `+ − × /`, parentheses, `exp(..)`, `½` and a postfix `²`. None for anything with
/// a symbol in it (the formula's general side).
fn evaluate(text: &str) -> Option<f64> {
    struct Parser<'a> {
        chars: std::iter::Peekable<std::str::Chars<'a>>,
    }
    impl Parser<'_> {
        fn skip(&mut self) {
            while self.chars.peek().is_some_and(|c| c.is_whitespace()) {
                self.chars.next();
            }
        }
        fn peek(&mut self) -> Option<char> {
            self.skip();
            self.chars.peek().copied()
        }
        fn expr(&mut self) -> Option<f64> {
            let mut x = self.term()?;
            while let Some(op @ ('+' | '−')) = self.peek() {
                self.chars.next();
                let y = self.term()?;
                x = if op == '+' { x + y } else { x - y };
            }
            Some(x)
        }
        fn term(&mut self) -> Option<f64> {
            let mut x = self.factor()?;
            while let Some(op @ ('×' | '/')) = self.peek() {
                self.chars.next();
                let y = self.factor()?;
                x = if op == '×' { x * y } else { x / y };
            }
            Some(x)
        }
        fn factor(&mut self) -> Option<f64> {
            let x = self.primary()?;
            if self.peek() == Some('²') {
                self.chars.next();
                return Some(x * x);
            }
            Some(x)
        }
        fn primary(&mut self) -> Option<f64> {
            match self.peek()? {
                '(' => {
                    self.chars.next();
                    let x = self.expr()?;
                    (self.peek()? == ')').then(|| self.chars.next())?;
                    Some(x)
                }
                '½' => {
                    self.chars.next();
                    Some(0.5)
                }
                'e' => {
                    for expected in "exp(".chars() {
                        (self.chars.next()? == expected).then_some(())?;
                    }
                    let x = self.expr()?;
                    (self.peek()? == ')').then(|| self.chars.next())?;
                    Some(x.exp())
                }
                c if c == '−' || c.is_ascii_digit() => {
                    let mut s = String::new();
                    if c == '−' {
                        self.chars.next();
                        s.push('-');
                    }
                    while let Some(&c) = self.chars.peek() {
                        match c {
                            '0'..='9' | '.' => s.push(c),
                            'e' => s.push('e'),
                            '−' if s.ends_with('e') => s.push('-'),
                            _ => break,
                        }
                        self.chars.next();
                    }
                    s.parse().ok()
                }
                _ => None,
            }
        }
    }
    let mut p = Parser {
        chars: text.chars().peekable(),
    };
    let x = p.expr()?;
    p.peek().is_none().then_some(x)
}

/// The last decimal place a printed number shows: 0.001 for "0.123", 1e−8 for "1.23e−6".
fn unit_of(printed: &str) -> f64 {
    let printed = printed.replace('−', "-");
    let (mantissa, exponent) = match printed.split_once('e') {
        Some((m, e)) => (m.to_string(), e.parse::<i32>().unwrap()),
        None => (printed.clone(), 0),
    };
    let decimals = mantissa.split_once('.').map_or(0, |(_, d)| d.len()) as i32;
    10f64.powi(exponent - decimals)
}

/// Every arithmetic side of `line` ("… = a + b × c = result", its trailing remark in
/// parentheses dropped) gives the printed result to within 2.5 units of its last place: what a
/// student who works it by hand from the printed numbers gets. Returns how many sides it checked.
fn assert_arithmetic_gives_its_result(line: &str) -> usize {
    let body = [" (k1)", " (k2)", " (the "]
        .iter()
        .filter_map(|remark| line.find(remark))
        .min()
        .map_or(line, |i| &line[..i]);
    let sides: Vec<&str> = body.split('=').collect();
    let shown = sides.last().unwrap().trim();
    let result = evaluate(shown).unwrap_or_else(|| panic!("no result in {line}"));
    let tolerance = 2.5 * unit_of(shown);
    let mut checked = 0;
    for side in &sides[..sides.len() - 1] {
        if let Some(x) = evaluate(side) {
            assert!(
                (x - result).abs() <= tolerance,
                "{side} gives {x}, not the {shown} printed: {line}"
            );
            checked += 1;
        }
    }
    checked
}

#[test]
fn the_arithmetic_evaluator_reads_what_the_page_prints() {
    assert_eq!(evaluate("−0.05 × (−0.012) + 1.000"), Some(1.0006));
    assert_eq!(evaluate("exp(0.5 − 0.5)"), Some(1.0));
    assert_eq!(
        evaluate("½ × (0.1 − 0.3)²").map(|x| (x * 1e6).round()),
        Some(20000.0)
    );
    assert_eq!(evaluate("1.5e−6"), Some(1.5e-6));
    assert_eq!(evaluate("δ_3"), None);
    assert_eq!(unit_of("−0.00984"), 1e-5);
    // The operands get the decimals down to the result's last digit.
    use ppo_lens::explain::format::{decimals_for, operand_for};
    assert_eq!(decimals_for("0.123"), 3);
    assert_eq!(decimals_for("3.47e−7"), 9);
    assert_eq!(operand_for(0.01234, "−0.000617"), "0.012340");
    assert_eq!(operand_for(-0.0034710341, "3.47e−7"), "−0.003471034");
    assert_eq!(operand_for(1.2034e-6, "3.47e−7"), "1.203e−6");
    assert_eq!(operand_for(0.5, "1.000"), "0.500");
    assert_eq!(operand_for(0.0186, "−0.011"), "0.0186");
    use ppo_lens::explain::format::num_within_operands;
    assert_eq!(num_within_operands(-7.45e-9), "−7.5e−9");
    assert_eq!(num_within_operands(0.00123), "0.00123");
    assert_eq!(num_within_operands(3e-12), "0.0000000000");
    // The check fails on operands cut to fewer digits than the result shows: −0.8 × 0.012
    // gives −0.0096, not the printed −0.00984.
    let short = std::panic::catch_unwind(|| {
        assert_arithmetic_gives_its_result("r_3 = −β · KL_3 = −0.8 × 0.012 = −0.00984")
    });
    assert!(short.is_err());
    assert_eq!(
        assert_arithmetic_gives_its_result("r_3 = −β · KL_3 = −0.8 × 0.0123 = −0.00984"),
        1
    );
}

#[test]
fn every_worked_line_gives_its_printed_result_from_its_printed_numbers() {
    let (first, second) = two_iterations(&settings());
    let mut checked = 0;
    for walk in [&first, &second] {
        for row in 0..walk.gae.len() {
            for t in 0..real_len(walk, row) {
                for q in [
                    Quantity::Advantage,
                    Quantity::Return,
                    Quantity::Reward,
                    Quantity::Ratio,
                ] {
                    for line in provenance(walk, row, t, q).unwrap().lines {
                        // The last token's first line says why V and A of the next drop out.
                        if line.contains("is the last token") {
                            continue;
                        }
                        checked += assert_arithmetic_gives_its_result(&line);
                    }
                }
                // The GAE stage's formulas with this step's numbers, as they read.
                let trace = &walk.gae[row];
                let step = trace.steps.iter().find(|s| s.t == t).unwrap();
                for formula in [
                    math::delta(step, trace.params.gamma)[1].clone(),
                    math::advantage(step, trace.params)[1].clone(),
                    math::ret(step),
                ] {
                    let text: String = formula.split("<wbr>").map(math_text).collect();
                    checked += assert_arithmetic_gives_its_result(&text);
                }
            }
        }
    }
    assert!(checked > 100, "{checked} sides checked");
}

#[test]
fn calculator_notes_are_cut_out_whole() {
    use ppo_lens::explain::format::calculator_notes;
    assert_eq!(
        calculator_notes("She has <<13-2=11>>11 left.<<2*3=6>> <<5"),
        [
            (false, "She has "),
            (true, "<<13-2=11>>"),
            (false, "11 left."),
            (true, "<<2*3=6>>"),
            (false, " <<5"),
        ]
    );
    assert_eq!(calculator_notes("<<1+1=2>>"), [(true, "<<1+1=2>>")]);
    assert!(calculator_notes("").is_empty());
}

/// The GRPO panel's line for a response's group advantage gives its printed advantage from its
/// printed reward, mean and std, under both scalings, for the rule's scores and for rewards
/// with KL in them.
#[test]
fn the_group_advantage_line_gives_its_printed_result() {
    use ppo_lens::explain::provenance::group_advantage;
    use ppo_lens::ppo::group_advantages::{RewardScale, group_advantages_ref};
    let scores = [
        1.0, 0.1, 0.0, 0.0, // three rules' outcomes
        0.1, 0.1, 0.0, 1.0, //
        0.37, -0.2, 0.91, 0.05, // rewards with a KL penalty in them
        0.0123, 0.0118, 0.0131,
        0.0097, // a small spread: a large advantage from small numbers
        0.5, 0.5, 0.5, 0.5, // no spread
    ];
    let mut checked = 0;
    for scale in [RewardScale::Group, RewardScale::None] {
        let trace = group_advantages_ref(&scores, 4, scale).unwrap();
        for step in &trace.groups {
            for i in 0..step.rewards.len() {
                let line = group_advantage(step, i, scale);
                if step.zero_spread {
                    assert!(line.ends_with("A = r − mean = 0"), "{line}");
                    continue;
                }
                checked += assert_arithmetic_gives_its_result(&line);
            }
        }
    }
    assert_eq!(checked, 2 * 4 * 4);
}

/// With one mini-batch of the whole batch, the Update note says the first step's policy loss is
/// minus the batch's mean advantage (0 after whitening): an update of one step shows exactly that
/// loss, and with two epochs the note adds that the later steps, on moved weights, differ. With
/// smaller mini-batches it says why their means are not 0.
#[test]
fn the_first_steps_policy_loss_is_minus_the_batchs_mean_advantage() {
    let zero_note = |walk: &Walkthrough| {
        notes(walk, StageKey::Update, 0, 1)
            .into_iter()
            .find(|n| n.key == "policy-loss-zero")
            .unwrap()
            .text
    };
    for (whiten, epochs) in [(true, 1), (false, 1), (true, 2)] {
        let s = LabSettings {
            rollouts: 4,
            minibatch: 4,
            max_new_tokens: 12,
            whiten,
            epochs,
            ..LabSettings::default()
        };
        let mut lab = Lab::new(&s, &Device::flex()).unwrap();
        let walk = block_on(lab.iterate(&s, Some(0))).unwrap();
        let used = walk.experience.batch();
        // Summed in f64, as the note sums it.
        let (sum, n) = used
            .advantages
            .iter()
            .flatten()
            .zip(used.response_mask.iter().flatten())
            .filter(|(_, m)| **m > 0.0)
            .fold((0f64, 0usize), |(s, n), (a, _)| (s + *a as f64, n + 1));
        let mean = (sum / n as f64) as f32;
        // The pinned table follows the critic's first value and the advantages the update used.
        let f = followed(&walk, 0);
        assert_eq!(f.start_value, Some(walk.experience.rollout.values[0][0]));
        let real = real_len(&walk, 0);
        let row_mean = used.advantages[0][..real].iter().sum::<f32>() / real as f32;
        assert!(
            (f.mean_advantage - row_mean).abs() < 1e-6,
            "{f:?} {row_mean}"
        );
        let text = zero_note(&walk);
        let said = if whiten {
            "the first step's policy loss is 0 up to rounding".to_string()
        } else {
            format!("the first step's policy loss is {} up to", num(-mean))
        };
        assert!(text.contains(&said), "{said} in {text}");
        assert_eq!(text.contains("whitening made Â's mean"), whiten, "{text}");
        assert_eq!(text.contains("The steps after it"), epochs > 1, "{text}");
        if whiten {
            assert!(mean.abs() < 1e-5, "{mean}");
        }
        if epochs == 1 {
            // The update's one step: its policy loss is the one the note names.
            assert_eq!(walk.stats.optimizer_steps, 1);
            assert!(
                (walk.stats.loss_policy + mean).abs() < 1e-4,
                "{} against {}",
                walk.stats.loss_policy,
                -mean
            );
        }
    }
    let (walk, _) = two_iterations(&settings());
    let text = zero_note(&walk);
    assert!(
        text.contains("not over each of its 2 mini-batches of 3 rows"),
        "{text}"
    );
    // The critic-free members, averaged as their loss averages them: RLOO's advantages, one
    // per response, sum to 0 over each group; GRPO's token-mean over responses of unequal
    // lengths does not.
    use ppo_lens::ppo::family::Family;
    use ppo_lens::ppo::loss_agg::LossAgg;
    for algo in [Family::Rloo, Family::Grpo] {
        let s = LabSettings {
            rollouts: 4,
            minibatch: 4,
            max_new_tokens: 12,
            epochs: 1,
            algo,
            group: 2,
            ..LabSettings::default()
        };
        let mut lab = Lab::new(&s, &Device::flex()).unwrap();
        let walk = block_on(lab.iterate(&s, Some(0))).unwrap();
        let used = walk.experience.batch();
        let g = walk.update.grpo.unwrap();
        let agg = if g.per_response {
            LossAgg::SeqMeanTokenMean
        } else {
            g.agg
        };
        let m = agg.apply_ref(&used.advantages, &used.response_mask);
        if algo == Family::Grpo {
            let score = tour_member_note(&walk, StageKey::Score).unwrap();
            let want = format!(
                "a loss term, β · k3 per token, with its own β = {}",
                num(g.beta)
            );
            assert!(score.contains(&want), "{want} in {score}");
        }
        let text = zero_note(&walk);
        let said = if m.abs() < 1e-6 {
            "the first step's policy loss is 0 up to rounding".to_string()
        } else {
            format!("the first step's policy loss is {} up to", num(-m))
        };
        assert!(text.contains(&said), "{said} in {text}");
        assert!(
            (walk.stats.loss_policy + m).abs() < 1e-4,
            "{algo:?}: {} against {}",
            walk.stats.loss_policy,
            -m
        );
    }
}

/// A DAPO batch whose every group has equal rewards (one new token: no answer can be given, so
/// every reward is 0): dynamic sampling leaves every group out and no update runs. The page says
/// so instead of describing an update: the Update stage, the clip explorer, the misconceptions,
/// the loop's last arrow, and no ratio question.
#[test]
fn a_batch_with_no_group_kept_is_said_to_have_no_update() {
    use ppo_lens::misconceptions::misconceptions;
    use ppo_lens::ppo::family::Family;
    use ppo_lens::predict::ask::question;
    use ppo_lens::predict::question::Kind;
    let s = LabSettings {
        algo: Family::Dapo,
        rollouts: 8,
        minibatch: 4,
        max_new_tokens: 1,
        group: 4,
        ..LabSettings::default()
    };
    let mut lab = Lab::new(&s, &Device::flex()).unwrap();
    let walk = block_on(lab.iterate(&s, Some(0))).unwrap();
    let exp = &walk.experience;
    assert!(exp.scores.iter().all(|s| s.reward() == 0.0));
    assert!(!exp.updated());
    assert_eq!(walk.stats.optimizer_steps, 0);
    assert_eq!(loop_edges(&walk)[6], "θ unchanged (no group kept)");
    let tour = tour_member_note(&walk, StageKey::Update).unwrap();
    assert!(tour.ends_with("so no update ran."), "{tour}");
    for row in 0..8 {
        let out = left_out(&walk, row).unwrap();
        assert!(out.starts_with("No update ran: DAPO's dynamic sampling left every group out"));
        assert!(left_out_token(&walk, row).is_some());
        // The ratios are the sampling policy's, scored again.
        for p in &walk.policy_after[row].tokens {
            assert!((p.ratio - 1.0).abs() < 1e-3, "{}", p.ratio);
        }
        assert!(question(&walk, Kind::RatioClipped, row, 1).is_none());
        // The Update stage's notes: no step, and no token that "moved most".
        let update_notes = notes(&walk, StageKey::Update, row, 1);
        assert!(update_notes.iter().all(|n| n.key != "largest-move"));
        assert!(
            update_notes
                .iter()
                .any(|n| n.text.contains("no group in it")
                    && n.text.contains("no losses or grad norm to show")),
            "{update_notes:#?}"
        );
    }
    let answers = misconceptions(&walk);
    let answer = |key: &str| {
        answers
            .iter()
            .find(|m| m.key == key)
            .unwrap_or_else(|| panic!("no {key}"))
            .answer
            .clone()
    };
    assert!(
        answer("approx-kl").contains("no update ran"),
        "{}",
        answer("approx-kl")
    );
    let clip = answers
        .iter()
        .find(|m| m.answer.contains("pushing harder replays nothing"));
    assert!(clip.is_some(), "{answers:#?}");
    assert!(answers.iter().all(|m| !m.answer.contains("gentle one")));
    assert!(answer("advantage-not-reward").contains("so no advantage was used"));
}

/// A DAPO batch that keeps some groups and leaves others out (pairs of samples, so that equal
/// rewards are common; the first seed and length that give such a batch): each left-out response
/// is said to be, with the count of those kept, and one the update trained on is not.
#[test]
fn a_response_dapo_left_out_is_said_to_be() {
    /// The ratios outside DAPO's band in the responses its update left out, checked against the
    /// clip misconception's count of them.
    fn left_out_outside(walk: &Walkthrough) -> usize {
        let exp = &walk.experience;
        let (lo, hi) = walk.update.token_band().unwrap().edges();
        let outside = |left_out_only: bool| -> usize {
            (0..exp.rollout.ids.len())
                .filter(|&b| !left_out_only || !exp.row_used(b))
                .flat_map(|b| &walk.policy_after[b].tokens)
                .filter(|p| p.ratio < lo || p.ratio > hi)
                .count()
        };
        let (all, out) = (outside(false), outside(true));
        let clip = ppo_lens::misconceptions::misconceptions(walk)
            .into_iter()
            .find(|m| m.key == "clip-not-cap")
            .unwrap();
        let said = format!(
            "{out} of the {all} {} in responses DAPO left out of the update",
            if out == 1 { "is" } else { "are" }
        );
        assert_eq!(
            clip.answer.contains(&said),
            out > 0,
            "{said} in {}",
            clip.answer
        );
        assert_eq!(clip.answer.contains("left out of the update"), out > 0);
        out
    }
    use ppo_lens::ppo::family::Family;
    use ppo_lens::predict::ask::question;
    use ppo_lens::predict::question::Kind;
    let tries = (1..=4).flat_map(|seed| [48, 20].map(|len| (seed, len)));
    let partial = tries.into_iter().find_map(|(seed, max_new_tokens)| {
        let s = LabSettings {
            seed,
            algo: Family::Dapo,
            rollouts: 8,
            minibatch: 8,
            max_new_tokens,
            group: 2,
            ..LabSettings::default()
        };
        let mut lab = Lab::new(&s, &Device::flex()).unwrap();
        let walk = block_on(lab.iterate(&s, Some(0))).unwrap();
        let kept = walk.experience.kept.as_ref().unwrap().rows.len();
        (kept > 0 && kept < 8).then_some(walk)
    });
    let walk = partial.expect("no seed and length tried gave a batch with some groups left out");
    let exp = &walk.experience;
    let kept = exp.kept.as_ref().unwrap().rows.clone();
    assert!(exp.updated());
    assert_eq!(loop_edges(&walk)[6], "new θ (2 epochs × 1 mini-batch)");
    let tour = tour_member_note(&walk, StageKey::Update).unwrap();
    let dropped = format!(
        "left {} of the batch's 4 groups out of this update",
        (8 - kept.len()) / 2
    );
    assert!(tour.contains(&dropped), "{dropped} in {tour}");
    // One mini-batch is all the update trained on: the groups it kept.
    let zero = notes(&walk, StageKey::Update, 0, 1)
        .into_iter()
        .find(|n| n.key == "policy-loss-zero")
        .unwrap();
    let what = format!(
        "one mini-batch is all the update trained on (the {} responses of the groups DAPO kept)",
        kept.len()
    );
    assert!(zero.text.contains(&what), "{what} in {}", zero.text);
    // The misconception counts the tokens the update trained on.
    let trained: usize = kept.iter().map(|&b| real_len(&walk, b)).sum();
    let adv = ppo_lens::misconceptions::misconceptions(&walk)
        .into_iter()
        .find(|m| m.key == "advantage-not-reward")
        .unwrap();
    let counted = format!("of the {trained} tokens the update trained on (the groups DAPO kept)");
    assert!(adv.answer.contains(&counted), "{counted} in {}", adv.answer);
    // The clip misconception says which of the ratios outside the band no loss term moved:
    // here none, and in a batch pushed harder (a higher learning rate, more epochs) some.
    assert_eq!(left_out_outside(&walk), 0);
    // The exercise check runs on every response, and says so when some were left out.
    assert!(
        exercise_check_inputs(&walk)
            .contains(", the responses DAPO left out of the update included")
    );
    let pushed = (1..=4).find_map(|seed| {
        let s = LabSettings {
            seed,
            algo: Family::Dapo,
            rollouts: 8,
            minibatch: 8,
            max_new_tokens: 48,
            group: 2,
            lr: 1e-3,
            epochs: 4,
            ..LabSettings::default()
        };
        let mut lab = Lab::new(&s, &Device::flex()).unwrap();
        let walk = block_on(lab.iterate(&s, Some(0))).unwrap();
        (walk.experience.updated() && left_out_outside(&walk) > 0).then_some(walk)
    });
    assert!(left_out_outside(&pushed.expect("no pushed batch moved a left-out ratio out")) > 0);
    for row in 0..8 {
        let used = kept.contains(&row);
        assert_eq!(exp.row_used(row), used);
        // Only a response the update trained on has a token that moved most.
        let moved = notes(&walk, StageKey::Update, row, 1)
            .into_iter()
            .any(|n| n.key == "largest-move");
        assert_eq!(moved, used, "row {row}");
        match left_out(&walk, row) {
            Some(out) => {
                assert!(!used);
                // Asked which tokens get a positive advantage, the answer says why none.
                let q = question(&walk, Kind::AdvantageSign, row, 1).unwrap();
                assert!(
                    q.why
                        .contains("DAPO's dynamic sampling left it out of the update"),
                    "{}",
                    q.why
                );
                assert_eq!(
                    out,
                    format!(
                        "Response {}'s group had equal rewards, so DAPO left it out of the update: \
                         it had no term in the loss, and its ratios below moved only through the \
                         weights it shares with the {} responses the update kept.",
                        row + 1,
                        kept.len()
                    )
                );
                assert!(
                    left_out_token(&walk, row)
                        .unwrap()
                        .contains("no term in the loss")
                );
            }
            None => assert!(used && left_out_token(&walk, row).is_none()),
        }
    }
}

/// The GAE stage's pushed-up note, for batches a real run rarely gives: advantages all equal
/// (nothing to whiten) and exactly half of the tokens above 0.
#[test]
fn pushed_up_says_what_the_count_allows() {
    use ppo_lens::explain::notes::pushed_up;
    use ppo_lens::ppo::family::Family;
    // Advantages all equal: nothing to whiten, and nothing is pushed either way.
    let none = pushed_up(0, 12, true, Family::Ppo);
    assert!(
        none.contains("The batch's 12 tokens all have the same advantage"),
        "{none}"
    );
    assert!(none.contains("PPO pushes no token up or down."), "{none}");
    assert!(!none.contains("0 of its"), "{none}");
    let none = pushed_up(0, 12, true, Family::Rloo);
    assert!(
        none.contains("PPO would push no token up or down (RLOO's update"),
        "{none}"
    );
    // Exactly half: no claim that mean and median differ.
    let half = pushed_up(6, 12, false, Family::Ppo);
    assert!(half.contains("6 of its 12 tokens are pushed up (Â > 0): exactly half."));
    assert!(!half.contains("median"), "{half}");
    // Otherwise the lopsided spread, with the verb agreeing with the count.
    let one = pushed_up(1, 12, false, Family::Ppo);
    assert!(one.contains("but 1 of its 12 tokens is pushed up (Â > 0): mean 0 is not"));
    let some = pushed_up(4, 12, false, Family::Grpo);
    assert!(
        some.contains("but 4 of its 12 tokens have Â > 0, so PPO would push them up (GRPO's"),
        "{some}"
    );
}

/// The fixed texts that quote DAPO's upper clip edge (the settings panel, the glossary, the
/// member's one-line description) quote the one the page trains with.
#[test]
fn fixed_texts_quote_dapos_own_upper_edge() {
    use ppo_lens::explain::guide::GLOSSARY;
    use ppo_lens::lab::setting_keys::SETTING_KEYS;
    use ppo_lens::ppo::family::{DAPO_EPS_HIGH, Family};
    let upper = format!("{:.2}", 1.0 + DAPO_EPS_HIGH);
    let clip = SETTING_KEYS.iter().find(|k| k.key == "clip").unwrap().about;
    assert!(clip.contains(&format!("(its upper is {upper})")), "{clip}");
    let word = GLOSSARY.iter().find(|(w, _)| *w == "clip").unwrap().1;
    assert!(
        word.contains(&format!("DAPO to [1 − ε, {upper}]")),
        "{word}"
    );
    let about = Family::Dapo.change();
    assert!(
        about.contains(&format!("[1 − ε_low, {upper}]"))
            && about.contains(&format!("for ε_low under {DAPO_EPS_HIGH},")),
        "{about}"
    );
}

/// Notes at the edges of the settings: with γ = 0 a value jump is credited to no token (δ_t does
/// not look at V_{t+1}), and with β = 0 a negative KL_t is charged nothing rather than paid as a
/// bonus.
#[test]
fn notes_hold_at_gamma_0_and_beta_0() {
    let s = LabSettings {
        gamma: 0.0,
        kl: 0.0,
        ..settings()
    };
    let (first, second) = two_iterations(&s);
    let (mut jumps, mut negatives) = (0, 0);
    for (iteration, walk) in [(1, &first), (2, &second)] {
        for row in 0..walk.gae.len() {
            for n in notes(walk, StageKey::Values, row, iteration) {
                if n.key == "value-jump" {
                    jumps += 1;
                    assert!(
                        n.text.contains("With γ = 0") && n.text.contains("no token is credited"),
                        "{}",
                        n.text
                    );
                }
            }
            for n in notes(walk, StageKey::Score, row, iteration) {
                if n.key == "kl-negative" {
                    negatives += 1;
                    assert!(
                        n.text.contains("with β = 0 nothing is charged")
                            && !n.text.contains("bonus"),
                        "{}",
                        n.text
                    );
                }
            }
        }
    }
    assert!(
        jumps > 0 && negatives > 0,
        "{jumps} jumps, {negatives} negative-KL notes"
    );
}
