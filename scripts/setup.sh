# Shared by scripts/serve.sh and scripts/test.sh: print each step, install only what is missing.
# Source it; do not run it.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TRUNK_VERSION="0.21.14"

# One target dir for everything the scripts build, the exercise loop's copy of the checkout
# included, so that each dependency compiles once: the caller's CARGO_TARGET_DIR, else this
# checkout's target/.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

# Each step is timed: when the next one starts, the last one's minutes are printed, and
# `print_step_times` prints them all. With PPO_LENS_STEP_TIMES=<file>, every finished step also
# appends "seconds<TAB>step" to that file.
STEP_NAMES=()
STEP_SECONDS=()
STEP_T0=""
minutes() { awk -v s="$1" 'BEGIN { printf "%.1f", s / 60 }'; }
step_done() {
    [ -n "$STEP_T0" ] || return 0
    local seconds=$(($(date +%s) - STEP_T0))
    STEP_SECONDS+=("$seconds")
    STEP_T0=""
    printf '    (%s min)\n' "$(minutes "$seconds")"
    if [ -n "${PPO_LENS_STEP_TIMES:-}" ]; then
        printf '%s\t%s\n' "$seconds" "${STEP_NAMES[-1]}" >>"$PPO_LENS_STEP_TIMES"
    fi
}
step() {
    step_done
    STEP_NAMES+=("$*")
    STEP_T0="$(date +%s)"
    printf '\n\033[1;34m==>\033[0m \033[1m%s\033[0m\n' "$*"
}
print_step_times() {
    step_done
    local total=0 i
    printf '\n\033[1mMinutes per step\033[0m\n'
    for i in "${!STEP_SECONDS[@]}"; do
        total=$((total + STEP_SECONDS[i]))
        printf '  %6s  %s\n' "$(minutes "${STEP_SECONDS[i]}")" "${STEP_NAMES[i]}"
    done
    printf '  %6s  in all\n' "$(minutes "$total")"
}
# The table when the script ends, whether it passed or not.
time_steps() {
    trap 'rc=$?; print_step_times; exit $rc' EXIT
}
note() { printf '    %s\n' "$*"; }
run() { printf '    $ %s\n' "$*"; "$@"; }

# The wasm-bindgen version Cargo.lock pins; the CLI must be exactly this version.
locked_wasm_bindgen() {
    awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$ROOT/Cargo.lock"
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else run sudo "$@"; fi
}

ensure_cargo() {
    step "Rust toolchain"
    if ! command -v cargo >/dev/null 2>&1; then
        echo "cargo is not on PATH: install Rust with rustup (https://rustup.rs) first" >&2
        exit 1
    fi
    note "$(cargo --version)"
}

ensure_debian_packages() {
    step "Debian packages: $*"
    local missing=()
    for pkg in "$@"; do
        if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
            note "$pkg: installed"
        else
            missing+=("$pkg")
        fi
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        note "installing ${missing[*]}"
        if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"; then
            as_root apt-get update
            as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
        fi
    fi
}

ensure_wasm_target() {
    step "Rust target wasm32-unknown-unknown"
    if rustup target list --installed | grep -qx wasm32-unknown-unknown; then
        note "installed"
    else
        run rustup target add wasm32-unknown-unknown
    fi
}

ensure_trunk() {
    step "trunk $TRUNK_VERSION"
    if command -v trunk >/dev/null 2>&1 && trunk --version | grep -q "trunk 0\.21\."; then
        note "$(trunk --version)"
    else
        note "not found (trunk 0.22 needs a newer rustc, so 0.21.x); building it takes about 10 minutes"
        run cargo install trunk --version "$TRUNK_VERSION" --locked
    fi
}

ensure_wasm_bindgen() {
    local want
    want="$(locked_wasm_bindgen)"
    step "wasm-bindgen-cli $want (the version in Cargo.lock)"
    if command -v wasm-bindgen >/dev/null 2>&1 && [ "$(wasm-bindgen --version)" = "wasm-bindgen $want" ]; then
        note "$(wasm-bindgen --version)"
    else
        # Without --locked: the CLI's own lockfile holds a yanked crate.
        run cargo install wasm-bindgen-cli --version "$want"
    fi
}

