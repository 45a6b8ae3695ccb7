#!/usr/bin/env bash
# Quick start 2: every test. Native unit and integration tests, the wasm32 build of the page,
# and the browser tests in headless Chromium. Installs what is missing first.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
time_steps

ensure_page_tools
ensure_debian_packages chromium chromium-driver
# A Vulkan device on the CPU (lavapipe), for the tests that run burn's GPU kernels through wgpu.
ensure_debian_packages mesa-vulkan-drivers
ensure_axe
cd "$ROOT"

step "Formatting (cargo fmt --check)"
run cargo fmt --check

# Mesa's Vulkan driver wants a private runtime directory; without one every wgpu test prints
# "error: XDG_RUNTIME_DIR is invalid or not set in the environment."
if [ -z "${XDG_RUNTIME_DIR:-}" ] || [ ! -d "$XDG_RUNTIME_DIR" ]; then
    XDG_RUNTIME_DIR="$(mktemp -d)"
    chmod 700 "$XDG_RUNTIME_DIR"
    export XDG_RUNTIME_DIR
fi

step "Native unit and integration tests"
run cargo test --all-targets

# CI also type-checks the CUDA build (a target dir of its own; scripts/check_cuda.sh says why).
if [ "${PPO_LENS_CHECK_CUDA:-0}" = 1 ]; then
    step "Type-check the CUDA build (cargo check --features cuda)"
    run bash scripts/check_cuda.sh
fi

step "The exercise loop: a student writes exercise 4 on a copy of this checkout"
run bash scripts/exercise_loop.sh

build_page

step "Browser tests: the built page in headless Chromium"
run cargo test --test browser --test browser_classroom -- --ignored --test-threads=1

step_done
printf '\n\033[1;32mAll tests passed\033[0m\n'
note "screenshots: $CARGO_TARGET_DIR/screenshots/"
