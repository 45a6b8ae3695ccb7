//! Benchmark of the few-row products (decoding's matrix products) on the 50M model's shapes.
//!
//! `cargo run --example bench_few_rows` (add `-- --rows 8 --threads 1 --iters 20` to change
//! them). Prints, as GB/s of weights read:
//! - a plain sum over the LM head's 65 MB on one thread and on `--threads` (it stays in this
//!   machine's cache when read again and again), and over 1 GiB: what memory itself gives;
//! - each kernel on a 1 MiB weight that stays in cache: what the kernel gives without memory's
//!   limit;
//! - one product per call, in panels, on one thread and on `--threads`: the model's gate size
//!   (3 MB) and a large one (131 MB), which shows what handing a product of the model's size to
//!   a second thread costs;
//! - one decode step's products (10 layers of q, k, v, o, gate, up, down, then the tied LM head),
//!   the median of `--iters` runs, the layers' weights as they lie (`[K, N]`) and in panels (as
//!   decoding reads them after a prefill);
//! - a whole step's products in the order decoding runs them: the layers' 120 MB push the head
//!   out of the cache, so it comes from memory as it does in the model.

use std::time::Instant;

use ppo_lens::cpu_fast::few_rows::{Product, Simd, Weight, matmul_many, pack_panels};
use rayon::prelude::*;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn timed(iters: usize, mut f: impl FnMut()) -> f64 {
    median(
        (0..iters)
            .map(|_| {
                let start = Instant::now();
                f();
                start.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

/// A sum with 64 independent lanes over `values` in `threads` parts, on rayon's pool as the
/// products.
fn plain_sum(values: &[f32], threads: usize) -> f32 {
    let sum = |part: &[f32]| {
        let mut acc = [0f32; 64];
        for chunk in part.chunks_exact(64) {
            for (a, &x) in acc.iter_mut().zip(chunk) {
                *a += x;
            }
        }
        acc.iter().sum::<f32>()
    };
    values
        .par_chunks(values.len().div_ceil(threads))
        .map(sum)
        .collect::<Vec<f32>>()
        .iter()
        .sum()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(|v| v.parse().expect("a whole number"))
            .unwrap_or(default)
    };
    let m = arg("--rows", 4);
    let threads = arg("--threads", rayon::current_num_threads());
    let iters = arg("--iters", 20).max(1);
    let (d, f, v, kv, layers) = (512, 1536, 32_000, 256, 10);
    let fill = |len: usize| -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 7919) % 1000) as f32 * 1e-3 - 0.5)
            .collect()
    };
    let shapes = [(d, d), (d, kv), (d, kv), (d, d), (d, f), (d, f), (f, d)];
    let weights: Vec<Vec<Vec<f32>>> = (0..layers)
        .map(|_| shapes.iter().map(|&(k, n)| fill(k * n)).collect())
        .collect();
    let head = fill(v * d);
    let (xd, xf) = (fill(m * d), fill(m * f));
    let simd = Simd::detect();
    let gb = |bytes: usize, seconds: f64| bytes as f64 / seconds / 1e9;
    let head_bytes = head.len() * 4;
    let layer_bytes: usize = weights.iter().flatten().map(Vec::len).sum::<usize>() * 4;

    for t in [1, threads] {
        let s = timed(iters, || {
            std::hint::black_box(plain_sum(&head, t));
        });
        println!(
            "plain sum over 65 MB (cached when repeated), {t} thread(s): {:.1} GB/s",
            gb(head_bytes, s)
        );
    }
    {
        // Larger than any cache: what memory itself gives.
        let big = fill(1 << 28);
        let s = timed(iters.min(5), || {
            std::hint::black_box(plain_sum(&big, threads));
        });
        println!(
            "plain sum over 1 GiB, {threads} thread(s): {:.1} GB/s",
            gb(big.len() * 4, s)
        );
    }
    let hot = &head[..d * d];
    for (name, weight) in [("rows", Weight::Rows(hot)), ("cols", Weight::Cols(hot))] {
        let s = timed(iters, || {
            for _ in 0..64 {
                let p = Product {
                    weight,
                    n: d,
                    bias: None,
                };
                std::hint::black_box(matmul_many(&xd, (m, d), &[p], 1, simd));
            }
        });
        println!(
            "{name} kernel, 1 MiB weight in cache, 1 thread: {:.1} GB/s",
            gb(64 * d * d * 4, s)
        );
    }
    // One product per call, in panels, on one thread and on `threads`: the gate's [512, 1536]
    // (3 MB; copies of it, about 200 MB in all, read in turn) and one [512, 64000] (131 MB). On
    // the large one the second thread doubles the rate; on the model's size, the time it takes
    // to join in is of the order of the product itself.
    for (k, n) in [(d, f), (d, 64_000)] {
        let copies = (200_000_000 / (k * n * 4)).max(1);
        let panels: Vec<Vec<f32>> = (0..copies)
            .map(|c| pack_panels(&fill(k * n + c)[c..], k, n))
            .collect();
        let x = fill(m * k);
        for t in [1, threads] {
            let s = timed(iters.min(9), || {
                for w in &panels {
                    let p = Product {
                        weight: Weight::Panels(w),
                        n,
                        bias: None,
                    };
                    std::hint::black_box(matmul_many(&x, (m, k), &[p], t, simd));
                }
            });
            println!(
                "one [{k}, {n}] product per call in panels, {t} thread(s): {:.1} us a call ({:.1} GB/s)",
                s / copies as f64 * 1e6,
                gb(copies * k * n * 4, s)
            );
        }
    }
    // One step's layer products, the weights `[K, N]` as they lie or in panels.
    let layers_step = |layers: &[Vec<Vec<f32>>], in_panels: bool| {
        for w in layers {
            let p = |i: usize| Product {
                weight: if in_panels {
                    Weight::Panels(&w[i])
                } else {
                    Weight::Rows(&w[i])
                },
                n: shapes[i].1,
                bias: None,
            };
            std::hint::black_box(matmul_many(&xd, (m, d), &[p(0), p(1), p(2)], threads, simd));
            std::hint::black_box(matmul_many(&xd, (m, d), &[p(3)], threads, simd));
            std::hint::black_box(matmul_many(&xd, (m, d), &[p(4), p(5)], threads, simd));
            std::hint::black_box(matmul_many(&xf, (m, f), &[p(6)], threads, simd));
        }
    };
    let layer_s = timed(iters, || layers_step(&weights, false));
    // The same weights in panels, as decoding reads them after a prefill.
    let packed: Vec<Vec<Vec<f32>>> = weights
        .iter()
        .map(|ws| {
            ws.iter()
                .zip(&shapes)
                .map(|(w, &(k, n))| pack_panels(w, k, n))
                .collect()
        })
        .collect();
    let panel_s = timed(iters, || layers_step(&packed, true));
    let head_product = || {
        let p = Product {
            weight: Weight::Cols(&head),
            n: v,
            bias: None,
        };
        std::hint::black_box(matmul_many(&xd, (m, d), &[p], threads, simd));
    };
    let head_s = timed(iters, head_product);
    // A whole step as decoding reads it: the layers, then the head, which the layers' 120 MB
    // have pushed out of the cache by then (alone, a repeated head stays cached).
    let step_s = timed(iters, || {
        layers_step(&packed, true);
        head_product();
    });

    println!(
        "decode step, {simd:?}, {m} rows, {threads} thread(s): layers {:.2} ms ({:.1} GB/s), \
         in panels {:.2} ms ({:.1} GB/s); LM head {:.2} ms ({:.1} GB/s); panels and head \
         {:.2} ms ({:.1} GB/s)",
        layer_s * 1e3,
        gb(layer_bytes, layer_s),
        panel_s * 1e3,
        gb(layer_bytes, panel_s),
        head_s * 1e3,
        gb(head_bytes, head_s),
        (panel_s + head_s) * 1e3,
        gb(layer_bytes + head_bytes, panel_s + head_s)
    );
    let step_bytes = layer_bytes + head_bytes;
    println!(
        "one step's products in order (panels, then the head, {} MB): {:.2} ms ({:.1} GB/s)",
        step_bytes >> 20,
        step_s * 1e3,
        gb(step_bytes, step_s),
    );
}
