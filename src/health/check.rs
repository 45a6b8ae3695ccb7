//! The checks, their thresholds (each a named constant), and what a finding holds.

/// Policy clip fraction above which one iteration's update was too aggressive: "high
/// `policy_clip_frac` (e.g., > 0.5) ... suggests instability" (the tutorial's FAQ).
pub const POLICY_CLIP_HIGH: f64 = 0.5;
/// Clip fractions "should be low (e.g., < 0.1 or 0.2)" (the FAQ): above this for
/// [`SUSTAINED`] iterations in a row is a trend, not a noisy batch.
pub const CLIP_SUSTAINED_HIGH: f64 = 0.2;
/// Iterations in a row that make a high clip fraction a trend.
pub const SUSTAINED: usize = 5;
/// Value clip fraction above which the critic's updates are mostly clipped (the FAQ's 0.5 for
/// the policy, applied to the critic's band).
pub const VALUE_CLIP_HIGH: f64 = 0.5;
/// Pre-clip gradient norm, as a multiple of `max_grad_norm`, that means exploding gradients:
/// the FAQ's "consistently very high (e.g., > 10-100) when max_grad_norm is set to ~1.0", at
/// its low end.
pub const GRAD_NORM_FACTOR: f64 = 10.0;
/// Iterations over which a trend (a falling value loss, a growing KL) is judged: two halves of
/// this many, compared.
pub const TREND_WINDOW: usize = 10;
/// A value loss is "constant" when its spread over [`TREND_WINDOW`] iterations is below this
/// fraction of its mean (float noise, not learning).
pub const CONSTANT_RELATIVE: f64 = 1e-3;
/// Approx KL (the update's policy change, in nats per token) above which it is no longer
/// "relatively small": PPO implementations stop an epoch early at a target of 0.01 to 0.05
/// (Stable-Baselines3's `target_kl`, OpenAI Spinning Up's 0.01 with a 1.5x margin); 0.05 is
/// the loose end.
pub const APPROX_KL_HIGH: f64 = 0.05;
/// KL to the reference, summed over a response (nats), above which a growing KL is worth a
/// look: a response of a few dozen tokens each a few hundredths of a nat off the reference.
pub const KL_REF_HIGH: f64 = 1.0;
/// How much the KL to the reference must grow across the window (second half's mean over the
/// first half's) to count as rising.
pub const KL_GROWTH: f64 = 2.0;
/// A reward is "flat" when the second half of the window's mean is not above the first half's
/// by this much (rewards are in [0, 1] for GSM8K's scorer).
pub const REWARD_FLAT: f64 = 0.02;
/// Entropy (nats per token) below which the policy is nearly deterministic: a token sampled
/// with this entropy is near-certain (about 0.1 nats is one alternative at 2%), so alternatives
/// are rarely tried.
pub const ENTROPY_FLOOR: f64 = 0.1;
/// ... or a drop to this fraction of the run's first entropy.
pub const ENTROPY_DROP: f64 = 0.1;
/// Explained variance below which the critic predicts the returns worse than their mean would,
/// by enough to matter: its errors' variance is at least 10% larger than the returns' own (their
/// spread about 5% wider). Explained variance does not see the critic's level: any constant
/// critic scores exactly 0 and one off by a constant scores 1. A critic whose values barely vary
/// from token to token scores about 0, a little above or below from batch to batch (the debug
/// recipe's, within ±0.05): that is not a finding (the value loss shows whether the level was
/// learned).
pub const EV_FLOOR: f64 = -0.1;
/// Iterations in a row of explained variance below [`EV_FLOOR`] before it is a finding: one
/// noisy batch is not.
pub const EV_WINDOW: usize = 3;

/// What a run is checked against besides its metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RunSettings {
    /// `ppo.max_grad_norm` (None: no clipping, and no gradient-norm finding).
    pub max_grad_norm: Option<f64>,
    /// What holds the policy near the reference in this run, which the KL findings' advice
    /// names.
    pub kl: KlKnob,
    /// How the run scales its advantages, which the clip advice names.
    pub scale: AdvantageScale,
}

