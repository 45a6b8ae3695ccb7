//! The model against Hugging Face transformers and against itself.
//!
//! The fixtures in tests/fixtures/ were made by scripts/make_fixtures.py with PyTorch and
//! transformers: tiny random Qwen2 checkpoints (one tied with the older config dialect; one
//! untied, grouped KV heads, bf16 weights, the newer dialect) with every bias and norm weight
//! moved off its init, and the logprobs and values transformers computes on fixed ids.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Int, Tensor};
use ppo_lens::compute::{block_on, read_f32};
use ppo_lens::model::{
    ForwardOutput, Precision, Qwen2Config, Qwen2Model, ValueHeadInit, init_random,
};
use ppo_lens::native::model_dir::{LoadedModel, load_dir, save_dir};
use ppo_lens::ppo::entropy::logsumexp;
use ppo_lens::rollout::generate::rows_tensor;
use serde_json::Value;

#[path = "common/temp.rs"]
mod temp;
use temp::TempDir;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn expected(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture(name).join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn load(name: &str, precision: Precision) -> LoadedModel {
    load_dir(
        &fixture(name),
        precision,
        ValueHeadInit::Zeros,
        0,
        &Device::flex(),
    )
    .unwrap()
}

fn rows_i64(v: &Value) -> Vec<Vec<i64>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_i64().unwrap())
                .collect()
        })
        .collect()
}

fn int_tensor(rows: &[Vec<i64>]) -> Tensor<2, Int> {
    rows_tensor(rows, &Device::flex())
}

fn read<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    block_on(read_f32(t)).unwrap()
}

/// log p(ids[t] | ids[<t]) for t >= 1, row-major `[B][T-1]`.
fn token_logprobs(out: &ForwardOutput, ids: &Tensor<2, Int>) -> Vec<f32> {
    let [_, t] = ids.dims();
    let logits = out.logits.clone().narrow(1, 0, t - 1);
    let next = ids.clone().narrow(1, 1, t - 1).unsqueeze_dim::<3>(2);
    read(logits.clone().gather(2, next) - logsumexp(logits))
}

/// Largest |rust - reference| over the entries the reference gives (nulls skipped).
fn max_diff(rust: &[f32], reference: &[Value]) -> f64 {
    assert_eq!(rust.len(), reference.len());
    rust.iter()
        .zip(reference)
        .filter_map(|(r, e)| e.as_f64().map(|e| (*r as f64 - e).abs()))
        .fold(0.0, f64::max)
}

fn flat(v: &Value) -> Vec<Value> {
    v.as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap().clone())
        .collect()
}

/// The reference's logprobs, row after row, less each row's first (null: no token before it).
fn reference_logprobs(rows: &Value) -> Vec<Value> {
    rows.as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap()[1..].to_vec())
        .collect()
}

fn check_parity(name: &str, tol: f64) {
    let model = load(name, Precision::F32).model;
    let exp = expected(name);

    // Unpadded batch: logprobs (skip the null at t = 0), values, last-position logits.
    let ids = int_tensor(&rows_i64(&exp["ids"]));
    let [b, t] = ids.dims();
    let out = model.forward(ids.clone(), Tensor::ones([b, t], &Device::flex()), false);
    let lp = token_logprobs(&out, &ids);
    let want: Vec<Value> = reference_logprobs(&exp["logprobs"]);
    let d_lp = max_diff(&lp, &want);
    let d_v = max_diff(&read(out.values.clone()), &flat(&exp["values"]));
    let last = read(out.logits.clone().narrow(1, t - 1, 1));
    let d_logits = max_diff(&last, &flat(&exp["last_logits"]));
    assert!(
        d_lp < tol && d_v < tol && d_logits < tol,
        "{name}: max |diff| logprobs {d_lp:e}, values {d_v:e}, logits {d_logits:e} (tol {tol:e})"
    );

    // Left-padded batch with different pad lengths: real positions match transformers.
    let pids = int_tensor(&rows_i64(&exp["padded"]["ids"]));
    let pmask = int_tensor(&rows_i64(&exp["padded"]["mask"]));
    let pout = model.forward(pids.clone(), pmask, false);
    let plp = token_logprobs(&pout, &pids);
    let pwant: Vec<Value> = reference_logprobs(&exp["padded"]["logprobs"]);
    let d_plp = max_diff(&plp, &pwant);
    let d_pv = max_diff(&read(pout.values), &flat(&exp["padded"]["values"]));
    assert!(
        d_plp < tol && d_pv < tol,
        "{name} padded: logprobs {d_plp:e}, values {d_pv:e}"
    );
    println!(
        "{name}: max |diff| vs transformers: logprobs {d_lp:.2e}, values {d_v:.2e}, logits {d_logits:.2e}, padded {d_plp:.2e}/{d_pv:.2e}"
    );
}

