//! The CPU fast path: one door, the switches and the kernels. Natively on flex, some of the
//! model's work runs in hand-written kernels instead of burn's ops.
//!
//! The model reaches them through one door ([`door`], re-exported here): functions that either
//! do the work and return `Some`, or return `None` so that the caller runs burn's own op, and two
//! opaque types its KV cache holds. Each kernel can be turned off, so that burn's path runs in
//! its place, to measure what each buys (`ppo-lens bench --without few_rows,adamw`,
//! docs/performance.md) and to check that both paths give the same numbers (tests/fast_path.rs).
//! The switches are process-wide: they are for benchmarks, tests and runs that own their
//! process. The page (wasm32) never turns one off; of these kernels it runs only AdamW's pass.
//! Each kernel also counts the calls it took, so a test can tell that a switch moved the work and
//! not only that the numbers agree.
//!
//! The kernels, each beside its switch's name: [`decode_step`] (a whole one-token decoding step
//! in plain loops, handed the model's weights), [`few_rows`] (decoding's products with few rows,
//! over weights packed in panels), [`gemm_linear`] (the Linear layers' products through gemm,
//! forward and backward), [`native_kv`] (the KV cache in plain memory that [`decode_step`]
//! writes), and [`adamw`] (AdamW in one pass over memory, which the page runs too). This module
//! imports nothing from the model.

pub mod adamw;
#[cfg(not(target_arch = "wasm32"))]
pub mod decode_step;
pub mod door;
#[cfg(not(target_arch = "wasm32"))]
pub mod few_rows;
#[cfg(not(target_arch = "wasm32"))]
pub mod gemm_linear;
pub mod model_view;
#[cfg(not(target_arch = "wasm32"))]
pub mod native_kv;
mod simd;

pub use door::{
    DecoderWeights, FastKv, FastWeights, LayerProjs, LayerWeights, PastTensors, Proj, decode,
    linear, linears, tied_head,
};

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// A hand-written kernel the model, the rollout or the trainer may run instead of burn's ops.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// Products with few rows (decoding): `x @ W` over weights packed in panels, shared out
    /// column by column between threads (src/cpu_fast/few_rows.rs).
    FewRows,
    /// Products with many rows, forward and backward, straight through gemm with the tied head's
    /// transpose read in place (src/cpu_fast/gemm_linear.rs).
    GemmLinear,
    /// A whole one-token decoding step in plain loops over the packed weights and the KV cache
    /// (src/cpu_fast/decode_step.rs; it runs few_rows' products inside).
    DecodeStep,
    /// AdamW's step in one pass over memory, and the gradient norm's sum of squares and scaling
    /// (src/cpu_fast/adamw.rs); off, burn's `AdamW` and tensor ops.
    AdamW,
}

impl Kernel {
    pub const ALL: [Kernel; 4] = [
        Kernel::FewRows,
        Kernel::GemmLinear,
        Kernel::DecodeStep,
        Kernel::AdamW,
    ];

    /// The name on the command line and in tables.
    pub fn key(self) -> &'static str {
        match self {
            Kernel::FewRows => "few_rows",
            Kernel::GemmLinear => "gemm_linear",
            Kernel::DecodeStep => "decode_step",
            Kernel::AdamW => "adamw",
        }
    }

    /// Its place in [`Kernel::ALL`] (which lists them in declaration order).
    fn index(self) -> usize {
        self as usize
    }

    fn bit(self) -> u32 {
        1 << self.index()
    }

    /// A comma-separated list of kernel names (`few_rows,adamw`); `all` names every one.
    pub fn parse_list(list: &str) -> Result<Vec<Kernel>, String> {
        let mut kernels = Vec::new();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "all" {
                kernels.extend(Kernel::ALL);
                continue;
            }
            match Kernel::ALL.iter().find(|k| k.key() == name) {
                Some(&k) => kernels.push(k),
                None => {
                    return Err(format!(
                        "unknown kernel `{name}`: expected all or some of {}",
                        Kernel::ALL.map(Kernel::key).join(", ")
                    ));
                }
            }
        }
        kernels.dedup();
        Ok(kernels)
    }
}

/// The kernels turned off, one bit each.
static OFF: AtomicU32 = AtomicU32::new(0);
/// How many times each kernel took the work.
static CALLS: [AtomicU64; Kernel::ALL.len()] = [const { AtomicU64::new(0) }; Kernel::ALL.len()];

/// Whether `kernel` may run.
pub fn on(kernel: Kernel) -> bool {
    OFF.load(Ordering::Relaxed) & kernel.bit() == 0
}

/// Turns `kernel` on or off for the whole process.
pub fn set(kernel: Kernel, on: bool) {
    if on {
        OFF.fetch_and(!kernel.bit(), Ordering::Relaxed);
    } else {
        OFF.fetch_or(kernel.bit(), Ordering::Relaxed);
    }
}

/// Turns every kernel on, then `off` off.
pub fn only_without(off: &[Kernel]) {
    for k in Kernel::ALL {
        set(k, !off.contains(&k));
    }
}

/// The kernels turned off now.
pub fn off() -> Vec<Kernel> {
    Kernel::ALL.into_iter().filter(|&k| !on(k)).collect()
}

/// How many times `kernel` has taken the work since the process started.
pub fn calls(kernel: Kernel) -> u64 {
    CALLS[kernel.index()].load(Ordering::Relaxed)
}

/// Runs `kernel` through `run` when it is on, counting the call when it took the work (`Some`);
/// `None` (burn's path) when it is off or declines.
pub fn take<T>(kernel: Kernel, run: impl FnOnce() -> Option<T>) -> Option<T> {
    if !on(kernel) {
        return None;
    }
    let out = run();
    if out.is_some() {
        CALLS[kernel.index()].fetch_add(1, Ordering::Relaxed);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_lists_parse_and_name_what_is_wrong() {
        assert_eq!(
            Kernel::parse_list("few_rows, adamw").unwrap(),
            vec![Kernel::FewRows, Kernel::AdamW]
        );
        assert_eq!(Kernel::parse_list("all").unwrap(), Kernel::ALL.to_vec());
        assert_eq!(Kernel::parse_list("").unwrap(), vec![]);
        let err = Kernel::parse_list("few_rows,flash").unwrap_err();
        assert!(
            err.contains("`flash`") && err.contains("gemm_linear"),
            "{err}"
        );
    }
}
