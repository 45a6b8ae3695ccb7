//! The page's PPO run: the tiny model, GSM-mini, and the settings a student can change.
//!
//! It lives in the core, not in `web/`, so that native tests run exactly what the page runs.
//! [`Lab::iterate`] is one PPO iteration ([`walkthrough`]): the page steps through its result
//! or, while training, only charts its metrics.

pub mod walkthrough;

use std::collections::VecDeque;

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::tensor::Device;

use crate::adamw::AdamW;
use crate::compute::{BackendKind, Compute, now_ms};
use crate::data::gsm_mini;
use crate::health::Knob;
use crate::lab::walkthrough::{
    AttentionMaps, Replay, StageTimes, UpdateStart, Walkthrough, WalkthroughConfig, attention_maps,
    replay_update, walkthrough,
};
use crate::model::chat::gsm8k_prompt;
use crate::model::tokenizer::TextTokenizer;
use crate::model::{Precision, Qwen2Config, Qwen2Model, ValueHeadInit, WeightFiles, load_model};
use crate::ppo::Algorithm;
use crate::ppo::gae::GaeParams;
use crate::ppo::group_advantages::{GroupParams, RewardScale};
use crate::ppo::grpo_loss::{GrpoCoeffs, LossAgg};
use crate::ppo::iteration::{Experience, ExperienceConfig, Task};
use crate::ppo::kl_control::KlController;
use crate::ppo::losses::LossCoeffs;
use crate::ppo::rewards::KlEstimator;
use crate::ppo::update::UpdateConfig;
use crate::rng::Rng;
use crate::rollout::sampling::SamplingParams;
use crate::selfcheck;
use crate::wire::{BenchResults, Iterated, Progress, Reply, Request, Sampling};

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

/// Everything a student can change. Names are the URL keys (`?gamma=0.99&lr=1e-4`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LabSettings {
    /// Seeds the problems, the value head, sampling and shuffling.
    pub seed: u64,
    /// Responses sampled per iteration (the batch).
    pub rollouts: usize,
    pub max_new_tokens: usize,
    pub temperature: f32,
    pub gamma: f32,
    pub lam: f32,
    /// `eps` of the policy clip band `[1 - eps, 1 + eps]`.
    pub clip: f32,
    /// How far a value may move from the old one before its loss is clipped.
    pub vclip: f32,
    pub kl: f32,
    /// The adaptive KL controller's target KL to the reference per response (0: β stays at
    /// `kl`).
    pub kl_target: f32,
    /// The controller's horizon in responses: one iteration of `rollouts` responses moves β by
    /// at most `0.2 × rollouts / kl_horizon` of itself.
    pub kl_horizon: f32,
    pub ent: f32,
    pub vf: f32,
    pub lr: f64,
    /// The learning rate of the value head's bias: how fast the critic's level follows the mean
    /// return.
    pub vblr: f64,
    pub epochs: usize,
    /// Rows per forward/backward pass of the update.
    pub minibatch: usize,
    pub whiten: bool,
    /// Which advantages the update uses.
    pub algo: Algorithm,
    /// Samples per prompt: 1 draws a different problem for every row; G > 1 arranges the batch
    /// as rollouts / G problems times G samples, so GRPO's group advantages can be computed.
    pub group: usize,
    /// GRPO: divide by the group's std (`group`) or not (`none`).
    pub scale: RewardScale,
    /// GRPO: the weight of the KL term in the loss.
    pub beta: f32,
}

impl Default for LabSettings {
    /// `configs/config_debug.yaml`'s recipe, the one that visibly raises the tiny model's
    /// reward, with a smaller batch so one iteration is quick to step through.
    fn default() -> Self {
        Self {
            seed: 1,
            rollouts: 16,
            max_new_tokens: 48,
            temperature: 1.0,
            gamma: 1.0,
            lam: 0.95,
            clip: 0.2,
            vclip: 0.2,
            kl: 0.05,
            kl_target: 0.0,
            kl_horizon: 64.0,
            ent: 0.01,
            vf: 0.1,
            lr: 3e-5,
            vblr: 1e-2,
            epochs: 2,
            minibatch: 8,
            whiten: true,
            algo: Algorithm::Ppo,
            group: 1,
            scale: RewardScale::Group,
            beta: 0.04,
        }
    }
}

/// One URL key: its name, what it means, and how to read and write it.
pub struct SettingKey {
    pub key: &'static str,
    pub label: &'static str,
    /// What the setting does, in a line (the page shows it beside the field).
    pub about: &'static str,
}

