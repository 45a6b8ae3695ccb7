#!/usr/bin/env bash
# Runs on the GPU machine from the folder scripts/gpu_pack.sh packed (ppo-lens-gpu/), in one go,
# building and installing nothing: `ppo-lens-gpu/gpu_run.sh [--cpu] [--out DIR]`.
#   --cpu  the same checks on flex, burn's CPU backend: how this script is tested where there is
#          no GPU (tests/gpu_scripts.rs).
#   --out  where results.json, results.md and each command's output go ($OUT when set, which the
#          GPU machine's runner brings back; else ./gpu-results).
# What it checks, each step under a time limit:
#   1. `ppo-lens doctor`: the backends in the build and whether the device passes its self-check.
#   2. Scoring parity: both transformers fixtures' text scored on the device, against the
#      logprobs and values transformers computed (their expected.json): the largest error.
#   3. The recipe (`ppo-lens bench-recipe`): configs/config.yaml's decode and one PPO update on a
#      model of Qwen1.5-1.8B-Chat's shape (configs/shapes/) with random weights made here:
#      decode tokens/s and the share of the GPU's memory bandwidth, the update's tokens/s and
#      model FLOP utilisation (the GPU's peaks by its name, below), and the GPU's peak memory
#      (nvidia-smi, sampled every 200 ms) against the budget docs/training.md computes. With
#      --cpu: configs/config_debug.yaml on the tiny fixture's shape, short.
# Needs python3 (its standard library only) to read the JSON.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
device=cuda
out="${OUT:-$PWD/gpu-results}"
while [ $# -gt 0 ]; do
    case "$1" in
        --cpu) device=cpu; shift ;;
        --out) out="$2"; shift 2 ;;
        *) echo "gpu_run.sh: unknown argument $1: expected --cpu or --out DIR" >&2; exit 2 ;;
    esac
done
mkdir -p "$out"
bin="$HERE/ppo-lens"
# cubecl looks for libdevice under $CUDA_PATH/nvvm/libdevice.
export CUDA_PATH="${CUDA_PATH:-$HERE/cuda}"
[ -f "$CUDA_PATH/nvvm/libdevice/libdevice.10.bc" ] || export CUDA_PATH="$HERE/cuda"
# The device's self-check and the parity tolerance: flex matches transformers to 5.5e-7 (tests/
# score_cli.rs); a GPU's kernels sum in other orders.
if [ "$device" = cpu ]; then tolerance=5e-6; else tolerance=1e-4; fi
start=$(date +%s)

echo "==> ppo-lens doctor"
timeout 120 "$bin" doctor | tee "$out/doctor.txt"

echo "==> Scoring parity on $device against transformers"
for fixture in qwen2-tied qwen2-gqa-bf16; do
    text="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["text"]["text"])' \
        "$HERE/fixtures/$fixture/expected.json")"
    timeout 120 "$bin" score --model "$HERE/fixtures/$fixture" --text "$text" --device "$device" \
        >"$out/score-$fixture.json"
    echo "    $fixture: scored"
done

# Dense bf16 TFLOP/s and memory GB/s of the GPUs this may meet, from NVIDIA's data sheets.
peaks() {
    case "$1" in
        *H200*) echo "989.4 4800" ;;
        *H100*NVL*) echo "835.5 3900" ;;
        *H100*PCIe*) echo "756.5 2000" ;;
        *H100*) echo "989.4 3350" ;;
        *A100*80GB*PCIe*) echo "312 1935" ;;
        *A100*80GB*) echo "312 2039" ;;
        *A100*) echo "312 1555" ;;
        *) echo "" ;;
    esac
}
if [ "$device" = cuda ]; then
    recipe=(--config "$HERE/configs/config.yaml" --shape "$HERE/configs/shapes/qwen1.5-1.8b-chat.json")
    gpu="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
    read -r tflops gbps <<<"$(peaks "$gpu")" || true
    [ -n "${tflops:-}" ] && recipe+=(--peak-tflops "$tflops" --peak-gbps "$gbps")
    nvidia-smi --query-gpu=memory.used,memory.total --format=csv,noheader,nounits -lms 200 \
        >"$out/gpu-memory.csv" &
    watcher=$!
else
    gpu=""
    recipe=(--config "$HERE/configs/config_debug.yaml" --shape "$HERE/fixtures/qwen2-tied/config.json"
        --prompt-len 16 --decode-tokens 8)
    watcher=""
fi
echo "==> The recipe on $device: decode and one PPO update${gpu:+ on $gpu}"
status=0
timeout 420 "$bin" bench-recipe "${recipe[@]}" --json >"$out/recipe.json" || status=$?
[ -n "$watcher" ] && kill "$watcher" 2>/dev/null
[ "$status" = 0 ] || { echo "gpu_run.sh: bench-recipe failed ($status)" >&2; echo '{}' >"$out/recipe.json"; }