/// Whether a run's advantages are scaled to about 1 whatever the reward's size. Unscaled, a
/// reward ten times larger makes a step ten times larger, so the clip advice says so and names
/// the setting that scales them, where the run has one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AdvantageScale {
    /// Whitened over the batch (PPO, RLOO with `normalize_advantages`) or divided by each
    /// group's std (GRPO with `scale_rewards: group`, DAPO).
    #[default]
    Scaled,
    /// PPO with `whiten_advantages` off.
    WhitenOff,
    /// GRPO with `scale_rewards: none`.
    GroupStdOff,
    /// The trainer's RLOO with `normalize_advantages` off.
    NormalizeOff,
    /// No setting scales them: REINFORCE, Dr. GRPO, and RLOO on the page.
    Unscaled,
}

/// The setting that weighs a run's KL to the reference: PPO's and a critic-free member's are
/// different settings, and DAPO has none, so raising PPO's `kl_coeff` in a GRPO run does nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KlKnob {
    /// PPO: `kl_coeff` charges each token's reward, and `kl_target` can steer it.
    #[default]
    KlCoeff,
    /// A critic-free member's `beta` (a GRPO loss term, or a penalty on RLOO's and REINFORCE's
    /// scores), in the trainer's config section `section` (`grpo`, `rloo`, ...).
    Beta { section: &'static str },
    /// No KL term at all (DAPO).
    Absent,
}

/// One check on the history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Check {
    PolicyClipHigh,
    PolicyClipSustained,
    ValueClipHigh,
    GradNormExploding,
    ValueLossFlat,
    ApproxKlHigh,
    ApproxKlGrowing,
    KlRefGrowing,
    RewardFlatKlRising,
    EntropyCollapsed,
    CriticWorseThanMean,
}

impl Check {
    pub const ALL: [Check; 11] = [
        Check::PolicyClipHigh,
        Check::PolicyClipSustained,
        Check::ValueClipHigh,
        Check::GradNormExploding,
        Check::ValueLossFlat,
        Check::ApproxKlHigh,
        Check::ApproxKlGrowing,
        Check::KlRefGrowing,
        Check::RewardFlatKlRising,
        Check::EntropyCollapsed,
        Check::CriticWorseThanMean,
    ];

    /// The check named `key` (as [`Check::key`] writes it).
    pub fn from_key(key: &str) -> Option<Check> {
        Check::ALL.into_iter().find(|c| c.key() == key)
    }

    /// Stable name, for findings.jsonl and the page.
    pub fn key(self) -> &'static str {
        match self {
            Check::PolicyClipHigh => "policy-clip-high",
            Check::PolicyClipSustained => "policy-clip-sustained",
            Check::ValueClipHigh => "value-clip-high",
            Check::GradNormExploding => "grad-norm-exploding",
            Check::ValueLossFlat => "value-loss-flat",
            Check::ApproxKlHigh => "approx-kl-high",
            Check::ApproxKlGrowing => "approx-kl-growing",
            Check::KlRefGrowing => "kl-ref-growing",
            Check::RewardFlatKlRising => "reward-flat-kl-rising",
            Check::EntropyCollapsed => "entropy-collapsed",
            Check::CriticWorseThanMean => "critic-worse-than-mean",
        }
    }

    /// What the check found, in words, for the page's heading (the key stays beside it: it is
    /// what the trainer's log and findings.jsonl print).
    pub fn title(self) -> &'static str {
        match self {
            Check::PolicyClipHigh => "Many ratios clipped in one update",
            Check::PolicyClipSustained => "Ratios clipped, update after update",
            Check::ValueClipHigh => "Many values held back by the value clip",
            Check::GradNormExploding => "Exploding gradients",
            Check::ValueLossFlat => "The critic is not learning",
            Check::ApproxKlHigh => "Every update moves the policy too far",
            Check::ApproxKlGrowing => "The updates' steps keep growing",
            Check::KlRefGrowing => "Drifting away from the reference",
            Check::RewardFlatKlRising => "KL rising, reward flat",
            Check::EntropyCollapsed => "Entropy collapsed",
            Check::CriticWorseThanMean => "The critic predicts worse than the mean",
        }
    }
}

/// One finding: which check fired, on which metric and numbers, what it means and what to try.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub check: Check,
    /// The metric it reads (as in metrics.jsonl).
    pub metric: &'static str,
    /// The threshold it crossed.
    pub threshold: f64,
    /// The iterations it looked at.
    pub window: usize,
    /// The number that crossed it (the last value, or the window's statistic).
    pub value: f64,
    /// What it means, with the numbers.
    pub meaning: String,
    /// The run's KL setting, which its advice names.
    pub kl: KlKnob,
    /// How the run scales its advantages, which its advice names.
    pub scale: AdvantageScale,
}
