#!/usr/bin/env bash
# ppo-lens beside PyTorch + transformers on this CPU, the same workloads, as ratios:
#   scripts/bench.sh              both models (tiny, 50M)
#   scripts/bench.sh tiny         one
# ppo-lens runs on flex (`ppo-lens bench`); the reference is scripts/bench_reference.py. Each
# model runs in its own process on each side, so peak memory is that model's. PYTHON must have
# torch and transformers; without it a venv is made in ~/.cache/ppo-lens/pyenv from PyPI.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$ROOT"
models="${1:-tiny,50M}"
iters="${ITERS:-3}"
PYTHON="${PYTHON:-$HOME/.cache/ppo-lens/pyenv/bin/python}"

step "PyTorch and transformers ($PYTHON)"
if ! "$PYTHON" -c "import torch, transformers" 2>/dev/null; then
    note "missing: making a venv with them from PyPI (a large download)"
    run python3 -m venv "$HOME/.cache/ppo-lens/pyenv"
    PYTHON="$HOME/.cache/ppo-lens/pyenv/bin/python"
    run "$PYTHON" -m pip install -q torch transformers
fi
note "$("$PYTHON" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)')"

step "Build ppo-lens"
run cargo build -q --bin ppo-lens
bin="${CARGO_TARGET_DIR:-$ROOT/target}/debug/ppo-lens"

ours="" theirs=""
for model in ${models//,/ }; do
    step "$model: ppo-lens (flex)"
    line="$("$bin" bench --models "$model" --iters "$iters" --json)"
    echo "    $line"
    ours+="$line"$'\n'
    step "$model: PyTorch + transformers"
    line="$("$PYTHON" scripts/bench_reference.py --models "$model" --iters "$iters")"
    echo "    $line"
    theirs+="$line"$'\n'
done

step "Ratios (ppo-lens / reference; above 1 means ppo-lens is faster for rates, slower for times)"
"$PYTHON" - "$ours" "$theirs" <<'PY'
import json, os, sys
ours = {r["model"]: r for r in (json.loads(l) for l in sys.argv[1].splitlines() if l.strip())}
theirs = {r["model"]: r for r in (json.loads(l) for l in sys.argv[2].splitlines() if l.strip())}
rows = [
    ("forward tokens/s", "forward_tokens_per_s", "rate"),
    ("decode tokens/s (KV cache)", "decode_tokens_per_s", "rate"),
    ("PPO iteration ms", "iteration_ms", "time"),
    ("  rollout ms", "rollout_ms", "time"),
    ("  reference + rewards ms", "reference_ms", "time"),
    ("  gae + whitening ms", "gae_ms", "time"),
    ("  update ms", "update_ms", "time"),
    ("peak MiB, forward", "forward_peak_mib", "time"),
    ("peak MiB, decode", "decode_peak_mib", "time"),
    ("peak MiB, PPO iteration", "iteration_peak_mib", "time"),
]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?") \
    if os.path.exists("/proc/cpuinfo") else "?"
for name, o in ours.items():
    t = theirs[name]
    print(f"\n{name}: {o['params']:,} parameters (reference {t['params']:,}); {cpu}")
    print(f"  ppo-lens flex, {o['threads']} threads; {t['impl']}, {t['threads']} threads")
    print(f"  {'':30} {'ppo-lens':>12} {'reference':>12} {'ratio':>8}")
    for label, key, kind in rows:
        a, b = o.get(key), t.get(key)
        if a is None or b is None:
            print(f"  {label:30} {'n/a':>12} {'n/a':>12}")
            continue
        # Rates: ours / theirs (2x = twice as fast). Times and memory: ours / theirs (0.5x = half).
        print(f"  {label:30} {a:>12,.1f} {b:>12,.1f} {a / b:>7.2f}x")
    it = o["iteration_ms"] / t["iteration_ms"]
    dec = o["decode_tokens_per_s"] / t["decode_tokens_per_s"]
    print(f"  targets: PPO iteration at most 0.7x PyTorch's time: {it:.2f}x "
          f"({'met' if it <= 0.7 else 'not met'}); decode at least 2x generate(): {dec:.2f}x "
          f"({'met' if dec >= 2 else 'not met'})")
PY