# The npm packages the scripts use (binaryen, axe-core), pinned, in one directory of their own.
NPM_DIR="${PPO_LENS_NPM_DIR:-$HOME/.cache/ppo-lens/npm}"
# npm_package NAME VERSION: installs it into $NPM_DIR unless that version is there already.
npm_package() {
    local name="$1" version="$2"
    if grep -qs "\"version\": \"$version\"" "$NPM_DIR/node_modules/$name/package.json"; then
        note "$name $version: installed in $NPM_DIR"
    else
        if ! command -v npm >/dev/null 2>&1; then
            ensure_debian_packages npm
        fi
        mkdir -p "$NPM_DIR"
        run npm install --prefix "$NPM_DIR" --no-audit --no-fund "$name@$version"
    fi
}

# binaryen's wasm-opt, which Trunk runs on the page's wasm (Trunk.toml pins its version). Debian's
# binaryen 108 breaks the reference-types table wasm-bindgen sets up; the npm registry's package
# is current (binaryen compiled to wasm, run by Node.js). It is linked into cargo's bin directory,
# which is on PATH, so that a plain `trunk build` finds it too.
BINARYEN_VERSION="132.0.0"
ensure_binaryen() {
    step "binaryen $BINARYEN_VERSION (npm): wasm-opt"
    npm_package binaryen "$BINARYEN_VERSION"
    local bin="$NPM_DIR/node_modules/.bin/wasm-opt"
    local link="${CARGO_HOME:-$HOME/.cargo}/bin/wasm-opt"
    if [ "$(readlink "$link" 2>/dev/null)" != "$bin" ]; then
        run ln -sf "$bin" "$link"
    fi
    note "$(wasm-opt --version)"
}

# Everything `trunk build` needs, offline afterwards.
ensure_page_tools() {
    ensure_cargo
    ensure_wasm_target
    ensure_trunk
    ensure_wasm_bindgen
    ensure_binaryen
}

# axe-core, the accessibility checker the browser tests run inside the page (from npm).
AXE_VERSION="4.11.0"
ensure_axe() {
    step "axe-core $AXE_VERSION (npm) for the accessibility checks"
    npm_package axe-core "$AXE_VERSION"
    export PPO_LENS_AXE="$NPM_DIR/node_modules/axe-core/axe.min.js"
}

build_page() {
    step "Build the page (wasm32, release) into dist/"
    cd "$ROOT"
    run trunk build --offline
    local wasm
    wasm="$(ls dist/*.wasm | head -n 1)"
    note "$(du -h "$wasm" | cut -f1) wasm, $(gzip -9 -c "$wasm" | wc -c | awk '{printf "%.1fM", $1/1048576}') gzipped: $wasm"
}

# The LLVM that burn's CUDA backend links (cubecl compiles its kernels to PTX through LLVM's NVPTX
# target). cubecl's LLVM bundler would download a prebuilt LLVM from GitHub in its build script;
# PyPI has the same LLVM major as static libraries: `mlc-llvm-static` (the X86 target) and
# `mlc-llvm-static-extra-targets` (NVPTX among others), pinned here. The bundler skips its download
# when `<XDG_DATA_HOME>/tracel/tracel-llvm-<bundler version>/.tracel-llvm-installed` exists and then
# links with that folder's `bin/llvm-config --link-static`: so that folder is a link to the
# wheels' SDK, under a data dir of this project's own (scripts/build_cuda.sh sets XDG_DATA_HOME to
# it for cargo), and nothing of the user's own data dir is touched. llvm-config is a Python script:
# python3 is needed at build time. Linking needs zlib and zstd (LLVM's --system-libs).
LLVM_WHEEL_VERSION="23.1.1.post0"
CUDA_TOOLCHAIN_DIR="${PPO_LENS_CUDA_TOOLCHAIN_DIR:-$HOME/.cache/ppo-lens/cuda-toolchain}"
CUDA_XDG_DATA_HOME="$CUDA_TOOLCHAIN_DIR/data"

# The version of tracel-llvm-bundler that Cargo.lock pins (it names the folder the bundler reads).
locked_llvm_bundler() {
    awk '/^name = "tracel-llvm-bundler"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$ROOT/Cargo.lock"
}

