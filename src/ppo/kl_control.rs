//! The KL coefficient between iterations: fixed, or adapted towards a target KL (Ziegler et al.,
//! "Fine-Tuning Language Models from Human Preferences", 2019).
//!
//! The adaptive rule, after each iteration with `n` sequences whose KL to the reference (summed
//! over each sequence's tokens, averaged over the batch) was `kl`:
//! ```text
//! error    = clip(kl / target - 1, -0.2, 0.2)
//! kl_coeff = kl_coeff * (1 + error * n / horizon)
//! ```
//! Too much KL raises the penalty, too little lowers it; the clip bounds one update's change.

/// One adaptive step, as the page shows it: the target and horizon, the KL it saw, the clipped
/// error, and the coefficient before and after.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct KlStep {
    pub target: f64,
    pub horizon: f64,
    /// Sequences in the batch (`n` in the rule).
    pub n: usize,
    /// The batch's mean KL to the reference per sequence.
    pub kl: f64,
    /// `clip(kl / target - 1, -0.2, 0.2)`.
    pub error: f64,
    pub before: f64,
    pub after: f64,
}

/// The controller's state; serialisable as two numbers for checkpoints.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KlController {
    /// The coefficient the next iteration uses.
    pub value: f64,
    /// `Some((target, horizon))` for the adaptive rule, `None` for a fixed coefficient.
    pub adaptive: Option<(f64, f64)>,
}

impl KlController {
    pub fn fixed(value: f64) -> Self {
        KlController {
            value,
            adaptive: None,
        }
    }

    pub fn adaptive(value: f64, target: f64, horizon: f64) -> Result<Self, String> {
        if !(target > 0.0 && target.is_finite()) {
            return Err(format!("target = {target} must be a positive number"));
        }
        if !(horizon > 0.0 && horizon.is_finite()) {
            return Err(format!("horizon = {horizon} must be a positive number"));
        }
        Ok(KlController {
            value,
            adaptive: Some((target, horizon)),
        })
    }

    /// Update after an iteration of `n` sequences with mean sequence KL `kl`. A fixed
    /// controller, or a non-finite `kl`, leaves the value as it is.
    pub fn update(&mut self, kl: f64, n: usize) {
        self.step(kl, n);
    }

    /// [`Self::update`], returning the step it took (None where it took none).
    pub fn step(&mut self, kl: f64, n: usize) -> Option<KlStep> {
        let (target, horizon) = self.adaptive.filter(|_| kl.is_finite())?;
        let error = (kl / target - 1.0).clamp(-0.2, 0.2);
        let before = self.value;
        self.value *= 1.0 + error * n as f64 / horizon;
        Some(KlStep {
            target,
            horizon,
            n,
            kl,
            error,
            before,
            after: self.value,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adaptive_rule_by_hand() {
        // kl 7.5, target 6: error = 0.25 clipped to 0.2; 0.1 * (1 + 0.2 * 16 / 10000) = 0.1000320.
        let mut c = KlController::adaptive(0.1, 6.0, 10_000.0).unwrap();
        c.update(7.5, 16);
        assert!((c.value - 0.100_032).abs() < 1e-12, "{}", c.value);
        // kl 3, target 6: error = -0.5 clipped to -0.2; times (1 - 0.2 * 16 / 10000).
        c.update(3.0, 16);
        assert!((c.value - 0.100_032 * 0.99968).abs() < 1e-12, "{}", c.value);
        // kl 6.6: error = 0.1 (inside the clip); times (1 + 0.1 * 100 / 10000) = 1.001.
        let mut c = KlController::adaptive(0.2, 6.0, 10_000.0).unwrap();
        c.update(6.6, 100);
        assert!((c.value - 0.2002).abs() < 1e-12, "{}", c.value);
        // On target: no change. NaN: no change.
        c.update(6.0, 100);
        c.update(f64::NAN, 100);
        assert!((c.value - 0.2002).abs() < 1e-12);
    }

    #[test]
    fn fixed_never_moves_and_bad_settings_are_named() {
        let mut c = KlController::fixed(0.05);
        c.update(100.0, 16);
        assert_eq!(c.value, 0.05);
        assert!(
            KlController::adaptive(0.1, 0.0, 10.0)
                .unwrap_err()
                .contains("target = 0")
        );
        assert!(
            KlController::adaptive(0.1, 1.0, -1.0)
                .unwrap_err()
                .contains("horizon = -1")
        );
    }
}
