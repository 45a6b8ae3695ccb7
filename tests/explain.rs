//! What the page says about its numbers (`ppo_lens::explain`), on real iterations of the tiny
//! model: every provenance recomputes the number it explains from the cells it names, every
//! note's claim holds for the batch, and the loop's shapes are the batch's.

use burn::tensor::Device;
use ppo_lens::compute::block_on;
use ppo_lens::explain::format::num;
use ppo_lens::explain::guide::{LOOP, TOUR, loop_edges};
use ppo_lens::explain::math;
use ppo_lens::explain::notes::notes;
use ppo_lens::explain::provenance::{Quantity, provenance};
use ppo_lens::explain::stage::{StageKey, real_len};
use ppo_lens::lab::run::Lab;
use ppo_lens::lab::settings::LabSettings;
use ppo_lens::lab::walkthrough::Walkthrough;

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
                    // ...and the arithmetic on them gives the shown number.
                    assert!(
                        (p.recomputed - p.value).abs() <= 1e-5 * (1.0 + p.value.abs()),
                        "{q:?} row {row} t {t}: {} against {}",
                        p.recomputed,
                        p.value
                    );
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
    let (first, second) = two_iterations(&settings());
    for (iteration, walk) in [(1, &first), (2, &second)] {
        let exp = &walk.experience;
        let mask = &exp.rollout.response_mask;
        let r_len = exp.rollout.response_len();
        for row in 0..walk.gae.len() {
            let real = real_len(walk, row);
            for stage in StageKey::ALL {
                for n in notes(walk, stage, row, iteration) {
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
                        }
                        "kl-negative" => {
                            for t in 0..real {
                                assert_eq!(n.tokens.contains(&t), exp.kl[row][t] < 0.0);
                            }
                        }
                        "score-last" => {
                            assert_eq!(n.tokens, [real - 1]);
                            // "Small beside the score" only where it is.
                            let others = exp.rewards[row][..real - 1]
                                .iter()
                                .fold(0f32, |m, r| m.max(r.abs()));
                            let score = exp.scores[row].reward().abs();
                            assert_eq!(
                                n.text.contains("small beside the score"),
                                real > 1 && others > 1e-4 && others < 0.1 * score,
                                "{}",
                                n.text
                            );
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
                        }
                        "sign-flip" => {
                            let w = walk.whiten.as_ref().unwrap();
                            let g = &walk.gae[row];
                            for t in 0..real {
                                let (a, white) = (g.advantages[t], w.whitened[row * r_len + t]);
                                let flipped = a != 0.0 && (a > 0.0) != (white > 0.0);
                                assert_eq!(n.tokens.contains(&t), flipped, "t {t}");
                                // Whitening turns 0 < A < mean negative, and mean < A < 0
                                // positive when the mean is negative.
                                if (a > 0.0 && a < w.mean) || (a < 0.0 && a > w.mean) {
                                    assert!(flipped, "t {t}: {a}, mean {}", w.mean);
                                }
                            }
                            // The clause the note picks follows the mean's sign.
                            if !n.tokens.is_empty() {
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
    }
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
    assert_eq!(edges[1], "ids, log π_old [6 × 20]");
    assert!(edges[5].contains("[6 × 20]"));
    assert_eq!(LOOP.len(), edges.len());
    // Every stage but the causal mask (inside the update) has a node; the tour visits all seven.
    for stage in StageKey::ALL {
        assert!(TOUR.iter().any(|(s, _)| *s == stage), "{stage:?}");
    }
    assert_eq!(TOUR.len(), StageKey::ALL.len());
}

#[test]
fn formulas_are_mathml_with_the_step_numbers() {
    let (walk, _) = two_iterations(&settings());
    let step = &walk.gae[0].steps[0];
    let [general, filled] = math::delta(step, walk.gae[0].params.gamma);
    assert!(general.starts_with("<math display=\"block\">"));
    // V_{t+1} as a subscript with its own row, never "V(s_t+1)".
    assert!(general.contains("<msub><mi>V</mi><mrow><mi>t</mi><mo>+</mo><mn>1</mn></mrow></msub>"));
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
}

/// The misconceptions card: every number an answer turns on, recomputed from the batch, and
/// each answer pointing at a stage.
#[test]
fn every_misconception_is_answered_with_its_batchs_numbers() {
    use ppo_lens::explore::{ValueMove, value_case};
    use ppo_lens::misconceptions::misconceptions;
    let (first, second) = two_iterations(&settings());
    for walk in [&first, &second] {
        let exp = &walk.experience;
        let r_len = exp.rollout.response_len();
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
            // The number is in the answer, as the page prints it.
            let printed =
                if m.value.fract() == 0.0 && m.key != "kl-reward-or-loss" && m.key != "approx-kl" {
                    format!("{}", m.value as usize)
                } else {
                    num(m.value)
                };
            assert!(
                m.answer.contains(&printed),
                "{}: {printed} in {}",
                m.key,
                m.answer
            );
        }
    }
}