ensure_cuda_toolchain() {
    ensure_debian_packages python3 g++ zlib1g-dev libzstd-dev
    step "LLVM $LLVM_WHEEL_VERSION static libraries (PyPI) for the CUDA backend"
    local wheels="$CUDA_TOOLCHAIN_DIR/llvm-$LLVM_WHEEL_VERSION"
    local sdk="$wheels/mlc_llvm_static/static"
    if [ -x "$sdk/bin/llvm-config" ] && [ -f "$sdk/lib/libLLVMNVPTXCodeGen.a" ]; then
        note "installed in $wheels"
    else
        if ! python3 -m pip --version >/dev/null 2>&1; then
            ensure_debian_packages python3-pip
        fi
        rm -rf "$wheels.partial"
        local from=()
        if [ -n "${PPO_LENS_LLVM_WHEELS:-}" ]; then
            from=(--no-index --find-links "$PPO_LENS_LLVM_WHEELS")
        fi
        run python3 -m pip install --quiet --disable-pip-version-check --no-deps "${from[@]}" \
            --target "$wheels.partial" \
            "mlc-llvm-static==$LLVM_WHEEL_VERSION" "mlc-llvm-static-extra-targets==$LLVM_WHEEL_VERSION"
        rm -rf "$wheels"
        mv "$wheels.partial" "$wheels"
    fi
    note "llvm-config --version: $(python3 "$sdk/bin/llvm-config" --version), targets: $(python3 "$sdk/bin/llvm-config" --targets-built | grep -o 'NVPTX\|X86' | tr '\n' ' ')"

    local bundler
    bundler="$(locked_llvm_bundler)"
    if [ -z "$bundler" ]; then
        note "Cargo.lock has no tracel-llvm-bundler: the cuda feature does not need LLVM"
        return 0
    fi
    step "The LLVM folder tracel-llvm-bundler $bundler reads, linked to the wheels' SDK"
    local folder="$CUDA_XDG_DATA_HOME/tracel/tracel-llvm-$bundler"
    mkdir -p "$(dirname "$folder")"
    if [ "$(readlink "$folder" 2>/dev/null)" != "$sdk" ]; then
        rm -rf "$folder"
        run ln -s "$sdk" "$folder"
    fi
    # Made once: the bundler's build script reruns (and cubecl with all that depends on it
    # recompiles) whenever the marker's time changes.
    [ -e "$folder/.tracel-llvm-installed" ] || touch "$folder/.tracel-llvm-installed"
    note "$folder -> $sdk"
}

# libdevice, the bitcode library of CUDA's math functions (exp, log, ...), which kernels that
# call them link at run time; cubecl finds it under $CUDA_PATH/nvvm/libdevice. PyPI's
# nvidia-cuda-nvcc-cu12 wheel ships it; only that one file is kept, in the cache dir.
NVCC_WHEEL_VERSION="12.9.86"
ensure_libdevice() {
    step "libdevice.10.bc (from PyPI's nvidia-cuda-nvcc-cu12 $NVCC_WHEEL_VERSION)"
    LIBDEVICE="$CUDA_TOOLCHAIN_DIR/nvcc-$NVCC_WHEEL_VERSION/nvvm/libdevice/libdevice.10.bc"
    if [ -f "$LIBDEVICE" ]; then
        note "$LIBDEVICE"
        return 0
    fi
    local wheels="$CUDA_TOOLCHAIN_DIR/nvcc-wheel"
    local from=()
    if [ -n "${PPO_LENS_NVCC_WHEELS:-}" ]; then
        from=(--no-index --find-links "$PPO_LENS_NVCC_WHEELS")
    fi
    mkdir -p "$wheels"
    run python3 -m pip download --quiet --disable-pip-version-check --no-deps "${from[@]}" \
        -d "$wheels" "nvidia-cuda-nvcc-cu12==$NVCC_WHEEL_VERSION"
    python3 - "$wheels" "$LIBDEVICE" <<'PY'
import glob, os, sys, zipfile
wheels, dest = sys.argv[1], sys.argv[2]
(wheel,) = glob.glob(os.path.join(wheels, "nvidia_cuda_nvcc_cu12-*.whl"))
with zipfile.ZipFile(wheel) as z:
    data = z.read("nvidia/cuda_nvcc/nvvm/libdevice/libdevice.10.bc")
os.makedirs(os.path.dirname(dest), exist_ok=True)
with open(dest + ".partial", "wb") as f:
    f.write(data)
os.replace(dest + ".partial", dest)
PY
    rm -rf "$wheels"
    note "$LIBDEVICE ($(du -h "$LIBDEVICE" | cut -f1))"
}
