//! `ppo-lens score` on the transformers fixtures, as a user runs it.

use std::process::{Command, Output};

use serde_json::Value;

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn ppo_lens(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ppo-lens"))
        .args(args)
        .output()
        .expect("run ppo-lens")
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn close(got: &Value, want: &Value, tol: f64) {
    let (got, want) = (got.as_array().unwrap(), want.as_array().unwrap());
    assert_eq!(got.len(), want.len());
    for (t, (g, w)) in got.iter().zip(want).enumerate() {
        match (g.as_f64(), w.as_f64()) {
            (Some(g), Some(w)) => {
                assert!((g - w).abs() < tol, "position {t}: {g} vs transformers {w}")
            }
            (None, None) => {}
            _ => panic!("position {t}: {g} vs {w}"),
        }
    }
}

/// Scores each fixture's text on `device` (the default when `None`) and compares with
/// transformers.
fn text_is_scored_like_transformers_on(device: Option<&str>) {
    for name in ["qwen2-tied", "qwen2-gqa-bf16"] {
        let expected: Value = serde_json::from_str(
            &std::fs::read_to_string(format!("{}/expected.json", fixture(name))).unwrap(),
        )
        .unwrap();
        let want = &expected["text"];
        let model = fixture(name);
        let mut args = vec![
            "score",
            "--model",
            &model,
            "--text",
            want["text"].as_str().unwrap(),
        ];
        args.extend(device.map(|d| ["--device", d]).into_iter().flatten());
        let out = ppo_lens(&args);
        if device == Some("wgpu") && !out.status.success() {
            panic!(
                "{name} on wgpu failed. Without a GPU, wgpu needs a Vulkan CPU device: install \
                 Debian's mesa-vulkan-drivers (scripts/test.sh does). {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let out = json(&out);
        assert_eq!(out["ids"], want["ids"]);
        assert_eq!(out["tokens"], want["tokens"]);
        assert!(out["logprobs"][0].is_null());
        // The model's own parity bound (tests/model.rs). Measured through this command: at most
        // 5.5e-7 on flex and 7.2e-7 on wgpu over lavapipe.
        close(&out["logprobs"], &want["logprobs"], 5e-6);
        close(&out["values"], &want["values"], 5e-6);
    }
}

#[test]
fn text_is_scored_like_transformers() {
    text_is_scored_like_transformers_on(None);
}

/// The same through burn's GPU kernels: wgpu, on the machine's GPU or (here) lavapipe's Vulkan
/// CPU device.
#[test]
fn text_is_scored_like_transformers_on_wgpu() {
    text_is_scored_like_transformers_on(Some("wgpu"));
}

#[test]
fn ids_are_scored_and_match_the_text_path() {
    let by_text = json(&ppo_lens(&[
        "score",
        "--model",
        &fixture("qwen2-tied"),
        "--text",
        "Tom has 3 apples",
    ]));
    let ids: Vec<String> = by_text["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.to_string())
        .collect();
    let by_ids = json(&ppo_lens(&[
        "score",
        "--model",
        &fixture("qwen2-tied"),
        "--ids",
        &ids.join(", "),
    ]));
    assert_eq!(by_text, by_ids);
    assert_eq!(by_ids["tokens"][0], "Tom");
}

fn fails_with(args: &[&str], message: &str) {
    let out = ppo_lens(args);
    assert_eq!(out.status.code(), Some(1), "{args:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(message), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bad_score_requests_are_clear_errors() {
    let model = fixture("qwen2-tied");
    fails_with(
        &["score", "--model", &model, "--ids", "1,x,3"],
        "--ids: `x` is not a token id",
    );
    fails_with(
        &["score", "--model", &model, "--ids", "1,500"],
        "token id 500 is outside the vocabulary (vocab_size 72)",
    );
    fails_with(
        &["score", "--model", &model, "--ids", "1", "--device", "tpu"],
        "--device tpu: not a device; natively one of cpu (or flex), wgpu, cuda",
    );
    fails_with(
        &["score", "--model", "/nonexistent/model", "--ids", "1"],
        "/nonexistent/model: not a directory",
    );
    let out = ppo_lens(&["score", "--model", &model]);
    assert_eq!(out.status.code(), Some(2), "clap requires --text or --ids");
}
