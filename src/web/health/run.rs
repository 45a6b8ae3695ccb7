//! The run's health as the page keeps it: the trainer's checks watching this run's metrics, the
//! findings so far, and the "break it" preset in force. Plain state, held by the page's
//! [`AppState`](crate::web::state::AppState).

use crate::break_it::{PRESETS, Preset};
use crate::health::{Finding, History, RunSettings, Watch};
use crate::lab::settings::LabSettings;

/// The run's findings so far: the watch over its metrics, and each finding with the iteration it
/// first appeared in.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunHealth {
    pub watch: Watch,
    pub seen: Vec<(usize, Finding)>,
}

impl RunHealth {
    /// A fresh run, checked against `settings` (the lab clips the gradient norm as its update
    /// does).
    pub fn new(settings: &LabSettings) -> Self {
        let run = RunSettings {
            max_grad_norm: settings.update_config().max_grad_norm.map(f64::from),
            kl: settings.algo.kl_knob(),
            scale: settings.advantage_scale(),
        };
        Self {
            watch: Watch::new(History::new(), run, []),
            seen: Vec::new(),
        }
    }

    /// Adds iteration `iteration`'s metrics.
    pub fn push<'a>(&mut self, iteration: usize, row: impl IntoIterator<Item = (&'a str, f64)>) {
        for f in self.watch.push(row) {
            self.seen.push((iteration, f));
        }
    }
}

/// A preset in force: which, the settings before it, and the iteration it was fixed after.
#[derive(Clone, Debug, PartialEq)]
pub struct Broken {
    pub preset: usize,
    pub before: LabSettings,
    pub fixed_after: Option<usize>,
}

impl Broken {
    pub fn preset(&self) -> &'static Preset {
        &PRESETS[self.preset]
    }
}
