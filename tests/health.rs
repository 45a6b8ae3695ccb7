//! The run-health checks (`ppo_lens::health`) on real runs of the tiny model, the page's own
//! (the lab on flex): its default recipe stays healthy for twenty iterations, a critic held to
//! the policy's learning rate is found not learning, and the same run with a learning rate
//! thirty times larger is found out.

use burn::tensor::Device;
use ppo_lens::break_it::{PRESET_ITERATIONS, PRESETS};
use ppo_lens::compute::block_on;
use ppo_lens::health::{AdvantageScale, Check, History, KlKnob, RunSettings, findings};
use ppo_lens::lab::run::Lab;
use ppo_lens::lab::settings::LabSettings;
use ppo_lens::ppo::iteration::metrics;

/// The findings after each of `n` iterations of `settings`, and the history.
fn run(settings: &LabSettings, n: usize) -> (Vec<Vec<Check>>, History) {
    let mut lab = Lab::new(settings, &Device::flex()).unwrap();
    let mut history = History::new();
    let mut found = Vec::new();
    // The lab clips the gradient norm at 1, as config_debug.yaml does.
    let run_settings = RunSettings {
        max_grad_norm: Some(1.0),
        kl: settings.algo.kl_knob(),
        scale: settings.advantage_scale(),
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

/// The page's recipe trains (its reward rises; tests/browser.rs) and nothing about it is found
/// wrong in twenty iterations, its critic included: the value head's bias, at its own learning
/// rate, follows the mean return, so the value loss comes down. (At the policy's learning rate,
/// as before `vblr`, it did not: `value-loss-flat` and `critic-worse-than-mean` fired; the last
/// test here keeps that case.)
#[test]
fn the_default_recipe_runs_twenty_iterations_without_a_finding() {
    let (found, history) = run(&LabSettings::default(), 20);
    for (i, checks) in found.iter().enumerate() {
        assert!(
            checks.is_empty(),
            "iteration {}: {checks:?}\n{history:?}",
            i + 1
        );
    }
    let loss = history.series("loss/value").unwrap();
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len() as f64;
    assert!(
        mean(&loss[15..]) < 0.7 * mean(&loss[..5]),
        "the value loss did not come down: {loss:?}"
    );
}

/// The critic's bias at the policy's learning rate cannot follow the returns: the checks say so.
#[test]
fn a_critic_at_the_policys_learning_rate_is_found_not_learning() {
    let settings = LabSettings {
        vblr: LabSettings::default().lr,
        ..small()
    };
    let (found, history) = run(&settings, 20);
    let all: std::collections::BTreeSet<Check> = found.iter().flatten().copied().collect();
    assert!(all.contains(&Check::ValueLossFlat), "{all:?}\n{history:?}");
}

#[test]
fn thirty_times_the_learning_rate_is_found_out() {
    let settings = LabSettings {
        lr: 30.0 * LabSettings::default().lr,
        ..small()
    };
    let (found, history) = run(&settings, 20);
    let all: std::collections::BTreeSet<Check> = found.iter().flatten().copied().collect();
    assert!(
        all.contains(&Check::ApproxKlHigh),
        "{all:?}: updates too large are not found in 20 iterations\n{history:?}"
    );
}

/// The mean of the first and of the last `n` values of `metric`.
fn ends(history: &History, metric: &str, n: usize) -> (f64, f64) {
    let xs = history.series(metric).unwrap();
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    (mean(&xs[..n]), mean(&xs[xs.len() - n..]))
}

/// Each "break it" preset breaks the page's recipe the way its sentence says, within
/// `PRESET_ITERATIONS`: every finding it expects fires, and the reward falls where it says so
/// (and the entropy rises, for the entropy bonus).
#[test]
fn each_break_it_preset_is_found_out_as_it_says() {
    for preset in PRESETS {
        let settings = preset.apply(&LabSettings::default());
        let (found, history) = run(&settings, PRESET_ITERATIONS);
        let all: std::collections::BTreeSet<Check> = found.iter().flatten().copied().collect();
        for want in preset.expect {
            assert!(
                all.contains(want),
                "{}: {want:?} not found in {all:?}\n{history:?}",
                preset.key
            );
        }
        let first = |c: &Check| found.iter().position(|f| f.contains(c)).map(|i| i + 1);
        let (r0, r1) = ends(&history, "rollout/reward_mean", 5);
        let (e0, e1) = ends(&history, "loss/entropy", 5);
        println!(
            "{}: {:?}, reward {r0:.2} -> {r1:.2}, entropy {e0:.3} -> {e1:.3}, approx KL {:?}",
            preset.key,
            all.iter().map(|c| (c.key(), first(c))).collect::<Vec<_>>(),
            history
                .series("params/approx_kl")
                .unwrap()
                .iter()
                .map(|x| format!("{x:.3}"))
                .collect::<Vec<_>>()
        );
        if preset.about.contains("reward falls") {
            assert!(r1 < r0, "{}: reward {r0} then {r1}", preset.key);
        }
        if preset.key == "entropy-5" {
            assert!(e1 > e0, "entropy {e0} then {e1}");
        }
    }
}

/// The advice names settings that exist: the trainer's as keys of configs/config.yaml, the page's
/// as the settings panel labels them, and the page's advice never asks for a trainer key the page
/// has its own setting for.
#[test]
fn the_advice_names_settings_that_exist_on_each_face() {
    use ppo_lens::health::{Knob, fill};
    use ppo_lens::lab::setting_keys::{SETTING_KEYS, knob_name};
    let yaml: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/configs/config.yaml"))
            .unwrap(),
    )
    .unwrap();
    for knob in Knob::ALL {
        let (section, key) = knob.config_key().split_once('.').unwrap();
        assert!(
            yaml[section]
                .as_mapping()
                .is_some_and(|m| m.contains_key(key)),
            "{} is not a key of configs/config.yaml",
            knob.config_key()
        );
        let name = knob_name(knob);
        match knob.page_key() {
            Some(page_key) => {
                let setting = SETTING_KEYS.iter().find(|s| s.key == page_key);
                let setting = setting.unwrap_or_else(|| panic!("no page setting {page_key}"));
                assert!(name.contains(setting.label), "{name}");
                assert!(!name.contains(knob.config_key()), "{name}");
            }
            None => assert!(name.contains(knob.config_key()), "{name}"),
        }
    }
    // Each member's KL setting is a key of its own section; PPO's is kl_coeff, DAPO has none.
    use ppo_lens::ppo::family::Family;
    for member in Family::ALL {
        match member.kl_knob() {
            KlKnob::KlCoeff => assert_eq!(member, Family::Ppo),
            KlKnob::Absent => assert_eq!(member, Family::Dapo),
            KlKnob::Beta { section } => assert!(
                yaml[section]
                    .as_mapping()
                    .is_some_and(|m| m.contains_key("beta")),
                "{section}.beta is not a key of configs/config.yaml"
            ),
        }
    }
    // The page heads each finding with a title in words, one per check.
    let titles: std::collections::BTreeSet<&str> = Check::ALL.iter().map(|c| c.title()).collect();
    assert_eq!(titles.len(), Check::ALL.len());
    for check in Check::ALL {
        let title = check.title();
        assert!(
            title.starts_with(|c: char| c.is_uppercase()) && !title.contains('-'),
            "{}: {title}",
            check.key()
        );
        for (kl, scale) in [
            KlKnob::KlCoeff,
            KlKnob::Beta { section: "grpo" },
            KlKnob::Absent,
        ]
        .into_iter()
        .flat_map(|kl| SCALES.map(|scale| (kl, scale)))
        {
            let page = fill(check.advice_template(kl, scale), knob_name);
            let trainer = fill(check.advice_template(kl, scale), |k| {
                k.config_key().to_string()
            });
            for knob in Knob::ALL.into_iter().filter(|k| k.page_key().is_some()) {
                assert!(!page.contains(knob.config_key()), "{}: {page}", check.key());
            }
            assert!(!trainer.contains('{'), "{}: {trainer}", check.key());
        }
    }
    assert_eq!(
        fill(
            Check::ApproxKlHigh.advice_template(KlKnob::KlCoeff, AdvantageScale::Scaled),
            knob_name
        ),
        "lower learning rate (lr) or epochs"
    );
}

const SCALES: [AdvantageScale; 5] = [
    AdvantageScale::Scaled,
    AdvantageScale::WhitenOff,
    AdvantageScale::GroupStdOff,
    AdvantageScale::NormalizeOff,
    AdvantageScale::Unscaled,
];

/// The clip advice follows how the run scales its advantages, on each face: it asks to check
/// the whitening only where it is off, names the member's own switch (PPO's whitening, GRPO's
/// std, the trainer's RLOO normalising), and says a member that has none does not scale them.
#[test]
fn the_clip_advice_follows_how_the_run_scales_its_advantages() {
    use ppo_lens::health::Finding;
    use ppo_lens::lab::setting_keys::knob_name;
    use ppo_lens::native::config::load_config;
    use ppo_lens::native::recipe::health_settings;
    use ppo_lens::ppo::family::Family;
    use ppo_lens::ppo::group_advantages::RewardScale;
    let advice = |settings: RunSettings, page: bool| {
        let f = Finding {
            check: Check::PolicyClipHigh,
            metric: "params/policy_clip_frac",
            threshold: 0.5,
            window: 1,
            value: 0.8,
            meaning: String::new(),
            kl: settings.kl,
            scale: settings.scale,
        };
        if page {
            f.advice(knob_name)
        } else {
            f.trainer_advice()
        }
    };
    // The trainer, from configs/config_debug.yaml with each member and its switch.
    let debug = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/configs/config_debug.yaml"
    ));
    let trainer = |overrides: &[&str]| {
        let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        let config = load_config(debug, &o).unwrap_or_else(|e| panic!("{overrides:?}: {e:#}"));
        advice(health_settings(&config), false)
    };
    let whitened = trainer(&["algorithm=ppo", "ppo.whiten_advantages=true"]);
    assert_eq!(whitened, "lower ppo.learning_rate or ppo.epochs");
    let cases: [(&[&str], &str); 6] = [
        (
            &["algorithm=ppo", "ppo.whiten_advantages=false"],
            "turn ppo.whiten_advantages back on",
        ),
        (
            &["algorithm=grpo", "grpo.scale_rewards=none"],
            "set grpo.scale_rewards to group",
        ),
        (
            &["algorithm=rloo", "rloo.normalize_advantages=false"],
            "turn rloo.normalize_advantages on",
        ),
        (
            &["algorithm=dr_grpo"],
            "this member does not scale its advantages",
        ),
        (
            &["algorithm=reinforce", "ppo.epochs=1"],
            "this member does not scale its advantages",
        ),
        (&["algorithm=dapo"], "lower ppo.learning_rate or ppo.epochs"),
    ];
    for (overrides, want) in cases {
        let got = trainer(overrides);
        assert!(got.contains(want), "{overrides:?}: {got}");
    }
    for scaled in [
        &["algorithm=grpo", "grpo.scale_rewards=group"][..],
        &["algorithm=rloo", "rloo.normalize_advantages=true"],
    ] {
        assert_eq!(trainer(scaled), whitened, "{scaled:?}");
    }
    // The page, from its own settings: its RLOO has no normalising switch to name.
    let page = |algo: Family, whiten: bool, scale: RewardScale| {
        let s = LabSettings {
            algo,
            whiten,
            scale,
            ..LabSettings::default()
        };
        let run = RunSettings {
            max_grad_norm: Some(1.0),
            kl: algo.kl_knob(),
            scale: s.advantage_scale(),
        };
        advice(run, true)
    };
    assert_eq!(
        page(Family::Ppo, true, RewardScale::Group),
        "lower learning rate (lr) or epochs"
    );
    let off = page(Family::Ppo, false, RewardScale::Group);
    assert!(
        off.contains(&knob_name(ppo_lens::health::Knob::Whiten)),
        "{off}"
    );
    let grpo = page(Family::Grpo, true, RewardScale::None);
    let set_group = format!(
        "set {} to group",
        knob_name(ppo_lens::health::Knob::ScaleRewards)
    );
    assert!(grpo.contains(&set_group), "{grpo}");
    for member in [Family::Rloo, Family::DrGrpo, Family::Reinforce] {
        let a = page(member, true, RewardScale::Group);
        assert!(
            a.contains("does not scale") && !a.contains("trainer"),
            "{a}"
        );
    }
}
