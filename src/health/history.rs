//! The metric history a run's checks read: one row per iteration, by metric name (as in
//! metrics.jsonl), and the critic's explained variance, one of the metrics.

use std::collections::BTreeMap;

/// The metric history: one row per iteration, by metric name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    rows: Vec<BTreeMap<String, f64>>,
}

impl History {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one iteration's metrics.
    pub fn push<'a>(&mut self, row: impl IntoIterator<Item = (&'a str, f64)>) {
        self.rows
            .push(row.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
    }

    /// Each iteration's metrics, oldest first.
    pub fn rows(&self) -> &[BTreeMap<String, f64>] {
        &self.rows
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Every value of `metric`, oldest first; None when one is missing or not finite.
    pub fn series(&self, metric: &str) -> Option<Vec<f64>> {
        self.last(metric, self.rows.len())
    }

    /// The last `n` values of `metric`, oldest first; None when the history is shorter than `n`
    /// or one of them is missing or not finite.
    pub(super) fn last(&self, metric: &str, n: usize) -> Option<Vec<f64>> {
        let start = self.rows.len().checked_sub(n)?;
        self.rows[start..]
            .iter()
            .map(|r| r.get(metric).copied().filter(|x| x.is_finite()))
            .collect()
    }

    /// The first value of `metric` in the history.
    pub(super) fn first(&self, metric: &str) -> Option<f64> {
        self.rows
            .iter()
            .find_map(|r| r.get(metric).copied().filter(|x| x.is_finite()))
    }
}

/// The critic's explained variance over real tokens: `1 − Var(R − V) / Var(R)`. 1 is a critic
/// whose errors do not vary (exact, or off by the same constant everywhere), 0 one no better than predicting the mean return, below 0 worse. None when the
/// returns have no spread (every return equal) or fewer than two real tokens.
pub fn explained_variance(returns: &[f64], values: &[f64]) -> Option<f64> {
    let n = returns.len();
    if n < 2 || values.len() != n {
        return None;
    }
    let variance = |xs: &[f64]| {
        let mean = xs.iter().sum::<f64>() / n as f64;
        xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64
    };
    let var_r = variance(returns);
    if var_r <= 0.0 {
        return None;
    }
    let errors: Vec<f64> = returns.iter().zip(values).map(|(r, v)| r - v).collect();
    Some(1.0 - variance(&errors) / var_r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explained_variance_by_hand() {
        // R = 1, 2, 3 (variance 2/3). V = R: 1. V = 2 (the mean): 0. V = 3, 2, 1: R − V = −2,
        // 0, 2, variance 8/3, so 1 − 4 = −3.
        assert_eq!(
            explained_variance(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]),
            Some(1.0)
        );
        assert_eq!(
            explained_variance(&[1.0, 2.0, 3.0], &[2.0, 2.0, 2.0]),
            Some(0.0)
        );
        let ev = explained_variance(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]).unwrap();
        assert!((ev + 3.0).abs() < 1e-12, "{ev}");
        assert_eq!(explained_variance(&[1.0, 1.0], &[0.0, 2.0]), None);
        assert_eq!(explained_variance(&[1.0], &[1.0]), None);
    }
}