/// Every setting, in the order the page lists them.
pub const SETTING_KEYS: &[SettingKey] = &[
    SettingKey {
        key: "seed",
        label: "seed",
        about: "the random seed of sampling and shuffling; applied on reset",
    },
    SettingKey {
        key: "rollouts",
        label: "rollouts per iteration",
        about: "how many responses one iteration samples (2 to 64)",
    },
    SettingKey {
        key: "max_new_tokens",
        label: "max new tokens",
        about: "the longest response; one cut here is treated as terminal (1 to 96)",
    },
    SettingKey {
        key: "temperature",
        label: "temperature",
        about: "divides the logits before sampling: below 1 sharper, above 1 flatter",
    },
    SettingKey {
        key: "gamma",
        label: "γ (gamma)",
        about: "the discount of future rewards in GAE; 1 leaves them undiscounted",
    },
    SettingKey {
        key: "lam",
        label: "λ (lambda)",
        about: "GAE's trade-off: 0 trusts the critic (one-step δ), 1 sums every reward to the end",
    },
    SettingKey {
        key: "clip",
        label: "clip ε",
        about: "the policy clip: once a token's ratio has left [1 − ε, 1 + ε] on the side its advantage pushes, its own term's gradient is 0 (the ratio is not capped)",
    },
    SettingKey {
        key: "vclip",
        label: "value clip",
        about: "the value clip c: the loss takes the larger of the unclipped and the clipped squared error, so once V_new has left [V_old − c, V_old + c] after moving toward the return R (without passing R by as much as the band's edge is from R), that token's value gradient is 0; moved away from R, the unclipped error is the larger and pulls it back",
    },
    SettingKey {
        key: "kl",
        label: "kl_coeff β",
        about: "β: each token's reward is −β × its KL to the frozen reference (plus the score on the last token)",
    },
    SettingKey {
        key: "kl_target",
        label: "adaptive KL target",
        about: "PPO's adaptive KL: 0, β stays as set; above 0, after each iteration β is multiplied by 1 + clip(KL / target − 1, ±0.2) × rollouts / horizon, so a KL per response above the target raises the penalty and one below lowers it",
    },
    SettingKey {
        key: "kl_horizon",
        label: "adaptive KL horizon",
        about: "responses over which β adapts: one iteration moves β by at most 0.2 × rollouts / horizon of itself",
    },
    SettingKey {
        key: "ent",
        label: "entropy_coeff",
        about: "the weight of the entropy bonus in the total loss",
    },
    SettingKey {
        key: "vf",
        label: "vf_coef",
        about: "the weight of the value loss in the total loss",
    },
    SettingKey {
        key: "lr",
        label: "learning rate",
        about: "AdamW's learning rate for every weight but the value head's bias",
    },
    SettingKey {
        key: "vblr",
        label: "critic bias learning rate",
        about: "AdamW's learning rate for the value head's bias, the critic's level: how fast its values follow the mean return as the reward rises",
    },
    SettingKey {
        key: "epochs",
        label: "epochs",
        about: "how many passes the update makes over one batch",
    },
    SettingKey {
        key: "minibatch",
        label: "mini-batch rows",
        about: "rows per optimizer step",
    },
    SettingKey {
        key: "whiten",
        label: "whiten advantages",
        about: "shift the batch's advantages to mean 0 and scale them to std 1 before the update",
    },
    SettingKey {
        key: "algo",
        label: "algorithm",
        about: "ppo: GAE on the critic's values; grpo: each response's reward against its group's, no critic (needs samples per prompt > 1)",
    },
    SettingKey {
        key: "group",
        label: "samples per prompt",
        about: "G: the batch is rollouts / G problems, each sampled G times (1: all different); must divide the rollouts",
    },
    SettingKey {
        key: "scale",
        label: "GRPO std scaling",
        about: "group: A = (r − mean) / (std + 1e-4); none: A = r − mean",
    },
    SettingKey {
        key: "beta",
        label: "GRPO β",
        about: "GRPO's weight of the k3 KL to the reference, a loss term (PPO puts its KL in the reward)",
    },
];

/// How the page names a setting that run-health advice mentions: its label and URL key as the
/// settings panel shows them ("learning rate (lr)"); one the page does not have, as the
/// trainer's config key.
pub fn knob_name(knob: Knob) -> String {
    let on_page = knob
        .page_key()
        .and_then(|key| SETTING_KEYS.iter().find(|s| s.key == key));
    match on_page {
        Some(s) if s.label == s.key => s.label.to_string(),
        Some(s) => format!("{} ({})", s.label, s.key),
        None => format!("the trainer's {}; fixed on this page", knob.config_key()),
    }
}

