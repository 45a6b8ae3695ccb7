//! The page's state, in one place: signals the components read, and the actions that change them
//! (step, play, run an iteration, train). The model itself lives in the page's Web Worker
//! ([`super::worker`]); the page holds only what each iteration computed.

use std::collections::VecDeque;
use std::sync::Arc;

use leptos::prelude::*;

use super::health::run::{Broken, RunHealth};
use super::worker;
use crate::break_it::PRESETS;
use crate::explain::provenance::{Provenance, Quantity, provenance};
use crate::explain::stage::real_len;
use crate::lab::run::KEPT_ITERATIONS;
use crate::lab::settings::LabSettings;
use crate::lab::walkthrough::{AttentionMaps, Replay, StageTimes, Walkthrough};
use crate::lab::wire::{Iterated, Sampling};
use crate::ppo::Algorithm;
use crate::ppo::iteration::metrics;

/// The stages of one iteration, in the order the page steps through them (0 is the overview).
pub use crate::explain::stage::StageKey as Stage;

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
    /// How far each update moved the policy (nats per token, mean over its steps).
    pub approx_kl: f64,
    /// The gradient norm before clipping (mean over the update's steps).
    pub grad_norm: f64,
    /// The critic's explained variance (NaN where there is none: GRPO, or equal returns).
    pub explained_variance: f64,
    /// β, the KL coefficient the iteration's rewards used.
    pub kl_coeff: f64,
    /// The adaptive KL controller's target (NaN while β is fixed).
    pub kl_target: f64,
    pub times: StageTimes,
    /// Whose advantages the update used.
    pub algorithm: Algorithm,
}

/// One iteration's batch, kept so a chart click can reopen it.
#[derive(Clone)]
pub struct Kept {
    pub iteration: usize,
    pub walk: Arc<Walkthrough>,
    /// Which problem each row asked.
    pub problems: Vec<usize>,
}

/// A request to the worker about the batch on show, and how it went.
#[derive(Clone, Debug, PartialEq)]
pub enum Asked<T> {
    Idle,
    Running,
    Done(Arc<T>),
    Failed(String),
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
    /// The run before the last reset, whose reward curve the reward chart overlays (to compare
    /// PPO with GRPO from the same pretrained model).
    pub previous_run: RwSignal<Vec<Point>>,
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
    /// The response token picked by a click, the keyboard or the URL (`t`, from 0).
    pub token: RwSignal<Option<usize>>,
    /// The response token under the pointer; it wins over `token` while it lasts.
    pub hover: RwSignal<Option<usize>>,
    /// Which number of the picked token is explained from its inputs.
    pub focus: RwSignal<Option<Quantity>>,
    /// Where the explained number comes from (None without a picked token and quantity).
    pub provenance: Memo<Option<Provenance>>,
    /// The tour's step while it runs.
    pub tour: RwSignal<Option<usize>>,
    /// The iteration whose batch the stages show (0 before the first).
    pub shown: RwSignal<usize>,
    /// The last [`KEPT_ITERATIONS`] batches, oldest first.
    pub kept: RwSignal<VecDeque<Kept>>,
    /// A problem every iteration asks in row 0 (None: all drawn at random).
    pub pinned: RwSignal<Option<usize>>,
    /// The "push harder" replay of the shown batch's update.
    pub replay: RwSignal<Asked<Replay>>,
    /// Attention maps of the shown response when the iteration kept another row's.
    pub attention: RwSignal<Asked<AttentionMaps>>,
    /// The layer and head the causal-mask stage enlarges.
    pub head: RwSignal<(usize, usize)>,
    /// A kept batch (iteration, row) to open once training stops.
    pub reopen_after_training: RwSignal<Option<(usize, usize)>>,
    /// Predict mode: questions before answers (src/web/predict.rs).
    pub predict: super::predict::record::Predict,
    /// The run-health findings of this run (src/web/health.rs).
    pub health: RwSignal<RunHealth>,
    /// The "break it" preset in force, if any.
    pub broken: RwSignal<Option<Broken>>,
}

