//! `ppo-lens train` as a user runs it: on the debug config the reward rises; the output directory
//! holds what the docs say; resume is bit-exact; Ctrl-C saves; bad input is refused by name.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

use common::temp::TempDir;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const DEBUG: &str = "configs/config_debug.yaml";

/// A fresh output directory for a run, removed when the test is done with it.
fn out_dir(name: &str) -> TempDir {
    TempDir::new(&format!("ppo-lens-train-{name}"))
}

fn ppo_lens(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ppo-lens"));
    cmd.args(args).current_dir(ROOT);
    cmd
}

fn train(out: &Path, extra: &[&str]) -> Output {
    let out_arg = format!("training.output_dir={}", out.display());
    let mut args = vec!["train", "--config", DEBUG, &out_arg];
    args.extend_from_slice(extra);
    ppo_lens(&args).output().expect("run ppo-lens train")
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "status {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn metrics(dir: &Path) -> Vec<serde_json::Map<String, Value>> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| match serde_json::from_str(l).unwrap() {
            Value::Object(row) => row,
            other => panic!("not a row: {other}"),
        })
        .collect()
}

/// What each step's update reports in metrics.jsonl.
const UPDATE_METRICS: [&str; 9] = [
    "loss/policy",
    "loss/value",
    "loss/entropy",
    "loss/total",
    "params/approx_kl",
    "params/policy_clip_frac",
    "params/value_clip_frac",
    "params/grad_norm",
    "rollout/kl_mean",
];

/// GRPO's rows: its losses (the KL as a loss term, no critic), clip fraction, grad norm, the
/// groups' reward spread and the KL to the reference.
const GRPO_UPDATE_METRICS: [&str; 9] = [
    "loss/policy",
    "loss/kl",
    "loss/entropy",
    "loss/total",
    "params/approx_kl",
    "params/policy_clip_frac",
    "params/grad_norm",
    "grpo/reward_std",
    "rollout/kl_mean",
];

fn mean(rows: &[serde_json::Map<String, Value>], key: &str) -> f64 {
    rows.iter().map(|r| r[key].as_f64().unwrap()).sum::<f64>() / rows.len() as f64
}

