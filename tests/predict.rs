//! The page's predict-then-reveal questions (`ppo_lens::predict`) on real iterations of the tiny
//! model: every answer is recomputed here from the walkthrough's numbers by the rule a student
//! should apply (not by the code under test), every kind is answered right and wrong, and no
//! batch the page can produce makes a question panic or ask what the batch leaves undefined.

use burn::tensor::Device;
use ppo_lens::compute::block_on;
use ppo_lens::explain::stage::real_len;
use ppo_lens::lab::run::Lab;
use ppo_lens::lab::settings::LabSettings;
use ppo_lens::lab::walkthrough::Walkthrough;
use ppo_lens::ppo::Algorithm;
use ppo_lens::ppo::family::Family;
use ppo_lens::predict::{Ask, Kind, Mark, Response, question, questions, reveal};

fn iterations(settings: &LabSettings, n: usize) -> Vec<Walkthrough> {
    let mut lab = Lab::new(settings, &Device::flex()).unwrap();
    (0..n)
        .map(|_| block_on(lab.iterate(settings, Some(0))).unwrap())
        .collect()
}

fn settings() -> LabSettings {
    LabSettings {
        rollouts: 6,
        minibatch: 3,
        max_new_tokens: 20,
        ..LabSettings::default()
    }
}

/// The answer a student reasoning right would give, from the walkthrough's numbers.
fn expected(walk: &Walkthrough, q: &ppo_lens::predict::Question) -> Response {
    let exp = &walk.experience;
    let row = q.row;
    let len = real_len(walk, row);
    let yes_no = |yes: bool| Response::Choice(if yes { 0 } else { 1 });
    match q.kind {
        Kind::AdvantageSign => {
            // The advantages the update used: GAE's under PPO, the group's under GRPO.
            let used = match exp.algorithm() {
                Algorithm::Ppo => &exp.advantages,
                Algorithm::Grpo => &exp.group_advantages,
            };
            Response::Tokens((0..len).filter(|&t| used[row][t] > 0.0).collect())
        }
        Kind::LargestKl => {
            let sums: Vec<f64> = (0..exp.kl.len())
                .map(|b| (0..real_len(walk, b)).map(|t| exp.kl[b][t] as f64).sum())
                .collect();
            let best = (0..sums.len())
                .max_by(|&a, &b| sums[a].total_cmp(&sums[b]))
                .unwrap();
            Response::Choice(best)
        }
        Kind::BetaMoves => {
            // The controller raises β when the batch's KL to the reference (summed over each
            // response, averaged over the batch) is above its target, lowers it below.
            let k = walk.kl_control.unwrap();
            let kl = exp
                .kl
                .iter()
                .map(|row| row.iter().map(|&x| x as f64).sum::<f64>())
                .sum::<f64>()
                / exp.kl.len() as f64;
            assert!((kl - k.kl).abs() < 1e-9, "{kl} against {}", k.kl);
            Response::Choice(if kl > k.target {
                0
            } else if kl < k.target {
                2
            } else {
                1
            })
        }
        Kind::GaeStep => {
            // A_t = δ_t + γλ A_{t+1}, with A past the last real token 0.
            let t = q.t.unwrap();
            let trace = &walk.gae[row];
            let next = if t + 1 < len {
                trace.advantages[t + 1]
            } else {
                0.0
            };
            let gl = trace.params.gamma * trace.params.lam;
            let a = trace.deltas[t] + gl * next;
            assert!((a - trace.advantages[t]).abs() < 1e-5);
            Response::Number(a)
        }
        Kind::WhiteningFlip => {
            let t = q.t.unwrap();
            let a = walk.gae[row].advantages[t];
            let w = walk.whiten.as_ref().unwrap();
            let white = (a - w.mean) / w.std;
            assert!(
                (white - exp.advantages[row][t]).abs() < 1e-4,
                "{white} against {}",
                exp.advantages[row][t]
            );
            assert!(a != 0.0 && white != 0.0, "asked about a token with no sign");
            yes_no(a * white < 0.0)
        }
        Kind::RatioClipped => {
            // The clip zeroes the token's gradient when ρ is past the edge its advantage pushes
            // toward: above 1 + ε with Â > 0, below 1 − ε with Â < 0.
            let eps = walk.update.coeffs.clip_ratio;
            let p = walk.policy_after[row]
                .tokens
                .iter()
                .find(|p| p.t == q.t.unwrap())
                .unwrap();
            // The question's own ratio: the batch's, or the one it supposes (outside the band,
            // where the batch left every token inside).
            let ratio = q.supposed.unwrap_or(p.ratio);
            if let Some(r) = q.supposed {
                assert!(r > 1.0 + eps || (0.0 < r && r < 1.0 - eps), "{r}");
                assert!(
                    walk.policy_after[row]
                        .tokens
                        .iter()
                        .all(|p| (p.ratio - 1.0).abs() <= eps)
                );
            }
            yes_no(
                (p.advantage > 0.0 && ratio > 1.0 + eps)
                    || (p.advantage < 0.0 && ratio < 1.0 - eps),
            )
        }
        Kind::CriticLearns => {
            // max((V − R)², (clip(V) − R)²): the gradient in V is 0 when the clipped error is
            // the larger and V sits outside the band (clip(V) is then the band's edge), or when
            // V = R.
            let c = walk.update.coeffs.clip_range_value;
            let v = walk.value_after[row]
                .tokens
                .iter()
                .find(|v| v.t == q.t.unwrap())
                .unwrap();
            let value_new = q.supposed.unwrap_or(v.value_new);
            if q.supposed.is_some() {
                assert!((value_new - v.value_old).abs() > c);
            }
            let clipped = value_new.clamp(v.value_old - c, v.value_old + c);
            let zeroed =
                (clipped - v.ret).powi(2) > (value_new - v.ret).powi(2) && clipped != value_new;
            yes_no(!zeroed && value_new != v.ret)
        }
    }
}

