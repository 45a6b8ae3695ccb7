#!/usr/bin/env bash
# ppo-lens beside PyTorch + transformers on this CPU, the same workloads, as ratios:
#   scripts/bench.sh              both models (tiny, 50M)
#   scripts/bench.sh tiny         one
#   ROUNDS=3 scripts/bench.sh 50M the two sides alternately, three times each
#   WITHOUT=all scripts/bench.sh  ppo-lens with its hand-written CPU kernels off (burn's ops
#                                 everywhere; or some of them: WITHOUT=few_rows,adamw)
# ppo-lens runs on flex (`ppo-lens bench`); the reference is scripts/bench_reference.py. Each
# model runs in its own process on each side, so peak memory is that model's. With ROUNDS > 1
# the table holds each side's medians over the rounds, and the targets' ratios are given for
# every round (a noisy machine moves both sides by tens of percent between runs). PYTHON must have
# torch and transformers; without it a venv is made in ~/.cache/ppo-lens/pyenv from PyPI.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$ROOT"
models="${1:-tiny,50M}"
iters="${ITERS:-3}"
rounds="${ROUNDS:-1}"
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "ROUNDS must be a whole number of at least 1, got '$rounds'" >&2; exit 2; }
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
    for round in $(seq "$rounds"); do
        step "$model: ppo-lens (flex), round $round of $rounds"
        line="$("$bin" bench --models "$model" --iters "$iters" --without "${WITHOUT:-}" --json)"
        echo "    $line"
        ours+="$line"$'\n'
        step "$model: PyTorch + transformers, round $round of $rounds"
        line="$("$PYTHON" scripts/bench_reference.py --models "$model" --iters "$iters")"
        echo "    $line"
        theirs+="$line"$'\n'
    done
done

step "Ratios (ppo-lens / reference; above 1 means ppo-lens is faster for rates, slower for times)"
"$PYTHON" - "$ours" "$theirs" <<'PY'
import json, os, statistics, sys


def by_model(lines):
    """Each model's runs, in the order they ran."""
    runs = {}
    for r in (json.loads(l) for l in lines.splitlines() if l.strip()):
        runs.setdefault(r["model"], []).append(r)
    return runs


def medians(runs):
    """One result: the median of every figure over the runs (None where a run lacks it)."""
    out = dict(runs[0])
    for key, value in runs[0].items():
        if key in ("params", "threads"):
            continue  # the same in every run
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            values = [r.get(key) for r in runs]
            out[key] = None if None in values else statistics.median(values)
    return out


our_runs, their_runs = by_model(sys.argv[1]), by_model(sys.argv[2])
ours = {m: medians(r) for m, r in our_runs.items()}
theirs = {m: medians(r) for m, r in their_runs.items()}
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
    rounds = len(our_runs[name])
    print(f"\n{name}: {o['params']:,} parameters (reference {t['params']:,}); {cpu}")
    print(f"  ppo-lens flex, {o['threads']} threads; {t['impl']}, {t['threads']} threads"
          + (f"; medians of {rounds} alternated rounds" if rounds > 1 else ""))
    print(f"  {'':30} {'ppo-lens':>12} {'reference':>12} {'ratio':>8}")
    for label, key, kind in rows:
        a, b = o.get(key), t.get(key)
        if a is None or b is None:
            print(f"  {label:30} {'n/a':>12} {'n/a':>12}")
            continue
        # Rates: ours / theirs (2x = twice as fast). Times and memory: ours / theirs (0.5x = half).
        print(f"  {label:30} {a:>12,.1f} {b:>12,.1f} {a / b:>7.2f}x")
    if rounds > 1:
        pairs = list(zip(our_runs[name], their_runs[name]))
        its = ", ".join(f"{a['iteration_ms'] / b['iteration_ms']:.2f}x" for a, b in pairs)
        decs = ", ".join(f"{a['decode_tokens_per_s'] / b['decode_tokens_per_s']:.2f}x"
                         for a, b in pairs)
        print(f"  each round: PPO iteration {its}; decode {decs}")
    it = o["iteration_ms"] / t["iteration_ms"]
    dec = o["decode_tokens_per_s"] / t["decode_tokens_per_s"]
    print(f"  targets: PPO iteration at most 0.7x PyTorch's time: {it:.2f}x "
          f"({'met' if it <= 0.7 else 'not met'}); decode at least 2x generate(): {dec:.2f}x "
          f"({'met' if dec >= 2 else 'not met'})")
PY
