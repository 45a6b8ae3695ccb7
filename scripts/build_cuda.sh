#!/usr/bin/env bash
# Builds ppo-lens with burn's CUDA backend, without a GPU, a CUDA toolkit or access to GitHub:
# `$CARGO_TARGET_DIR/cuda-release/ppo-lens` (target/cuda-release/ppo-lens by default).
#
# What it needs that a plain `cargo build --features cuda` would download from GitHub (cubecl's
# LLVM) comes from PyPI (scripts/setup.sh, ensure_cuda_toolchain). With PPO_LENS_LLVM_WHEELS=DIR,
# pip installs the two LLVM wheels from DIR instead (`pip download --no-deps mlc-llvm-static==V
# mlc-llvm-static-extra-targets==V -d DIR` on a machine that has the internet), for a machine that
# has none; cargo then needs its registry too (`cargo fetch` there, or `cargo vendor`), and
# `--offline`: the script's arguments go to `cargo build`.
#
# cudarc, burn's CUDA bindings, asks `nvcc` for the CUDA version unless CUDARC_CUDA_VERSION names
# one (12080, CUDA 12.8, unless set). At run time the binary loads the driver's libcuda; kernels
# that call math functions need libdevice.10.bc (CUDA_PATH, or /usr/local/cuda/nvvm/libdevice).
# The first build compiles burn and every dependency with the cuda feature: about half an hour
# on 2 cores (docs/training.md has a log). The profile is `cuda-release` (Cargo.toml).
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
time_steps

ensure_cargo
ensure_cuda_toolchain
cd "$ROOT"

step "Build ppo-lens with the cuda feature (profile cuda-release)"
run env XDG_DATA_HOME="$CUDA_XDG_DATA_HOME" CUDARC_CUDA_VERSION="${CUDARC_CUDA_VERSION:-12080}" \
    cargo build --profile cuda-release --features cuda --bin ppo-lens "$@"
bin="$CARGO_TARGET_DIR/cuda-release/ppo-lens"
note "$(du -h "$bin" | cut -f1): $bin"

step "The binary runs: ppo-lens --version, and doctor lists the devices it finds"
run "$bin" --version
# Without an NVIDIA driver doctor says why CUDA is unavailable and still lists the CPU. Mesa's
# Vulkan driver (wgpu's CPU device) wants a runtime dir.
XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}" run "$bin" doctor