#[test]
fn tied_f32_checkpoint_matches_transformers() {
    // Measured here: at most 7.2e-7 (logprobs); the bound leaves a factor of 7 for other CPUs'
    // kernels (AVX-512 against AVX2 sum in another order).
    check_parity("qwen2-tied", 5e-6);
}

#[test]
fn untied_gqa_bf16_checkpoint_matches_transformers() {
    // bf16 weights computed in f32 on flex match as closely as f32 ones: measured 4.8e-7.
    check_parity("qwen2-gqa-bf16", 5e-6);
}

#[test]
fn both_config_dialects_are_read() {
    let legacy = load("qwen2-tied", Precision::F32).model.config;
    let newer = load("qwen2-gqa-bf16", Precision::F32).model.config;
    assert_eq!(
        legacy.dialect,
        ppo_lens::model::config::ConfigDialect::Legacy
    );
    assert_eq!(
        newer.dialect,
        ppo_lens::model::config::ConfigDialect::RopeParameters
    );
    assert!(legacy.tie_word_embeddings && !newer.tie_word_embeddings);
    assert_eq!(
        (newer.num_attention_heads, newer.num_key_value_heads),
        (4, 2)
    );
    assert_eq!(
        (legacy.dtype.as_str(), newer.dtype.as_str()),
        ("float32", "bfloat16")
    );
    assert_eq!(legacy.rope_theta, 10_000.0);
    assert_eq!(newer.rope_theta, 10_000.0);
}

