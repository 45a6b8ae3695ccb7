//! "Break it": changes to the page's run that each make PPO fail on the tiny model, and the
//! run-health findings ([`crate::health`]) that say so.
//!
//! Every preset here was run on the page's own PPO recipe (tests/health.rs, the lab on flex) and
//! raises its expected finding within [`PRESET_ITERATIONS`]; changes that were tried and do not
//! break this model are listed in docs/page.md with what they did instead.

use crate::health::Check;
use crate::lab::settings::LabSettings;

/// Iterations a preset gets to show its failure.
pub const PRESET_ITERATIONS: usize = 20;

/// One way to break the run.
pub struct Preset {
    /// Stable name, for the page's test ids.
    pub key: &'static str,
    /// The button's text.
    pub label: &'static str,
    /// What it changes and what goes wrong, in a sentence (tests/health.rs checks the failure
    /// it names on the page's recipe).
    pub about: &'static str,
    /// The settings it changes (URL keys): "fix it" puts these back.
    pub keys: &'static [&'static str],
    change: fn(&mut LabSettings),
    /// The findings that show the failure; each fires within [`PRESET_ITERATIONS`].
    pub expect: &'static [Check],
}

/// The presets, in the order the page lists them.
pub const PRESETS: &[Preset] = &[
    Preset {
        key: "lr-x30",
        label: "learning rate × 30",
        about: "Each update moves the policy far from the one that sampled its batch (approx KL above 0.05 for five iterations in a row) and the reward falls.",
        keys: &["lr"],
        change: |s| s.lr = (s.lr * 30.0).min(1.0),
        expect: &[Check::ApproxKlHigh],
    },
    Preset {
        key: "epochs-16",
        label: "16 epochs per batch",
        about: "Sixteen passes over each batch (the recipe makes 2): the policy keeps moving on samples it no longer draws, its updates grow and it drifts from the reference.",
        keys: &["epochs"],
        change: |s| s.epochs = 16,
        expect: &[Check::ApproxKlGrowing, Check::KlRefGrowing],
    },
    Preset {
        key: "entropy-5",
        label: "entropy coefficient 5",
        about: "An entropy bonus of 5 (the recipe's is 0.01) outweighs the reward: the updates flatten the policy, which drifts from the reference while the reward falls.",
        keys: &["ent"],
        change: |s| s.ent = 5.0,
        expect: &[Check::KlRefGrowing, Check::RewardFlatKlRising],
    },
];

impl Preset {
    /// `settings` broken this way.
    pub fn apply(&self, settings: &LabSettings) -> LabSettings {
        let mut broken = settings.clone();
        (self.change)(&mut broken);
        broken
    }

    /// "Fix it": `now` with this preset's settings put back to what they were in `before`.
    pub fn fix(&self, before: &LabSettings, now: &LabSettings) -> LabSettings {
        let mut fixed = now.clone();
        for key in self.keys {
            if let Some(value) = before.get(key) {
                fixed
                    .set(key, &value)
                    .expect("a setting read back from valid settings is valid");
            }
        }
        fixed
    }

    pub fn by_key(key: &str) -> Option<&'static Preset> {
        PRESETS.iter().find(|p| p.key == key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_preset_changes_only_its_keys_and_fix_puts_them_back() {
        let before = LabSettings::default();
        for preset in PRESETS {
            let broken = preset.apply(&before);
            let changed: Vec<&str> = broken.changed().into_iter().map(|(k, _)| k).collect();
            assert_eq!(changed, preset.keys, "{}", preset.key);
            // Every broken value is one the settings panel and the URL accept.
            for key in preset.keys {
                let mut s = before.clone();
                s.set(key, &broken.get(key).unwrap()).unwrap();
                assert_eq!(s.get(key), broken.get(key), "{}", preset.key);
            }
            // Fixed while another setting was changed too: only the preset's keys go back.
            let mut later = broken.clone();
            later.gamma = 0.9;
            let fixed = preset.fix(&before, &later);
            assert_eq!(
                fixed,
                LabSettings {
                    gamma: 0.9,
                    ..before.clone()
                },
                "{}",
                preset.key
            );
            assert_eq!(Preset::by_key(preset.key).map(|p| p.key), Some(preset.key));
        }
        assert!(Preset::by_key("nothing").is_none());
    }

    /// The figures each preset's sentence quotes are the ones the checks and the recipe use.
    #[test]
    fn the_figures_in_each_sentence_are_the_checks_and_the_recipes() {
        use crate::health::check::{APPROX_KL_HIGH, SUSTAINED};
        let recipe = LabSettings::default();
        let words = [
            "zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
        ];
        let about = |key: &str| Preset::by_key(key).unwrap().about;
        let lr = about("lr-x30");
        let sustained = format!("for {} iterations in a row", words[SUSTAINED]);
        assert!(
            lr.contains(&format!("approx KL above {APPROX_KL_HIGH}")),
            "{lr}"
        );
        assert!(lr.contains(&sustained), "{lr}");
        let epochs = about("epochs-16");
        let broken = Preset::by_key("epochs-16").unwrap().apply(&recipe);
        assert!(epochs.starts_with("Sixteen passes") && broken.epochs == 16);
        assert!(epochs.contains(&format!("(the recipe makes {})", recipe.epochs)));
        let ent = about("entropy-5");
        let broken = Preset::by_key("entropy-5").unwrap().apply(&recipe);
        assert!(ent.starts_with(&format!("An entropy bonus of {}", broken.ent)));
        assert!(
            ent.contains(&format!("(the recipe's is {})", recipe.ent)),
            "{ent}"
        );
    }
}
