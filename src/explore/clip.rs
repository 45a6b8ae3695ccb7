//! Where each token sits against the policy and value clips: for one token, which branch of the
//! clipped objective counts and whether the token still has a gradient; for a batch, how many
//! tokens fall in each of the six cases (sign of A × below / inside / above the band).

use crate::ppo::clip_range::ClipRange;
use crate::ppo::policy_loss::PolicyTrace;

/// Where a ratio (or a value) lies against its clip band.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Band {
    Below,
    Inside,
    Above,
}

impl Band {
    pub const ALL: [Band; 3] = [Band::Below, Band::Inside, Band::Above];

    pub fn of(x: f32, lo: f32, hi: f32) -> Band {
        if x < lo {
            Band::Below
        } else if x > hi {
            Band::Above
        } else {
            Band::Inside
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Band::Below => "below",
            Band::Inside => "inside",
            Band::Above => "above",
        }
    }
}

/// One token against the policy clip: the objective is `min(ρ·A, clip(ρ, 1 − ε, 1 + ε)·A)`
/// (DAPO's band is wider above: `[1 − ε_low, 1 + ε_high]`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PolicyCase {
    pub ratio: f32,
    pub advantage: f32,
    pub clip: ClipRange,
    pub band: Band,
    /// `ρ·A`.
    pub unclipped: f32,
    /// `clip(ρ, 1 − ε, 1 + ε)·A`.
    pub clipped: f32,
    /// The clipped branch is the smaller one, so the objective is flat in ρ here.
    pub clipped_wins: bool,
    /// The token's objective still depends on ρ: its gradient is not 0.
    pub pushes: bool,
}

/// The clipped surrogate `min(ρ·A, clip(ρ, 1 − ε, 1 + ε)·A)` at `ratio`.
pub fn surrogate(ratio: f32, advantage: f32, eps: f32) -> f32 {
    let clipped = ratio.clamp(1.0 - eps, 1.0 + eps) * advantage;
    (ratio * advantage).min(clipped)
}

/// Where one token stands against the band `clip` (an ε alone: `[1 − ε, 1 + ε]`).
pub fn policy_case(ratio: f32, advantage: f32, clip: impl Into<ClipRange>) -> PolicyCase {
    let clip = clip.into();
    let unclipped = ratio * advantage;
    let clipped = clip.clamp(ratio) * advantage;
    // The same test as the loss (`-A·clip(ρ) > -A·ρ`): strictly, so a tie is unclipped.
    let clipped_wins = clip.switches_off(ratio, advantage);
    PolicyCase {
        ratio,
        advantage,
        clip,
        band: {
            let (lo, hi) = clip.edges();
            Band::of(ratio, lo, hi)
        },
        unclipped,
        clipped,
        clipped_wins,
        pushes: !clipped_wins && advantage != 0.0,
    }
}

impl PolicyCase {
    /// One line: which branch counted, and what that means for the token's gradient.
    pub fn verdict(&self) -> String {
        let side = if self.advantage > 0.0 {
            "Â > 0: the update wants to make this token more likely"
        } else if self.advantage < 0.0 {
            "Â < 0: the update wants to make this token less likely"
        } else {
            "Â = 0: nothing to push"
        };
        if self.clipped_wins {
            let symmetric = self.clip.is_symmetric();
            let edge = match (self.advantage > 0.0, symmetric) {
                (true, true) => "1 + ε",
                (true, false) => "1 + ε_high",
                (false, true) => "1 − ε",
                (false, false) => "1 − ε_low",
            };
            format!(
                "{side}, and ρ = {} is already past {edge}: min() takes the clipped branch clip(ρ)·Â = {}, which is flat in ρ, so this token's own policy term gives gradient 0 (the entropy bonus and a KL term in the loss, where they are on, still act on it). The ratio is not capped: shared weights and other tokens can still move it.",
                {
                    let (lo, hi) = self.clip.edges();
                    crate::explain::format::ratio_beside(self.ratio, lo, hi)
                },
                crate::explain::format::num(self.clipped),
            )
        } else if self.advantage == 0.0 {
            format!(
                "{side}: both branches are 0, so this token's own policy term gives gradient 0 \
                 (the entropy bonus and a KL term in the loss, where they are on, still act on it)."
            )
        } else {
            format!(
                "{side}; min() takes the unclipped branch ρ·Â = {}, so the token still pushes the gradient.",
                crate::explain::format::num(self.unclipped),
            )
        }
    }
}

/// Which way the value head's prediction moved in the update, measured against the return: the
/// value clip treats a move toward R and a move away from R differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueMove {
    /// V_new = V_old.
    Still,
    /// V_new moved from V_old in R's direction (it may have passed R).
    Toward,
    /// V_new moved from V_old in the direction opposite to R (or R = V_old and V_new moved).
    Away,
}

