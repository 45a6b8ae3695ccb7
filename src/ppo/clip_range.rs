//! The band a ratio is clipped to: `[1 - eps_low, 1 + eps_high]`.
//!
//! PPO and GRPO clip symmetrically (`eps_low = eps_high = eps`, 0.2 by default). DAPO (Yu et al.
//! 2025, "clip-higher") decouples the two: `eps_low = 0.2`, `eps_high = 0.28`. With `A > 0` the
//! clip stops a token's probability being pushed up once `ratio > 1 + eps_high`; a wider upper
//! band lets an unlikely token that turned out well (a probability of 0.01 can only reach 0.012
//! at `eps_high = 0.2`) rise further in one update, which keeps the policy's entropy from
//! collapsing. The lower band, which stops pushing down a bad token, is unchanged.

use burn::tensor::Tensor;

/// `[1 - low, 1 + high]`.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClipRange {
    pub low: f32,
    pub high: f32,
}

impl ClipRange {
    /// No clip: the band `[0, inf)` holds every ratio, so the clipped term never wins
    /// (REINFORCE).
    pub const NONE: ClipRange = ClipRange {
        low: 1.0,
        high: f32::INFINITY,
    };

    /// The same width on both sides, as PPO and GRPO clip.
    pub fn symmetric(eps: f32) -> Self {
        Self {
            low: eps,
            high: eps,
        }
    }

    /// Checks the band: `0 <= low < 1` (so `1 - low` stays a positive ratio) and `high >= 0`.
    pub fn new(low: f32, high: f32) -> Result<Self, String> {
        if !(0.0..1.0).contains(&low) {
            return Err(format!(
                "clip_ratio_low is {low}: it must be at least 0 and below 1 (the band's lower \
                 edge is 1 - clip_ratio_low)"
            ));
        }
        if !(high >= 0.0 && high.is_finite()) {
            return Err(format!(
                "clip_ratio_high is {high}: it must be a number of at least 0"
            ));
        }
        Ok(Self { low, high })
    }

    pub fn is_symmetric(self) -> bool {
        self.low == self.high
    }

    /// The band's edges, `(1 - low, 1 + high)`.
    pub fn edges(self) -> (f32, f32) {
        (1.0 - self.low, 1.0 + self.high)
    }

    /// Whether the clipped branch is the one that counts for a ratio and an advantage (strictly,
    /// as the losses test it), so the term gives no gradient.
    pub fn switches_off(self, ratio: f32, advantage: f32) -> bool {
        self.clamp(ratio) * advantage < ratio * advantage
    }

    /// `clip(ratio, 1 - low, 1 + high)`.
    pub fn clamp(self, ratio: f32) -> f32 {
        ratio.clamp(1.0 - self.low, 1.0 + self.high)
    }

    /// The tensor form of [`ClipRange::clamp`].
    pub fn clamp_tensor<const D: usize>(self, ratio: Tensor<D>) -> Tensor<D> {
        ratio.clamp(1.0 - self.low, 1.0 + self.high)
    }
}

impl From<f32> for ClipRange {
    fn from(eps: f32) -> Self {
        Self::symmetric(eps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_band_and_its_errors() {
        let dapo = ClipRange::new(0.2, 0.28).unwrap();
        assert_eq!(dapo.clamp(1.25), 1.25);
        assert_eq!(dapo.clamp(1.5), 1.28);
        assert_eq!(dapo.clamp(0.5), 0.8);
        assert!(!dapo.is_symmetric() && ClipRange::from(0.2).is_symmetric());
        assert_eq!(ClipRange::symmetric(0.2).clamp(1.25), 1.2);
        assert!(
            ClipRange::new(1.0, 0.2)
                .unwrap_err()
                .contains("clip_ratio_low is 1")
        );
        assert!(
            ClipRange::new(0.2, -0.1)
                .unwrap_err()
                .contains("clip_ratio_high is -0.1")
        );
        assert!(ClipRange::new(0.2, f32::NAN).is_err());
        for r in [1e-6, 0.5, 1.0, 3.0, 1e6] {
            assert_eq!(ClipRange::NONE.clamp(r), r);
        }
    }

    /// A token sampled at probability 0.01 with `A > 0`: one update can take it to 0.012 under
    /// the symmetric band, to 0.0128 under DAPO's.
    #[test]
    fn clip_higher_lets_an_unlikely_good_token_rise_further() {
        let p_old = 0.01f32;
        let top = |c: ClipRange| p_old * c.clamp(f32::INFINITY);
        assert!((top(ClipRange::symmetric(0.2)) - 0.012).abs() < 1e-7);
        assert!((top(ClipRange::new(0.2, 0.28).unwrap()) - 0.0128).abs() < 1e-7);
    }
}