#[test]
fn tokenizer_gives_the_same_ids_as_python() {
    let loaded = load("qwen2-tied", Precision::F32);
    let exp = &expected("qwen2-tied")["text"];
    let tok = loaded.tokenizer.unwrap();
    let ids = tok.encode(exp["text"].as_str().unwrap()).unwrap();
    let want: Vec<u32> = exp["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    assert_eq!(ids, want);
    assert_eq!(tok.token(ids[0]).as_deref(), Some("Tom"));
}

/// A random model with grouped KV heads for the self-consistency checks.
fn random_model() -> Qwen2Model {
    random_model_tied(false)
}

/// The same model, with its LM head tied to the embedding or its own.
fn random_model_tied(tied: bool) -> Qwen2Model {
    let config = Qwen2Config::new(40, 32, 48, 2, 4, 2, tied).unwrap();
    init_random(
        &config,
        11,
        0.3,
        ValueHeadInit::Normal { std: 0.5 },
        Precision::F32,
        &Device::flex(),
    )
    .unwrap()
}

#[test]
fn later_tokens_do_not_change_earlier_outputs() {
    let model = random_model();
    let a = vec![vec![3, 9, 1, 7, 22, 5, 18, 30]];
    let mut b = a.clone();
    for x in &mut b[0][5..] {
        *x = (*x + 13) % 40;
    }
    let mask = Tensor::ones([1, 8], &Device::flex());
    let oa = model.forward(int_tensor(&a), mask.clone(), false);
    let ob = model.forward(int_tensor(&b), mask, false);
    // Positions 0..=4 saw identical prefixes: exactly equal logits and values.
    assert_eq!(
        read(oa.logits.clone().narrow(1, 0, 5)),
        read(ob.logits.clone().narrow(1, 0, 5))
    );
    assert_eq!(
        read(oa.values.clone().narrow(1, 0, 5)),
        read(ob.values.clone().narrow(1, 0, 5))
    );
    // And position 5 onwards did change (the test can fail).
    assert_ne!(
        read(oa.logits.narrow(1, 5, 3)),
        read(ob.logits.narrow(1, 5, 3))
    );
}

#[test]
fn kv_cache_decoding_equals_the_full_pass() {
    let model = random_model();
    // Two rows, the second left-padded by 2 (pad id 0).
    let ids = vec![
        vec![3, 9, 1, 7, 22, 5, 18, 30, 2, 11],
        vec![0, 0, 4, 4, 8, 15, 16, 23, 42 % 40, 6],
    ];
    let mask = vec![vec![1; 10], vec![0, 0, 1, 1, 1, 1, 1, 1, 1, 1]];
    let full = model.forward(int_tensor(&ids), int_tensor(&mask), false);
    let full_logits = read(full.logits.clone());
    let full_values = read(full.values.clone());
    let (b, t, v, prefill) = (2, 10, 40, 4);

    let first: Vec<Vec<i64>> = ids.iter().map(|r| r[..prefill].to_vec()).collect();
    let first_mask: Vec<Vec<i64>> = mask.iter().map(|r| r[..prefill].to_vec()).collect();
    let (out, mut cache) = model.prefill(int_tensor(&first), int_tensor(&first_mask));
    let mut logits = vec![read(out.logits)];
    let mut values = vec![read(out.values)];
    for step in prefill..t {
        let next: Vec<Vec<i64>> = ids.iter().map(|r| vec![r[step]]).collect();
        let (out, c) = model.decode(int_tensor(&next), cache);
        cache = c;
        logits.push(read(out.logits));
        values.push(read(out.values));
    }
    assert_eq!(cache.len(), t);
    assert_eq!(
        logits[0].len(),
        b * v,
        "prefill: logits of the last position only"
    );
    let mut worst: f32 = 0.0;
    for row in 0..b {
        for pos in 0..t {
            if mask[row][pos] == 0 {
                continue;
            }
            // Prefill keeps every position's value but only the last position's logits.
            let (chunk, i, width) = if pos < prefill {
                (0, pos, prefill)
            } else {
                (pos - prefill + 1, 0, 1)
            };
            // Every chunk's logits are one position per row.
            if pos + 1 >= prefill {
                for k in 0..v {
                    let cached = logits[chunk][row * v + k];
                    worst = worst.max((cached - full_logits[(row * t + pos) * v + k]).abs());
                }
            }
            let cached_v = values[chunk][row * width + i];
            worst = worst.max((cached_v - full_values[row * t + pos]).abs());
        }
    }
    assert!(
        worst < 1e-5,
        "KV-cache decoding differs from the full pass by {worst:e}"
    );
}

/// The logits window of a PPO pass is exactly the slice of the full pass, tied head or not,
/// and the values are untouched.
#[test]
fn a_logits_window_is_the_slice_of_the_full_pass() {
    for tied in [false, true] {
        let model = random_model_tied(tied);
        let ids = vec![
            vec![3, 9, 1, 7, 22, 5, 18, 30],
            vec![0, 0, 4, 8, 15, 16, 23, 6],
        ];
        let mask = vec![vec![1; 8], vec![0, 0, 1, 1, 1, 1, 1, 1]];
        let full = model.forward(int_tensor(&ids), int_tensor(&mask), false);
        let window = model.forward_window(int_tensor(&ids), int_tensor(&mask), 3, 4);
        assert_eq!(window.logits.dims(), [2, 4, 40]);
        let expected = read(full.logits.narrow(1, 3, 4));
        let got = read(window.logits);
        let worst = expected
            .iter()
            .zip(&got)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-6, "tied {tied}: window differs by {worst:e}");
        assert_eq!(read(window.values), read(full.values), "tied {tied}");
    }
}

