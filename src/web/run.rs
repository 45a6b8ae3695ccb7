//! The actions that run the model: reset, the next iteration, training, "break it" and "fix it",
//! the push-harder replay and the attention maps. Each asks the page's Web Worker
//! ([`super::worker`]) and records its answer in the page's state ([`AppState`]).

use std::collections::VecDeque;
use std::sync::Arc;

use leptos::prelude::*;

use super::clock::since_navigation_ms;
use super::health::run::{Broken, RunHealth};
use super::state::{Activity, AppState, Asked, Kept, Point, Stage};
use super::worker;
use crate::break_it::PRESETS;
use crate::health::KlKnob;
use crate::lab::run::KEPT_ITERATIONS;
use crate::lab::timings::IterationTiming;
use crate::lab::walkthrough::{AttentionMaps, StageTimes, Walkthrough};
use crate::lab::wire::Iterated;
use crate::ppo::Algorithm;
use crate::ppo::iteration::metrics;

impl AppState {
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
            self.timings.update(|t| {
                t.model_loaded_at_ms.get_or_insert_with(since_navigation_ms);
            });
            let run = self.history.get_untracked();
            self.runs.update(|runs| super::runs::keep(runs, run));
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
            let asked = since_navigation_ms();
            match worker::iterate(self.settings.get_untracked(), Some(row), pinned).await {
                Ok(done) => {
                    let replied = since_navigation_ms();
                    let (iteration, walk) = self.record(done);
                    let worker = walk.times;
                    super::clock::next_task().await;
                    self.row.set(row);
                    self.cursor.set(0);
                    self.token.set(None);
                    self.focus.set(None);
                    self.stage.set(Stage::Rollout);
                    self.show(iteration, walk);
                    self.activity.set(Activity::Idle);
                    self.playing.set(then_play);
                    self.record_timing(iteration, false, worker, asked, replied);
                }
                Err(err) => {
                    self.playing.set(false);
                    self.activity.set(Activity::Failed(err));
                }
            }
        });
    }

    /// Keeps an iteration's timings, now that it is shown: asked for at `asked`, its reply
    /// decoded at `replied` (ms after navigation). The first one stepped through marks the page
    /// ready.
    fn record_timing(
        self,
        iteration: usize,
        training: bool,
        worker: StageTimes,
        asked: f64,
        replied: f64,
    ) {
        let shown = since_navigation_ms();
        self.timings.update(|t| {
            if !training {
                t.first_iteration_at_ms.get_or_insert(shown);
            }
            t.page_memory_bytes = super::timings::page_memory_bytes();
            t.push(IterationTiming {
                iteration,
                training,
                worker,
                reply_ms: replied - asked,
                shown_ms: shown - asked,
            });
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
                let asked = since_navigation_ms();
                match worker::iterate(self.settings.get_untracked(), Some(0), pinned).await {
                    Ok(done) => {
                        let replied = since_navigation_ms();
                        let (iteration, walk) = self.record(done);
                        let worker = walk.times;
                        // The charts draw in this task, the stage in the next one: two short
                        // tasks rather than one long one.
                        super::clock::next_task().await;
                        self.row.set(0);
                        self.cursor
                            .set(Stage::Rollout.steps(&walk, 0).saturating_sub(1));
                        self.show(iteration, walk);
                        self.record_timing(iteration, true, worker, asked, replied);
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
        // An update's numbers, or none (a gap in the charts) when dynamic sampling left nothing
        // to update on.
        let updated = walk.experience.updated();
        let u = |x: f32| if updated { x as f64 } else { f64::NAN };
        // A critic-free member has no value loss, value clip or critic to chart (gaps, not 0),
        // and its KL weight is its own `beta` (DAPO has none).
        let critic = walk.experience.algorithm() == Algorithm::Ppo;
        let c = |x: f64| if critic { x } else { f64::NAN };
        let beta = match walk.experience.member.kl_knob() {
            KlKnob::KlCoeff => walk.experience.kl_coeff as f64,
            KlKnob::Beta { .. } => walk.family.beta as f64,
            KlKnob::Absent => f64::NAN,
        };
        self.history.update(|h| {
            h.push(Point {
                iteration,
                reward_mean: walk.experience.reward_mean(),
                kl_mean: walk.experience.kl_mean(),
                policy_clip_frac: u(stats.policy_clip_frac),
                value_clip_frac: c(u(stats.value_clip_frac)),
                loss_value: c(u(stats.loss_value)),
                entropy: u(stats.loss_entropy),
                approx_kl: u(stats.approx_kl),
                grad_norm: u(stats.grad_norm),
                explained_variance: c(walk.experience.explained_variance().unwrap_or(f64::NAN)),
                kl_coeff: beta,
                kl_target: walk.kl_control.map_or(f64::NAN, |k| k.target),
                times: walk.times,
                member: walk.experience.member,
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
}