python3 - "$HERE" "$out" "$device" "$tolerance" "$(($(date +%s) - start))" "$gpu" <<'PY'
import json, os, re, sys

here, out, device, tolerance, seconds, gpu = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
doctor = open(os.path.join(out, "doctor.txt")).read()
backend = "flex" if device == "cpu" else "cuda"
devices = doctor.split("\nDevices", 1)[-1].split("\n\n", 1)[0]
line = re.search(r"^\s+" + backend + r"\b.*?\s{2,}(ok|WRONG|unavailable)(.*)$", devices, re.M)
doctor_line = " ".join((line.group(1) + line.group(2)).split()) if line else "not listed"

parity = []
for fixture in ["qwen2-tied", "qwen2-gqa-bf16"]:
    want = json.load(open(os.path.join(here, "fixtures", fixture, "expected.json")))["text"]
    got = json.load(open(os.path.join(out, f"score-{fixture}.json")))
    def worst(key):
        pairs = [(g, w) for g, w in zip(got[key], want[key]) if g is not None and w is not None]
        assert len(got[key]) == len(want[key]), f"{fixture}: {len(got[key])} {key}, transformers {len(want[key])}"
        return max(abs(g - w) for g, w in pairs)
    row = {
        "fixture": fixture,
        "same_ids": got["ids"] == want["ids"],
        "max_abs_logprob_error": worst("logprobs"),
        "max_abs_value_error": worst("values"),
        "tolerance": tolerance,
    }
    row["passed"] = row["same_ids"] and max(row["max_abs_logprob_error"], row["max_abs_value_error"]) < tolerance
    parity.append(row)

# The peak memory docs/training.md budgets for configs/config.yaml's update (GB).
BUDGET_GB = 39
recipe = json.load(open(os.path.join(out, "recipe.json")))
memory = None
csv = os.path.join(out, "gpu-memory.csv")
if os.path.exists(csv):
    used = [int(l.split(",")[0]) for l in open(csv) if l.strip() and l.split(",")[0].strip().isdigit()]
    if used:
        memory = {"peak_gb": max(used) * 1024 * 1024 / 1e9, "budget_gb": BUDGET_GB}

packed = open(os.path.join(here, "PACKED.txt")).read().splitlines()
results = {
    "device": device,
    "gpu": gpu or None,
    "pack": packed,
    "doctor": {backend: doctor_line},
    "parity": parity,
    "recipe": recipe or None,
    "gpu_memory": memory,
    "seconds": seconds,
    "passed": doctor_line.startswith("ok") and all(r["passed"] for r in parity) and bool(recipe),
}
with open(os.path.join(out, "results.json"), "w") as f:
    json.dump(results, f, indent=2)
lines = [
    f"# ppo-lens on {device}",
    "",
    "\n".join("    " + l for l in packed),
    "",
    f"`ppo-lens doctor`, {backend}: {doctor_line}",
    "",
    "| fixture | same ids | max abs error, logprobs | max abs error, values | tolerance | passed |",
    "|---|---|---:|---:|---:|---|",
]
for r in parity:
    lines.append(f"| {r['fixture']} | {r['same_ids']} | {r['max_abs_logprob_error']:.2e} | {r['max_abs_value_error']:.2e} | {r['tolerance']:.0e} | {r['passed']} |")
def pct(x, what):
    return "n/a (no peak known for this device)" if x is None else f"{100 * x:.1f}% {what}"
if recipe:
    d, u = recipe["decode"], recipe["update"]
    lines += [
        "",
        f"The recipe on {recipe['parameters']:,} parameters ({recipe['dtype']}), random weights:",
        "",
        "| workload | tokens/s | rate | share of the device's peak | target |",
        "|---|---:|---:|---:|---|",
        f"| decode, {d['rows']} rows x {d['steps']} steps after {d['prompt_len']} tokens | {d['tokens_per_s']:,.0f} | {d['gb_per_s']:,.0f} GB/s read | {pct(d['bandwidth_fraction'], 'of its memory bandwidth')} | at least 60% of HBM bandwidth |",
        f"| one PPO update, {u['rows']} rows x {u['tokens_per_row']} tokens x {u['epochs']} epochs, {u['optimizer_steps']} {u['optimizer']} steps, {u['seconds']:.2f} s | {u['tokens_per_s']:,.0f} | {u['tflops']:,.1f} TFLOP/s | {pct(u['mfu'], 'MFU')} | at least 40% MFU |",
    ]
else:
    lines += ["", "The recipe did not run: see the output above."]
if memory:
    lines += ["", f"Peak GPU memory: {memory['peak_gb']:.1f} GB, against the {memory['budget_gb']} GB docs/training.md budgets for the update."]
lines += ["", f"{seconds} s in all; {'passed' if results['passed'] else 'FAILED'}."]
with open(os.path.join(out, "results.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
print("\n".join(lines))
sys.exit(0 if results["passed"] else 1)
PY