fn read(path: PathBuf) -> Vec<u8> {
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The criterion with fewer steps: the last fifth's reward beats the first fifth's.
#[test]
fn debug_config_raises_the_reward_and_writes_every_output() {
    let out = out_dir("debug");
    let run = train(
        &out,
        &["training.total_ppo_steps=20", "training.save_every=10"],
    );
    ok(&run);

    let rows = metrics(&out);
    assert_eq!(rows.len(), 20);
    for name in ["step", "rollout/reward_mean"]
        .into_iter()
        .chain(UPDATE_METRICS)
    {
        assert!(rows.iter().all(|r| r[name].is_number()), "no {name}");
    }
    let (first, last) = (
        mean(&rows[..4], "rollout/reward_mean"),
        mean(&rows[16..], "rollout/reward_mean"),
    );
    assert!(
        last > first + 0.1,
        "reward mean: first fifth {first:.3}, last fifth {last:.3}"
    );

    // The effective config reads back as a config, with the override applied.
    let effective = std::fs::read_to_string(out.join("effective_config.yaml")).unwrap();
    assert!(effective.contains("total_ppo_steps: 20"), "{effective}");
    let again = out_dir("debug-effective");
    std::fs::create_dir_all(&again).unwrap();
    let check = ppo_lens(&[
        "train",
        "--config",
        out.join("effective_config.yaml").to_str().unwrap(),
        "training.total_ppo_steps=1",
        "rollout.batch_size=4",
        "ppo.mini_batch_size=4",
        &format!("training.output_dir={}", again.display()),
    ])
    .output()
    .unwrap();
    ok(&check);

    for file in ["plots.png", "plots.svg"] {
        assert!(out.join(file).metadata().unwrap().len() > 1000, "{file}");
    }
    for dir in ["step_10", "final"] {
        for file in [
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "value_head.safetensors",
            "optimizer.burnpack",
            "trainer_state.json",
        ] {
            assert!(out.join(dir).join(file).exists(), "{dir}/{file}");
        }
    }
    let state: Value =
        serde_json::from_slice(&read(out.join("step_10/trainer_state.json"))).unwrap();
    assert_eq!(state["step"], 10);
    // No staging directory is left behind.
    for entry in std::fs::read_dir(&out).unwrap() {
        let name = entry.unwrap().file_name();
        assert!(
            !name.to_string_lossy().starts_with('.'),
            "{name:?} left in {}",
            out.display()
        );
    }

    // The final directory is a model `ppo-lens score` loads, with the trained value head.
    let score = ppo_lens(&[
        "score",
        "--model",
        out.join("final").to_str().unwrap(),
        "--text",
        "Tom has 3 apples.",
    ])
    .output()
    .unwrap();
    ok(&score);
    let scored: Value = serde_json::from_slice(&score.stdout).unwrap();
    let values = scored["values"].as_array().unwrap();
    assert!(
        values.iter().any(|v| v.as_f64().unwrap() != 0.0),
        "{scored}"
    );
    // The run-health findings of the recipe's first 20 steps: none, its critic included (the
    // value head's bias at its own learning rate follows the returns; at the policy's,
    // value-loss-flat fired at step 10).
    let found = findings(&out);
    assert!(
        found.is_empty(),
        "{found:?}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    // `ppo-lens report` on this directory: the steps, the metrics table, the findings, the files.
    let report = ppo_lens(&["report", out.to_str().unwrap()])
        .output()
        .unwrap();
    ok(&report);
    let text = String::from_utf8(report.stdout).unwrap();
    assert!(
        text.contains("20 steps recorded, the last step 20 of 20."),
        "{text}"
    );
    let reward = text
        .lines()
        .find(|l| l.starts_with("rollout/reward_mean"))
        .unwrap_or_else(|| panic!("{text}"));
    let cells: Vec<f64> = reward
        .split_whitespace()
        .skip(1)
        .map(|c| c.parse().unwrap())
        .collect();
    let want = |i: usize| rows[i]["rollout/reward_mean"].as_f64().unwrap();
    assert_eq!(cells.len(), 3, "{reward}");
    for (cell, i) in cells.iter().zip([0, 10, 19]) {
        assert!((cell - want(i)).abs() < 1e-4, "{reward}: step {}", i + 1);
    }
    assert!(
        text.contains("Findings (findings.jsonl):\n  none"),
        "{text}"
    );
    assert!(
        text.contains("plots.png") && text.contains("Checkpoints: step_10, final"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&out);
    let _ = std::fs::remove_dir_all(&again);
}

/// The `finding` of every line of findings.jsonl in `dir`.
fn findings(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("findings.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let row: Value = serde_json::from_str(l).unwrap();
            row["finding"].as_str().unwrap().to_string()
        })
        .collect()
}

/// Thirty times the debug recipe's learning rate: the trainer says what the health checks find,
/// once each, and writes it to findings.jsonl; `ppo-lens report` lists the same, and replays
/// the checks itself for a run without the file.
#[test]
fn a_thirty_times_learning_rate_is_found_and_reported() {
    let out = out_dir("health");
    let run = train(
        &out,
        &[
            "ppo.learning_rate=9e-4",
            "rollout.batch_size=8",
            "ppo.mini_batch_size=4",
            "rollout.max_new_tokens=16",
            "training.total_ppo_steps=14",
            "training.save_every=100",
        ],
    );
    ok(&run);
    let stderr = String::from_utf8_lossy(&run.stderr);
    let found = findings(&out);
    // Every update moves the policy by 0.15 to 0.8 nats per token (approx KL).
    assert!(
        found.contains(&"approx-kl-high".to_string()),
        "{found:?}\n{stderr}"
    );
    for key in &found {
        assert_eq!(
            stderr.matches(&format!("health: {key} (")).count(),
            1,
            "said once: {key}\n{stderr}"
        );
        assert_eq!(found.iter().filter(|k| *k == key).count(), 1, "{found:?}");
    }
    let report = |dir: &Path| {
        let r = ppo_lens(&["report", dir.to_str().unwrap()])
            .output()
            .unwrap();
        ok(&r);
        String::from_utf8(r.stdout).unwrap()
    };
    let text = report(&out);
    let listed = |text: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| l.strip_prefix("  step "))
            .map(|l| l.split(": ").nth(1).unwrap().to_string())
            .collect()
    };
    assert_eq!(listed(&text), found, "{text}");
    // Without findings.jsonl the report replays the checks over metrics.jsonl: the same findings.
    std::fs::remove_file(out.join("findings.jsonl")).unwrap();
    let replayed = report(&out);
    assert!(
        replayed.contains("the checks replayed over metrics.jsonl"),
        "{replayed}"
    );
    assert_eq!(listed(&replayed), found, "{replayed}");
    // An effective config that cannot be read is said, not silently dropped.
    std::fs::write(out.join("effective_config.yaml"), "ppo: [").unwrap();
    let noted = report(&out);
    assert!(
        noted.contains("effective_config.yaml could not be read"),
        "{noted}"
    );
    // A directory that is not a run's is refused by name.
    let bad = ppo_lens(&["report", "configs"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("configs/metrics.jsonl: cannot read"), "{err}");
    let _ = std::fs::remove_dir_all(&out);
}

const SMALL: [&str; 5] = [
    "rollout.batch_size=8",
    "ppo.mini_batch_size=4",
    "rollout.max_new_tokens=16",
    "training.total_ppo_steps=6",
    "training.save_every=3",
];

/// Six steps in one go, or three and then three more from step_3: the same bytes, with AdamW's
/// f32 moments and with the 8-bit ones.
#[test]
fn resume_continues_bit_exactly() {
    resume_case("ppo.use_8bit_adam=false");
    resume_case("ppo.use_8bit_adam=true");
}

fn resume_case(optimizer: &str) {
    let tag = optimizer.replace(['.', '='], "-");
    let small = [&SMALL[..], &[optimizer]].concat();
    let straight = out_dir(&format!("straight-{tag}"));
    ok(&train(&straight, &small));
    let resumed = out_dir(&format!("resumed-{tag}"));
    let mut first_half = small.clone();
    first_half[3] = "training.total_ppo_steps=3";
    ok(&train(&resumed, &first_half));
    let step3 = resumed.join("step_3_copy");
    // Resume from a copy of the final directory of a 3-step run: it holds the same state.
    std::fs::create_dir_all(&step3).unwrap();
    for entry in std::fs::read_dir(resumed.join("final")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), step3.join(entry.file_name())).unwrap();
    }
    ok(&train(
        &resumed,
        &[&small[..], &["--resume", step3.to_str().unwrap()]].concat(),
    ));
    // Resuming from step 3 with `extra` settings fails, saying `want`.
    let out_key = format!("training.output_dir={}", resumed.display());
    let refused = |extra: &[&str], want: &str| {
        let head = ["train", "--config", DEBUG, &out_key];
        let tail = ["--resume", step3.to_str().unwrap()];
        fails_with(&[&head[..], extra, &tail[..]].concat(), want);
    };
    // The other optimizer cannot take this state over.
    let other = if optimizer.ends_with("true") {
        "ppo.use_8bit_adam=false"
    } else {
        "ppo.use_8bit_adam=true"
    };
    refused(&[other], "key `ppo.use_8bit_adam`");
    // So is a fixed KL coefficient other than the one it was trained with.
    refused(
        &[optimizer, "ppo.kl_coeff=0.2"],
        "key `ppo.kl_coeff` is 0.2 but the checkpoint",
    );
    // So is a checkpoint of another model than model.path, the frozen reference: here its
    // config.json's rms_norm_eps differs.
    let other = resumed.join("step_3_other");
    std::fs::create_dir_all(&other).unwrap();
    for entry in std::fs::read_dir(&step3).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), other.join(entry.file_name())).unwrap();
    }
    let mut config: Value = serde_json::from_slice(&read(other.join("config.json"))).unwrap();
    config["rms_norm_eps"] = 1e-5.into();
    std::fs::write(other.join("config.json"), config.to_string()).unwrap();
    fails_with(
        &[
            "train",
            "--config",
            DEBUG,
            &out_key,
            optimizer,
            "--resume",
            other.to_str().unwrap(),
        ],
        "its config.json has rms_norm_eps 0.00001 but model.path www/models/tiny (the frozen \
         reference) has 0.000001",
    );

    // A checkpoint of one run resumed into another run's directory would cut that run's
    // metrics.jsonl to its step: refused, and the other run keeps its rows.
    let straight_key = format!("training.output_dir={}", straight.display());
    fails_with(
        &[
            "train",
            "--config",
            DEBUG,
            &straight_key,
            optimizer,
            "--resume",
            step3.to_str().unwrap(),
        ],
        &format!(
            "the checkpoint lies outside training.output_dir {}, which holds another run \
             (metrics.jsonl, final/, step_3/)",
            straight.display()
        ),
    );

    // The weights after steps 4-6 depend on AdamW's moments from steps 1-3, so equal weights
    // show the optimizer state came back too. (optimizer.burnpack itself lists parameters in
    // hash-map order, so its bytes differ from run to run.)
    for file in [
        "model.safetensors",
        "value_head.safetensors",
        "trainer_state.json",
    ] {
        assert!(
            read(straight.join("final").join(file)) == read(resumed.join("final").join(file)),
            "final/{file} differs after resume ({optimizer})"
        );
    }
    assert!(
        read(straight.join("step_3/model.safetensors")) == read(step3.join("model.safetensors"))
    );
    let (a, b) = (metrics(&straight), metrics(&resumed));
    assert_eq!((a.len(), b.len()), (6, 6), "{optimizer}");
    for (ra, rb) in a.iter().zip(&b) {
        for (key, value) in ra {
            if !key.starts_with("time/") {
                assert_eq!(value, &rb[key], "step {}: {key}", ra["step"]);
            }
        }
    }

    // A checkpoint without its optimizer state is refused, naming the file.
    std::fs::remove_file(step3.join("optimizer.burnpack")).unwrap();
    refused(&[optimizer], "optimizer.burnpack: cannot read");
    let _ = std::fs::remove_dir_all(&straight);
    let _ = std::fs::remove_dir_all(&resumed);
}

