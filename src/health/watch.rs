//! Running the checks on a history: every check that fires now ([`findings`]), and a [`Watch`]
//! that follows a run as its metrics come in and reports each check once.

use std::collections::BTreeSet;

use super::check::*;
use super::history::History;
use crate::sign::real_minus;

/// The means of the window's first and second halves.
fn halves(xs: &[f64]) -> (f64, f64) {
    let h = xs.len() / 2;
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len().max(1) as f64;
    (mean(&xs[..h]), mean(&xs[xs.len() - h..]))
}

/// A run's findings as its metrics come in: the history so far, each check reported once (when
/// it first fires), and which checks fire on the latest iteration. The trainer, `ppo-lens report`
/// and the page's health panel all watch a run this way.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Watch {
    history: History,
    settings: RunSettings,
    reported: BTreeSet<Check>,
    firing: Vec<Check>,
}

impl Watch {
    /// Watches a run whose metrics so far are `history`, where the checks in `reported` have
    /// already been reported (a resumed run's).
    pub fn new(
        history: History,
        settings: RunSettings,
        reported: impl IntoIterator<Item = Check>,
    ) -> Self {
        Self {
            history,
            settings,
            reported: reported.into_iter().collect(),
            firing: Vec::new(),
        }
    }

    /// Adds one iteration's metrics; returns the findings that fire for the first time.
    pub fn push<'a>(&mut self, row: impl IntoIterator<Item = (&'a str, f64)>) -> Vec<Finding> {
        self.history.push(row);
        let now = findings(&self.history, self.settings);
        self.firing = now.iter().map(|f| f.check).collect();
        now.into_iter()
            .filter(|f| self.reported.insert(f.check))
            .collect()
    }

    pub fn history(&self) -> &History {
        &self.history
    }

    /// Whether `check` fires on the latest iteration.
    pub fn firing(&self, check: Check) -> bool {
        self.firing.contains(&check)
    }
}

/// Every check that fires on the history as it stands (its last iterations), in [`Check::ALL`]
/// order. A check without enough iterations, or without its metric (GRPO has no value loss),
/// does not fire.
pub fn findings(history: &History, settings: RunSettings) -> Vec<Finding> {
    Check::ALL
        .into_iter()
        .filter_map(|check| run_check(check, history, settings))
        .collect()
}

