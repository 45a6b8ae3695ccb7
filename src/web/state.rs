//! The page's state, in one place: signals the components read, and the actions that change them
//! (step, play, run an iteration, train). The model itself lives in the page's Web Worker
//! ([`super::worker`]); the page holds only what each iteration computed.

use std::sync::Arc;

use leptos::prelude::*;

use super::worker;
use crate::lab::LabSettings;
use crate::ppo::walkthrough::{StageTimes, Walkthrough};
use crate::wire::{Iterated, Sampling};

/// The six stages of one iteration, in the order the page steps through them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    Rollout,
    Score,
    Values,
    Gae,
    Update,
    Mask,
}

impl Stage {
    pub const ALL: [Stage; 6] = [
        Stage::Rollout,
        Stage::Score,
        Stage::Values,
        Stage::Gae,
        Stage::Update,
        Stage::Mask,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Stage::Rollout => "rollout",
            Stage::Score => "score",
            Stage::Values => "values",
            Stage::Gae => "gae",
            Stage::Update => "update",
            Stage::Mask => "mask",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Stage::Rollout => "1 · Rollout",
            Stage::Score => "2 · Score",
            Stage::Values => "3 · Values",
            Stage::Gae => "4 · GAE",
            Stage::Update => "5 · Update",
            Stage::Mask => "6 · Causal mask",
        }
    }

    pub fn parse(key: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|s| s.key() == key)
    }

    pub fn index(self) -> usize {
        Stage::ALL.iter().position(|&s| s == self).unwrap_or(0)
    }

    /// How many steps the stage has for one sequence of `walk`.
    pub fn steps(self, walk: &Walkthrough, row: usize) -> usize {
        let real = walk.gae.get(row).map_or(0, |g| g.steps.len()).max(1);
        match self {
            // One token at a time.
            Stage::Rollout => real,
            // Score, then the KL row, then the token rewards.
            Stage::Score => 3,
            Stage::Values => 1,
            // One step per token from the back, then whitening.
            Stage::Gae => real + 1,
            // Ratios and losses, then the optimizer step with the new logprobs.
            Stage::Update => 2,
            Stage::Mask => 1,
        }
    }
}

/// One point of every chart: the metrics of one iteration.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub iteration: usize,
    pub reward_mean: f64,
    pub kl_mean: f64,
    pub policy_clip_frac: f64,
    pub value_clip_frac: f64,
    pub loss_value: f64,
    pub entropy: f64,
    pub times: StageTimes,
}

/// What the page is doing right now.
#[derive(Clone, Debug, PartialEq)]
pub enum Activity {
    Loading,
    Idle,
    /// Computing one iteration to step through.
    Computing,
    Training,
    Failed(String),
}

impl Activity {
    pub fn key(&self) -> &'static str {
        match self {
            Activity::Loading => "loading",
            Activity::Idle => "idle",
            Activity::Computing => "computing",
            Activity::Training => "training",
            Activity::Failed(_) => "failed",
        }
    }
}

/// Every signal of the page. Copy, so components and handlers take it by value.
#[derive(Clone, Copy)]
pub struct AppState {
    pub settings: RwSignal<LabSettings>,
    pub walk: RwSignal<Option<Arc<Walkthrough>>>,
    pub stage: RwSignal<Stage>,
    pub cursor: RwSignal<usize>,
    /// Which sequence of the batch the stages show.
    pub row: RwSignal<usize>,
    pub playing: RwSignal<bool>,
    /// Milliseconds between steps while playing.
    pub speed_ms: RwSignal<u32>,
    pub activity: RwSignal<Activity>,
    pub history: RwSignal<Vec<Point>>,
    pub presenter: RwSignal<bool>,
    /// Set when training should stop after the current iteration.
    pub stop_requested: RwSignal<bool>,
    /// The longest task that blocked the page's thread since start, in ms (PerformanceObserver).
    pub longest_block_ms: RwSignal<f64>,
    /// The same, counting only tasks while training.
    pub longest_block_training_ms: RwSignal<f64>,
    /// When the first iteration was ready to step through, in ms after navigation started.
    pub ready_ms: RwSignal<Option<f64>>,
    /// With the `exercises` feature: whose code each exercise ran in the last iteration.
    pub exercises_ran: RwSignal<String>,
    /// The rollout of the iteration being computed, token by token (None before its first).
    pub sampling: RwSignal<Option<Sampling>>,
}

impl AppState {
    pub fn new(settings: LabSettings, stage: Stage, presenter: bool) -> Self {
        Self {
            settings: RwSignal::new(settings),
            walk: RwSignal::new(None),
            stage: RwSignal::new(stage),
            cursor: RwSignal::new(0),
            row: RwSignal::new(0),
            playing: RwSignal::new(false),
            speed_ms: RwSignal::new(600),
            activity: RwSignal::new(Activity::Loading),
            history: RwSignal::new(Vec::new()),
            presenter: RwSignal::new(presenter),
            stop_requested: RwSignal::new(false),
            longest_block_ms: RwSignal::new(0.0),
            longest_block_training_ms: RwSignal::new(0.0),
            ready_ms: RwSignal::new(None),
            exercises_ran: RwSignal::new(crate::exercises::ran_summary()),
            sampling: RwSignal::new(None),
        }
    }

