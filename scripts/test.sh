#!/usr/bin/env bash
# Runs every test: the native suite on the machine's wgpu adapter (Mesa's lavapipe where there
# is no GPU) and a wasm32 build of the library. Fetches the test model first if it is missing.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# Mesa wants a private runtime folder and a writable shader cache.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$root/target/xdg-runtime}"
export MESA_SHADER_CACHE_DIR="${MESA_SHADER_CACHE_DIR:-$root/target/mesa-shader-cache}"
mkdir -p "$XDG_RUNTIME_DIR" "$MESA_SHADER_CACHE_DIR"
chmod 700 "$XDG_RUNTIME_DIR"

scripts/fetch_model.sh >/dev/null
cargo build -p weblora --lib --target wasm32-unknown-unknown
log="$root/target/test.log"
set -o pipefail
cargo test --workspace 2>&1 | tee "$log"
# One closing line over every test binary of the run.
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