fn run_check(check: Check, h: &History, settings: RunSettings) -> Option<Finding> {
    let found =
        |metric: &'static str, threshold: f64, window: usize, value: f64, meaning: String| {
            Some(Finding {
                check,
                metric,
                threshold,
                window,
                value,
                meaning,
                kl: settings.kl,
                scale: settings.scale,
            })
        };
    match check {
        Check::PolicyClipHigh => {
            let x = h.last("params/policy_clip_frac", 1)?[0];
            (x > POLICY_CLIP_HIGH).then_some(())?;
            found(
                "params/policy_clip_frac",
                POLICY_CLIP_HIGH,
                1,
                x,
                format!(
                    "{:.0}% of this update's ratios (one per token; one per response in RLOO) were past the clip band on the side their advantage pushes: the policy tried to move much further than the band allows.",
                    100.0 * x
                ),
            )
        }
        Check::PolicyClipSustained => {
            let xs = h.last("params/policy_clip_frac", SUSTAINED)?;
            xs.iter().all(|&x| x > CLIP_SUSTAINED_HIGH).then_some(())?;
            let min = xs.iter().copied().fold(f64::INFINITY, f64::min);
            found(
                "params/policy_clip_frac",
                CLIP_SUSTAINED_HIGH,
                SUSTAINED,
                min,
                format!(
                    "The policy clip fraction has stayed above {CLIP_SUSTAINED_HIGH} for the last {SUSTAINED} iterations (never below {min:.2}): each update keeps pushing against the band."
                ),
            )
        }
        Check::ValueClipHigh => {
            let x = h.last("params/value_clip_frac", 1)?[0];
            (x > VALUE_CLIP_HIGH).then_some(())?;
            found(
                "params/value_clip_frac",
                VALUE_CLIP_HIGH,
                1,
                x,
                format!(
                    "{:.0}% of this update's value predictions moved toward their return past the value band, where the clip stops their gradient: the critic is held back more than it learns.",
                    100.0 * x
                ),
            )
        }
        Check::GradNormExploding => {
            let max = settings.max_grad_norm?;
            let x = h.last("params/grad_norm", 1)?[0];
            let limit = GRAD_NORM_FACTOR * max;
            (x > limit).then_some(())?;
            found(
                "params/grad_norm",
                limit,
                1,
                x,
                format!(
                    "The gradient norm before clipping, averaged over this update's steps, is {x:.1}, more than {GRAD_NORM_FACTOR} times the limit it is clipped to ({max}, max_grad_norm): clipping hides exploding gradients, it does not cure them."
                ),
            )
        }
        Check::ValueLossFlat => {
            let xs = h.last("loss/value", TREND_WINDOW)?;
            let (first, second) = halves(&xs);
            let mean = xs.iter().sum::<f64>() / xs.len() as f64;
            let spread = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max)
                - xs.iter().copied().fold(f64::INFINITY, f64::min);
            let constant = spread <= CONSTANT_RELATIVE * mean.abs().max(1e-12);
            // Not falling: only over the run's first window, where a learning critic must bring
            // its loss down; later a settled loss is what a healthy run shows.
            let early_not_falling = h.len() == TREND_WINDOW && second >= first;
            (constant || early_not_falling).then_some(())?;
            // The threshold is the earlier half's mean, which the later half's should be below.
            found(
                "loss/value",
                first,
                TREND_WINDOW,
                second,
                if constant {
                    format!(
                        "The value loss has stayed at {mean:.4} for {TREND_WINDOW} iterations: the critic is not learning, so the advantages come from a baseline that never improves."
                    )
                } else {
                    format!(
                        "Over the first {TREND_WINDOW} iterations the value loss did not fall (mean {first:.4}, then {second:.4}): the critic is not learning the returns."
                    )
                },
            )
        }
        Check::ApproxKlHigh => {
            let xs = h.last("params/approx_kl", SUSTAINED)?;
            xs.iter().all(|&x| x > APPROX_KL_HIGH).then_some(())?;
            let min = xs.iter().copied().fold(f64::INFINITY, f64::min);
            found(
                "params/approx_kl",
                APPROX_KL_HIGH,
                SUSTAINED,
                min,
                format!(
                    "Each of the last {SUSTAINED} updates moved the policy by more than {APPROX_KL_HIGH} nats per token (approx KL, never below {min:.3}): every update leaves the policy that sampled the batch far behind, so its ratios and advantages no longer describe what is being trained."
                ),
            )
        }
        Check::ApproxKlGrowing => {
            let xs = h.last("params/approx_kl", TREND_WINDOW)?;
            let (first, second) = halves(&xs);
            let last = xs[xs.len() - 1];
            (last > APPROX_KL_HIGH && second > first).then_some(())?;
            found(
                "params/approx_kl",
                APPROX_KL_HIGH,
                TREND_WINDOW,
                last,
                format!(
                    "Each update now moves the policy by {last:.3} nats per token (approx KL), above {APPROX_KL_HIGH} and growing (mean {first:.3}, then {second:.3}): the updates are getting larger, not settling."
                ),
            )
        }
        Check::KlRefGrowing => {
            let xs = h.last("rollout/kl_mean", TREND_WINDOW)?;
            let (first, second) = halves(&xs);
            let last = xs[xs.len() - 1];
            (last > KL_REF_HIGH && second > KL_GROWTH * first.max(1e-9)).then_some(())?;
            found(
                "rollout/kl_mean",
                KL_REF_HIGH,
                TREND_WINDOW,
                last,
                format!(
                    "A response now sits {last:.2} nats from the frozen reference (summed over its tokens), and the mean over the last {half} iterations ({second:.2}) is more than {KL_GROWTH} times the mean over the {half} before ({first:.2}): the policy is drifting away fast.",
                    half = TREND_WINDOW / 2
                ),
            )
        }
        Check::RewardFlatKlRising => {
            let kl = h.last("rollout/kl_mean", TREND_WINDOW)?;
            let reward = h.last("rollout/reward_mean", TREND_WINDOW)?;
            let (k1, k2) = halves(&kl);
            let (r1, r2) = halves(&reward);
            // Only past KL_REF_HIGH: below it the policy is still near the reference, and a KL that
            // starts at 0 doubles in any run that learns (the page's recipe: 0.04 to 0.15 nats
            // while its reward, 16 responses a batch, wobbles by ±0.1).
            let rising = k2 > KL_GROWTH * k1.max(1e-9) && k2 > KL_REF_HIGH;
            (rising && r2 <= r1 + REWARD_FLAT).then_some(())?;
            let held = match settings.kl {
                KlKnob::Absent => "with no KL term to hold it",
                _ => "with a KL penalty too weak to hold it",
            };
            found(
                "rollout/reward_mean",
                REWARD_FLAT,
                TREND_WINDOW,
                r2 - r1,
                format!(
                    "The KL to the reference, averaged over the last {half} iterations, is {} against {} over the {half} before, while the reward's mean is {} against {}: the policy is changing without getting better, either gaming something the reward does not see or, {held}, wandering.",
                    signed(k2, 3),
                    signed(k1, 3),
                    signed(r2, 3),
                    signed(r1, 3),
                    half = TREND_WINDOW / 2
                ),
            )
        }
        Check::EntropyCollapsed => {
            let x = h.last("loss/entropy", 1)?[0];
            let start = h.first("loss/entropy")?;
            let collapsed = x < ENTROPY_FLOOR || (h.len() > 1 && x < ENTROPY_DROP * start);
            collapsed.then_some(())?;
            let what = if x < ENTROPY_FLOOR {
                "the policy has become nearly deterministic; it rarely samples an alternative to the token it prefers"
            } else {
                "under a tenth of where it began, the policy samples alternatives to the tokens it prefers far less often than it did"
            };
            found(
                "loss/entropy",
                ENTROPY_FLOOR,
                h.len(),
                x,
                format!(
                    "The policy's entropy is {x:.3} nats per token, from {start:.3} at the start: {what}, so a wrong habit is slow to unlearn."
                ),
            )
        }
        Check::CriticWorseThanMean => {
            let xs = h.last("critic/explained_variance", EV_WINDOW)?;
            xs.iter().all(|&x| x < EV_FLOOR).then_some(())?;
            let last = xs[xs.len() - 1];
            found(
                "critic/explained_variance",
                EV_FLOOR,
                EV_WINDOW,
                last,
                format!(
                    "The critic's explained variance has been below {} for {EV_WINDOW} iterations (now {}): it predicts the returns worse than their mean would, so its values add noise to the advantages.",
                    signed(EV_FLOOR, 1),
                    signed(last, 2)
                ),
            )
        }
    }
}

