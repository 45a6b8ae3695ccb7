#!/usr/bin/env bash
# Quick start 1: install what is missing, build the page, serve it on http://127.0.0.1:8080.
# `scripts/serve.sh --exercises` builds the page on your functions in exercises/ instead.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

ensure_page_tools
cd "$ROOT"
features=()
if [ "${1:-}" = "--exercises" ]; then
    features=(--features exercises)
fi
# How long the installs took, before the server takes over the terminal. `trunk serve` builds the
# page itself (printing the build's minutes) before it serves: a `trunk build` first would run
# the build's last stages, wasm-bindgen and wasm-opt, twice.
print_step_times
step "Build the page${features:+ on your exercises} and serve it on http://127.0.0.1:8080 (Ctrl-C stops; edits rebuild it)"
if command -v xdg-open >/dev/null 2>&1 && [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
    (sleep 20 && xdg-open http://127.0.0.1:8080 >/dev/null 2>&1) &
fi
if [ "${#features[@]}" -gt 0 ]; then
    note "exercises on: the page runs your functions in exercises/ where written"
fi
run trunk serve --offline "${features[@]}"
