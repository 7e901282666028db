#!/usr/bin/env bash
# Benchmarks WebLoRA against the PEFT baseline on one machine, one after the other, and writes
# each run's JSON (`weblora bench --json`, `benchmarks/peft_baseline.py`) into OUT:
#
#   scripts/gpu-bench.sh [--local] [OUT]
#
# On a GPU machine it uses the release binary (WEBLORA_BIN, default target/release/weblora, built
# beforehand: `cargo build --release -p weblora --bin weblora`) and the machine's Python with
# torch, transformers and peft (PYTHON, default python3), at batch 4 × 256 on the SmolLM2-135M and
# Qwen2.5-0.5B shapes. Vulkan loaders unpacked into .gl/ (*.deb) are installed first when present.
# --local runs the same on this machine's adapter (lavapipe where there is no GPU) with small
# settings: batch 1 × 32, one timed step, the SmolLM2-135M shape only, with the debug binary
# when no release binary is built.
# Ends with a table: our tokens/s beside PEFT's f32 and bf16, and each matmul's share of the ceiling.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

local_run=0
if [[ "${1:-}" == "--local" ]]; then
    local_run=1
    shift
fi
out="${1:-${OUT:-$root/target/gpu-bench}}"
mkdir -p "$out"
bin="${WEBLORA_BIN:-$root/target/release/weblora}"
if [[ $local_run == 1 && -z "${WEBLORA_BIN:-}" && ! -x "$bin" ]]; then
    bin="$root/target/debug/weblora"
fi
python="${PYTHON:-python3}"

if compgen -G ".gl/*.deb" >/dev/null; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
fi
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [[ -z "${VK_DRIVER_FILES:-}" && -f "$icd" ]]; then
    export VK_DRIVER_FILES="$icd"
fi
if [[ ! -x "$bin" ]]; then
    echo "gpu-bench: no weblora binary at $bin (cargo build --release -p weblora --bin weblora)" >&2
    exit 1
fi

if [[ $local_run == 1 ]]; then
    export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$root/target/xdg-runtime}"
    export MESA_SHADER_CACHE_DIR="${MESA_SHADER_CACHE_DIR:-$root/target/mesa-shader-cache}"
    mkdir -p "$XDG_RUNTIME_DIR" "$MESA_SHADER_CACHE_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
    configs=(smollm2-135m)
    settings=(--batch 1 --seq 32 --steps 1 --tokens 8)
else
    configs=(smollm2-135m qwen2.5-0.5b)
    settings=(--batch 4 --seq 256 --steps 3 --tokens 48)
fi

for config in "${configs[@]}"; do
    echo "gpu-bench: $config, weblora" >&2
    "$bin" bench --json --config "$config" "${settings[@]}" >"$out/weblora-$config.json"
    echo "gpu-bench: $config, PEFT" >&2
    "$python" benchmarks/peft_baseline.py --config "$config" "${settings[@]}" >"$out/peft-$config.json"
done

"$python" - "$out" "${configs[@]}" <<'PY'
import json, sys
out, configs = sys.argv[1], sys.argv[2:]
for config in configs:
    ours = json.load(open(f"{out}/weblora-{config}.json"))
    peft = json.load(open(f"{out}/peft-{config}.json"))
    print(f"\n{config}: {ours['device']['name']} ({ours['device']['backend']}, {ours['device']['kernels']} kernels)")
    print(f"FMA ceiling {ours['fma_peak_gflops']:.1f} GFLOP/s; torch's large f32 matmul {peft['fma_peak_gflops']:.1f} GFLOP/s")
    print(f"{'matmul':<34} {'M×N×K':>18} {'GFLOP/s':>9} {'% peak':>7} {'torch':>9}")
    for a, b in zip(ours["matmul"], peft["matmul"]):
        mnk = f"{a['m']}×{a['n']}×{a['k']}"
        print(f"{a['name']:<34} {mnk:>18} {a['gflops']:>9.2f} {a['percent_of_peak']:>6.1f}% {b['gflops']:>9.2f}")
    best = {(r["weights"], r["recompute"]): r["tokens_per_s"] for r in peft["train"]}
    print(f"{'training':<28} {'tokens/s':>9} {'vs PEFT f32':>12} {'vs PEFT bf16':>13} {'GPU MB':>8}")
    for r in ours["train"]:
        f32, bf16 = best.get(("f32", r["recompute"])), best.get(("bf16", r["recompute"]))
        ratio = lambda base: f"{r['tokens_per_s'] / base:.2f}×" if base else "-"
        label = f"{r['weights']} recompute={r['recompute']}"
        print(f"{label:<28} {r['tokens_per_s']:>9.1f} {ratio(f32):>12} {ratio(bf16):>13} {r['peak_gpu_bytes'] / 1e6:>8.0f}")
    for r in peft["train"]:
        label = f"PEFT {r['weights']} recompute={r['recompute']}"
        print(f"{label:<28} {r['tokens_per_s']:>9.1f}")
    print(f"decode: {ours['decode']['tokens_per_s']:.2f} tokens/s; PEFT f32 {peft['decode']['tokens_per_s']:.2f}")
PY