impl AppState {
    pub fn new(
        settings: LabSettings,
        stage: Stage,
        presenter: bool,
        predict: Option<crate::predict::Start>,
    ) -> Self {
        let walk = RwSignal::new(None::<Arc<Walkthrough>>);
        let row = RwSignal::new(0);
        let token = RwSignal::new(None);
        let focus = RwSignal::new(None);
        let explained = Memo::new(move |_| {
            let walk = walk.get()?;
            provenance(&walk, row.get(), token.get()?, focus.get()?)
        });
        let health = RunHealth::new(&settings);
        Self {
            settings: RwSignal::new(settings),
            walk,
            stage: RwSignal::new(stage),
            cursor: RwSignal::new(0),
            row,
            playing: RwSignal::new(false),
            speed_ms: RwSignal::new(600),
            activity: RwSignal::new(Activity::Loading),
            history: RwSignal::new(Vec::new()),
            previous_run: RwSignal::new(Vec::new()),
            presenter: RwSignal::new(presenter),
            stop_requested: RwSignal::new(false),
            longest_block_ms: RwSignal::new(0.0),
            longest_block_training_ms: RwSignal::new(0.0),
            ready_ms: RwSignal::new(None),
            exercises_ran: RwSignal::new(crate::exercises::ran_summary()),
            sampling: RwSignal::new(None),
            token,
            hover: RwSignal::new(None),
            focus,
            provenance: explained,
            tour: RwSignal::new(None),
            shown: RwSignal::new(0),
            kept: RwSignal::new(VecDeque::new()),
            pinned: RwSignal::new(None),
            replay: RwSignal::new(Asked::Idle),
            attention: RwSignal::new(Asked::Idle),
            head: RwSignal::new((0, 0)),
            reopen_after_training: RwSignal::new(None),
            predict: super::predict::record::Predict::new(predict),
            health: RwSignal::new(health),
            broken: RwSignal::new(None),
        }
    }

    /// The token every view highlights: the one under the pointer, else the picked one.
    pub fn shown_token(&self) -> Option<usize> {
        self.hover.get().or(self.token.get())
    }

    /// Picks response token `t` (None clears), keeping the explained quantity.
    pub fn pick(self, t: Option<usize>) {
        self.token.set(t);
        if t.is_none() {
            self.focus.set(None);
        }
    }

    /// Picks token `t` and explains its `quantity`.
    pub fn explain(self, t: usize, quantity: Quantity) {
        self.token.set(Some(t));
        self.focus.set(Some(quantity));
    }

    /// Shows response `row`; the picked token stays when that response has it.
    pub fn show_row(self, row: usize) {
        self.row.set(row);
        self.cursor.set(0);
        let real = self
            .walk
            .with_untracked(|w| w.as_ref().map_or(0, |w| real_len(w, row)));
        if self.token.get_untracked().is_some_and(|t| t >= real) {
            self.pick(None);
        }
    }

    /// The iteration the stages show (0 before the first).
    pub fn iteration(&self) -> usize {
        self.shown.get()
    }

    /// The latest iteration computed (0 before the first).
    pub fn latest(&self) -> usize {
        self.history.with(|h| h.last().map_or(0, |p| p.iteration))
    }

    /// Shows a batch: its iteration, from the first stage on; what was asked about the batch
    /// before is dropped.
    fn show(self, iteration: usize, walk: Arc<Walkthrough>) {
        self.replay.set(Asked::Idle);
        self.attention.set(Asked::Idle);
        self.shown.set(iteration);
        self.walk.set(Some(walk));
    }

