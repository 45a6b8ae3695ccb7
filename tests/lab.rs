//! The page's PPO run (`ppo_lens::lab`), natively: what each stage shows agrees with the tensors
//! the update used, and the causal-mask check holds on the tiny model.

use burn::tensor::Device;
use ppo_lens::compute::block_on;
use ppo_lens::lab::run::Lab;
use ppo_lens::lab::settings::LabSettings;
use ppo_lens::ppo::policy_loss::PolicyClip;

fn close(a: f32, b: f32, tol: f32) -> bool {
    (a - b).abs() <= tol * (1.0 + b.abs())
}

#[test]
fn one_iteration_keeps_what_every_stage_shows() {
    let settings = LabSettings {
        rollouts: 4,
        minibatch: 2,
        max_new_tokens: 24,
        ..LabSettings::default()
    };
    let mut lab = Lab::new(&settings, &Device::flex()).unwrap();
    let walk = block_on(lab.iterate(&settings, Some(1))).unwrap();
    let exp = &walk.experience;
    let mask = &exp.rollout.response_mask;
    let p = exp.rollout.prompt_len;
    assert_eq!(exp.rollout.ids.len(), 4);
    assert_eq!(lab.iteration, 1);

    // Rollout: candidates are sorted, the sampled token's logprob is its candidate's log-prob
    // when it is among them, and the first value is the value head on the prompt.
    let mut among = 0;
    for b in 0..4 {
        for (t, top) in exp.rollout.top[b].iter().enumerate() {
            if mask[b][t] == 0.0 {
                assert!(top.is_empty());
                continue;
            }
            assert_eq!(top.len(), 5);
            assert!(top.windows(2).all(|w| w[0].1 >= w[1].1));
            let id = exp.rollout.ids[b][p + t];
            if let Some((_, prob)) = top.iter().find(|(c, _)| *c == id) {
                assert!(close(prob.ln(), exp.rollout.logprobs[b][t], 1e-4));
                among += 1;
            }
        }
        assert_eq!(walk.tokens[b].len(), p + exp.rollout.response_len());
    }
    assert!(among > 0, "no sampled token was among its top candidates");

    // GAE: the scalar sweep the page animates equals the tensor GAE the update used.
    for b in 0..4 {
        let g = &walk.gae[b];
        for t in 0..mask[b].len() {
            assert!(close(g.deltas[t], exp.deltas[b][t], 1e-5), "delta {b},{t}");
            assert!(
                close(g.advantages[t], exp.raw_advantages[b][t], 1e-5),
                "A {b},{t}"
            );
            assert!(close(g.returns[t], exp.returns[b][t], 1e-5), "R {b},{t}");
        }
        // The sweep runs from the last real token back to the first.
        let real = mask[b].iter().filter(|&&m| m == 1.0).count();
        let order: Vec<usize> = g.steps.iter().map(|s| s.t).collect();
        assert_eq!(order, (0..real).rev().collect::<Vec<_>>());
    }
    // Whitening: the page's statistics give the advantages the update used.
    let w = walk.whiten.as_ref().unwrap();
    let flat_adv: Vec<f32> = exp.advantages.concat();
    assert_eq!(w.whitened.len(), flat_adv.len());
    for (x, y) in w.whitened.iter().zip(&flat_adv) {
        assert!(close(*x, *y, 1e-4), "{x} vs {y}");
    }

    // Causal mask: one teacher-forced pass gives back the rollout's logprobs.
    assert!(
        walk.teacher_forced_max_diff < 1e-4,
        "max |diff| {}",
        walk.teacher_forced_max_diff
    );
    // Attention of row 1: rows sum to 1, nothing above the diagonal, no weight on padding.
    let att = walk.attention.as_ref().unwrap();
    assert_eq!(att.row, 1);
    assert_eq!(att.maps.len(), 2);
    assert_eq!(att.maps[0].len(), 4);
    let pad = &exp.rollout.attention_mask[1];
    for layer in 0..2 {
        for head in 0..4 {
            for q in 0..att.len {
                if pad[q] == 0 {
                    continue;
                }
                let sum: f32 = (0..att.len).map(|k| att.weight(layer, head, q, k)).sum();
                assert!(close(sum, 1.0, 1e-4), "row {q} sums to {sum}");
                for k in 0..att.len {
                    if k > q || pad[k] == 0 {
                        assert_eq!(att.weight(layer, head, q, k), 0.0, "q {q} k {k}");
                    }
                }
            }
        }
    }

    // Update: epochs x (4 rows / 2 per mini-batch) optimizer steps; the policy moved, and each
    // token's clipping follows its ratio and the sign of its advantage.
    assert_eq!(walk.stats.optimizer_steps, 2 * 2);
    let mut moved = 0f32;
    for (b, trace) in walk.policy_after.iter().enumerate() {
        let real = mask[b].iter().filter(|&&m| m == 1.0).count();
        assert_eq!(trace.tokens.len(), real);
        for tok in &trace.tokens {
            assert!(close(tok.ratio, (tok.logp_new - tok.logp_old).exp(), 1e-5));
            moved = moved.max((tok.logp_new - tok.logp_old).abs());
            match tok.clip {
                PolicyClip::AboveBand => assert!(tok.advantage > 0.0 && tok.ratio > 1.2),
                PolicyClip::BelowBand => assert!(tok.advantage < 0.0 && tok.ratio < 0.8),
                PolicyClip::No => {}
            }
        }
        assert_eq!(walk.value_after[b].tokens.len(), real);
    }
    assert!(moved > 0.0, "the update did not change any logprob");
    assert!(
        walk.entropy
            .iter()
            .flatten()
            .all(|h| h.is_finite() && *h >= 0.0)
    );
    assert!(walk.times.total_ms() > 0.0);

    // The next iteration starts from the updated policy and draws other problems.
    let next = block_on(lab.iterate(&settings, None)).unwrap();
    assert!(next.attention.is_none());
    assert_ne!(next.experience.rollout.ids, exp.rollout.ids);
}