/// A wrong answer to `q`: the right one moved off.
fn wrong(q: &ppo_lens::predict::Question) -> Response {
    match (&q.ask, &q.answer) {
        (Ask::Tokens(texts), Response::Tokens(right)) => {
            Response::Tokens((0..texts.len()).filter(|t| !right.contains(t)).collect())
        }
        (Ask::Number { tolerance }, Response::Number(right)) => {
            Response::Number(right + 2.0 * tolerance)
        }
        (Ask::Choice(choices), Response::Choice(right)) => {
            Response::Choice((right + 1) % choices.len())
        }
        other => panic!("{other:?}"),
    }
}

/// A number as the page prints it (a real minus sign, an exponent, parentheses), and the unit of
/// its last digit.
fn printed(text: &str) -> (f64, f64) {
    let s = text.trim_matches(|c| "().;".contains(c)).replace('−', "-");
    let (mantissa, exponent) = s.split_once('e').unwrap_or((&s, "0"));
    let decimals = mantissa.split_once('.').map_or(0, |(_, d)| d.len()) as i32;
    let exponent: i32 = exponent.parse().unwrap();
    (
        s.parse().unwrap_or_else(|_| panic!("not a number: {text}")),
        10f64.powi(exponent - decimals),
    )
}

/// The arithmetic a reveal writes out gives its printed result from its printed numbers (to 2.5
/// units of the result's last digit): A_t from δ_t, γλ and A_{t+1}; the KL paid from β and the sum.
fn check_arithmetic(q: &ppo_lens::predict::Question) {
    match q.kind {
        Kind::GaeStep => {
            // "A_t = δ_t + γλ · A_{t+1} = a + b × c = d", written with the token's own t.
            let t = q.t.unwrap();
            let named = format!("A_{t} = δ_{t} + γλ · A_{} = ", t + 1);
            assert!(q.why.starts_with(&named), "{named} in {}", q.why);
            // The token after it, or, after the last real token, none (the sweep starts at 0).
            assert!(
                (q.prompt
                    .contains(&format!("the token after it has A_{} = ", t + 1))
                    || q.prompt.contains(&format!(
                        "it is the last real token, so nothing follows it (A_{} = 0)",
                        t + 1
                    )))
                    && q.prompt.ends_with(&format!("What is A_{t}?")),
                "{}",
                q.prompt
            );
            let sides: Vec<&str> = q.why.split(" = ").collect();
            let words: Vec<&str> = sides[sides.len() - 2].split(' ').collect();
            let [a, "+", b, "×", c] = words[..] else {
                panic!("{}", q.why)
            };
            let (d, unit) = printed(sides[sides.len() - 1]);
            let got = printed(a).0 + printed(b).0 * printed(c).0;
            assert!((got - d).abs() <= 2.5 * unit, "{got} from {}", q.why);
        }
        Kind::LargestKl => {
            // "… with β = b. …" and "… sums to s (β · ΣKL_t = p); …"
            let beta = q
                .prompt
                .split("β = ")
                .nth(1)
                .unwrap()
                .split(". ")
                .next()
                .unwrap();
            let sum = q
                .why
                .split("sums to ")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap();
            let paid = q
                .why
                .split("ΣKL_t = ")
                .nth(1)
                .unwrap()
                .split(')')
                .next()
                .unwrap();
            let (p, unit) = printed(paid);
            let got = printed(beta).0 * printed(sum).0;
            assert!(
                (got - p).abs() <= 2.5 * unit,
                "{got}: {} / {}",
                q.prompt,
                q.why
            );
        }
        _ => {}
    }
}

