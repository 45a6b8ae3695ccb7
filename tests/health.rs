//! The run-health checks (`ppo_lens::health`) on real runs of the tiny model, the page's own
//! (the lab on flex): its default recipe's updates stay healthy for twenty iterations (its
//! critic does not), and the same run with a learning rate thirty times larger is found out.

use burn::tensor::Device;
use ppo_lens::compute::block_on;
use ppo_lens::health::{Check, History, RunSettings, findings};
use ppo_lens::lab::{Lab, LabSettings};
use ppo_lens::ppo::iteration::metrics;

/// The findings after each of `n` iterations of `settings`, and the history.
fn run(settings: &LabSettings, n: usize) -> (Vec<Vec<Check>>, History) {
    let mut lab = Lab::new(settings, &Device::flex()).unwrap();
    let mut history = History::new();
    let mut found = Vec::new();
    // The lab clips the gradient norm at 1, as config_debug.yaml does.
    let run_settings = RunSettings {
        max_grad_norm: Some(1.0),
    };
    for _ in 0..n {
        let walk = block_on(lab.iterate(settings, None)).unwrap();
        history.push(metrics(&walk.experience, &walk.stats));
        found.push(
            findings(&history, run_settings)
                .into_iter()
                .map(|f| f.check)
                .collect(),
        );
    }
    (found, history)
}

fn small() -> LabSettings {
    LabSettings {
        rollouts: 8,
        max_new_tokens: 24,
        minibatch: 4,
        ..LabSettings::default()
    }
}

/// The page's recipe trains (its reward rises; tests/browser.rs) and nothing about its updates
/// is found wrong. Its critic is: the tiny model's value head, trained at the policy's learning
/// rate with vf_coef 0.1, explains none of the returns' spread in these twenty iterations
/// (explained variance −0.6 to 0.0) and its value loss does not come down over the first ten
/// (it jumps between 0.06 and 0.15 with the batch), so its values add noise to the advantages
/// rather than remove it. Those two findings are the recipe's, not false alarms, and they are
/// the only ones expected here.
#[test]
fn the_default_recipe_updates_healthily_and_its_critic_is_found_not_learning() {
    let (found, history) = run(&small(), 20);
    for (i, checks) in found.iter().enumerate() {
        assert!(
            checks
                .iter()
                .all(|&c| matches!(c, Check::CriticWorseThanMean | Check::ValueLossFlat)),
            "iteration {}: {checks:?}\n{history:?}",
            i + 1
        );
    }
    assert!(
        found
            .iter()
            .any(|c| c.contains(&Check::CriticWorseThanMean)),
        "{history:?}"
    );
}

#[test]
fn thirty_times_the_learning_rate_is_found_out() {
    let settings = LabSettings {
        lr: 30.0 * LabSettings::default().lr,
        ..small()
    };
    let (found, history) = run(&settings, 20);
    let all: std::collections::BTreeSet<Check> = found.iter().flatten().copied().collect();
    println!("{all:?}");
    assert!(
        all.iter()
            .any(|&c| !matches!(c, Check::CriticWorseThanMean | Check::ValueLossFlat)),
        "no finding about the updates in 20 iterations\n{history:?}"
    );
}