#[test]
fn same_seed_same_iteration() {
    let settings = LabSettings {
        rollouts: 2,
        minibatch: 2,
        max_new_tokens: 12,
        ..LabSettings::default()
    };
    let run = || {
        let mut lab = Lab::new(&settings, &Device::flex()).unwrap();
        block_on(lab.iterate(&settings, None)).unwrap()
    };
    let (a, b) = (run(), run());
    assert_eq!(a.experience, b.experience);
    assert_eq!(a.policy_after, b.policy_after);
}

/// With the `exercises` feature the walkthrough holds the student's functions beside the
/// reference, and its marks agree with the numbers the page shows: the experience (what the
/// update used, from the student's gae) against the scalar reference sweep. Without the feature
/// it holds nothing. `scripts/exercise_loop.sh` runs this with a student's gae that is wrong.
#[test]
fn the_walkthrough_compares_the_students_code_only_with_exercises_on() {
    use ppo_lens::exercises::compare::differs;
    use ppo_lens::exercises::{ENABLED, STUDENT};

    let settings = LabSettings {
        rollouts: 3,
        minibatch: 3,
        max_new_tokens: 10,
        ..LabSettings::default()
    };
    let mut lab = Lab::new(&settings, &Device::flex()).unwrap();
    let walk = block_on(lab.iterate(&settings, None)).unwrap();
    if !ENABLED {
        assert!(walk.exercises.is_none());
        return;
    }
    let compared = walk.exercises.as_ref().expect("exercises on: a comparison");
    assert_eq!(compared.losses.len(), 10);
    let exp = &walk.experience;
    let mask = &exp.rollout.response_mask;
    let student_gae_written = {
        let d = Device::flex();
        let z = burn::tensor::Tensor::<2>::zeros([1, 1], &d);
        (STUDENT.gae)(
            z.clone(),
            z.clone(),
            z,
            ppo_lens::ppo::gae::GaeParams {
                gamma: 1.0,
                lam: 0.95,
            },
        )
        .is_ok()
    };
    let Some(g) = compared.gae.as_ref() else {
        assert!(!student_gae_written, "a written gae must be compared");
        return;
    };
    let (mut marked, mut compared_cells) = (0, 0);
    for (b, trace) in walk.gae.iter().enumerate() {
        for t in 0..mask[b].len() {
            if mask[b][t] == 0.0 {
                continue;
            }
            for (column, used, shown) in [
                ("delta", exp.deltas[b][t], trace.deltas[t]),
                ("adv", exp.raw_advantages[b][t], trace.advantages[t]),
                ("ret", exp.returns[b][t], trace.returns[t]),
            ] {
                // The student's values are the ones the update used...
                assert!(close(g.yours.column(column).unwrap()[b][t], used, 1e-5));
                // ...and a cell is marked exactly when they differ from the page's reference.
                assert_eq!(
                    g.differs_at(column, b, t).is_some(),
                    differs(used, shown),
                    "{column} {b} {t}: used {used}, shown {shown}"
                );
                marked += usize::from(g.differs_at(column, b, t).is_some());
                compared_cells += 1;
            }
        }
    }
    eprintln!("exercise 4 against the reference: {marked} of {compared_cells} cells differ");
    // scripts/exercise_loop.sh runs this with a gae whose returns leave V_t out: those cells
    // must be marked.
    if std::env::var_os("PPO_LENS_STUDENT_MISTAKE").is_some() {
        assert!(
            marked > 0,
            "the student's returns differ from the reference, yet none of {compared_cells} cells is marked"
        );
    }
}

