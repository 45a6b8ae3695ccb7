//! The page's PPO run: the tiny model and its frozen reference, GSM-mini's problems, the
//! optimizer and the random state. [`Lab::iterate`] runs one iteration ([`walkthrough`]) and
//! keeps the start of the last [`KEPT_ITERATIONS`], so [`Lab::replay`] can run one's update again
//! with another learning rate or epoch count and [`Lab::attention`] can show its attention maps;
//! [`Lab::pinned`] keeps one problem in row 0 of every batch.

use std::collections::VecDeque;

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::tensor::Device;

use crate::cpu_fast::adamw::AdamW;
use crate::data::gsm_mini;
use crate::lab::settings::LabSettings;
use crate::lab::walkthrough::{
    AttentionMaps, Replay, UpdateStart, Walkthrough, WalkthroughConfig, attention_maps,
    replay_update, walkthrough,
};
use crate::lab::wire::Sampling;
use crate::model::chat::gsm8k_prompt;
use crate::model::tokenizer::TextTokenizer;
use crate::model::{Precision, Qwen2Config, Qwen2Model, ValueHeadInit, WeightFiles, load_model};
use crate::ppo::family::Family;
use crate::ppo::gae::GaeParams;
use crate::ppo::iteration::{Experience, ExperienceConfig, Task};
use crate::ppo::kl_control::KlController;
use crate::ppo::rewards::KlEstimator;
use crate::ppo::update::UpdateConfig;
use crate::rng::Rng;
use crate::rollout::sampling::SamplingParams;

/// The tiny model's files (`www/models/tiny`, made by `examples/pretrain_tiny.rs`), built into
/// the binary so the page needs nothing but its own wasm.
pub const TINY_CONFIG: &str = include_str!("../../www/models/tiny/config.json");
pub const TINY_WEIGHTS: &[u8] = include_bytes!("../../www/models/tiny/model.safetensors");
pub const TINY_TOKENIZER: &[u8] = include_bytes!("../../www/models/tiny/tokenizer.json");

/// GSM-mini problems the page draws its prompts from.
pub const PROBLEMS: usize = 256;
/// Candidates kept per sampled token for the rollout table.
pub const TOP_CANDIDATES: usize = 5;
/// The value head starts small and random rather than at zero, so that the first iteration's
/// GAE table already has values to subtract. Small: its values are noise, and at 0.02 they
/// spread enough (about ±0.25 on the tiny model's features) that the critic explained the
/// returns worse than a constant for twenty iterations (explained variance about −0.4; the head's
/// weights learn at the policy's rate and could not shrink it). At 0.005 the noise is a sixteenth
/// of that in variance.
pub const VALUE_HEAD_STD: f64 = 0.005;

/// The tiny model, its frozen reference, the optimizer, and the run's random state.
pub struct Lab {
    policy: Option<Qwen2Model>,
    reference: Qwen2Model,
    optim: ModuleOptimizer,
    tokenizer: TextTokenizer,
    tasks: Vec<Task>,
    eos_ids: Vec<u32>,
    pad_id: u32,
    rng: Rng,
    /// Iterations done so far.
    pub iteration: usize,
    /// A problem every iteration asks, in row 0 (None: all drawn at random).
    pub pinned: Option<usize>,
    problems: Vec<usize>,
    snapshots: VecDeque<Snapshot>,
    /// The KL coefficient the next iteration uses: `kl` while β is fixed, the controller's
    /// value while it adapts (starting from `kl` when it is switched on).
    beta: f64,
}

fn load_tiny(seed: u64, device: &Device) -> Result<Qwen2Model, String> {
    let config =
        Qwen2Config::from_json(TINY_CONFIG, "tiny/config.json").map_err(|e| e.to_string())?;
    let files = [("tiny/model.safetensors".to_string(), TINY_WEIGHTS)];
    let weights = WeightFiles::parse(&files).map_err(|e| e.to_string())?;
    load_model(
        &config,
        &weights,
        None,
        ValueHeadInit::Normal {
            std: VALUE_HEAD_STD,
        },
        seed,
        Precision::F32,
        device,
    )
    .map_err(|e| e.to_string())
}

