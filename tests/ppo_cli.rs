//! `ppo-lens gae` and `ppo-lens losses` as students run them: numbers checked against worked
//! values, and bad input refused with a message that names the key and position.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn ppo_lens(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ppo-lens"))
        .args(args)
        .output()
        .expect("run ppo-lens")
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn json_of(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

fn row(value: &Value, key: &str, b: usize) -> Vec<f64> {
    value[key][b]
        .as_array()
        .unwrap_or_else(|| panic!("{key}[{b}] missing in {value}"))
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn assert_close(got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= tol, "{got:?} vs {want:?}");
    }
}

/// Writes `json` to a fresh file and runs `args` on it; returns the output. The file is removed
/// afterwards.
fn run_on(json: &str, args: &[&str]) -> Output {
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path =
        std::env::temp_dir().join(format!("ppo-lens-cli-{}-{call}.json", std::process::id()));
    std::fs::write(&path, json).unwrap();
    let mut full: Vec<&str> = args.to_vec();
    let path_str = path.to_str().unwrap().to_string();
    full.push("--input");
    full.push(&path_str);
    let out = ppo_lens(&full);
    let _ = std::fs::remove_file(&path);
    out
}

fn refused(out: &Output, needles: &[&str]) {
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected exit 1, got {:?}",
        out.status
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    for needle in needles {
        assert!(err.contains(needle), "`{needle}` not in: {err}");
    }
}

#[test]
fn gae_reproduces_the_worked_example_with_padding() {
    let out = json_of(&ppo_lens(&[
        "gae",
        "--input",
        data("gae_worked_example.json").to_str().unwrap(),
    ]));
    // Sequence 0 is the tutorial's example: A = [0.690, -0.655, -1.0].
    assert_close(&row(&out, "advantages", 0), &[0.689975, -0.655, -1.0], 1e-5);
    assert_close(&row(&out, "deltas", 0), &[1.25, 0.2, -1.0], 1e-6);
    assert_close(&row(&out, "returns", 0), &[2.689975, 1.845, 2.0], 1e-5);
    // Sequence 1 ends after two tokens; the padded V = 9.9 must not leak in.
    // delta_1 = -1 - 0.4 = -1.4; delta_0 = 0.5 + 0.9 * 0.4 - 0.2 = 0.66;
    // A_0 = 0.66 + 0.855 * -1.4 = -0.537.
    assert_close(&row(&out, "advantages", 1), &[-0.537, -1.4, 0.0], 1e-5);
    assert!(out.get("whitened").is_none());
}

#[test]
fn gae_whiten_gives_zero_mean_unit_std_over_real_tokens() {
    let out = json_of(&ppo_lens(&[
        "gae",
        "--whiten",
        "--input",
        data("gae_worked_example.json").to_str().unwrap(),
    ]));
    let mut real = row(&out, "whitened", 0);
    let second = row(&out, "whitened", 1);
    assert_eq!(second[2], 0.0, "padding stays 0");
    real.extend(&second[..2]);
    let n = real.len() as f64;
    let mean = real.iter().sum::<f64>() / n;
    let var = real.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    assert!(
        mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-4,
        "{mean} {var}"
    );
}

/// `gae --quiz` driven through stdin as a student types: one right, one wrong, one skipped,
/// then the input ends.
#[test]
fn gae_quiz_reads_answers_from_stdin_and_tallies_them() {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_ppo-lens"))
        .args([
            "gae",
            "--quiz",
            "--input",
            data("gae_worked_example.json").to_str().unwrap(),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run ppo-lens");
    // Pass 2 asks A_0 (0.689975 by hand); pass 3 asks A_1 (-0.655), then A_0 again.
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"0.690\n-0.6\n\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("GAE quiz on sequence 0 (3 real tokens; gamma = 0.9, lambda = 0.95)"),
        "{text}"
    );
    assert!(
        text.contains("right: A_0 = 1.250 + 0.9 × 0.95 × 1 × (-0.655) = 0.690"),
        "{text}"
    );
    assert!(
        text.contains(
            "not quite: you wrote -0.6. A_1 is made of delta_1 (row t = 1, column delta_t)"
        ),
        "{text}"
    );
    assert!(
        text.contains("A_1 = 0.200 + 0.9 × 0.95 × 1 × (-1.000) = -0.655"),
        "{text}"
    );
    assert!(text.contains("skipped: A_0"), "{text}");
    assert!(text.contains("(no more answers)"), "{text}");
    assert!(
        text.trim_end().ends_with("1 of 2 right, 1 skipped."),
        "{text}"
    );
    // --quiz asks on its own: not with --table or --whiten.
    let both = ppo_lens(&["gae", "--quiz", "--table", "--input", "x.json"]);
    assert_eq!(both.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&both.stderr).contains("cannot be used with"));
}

