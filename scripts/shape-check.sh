#!/usr/bin/env bash
# The models people fine-tune in a browser, at their real shapes, under WebGPU's default limits
# (128 MiB bindings, 256 MiB buffers). For each shape of benchmarks/shapes/make_shapes.py
# (Qwen2.5-0.5B, Llama-3.2-1B; float16 safetensors, random weights) this
#   1. makes the folder with transformers, when it is not there (a Python environment with
#      benchmarks/shapes/requirements.txt: PYTHON=path/to/python);
#   2. checks that `weblora eval` on sample.txt gives transformers' loss (expected.json);
#   3. trains 2 updates (batch 1 × 64, r=8 all-linear) and reports the losses and the peak
#      host memory against 1.5 × the safetensors file + 400 MB (on lavapipe, GPU memory is host
#      memory);
#   4. runs `weblora bench --load` (load time, peak host memory, GPU bytes, kept and as f32).
#
# usage: scripts/shape-check.sh [OUT_DIR] [SHAPE ...]   (default OUT_DIR: target/shapes)
# SHAPE: qwen2.5-0.5b and llama-3.2-1b by default; qwen2.5-7b-2-layers (two of Qwen2.5-7B's
# layers, whose MLP projections are stored in parts of their output rows) when named.
# Takes a while on a software GPU: the 1B model's update is about 0.5 TFLOP.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out="$(realpath -m "${1:-target/shapes}")"
shift || true
shapes=("$@")
[ ${#shapes[@]} -gt 0 ] || shapes=(qwen2.5-0.5b llama-3.2-1b)
python="${PYTHON:-python3}"

export WEBLORA_LIMITS="${WEBLORA_LIMITS:-webgpu-default}"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$root/target/xdg-runtime}"
export MESA_SHADER_CACHE_DIR="${MESA_SHADER_CACHE_DIR:-$root/target/mesa-shader-cache}"
mkdir -p "$XDG_RUNTIME_DIR" "$MESA_SHADER_CACHE_DIR" "$out"
chmod 700 "$XDG_RUNTIME_DIR"

scripts/fetch_model.sh >/dev/null
cargo build -p weblora --bin weblora
bin="$root/target/debug/weblora"

for shape in "${shapes[@]}"; do
    dir="$out/$shape"
    if [ ! -s "$dir/model.safetensors" ]; then
        "$python" benchmarks/shapes/make_shapes.py "$out" --shape "$shape"
    fi
    file_mb=$(( $(stat -c %s "$dir/model.safetensors") / 1000000 ))
    echo "== $shape: $file_mb MB of float16 safetensors"

    want=$(python3 -c "import json,sys; print(json.load(open('benchmarks/shapes/expected.json'))['shapes'][sys.argv[1]]['loss'])" "$shape")
    got=$("$bin" eval --model "$dir" --data benchmarks/shapes/sample.txt --train-on all --json | python3 -c "import json,sys; print(json.load(sys.stdin)['loss'])")
    python3 - "$shape" "$got" "$want" <<'PY'
import sys
shape, got, want = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
rel = abs(got - want) / abs(want)
print(f"eval: weblora {got:.6f}, transformers {want:.6f}, relative difference {rel:.2e}")
sys.exit(0 if rel < 1e-4 else f"{shape}: the losses differ")
PY

    runs="$out/runs/$shape"
    rm -rf "$runs"
    /usr/bin/time -f "%M" -o "$out/$shape.rss" "$bin" train --model "$dir" --data data/pirate_chat.jsonl \
        --seq-len 64 --batch-size 1 --rank 8 --targets all-linear --max-steps 2 --out "$runs"
    peak_mb=$(( $(cat "$out/$shape.rss") / 1000 ))
    budget_mb=$(( file_mb * 3 / 2 + 400 ))
    echo "train: peak host memory $peak_mb MB, budget $budget_mb MB (1.5 × $file_mb + 400)"
    [ "$peak_mb" -le "$budget_mb" ] || { echo "$shape: over the memory budget" >&2; exit 1; }

    "$bin" bench --load "$dir"
done
