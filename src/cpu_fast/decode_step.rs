//! One decoding step of the whole model in plain loops, natively on flex in f32.
//!
//! Through burn, a step of the 50M model (4 rows, one new token each) runs about 40 tensor ops
//! per layer around its matrix products: the norms, the rotary embedding's narrows and cats, the
//! cache's `cat` (which copies every cached key and value), the attention's small matmuls and
//! softmax, the mask's bookkeeping. Each allocates its output and runs on one thread while the
//! other waits. Measured on this project's 2-core machine, they took about 5 of the 14 ms of a
//! step whose products take 9 to 10. Here a step is the products ([`few_rows`](crate::cpu_fast::few_rows))
//! with loops over a few thousand values between them, and the keys and values go into a cache
//! with room to grow, written in place.
//!
//! It computes what `Qwen2Model::decode` computes through burn, up to the order in which floats
//! are added; the tests hold the two together, step by step, with left padding. The model hands
//! it its weights as a [`DecoderWeights`] (it knows nothing of the model's types), and it runs
//! only when they are f32 on flex.

use burn::backend::flex::FlexTensor;
use burn::tensor::Tensor;
use rayon::prelude::*;

use super::few_rows::{Panels, Product, Weight, products};
use super::model_view::DecoderWeights;
use super::native_kv::{NativeKv, dense_f32, values_of};
use super::simd::simd_fn;

/// What a step returns: logits `[B, V]` and values `[B]`.
pub struct StepOutput {
    pub logits: Vec<f32>,
    pub values: Vec<f32>,
}

/// A layer's small parameters as flex tensors (norm weights, q/k/v biases).
struct LayerSmall {
    input_norm: FlexTensor,
    input_eps: f32,
    post_norm: FlexTensor,
    post_eps: f32,
    bias: [Option<FlexTensor>; 3],
}

fn bias_of(bias: &Option<Tensor<1>>) -> Option<Option<FlexTensor>> {
    match bias {
        Some(b) => Some(Some(dense_f32(b.clone())?)),
        None => Some(None),
    }
}

/// `out = x / sqrt(mean(x^2) + eps) * weight`, row by row (rows of `weight.len()` values).
fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut Vec<f32>) {
    out.clear();
    for row in x.chunks_exact(weight.len()) {
        let mean = row.iter().map(|v| v * v).sum::<f32>() / weight.len() as f32;
        let inv = 1.0 / (mean + eps).sqrt();
        out.extend(row.iter().zip(weight).map(|(v, w)| v * inv * w));
    }
}

/// `x * cos + rotate_half(x) * sin` for one head's `[hd]` values in place.
fn rope(x: &mut [f32], cos: &[f32], sin: &[f32]) {
    let half = x.len() / 2;
    for i in 0..half {
        let (a, b) = (x[i], x[i + half]);
        x[i] = a * cos[i] - b * sin[i];
        x[i + half] = b * cos[i] + a * sin[i];
    }
}

/// [`products`] for `W` products at once, their outputs as an array.
fn run<const W: usize>(x: &[f32], (m, k): (usize, usize), jobs: [Product<'_>; W]) -> [Vec<f32>; W] {
    let mut outs = products(x, (m, k), &jobs).into_iter();
    std::array::from_fn(|_| outs.next().expect("one output per product"))
}

/// `a . b`, in 16 lanes (vectorised where the caller is compiled for SIMD).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let (a16, b16) = (a.chunks_exact(16), b.chunks_exact(16));
    let rest: f32 = a16
        .remainder()
        .iter()
        .zip(b16.remainder())
        .map(|(x, y)| x * y)
        .sum();
    let mut lanes = [0f32; 16];
    for (x, y) in a16.zip(b16) {
        for i in 0..16 {
            lanes[i] += x[i] * y[i];
        }
    }
    lanes.iter().sum::<f32>() + rest
}

simd_fn! {
    /// SwiGLU's gate, `y = silu(g) * u = g u / (1 + e^-g)`, element by element.
    fn swiglu(y: &mut [f32], g: &[f32], u: &[f32]) {
        for ((y, &g), &u) in y.iter_mut().zip(g).zip(u) {
            *y = g * u / (1.0 + (-g).exp());
        }
    }
}

