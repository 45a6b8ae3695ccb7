#!/usr/bin/env bash
# Model throughput on this CPU: ppo-lens on flex beside PyTorch + transformers, same workloads.
# PYTHON must have torch and transformers (default: the venv scripts/make_fixtures.py describes).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-$HOME/.cache/ppo-lens/pyenv/bin/python}"
cd "$ROOT"
ours="$(cargo run --quiet --example bench_model)"
theirs="$("$PYTHON" scripts/bench_model_reference.py)"
"$PYTHON" - "$ours" "$theirs" <<'PY'
import json, sys
ours = {r["config"]: r for r in map(json.loads, sys.argv[1].splitlines())}
theirs = {r["config"]: r for r in map(json.loads, sys.argv[2].splitlines())}
print(f"{'config':8} {'params':>11} {'metric':22} {'ppo-lens':>12} {'transformers':>13} {'ratio':>7}")
for name, o in ours.items():
    t = theirs[name]
    for key in ("forward_tokens_per_s", "decode_tokens_per_s"):
        print(f"{name:8} {o['params']:>11,} {key:22} {o[key]:>12,.1f} {t[key]:>13,.1f} {o[key] / t[key]:>6.2f}x")
print(f"ppo-lens: flex, {o['threads']} threads; reference: {t['impl']}, {t['threads']} threads")
PY
