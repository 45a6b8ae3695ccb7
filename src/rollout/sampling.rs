//! Choosing the next token from one row of logits: temperature, top-k, top-p (nucleus).
//!
//! The logprob recorded for PPO is log softmax(logits / temperature) at the sampled id, over the
//! whole vocabulary, not the truncated top-k/top-p distribution: that is the distribution the
//! update's teacher-forced pass can recompute (it divides by the same temperature). So at the
//! update's first step the ratio is 1 up to float rounding, not exactly: the rollout computes
//! each logprob token by token with the KV cache, the update in one teacher-forced pass, and the
//! two add up their numbers in different orders (the page's Causal mask stage shows the largest
//! difference).

use crate::rng::Rng;

/// How tokens are drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplingParams {
    /// Logits are divided by this; must be > 0.
    pub temperature: f32,
    /// Keep only the k most likely tokens (0 = no limit).
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose probability reaches top_p (1 = no limit).
    pub top_p: f32,
}

impl SamplingParams {
    pub fn new(temperature: f32, top_k: usize, top_p: f32) -> Result<Self, String> {
        if !(temperature > 0.0 && temperature.is_finite()) {
            return Err(format!("temperature must be > 0, found {temperature}"));
        }
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(format!("top_p must be in (0, 1], found {top_p}"));
        }
        Ok(Self {
            temperature,
            top_k,
            top_p,
        })
    }
}

/// One sampling step's result.
#[derive(Clone, Debug, PartialEq)]
pub struct Sampled {
    pub id: u32,
    /// log softmax(logits / temperature)[id], full vocabulary.
    pub logprob: f32,
    /// The most likely candidates `(id, probability)`, highest first (what the page shows).
    pub top: Vec<(u32, f32)>,
}

/// log softmax(logits / temperature), the normaliser's sum in f64.
pub fn log_softmax(logits: &[f32], temperature: f32) -> Vec<f32> {
    Tempered::of(logits, temperature).logp
}

/// One row's tempered distribution: `z = logits / temperature`, `weights_i = e^(z_i - max z)`,
/// `sum` their total in f64, and `logp_i = z_i - max z - ln sum`.
struct Tempered {
    logp: Vec<f32>,
    weights: Vec<f32>,
    sum: f64,
}

impl Tempered {
    fn of(logits: &[f32], temperature: f32) -> Tempered {
        let z: Vec<f32> = logits.iter().map(|&x| x / temperature).collect();
        let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let weights: Vec<f32> = z.iter().map(|&v| (v - max).exp()).collect();
        let sum: f64 = weights.iter().map(|&w| w as f64).sum();
        let lse = max as f64 + sum.ln();
        let logp = z.iter().map(|&v| (v as f64 - lse) as f32).collect();
        Tempered { logp, weights, sum }
    }

    /// The probability of `id`.
    fn probability(&self, id: usize) -> f64 {
        self.weights[id] as f64 / self.sum
    }
}

/// Ids from the highest logprob to the lowest; ties broken by the lower id so the order is
/// deterministic. Each id is sorted as one u64 key, descending logprob (in `f32::total_cmp`'s
/// order) above ascending id: the order of comparing the pairs, in about half the time (32,000
/// ids: 0.8 against 1.6 ms here).
fn by_logprob(logp: &[f32]) -> Vec<usize> {
    let mut keys = sort_keys(logp);
    keys.sort_unstable();
    keys.iter()
        .map(|&key| (key & 0xffff_ffff) as usize)
        .collect()
}

/// One key per id: descending logprob above ascending id.
fn sort_keys(logp: &[f32]) -> Vec<u64> {
    logp.iter()
        .enumerate()
        .map(|(id, &lp)| (u64::from(!total_order_key(lp)) << 32) | id as u64)
        .collect()
}

/// A u32 that orders floats as `f32::total_cmp` does (negative NaN < -inf < ... < inf < NaN).
fn total_order_key(x: f32) -> u32 {
    let bits = x.to_bits();
    if bits >> 31 == 1 {
        !bits
    } else {
        bits | 1 << 31
    }
}

/// Sample one id from `logits` with `params`, reporting `n_top` candidates; one uniform draw
/// from `rng`.
pub fn sample(logits: &[f32], params: &SamplingParams, n_top: usize, rng: &mut Rng) -> Sampled {
    sample_with(logits, params, n_top, rng.unit())
}

