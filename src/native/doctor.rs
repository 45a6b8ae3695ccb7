//! `ppo-lens doctor`: what this build can run on, and whether the page's tools are installed.

use std::panic::{self, AssertUnwindSafe};
use std::process::Command;
use std::sync::Mutex;

use anyhow::{Result, bail};

use crate::compute::{BackendKind, Compute, block_on};
use crate::selfcheck;

/// The trunk series the page is built with (trunk 0.22 needs a newer rustc than ours).
pub const TRUNK_SERIES: &str = "0.21.";

/// The wasm-bindgen version in Cargo.lock; the CLI of the same version must be installed.
pub fn locked_wasm_bindgen_version() -> Option<&'static str> {
    locked_version(include_str!("../../Cargo.lock"), "wasm-bindgen")
}

/// Finds `version = ".."` of the package `name` in a Cargo.lock.
fn locked_version<'a>(lock: &'a str, name: &str) -> Option<&'a str> {
    let header = format!("name = \"{name}\"");
    let mut lines = lines_after(lock, &header)?;
    let version = lines.next()?.trim().strip_prefix("version = \"")?;
    version.strip_suffix('"')
}

fn lines_after<'a>(text: &'a str, header: &str) -> Option<std::str::Lines<'a>> {
    let at = text
        .match_indices(header)
        .find(|(i, _)| text[i + header.len()..].starts_with('\n'))?
        .0;
    let mut lines = text[at..].lines();
    lines.next();
    Some(lines)
}

/// One device the build can reach, and how its self-check went.
struct DeviceLine {
    name: String,
    outcome: Result<selfcheck::SelfCheck, String>,
}

pub fn run() -> Result<()> {
    println!("ppo-lens {} doctor\n", env!("CARGO_PKG_VERSION"));

    println!("Backends in this build");
    println!("  flex    yes (pure-Rust CPU)");
    println!("  wgpu    yes (Vulkan, Metal or DX12, chosen by wgpu)");
    if cfg!(feature = "cuda") {
        println!("  cuda    yes (cargo feature `cuda`)");
    } else {
        println!(
            "  cuda    no  (scripts/build_cuda.sh builds it, without a GPU or the CUDA toolkit)"
        );
    }

    println!("\nDevices (self-check: entropy and autodiff gradient against f64)");
    let lines = devices();
    let width = lines.iter().map(|l| l.name.len()).max().unwrap_or(0);
    for line in &lines {
        match &line.outcome {
            Ok(check) if check.passed() => println!(
                "  {:width$}  ok    max |error| {:.1e}",
                line.name, check.max_abs_error
            ),
            Ok(check) => println!(
                "  {:width$}  WRONG max |error| {:.1e} > {:.0e}",
                line.name,
                check.max_abs_error,
                selfcheck::TOLERANCE
            ),
            Err(reason) => println!("  {:width$}  unavailable: {reason}", line.name),
        }
    }

    println!("\nwgpu adapters on this machine (name · backend · kind · driver)");
    match wgpu_adapters() {
        Ok(adapters) if !adapters.is_empty() => {
            for adapter in adapters {
                println!("  {adapter}");
            }
        }
        Ok(_) => println!(
            "  none: wgpu found no Vulkan, Metal, DX12 or GL device. Without a GPU, install a \
             Vulkan CPU device: Debian's mesa-vulkan-drivers (lavapipe; scripts/test.sh does)"
        ),
        Err(reason) => println!("  none: asking wgpu for adapters failed: {reason}"),
    }

    println!("\nTools for the page");
    let lock_version = locked_wasm_bindgen_version().unwrap_or("?");
    let tools: [(&str, &[&str], String); 7] = [
        ("rustc", &["rustc", "--version"], String::new()),
        (
            "trunk",
            &["trunk", "--version"],
            format!("needs {TRUNK_SERIES}x"),
        ),
        (
            "wasm-bindgen",
            &["wasm-bindgen", "--version"],
            format!("needs {lock_version}, as in Cargo.lock"),
        ),
        (
            "wasm-opt",
            &["wasm-opt", "--version"],
            "needs version 132 (npm binaryen), as in Trunk.toml".into(),
        ),
        (
            "chromium",
            &["chromium", "--version"],
            "browser tests".into(),
        ),
        (
            "chromedriver",
            &["chromedriver", "--version"],
            "browser tests".into(),
        ),
        (
            "wasm32",
            &["rustup", "target", "list", "--installed"],
            "rustup target wasm32-unknown-unknown".into(),
        ),
    ];
    for (name, command, need) in tools {
        let found = tool_version(command).map(|out| {
            if name == "wasm32" {
                let has = out.lines().any(|l| l.trim() == "wasm32-unknown-unknown");
                if has { "installed" } else { "missing" }.to_string()
            } else {
                out.lines().next().unwrap_or("").trim().to_string()
            }
        });
        let found = found.unwrap_or_else(|| "missing".into());
        if need.is_empty() {
            println!("  {name:13} {found}");
        } else {
            println!("  {name:13} {found:40} ({need})");
        }
    }

    let flex_ok = lines
        .first()
        .is_some_and(|l| matches!(&l.outcome, Ok(c) if c.passed()));
    if !flex_ok {
        bail!("the flex (CPU) backend failed its self-check; this build cannot compute correctly");
    }
    Ok(())
}