#[test]
fn the_page_benchmark_times_every_stage() {
    use ppo_lens::lab::bench::bench_stages;
    let settings = LabSettings {
        rollouts: 2,
        minibatch: 2,
        max_new_tokens: 8,
        ..LabSettings::default()
    };
    let bench = block_on(bench_stages(&settings, 2, &Device::flex())).unwrap();
    assert_eq!(bench.iterations, 2);
    for times in [bench.first, bench.median] {
        for (stage, ms) in [
            ("rollout", times.rollout_ms),
            ("score", times.score_ms),
            ("update", times.update_ms),
            ("after", times.after_ms),
        ] {
            assert!(ms > 0.0, "{stage}: {ms} ms");
        }
        // Timed natively with a nanosecond clock: a stage left untimed would read 0.
        assert!(
            times.mask_ms > 0.0 && times.gae_ms > 0.0,
            "mask {} ms, gae {} ms",
            times.mask_ms,
            times.gae_ms
        );
    }
    assert!(block_on(bench_stages(&settings, 0, &Device::flex())).is_err());
}

/// What the page's Web Worker runs, driven natively through the same encoded messages: it
/// answers in order, refuses an iteration before a reset, and computes exactly what a `Lab`
/// computes (the walkthrough crosses the wire unchanged).
#[test]
fn the_worker_server_answers_the_page_with_the_labs_numbers() {
    use ppo_lens::compute::{BackendKind, Compute};
    use ppo_lens::lab::server::LabServer;
    use ppo_lens::lab::wire::{Message, Progress, Reply, Request, Sampling, decode, encode};
    use std::cell::RefCell;

    let settings = LabSettings {
        rollouts: 3,
        minibatch: 2,
        max_new_tokens: 10,
        ..LabSettings::default()
    };
    let mut server = LabServer::new(Compute::flex());
    let progress = RefCell::new(Vec::new());
    // Requests, replies and progress all go through postcard, as between the page and the worker.
    let mut ask = |request: Request| -> Reply {
        let request: Request = decode(&encode(&request), "request").unwrap();
        let reply = block_on(server.handle(request, &|p| {
            match decode(&encode(&Message::Progress(p)), "progress").unwrap() {
                Message::Progress(p) => progress.borrow_mut().push(p),
                other => panic!("not progress: {other:?}"),
            }
        }));
        let bytes = encode(&Message::Reply(reply));
        match decode::<Message>(&bytes, "message").unwrap() {
            Message::Reply(reply) => reply,
            other => panic!("not a reply: {other:?}"),
        }
    };
    let iterate = Request::Iterate {
        settings: settings.clone(),
        attention_row: Some(1),
        pinned: None,
    };

    let Reply::Iteration(Err(err)) = ask(iterate.clone()) else {
        panic!("an iteration before the model is loaded must be refused");
    };
    assert!(err.contains("reset first"), "{err}");

    let Reply::Started { kind, summary, .. } = ask(Request::Start { backend: None }) else {
        panic!("Start answers Started");
    };
    assert_eq!((kind, summary.as_str()), (BackendKind::Flex, "flex (CPU)"));

    let Reply::SelfCheck(Ok((check, ms))) = ask(Request::SelfCheck) else {
        panic!("the self-check runs on flex");
    };
    assert!(check.passed() && ms >= 0.0, "{check:?}");

    assert_eq!(ask(Request::Reset(settings.clone())), Reply::Reset(Ok(())));
    let mut lab = Lab::new(&settings, &Device::flex()).unwrap();
    for n in 1..=2 {
        let Reply::Iteration(Ok(got)) = ask(iterate.clone()) else {
            panic!("iteration {n} failed");
        };
        let mut expected = block_on(lab.iterate(&settings, Some(1))).unwrap();
        // The rollout came token by token before the reply: steps 1, 2, …, R, ending with the
        // first response exactly as it was scored.
        let sampled: Vec<Sampling> = progress
            .borrow_mut()
            .drain(..)
            .map(|p| match p {
                Progress::Sampling(s) => s,
                other => panic!("an iteration sends only its rollout: {other:?}"),
            })
            .collect();
        let rollout = &got.walk.experience.rollout;
        let steps: Vec<usize> = sampled.iter().map(|s| s.step).collect();
        assert_eq!(steps, (1..=rollout.response_len()).collect::<Vec<_>>());
        assert!(sampled.iter().all(|s| s.of == 10));
        let last = sampled.last().unwrap();
        assert_eq!(last.text, got.walk.experience.responses[0]);
        assert_eq!(last.finished, rollout.finished[0]);
        assert_eq!(got.iteration, n);
        assert!(got.exercises_ran.starts_with("exercises run: "));
        // Everything but the wall-clock times is the same computation.
        expected.times = got.walk.times;
        assert!(got.walk.attention.is_some());
        assert_eq!(got.walk, expected, "iteration {n}");
    }

    // A reset starts the run again: the next iteration is the first one once more.
    assert_eq!(ask(Request::Reset(settings.clone())), Reply::Reset(Ok(())));
    let Reply::Iteration(Ok(again)) = ask(iterate) else {
        panic!("iteration after reset failed");
    };
    assert_eq!(again.iteration, 1);
    progress.borrow_mut().clear();

    let bench = |iterations| Request::Bench {
        settings: LabSettings {
            rollouts: 2,
            max_new_tokens: 6,
            ..settings.clone()
        },
        iterations,
    };
    let Reply::Bench(Ok(results)) = ask(bench(1)) else {
        panic!("benchmark mode runs on flex");
    };
    assert!(results.webgpu.is_none() && results.webgpu_adapter.is_empty());
    assert!(results.flex.median.total_ms() > 0.0);
    assert_eq!(
        progress.borrow().as_slice(),
        [Progress::Line("flex: 1 + 1 iterations…".into())]
    );
    let Reply::Bench(Err(err)) = ask(bench(0)) else {
        panic!("0 timed iterations must be refused");
    };
    assert!(err.contains("at least 1"), "{err}");
}