/// [`sample`] with its uniform draw `u` in [0, 1) given.
///
/// With top-k or top-p the kept ids are the most likely ones, so the ids are sorted by logprob
/// and the draw walks them in that order. Without either, every id is kept and the draw walks
/// them in id order: the same distribution, without sorting the vocabulary at every step (a
/// 32,000-id sort took about 0.8 ms, most of a step's sampling).
pub fn sample_with(logits: &[f32], params: &SamplingParams, n_top: usize, u: f64) -> Sampled {
    let dist = Tempered::of(logits, params.temperature);
    let logp = &dist.logp;
    let truncated = (params.top_k > 0 && params.top_k < logp.len()) || params.top_p < 1.0;
    let chosen = if truncated {
        let order = by_logprob(logp);
        let mut keep = order.len();
        if params.top_k > 0 {
            keep = keep.min(params.top_k);
        }
        if params.top_p < 1.0 {
            let mut mass = 0.0f64;
            for (i, &id) in order.iter().enumerate().take(keep) {
                mass += dist.probability(id);
                if mass >= params.top_p as f64 {
                    keep = i + 1;
                    break;
                }
            }
        }
        let kept = &order[..keep.max(1)];
        let total = kept.iter().map(|&id| dist.weights[id] as f64).sum();
        draw(kept.iter().copied(), &dist.weights, total, u)
    } else {
        draw(0..logp.len(), &dist.weights, dist.sum, u)
    };
    let top = most_likely(logp, n_top)
        .into_iter()
        .map(|id| (id as u32, dist.probability(id) as f32))
        .collect();
    Sampled {
        id: chosen as u32,
        logprob: logp[chosen],
        top,
    }
}

/// [`sample_with`] for several rows of `logits` (`[rows, vocab]`, row-major): `rows` lists
/// `(row, u)`, one uniform draw each, and the results come in that order. Natively the rows are
/// shared between the cores; in the page they run one after the other.
pub fn sample_rows(
    logits: &[f32],
    vocab: usize,
    rows: &[(usize, f64)],
    params: &SamplingParams,
    n_top: usize,
) -> Vec<Sampled> {
    let one = |&(row, u): &(usize, f64)| {
        sample_with(&logits[row * vocab..(row + 1) * vocab], params, n_top, u)
    };
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        rows.par_iter().map(one).collect()
    }
    #[cfg(target_arch = "wasm32")]
    rows.iter().map(one).collect()
}

/// One of `ids` with probability proportional to `weights[id]`: the first id at which the running
/// sum of weights passes `u * total`, `total` the sum of the weights of `ids`. Should rounding
/// leave a sliver of the draw after the last id, the last id of positive weight is taken (never
/// an id of weight 0).
fn draw<I>(ids: I, weights: &[f32], total: f64, u: f64) -> usize
where
    I: IntoIterator<Item = usize>,
{
    let mut u = u * total;
    let mut last = None;
    for id in ids {
        let w = weights[id] as f64;
        u -= w;
        if u < 0.0 {
            return id;
        }
        if w > 0.0 || last.is_none() {
            last = Some(id);
        }
    }
    last.unwrap_or(0) // no ids at all: the callers always pass at least one
}

