#!/usr/bin/env bash
# Packs what a run on a GPU machine needs into one file under 64 MB, for a machine that must not
# build or install anything (no registry access, minutes of device time): scripts/gpu_run.sh runs
# it there. `scripts/gpu_pack.sh [--bin PATH] [--out FILE]`:
#   --bin  the ppo-lens binary to pack (default: the CUDA build of scripts/build_cuda.sh,
#          $CARGO_TARGET_DIR/cuda-release/ppo-lens); any build packs, which is how the pack is
#          tested without one (tests/gpu_scripts.rs).
#   --out  the archive (default gpu-pack/ppo-lens-gpu.tar.xz in this checkout).
# The archive holds one folder, ppo-lens-gpu/: the binary stripped of its symbols, libdevice
# (cuda/nvvm/libdevice/libdevice.10.bc, from PyPI), configs/, the transformers fixtures
# (fixtures/qwen2-tied, fixtures/qwen2-gqa-bf16) and gpu_run.sh, and PACKED.txt saying what went
# in. On the GPU machine: `tar -xJf ppo-lens-gpu.tar.xz && ppo-lens-gpu/gpu_run.sh`.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
time_steps

bin="$CARGO_TARGET_DIR/cuda-release/ppo-lens"
out="$ROOT/gpu-pack/ppo-lens-gpu.tar.xz"
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) bin="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        *) echo "gpu_pack.sh: unknown argument $1: expected --bin PATH or --out FILE" >&2; exit 2 ;;
    esac
done
if [ ! -x "$bin" ]; then
    echo "gpu_pack.sh: no binary at $bin: build it with scripts/build_cuda.sh, or name one with --bin" >&2
    exit 1
fi
LIMIT=$((64 * 1000 * 1000))

ensure_libdevice

step "Stage ppo-lens-gpu/"
stage="$(mktemp -d)"
trap 'rc=$?; rm -rf "$stage"; print_step_times; exit $rc' EXIT
dir="$stage/ppo-lens-gpu"
mkdir -p "$dir/cuda/nvvm/libdevice" "$dir/fixtures"
run strip -o "$dir/ppo-lens" "$bin"
cp "$LIBDEVICE" "$dir/cuda/nvvm/libdevice/"
cp -r "$ROOT/configs" "$dir/"
for fixture in qwen2-tied qwen2-gqa-bf16; do
    cp -r "$ROOT/tests/fixtures/$fixture" "$dir/fixtures/"
done
cp "$ROOT/scripts/gpu_run.sh" "$dir/"
chmod +x "$dir/gpu_run.sh" "$dir/ppo-lens"
{
    echo "ppo-lens GPU pack, made $(date -u '+%Y-%m-%d %H:%M UTC') on $(uname -m)"
    echo "commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
    echo "binary: $bin ($(du -h "$bin" | cut -f1), stripped $(du -h "$dir/ppo-lens" | cut -f1))"
    echo "$("$dir/ppo-lens" --version)"
    echo "libdevice: nvidia-cuda-nvcc-cu12 $NVCC_WHEEL_VERSION"
} >"$dir/PACKED.txt"
sed 's/^/    /' "$dir/PACKED.txt"

step "Compress (xz)"
mkdir -p "$(dirname "$out")"
note "\$ tar -C $stage -cf - ppo-lens-gpu | xz -T0 -6 > $out"
tar -C "$stage" -cf - ppo-lens-gpu | xz -T0 -6 >"$out.partial"
mv "$out.partial" "$out"
bytes="$(stat -c %s "$out")"
note "$out: $(awk -v b="$bytes" 'BEGIN { printf "%.1f MB", b / 1e6 }')"
if [ "$bytes" -gt "$LIMIT" ]; then
    echo "gpu_pack.sh: the pack is $bytes bytes, over the 64 MB a GPU machine takes" >&2
    exit 1
fi