/// Every device this build has, flex first, each self-checked.
fn devices() -> Vec<DeviceLine> {
    let mut lines = vec![check_device(Compute::flex())];

    match guarded(|| block_on(Compute::wgpu())) {
        Ok(Ok(compute)) => lines.push(check_device(compute)),
        Ok(Err(reason)) | Err(reason) => lines.push(DeviceLine {
            name: BackendKind::Wgpu.label().into(),
            outcome: Err(reason),
        }),
    }

    #[cfg(feature = "cuda")]
    match guarded(|| Compute::describe(burn::tensor::Device::cuda(0), BackendKind::Cuda)) {
        Ok(compute) => lines.push(check_device(compute)),
        Err(reason) => lines.push(DeviceLine {
            name: BackendKind::Cuda.label().into(),
            outcome: Err(reason),
        }),
    }

    lines
}

/// Every adapter wgpu finds, each `name · backend · kind · driver (version)`: what burn's wgpu
/// device may run on.
fn wgpu_adapters() -> Result<Vec<String>, String> {
    guarded(|| {
        let backends = wgpu::Backends::all();
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends,
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        });
        block_on(instance.enumerate_adapters(backends))
            .iter()
            .map(|adapter| {
                let info = adapter.get_info();
                let driver = match (info.driver.is_empty(), info.driver_info.is_empty()) {
                    (true, _) => "driver not reported".to_string(),
                    (false, true) => format!("driver {}", info.driver),
                    (false, false) => format!("driver {} ({})", info.driver, info.driver_info),
                };
                format!(
                    "{} · {:?} · {:?} · {driver}",
                    info.name, info.backend, info.device_type
                )
            })
            .collect()
    })
}

fn check_device(compute: Compute) -> DeviceLine {
    let outcome = guarded(|| block_on(selfcheck::run(&compute.device))).and_then(|r| r);
    DeviceLine {
        name: compute.summary(),
        outcome,
    }
}

/// Runs `f`, turning a panic inside a backend (a missing driver, say) into its message.
/// `f()`, or the message of the panic it raised: on the device's own thread first when there
/// was one (see below), then the caller's. `--device cuda` opens CUDA through it too.
pub(crate) fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    // A backend that runs the device on a thread of its own (CUDA) panics there with the cause
    // ("cannot load libcuda"), and the caller's wait on it then fails with a closed channel
    // (`RecvError`), which says nothing: the other threads' panics are kept to name the cause.
    static OTHERS: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let others = || OTHERS.lock().unwrap_or_else(|p| p.into_inner());
    others().clear();
    let caller = std::thread::current().id();
    let hook = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        if std::thread::current().id() != caller {
            let message = info.payload_as_str().unwrap_or("the backend panicked");
            others().push(message.to_string());
        }
    }));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    panic::set_hook(hook);
    let others = std::mem::take(&mut *others());
    result.map_err(|payload| {
        let own = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "the backend panicked".into());
        match others.last() {
            Some(cause) if own.contains("RecvError") => format!("{cause} (then: {own})"),
            _ => own,
        }
    })
}

/// The output of `command`, or None when it is not installed or fails.
fn tool_version(command: &[&str]) -> Option<String> {
    let output = Command::new(command[0]).args(&command[1..]).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_package_version_in_a_lockfile() {
        let lock = "[[package]]\nname = \"wasm-bindgen-macro\"\nversion = \"9.9.9\"\n\n\
                    [[package]]\nname = \"wasm-bindgen\"\nversion = \"0.2.130\"\n";
        assert_eq!(locked_version(lock, "wasm-bindgen"), Some("0.2.130"));
        assert_eq!(locked_version(lock, "leptos"), None);
    }

    #[test]
    fn our_lockfile_pins_wasm_bindgen() {
        let version = locked_wasm_bindgen_version().expect("wasm-bindgen in Cargo.lock");
        assert!(version.starts_with("0.2."), "{version}");
    }

    #[test]
    fn a_backend_panic_becomes_its_message() {
        assert_eq!(
            guarded(|| -> u8 { panic!("no driver") }),
            Err("no driver".into())
        );
        assert_eq!(guarded(|| 7), Ok(7));
    }

    /// CUDA without a driver: the device's own thread panics with the cause, then the caller's
    /// wait for it fails. The cause is what doctor shows first.
    #[test]
    fn a_panic_on_the_backends_thread_is_named_first() {
        let reason = guarded(|| {
            let (tx, rx) = std::sync::mpsc::channel::<u8>();
            let device = std::thread::spawn(move || {
                let _tx = tx;
                panic!("cannot load libcuda.so.1");
            });
            let _ = device.join();
            rx.recv().unwrap()
        })
        .unwrap_err();
        assert!(
            reason.starts_with("cannot load libcuda.so.1 (then: called `Result::unwrap()`"),
            "{reason}"
        );
    }
}
