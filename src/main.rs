//! The `ppo-lens` binary: the command line natively, the page on wasm32 (built by Trunk).

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    ppo_lens::native::cli::main()
}

#[cfg(target_arch = "wasm32")]
fn main() {
    ppo_lens::web::start();
}