fn number<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("`{key}`: `{value}` is not a number"))
}

fn in_range<T: PartialOrd + std::fmt::Display + Copy>(
    key: &str,
    x: T,
    lo: T,
    hi: T,
) -> Result<T, String> {
    if x >= lo && x <= hi {
        Ok(x)
    } else {
        Err(format!("`{key}`: {x} is outside {lo}..={hi}"))
    }
}

impl LabSettings {
    /// The value of `key` as the URL and the form write it.
    pub fn get(&self, key: &str) -> Option<String> {
        Some(match key {
            "seed" => self.seed.to_string(),
            "rollouts" => self.rollouts.to_string(),
            "max_new_tokens" => self.max_new_tokens.to_string(),
            "temperature" => self.temperature.to_string(),
            "gamma" => self.gamma.to_string(),
            "lam" => self.lam.to_string(),
            "clip" => self.clip.to_string(),
            "vclip" => self.vclip.to_string(),
            "kl" => self.kl.to_string(),
            "kl_target" => self.kl_target.to_string(),
            "kl_horizon" => self.kl_horizon.to_string(),
            "ent" => self.ent.to_string(),
            "vf" => self.vf.to_string(),
            "lr" => format!("{:e}", self.lr),
            "vblr" => format!("{:e}", self.vblr),
            "epochs" => self.epochs.to_string(),
            "minibatch" => self.minibatch.to_string(),
            "whiten" => self.whiten.to_string(),
            "algo" => self.algo.name().to_lowercase(),
            "group" => self.group.to_string(),
            "scale" => self.scale.name().to_string(),
            "beta" => self.beta.to_string(),
            _ => return None,
        })
    }

    /// Sets `key` from text, or says what is wrong with it (naming the key and the value).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "seed" => self.seed = number(key, value)?,
            "rollouts" => self.rollouts = in_range(key, number(key, value)?, 2, 64)?,
            "max_new_tokens" => self.max_new_tokens = in_range(key, number(key, value)?, 1, 96)?,
            "temperature" => {
                let t: f32 = number(key, value)?;
                SamplingParams::new(t, 0, 1.0).map_err(|e| format!("`{key}`: {e}"))?;
                self.temperature = t;
            }
            "gamma" => self.gamma = in_range(key, number(key, value)?, 0.0, 1.0)?,
            "lam" => self.lam = in_range(key, number(key, value)?, 0.0, 1.0)?,
            "clip" => self.clip = in_range(key, number(key, value)?, 0.0, 10.0)?,
            "vclip" => self.vclip = in_range(key, number(key, value)?, 0.0, 100.0)?,
            "kl" => self.kl = in_range(key, number(key, value)?, 0.0, 10.0)?,
            "kl_target" => self.kl_target = in_range(key, number(key, value)?, 0.0, 1000.0)?,
            "kl_horizon" => self.kl_horizon = in_range(key, number(key, value)?, 1.0, 1e6)?,
            "ent" => self.ent = in_range(key, number(key, value)?, 0.0, 10.0)?,
            "vf" => self.vf = in_range(key, number(key, value)?, 0.0, 10.0)?,
            "lr" => self.lr = in_range(key, number(key, value)?, 0.0, 1.0)?,
            "vblr" => self.vblr = in_range(key, number(key, value)?, 0.0, 1.0)?,
            "epochs" => self.epochs = in_range(key, number(key, value)?, 1, 16)?,
            "minibatch" => self.minibatch = in_range(key, number(key, value)?, 1, 64)?,
            "whiten" => {
                self.whiten = match value.trim() {
                    "true" | "1" | "on" => true,
                    "false" | "0" | "off" => false,
                    other => return Err(format!("`{key}`: `{other}` is not true or false")),
                }
            }
            "algo" => {
                self.algo = match value.trim() {
                    "ppo" => Algorithm::Ppo,
                    "grpo" => Algorithm::Grpo,
                    other => return Err(format!("`{key}`: `{other}` is not ppo or grpo")),
                }
            }
            "group" => self.group = in_range(key, number(key, value)?, 1, 16)?,
            "scale" => {
                self.scale =
                    RewardScale::parse(value.trim()).map_err(|e| format!("`{key}`: {e}"))?
            }
            "beta" => self.beta = in_range(key, number(key, value)?, 0.0, 10.0)?,
            other => return Err(format!("unknown setting `{other}`")),
        }
        Ok(())
    }

    /// The keys that differ from the defaults, as `key=value` pairs (what a shared URL needs).
    pub fn changed(&self) -> Vec<(&'static str, String)> {
        let default = Self::default();
        SETTING_KEYS
            .iter()
            .filter_map(|k| {
                let value = self.get(k.key)?;
                (default.get(k.key).as_deref() != Some(value.as_str())).then_some((k.key, value))
            })
            .collect()
    }

    /// The mini-batch the update uses: at most the batch.
    pub fn minibatch_rows(&self) -> usize {
        self.minibatch.min(self.rollouts)
    }

    pub fn update_config(&self) -> UpdateConfig {
        UpdateConfig {
            epochs: self.epochs,
            mini_batch_size: self.minibatch_rows(),
            gradient_accumulation_steps: 1,
            max_grad_norm: Some(1.0),
            lr: self.lr,
            value_bias_lr: Some(self.vblr),
            temperature: self.temperature,
            coeffs: LossCoeffs {
                clip_ratio: self.clip,
                clip_range_value: self.vclip,
                vf_coef: self.vf,
                entropy_coeff: self.ent,
            },
            grpo: (self.algo == Algorithm::Grpo).then_some(GrpoCoeffs {
                beta: self.beta,
                agg: LossAgg::SeqMeanTokenMean,
            }),
        }
    }

    /// The batch's grouping, or what is wrong with it (naming both settings).
    pub fn groups(&self) -> Result<Option<GroupParams>, String> {
        if self.group > 1 && !self.rollouts.is_multiple_of(self.group) {
            return Err(format!(
                "`group`: {} samples per prompt do not divide `rollouts` {}",
                self.group, self.rollouts
            ));
        }
        if self.algo == Algorithm::Grpo && self.group < 2 {
            return Err(
                "`algo`: GRPO compares samples of one prompt: set `group` (samples per prompt) to 2 or more"
                    .into(),
            );
        }
        Ok((self.group > 1).then_some(GroupParams {
            group_size: self.group,
            scale: self.scale,
        }))
    }
}

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
        let group = settings.groups()?;
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
        let adaptive = settings.kl_target > 0.0 && settings.algo == Algorithm::Ppo;
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
            algorithm: settings.algo,
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
            WalkthroughConfig { attention_row },
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