#[test]
fn left_padding_does_not_change_real_token_outputs() {
    let model = random_model();
    let row = vec![5, 17, 2, 33, 8, 1];
    let alone = model.forward(
        int_tensor(&[row.clone()]),
        Tensor::ones([1, 6], &Device::flex()),
        false,
    );
    let mut padded = vec![0, 0, 0];
    padded.extend(&row);
    let pmask = vec![vec![0, 0, 0, 1, 1, 1, 1, 1, 1]];
    let out = model.forward(int_tensor(&[padded]), int_tensor(&pmask), false);
    let a = read(alone.logits);
    let p = read(out.logits.narrow(1, 3, 6));
    let worst = a
        .iter()
        .zip(&p)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-5, "left padding moved real logits by {worst:e}");
    let va = read(alone.values);
    let vp = read(out.values.narrow(1, 3, 6));
    let worst_v = va
        .iter()
        .zip(&vp)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst_v < 1e-5,
        "left padding moved real values by {worst_v:e}"
    );
}

#[test]
fn attention_maps_are_causal_probabilities() {
    let model = random_model();
    let ids = vec![vec![0, 0, 4, 9, 1, 7]];
    let mask = vec![vec![0, 0, 1, 1, 1, 1]];
    let out = model.forward(int_tensor(&ids), int_tensor(&mask), true);
    let maps = out.attentions.expect("asked for attention maps");
    assert_eq!(maps.len(), 2);
    assert_eq!(maps[0].dims(), [1, 4, 6, 6]);
    for map in maps {
        let p = read(map);
        for head in 0..4 {
            for q in 2..6 {
                let row = &p[(head * 6 + q) * 6..(head * 6 + q + 1) * 6];
                let sum: f32 = row.iter().sum();
                assert!((sum - 1.0).abs() < 1e-5, "row sums to {sum}");
                for (k, &w) in row.iter().enumerate() {
                    if k > q || k < 2 {
                        assert_eq!(w, 0.0, "query {q} sees key {k} (future or padding)");
                    }
                }
            }
        }
    }
    assert!(
        model
            .forward(int_tensor(&ids), int_tensor(&mask), false)
            .attentions
            .is_none()
    );
}

fn param_bits(model: &Qwen2Model) -> Vec<Vec<u32>> {
    use burn::module::Module;
    let mut out = Vec::new();
    let record = model.clone();
    // Walk every float parameter through the module visitor.
    struct Collect<'a>(&'a mut Vec<Vec<u32>>);
    impl burn::module::ModuleVisitor for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
            self.0
                .push(read(param.val()).iter().map(|x| x.to_bits()).collect());
        }
    }
    record.visit(&mut Collect(&mut out));
    out
}

fn temp_dir(tag: &str) -> TempDir {
    TempDir::new(&format!("ppo-lens-test-{tag}"))
}

