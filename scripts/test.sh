#!/usr/bin/env bash
# Runs every test (`npm test`): the native Rust suite on the machine's wgpu adapter (Mesa's
# lavapipe where there is no GPU), then the browser suite in headless Chromium (WebGPU on
# SwiftShader where there is no GPU) against the wasm build. `npm test` runs scripts/setup.sh
# first, which installs the tools and fetches the test model. Ends with one line over both
# suites: `tests: N passed, N failed`.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# Tools that `cargo install` put in cargo's bin folder, even when it is not on PATH.
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

# Mesa wants a private runtime folder and a writable shader cache.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$root/target/xdg-runtime}"
export MESA_SHADER_CACHE_DIR="${MESA_SHADER_CACHE_DIR:-$root/target/mesa-shader-cache}"
mkdir -p "$XDG_RUNTIME_DIR" "$MESA_SHADER_CACHE_DIR"
# Devices open with only WebGPU's default limits (128 MiB bindings, 256 MiB buffers): the floor
# the engine is built for. The test binaries default to it; this covers the CLI's processes too.
export WEBLORA_LIMITS="${WEBLORA_LIMITS:-webgpu-default}"
chmod 700 "$XDG_RUNTIME_DIR"

set -e
node scripts/build-web.mjs
cargo build -p weblora --bin weblora
set +e

rust_log="$root/target/test.log"
browser_log="$root/target/browser-test.log"
cargo test --workspace --no-fail-fast 2>&1 | tee "$rust_log"
rust_status=${PIPESTATUS[0]}
node --test --test-reporter=spec --test-concurrency=1 tests/browser/ 2>&1 | tee "$browser_log"
browser_status=${PIPESTATUS[0]}

# One closing line over every test binary of the run and the browser tests.
rust=$(awk '/^test result:/ { p += $4; f += $6 } END { printf "%d %d", p, f }' "$rust_log")
# node's spec reporter ends with "ℹ pass N" and "ℹ fail N".
browser=$(awk 'NF == 3 && $2 == "pass" { p = $3 } NF == 3 && $2 == "fail" { f = $3 } END { printf "%d %d", p, f }' "$browser_log")
read -r rp rf <<<"$rust"
read -r bp bf <<<"$browser"
if [ "$rust_status" -ne 0 ] && [ "$rf" -eq 0 ]; then rf=1; fi
if [ "$browser_status" -ne 0 ] && [ "$bf" -eq 0 ]; then bf=1; fi
echo "rust: $rp passed, $rf failed; browser: $bp passed, $bf failed"
echo "tests: $((rp + bp)) passed, $((rf + bf)) failed"
[ "$rust_status" -eq 0 ] && [ "$browser_status" -eq 0 ]