fn check(walk: &Walkthrough, q: &ppo_lens::predict::Question) {
    check_arithmetic(q);
    let want = expected(walk, q);
    match (&q.answer, &want) {
        (Response::Number(a), Response::Number(b)) => assert!((a - b).abs() < 1e-5, "{q:?}"),
        _ => assert_eq!(q.answer, want, "{}: {}", q.kind.key(), q.prompt),
    }
    let right = reveal(q, &want);
    assert!(right.right, "{}: {}", q.kind.key(), right.verdict);
    let wrong = reveal(q, &wrong(q));
    assert!(!wrong.right, "{}: {}", q.kind.key(), wrong.verdict);
    assert!(
        wrong.verdict.ends_with(&q.why),
        "the reveal explains: {}",
        wrong.verdict
    );
    if let (Ask::Tokens(texts), Response::Tokens(answer)) = (&q.ask, &q.answer) {
        assert_eq!(texts.len(), real_len(walk, q.row));
        // Picking every token marks each positive one a hit and every other one wrong.
        let all = reveal(q, &Response::Tokens((0..texts.len()).collect()));
        for (t, mark) in all.marks.iter().enumerate() {
            let want = if answer.contains(&t) {
                Mark::Hit
            } else {
                Mark::Wrong
            };
            assert_eq!(*mark, want, "token {t}");
        }
    }
}

#[test]
fn every_question_is_answered_by_the_batch_and_checked_both_ways() {
    let walks = iterations(&settings(), 3);
    let mut asked = std::collections::BTreeMap::<&str, usize>::new();
    for (i, walk) in walks.iter().enumerate() {
        for row in 0..walk.gae.len() {
            for q in questions(walk, row, i + 1) {
                assert_eq!(q.row, row);
                check(walk, &q);
                *asked.entry(q.kind.key()).or_default() += 1;
                if q.supposed.is_some() {
                    *asked.entry("supposed").or_default() += 1;
                }
            }
        }
    }
    // Every kind is asked on these batches (the KL question from the second iteration on), but
    // the β question, which needs the adaptive controller on (its own test below).
    for kind in Kind::ALL.into_iter().filter(|&k| k != Kind::BetaMoves) {
        assert!(asked.get(kind.key()).copied().unwrap_or(0) > 0, "{asked:?}");
    }
    // The page's gentle update leaves the ratios and values inside their bands: those questions
    // suppose a harder push.
    assert!(asked.get("supposed").copied().unwrap_or(0) > 0, "{asked:?}");
    // The first iteration's policy is the reference: its KL is rounding noise, with no largest.
    assert!(question(&walks[0], Kind::LargestKl, 0, 1).is_none());
}

/// With a KL target, the Score stage asks which way the controller moves β: down after the
/// first batch (the policy is still the reference, its KL about 0), up once the policy has moved
/// past a small target. With β fixed it is not asked.
#[test]
fn the_beta_question_follows_the_kl_against_its_target() {
    let adaptive = LabSettings {
        kl_target: 0.001,
        ..settings()
    };
    let walks = iterations(&adaptive, 3);
    let answers: Vec<Response> = walks
        .iter()
        .enumerate()
        .map(|(i, walk)| {
            let q = question(walk, Kind::BetaMoves, 0, i + 1).unwrap();
            check(walk, &q);
            assert!(q.why.contains(&format!("{}", walk.kl_control.unwrap().n)));
            q.answer
        })
        .collect();
    assert_eq!(answers[0], Response::Choice(2), "{answers:?}");
    assert!(answers[1..].contains(&Response::Choice(0)), "{answers:?}");
    let fixed = iterations(&settings(), 1);
    assert!(question(&fixed[0], Kind::BetaMoves, 0, 1).is_none());
}

#[test]
fn yes_no_questions_ask_about_both_answers_over_iterations() {
    // Narrow clip bands, so that some tokens leave them and both answers occur.
    let narrow = LabSettings {
        clip: 0.02,
        vclip: 0.02,
        ..settings()
    };
    let walks = iterations(&narrow, 3);
    for kind in [Kind::WhiteningFlip, Kind::RatioClipped, Kind::CriticLearns] {
        let answers: std::collections::BTreeSet<String> = walks
            .iter()
            .enumerate()
            .flat_map(|(i, w)| {
                (0..w.gae.len()).filter_map(move |row| question(w, kind, row, i + 1))
            })
            .map(|q| format!("{:?}", q.answer))
            .collect();
        assert_eq!(answers.len(), 2, "{}: always {answers:?}", kind.key());
    }
    // With bands this narrow, tokens leave them: the questions ask about the batch's own ratios
    // and values there.
    let own = walks
        .iter()
        .enumerate()
        .flat_map(|(i, w)| {
            (0..w.gae.len()).filter_map(move |row| question(w, Kind::RatioClipped, row, i + 1))
        })
        .filter(|q| q.supposed.is_none())
        .count();
    assert!(own > 0);
}

