#!/usr/bin/env bash
# Type-checks the CUDA build (`--features cuda`, every target) on a machine without a GPU, CUDA
# or access to GitHub, so that a change that breaks the CUDA path is caught with every test run
# of CI (.ci/run sets PPO_LENS_CHECK_CUDA=1 for scripts/test.sh, which runs this).
#
# burn's cuda backend pulls in cubecl's LLVM bundle, whose build script downloads a prebuilt LLVM
# from GitHub; with DOCS_RS set it and cubecl-llvm skip LLVM, which is enough to type-check but
# not to link (scripts/build_cuda.sh builds the binary, when it exists; docs/training.md). cudarc
# asks `nvcc` for the CUDA version unless CUDARC_CUDA_VERSION names one; 12.8 is assumed here.
# DOCS_RS changes other crates' build scripts too (proc-macro2's), so the check keeps a target
# dir of its own, beside the shared one, and never invalidates its builds.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
target="${CARGO_TARGET_DIR:-$ROOT/target}/cuda-check"
printf '    $ DOCS_RS=1 CUDARC_CUDA_VERSION=%s CARGO_TARGET_DIR=%s cargo check --features cuda --all-targets\n' \
    "${CUDARC_CUDA_VERSION:-12080}" "$target"
DOCS_RS=1 CUDARC_CUDA_VERSION="${CUDARC_CUDA_VERSION:-12080}" CARGO_TARGET_DIR="$target" \
    cargo check --features cuda --all-targets
