//! scripts/gpu_pack.sh and scripts/gpu_run.sh as far as they run without a GPU: this build
//! packed (the CUDA build packs the same way), unpacked in a fresh folder, and the run's checks
//! on the CPU (`--cpu`), whose results say what they measured.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

mod common;

use common::temp::TempDir;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn ok(what: &str, out: std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn the_pack_unpacks_and_its_run_passes_on_the_cpu() {
    let dir = TempDir::new("ppo-lens-gpu-pack");
    std::fs::create_dir_all(&dir).unwrap();
    let archive = dir.join("ppo-lens-gpu.tar.xz");
    let bin = env!("CARGO_BIN_EXE_ppo-lens");
    ok(
        "gpu_pack.sh",
        Command::new("bash")
            .arg(Path::new(ROOT).join("scripts/gpu_pack.sh"))
            .args(["--bin", bin, "--out"])
            .arg(&archive)
            .output()
            .unwrap(),
    );
    let bytes = std::fs::metadata(&archive).unwrap().len();
    assert!(bytes < 64_000_000, "{bytes} bytes");
    ok(
        "tar",
        Command::new("tar")
            .arg("-xJf")
            .arg(&archive)
            .arg("-C")
            .arg(&*dir)
            .output()
            .unwrap(),
    );
    let unpacked = dir.join("ppo-lens-gpu");
    for file in [
        "ppo-lens",
        "gpu_run.sh",
        "PACKED.txt",
        "cuda/nvvm/libdevice/libdevice.10.bc",
        "configs/config.yaml",
        "configs/shapes/qwen1.5-1.8b-chat.json",
        "fixtures/qwen2-tied/expected.json",
        "fixtures/qwen2-gqa-bf16/model.safetensors",
    ] {
        assert!(unpacked.join(file).is_file(), "{file} is not in the pack");
    }

    let results = dir.join("results");
    let printed = ok(
        "gpu_run.sh --cpu",
        Command::new(unpacked.join("gpu_run.sh"))
            .arg("--cpu")
            .arg("--out")
            .arg(&results)
            .env_remove("OUT")
            .output()
            .unwrap(),
    );
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(results.join("results.json")).unwrap())
            .unwrap();
    assert_eq!(json["device"], "cpu");
    assert_eq!(json["passed"], true, "{json:#}");
    assert!(
        json["doctor"]["flex"].as_str().unwrap().starts_with("ok"),
        "{json:#}"
    );
    let parity = json["parity"].as_array().unwrap();
    assert_eq!(parity.len(), 2);
    for row in parity {
        assert_eq!(row["same_ids"], true, "{row}");
        // tests/score_cli.rs's bound for flex.
        for key in ["max_abs_logprob_error", "max_abs_value_error"] {
            let error = row[key].as_f64().unwrap();
            assert!(error < 5e-6, "{row}");
        }
    }
    // The recipe, short: config_debug's 32 rows on the tiny fixture's shape, 16 prompt tokens
    // and 48 new ones, 2 epochs; no peaks on the CPU, so no shares of them.
    let recipe = &json["recipe"];
    assert_eq!(recipe["device"], "cpu", "{json:#}");
    assert_eq!(recipe["decode"]["rows"], 32);
    assert_eq!(recipe["decode"]["steps"], 8);
    assert!(recipe["decode"]["tokens_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(recipe["update"]["tokens_per_row"], 16 + 48);
    assert_eq!(recipe["update"]["epochs"], 2);
    assert!(recipe["update"]["mfu"].is_null() && recipe["decode"]["bandwidth_fraction"].is_null());
    assert!(json["gpu_memory"].is_null(), "no nvidia-smi on the CPU");
    let table = std::fs::read_to_string(results.join("results.md")).unwrap();
    assert!(table.contains("| qwen2-tied | True |"), "{table}");
    assert!(
        table.contains("| one PPO update, 32 rows x 64 tokens x 2 epochs") && table.contains("n/a"),
        "{table}"
    );
    assert!(printed.contains("passed."), "{printed}");
}

#[test]
fn the_pack_names_a_missing_binary_and_the_run_an_unknown_argument() {
    let out = Command::new("bash")
        .arg(Path::new(ROOT).join("scripts/gpu_pack.sh"))
        .args(["--bin", "/nonexistent/ppo-lens"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no binary at /nonexistent/ppo-lens") && err.contains("build_cuda.sh"),
        "{err}"
    );
    let out = Command::new("bash")
        .arg(Path::new(ROOT).join("scripts/gpu_run.sh"))
        .arg("--gpu")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown argument --gpu"), "{err}");
}
