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
step "Build the page${features:+ on your exercises} (wasm32, release)"
run trunk build --offline "${features[@]}"
# How long it took to get here, before the server takes over the terminal.
print_step_times
step "Serve the page on http://127.0.0.1:8080 (Ctrl-C stops; edits rebuild it)"
if command -v xdg-open >/dev/null 2>&1 && [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
    (sleep 20 && xdg-open http://127.0.0.1:8080 >/dev/null 2>&1) &
fi
if [ "${#features[@]}" -gt 0 ]; then
    note "exercises on: the page runs your functions in exercises/ where written"
fi
run trunk serve --offline "${features[@]}"