    /// Reopens a kept iteration's batch (from a chart or the pinned table), at `row`. While
    /// training, training stops first (after the iteration under way).
    pub fn reopen(self, iteration: usize, row: usize) -> bool {
        if self.activity.get_untracked() == Activity::Training {
            self.reopen_after_training.set(Some((iteration, row)));
            self.stop_training();
            return true;
        }
        if self.busy() {
            return false;
        }
        let Some(kept) = self
            .kept
            .with_untracked(|k| k.iter().find(|k| k.iteration == iteration).cloned())
        else {
            return false;
        };
        self.playing.set(false);
        self.token.set(None);
        self.focus.set(None);
        self.cursor.set(0);
        self.row.set(row.min(kept.problems.len().saturating_sub(1)));
        self.show(kept.iteration, kept.walk);
        true
    }

    /// Which problem response `row` of the shown batch asked.
    pub fn problem_of(&self, row: usize) -> Option<usize> {
        let shown = self.shown.get();
        self.kept.with(|k| {
            k.iter()
                .find(|k| k.iteration == shown)?
                .problems
                .get(row)
                .copied()
        })
    }

    /// Asks the worker to replay the shown batch's update with `lr` and `epochs`.
    pub fn push_harder(self, lr: f64, epochs: usize) {
        if self.busy() || self.replay.get_untracked() == Asked::Running {
            return;
        }
        let iteration = self.shown.get_untracked();
        self.replay.set(Asked::Running);
        wasm_bindgen_futures::spawn_local(async move {
            let result = worker::replay(iteration, lr, epochs).await;
            // The answer counts only if the same batch is still on show.
            if self.shown.get_untracked() == iteration {
                self.replay.set(match result {
                    Ok(replay) => Asked::Done(Arc::new(replay)),
                    Err(err) => Asked::Failed(err),
                });
            }
        });
    }

    /// Asks the worker for the shown response's attention maps, unless the batch has them.
    pub fn fetch_attention(self) {
        let Some(walk) = self.walk.get_untracked() else {
            return;
        };
        let row = self.row.get_untracked();
        let have = |a: &AttentionMaps| a.row == row;
        if walk.attention.as_ref().is_some_and(have)
            || matches!(self.attention.get_untracked(), Asked::Done(ref a) if have(a))
            || self.attention.get_untracked() == Asked::Running
        {
            return;
        }
        let iteration = self.shown.get_untracked();
        self.attention.set(Asked::Running);
        wasm_bindgen_futures::spawn_local(async move {
            let result = worker::attention(iteration, row).await;
            if self.shown.get_untracked() == iteration {
                self.attention.set(match result {
                    Ok(maps) => Asked::Done(Arc::new(maps)),
                    Err(err) => Asked::Failed(err),
                });
                if self.row.get_untracked() != row {
                    self.fetch_attention();
                }
            }
        });
    }