simd_fn! {
    /// One query's attention: `out = softmax(query . keys[s] * scale) @ values` over the
    /// positions s that `mask` marks real (`keys`, `values` `[S, hd]`; `scores` room for S).
    fn attend(
        out: &mut [f32],
        scores: &mut [f32],
        query: &[f32],
        keys: &[f32],
        values: &[f32],
        mask: &[u8],
        scale: f32
    ) {
        let hd = query.len();
        let mut max = f32::NEG_INFINITY;
        for (s, score) in scores.iter_mut().enumerate().take(mask.len()) {
            if mask[s] != 0 {
                *score = dot(query, &keys[s * hd..(s + 1) * hd]) * scale;
                max = max.max(*score);
            }
        }
        let mut total = 0f32;
        for (s, score) in scores.iter_mut().enumerate().take(mask.len()) {
            *score = if mask[s] == 0 { 0.0 } else { (*score - max).exp() };
            total += *score;
        }
        out.fill(0.0);
        for (s, &weight) in scores.iter().enumerate().take(mask.len()) {
            if weight == 0.0 {
                continue;
            }
            let p = weight / total;
            for (o, &v) in out.iter_mut().zip(&values[s * hd..(s + 1) * hd]) {
                *o += p * v;
            }
        }
    }
}

/// One decoding step: the next token of each row (`ids [B]`) after what `kv` holds, through
/// every layer with the weights `packed` ([`Panels`] per layer: q, k, v, o, gate, up, down).
/// Appends the step's keys and values to `kv`. `None`, with `kv` untouched, when the weights are
/// not f32 on plain flex, the shapes do not match, or an id is outside the vocabulary: burn's
/// path then runs the step as before.
pub fn step(
    model: &DecoderWeights,
    packed: &[[Panels; 7]],
    kv: &mut NativeKv,
    ids: &[i64],
) -> Option<StepOutput> {
    let (b, d, v) = (kv.rows, model.hidden_size, model.vocab_size);
    let (h, k, hd) = (model.heads, model.kv_heads, model.head_dim);
    if ids.len() != b
        || packed.len() != model.layers.len()
        || kv.layers.len() != model.layers.len()
        || model.inv_freq.len() != hd / 2
        || (kv.kv_heads, kv.head_dim) != (k, hd)
        || ids.iter().any(|&id| id < 0 || id as usize >= v)
    {
        return None;
    }
    let inter = model.intermediate_size;
    let shapes = [
        (d, h * hd),
        (d, k * hd),
        (d, k * hd),
        (h * hd, d),
        (d, inter),
        (d, inter),
        (inter, d),
    ];
    if packed.iter().any(|layer| {
        layer
            .iter()
            .zip(shapes)
            .any(|(p, shape)| p.shape() != shape)
    }) {
        return None;
    }
    let embed = dense_f32(model.embed.clone())?;
    let head = match &model.lm_head {
        Some((weight, bias)) => Some((dense_f32(weight.clone())?, bias_of(bias)?)),
        None => None,
    };
    let mut small = Vec::with_capacity(model.layers.len());
    for layer in &model.layers {
        let [q, k, v] = &layer.qkv_bias;
        small.push(LayerSmall {
            input_norm: dense_f32(layer.input_norm.0.clone())?,
            input_eps: layer.input_norm.1,
            post_norm: dense_f32(layer.post_norm.0.clone())?,
            post_eps: layer.post_norm.1,
            bias: [bias_of(q)?, bias_of(k)?, bias_of(v)?],
        });
    }
    let (final_norm, final_eps) = (dense_f32(model.final_norm.0.clone())?, model.final_norm.1);
    let v_weight = dense_f32(model.value_head.0.clone())?;
    let v_bias = bias_of(&model.value_head.1)?;
    let embed_values = values_of(&embed);
    let len_is = |t: &FlexTensor, n: usize| values_of(t).len() == n;
    let bias_len_is = |b: &Option<FlexTensor>, n: usize| b.as_ref().is_none_or(|b| len_is(b, n));
    let lengths_match = len_is(&embed, v * d)
        && len_is(&final_norm, d)
        && len_is(&v_weight, d)
        && bias_len_is(&v_bias, 1)
        && head
            .as_ref()
            .is_none_or(|(w, bias)| len_is(w, d * v) && bias_len_is(bias, v))
        && small.iter().all(|s| {
            len_is(&s.input_norm, d)
                && len_is(&s.post_norm, d)
                && (s.bias.iter())
                    .zip([h * hd, k * hd, k * hd])
                    .all(|(b, n)| bias_len_is(b, n))
        });
    if !lengths_match {
        return None;
    }

    kv.reserve_one();
    let (p, cap) = (kv.len, kv.cap);

    // Rotary tables for each row's position: [B, hd / 2] each, angles in f32 as burn's.
    let inv_freq = &model.inv_freq;
    let (mut cos, mut sin) = (
        Vec::with_capacity(b * hd / 2),
        Vec::with_capacity(b * hd / 2),
    );
    for &position in &kv.next_position {
        for &f in inv_freq {
            let angle = position as f32 * f;
            cos.push(angle.cos());
            sin.push(angle.sin());
        }
    }
    for row in 0..b {
        kv.mask[row * cap + p] = 1;
    }

    let mut x: Vec<f32> = ids
        .iter()
        .flat_map(|&id| &embed_values[id as usize * d..(id as usize + 1) * d])
        .copied()
        .collect(); // [B, D]
    let mut normed = Vec::with_capacity(b * d);
    let mut attended = vec![0f32; b * h * hd];
    let scale = 1.0 / (hd as f32).sqrt();
    let rep = h / k;
    for (l, (panels, small)) in packed.iter().zip(&small).enumerate() {
        rms_norm(
            &x,
            values_of(&small.input_norm),
            small.input_eps,
            &mut normed,
        );
        let bias = |i: usize| small.bias[i].as_ref().map(values_of);
        let [mut q, new_k, new_v] = run(
            &normed,
            (b, d),
            [0, 1, 2].map(|i| panels[i].product(bias(i))),
        );

        // The rotary embedding, then the new keys and values into the cache at position p.
        let (keys, values) = &mut kv.layers[l];
        for row in 0..b {
            let (c, s) = (
                &cos[row * hd / 2..(row + 1) * hd / 2],
                &sin[row * hd / 2..(row + 1) * hd / 2],
            );
            for head in q[row * h * hd..(row + 1) * h * hd].chunks_exact_mut(hd) {
                rope(head, c, s);
            }
            for kh in 0..k {
                let at = ((row * k + kh) * cap + p) * hd;
                let from = (row * k + kh) * hd;
                keys[at..at + hd].copy_from_slice(&new_k[from..from + hd]);
                rope(&mut keys[at..at + hd], c, s);
                values[at..at + hd].copy_from_slice(&new_v[from..from + hd]);
            }
        }

        // Attention of each query head over the row's visible positions, the rows shared
        // between rayon's threads.
        let (keys, values, masks) = (&*keys, &*values, &kv.mask);
        let attend_row = |(row, out): (usize, &mut [f32])| {
            let mask = &masks[row * cap..row * cap + p + 1];
            let mut scores = vec![0f32; p + 1];
            for (head, out) in out.chunks_exact_mut(hd).enumerate() {
                let at = (row * k + head / rep) * cap * hd;
                let span = at..at + (p + 1) * hd;
                let query = (row * h + head) * hd..(row * h + head + 1) * hd;
                attend(
                    out,
                    &mut scores,
                    &q[query],
                    &keys[span.clone()],
                    &values[span],
                    mask,
                    scale,
                );
            }
        };
        if b > 1 {
            attended
                .par_chunks_mut(h * hd)
                .enumerate()
                .for_each(attend_row);
        } else {
            attended.chunks_mut(h * hd).enumerate().for_each(attend_row);
        }
        let [o] = run(&attended, (b, h * hd), [panels[3].product(None)]);
        x.iter_mut().zip(&o).for_each(|(x, o)| *x += o);

        rms_norm(&x, values_of(&small.post_norm), small.post_eps, &mut normed);
        let [gate, up] = run(
            &normed,
            (b, d),
            [panels[4].product(None), panels[5].product(None)],
        );
        let mut hidden = vec![0f32; gate.len()];
        swiglu(&mut hidden, &gate, &up);
        let [down] = run(&hidden, (b, inter), [panels[6].product(None)]);
        x.iter_mut().zip(&down).for_each(|(x, y)| *x += y);
    }
    rms_norm(&x, values_of(&final_norm), final_eps, &mut normed);

    let head_job = match &head {
        Some((weight, bias)) => Product {
            weight: Weight::Rows(values_of(weight)),
            n: v,
            bias: bias.as_ref().map(values_of),
        },
        None => Product {
            weight: Weight::Cols(embed_values),
            n: v,
            bias: None,
        },
    };
    let [logits] = run(&normed, (b, d), [head_job]);
    let (w, bias) = (
        values_of(&v_weight),
        v_bias.as_ref().map_or(0.0, |t| values_of(t)[0]),
    );
    let values = normed
        .chunks_exact(d)
        .map(|row| row.iter().zip(w).map(|(a, b)| a * b).sum::<f32>() + bias)
        .collect();

    kv.len += 1;
    kv.next_position.iter_mut().for_each(|n| *n += 1);
    Some(StepOutput { logits, values })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::qwen2::Kv;
    use crate::model::{Precision, Qwen2Config, Qwen2Model, ValueHeadInit, init_random};
    use burn::tensor::{Device, Int, TensorData};

    fn model(tied: bool) -> Qwen2Model {
        // head_dim 24: the dot products' 16 lanes plus a remainder of 8.
        let config = Qwen2Config::new(50, 48, 80, 2, 2, 1, tied).unwrap();
        init_random(
            &config,
            5,
            0.3,
            ValueHeadInit::Normal { std: 0.5 },
            Precision::F32,
            &Device::flex(),
        )
        .unwrap()
    }

    fn ints(rows: &[Vec<i64>]) -> Tensor<2, Int> {
        let (b, t) = (rows.len(), rows[0].len());
        let flat: Vec<i64> = rows.concat();
        Tensor::from_data(TensorData::new(flat, [b, t]), &Device::flex())
    }

    fn flat<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.to_data().iter::<f32>().collect()
    }

    fn assert_close(got: &[f32], want: &[f32], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: lengths");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= 2e-5 * w.abs().max(1.0),
                "{what}: value {i} is {g}, burn's path gives {w}"
            );
        }
    }

    /// Three rows, the last two left-padded, then 45 steps: past the cache's first room (the
    /// prompt's 5 positions plus 32), so the cache grows once.
    #[test]
    fn steps_equal_burns_path_with_padding_and_growth() {
        for tied in [true, false] {
            let model = model(tied);
            let device = Device::flex();
            let prompt = vec![
                vec![3, 9, 1, 7, 22],
                vec![0, 4, 4, 8, 15],
                vec![0, 0, 0, 16, 23],
            ];
            let mask = vec![vec![1; 5], vec![0, 1, 1, 1, 1], vec![0, 0, 0, 1, 1]];
            let (_, mut native) = model.prefill(ints(&prompt), ints(&mask));
            assert!(
                native.is_fast(),
                "a prefill on flex hands its steps to decode_step"
            );
            let mut burn = native.clone().through_burn(&device);
            let mut next = vec![vec![5], vec![6], vec![7]];
            for step in 0..45 {
                let (a, c) = model.decode(ints(&next), native);
                native = c;
                assert!(native.is_fast());
                let (want, c) = model.decode(ints(&next), burn);
                burn = c;
                assert!(!burn.is_fast());
                let what = format!("tied {tied}, step {step}");
                let logits = flat(a.logits.clone());
                assert_eq!(a.logits.dims(), [3, 1, 50]);
                assert_eq!(a.values.dims(), [3, 1]);
                assert_close(&logits, &flat(want.logits), &format!("{what}: logits"));
                assert_close(
                    &flat(a.values),
                    &flat(want.values),
                    &format!("{what}: values"),
                );
                // The next tokens: each row's largest logit.
                next = logits
                    .chunks_exact(50)
                    .map(|row| {
                        let best = (0..50).max_by(|&i, &j| row[i].total_cmp(&row[j])).unwrap();
                        vec![best as i64]
                    })
                    .collect();
            }
            assert_eq!(native.len(), 50);
            assert_eq!(burn.len(), 50);
            // The caches themselves agree, keys, values, mask and positions.
            let (nl, nm, nn) = native.clone().through_burn(&device).tensors_for_test();
            let (bl, bm, bn) = burn.tensors_for_test();
            for (l, ((nk, nv), (bk, bv))) in nl.into_iter().zip(bl).enumerate() {
                assert_close(&flat(nk), &flat(bk), &format!("layer {l} keys"));
                assert_close(&flat(nv), &flat(bv), &format!("layer {l} values"));
            }
            assert_eq!(nm.to_data(), bm.to_data());
            assert_eq!(nn.to_data(), bn.to_data());
        }
    }

    /// Two tokens at once on a cache held here go through burn's ops, and the steps after them
    /// come back here; an id outside the vocabulary leaves the cache as it was.
    #[test]
    fn longer_steps_and_bad_ids_leave_it_to_burn() {
        let model = model(true);
        let device = Device::flex();
        let prompt = vec![vec![1, 2, 3], vec![0, 4, 5]];
        let mask = vec![vec![1, 1, 1], vec![0, 1, 1]];
        let (_, cache) = model.prefill(ints(&prompt), ints(&mask));
        let burn = cache.clone().through_burn(&device);
        let two = vec![vec![6, 7], vec![8, 9]];
        let (a, cache) = model.decode(ints(&two), cache);
        let (want, burn) = model.decode(ints(&two), burn);
        assert_close(&flat(a.logits), &flat(want.logits), "two tokens: logits");
        assert_eq!(cache.len(), 5);
        assert!(cache.is_fast(), "back in plain memory after burn's step");
        let (a, _) = model.decode(ints(&[vec![10], vec![11]]), cache);
        let (want, _) = model.decode(ints(&[vec![10], vec![11]]), burn);
        assert_close(&flat(a.logits), &flat(want.logits), "the step after");

        let (_, cache) = model.prefill(ints(&prompt), ints(&mask));
        let Kv::Fast(mut kv) = cache.kv.clone() else {
            panic!("held here")
        };
        let kv = kv.native();
        let before = kv.clone();
        let packed = cache.fast.as_ref().unwrap().panels();
        let weights = model.decoder_weights().unwrap();
        assert!(step(&weights, packed, kv, &[1, 50]).is_none());
        assert!(
            step(&weights, packed, kv, &[1]).is_none(),
            "one id for two rows"
        );
        assert_eq!(kv.len, before.len);
        assert_eq!(kv.layers, before.layers);
        assert_eq!(kv.mask, before.mask);
        assert_eq!(kv.next_position, before.next_position);
    }

    /// The cache in plain memory and back gives the same tensors, before and after it grows.
    #[test]
    fn the_cache_round_trips() {
        let device = Device::flex();
        let (b, k, p, hd) = (2, 3, 4, 5);
        let values: Vec<f32> = (0..b * k * p * hd).map(|i| i as f32).collect();
        let keys = Tensor::<4>::from_data(TensorData::new(values.clone(), [b, k, p, hd]), &device);
        let vals = keys.clone().neg();
        let mask = ints(&[vec![0, 1, 1, 1], vec![1, 1, 1, 1]]);
        let next = ints(&[vec![3], vec![4]]);
        let mut kv = NativeKv::of(&[(keys.clone(), vals.clone())], &mask, &next).unwrap();
        let mut cap = p + 32;
        assert_eq!(kv.cap, cap);
        for _ in 0..2 {
            let (layers, m, n) = kv.to_tensors(&device);
            assert_eq!(flat(layers[0].0.clone()), values);
            assert_eq!(flat(layers[0].1.clone()), flat(vals.clone()));
            assert_eq!(m.to_data(), mask.to_data());
            assert_eq!(n.to_data(), next.to_data());
            kv.len = kv.cap; // full: the next reservation doubles the room
            kv.reserve_one();
            kv.len = p;
            cap *= 2;
            assert_eq!(kv.cap, cap);
        }
    }
}