/// The adaptive KL controller in the page's run: each iteration's β is the one the controller
/// left after the iteration before (starting from `kl`), and each step is its rule,
/// `β × (1 + clip(KL / target − 1, ±0.2) × n / horizon)`, up when the batch's KL is over the
/// target and down when under; with no target β stays at `kl` and no step is recorded.
#[test]
fn the_adaptive_kl_controller_steps_beta_by_its_rule() {
    let base = LabSettings {
        rollouts: 8,
        max_new_tokens: 24,
        minibatch: 4,
        ..LabSettings::default()
    };
    for target in [1e-3f32, 0.05, 100.0] {
        let s = LabSettings {
            kl_target: target,
            kl_horizon: 16.0,
            ..base.clone()
        };
        let mut lab = Lab::new(&s, &Device::flex()).unwrap();
        let mut beta = s.kl as f64;
        let mut moved = (0, 0);
        for i in 0..4 {
            let walk = block_on(lab.iterate(&s, None)).unwrap();
            assert_eq!(walk.experience.kl_coeff, beta as f32, "iteration {}", i + 1);
            let k = walk.kl_control.expect("a step while adapting");
            let kl = walk.experience.kl_mean();
            let error = (kl / target as f64 - 1.0).clamp(-0.2, 0.2);
            assert_eq!((k.kl, k.before, k.error, k.n), (kl, beta, error, 8));
            let after = beta * (1.0 + error * 8.0 / 16.0);
            assert!((k.after - after).abs() < 1e-12, "{} vs {after}", k.after);
            assert_eq!(k.after > beta, kl > target as f64);
            if k.after > beta {
                moved.0 += 1;
            } else {
                moved.1 += 1;
            }
            beta = k.after;
        }
        println!("target {target}: up {} down {}", moved.0, moved.1);
        if target >= 100.0 {
            assert_eq!(moved, (0, 4), "far above any KL here: β only falls");
        } else if target <= 1e-3 {
            assert!(moved.0 > 0, "a KL over the target raises β at least once");
        }
    }
    let mut lab = Lab::new(&base, &Device::flex()).unwrap();
    for _ in 0..2 {
        let walk = block_on(lab.iterate(&base, None)).unwrap();
        assert_eq!(walk.experience.kl_coeff, base.kl);
        assert!(walk.kl_control.is_none());
    }
}