#[test]
fn gae_table_shows_the_reverse_sweep_with_numbers() {
    let out = ppo_lens(&[
        "gae",
        "--table",
        "--input",
        data("gae_worked_example.json").to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("sequence 1: 2 real token(s) of 3"), "{text}");
    assert!(
        text.contains("A_1 = 0.200 + 0.9 × 0.95 × 1 × (-1.000) = -0.655"),
        "{text}"
    );
    assert!(
        text.contains("delta_2 = 2.000 + 0.9 × 0.000 × 0 − 3.000 = -1.000"),
        "{text}"
    );
    // Last token first: t = 2 is printed before t = 0 in sequence 0's table.
    let seq0 = &text[text.find("sequence 0").unwrap()..text.find("sequence 1").unwrap()];
    let rows: Vec<&str> = seq0.lines().skip(2).take(3).collect();
    assert!(
        rows[0].trim_start().starts_with('2') && rows[2].trim_start().starts_with('0'),
        "{seq0}"
    );
}

#[test]
fn losses_match_the_hand_worked_values() {
    let out = json_of(&ppo_lens(&[
        "losses",
        "--input",
        data("losses_example.json").to_str().unwrap(),
    ]));
    let get = |k: &str| out[k].as_f64().unwrap_or_else(|| panic!("{k} in {out}"));
    // Policy: token 0 clipped at -2 * 1.2 = -2.4, token 1 gives 1: mean -0.7.
    assert!((get("policy_loss") + 0.7).abs() < 1e-6);
    assert_eq!(get("policy_clip_frac"), 0.5);
    // approx_kl = 0.5 * mean(0.25, 0) = 0.0625.
    assert!((get("approx_kl") - 0.0625).abs() < 1e-7);
    // Value: token 0 max(0, 0.64) = 0.64 (clipped), token 1 max(0.81, 0.81): 0.5 * 1.45 / 2.
    assert!((get("value_loss") - 0.3625).abs() < 1e-6);
    assert_eq!(get("value_clip_frac"), 0.5);
    // Entropy: uniform over 3 gives ln 3; [1, 2, 3] gives 0.8323956; padding ignored.
    let entropy = (3f64.ln() + 0.832_395_6) / 2.0;
    assert!((get("entropy") - entropy).abs() < 1e-6);
    let total = -0.7 + 0.1 * 0.3625 - 0.01 * entropy;
    assert!((get("total_loss") - total).abs() < 1e-6);
}

#[test]
fn losses_without_logits_report_null_entropy() {
    let text = std::fs::read_to_string(data("losses_example.json")).unwrap();
    let mut value: Value = serde_json::from_str(&text).unwrap();
    value.as_object_mut().unwrap().remove("logits");
    let out = json_of(&run_on(&value.to_string(), &["losses"]));
    assert!(out["entropy"].is_null());
    let total = -0.7 + 0.1 * 0.3625;
    assert!((out["total_loss"].as_f64().unwrap() - total).abs() < 1e-6);
}

#[test]
fn bad_gae_input_is_refused_with_the_field_and_position() {
    let ok_values = r#""values": [[1, 2]], "gamma": 0.9, "lam": 0.95"#;
    refused(
        &run_on(
            &format!(r#"{{"rewards": [[1, 2], [3]], {ok_values}}}"#),
            &["gae"],
        ),
        &["`rewards[1]` has 1 entries but `rewards[0]` has 2"],
    );
    refused(
        &run_on(
            r#"{"rewards": [[1, 2]], "values": [[1, 2, 3]], "gamma": 0.9, "lam": 0.9}"#,
            &["gae"],
        ),
        &["`values` is [1][3] but `rewards` is [1][2]"],
    );
    refused(
        &run_on(
            &format!(r#"{{"rewards": [[1, "NaN"]], {ok_values}}}"#),
            &["gae"],
        ),
        &["`rewards[0][1]` is the string \"NaN\", expected a number"],
    );
    refused(
        &run_on(
            r#"{"rewards": [[1, 2]], "values": [[1, 2]], "gamma": 1.5, "lam": 0.9}"#,
            &["gae"],
        ),
        &["gamma = 1.5 is outside [0, 1]"],
    );
    refused(
        &run_on(
            r#"{"rewards": [[1, 2]], "values": [[1, 2]], "gamma": 0.9, "lam": -0.5}"#,
            &["gae"],
        ),
        &["lam = -0.5 is outside [0, 1]"],
    );
    refused(
        &run_on(
            r#"{"rewards": [[1, 2, 3]], "values": [[1, 2, 3]], "mask": [[1, 0, 1]], "gamma": 0.9, "lam": 0.9}"#,
            &["gae"],
        ),
        &["mask[0][2] is 1 after padding began at mask[0][1]"],
    );
    refused(
        &run_on(
            r#"{"rewards": [[1, 2]], "gamma": 0.9, "lam": 0.9}"#,
            &["gae"],
        ),
        &["missing key `values`"],
    );
    refused(
        &run_on(
            &format!(r#"{{"rewards": [[1, 2]], {ok_values}, "lamda": 0.9}}"#),
            &["gae"],
        ),
        &["unknown key `lamda`"],
    );
    refused(
        &run_on(
            r#"{"rewards": [[1, 2]], "values": [[1, 2]], "mask": [[1, 0]], "gamma": 0.9, "lam": 0.9}"#,
            &["gae", "--whiten"],
        ),
        &["`mask` has 1 real token(s); --whiten"],
    );
    refused(
        &run_on("{\"rewards\": [[1, 2]", &["gae"]),
        &["is not valid JSON", "EOF"],
    );
    refused(
        &ppo_lens(&["gae", "--input", "/no/such/file.json"]),
        &["cannot read input file /no/such/file.json"],
    );
}

#[test]
fn bad_losses_input_is_refused_with_the_field_and_position() {
    let text = std::fs::read_to_string(data("losses_example.json")).unwrap();
    let base: Value = serde_json::from_str(&text).unwrap();
    let with = |key: &str, value: Value| {
        let mut v = base.clone();
        v[key] = value;
        v.to_string()
    };
    refused(
        &run_on(&with("clip_ratio", serde_json::json!(-0.2)), &["losses"]),
        &["`clip_ratio` = -0.2 is outside (0, 1]"],
    );
    refused(
        &run_on(
            &with("returns", serde_json::json!([[1.0, 2.0]])),
            &["losses"],
        ),
        &["`returns` is [1][2] but `logprobs_old` is [1][3]"],
    );
    refused(
        &run_on(
            &with(
                "logits",
                serde_json::json!([[[1.0, 2.0], [1.0], [1.0, 2.0]]]),
            ),
            &["losses"],
        ),
        &["`logits[0][1]` has 1 logits, expected 2"],
    );
    refused(
        &run_on(&with("mask", serde_json::json!([[0, 0, 0]])), &["losses"]),
        &["`mask` has 0 real token(s)"],
    );
    let mut missing = base.clone();
    missing.as_object_mut().unwrap().remove("values_new");
    refused(
        &run_on(&missing.to_string(), &["losses"]),
        &["missing key `values_new`"],
    );
}