    pub fn busy(&self) -> bool {
        matches!(
            self.activity.get_untracked(),
            Activity::Loading | Activity::Computing | Activity::Training
        )
    }

    /// A fresh run with the current settings (and seed): the model as pretrained, no history;
    /// then the first iteration.
    pub fn reset(self) {
        if matches!(
            self.activity.get_untracked(),
            Activity::Computing | Activity::Training
        ) {
            return;
        }
        self.playing.set(false);
        self.activity.set(Activity::Loading);
        wasm_bindgen_futures::spawn_local(async move {
            if let Err(err) = worker::reset(self.settings.get_untracked()).await {
                self.activity.set(Activity::Failed(err));
                return;
            }
            self.history.set(Vec::new());
            self.walk.set(None);
            self.activity.set(Activity::Idle);
            self.next_iteration(false);
        });
    }

    /// Computes the next iteration for stepping through; `then_play` keeps playing after it.
    pub fn next_iteration(self, then_play: bool) {
        if self.busy() {
            return;
        }
        self.activity.set(Activity::Computing);
        wasm_bindgen_futures::spawn_local(async move {
            let row = 0;
            self.sampling.set(None);
            match worker::iterate(self.settings.get_untracked(), Some(row)).await {
                Ok(done) => {
                    let walk = self.record(done);
                    super::next_task().await;
                    self.row.set(row);
                    self.cursor.set(0);
                    self.stage.set(Stage::Rollout);
                    self.walk.set(Some(Arc::new(walk)));
                    self.activity.set(Activity::Idle);
                    self.playing.set(then_play);
                    if self.ready_ms.get_untracked().is_none() {
                        self.ready_ms.set(Some(super::since_navigation_ms()));
                    }
                }
                Err(err) => {
                    self.playing.set(false);
                    self.activity.set(Activity::Failed(err));
                }
            }
        });
    }

    /// Runs iterations until asked to stop, charting each one.
    pub fn train(self) {
        if self.busy() {
            return;
        }
        self.playing.set(false);
        self.stop_requested.set(false);
        self.activity.set(Activity::Training);
        wasm_bindgen_futures::spawn_local(async move {
            while !self.stop_requested.get_untracked() {
                self.sampling.set(None);
                match worker::iterate(self.settings.get_untracked(), Some(0)).await {
                    Ok(done) => {
                        let walk = self.record(done);
                        // The charts draw in this task, the stage in the next one: two short
                        // tasks rather than one long one.
                        super::next_task().await;
                        self.row.set(0);
                        self.cursor
                            .set(Stage::Rollout.steps(&walk, 0).saturating_sub(1));
                        self.walk.set(Some(Arc::new(walk)));
                    }
                    Err(err) => {
                        self.activity.set(Activity::Failed(err));
                        return;
                    }
                }
            }
            self.stage.set(Stage::Rollout);
            self.activity.set(Activity::Idle);
        });
    }

    pub fn stop_training(self) {
        self.stop_requested.set(true);
    }

    /// Charts an iteration's metrics; returns its walkthrough.
    fn record(self, done: Iterated) -> Walkthrough {
        let Iterated {
            iteration,
            walk,
            exercises_ran,
        } = done;
        self.exercises_ran.set(exercises_ran);
        let stats = &walk.stats;
        self.history.update(|h| {
            h.push(Point {
                iteration,
                reward_mean: walk.experience.reward_mean(),
                kl_mean: walk.experience.kl_mean(),
                policy_clip_frac: stats.policy_clip_frac as f64,
                value_clip_frac: stats.value_clip_frac as f64,
                loss_value: stats.loss_value as f64,
                entropy: stats.loss_entropy as f64,
                times: walk.times,
            })
        });
        walk
    }

    /// One step forward: the next token, sweep step or stage; after the last stage, the next
    /// iteration.
    pub fn step(self) {
        if self.busy() {
            return;
        }
        let Some(walk) = self.walk.get_untracked() else {
            return;
        };
        let stage = self.stage.get_untracked();
        let cursor = self.cursor.get_untracked();
        if cursor + 1 < stage.steps(&walk, self.row.get_untracked()) {
            self.cursor.set(cursor + 1);
        } else if let Some(&next) = Stage::ALL.get(stage.index() + 1) {
            self.stage.set(next);
            self.cursor.set(0);
        } else {
            self.next_iteration(self.playing.get_untracked());
        }
    }

    /// Jumps to a stage, at its first step.
    pub fn goto(self, stage: Stage) {
        self.stage.set(stage);
        self.cursor.set(0);
    }

    /// Jumps to a stage with every step shown.
    pub fn show_all(self) {
        if let Some(walk) = self.walk.get_untracked() {
            let stage = self.stage.get_untracked();
            self.cursor
                .set(stage.steps(&walk, self.row.get_untracked()) - 1);
        }
    }

    pub fn shift_stage(self, by: isize) {
        let i = self.stage.get_untracked().index() as isize + by;
        if let Some(&s) = Stage::ALL.get(i.clamp(0, 5) as usize) {
            self.goto(s);
        }
    }
}