#[test]
fn odd_batches_ask_only_what_they_define() {
    // One-token responses: the GAE step is the last token's, A_t = δ_t.
    let one = LabSettings {
        rollouts: 2,
        minibatch: 2,
        max_new_tokens: 1,
        ..LabSettings::default()
    };
    for (i, walk) in iterations(&one, 2).iter().enumerate() {
        for row in 0..2 {
            for q in questions(walk, row, i + 1) {
                check(walk, &q);
            }
            let gae = question(walk, Kind::GaeStep, row, 1).unwrap();
            assert_eq!(gae.t, Some(0));
            // One token: nothing follows it, and the question says so rather than name a token
            // after it.
            assert!(
                gae.prompt
                    .contains("it is the last real token, so nothing follows it (A_1 = 0)"),
                "{}",
                gae.prompt
            );
        }
    }
    // β = 0: no response pays any KL, so "which pays the most" is not asked, though the KL
    // sums (which do not depend on β) have a clear largest.
    let free = LabSettings {
        kl: 0.0,
        ..settings()
    };
    let mut clear = 0;
    for (i, walk) in iterations(&free, 3).iter().enumerate() {
        let mut sums: Vec<f32> = (0..walk.experience.kl.len())
            .map(|b| walk.experience.kl[b][..real_len(walk, b)].iter().sum())
            .collect();
        sums.sort_by(f32::total_cmp);
        let [.., second, max] = sums[..] else {
            panic!("{sums:?}")
        };
        clear += usize::from(
            max >= ppo_lens::predict::KL_RESOLUTION
                && max - second >= ppo_lens::predict::KL_RESOLUTION,
        );
        for row in 0..walk.gae.len() {
            assert!(question(walk, Kind::LargestKl, row, i + 1).is_none());
        }
    }
    assert!(
        clear > 0,
        "no iteration with a clear largest KL sum at β = 0"
    );
    // A band that reaches 0 or below (ε ≥ 1), or has no width (ε = 0): a ratio the question
    // supposes is a possible one (above 0) and really outside the band.
    for clip in [0.0, 1.0, 1.5] {
        let s = LabSettings { clip, ..settings() };
        for (i, walk) in iterations(&s, 2).iter().enumerate() {
            for row in 0..walk.gae.len() {
                let Some(q) = question(walk, Kind::RatioClipped, row, i + 1) else {
                    continue;
                };
                if let Some(r) = q.supposed {
                    assert!(
                        r > 0.0 && (r < 1.0 - clip || r > 1.0 + clip),
                        "ε {clip}: ρ {r}"
                    );
                }
                check(walk, &q);
            }
        }
    }
    // vf_coef = 0 trains the critic on no token: "would the critic still learn" is not asked,
    // and the value-clip misconception says the loss had no weight. β = 0 under the adaptive
    // controller never moves (the rule multiplies it): not asked which way it moves.
    let idle = LabSettings {
        vf: 0.0,
        kl: 0.0,
        kl_target: 0.02,
        ..settings()
    };
    for (i, walk) in iterations(&idle, 2).iter().enumerate() {
        assert!(walk.kl_control.is_some());
        for row in 0..walk.gae.len() {
            assert!(question(walk, Kind::CriticLearns, row, i + 1).is_none());
            assert!(question(walk, Kind::BetaMoves, row, i + 1).is_none());
        }
        let value_clip = ppo_lens::misconceptions::misconceptions(walk)
            .into_iter()
            .find(|m| m.key == "value-clip")
            .unwrap();
        assert!(
            value_clip
                .answer
                .contains("vf_coef = 0 gives the value loss no weight")
        );
    }
    // No whitening: no whitening question.
    let plain = LabSettings {
        whiten: false,
        ..settings()
    };
    let walk = &iterations(&plain, 1)[0];
    assert!(question(walk, Kind::WhiteningFlip, 0, 1).is_none());
    for q in questions(walk, 0, 1) {
        check(walk, &q);
    }
    // GRPO: no critic, no GAE, no KL paid out of a token's reward (GRPO's is a loss term); a
    // group whose rewards are all equal has no positive advantage.
    let grpo = LabSettings {
        algo: Family::Grpo,
        group: 3,
        ..settings()
    };
    for (i, walk) in iterations(&grpo, 2).iter().enumerate() {
        for row in 0..walk.gae.len() {
            let qs = questions(walk, row, i + 1);
            for kind in [
                Kind::GaeStep,
                Kind::WhiteningFlip,
                Kind::CriticLearns,
                Kind::LargestKl,
            ] {
                assert!(
                    qs.iter().all(|q| q.kind != kind),
                    "GRPO asked {}",
                    kind.key()
                );
            }
            for q in &qs {
                check(walk, q);
            }
        }
    }
}
