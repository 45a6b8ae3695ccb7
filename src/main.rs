//! The `ppo-lens` binary: the command line natively, the page on wasm32 (built by Trunk).

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    ppo_lens::native::cli::main()
}

#[cfg(target_arch = "wasm32")]
unsafe extern "C" {
    /// The static constructors (cubecl registers its IR types through `inventory`), which
    /// wasm-ld synthesises.
    fn __wasm_call_ctors();
}

#[cfg(target_arch = "wasm32")]
fn main() {
    // Without an explicit call, wasm-ld links the page "command-style" and runs every
    // constructor again at the top of every exported function: each callback from the
    // browser and each JS value handed to Rust. Profiled, that was two thirds of the page's
    // busy time while training. Called here, they run once, before anything needs them.
    unsafe { __wasm_call_ctors() };
    ppo_lens::web::start();
}