impl Lab {
    /// Loads the tiny model on `device` (the policy on its autodiff twin) and draws the problems.
    pub fn new(settings: &LabSettings, device: &Device) -> Result<Self, String> {
        let tokenizer = TextTokenizer::from_bytes(TINY_TOKENIZER, "tiny/tokenizer.json")
            .map_err(|e| e.to_string())?;
        let reference = load_tiny(settings.seed, device)?;
        let policy = load_tiny(settings.seed, &device.clone().autodiff())?;
        let pad_id = tokenizer
            .token_id("<|endoftext|>")
            .ok_or("tiny/tokenizer.json has no <|endoftext|>")?;
        let eos_ids = vec![
            tokenizer
                .token_id("<|im_end|>")
                .ok_or("tiny/tokenizer.json has no <|im_end|>")?,
        ];
        let tasks = gsm_mini(PROBLEMS, settings.seed)
            .into_iter()
            .map(|p| {
                Ok(Task {
                    prompt_ids: tokenizer
                        .encode(&gsm8k_prompt(&p.question))
                        .map_err(|e| e.to_string())?,
                    reference_answer: p.final_answer().ok_or("a GSM-mini answer without ####")?,
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Self {
            policy: Some(policy),
            reference,
            optim: AdamW::new(0.0).init(),
            tokenizer,
            tasks,
            eos_ids,
            pad_id,
            rng: Rng::new(settings.seed),
            iteration: 0,
            pinned: None,
            problems: Vec::new(),
            snapshots: VecDeque::new(),
            beta: settings.kl as f64,
        })
    }

    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// One PPO iteration with `settings` (read fresh each time, so changes apply from the next
    /// iteration). Keeps the attention maps of `attention_row` when given.
    pub async fn iterate(
        &mut self,
        settings: &LabSettings,
        attention_row: Option<usize>,
    ) -> Result<Walkthrough, String> {
        self.run_iteration(settings, attention_row, None).await
    }

    /// [`Lab::iterate`], telling `watch` about the rollout after every sampled token: the
    /// first response so far, which the page shows while the rest is computed.
    pub async fn iterate_watched(
        &mut self,
        settings: &LabSettings,
        attention_row: Option<usize>,
        watch: &mut dyn FnMut(Sampling),
    ) -> Result<Walkthrough, String> {
        self.run_iteration(settings, attention_row, Some(watch))
            .await
    }

    /// One iteration; the rollout is decoded for `watch` only when there is one.
    async fn run_iteration(
        &mut self,
        settings: &LabSettings,
        attention_row: Option<usize>,
        mut watch: Option<&mut dyn FnMut(Sampling)>,
    ) -> Result<Walkthrough, String> {
        let group = settings.groups().map_err(|r| r.message)?;
        let g = group.map_or(1, |g| g.group_size);
        let n = (settings.rollouts / g).min(self.tasks.len());
        // `n` distinct problems: a partial Fisher-Yates shuffle.
        let mut order: Vec<usize> = (0..self.tasks.len()).collect();
        for i in 0..n {
            let j = i + self.rng.below(order.len() - i);
            order.swap(i, j);
        }
        // A pinned problem takes row 0; the draw itself is the same as without it.
        if let Some(pinned) = self.pinned {
            let at = order.iter().position(|&i| i == pinned).ok_or_else(|| {
                format!(
                    "pinned problem {pinned} is not one of the {} problems",
                    self.tasks.len()
                )
            })?;
            order.swap(0, at);
        }
        // Each problem `g` times in consecutive rows (once without groups).
        let rows: Vec<usize> = order[..n]
            .iter()
            .flat_map(|&i| std::iter::repeat_n(i, g))
            .collect();
        let batch: Vec<Task> = rows.iter().map(|&i| self.tasks[i].clone()).collect();
        // β: the controller's while it adapts (PPO's β, in the reward), else the setting.
        let adaptive = settings.kl_target > 0.0 && settings.algo == Family::Ppo;
        let beta = if adaptive {
            self.beta
        } else {
            settings.kl as f64
        };
        let experience = ExperienceConfig {
            sampling: SamplingParams::new(settings.temperature, 0, 1.0)?,
            max_new_tokens: settings.max_new_tokens,
            eos_ids: self.eos_ids.clone(),
            pad_id: self.pad_id,
            n_top: TOP_CANDIDATES,
            gae: GaeParams::new(settings.gamma, settings.lam)?,
            kl_coeff: beta as f32,
            kl_estimator: KlEstimator::K1,
            whiten_advantages: settings.whiten,
            group,
            member: settings.algo,
            score_advantages: settings.member_setup().score_advantages,
        };
        let policy = self
            .policy
            .take()
            .ok_or("a previous iteration failed midway: reset")?;
        let tokenizer = &self.tokenizer;
        let eos_ids = &self.eos_ids;
        let mut first = Vec::new();
        let mut finished = false;
        let mut step = 0;
        let mut on_step = |ids: &[u32]| {
            let Some(watch) = watch.as_deref_mut() else {
                return;
            };
            step += 1;
            if !finished {
                first.push(ids[0]);
                finished = eos_ids.contains(&ids[0]);
            }
            let text = tokenizer
                .decode(&first, true)
                .unwrap_or_else(|err| format!("(cannot decode: {err})"));
            watch(Sampling {
                step,
                of: settings.max_new_tokens,
                text,
                finished,
            });
        };
        let update = settings.update_config();
        let (policy, start, mut walk) = walkthrough(
            policy,
            &mut self.optim,
            &self.reference,
            &self.tokenizer,
            &batch,
            &experience,
            &update,
            crate::exercises::functions(),
            WalkthroughConfig {
                attention_row,
                family: settings.member_params(),
            },
            &mut self.rng,
            &mut on_step,
        )
        .await?;
        self.policy = Some(policy);
        // The controller steps from the β this iteration used; fixed, β follows the setting
        // (and the walkthrough's `kl_control` stays None).
        self.beta = settings.kl as f64;
        if adaptive {
            let mut control = KlController::adaptive(
                beta,
                settings.kl_target as f64,
                settings.kl_horizon as f64,
            )?;
            walk.kl_control =
                control.step(walk.experience.kl_mean(), walk.experience.rollout.ids.len());
            self.beta = control.value;
        }
        self.iteration += 1;
        self.problems = rows;
        if self.snapshots.len() == KEPT_ITERATIONS {
            self.snapshots.pop_front();
        }
        self.snapshots.push_back(Snapshot {
            iteration: self.iteration,
            start,
            experience: walk.experience.clone(),
            update,
        });
        Ok(walk)
    }

    fn snapshot(&self, iteration: usize) -> Result<&Snapshot, String> {
        self.snapshots
            .iter()
            .find(|s| s.iteration == iteration)
            .ok_or_else(|| {
                format!(
                    "iteration {iteration} is no longer kept: the last {KEPT_ITERATIONS} are (now {}..={})",
                    self.snapshots.front().map_or(0, |s| s.iteration),
                    self.iteration
                )
            })
    }

    /// Runs `iteration`'s update again on its own batch from its own start, with learning rate
    /// `lr` and `epochs` (everything else as it ran). The model the lab trains is not changed.
    pub async fn replay(&self, iteration: usize, lr: f64, epochs: usize) -> Result<Replay, String> {
        if !(lr.is_finite() && lr > 0.0 && lr <= 1.0) {
            return Err(format!("replay learning rate {lr} is outside (0, 1]"));
        }
        if !(1..=MAX_REPLAY_EPOCHS).contains(&epochs) {
            return Err(format!(
                "replay epochs {epochs} is outside 1..={MAX_REPLAY_EPOCHS}"
            ));
        }
        let snapshot = self.snapshot(iteration)?;
        let config = UpdateConfig {
            lr,
            epochs,
            ..snapshot.update
        };
        replay_update(
            &snapshot.start,
            &snapshot.experience,
            &config,
            crate::exercises::functions(),
            iteration,
        )
        .await
    }

    /// The attention maps of response `row` of `iteration`, under the policy that sampled it.
    pub async fn attention(&self, iteration: usize, row: usize) -> Result<AttentionMaps, String> {
        let snapshot = self.snapshot(iteration)?;
        attention_maps(
            &snapshot.start.policy.valid(),
            &snapshot.experience.rollout,
            row,
        )
        .await
    }

    /// Which problem (of [`PROBLEMS`]) each row of the last iteration asked.
    pub fn problems(&self) -> &[usize] {
        &self.problems
    }
}

/// How many iterations the lab keeps the start of (for replays and attention maps), and the
/// page keeps the batches of: the last 20.
pub const KEPT_ITERATIONS: usize = 20;

/// The most epochs a replay may run.
pub const MAX_REPLAY_EPOCHS: usize = 32;

/// One iteration's update as it started, with its batch.
struct Snapshot {
    iteration: usize,
    start: UpdateStart,
    experience: Experience,
    update: UpdateConfig,
}