/// `x` with `decimals` decimals and a real minus sign, as the page writes numbers (the trainer's
/// log reads it as well); never "−0.00".
fn signed(x: f64, decimals: usize) -> String {
    real_minus(format!("{x:.decimals$}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A healthy run of `n` iterations: reward rising then flat, value loss falling then
    /// settling, small and steady approx KL, low clip fractions, grad norm under the limit, a
    /// KL to the reference that grows slowly, entropy easing down, the critic explaining more.
    fn healthy(n: usize) -> History {
        let mut h = History::new();
        for i in 0..n {
            let x = i as f64;
            h.push([
                ("rollout/reward_mean", (0.1 + 0.02 * x).min(0.6)),
                ("rollout/kl_mean", 0.05 + 0.01 * x),
                ("loss/value", 0.5 / (1.0 + 0.3 * x) + 0.05),
                ("loss/entropy", 2.0 - 0.02 * x),
                ("params/approx_kl", 0.004 + 0.0005 * (x % 3.0)),
                ("params/policy_clip_frac", 0.05 + 0.01 * (x % 4.0)),
                ("params/value_clip_frac", 0.1),
                ("params/grad_norm", 2.0 + (x % 5.0)),
                ("critic/explained_variance", (0.1 + 0.05 * x).min(0.9)),
            ]);
        }
        h
    }

    const SETTINGS: RunSettings = RunSettings {
        max_grad_norm: Some(1.0),
        kl: KlKnob::KlCoeff,
        scale: AdvantageScale::Scaled,
    };

    /// The healthy history with `metric` replaced by `f(i)` for every iteration.
    fn with(n: usize, metric: &str, f: impl Fn(usize) -> f64) -> History {
        let base = healthy(n);
        let mut h = History::new();
        for (i, row) in base.rows().iter().enumerate() {
            let mut row = row.clone();
            row.insert(metric.to_string(), f(i));
            h.push(row.iter().map(|(k, v)| (k.as_str(), *v)));
        }
        h
    }

    fn fired(h: &History) -> Vec<Check> {
        findings(h, SETTINGS).into_iter().map(|f| f.check).collect()
    }

    #[test]
    fn a_healthy_run_has_no_finding_at_any_length() {
        for n in 1..=40 {
            assert_eq!(fired(&healthy(n)), [], "after {n} iterations");
        }
    }

    /// Entropy under the floor reads as nearly deterministic; a drop to under a tenth of the start
    /// that is still above the floor (3.0 to 0.29 nats) says only that much.
    #[test]
    fn entropy_collapsed_says_which_of_its_two_limits_it_crossed() {
        let meaning = |last: f64| {
            let h = with(4, "loss/entropy", |i| if i == 3 { last } else { 3.0 });
            let f = findings(&h, SETTINGS);
            assert_eq!(
                f.iter().map(|f| f.check).collect::<Vec<_>>(),
                [Check::EntropyCollapsed]
            );
            f[0].meaning.clone()
        };
        let low = meaning(0.05);
        assert!(
            low.contains("0.050 nats per token, from 3.000")
                && low.contains("nearly deterministic"),
            "{low}"
        );
        let drop = meaning(0.29);
        assert!(
            drop.contains("under a tenth of where it began") && !drop.contains("deterministic"),
            "{drop}"
        );
    }

    #[test]
    fn each_check_fires_on_a_history_built_to_trigger_it_and_only_it() {
        let cases: Vec<(Check, History)> = vec![
            (
                Check::PolicyClipHigh,
                with(12, "params/policy_clip_frac", |i| {
                    if i == 11 { 0.6 } else { 0.05 }
                }),
            ),
            (
                Check::PolicyClipSustained,
                with(12, "params/policy_clip_frac", |i| {
                    if i >= 7 { 0.3 } else { 0.05 }
                }),
            ),
            (
                Check::ValueClipHigh,
                with(12, "params/value_clip_frac", |i| {
                    if i == 11 { 0.7 } else { 0.1 }
                }),
            ),
            (
                Check::GradNormExploding,
                with(12, "params/grad_norm", |i| if i == 11 { 25.0 } else { 3.0 }),
            ),
            (Check::ValueLossFlat, with(14, "loss/value", |_| 0.3127)),
            (Check::ApproxKlHigh, with(12, "params/approx_kl", |_| 0.3)),
            (
                // Past the limit only on its last four: growing, not yet high for long.
                Check::ApproxKlGrowing,
                with(12, "params/approx_kl", |i| {
                    0.01 * (i.max(7) - 6) as f64 * 3.0
                }),
            ),
            (
                Check::EntropyCollapsed,
                with(12, "loss/entropy", |i| 2.0 / (1.0 + (i * i) as f64)),
            ),
            (
                Check::CriticWorseThanMean,
                with(12, "critic/explained_variance", |i| {
                    if i >= 9 { -0.3 } else { 0.2 }
                }),
            ),
        ];
        for (check, h) in cases {
            assert_eq!(fired(&h), [check], "{}", check.key());
            let f = &findings(&h, SETTINGS)[0];
            assert!(!f.meaning.is_empty() && !f.trainer_advice().is_empty());
        }
        // The KL to the reference rising fast, with the reward flat: both KL findings.
        let mut h = History::new();
        for (i, row) in healthy(12).rows().iter().enumerate() {
            let mut row = row.clone();
            row.insert("rollout/kl_mean".into(), 0.3 * 1.3f64.powi(i as i32));
            row.insert("rollout/reward_mean".into(), 0.2);
            h.push(row.iter().map(|(k, v)| (k.as_str(), *v)));
        }
        assert_eq!(fired(&h), [Check::KlRefGrowing, Check::RewardFlatKlRising]);
        // The same KL with the reward rising: only the KL growth.
        let mut h2 = History::new();
        for (i, row) in h.rows().iter().enumerate() {
            let mut row = row.clone();
            row.insert("rollout/reward_mean".into(), 0.1 + 0.05 * i as f64);
            h2.push(row.iter().map(|(k, v)| (k.as_str(), *v)));
        }
        assert_eq!(fired(&h2), [Check::KlRefGrowing]);
        // A small KL tripling with the reward flat: still near the reference, no finding.
        let mut h3 = History::new();
        for (i, row) in h.rows().iter().enumerate() {
            let mut row = row.clone();
            row.insert("rollout/kl_mean".into(), 0.05 * 1.3f64.powi(i as i32));
            h3.push(row.iter().map(|(k, v)| (k.as_str(), *v)));
        }
        assert_eq!(fired(&h3), []);
    }

    /// The findings' sentences are read on the page and in the trainer's log: numbers with a real
    /// minus, the gradient limit named in words before its config key.
    #[test]
    fn findings_write_numbers_as_the_page_does() {
        let h = with(12, "critic/explained_variance", |i| {
            if i >= 9 { -0.3 } else { 0.2 }
        });
        let meaning = &findings(&h, SETTINGS)[0].meaning;
        assert!(
            meaning.contains("below −0.1 for 3 iterations (now −0.30)") && !meaning.contains('-'),
            "{meaning}"
        );
        let h = with(3, "params/grad_norm", |_| 25.0);
        let meaning = &findings(&h, SETTINGS)[0].meaning;
        assert!(
            meaning.contains(
                "is 25.0, more than 10 times the limit it is clipped to (1, max_grad_norm)"
            ),
            "{meaning}"
        );
        assert_eq!(signed(-0.0004, 3), "0.000");
        assert_eq!(signed(-0.25, 2), "−0.25");
        assert_eq!(signed(0.25, 2), "0.25");
    }

    #[test]
    fn thresholds_are_strict_and_missing_metrics_fire_nothing() {
        // Exactly at a threshold is not past it.
        let h = with(3, "params/policy_clip_frac", |_| POLICY_CLIP_HIGH);
        assert_eq!(fired(&h), []);
        let h = with(3, "params/grad_norm", |_| GRAD_NORM_FACTOR);
        assert_eq!(fired(&h), []);
        let h = with(3, "critic/explained_variance", |_| EV_FLOOR);
        assert_eq!(fired(&h), []);
        let h = with(SUSTAINED, "params/approx_kl", |_| APPROX_KL_HIGH);
        assert_eq!(fired(&h), []);
        // A critic whose values barely vary from token to token: explained variance a hair under 0
        // on every batch is not worse than the mean by anything that matters.
        let h = with(12, "critic/explained_variance", |i| -0.001 * (i % 5) as f64);
        assert_eq!(fired(&h), []);
        // Without max_grad_norm there is no gradient-norm limit to compare with.
        let h = with(3, "params/grad_norm", |_| 1e6);
        assert_eq!(findings(&h, RunSettings::default()), []);
        // GRPO logs no value loss: the critic's checks stay silent.
        let mut h = History::new();
        for _ in 0..12 {
            h.push([("loss/entropy", 1.5), ("params/policy_clip_frac", 0.05)]);
        }
        assert_eq!(fired(&h), []);
        // A value loss that does not fall in the first window, but varies: the early check.
        let h = with(TREND_WINDOW, "loss/value", |i| {
            0.3 + 0.01 * (i % 2) as f64 + 0.001 * i as f64
        });
        assert_eq!(fired(&h), [Check::ValueLossFlat]);
        // The same loss later in a run, settled: healthy.
        let h = with(TREND_WINDOW + 5, "loss/value", |i| {
            0.3 + 0.01 * (i % 2) as f64
        });
        assert_eq!(fired(&h), []);
    }
}