impl ValueMove {
    pub fn of(value_old: f32, value_new: f32, ret: f32) -> ValueMove {
        let moved = value_new - value_old;
        if moved == 0.0 {
            ValueMove::Still
        } else if (ret - value_old) * moved > 0.0 {
            ValueMove::Toward
        } else {
            ValueMove::Away
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            ValueMove::Still => "still",
            ValueMove::Toward => "toward",
            ValueMove::Away => "away",
        }
    }
}

/// One token against the value clip: the loss is `max((V_new − R)², (clip(V_new, V_old − c,
/// V_old + c) − R)²)`.
///
/// The clipped error is the larger (and the token's value gradient 0) exactly when V_new has
/// left the band after moving toward R, without passing R by as much as the band's edge is
/// from R. Outside the band on the side away from R, or after overshooting R by more than that,
/// the unclipped error is the larger and its gradient pulls V_new back toward R.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ValueCase {
    pub value_old: f32,
    pub value_new: f32,
    pub ret: f32,
    pub c: f32,
    pub band: Band,
    /// Which way V_new moved from V_old, against R.
    pub moved: ValueMove,
    /// How far V_new went past R, when it moved toward R and passed it; 0 otherwise.
    pub overshoot: f32,
    pub unclipped: f32,
    pub clipped: f32,
    /// The clipped error is the larger, so it counts (the loss's own test, which inside the band
    /// can come out either way by float rounding, the two errors being equal there).
    pub clipped_wins: bool,
    /// The clipped error counts and V_new is outside the band, where V_clip is the band's edge:
    /// the clip has set this token's value gradient to 0.
    pub clip_zeroes: bool,
    /// The counted error depends on V_new: the critic still learns from this token.
    pub learns: bool,
}

pub fn value_case(value_old: f32, value_new: f32, ret: f32, c: f32) -> ValueCase {
    // The same arithmetic as the loss, so the same tokens count as clipped.
    let v_clip = value_old + (value_new - value_old).clamp(-c, c);
    let unclipped = (value_new - ret).powi(2);
    let clipped = (v_clip - ret).powi(2);
    // The same test as the loss: the clipped error counts only when strictly larger.
    let clipped_wins = clipped > unclipped;
    let band = Band::of(value_new, value_old - c, value_old + c);
    let clip_zeroes = clipped_wins && band != Band::Inside;
    let moved = ValueMove::of(value_old, value_new, ret);
    let passed = (value_new - ret) * (value_old - ret) < 0.0;
    ValueCase {
        value_old,
        value_new,
        ret,
        c,
        band,
        moved,
        overshoot: if moved == ValueMove::Toward && passed {
            (value_new - ret).abs()
        } else {
            0.0
        },
        unclipped,
        clipped,
        clipped_wins,
        clip_zeroes,
        learns: !clip_zeroes && value_new != ret,
    }
}

impl ValueCase {
    /// The band edge V_new is past (or nearest, inside the band).
    fn edge(&self) -> f32 {
        if self.value_new >= self.value_old {
            self.value_old + self.c
        } else {
            self.value_old - self.c
        }
    }

    /// One line: which way V_new moved, which error counted, and whether the critic learns.
    pub fn verdict(&self) -> String {
        use crate::explain::format::num;
        let (lo, hi) = (self.value_old - self.c, self.value_old + self.c);
        let edge = self.edge();
        let from = format!(
            "V_new = {} moved {} R = {} from V_old = {}",
            num(self.value_new),
            match self.moved {
                ValueMove::Toward => "toward",
                _ => "away from",
            },
            num(self.ret),
            num(self.value_old),
        );
        if self.band == Band::Inside {
            return if self.value_new == self.ret {
                format!(
                    "V_new = {} is inside [{}, {}] and equals R: the error is 0, so this token has no value gradient.",
                    num(self.value_new),
                    num(lo),
                    num(hi)
                )
            } else {
                format!(
                    "V_new = {} is inside [{}, {}], so V_clip = V_new and both errors are {}: the critic learns from this token.",
                    num(self.value_new),
                    num(lo),
                    num(hi),
                    num(self.unclipped),
                )
            };
        }
        if self.clip_zeroes {
            let passed = if self.overshoot > 0.0 {
                format!(
                    ", passing R by {}, less than the edge's {} from R",
                    num(self.overshoot),
                    num((edge - self.ret).abs())
                )
            } else {
                String::new()
            };
            format!(
                "{from} and left the band past its edge {}{passed}: max() takes the clipped error (edge − R)² = {}, which no longer depends on V_new, so this token's value gradient is 0. The clip takes away the reason to move further toward R in this update.",
                num(edge),
                num(self.clipped),
            )
        } else if self.moved == ValueMove::Toward {
            format!(
                "{from} but passed R by {}, at least the edge's {} from R: the unclipped error (V_new − R)² = {} is the larger and counts, and its gradient pulls V_new back toward R.",
                num(self.overshoot),
                num((edge - self.ret).abs()),
                num(self.unclipped),
            )
        } else {
            format!(
                "{from} and left the band past its edge {}: the unclipped error (V_new − R)² = {} is the larger and counts, and its gradient pulls V_new back toward R.",
                num(edge),
                num(self.unclipped),
            )
        }
    }
}

