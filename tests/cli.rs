//! The `ppo-lens` binary as a user runs it.

use std::process::Command;

fn ppo_lens(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ppo-lens"))
        .args(args)
        .output()
        .expect("run ppo-lens")
}

#[test]
fn every_subcommand_has_help() {
    let top = ppo_lens(&["--help"]);
    assert!(top.status.success());
    let top = String::from_utf8(top.stdout).unwrap();
    // Every subcommand the top-level help lists (clap's "Commands:" section, up to the blank
    // line), each with a description.
    let commands: Vec<&str> = top
        .split("Commands:\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no Commands section: {top}"))
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .collect();
    for name in ["train", "doctor", "exercises", "score"] {
        assert!(commands.contains(&name), "{name} missing from {commands:?}");
    }
    for name in commands {
        let out = ppo_lens(&[name, "--help"]);
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{name} --help: {help}");
        assert!(
            help.contains(&format!("Usage: ppo-lens {name}")),
            "{name} --help: {help}"
        );
        // A line of description before the usage line.
        let described = help.lines().next().is_some_and(|l| !l.starts_with("Usage"));
        assert!(described, "{name} --help has no description: {help}");
    }
    let doctor = ppo_lens(&["doctor", "--help"]);
    assert!(String::from_utf8_lossy(&doctor.stdout).contains("backends"));
}

#[test]
fn an_unknown_subcommand_is_an_error_not_a_panic() {
    let out = ppo_lens(&["trian"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unrecognized subcommand 'trian'"), "{err}");
    // No timed run at all is refused by name (it panicked taking the median of nothing).
    let out = ppo_lens(&["bench", "--iters", "0"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--iters") && err.contains("0"), "{err}");
    // A peak of 0 would make every share infinite.
    for (flag, value) in [
        ("--peak-tflops", "0"),
        ("--peak-gbps", "-5"),
        ("--peak-tflops", "inf"),
    ] {
        // As one argument, so that clap reads "-5" as the value, not as a flag.
        let arg = format!("{flag}={value}");
        let out = ppo_lens(&[
            "bench-recipe",
            "--config",
            "configs/config.yaml",
            "--shape",
            "config.json",
            &arg,
        ]);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("invalid value '{value}' for '{flag}"))
                && err.contains("must be a number above 0"),
            "{err}"
        );
    }
}

#[test]
fn doctor_reports_flex_passing_its_self_check_and_the_page_tools() {
    let out = ppo_lens(&["doctor"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let flex = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("flex (CPU)"))
        .unwrap_or_else(|| panic!("no flex device line in:\n{stdout}"));
    assert!(flex.contains(" ok "), "{flex}");
    // Every other device line either passes or says why it is unavailable; none is WRONG.
    assert!(!stdout.contains("WRONG"), "{stdout}");
    // The adapters wgpu finds, each with its backend, kind and driver: at least one, since the
    // test command installs a Vulkan CPU device (lavapipe) where there is no GPU.
    let adapters: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("wgpu adapters on this machine"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .collect();
    assert!(
        !adapters.is_empty()
            && adapters
                .iter()
                .all(|l| l.matches(" · ").count() == 3 && l.contains("driver")),
        "{stdout}"
    );
    for tool in [
        "trunk",
        "wasm-bindgen",
        "wasm-opt",
        "chromium",
        "chromedriver",
    ] {
        assert!(
            stdout.lines().any(|l| l.trim_start().starts_with(tool)),
            "doctor should report {tool}:\n{stdout}"
        );
    }
}

/// glibc takes the allocator settings the CLI starts with (the thresholds are in range).
#[test]
#[cfg(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64"))]
fn the_allocator_keeps_freed_memory() {
    assert!(ppo_lens::native::cli::keep_freed_memory());
}
