//! The page's state, in one place: signals the components read, and the actions that change them
//! (step, play, run an iteration, train). The model itself lives in the page's Web Worker
//! ([`super::worker`]); the page holds only what each iteration computed.

use std::collections::VecDeque;
use std::sync::Arc;

use leptos::prelude::*;

use super::health::run::{Broken, RunHealth};
use crate::explain::provenance::{Provenance, Quantity, provenance};
use crate::explain::stage::real_len;
use crate::lab::settings::LabSettings;
use crate::lab::walkthrough::{AttentionMaps, Replay, StageTimes, Walkthrough};
use crate::lab::wire::Sampling;

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
    /// The critic's explained variance (NaN where there is none: a critic-free member, or equal
    /// returns).
    pub explained_variance: f64,
    /// β, the KL weight the iteration's member used: PPO's `kl` (the coefficient its rewards
    /// used), a critic-free member's `beta`; NaN for DAPO, which has none.
    pub kl_coeff: f64,
    /// The adaptive KL controller's target (NaN while β is fixed).
    pub kl_target: f64,
    pub times: StageTimes,
    /// Whose advantages the update used.
    pub member: crate::ppo::family::Family,
}

/// A finished run: its number (1 for the first since the page opened) and its points
/// (src/web/runs.rs draws and names it).
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    pub number: usize,
    pub points: Vec<Point>,
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
    /// The runs before the last resets, whose reward and KL curves the charts overlay (to
    /// compare members of the family trained from the same pretrained model and seed).
    pub runs: RwSignal<Vec<Run>>,
    pub presenter: RwSignal<bool>,
    /// Set when training should stop after the current iteration.
    pub stop_requested: RwSignal<bool>,
    /// The longest task that blocked the page's thread since start, in ms (PerformanceObserver).
    pub longest_block_ms: RwSignal<f64>,
    /// The same, counting only tasks while training.
    pub longest_block_training_ms: RwSignal<f64>,
    /// What the page measured about its start and its iterations (the Timings panel, as JSON).
    pub timings: RwSignal<crate::lab::timings::PageTimings>,
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
    /// Predict mode: questions before answers (src/web/predict/).
    pub predict: super::predict::record::Predict,
    /// The run-health findings of this run (src/web/health/).
    pub health: RwSignal<RunHealth>,
    /// The "break it" preset in force, if any.
    pub broken: RwSignal<Option<Broken>>,
    /// The members of the policy-gradient family the GAE stage compares on the batch.
    pub members: RwSignal<Vec<crate::ppo::family::Family>>,
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
            runs: RwSignal::new(Vec::new()),
            presenter: RwSignal::new(presenter),
            stop_requested: RwSignal::new(false),
            longest_block_ms: RwSignal::new(0.0),
            longest_block_training_ms: RwSignal::new(0.0),
            timings: RwSignal::new(Default::default()),
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
            members: RwSignal::new(vec![
                crate::ppo::family::Family::Ppo,
                crate::ppo::family::Family::Rloo,
            ]),
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
    pub(super) fn show(self, iteration: usize, walk: Arc<Walkthrough>) {
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