/// The `n` most likely ids, highest first, in [`by_logprob`]'s order (ties to the lower id),
/// selected without sorting the whole vocabulary.
fn most_likely(logp: &[f32], n: usize) -> Vec<usize> {
    let n = n.min(logp.len());
    if n == 0 {
        return Vec::new();
    }
    let mut keys = sort_keys(logp);
    if n < keys.len() {
        keys.select_nth_unstable(n - 1);
        keys.truncate(n);
    }
    keys.sort_unstable();
    keys.iter()
        .map(|&key| (key & 0xffff_ffff) as usize)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sort_keys_give_the_order_of_comparing_pairs() {
        let mut logp = vec![
            -1.5,
            0.0,
            -0.0,
            -1.5,
            f32::NEG_INFINITY,
            f32::INFINITY,
            -1e-30,
            2.25,
            -1.5,
            f32::NAN,
            -f32::NAN,
            1e-30,
            2.25,
        ];
        let mut rng = Rng::new(3);
        logp.extend((0..500).map(|_| -((rng.below(40) as f32) / 8.0)));
        let mut expected: Vec<usize> = (0..logp.len()).collect();
        expected.sort_by(|&a, &b| logp[b].total_cmp(&logp[a]).then(a.cmp(&b)));
        assert_eq!(by_logprob(&logp), expected);
        assert_eq!(&by_logprob(&logp)[..3], &[9, 5, 7]); // NaN, inf, then the first 2.25
        // The top candidates are the sort's first ids, for every n.
        for n in [0, 1, 2, 3, 7, 40, logp.len(), logp.len() + 5] {
            assert_eq!(
                most_likely(&logp, n),
                expected[..n.min(logp.len())],
                "n = {n}"
            );
        }
    }

    #[test]
    fn log_softmax_by_hand() {
        // logits [0, ln 3] at T = 1: p = [1/4, 3/4].
        let lp = log_softmax(&[0.0, 3f32.ln()], 1.0);
        assert!((lp[0] - 0.25f32.ln()).abs() < 1e-6 && (lp[1] - 0.75f32.ln()).abs() < 1e-6);
        // T = 2 halves the logits: p ∝ [1, sqrt 3].
        let lp = log_softmax(&[0.0, 3f32.ln()], 2.0);
        let p1 = 3f32.sqrt() / (1.0 + 3f32.sqrt());
        assert!((lp[1] - p1.ln()).abs() < 1e-6);
    }

    #[test]
    fn top_k_one_is_greedy_and_top_p_truncates() {
        let logits = [0.1, 2.0, 1.9, -1.0];
        let mut rng = Rng::new(1);
        let greedy = SamplingParams::new(1.0, 1, 1.0).unwrap();
        for _ in 0..50 {
            assert_eq!(sample(&logits, &greedy, 2, &mut rng).id, 1);
        }
        // p ≈ [0.07, 0.49, 0.44, 0.02]: top_p 0.9 keeps ids 1 and 2 only.
        let nucleus = SamplingParams::new(1.0, 0, 0.9).unwrap();
        let mut seen = [0usize; 4];
        for _ in 0..2000 {
            seen[sample(&logits, &nucleus, 0, &mut rng).id as usize] += 1;
        }
        assert_eq!((seen[0], seen[3]), (0, 0), "{seen:?}");
        assert!(seen[1] > 900 && seen[2] > 800, "{seen:?}");
    }

    #[test]
    fn frequencies_follow_the_tempered_distribution() {
        let logits = [0.0, 1.0, 2.0];
        let params = SamplingParams::new(0.5, 0, 1.0).unwrap();
        let want: Vec<f32> = log_softmax(&logits, 0.5).iter().map(|l| l.exp()).collect();
        let mut rng = Rng::new(9);
        let n = 20_000;
        let mut seen = [0usize; 3];
        for _ in 0..n {
            let s = sample(&logits, &params, 3, &mut rng);
            seen[s.id as usize] += 1;
            assert!((s.logprob.exp() - want[s.id as usize]).abs() < 1e-6);
            assert_eq!(s.top[0].0, 2);
        }
        for i in 0..3 {
            let freq = seen[i] as f32 / n as f32;
            assert!(
                (freq - want[i]).abs() < 0.015,
                "id {i}: {freq} vs {}",
                want[i]
            );
        }
    }

    /// Rows sampled together (on every core) are the rows sampled one by one with the same
    /// draws, in the order asked for; top-k and top-p included.
    #[test]
    fn rows_sampled_together_equal_rows_sampled_alone() {
        let mut rng = Rng::new(4);
        let (rows, vocab) = (6, 301);
        let logits: Vec<f32> = (0..rows * vocab)
            .map(|_| rng.unit() as f32 * 8.0 - 4.0)
            .collect();
        for params in [
            SamplingParams::new(1.0, 0, 1.0).unwrap(),
            SamplingParams::new(0.7, 20, 0.9).unwrap(),
        ] {
            let asked: Vec<(usize, f64)> = [4, 0, 5, 2].iter().map(|&r| (r, rng.unit())).collect();
            let together = sample_rows(&logits, vocab, &asked, &params, 3);
            let alone: Vec<Sampled> = asked
                .iter()
                .map(|&(r, u)| sample_with(&logits[r * vocab..(r + 1) * vocab], &params, 3, u))
                .collect();
            assert_eq!(together, alone);
        }
        // `sample` takes exactly one draw from the generator.
        let params = SamplingParams::new(1.0, 0, 1.0).unwrap();
        let (mut a, mut b) = (Rng::new(8), Rng::new(8));
        let row = &logits[..vocab];
        assert_eq!(
            sample(row, &params, 2, &mut a),
            sample_with(row, &params, 2, b.unit())
        );
        assert_eq!(a.unit(), b.unit());
    }

    /// The draw walks the running sum; a draw that rounding leaves past the last id takes the
    /// last id of positive weight, never one of weight 0.
    #[test]
    fn the_draw_by_hand() {
        let weights = [0.25f32, 0.0, 0.5, 0.25, 0.0];
        let all = 0..weights.len();
        assert_eq!(draw(all.clone(), &weights, 1.0, 0.0), 0);
        assert_eq!(draw(all.clone(), &weights, 1.0, 0.2499), 0);
        assert_eq!(draw(all.clone(), &weights, 1.0, 0.25), 2);
        assert_eq!(draw(all.clone(), &weights, 1.0, 0.7499), 2);
        assert_eq!(draw(all.clone(), &weights, 1.0, 0.75), 3);
        // A total a little above the weights' sum: u near 1 runs past the end.
        assert_eq!(draw(all.clone(), &weights, 1.0 + 1e-6, 0.999_999_9), 3);
        // Over a subset, in the order given.
        assert_eq!(draw([3, 0].into_iter(), &weights, 0.5, 0.6), 0);
    }

    #[test]
    fn bad_params_are_refused() {
        assert!(
            SamplingParams::new(0.0, 0, 1.0)
                .unwrap_err()
                .contains("temperature")
        );
        assert!(
            SamplingParams::new(1.0, 0, 1.5)
                .unwrap_err()
                .contains("top_p")
        );
    }
}
