//! The `ppo-lens` command line as tests call it.

use std::process::Command;

/// `ppo-lens gae --whiten` on `json` (written to a scratch file named after `name`): its
/// JSON output. Fails the test, with the command's stderr, if the command fails.
pub fn gae_whiten(json: &str, name: &str) -> serde_json::Value {
    let path = std::env::temp_dir().join(format!("ppo-lens-{name}-{}.json", std::process::id()));
    std::fs::write(&path, json).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ppo-lens"))
        .args(["gae", "--whiten", "--input"])
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