#[test]
fn save_then_load_is_bit_exact() {
    for name in ["qwen2-tied", "qwen2-gqa-bf16"] {
        let loaded = load(name, Precision::F32);
        let dir = temp_dir(name);
        save_dir(&loaded.model, loaded.tokenizer_json.as_deref(), &dir).unwrap();
        let again = load_dir(
            &dir,
            Precision::F32,
            ValueHeadInit::Normal { std: 1.0 },
            99,
            &Device::flex(),
        )
        .unwrap();
        assert!(again.has_value_head && again.tokenizer.is_some());
        assert_eq!(
            param_bits(&loaded.model),
            param_bits(&again.model),
            "{name}: parameters changed"
        );
        let st = safetensors::SafeTensors::deserialize(
            &std::fs::read(dir.join("model.safetensors")).unwrap(),
        )
        .unwrap()
        .names()
        .len();
        let has_head = std::fs::read(dir.join("model.safetensors")).map(|b| {
            safetensors::SafeTensors::deserialize(&b)
                .unwrap()
                .tensor("lm_head.weight")
                .is_ok()
        });
        assert_eq!(
            has_head.unwrap(),
            !loaded.model.config.tie_word_embeddings,
            "{name}: lm_head.weight only when untied"
        );
        assert!(st > 10);
        // Nothing is left beside it: the staging directory was renamed into place, and the
        // checkpoint a save replaced was removed.
        let stray = || -> Vec<String> {
            let name = dir.file_name().unwrap().to_string_lossy().to_string();
            std::fs::read_dir(dir.parent().unwrap())
                .unwrap()
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| {
                    n.contains(&format!("{name}.tmp-")) || n.contains(&format!("{name}.old-"))
                })
                .collect()
        };
        assert!(stray().is_empty(), "{:?}", stray());
        // Saving over an existing checkpoint replaces it whole.
        save_dir(&again.model, None, &dir).unwrap();
        assert!(!dir.join("tokenizer.json").exists());
        assert!(dir.join("model.safetensors").exists());
        assert!(stray().is_empty(), "{:?}", stray());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn bf16_compute_stays_close_to_f32() {
    // The path the 1.8B run takes on CUDA (weights and activations in bf16), here on flex.
    let exp = expected("qwen2-gqa-bf16");
    let ids = int_tensor(&rows_i64(&exp["ids"]));
    let mask = Tensor::ones(ids.dims(), &Device::flex());
    let f32_model = load("qwen2-gqa-bf16", Precision::F32).model;
    let bf16_model = load("qwen2-gqa-bf16", Precision::Bf16).model;
    assert_eq!(bf16_model.dtype(), burn::tensor::DType::BF16);
    let a = token_logprobs(&f32_model.forward(ids.clone(), mask.clone(), false), &ids);
    let b = token_logprobs(&bf16_model.forward(ids.clone(), mask, false), &ids);
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    println!("bf16 vs f32 compute: max |logprob diff| {worst:.3e}");
    // Measured here: 1.3e-2 (bf16 keeps 8 bits of mantissa); the bound is 3 times that.
    assert!(worst < 0.04, "bf16 logprobs differ from f32 by {worst}");
    assert!(
        worst > 0.0,
        "bf16 compute should round differently from f32"
    );
}

/// Loads `name` on an autodiff device, takes one AdamW step at lr 1e-6 on the mean logit, and
/// returns the fraction of q_proj weights of layer 0 that changed.
fn fraction_moved_by_small_step(name: &str, precision: Precision) -> f64 {
    use burn::optim::{AdamWConfig, GradientsParams};
    let device = Device::flex().autodiff();
    let model = load_dir(&fixture(name), precision, ValueHeadInit::Zeros, 0, &device)
        .unwrap()
        .model;
    let exp = expected(name);
    let ids = rows_i64(&exp["ids"]);
    let ids: Tensor<2, Int> = Tensor::from_data(
        burn::tensor::TensorData::new(ids.concat(), [ids.len(), ids[0].len()]),
        &device,
    );
    let mask = Tensor::ones(ids.dims(), &device);
    let before = model.layers[0].self_attn.q_proj.weight.val().inner();
    let loss = model.forward(ids, mask, false).logits.mean();
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let mut optim = AdamWConfig::new().with_weight_decay(0.0).init();
    let model = optim.step(1e-6, model, grads);
    let after = model.layers[0].self_attn.q_proj.weight.val().inner();
    let (a, b) = (
        block_on(read_f32(before)).unwrap(),
        block_on(read_f32(after)).unwrap(),
    );
    a.iter().zip(&b).filter(|(x, y)| x != y).count() as f64 / a.len() as f64
}

#[test]
fn mixed_precision_computes_in_bf16_and_keeps_small_updates() {
    let exp = expected("qwen2-gqa-bf16");
    let ids = int_tensor(&rows_i64(&exp["ids"]));
    let mask = Tensor::ones(ids.dims(), &Device::flex());
    let mixed = load("qwen2-gqa-bf16", Precision::MixedBf16).model;
    let bf16 = load("qwen2-gqa-bf16", Precision::Bf16).model;
    assert_eq!(mixed.dtype(), burn::tensor::DType::BF16);
    assert_eq!(mixed.param_dtype(), burn::tensor::DType::F32);
    // Weights that are bf16 values to begin with give the same numbers either way.
    let a = token_logprobs(&mixed.forward(ids.clone(), mask.clone(), false), &ids);
    let b = token_logprobs(&bf16.forward(ids.clone(), mask, false), &ids);
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-6, "mixed vs bf16 compute: {worst}");

    // An AdamW step at lr 1e-6 (configs/config.yaml's) moves f32 master weights, but rounds
    // away on most bf16 weights: why the trainer keeps the policy in MixedBf16.
    let mixed_moved = fraction_moved_by_small_step("qwen2-gqa-bf16", Precision::MixedBf16);
    let bf16_moved = fraction_moved_by_small_step("qwen2-gqa-bf16", Precision::Bf16);
    println!("moved by one step at lr 1e-6: mixed {mixed_moved:.3}, bf16 {bf16_moved:.3}");
    assert!(mixed_moved > 0.9, "{mixed_moved}");
    assert!(bf16_moved < 0.2, "{bf16_moved}");
}