/// SIGINT during training: the running step finishes, step_N is saved, the exit status is 130.
#[test]
fn ctrl_c_saves_a_checkpoint_and_exits() {
    let out = out_dir("ctrl-c");
    let out_arg = format!("training.output_dir={}", out.display());
    let child = ppo_lens(&[
        "train",
        "--config",
        DEBUG,
        &out_arg,
        "training.total_ppo_steps=1000",
        "training.save_every=0",
        "rollout.batch_size=8",
        "ppo.mini_batch_size=4",
    ])
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let started = Instant::now();
    // A hang guard, not a speed check (`ppo-lens bench` measures speed).
    let limit = common::hang_guard(Duration::from_secs(120));
    while !std::fs::read_to_string(out.join("metrics.jsonl")).is_ok_and(|t| t.lines().count() >= 2)
    {
        assert!(
            started.elapsed() < limit,
            "no step finished within the hang guard ({limit:?})"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    let rows = metrics(&out);
    let step = rows.len();
    assert!(
        stderr.contains(&format!("interrupted after step {step}")),
        "{stderr}"
    );
    let state: Value =
        serde_json::from_slice(&read(out.join(format!("step_{step}/trainer_state.json")))).unwrap();
    assert_eq!(state["step"], step);
    assert!(!out.join("final").exists());
    let _ = std::fs::remove_dir_all(&out);
}

fn fails_with(args: &[&str], needle: &str) {
    let out = ppo_lens(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(needle), "expected {needle:?} in: {stderr}");
}

#[test]
fn bad_input_is_refused_by_name() {
    let out = out_dir("bad");
    let o = format!("training.output_dir={}", out.display());
    let base = ["train", "--config", DEBUG, &o];
    fails_with(
        &[&base[..], &["ppo.clip_ratio=-0.1"]].concat(),
        "ppo.clip_ratio",
    );
    fails_with(&[&base[..], &["ppo.gamma=1.5"]].concat(), "ppo.gamma");
    fails_with(
        &[&base[..], &["ppo.mini_batch_size=64"]].concat(),
        "ppo.mini_batch_size",
    );
    fails_with(&[&base[..], &["ppo.epoch=2"]].concat(), "ppo.epoch");
    fails_with(&[&base[..], &["ppo.epochs=two"]].concat(), "ppo.epochs");
    fails_with(
        &[&base[..], &["data.num_samples=4", "ppo.mini_batch_size=4"]].concat(),
        "rollout.batch_size",
    );
    fails_with(
        &[&base[..], &["model.path=/nonexistent/model"]].concat(),
        "model.path",
    );
    fails_with(
        &[
            &base[..],
            &["data.source=gsm8k", "data.path=/nonexistent/train.jsonl"],
        ]
        .concat(),
        "data.path: /nonexistent/train.jsonl",
    );
    fails_with(
        &[&base[..], &["--resume", ROOT]].concat(),
        "trainer_state.json",
    );
    // A device this build lacks is named by the config key that asked for it.
    if !cfg!(feature = "cuda") {
        fails_with(
            &[&base[..], &["training.device=cuda"]].concat(),
            "key `training.device` is cuda: this build has no CUDA backend",
        );
    }
    // Infinite numbers are refused by the override that set them, before any model loads.
    fails_with(
        &[&base[..], &["ppo.learning_rate=.inf"]].concat(),
        "override `ppo.learning_rate=.inf`: key `ppo.learning_rate` must be a finite number",
    );

    // A tokenizer.json whose ids pass config.json's vocab_size (from another model): refused,
    // naming the directory, before a token indexes past the embedding table.
    let model = out_dir("bad-vocab");
    std::fs::create_dir_all(&*model).unwrap();
    for file in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(
            Path::new(ROOT).join("www/models/tiny").join(file),
            model.join(file),
        )
        .unwrap();
    }
    let mut tokenizer: Value =
        serde_json::from_slice(&std::fs::read(model.join("tokenizer.json")).unwrap()).unwrap();
    let vocab = tokenizer["model"]["vocab"].as_object().unwrap().len();
    tokenizer["model"]["vocab"]["<|im_end|>"] = vocab.into();
    for added in tokenizer["added_tokens"].as_array_mut().unwrap() {
        if added["content"] == "<|im_end|>" {
            added["id"] = vocab.into();
        }
    }
    std::fs::write(model.join("tokenizer.json"), tokenizer.to_string()).unwrap();
    fails_with(
        &[&base[..], &[&format!("model.path={}", model.display())[..]]].concat(),
        &format!(
            "{}: tokenizer.json gives its end token the id {vocab}, outside config.json's \
             vocab_size {vocab}",
            model.display()
        ),
    );
    // An end id past vocab_size that config.json itself gives is blamed on config.json, not on
    // tokenizer.json.
    std::fs::copy(
        Path::new(ROOT).join("www/models/tiny/tokenizer.json"),
        model.join("tokenizer.json"),
    )
    .unwrap();
    let mut config: Value =
        serde_json::from_slice(&std::fs::read(model.join("config.json")).unwrap()).unwrap();
    let size = config["vocab_size"].as_u64().unwrap();
    config["eos_token_id"] = (size + 3).into();
    std::fs::write(model.join("config.json"), config.to_string()).unwrap();
    fails_with(
        &[&base[..], &[&format!("model.path={}", model.display())[..]]].concat(),
        &format!(
            "{}: key `eos_token_id` must be a token id below vocab_size {size}",
            model.join("config.json").display()
        ),
    );

    // None of the refused runs above wrote a run's files: the directory holds no run yet.
    assert!(!out.join("metrics.jsonl").exists() && !out.join("effective_config.yaml").exists());
    // An output directory that holds an earlier run is not replaced without --overwrite.
    let earlier = out.join("step_20");
    std::fs::create_dir_all(&earlier).unwrap();
    std::fs::write(earlier.join("trainer_state.json"), "{}").unwrap();
    std::fs::write(out.join("metrics.jsonl"), "{\"step\": 1}\n").unwrap();
    let small = [
        "training.total_ppo_steps=1",
        "rollout.batch_size=4",
        "ppo.mini_batch_size=4",
        "rollout.max_new_tokens=8",
    ];
    fails_with(
        &[&base[..], &small[..]].concat(),
        &format!(
            "key `training.output_dir`: {} already holds a run (metrics.jsonl, step_20/)",
            out.display()
        ),
    );
    assert_eq!(
        std::fs::read_to_string(out.join("metrics.jsonl")).unwrap(),
        "{\"step\": 1}\n"
    );
    // --overwrite never removes the model a run starts from...
    let model_arg = format!("model.path={}", earlier.display());
    fails_with(
        &[&base[..], &small[..], &[&model_arg[..], "--overwrite"]].concat(),
        &format!(
            "key `model.path`: {} lies in {}, which --overwrite would remove",
            earlier.display(),
            earlier.display()
        ),
    );
    assert!(earlier.join("trainer_state.json").is_file());
    // ...nor a directory this trainer did not write (another trainer's checkpoint-5).
    let foreign = out.join("checkpoint-5");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("trainer_state.json"), "{}").unwrap();
    // With --overwrite the new run replaces it: the old checkpoint is gone, the rows are new.
    ok(
        &ppo_lens(&[&base[..], &small[..], &["--overwrite"]].concat())
            .output()
            .unwrap(),
    );
    assert!(!earlier.exists());
    assert!(foreign.join("trainer_state.json").is_file());
    let rows = metrics(&out);
    assert_eq!(rows.len(), 1);
    assert!(rows[0]["loss/policy"].is_number(), "{:?}", rows[0]);
    assert!(out.join("final").join("trainer_state.json").is_file());
    let _ = std::fs::remove_dir_all(&out);
}