/// The page's benchmark mode on one backend: milliseconds per stage of the page's own
/// iterations.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StageBench {
    /// The first iteration: on WebGPU it includes compiling every shader.
    pub first: StageTimes,
    /// The median of each stage over the iterations after the first.
    pub median: StageTimes,
    /// How many iterations the median is over.
    pub iterations: usize,
}

/// Runs `1 + iterations` iterations of a fresh lab on `device` with `settings` (attention maps
/// kept, as when stepping through) and times every stage.
pub async fn bench_stages(
    settings: &LabSettings,
    iterations: usize,
    device: &Device,
) -> Result<StageBench, String> {
    if iterations == 0 {
        return Err("the benchmark needs at least 1 timed iteration".into());
    }
    let mut lab = Lab::new(settings, device)?;
    let first = lab.iterate(settings, Some(0)).await?.times;
    let mut runs = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        runs.push(lab.iterate(settings, Some(0)).await?.times);
    }
    let median = |pick: fn(&StageTimes) -> f64| {
        let mut xs: Vec<f64> = runs.iter().map(pick).collect();
        xs.sort_by(f64::total_cmp);
        xs[xs.len() / 2]
    };
    Ok(StageBench {
        first,
        median: StageTimes {
            rollout_ms: median(|t| t.rollout_ms),
            score_ms: median(|t| t.score_ms),
            gae_ms: median(|t| t.gae_ms),
            mask_ms: median(|t| t.mask_ms),
            update_ms: median(|t| t.update_ms),
            after_ms: median(|t| t.after_ms),
        },
        iterations,
    })
}

/// What the page's Web Worker runs: it owns the device and the [`Lab`], and answers the page's
/// [`Request`]s one at a time (see [`crate::wire`]). Choosing the backend is the browser's part;
/// everything after it is here, so native tests drive exactly what the worker does.
pub struct LabServer {
    compute: Compute,
    lab: Option<Lab>,
}

impl LabServer {
    pub fn new(compute: Compute) -> Self {
        Self { compute, lab: None }
    }

    pub fn compute(&self) -> &Compute {
        &self.compute
    }