/// How many real tokens sit in each case: `[sign][band]`, sign 0 for A > 0 and 1 for A < 0,
/// band in [`Band::ALL`] order. Tokens with A = 0 exactly are in `zero`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClipCases {
    pub counts: [[usize; 3]; 2],
    pub zero: usize,
    /// Tokens whose gradient the clip set to 0 (A > 0 above, A < 0 below).
    pub clipped: usize,
    pub total: usize,
}

/// The tokens of the responses `policy` in the six cases, against the band `clip` (an ε alone:
/// `[1 − ε, 1 + ε]`).
pub fn clip_cases<'a>(
    policy: impl IntoIterator<Item = &'a PolicyTrace>,
    clip: impl Into<ClipRange>,
) -> ClipCases {
    let clip = clip.into();
    let mut cases = ClipCases::default();
    for token in policy.into_iter().flat_map(|p| &p.tokens) {
        let case = policy_case(token.ratio, token.advantage, clip);
        cases.total += 1;
        cases.clipped += usize::from(case.clipped_wins);
        let sign = if token.advantage > 0.0 {
            0
        } else if token.advantage < 0.0 {
            1
        } else {
            cases.zero += 1;
            continue;
        };
        let band = Band::ALL.iter().position(|b| *b == case.band).unwrap_or(1);
        cases.counts[sign][band] += 1;
    }
    cases
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ppo::policy_loss::{PolicyClip, policy_loss_ref};
    use crate::ppo::value_loss::value_loss_ref;

    #[test]
    fn the_six_policy_cases_by_hand() {
        // ε = 0.2. (ρ, A) → (band, clipped wins).
        let cases = [
            (0.7, 1.0, Band::Below, false), // A > 0, below: ρA = 0.7 < 0.8: unclipped, pushes up
            (1.1, 1.0, Band::Inside, false), // inside: both 1.1
            (1.5, 1.0, Band::Above, true),  // A > 0 above: 1.5 vs 1.2: clipped, flat
            (0.7, -1.0, Band::Below, true), // A < 0 below: −0.7 vs −0.8: clipped, flat
            (1.0, -1.0, Band::Inside, false),
            (1.5, -1.0, Band::Above, false), // A < 0 above: −1.5 < −1.2: unclipped, pushes down
        ];
        for (ratio, adv, band, clipped) in cases {
            let c = policy_case(ratio, adv, 0.2);
            assert_eq!(
                (c.band, c.clipped_wins, c.pushes),
                (band, clipped, !clipped)
            );
            assert_eq!(surrogate(ratio, adv, 0.2), c.unclipped.min(c.clipped));
            // The loss's own flag agrees (its mask is 1, its logprobs give the ratio).
            let trace = policy_loss_ref(&[ratio.ln()], &[0.0], &[adv], &[1.0], 0.2);
            assert_eq!(
                trace.tokens[0].clip != PolicyClip::No,
                clipped,
                "{ratio} {adv}"
            );
            assert!(c.verdict().contains(if clipped {
                "gives gradient 0"
            } else {
                "still pushes"
            }));
        }
        assert!(!policy_case(1.5, 0.0, 0.2).pushes);
    }

    #[test]
    fn the_value_clip_by_hand() {
        // c = 0.2, V_old = 1. V_new 2, R 2: v_clip 1.2: errors 0 and 0.64: clipped counts.
        let c = value_case(1.0, 2.0, 2.0, 0.2);
        assert_eq!(
            (c.band, c.clipped_wins, c.learns),
            (Band::Above, true, false)
        );
        assert!((c.clipped - 0.64).abs() < 1e-6);
        // It moved up, toward R = 2, and landed on R: V_new left the band toward R.
        assert_eq!(c.moved, ValueMove::Toward);
        assert!(c.verdict().contains("moved toward R"), "{}", c.verdict());
        // V_new 2, R 0: v_clip 1.2: errors 4 and 1.44: unclipped counts, the critic learns.
        let c = value_case(1.0, 2.0, 0.0, 0.2);
        assert_eq!(
            (c.band, c.clipped_wins, c.learns),
            (Band::Above, false, true)
        );
        assert_eq!(c.moved, ValueMove::Away);
        assert!(c.verdict().contains("moved away from R"), "{}", c.verdict());
        for (old, new, ret) in [(1.0, 2.0, 2.0), (1.0, 2.0, 0.0), (0.0, 0.1, 1.0)] {
            let trace = value_loss_ref(&[new], &[old], &[ret], &[1.0], 0.2);
            assert_eq!(
                trace.tokens[0].was_clipped,
                value_case(old, new, ret, 0.2).clipped_wins
            );
        }
    }
}