/// GRPO on the same loop: configs/config_debug_grpo.yaml raises the reward too, and its rows
/// carry GRPO's metrics and none of the critic's.
#[test]
fn grpo_debug_config_raises_the_reward() {
    let out = out_dir("grpo");
    let run = ppo_lens(&[
        "train",
        "--config",
        "configs/config_debug_grpo.yaml",
        "training.total_ppo_steps=20",
        "training.save_every=0",
        &format!("training.output_dir={}", out.display()),
    ])
    .output()
    .unwrap();
    ok(&run);
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("ppo-lens train: GRPO"),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let rows = metrics(&out);
    assert_eq!(rows.len(), 20);
    for name in GRPO_UPDATE_METRICS
        .into_iter()
        .chain(["rollout/reward_mean", "grpo/zero_std_frac"])
    {
        assert!(rows.iter().all(|r| r[name].is_number()), "no {name}");
    }
    for name in ["loss/value", "params/value_clip_frac", "params/kl_coeff"] {
        assert!(
            rows.iter().all(|r| !r.contains_key(name)),
            "{name} in a GRPO row"
        );
    }
    // 8 groups per step: the share of groups with equal rewards is a multiple of 1/8.
    for r in &rows {
        let z = r["grpo/zero_std_frac"].as_f64().unwrap() * 8.0;
        assert!(
            (z - z.round()).abs() < 1e-9 && (0.0..=8.0).contains(&z),
            "{z}"
        );
    }
    let (first, last) = (
        mean(&rows[..4], "rollout/reward_mean"),
        mean(&rows[16..], "rollout/reward_mean"),
    );
    assert!(
        last > first + 0.1,
        "GRPO reward mean: first fifth {first:.3}, last fifth {last:.3}"
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn bad_grpo_keys_are_refused_by_name() {
    let out = out_dir("bad-grpo");
    let o = format!("training.output_dir={}", out.display());
    let base = ["train", "--config", "configs/config_debug_grpo.yaml", &o];
    fails_with(
        &[&base[..], &["grpo.group_size=3"]].concat(),
        "grpo.group_size",
    );
    fails_with(
        &[&base[..], &["grpo.group_size=1"]].concat(),
        "grpo.group_size",
    );
    fails_with(
        &[&base[..], &["grpo.scale_rewards=batch"]].concat(),
        "grpo.scale_rewards",
    );
    fails_with(
        &[&base[..], &["grpo.loss_agg_mode=grpo"]].concat(),
        "grpo.loss_agg_mode",
    );
    fails_with(&[&base[..], &["grpo.beta=-1"]].concat(), "grpo.beta");
    fails_with(&[&base[..], &["algorithm=dpo"]].concat(), "algorithm");
    let _ = std::fs::remove_dir_all(&out);
}

/// The rest of the family on the same loop: each member's debug config raises the reward over
/// its 60 steps (the last fifth's mean beats the first fifth's by 0.1), says which member it
/// ran, and writes its own rows (DAPO: the share of groups its dynamic sampling kept).
fn members_debug_config_raises_the_reward(key: &str, name: &str) {
    let out = out_dir(key);
    let config = format!("configs/config_debug_{key}.yaml");
    let run = ppo_lens(&[
        "train",
        "--config",
        &config,
        "training.save_every=0",
        &format!("training.output_dir={}", out.display()),
    ])
    .output()
    .unwrap();
    ok(&run);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains(&format!("ppo-lens train: {name} ")),
        "{key}: {stderr}"
    );
    let rows = metrics(&out);
    assert_eq!(rows.len(), 60, "{key}");
    for r in &rows {
        assert!(!r.contains_key("loss/value"), "{key}: a critic's loss");
        assert_eq!(
            r.contains_key("dapo/kept_groups_frac"),
            key == "dapo",
            "{key}"
        );
        assert_eq!(
            r.contains_key("grpo/reward_std"),
            key != "reinforce",
            "{key}"
        );
    }
    if key == "dapo" {
        // Groups with equal rewards leave the update: some step kept fewer than all.
        assert!(
            rows.iter()
                .any(|r| r["dapo/kept_groups_frac"].as_f64().unwrap() < 1.0),
            "dapo kept every group on every step"
        );
    }
    let (first, last) = (
        mean(&rows[..12], "rollout/reward_mean"),
        mean(&rows[48..], "rollout/reward_mean"),
    );
    assert!(
        last > first + 0.1,
        "{name} reward mean: first fifth {first:.3}, last fifth {last:.3}"
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn dr_grpo_debug_config_raises_the_reward() {
    members_debug_config_raises_the_reward("dr_grpo", "Dr. GRPO");
}

#[test]
fn dapo_debug_config_raises_the_reward() {
    members_debug_config_raises_the_reward("dapo", "DAPO");
}

#[test]
fn rloo_debug_config_raises_the_reward() {
    members_debug_config_raises_the_reward("rloo", "RLOO");
}

#[test]
fn reinforce_debug_config_raises_the_reward() {
    members_debug_config_raises_the_reward("reinforce", "REINFORCE");
}

/// Each member's own keys are checked by name.
#[test]
fn bad_member_keys_are_refused_by_name() {
    let out = out_dir("bad-members");
    let o = format!("training.output_dir={}", out.display());
    for (config, key) in [
        ("dapo", "dapo.clip_ratio_low=1.0"),
        ("dapo", "dapo.clip_ratio_high=-0.1"),
        ("dapo", "dapo.group_size=3"),
        ("rloo", "rloo.group_size=1"),
        ("rloo", "rloo.beta=-1"),
        ("dr_grpo", "dr_grpo.beta=-0.5"),
        ("reinforce", "reinforce.beta=-1"),
        ("reinforce", "ppo.epochs=2"),
    ] {
        let file = format!("configs/config_debug_{config}.yaml");
        let name = key.split('=').next().unwrap();
        fails_with(&["train", "--config", &file, &o, key], name);
    }
    fails_with(
        &["train", "--config", DEBUG, &o, "algorithm=grpo2"],
        "algorithm",
    );
    let _ = std::fs::remove_dir_all(&out);
}

/// With `ppo.adaptive_kl`, the coefficient each step used follows the controller: after a step
/// whose KL is above the target it rises, by at most the clipped rate.
#[test]
fn adaptive_kl_moves_the_coefficient() {
    let out = out_dir("adaptive");
    ok(&train(
        &out,
        &[
            "rollout.batch_size=8",
            "ppo.mini_batch_size=4",
            "rollout.max_new_tokens=16",
            "training.total_ppo_steps=4",
            "training.save_every=0",
            "ppo.learning_rate=3e-4",
            "ppo.kl_coeff=0.1",
            "ppo.adaptive_kl={target: 0.001, horizon: 100}",
        ],
    ));
    let rows = metrics(&out);
    let coeff: Vec<f64> = rows
        .iter()
        .map(|r| r["params/kl_coeff"].as_f64().unwrap())
        .collect();
    assert!((coeff[0] - 0.1).abs() < 1e-7, "{coeff:?}");
    for (k, pair) in coeff.windows(2).enumerate() {
        let kl = rows[k]["rollout/kl_mean"].as_f64().unwrap();
        let error = (kl / 0.001 - 1.0).clamp(-0.2, 0.2);
        let want = pair[0] * (1.0 + error * 8.0 / 100.0);
        assert!(
            (pair[1] - want).abs() < 1e-6,
            "step {}: {} vs {want}",
            k + 2,
            pair[1]
        );
    }
    assert!(coeff[3] != coeff[0], "{coeff:?}");
    let _ = std::fs::remove_dir_all(&out);
}

/// `config` with `extra` for three steps on flex and on wgpu (lavapipe's Vulkan CPU device where
/// there is no GPU), compared step by step: the `equal` metrics (what was sampled) exactly, the
/// `close` ones within 1e-6 (KL to the reference: 1e-5) plus 1e-4 of the value.
fn three_steps_on_wgpu_match_flex(config: &str, extra: &[&str], equal: &[&str], close: &[&str]) {
    three_steps_match(config, extra, ["cpu", "wgpu"], equal, close);
}

/// Three steps of `config` (with `extra` overrides) in two ways, `ways[0]` and `ways[1]`: a
/// device (`cpu`, `wgpu`) or `cpu-burn` (flex with `--no-fast-cpu`). The metrics in `equal`
/// are equal, those in `close` within 1e-6 + 1e-4 of the value.
fn three_steps_match(
    config: &str,
    extra: &[&str],
    ways: [&str; 2],
    equal: &[&str],
    close: &[&str],
) {
    let run = |way: &str| {
        let (device, fast) = match way {
            "cpu-burn" => ("cpu", false),
            device => (device, true),
        };
        let name = config
            .trim_start_matches("configs/")
            .trim_end_matches(".yaml");
        // Named by both ways: tests running at once never share a directory.
        let dir = out_dir(&format!("{name}-{}-vs-{}-{way}", ways[0], ways[1]));
        let out_arg = format!("training.output_dir={}", dir.display());
        let device_arg = format!("training.device={device}");
        let mut args = vec!["train", "--config", config, &out_arg, &device_arg];
        if !fast {
            args.push("--no-fast-cpu");
        }
        args.extend_from_slice(extra);
        args.push("training.total_ppo_steps=3");
        let out = ppo_lens(&args).output().expect("run ppo-lens train");
        if device == "wgpu" && !out.status.success() {
            panic!(
                "training on wgpu failed. Without a GPU, wgpu needs a Vulkan CPU device: install \
                 Debian's mesa-vulkan-drivers (scripts/test.sh does).\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        ok(&out);
        // The run says which path it took in its effective config.
        let effective = std::fs::read_to_string(dir.join("effective_config.yaml")).unwrap();
        assert!(
            effective.contains(&format!("fast_cpu: {fast}")),
            "{way}: {effective}"
        );
        let rows = metrics(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        rows
    };
    let (flex, wgpu) = (run(ways[0]), run(ways[1]));
    assert_eq!(flex.len(), 3);
    assert_eq!(wgpu.len(), 3);
    for (step, (a, b)) in flex.iter().zip(&wgpu).enumerate() {
        for &key in equal {
            assert_eq!(a[key], b[key], "step {}: {key}", step + 1);
        }
        for &key in close {
            let (x, y) = (a[key].as_f64().unwrap(), b[key].as_f64().unwrap());
            // KL to the reference is a sum over a response's ~30 tokens of differences of two
            // logprobs, each rounded at about 1e-7: at step 1 (policy = reference) flex gives
            // -7e-8 and wgpu -1.6e-6, both zero but for rounding.
            let floor = if key == "rollout/kl_mean" { 1e-5 } else { 1e-6 };
            assert!(
                (x - y).abs() <= floor + 1e-4 * x.abs(),
                "step {}: {key} is {x} on {}, {y} on {}",
                step + 1,
                ways[0],
                ways[1]
            );
        }
    }
}

/// The sampled responses' metrics: equal on both devices when they sampled the same tokens.
const SAMPLED: [&str; 3] = [
    "rollout/reward_mean",
    "rollout/correct_frac",
    "rollout/response_len_mean",
];

/// Three steps of the debug config through burn's GPU kernels give flex's numbers. Measured
/// here: the policy loss (about -1e-3) 1.8e-7 apart, grad norms 3.5e-7 relative, KL to the
/// reference 1.6e-6 apart at step 1.
#[test]
fn three_debug_steps_on_wgpu_match_flex() {
    three_steps_on_wgpu_match_flex(
        DEBUG,
        &["rollout.batch_size=8", "ppo.mini_batch_size=8"],
        &SAMPLED,
        &UPDATE_METRICS,
    );
}

/// The debug config with the hand-written CPU kernels and with burn's own ops everywhere
/// (`--no-fast-cpu`): the same responses sampled, the same losses, clip fractions and grad
/// norms to float tolerance, over three steps.
#[test]
fn three_debug_steps_without_the_fast_cpu_path_match() {
    three_steps_match(
        DEBUG,
        &["rollout.batch_size=8", "ppo.mini_batch_size=8"],
        ["cpu", "cpu-burn"],
        &SAMPLED,
        &UPDATE_METRICS,
    );
}

/// GRPO's debug config on wgpu: the same groups sampled, and GRPO's losses (its KL term in the
/// loss, no critic), clip fraction, grad norm and group statistics as on flex.
#[test]
fn three_grpo_steps_on_wgpu_match_flex() {
    three_steps_on_wgpu_match_flex(
        "configs/config_debug_grpo.yaml",
        &["rollout.batch_size=8", "ppo.mini_batch_size=8"],
        &SAMPLED,
        &GRPO_UPDATE_METRICS,
    );
}