fn copy_fixture(name: &str, tag: &str) -> TempDir {
    let dir = temp_dir(tag);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(fixture(name)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    dir
}

fn load_err(dir: &Path) -> String {
    match load_dir(
        dir,
        Precision::F32,
        ValueHeadInit::Zeros,
        0,
        &Device::flex(),
    ) {
        Ok(_) => panic!("{} loaded but should not", dir.display()),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn bad_model_directories_fail_with_clear_errors() {
    // Missing config.json.
    let dir = copy_fixture("qwen2-tied", "no-config");
    std::fs::remove_file(dir.join("config.json")).unwrap();
    let err = load_err(&dir);
    assert!(err.contains("config.json: cannot read"), "{err}");

    // Corrupt weights.
    std::fs::copy(
        fixture("qwen2-tied").join("config.json"),
        dir.join("config.json"),
    )
    .unwrap();
    std::fs::write(dir.join("model.safetensors"), b"not a safetensors file").unwrap();
    let err = load_err(&dir);
    assert!(
        err.contains("model.safetensors: not a readable safetensors file"),
        "{err}"
    );

    // A missing tensor, by name: rewrite the weights without one of them.
    let bytes = std::fs::read(fixture("qwen2-tied").join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let kept: Vec<(String, safetensors::tensor::TensorView<'_>)> = st
        .tensors()
        .into_iter()
        .filter(|(n, _)| n != "model.layers.1.self_attn.k_proj.bias")
        .collect();
    std::fs::write(
        dir.join("model.safetensors"),
        safetensors::serialize(kept, None).unwrap(),
    )
    .unwrap();
    let err = load_err(&dir);
    assert!(
        err.contains("tensor `model.layers.1.self_attn.k_proj.bias` is missing"),
        "{err}"
    );

    // A shape mismatch: the config says a wider MLP than the weights have.
    std::fs::copy(
        fixture("qwen2-tied").join("model.safetensors"),
        dir.join("model.safetensors"),
    )
    .unwrap();
    let config = std::fs::read_to_string(dir.join("config.json"))
        .unwrap()
        .replace("\"intermediate_size\": 48", "\"intermediate_size\": 64");
    std::fs::write(dir.join("config.json"), config).unwrap();
    let err = load_err(&dir);
    assert!(
        err.contains(
            "tensor `model.layers.0.mlp.gate_proj.weight` has shape [48, 32], expected [64, 32]"
        ),
        "{err}"
    );

    // Another architecture is refused by name.
    let config = std::fs::read_to_string(fixture("qwen2-tied").join("config.json"))
        .unwrap()
        .replace("Qwen2ForCausalLM", "LlamaForCausalLM");
    std::fs::write(dir.join("config.json"), config).unwrap();
    let err = load_err(&dir);
    assert!(
        err.contains("LlamaForCausalLM") && err.contains("not supported"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sharded_checkpoints_load_through_the_index() {
    let dir = copy_fixture("qwen2-gqa-bf16", "sharded");
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (first, second): (Vec<_>, Vec<_>) = st
        .tensors()
        .into_iter()
        .partition(|(n, _)| n.contains("layers.0") || n.contains("embed"));
    let mut map = serde_json::Map::new();
    for (file, part) in [
        ("model-00001-of-00002.safetensors", &first),
        ("model-00002-of-00002.safetensors", &second),
    ] {
        for (n, _) in part.iter() {
            map.insert(n.clone(), Value::from(file));
        }
        std::fs::write(
            dir.join(file),
            safetensors::serialize(part.clone(), None).unwrap(),
        )
        .unwrap();
    }
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    let index = serde_json::json!({ "metadata": {}, "weight_map": map });
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    let sharded = load_dir(
        &dir,
        Precision::F32,
        ValueHeadInit::Zeros,
        0,
        &Device::flex(),
    )
    .unwrap()
    .model;
    let single = load("qwen2-gqa-bf16", Precision::F32).model;
    assert_eq!(param_bits(&sharded), param_bits(&single));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Writes `fixture`'s checkpoint to a fresh directory with every f32 tensor of
/// model.safetensors replaced by `convert(values)`: (dtype written, its bytes).
fn rewritten(
    name: &str,
    tag: &str,
    convert: impl Fn(&[f32]) -> (safetensors::Dtype, Vec<u8>),
) -> TempDir {
    let src = fixture(name);
    let dir = temp_dir(tag);
    std::fs::create_dir_all(&dir).unwrap();
    for file in ["config.json", "tokenizer.json", "value_head.safetensors"] {
        std::fs::copy(src.join(file), dir.join(file)).unwrap();
    }
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let converted: Vec<(String, Vec<usize>, safetensors::Dtype, Vec<u8>)> = tensors
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            assert_eq!(view.dtype(), safetensors::Dtype::F32, "{name}");
            let values: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            let (dtype, bytes) = convert(&values);
            (name, view.shape().to_vec(), dtype, bytes)
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = converted
        .iter()
        .map(|(name, shape, dtype, bytes)| {
            let view = safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes).unwrap();
            (name.clone(), view)
        })
        .collect();
    std::fs::write(
        dir.join("model.safetensors"),
        safetensors::serialize(views, None).unwrap(),
    )
    .unwrap();
    dir
}

/// An f16 checkpoint (how many fine-tunes are published) goes through the loader: it computes
/// exactly what an f32 checkpoint holding the same f16-rounded values computes, and stays close
/// to transformers on the original weights.
#[test]
fn an_f16_checkpoint_loads_as_its_rounded_values() {
    use burn::tensor::f16;
    let half = rewritten("qwen2-tied", "f16", |v| {
        let bytes = v
            .iter()
            .flat_map(|&x| f16::from_f32(x).to_bits().to_le_bytes())
            .collect();
        (safetensors::Dtype::F16, bytes)
    });
    let rounded = rewritten("qwen2-tied", "f16-as-f32", |v| {
        let bytes = v
            .iter()
            .flat_map(|&x| f16::from_f32(x).to_f32().to_le_bytes())
            .collect();
        (safetensors::Dtype::F32, bytes)
    });
    let open = |dir: &Path| {
        load_dir(
            dir,
            Precision::F32,
            ValueHeadInit::Zeros,
            0,
            &Device::flex(),
        )
        .unwrap()
        .model
    };
    let (half, rounded) = (open(&half), open(&rounded));
    let exp = expected("qwen2-tied");
    let ids = int_tensor(&rows_i64(&exp["ids"]));
    let [b, t] = ids.dims();
    let mask = || Tensor::ones([b, t], &Device::flex());
    let lp_half = token_logprobs(&half.forward(ids.clone(), mask(), false), &ids);
    let lp_rounded = token_logprobs(&rounded.forward(ids.clone(), mask(), false), &ids);
    assert_eq!(
        lp_half, lp_rounded,
        "f16 weights must read as their exact values"
    );
    let want: Vec<Value> = reference_logprobs(&exp["logprobs"]);
    let d = max_diff(&lp_half, &want);
    println!("f16 weights vs transformers on f32 weights: max |logprob diff| {d:.2e}");
    // f16 keeps 11 bits of mantissa; with weights this small the rounding moves logprobs by
    // about 1e-3 at most. A loader that mistook the bytes (as bf16, or as raw f32) would be off
    // by whole units.
    assert!(d > 0.0 && d < 1e-2, "f16 logprobs differ by {d}");
}