    /// Starts the tour at its first stop, or moves it to stop `i`; past the end it closes.
    pub fn tour_to(self, i: usize) {
        match crate::explain::guide::TOUR.get(i) {
            Some((stage, _)) => {
                self.tour.set(Some(i));
                self.goto(*stage);
            }
            None => self.tour.set(None),
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
        // Not while an iteration runs (the page's own first reset runs while Loading).
        if matches!(
            self.activity.get_untracked(),
            Activity::Computing | Activity::Training
        ) {
            return;
        }
        // A preset already fixed belonged to the run this reset ends.
        if self
            .broken
            .with_untracked(|b| b.as_ref().is_some_and(|b| b.fixed_after.is_some()))
        {
            self.broken.set(None);
        }
        self.restart(false);
    }

    /// [`Self::reset`], then training (`train`) or the first iteration to step through.
    fn restart(self, train: bool) {
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
            let run = self.history.get_untracked();
            if !run.is_empty() {
                self.previous_run.set(run);
            }
            self.history.set(Vec::new());
            self.health
                .set(RunHealth::new(&self.settings.get_untracked()));
            self.kept.set(VecDeque::new());
            self.shown.set(0);
            self.walk.set(None);
            self.activity.set(Activity::Idle);
            if train {
                self.train();
            } else {
                self.next_iteration(false);
            }
        });
    }

    /// Breaks the run with preset `i` ([`PRESETS`]): a fresh run with that change, training. A
    /// preset replaces one already in force rather than adding to it.
    pub fn break_with(self, i: usize) {
        if self.busy() {
            return;
        }
        let before = match self.broken.get_untracked() {
            Some(b) if b.fixed_after.is_none() => b.before,
            _ => self.settings.get_untracked(),
        };
        self.settings.set(PRESETS[i].apply(&before));
        self.broken.set(Some(Broken {
            preset: i,
            before,
            fixed_after: None,
        }));
        self.restart(true);
    }

    /// Puts the broken preset's settings back, from the next iteration on (training goes on).
    pub fn fix_it(self) {
        let Some(b) = self.broken.get_untracked() else {
            return;
        };
        let now = self.settings.get_untracked();
        self.settings.set(b.preset().fix(&b.before, &now));
        let after = self.latest();
        self.broken.update(|b| {
            if let Some(b) = b {
                b.fixed_after = Some(after);
            }
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
            let pinned = self.pinned.get_untracked();
            match worker::iterate(self.settings.get_untracked(), Some(row), pinned).await {
                Ok(done) => {
                    let (iteration, walk) = self.record(done);
                    super::clock::next_task().await;
                    self.row.set(row);
                    self.cursor.set(0);
                    self.token.set(None);
                    self.focus.set(None);
                    self.stage.set(Stage::Rollout);
                    self.show(iteration, walk);
                    self.activity.set(Activity::Idle);
                    self.playing.set(then_play);
                    if self.ready_ms.get_untracked().is_none() {
                        self.ready_ms.set(Some(super::clock::since_navigation_ms()));
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
                let pinned = self.pinned.get_untracked();
                match worker::iterate(self.settings.get_untracked(), Some(0), pinned).await {
                    Ok(done) => {
                        let (iteration, walk) = self.record(done);
                        // The charts draw in this task, the stage in the next one: two short
                        // tasks rather than one long one.
                        super::clock::next_task().await;
                        self.row.set(0);
                        self.cursor
                            .set(Stage::Rollout.steps(&walk, 0).saturating_sub(1));
                        self.show(iteration, walk);
                    }
                    Err(err) => {
                        self.activity.set(Activity::Failed(err));
                        return;
                    }
                }
            }
            self.stage.set(Stage::Rollout);
            self.activity.set(Activity::Idle);
            // A batch asked for while training opens once the training has stopped.
            if let Some((iteration, row)) = self.reopen_after_training.get_untracked() {
                self.reopen_after_training.set(None);
                self.reopen(iteration, row);
            }
        });
    }

    pub fn stop_training(self) {
        self.stop_requested.set(true);
    }

    /// Charts an iteration's metrics and keeps its batch; returns its walkthrough.
    fn record(self, done: Iterated) -> (usize, Arc<Walkthrough>) {
        let Iterated {
            iteration,
            problems,
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
                approx_kl: stats.approx_kl as f64,
                grad_norm: stats.grad_norm as f64,
                explained_variance: walk.experience.explained_variance().unwrap_or(f64::NAN),
                kl_coeff: walk.experience.kl_coeff as f64,
                kl_target: walk.kl_control.map_or(f64::NAN, |k| k.target),
                times: walk.times,
                algorithm: walk.experience.algorithm,
            })
        });
        self.health
            .update(|h| h.push(iteration, metrics(&walk.experience, &walk.stats)));
        let walk = Arc::new(walk);
        self.kept.update(|k| {
            if k.len() == KEPT_ITERATIONS {
                k.pop_front();
            }
            k.push_back(Kept {
                iteration,
                walk: walk.clone(),
                problems,
            });
        });
        (iteration, walk)
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
        if let Some(&s) = Stage::ALL.get(i.clamp(0, Stage::ALL.len() as isize - 1) as usize) {
            self.goto(s);
        }
    }
}