    /// Answers one request; `progress` hears about a long one: benchmark mode's lines, an
    /// iteration's rollout token by token.
    pub async fn handle(&mut self, request: Request, progress: &dyn Fn(Progress)) -> Reply {
        match request {
            // The backend is chosen once, before the server exists; asking again describes it.
            Request::Start { .. } => Reply::Started {
                kind: self.compute.kind,
                summary: self.compute.summary(),
                notices: Vec::new(),
            },
            Request::SelfCheck => {
                let started = now_ms();
                Reply::SelfCheck(
                    selfcheck::run(&self.compute.device)
                        .await
                        .map(|check| (check, now_ms() - started)),
                )
            }
            Request::Bench {
                settings,
                iterations,
            } => Reply::Bench(
                self.bench(&settings, iterations, progress)
                    .await
                    .map(Box::new),
            ),
            Request::Reset(settings) => Reply::Reset(
                Lab::new(&settings, &self.compute.device).map(|lab| self.lab = Some(lab)),
            ),
            Request::Iterate {
                settings,
                attention_row,
                pinned,
            } => Reply::Iteration(
                self.iterate(&settings, attention_row, pinned, progress)
                    .await,
            ),
            Request::Replay {
                iteration,
                lr,
                epochs,
            } => Reply::Replay(match &self.lab {
                Some(lab) => lab.replay(iteration, lr, epochs).await.map(Box::new),
                None => Err("the model is not loaded: reset first".into()),
            }),
            Request::Attention { iteration, row } => Reply::Attention(match &self.lab {
                Some(lab) => lab.attention(iteration, row).await.map(Box::new),
                None => Err("the model is not loaded: reset first".into()),
            }),
        }
    }

    async fn iterate(
        &mut self,
        settings: &LabSettings,
        attention_row: Option<usize>,
        pinned: Option<usize>,
        progress: &dyn Fn(Progress),
    ) -> Result<Box<Iterated>, String> {
        let lab = self
            .lab
            .as_mut()
            .ok_or("the model is not loaded: reset first")?;
        lab.pinned = pinned;
        let walk = lab
            .iterate_watched(settings, attention_row, &mut |s| {
                progress(Progress::Sampling(s))
            })
            .await?;
        Ok(Box::new(Iterated {
            iteration: lab.iteration,
            problems: lab.problems().to_vec(),
            walk,
            exercises_ran: crate::exercises::ran_summary(),
        }))
    }

    /// Benchmark mode: on WebGPU first when the server runs on it, then on flex.
    async fn bench(
        &self,
        settings: &LabSettings,
        iterations: usize,
        progress: &dyn Fn(Progress),
    ) -> Result<BenchResults, String> {
        let webgpu = if self.compute.kind == BackendKind::WebGpu {
            progress(Progress::Line(format!(
                "WebGPU: 1 + {iterations} iterations…"
            )));
            Some(bench_stages(settings, iterations, &self.compute.device).await?)
        } else {
            None
        };
        progress(Progress::Line(format!(
            "flex: 1 + {iterations} iterations…"
        )));
        let flex = bench_stages(settings, iterations, &Device::flex()).await?;
        Ok(BenchResults {
            webgpu_adapter: if webgpu.is_some() {
                self.compute.adapter.clone().unwrap_or_default()
            } else {
                String::new()
            },
            webgpu,
            flex,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_round_trips_and_defaults_share_as_nothing() {
        let defaults = LabSettings::default();
        assert!(defaults.changed().is_empty());
        for k in SETTING_KEYS {
            let mut s = LabSettings::default();
            let v = defaults.get(k.key).unwrap();
            s.set(k.key, &v).unwrap();
            assert_eq!(s, defaults, "{}", k.key);
        }
        let mut s = LabSettings::default();
        s.set("gamma", "0.9").unwrap();
        s.set("lr", "1e-4").unwrap();
        s.set("whiten", "off").unwrap();
        assert_eq!(
            s.changed(),
            vec![
                ("gamma", "0.9".to_string()),
                ("lr", "1e-4".to_string()),
                ("whiten", "false".to_string())
            ]
        );
    }

    #[test]
    fn bad_values_name_the_key_and_the_value() {
        let mut s = LabSettings::default();
        let cases = [
            ("gamma", "abc", "`gamma`: `abc` is not a number"),
            ("gamma", "1.5", "`gamma`: 1.5 is outside 0..=1"),
            ("rollouts", "1", "`rollouts`: 1 is outside 2..=64"),
            ("whiten", "maybe", "`whiten`: `maybe` is not true or false"),
            ("nope", "1", "unknown setting `nope`"),
        ];
        for (key, value, message) in cases {
            assert_eq!(s.set(key, value).unwrap_err(), message);
        }
        let err = s.set("temperature", "0").unwrap_err();
        assert!(err.starts_with("`temperature`: "), "{err}");
        assert_eq!(s, LabSettings::default(), "a refused value changes nothing");
    }
}
