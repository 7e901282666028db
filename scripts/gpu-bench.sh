#!/usr/bin/env bash
# Benchmarks WebLoRA against its peers on one machine, one after the other, and writes each run's
# JSON into OUT: `weblora bench --json` (weblora-CONFIG.json), `benchmarks/peft_baseline.py`
# (peft-CONFIG.json) and the Burn peer's matmuls (burn-CONFIG.json, `benchmarks/burn-peer`):
#
#   scripts/gpu-bench.sh [--local] [--matmuls] [OUT]
#
# On a GPU machine it uses the release binary (WEBLORA_BIN, default target/release/weblora, built
# beforehand: `cargo build --release -p weblora --bin weblora`) and the machine's Python with
# torch, transformers and peft (PYTHON, default python3), at batch 4 × 256 on the SmolLM2-135M,
# Qwen2.5-0.5B and Llama-3.2-1B shapes (GPU_BENCH_CONFIGS, space-separated, names others), with
# the projections kept as f32, f16 and Q8_0 (GPU_BENCH_QUANT, the GGML type of the last). Vulkan
# loaders unpacked into .gl/ (*.deb) are installed first when present.
# --local runs the same on this machine's adapter (lavapipe where there is no GPU) with small
# settings: batch 1 × 32, one timed step, the SmolLM2-135M shape only, with the debug binary
# when no release binary is built.
# --matmuls measures only the FMA ceiling and the matmuls, ours and Burn's (no training, no
# decoding, no PEFT: its baseline times matmuls only beside training).
# WEBLORA_BASE_BIN names a baseline build (the previous main, say): it runs the same settings
# right before ours (base-CONFIG.json), and the tables add ours over it. GPU_BENCH_PEFT=0 leaves
# PEFT out (when its figures for these shapes are already at hand).
# The Burn peer runs from a prebuilt binary (BURN_PEER_BIN, default
# benchmarks/burn-peer/target/release/burn-peer, built where the registry is reachable:
# `cd benchmarks/burn-peer && cargo build --release`), so a GPU machine without network needs no
# build; without it, or without torch for PEFT, a line says so and that peer is left out.
# Ends with tables: our tokens/s beside PEFT's f32 and bf16, each matmul's share of the ceiling
# and torch's GFLOP/s, and our matmul GFLOP/s beside Burn's with the ratio.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

local_run=0
matmuls_only=0
quant=()
while [[ "${1:-}" == --* ]]; do
    case "$1" in
        --local) local_run=1 ;;
        --matmuls) matmuls_only=1 ;;
        *) echo "gpu-bench: unknown option $1 (usage: scripts/gpu-bench.sh [--local] [--matmuls] [OUT])" >&2; exit 2 ;;
    esac
    shift
done
out="${1:-${OUT:-$root/target/gpu-bench}}"
mkdir -p "$out"
bin="${WEBLORA_BIN:-$root/target/release/weblora}"
if [[ $local_run == 1 && -z "${WEBLORA_BIN:-}" && ! -x "$bin" ]]; then
    bin="$root/target/debug/weblora"
fi
python="${PYTHON:-python3}"
burn_bin="${BURN_PEER_BIN:-$root/benchmarks/burn-peer/target/release/burn-peer}"

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
    shape=(--batch 1 --seq 32)
    settings=("${shape[@]}" --steps 1 --tokens 8)
else
    read -r -a configs <<<"${GPU_BENCH_CONFIGS:-smollm2-135m qwen2.5-0.5b llama-3.2-1b}"
    shape=(--batch 4 --seq 256)
    settings=("${shape[@]}" --steps 3 --tokens 48)
    quant=(--quant "${GPU_BENCH_QUANT:-q8_0}")
fi
if [[ $matmuls_only == 1 ]]; then
    settings=("${shape[@]}" --steps 0 --tokens 0)
    quant=()
fi
base_bin="${WEBLORA_BASE_BIN:-}"
have_peft=1
if [[ $matmuls_only == 1 || "${GPU_BENCH_PEFT:-1}" == 0 ]]; then
    have_peft=0
elif ! "$python" -c "import torch, transformers, peft" 2>/dev/null; then
    have_peft=0
    echo "gpu-bench: $python has no torch, transformers and peft (benchmarks/requirements.txt): PEFT not measured" >&2
fi
have_burn=1
if [[ ! -x "$burn_bin" ]]; then
    have_burn=0
    echo "gpu-bench: no Burn peer at $burn_bin (cd benchmarks/burn-peer && cargo build --release, or set BURN_PEER_BIN): Burn not measured" >&2
fi

for config in "${configs[@]}"; do
    rm -f "$out/base-$config.json"
    if [[ -n "$base_bin" ]]; then
        echo "gpu-bench: $config, baseline $base_bin" >&2
        "$base_bin" bench --json --config "$config" "${settings[@]}" "${quant[@]}" >"$out/base-$config.json"
    fi
    echo "gpu-bench: $config, weblora" >&2
    "$bin" bench --json --config "$config" "${settings[@]}" "${quant[@]}" >"$out/weblora-$config.json"
    rm -f "$out/peft-$config.json" "$out/burn-$config.json"
    if [[ $have_peft == 1 ]]; then
        echo "gpu-bench: $config, PEFT" >&2
        "$python" benchmarks/peft_baseline.py --config "$config" "${settings[@]}" >"$out/peft-$config.json"
    fi
    if [[ $have_burn == 1 ]]; then
        echo "gpu-bench: $config, Burn" >&2
        "$burn_bin" --config "$config" "${shape[@]}" >"$out/burn-$config.json"
    fi
done

# The side-by-side printer needs only the standard library: python3 when PYTHON lacks torch.
printer="$python"
[[ $have_peft == 1 ]] || printer=python3
"$printer" - "$out" "${configs[@]}" <<'PY'
import json, os, sys
out, configs = sys.argv[1], sys.argv[2:]
def load(name):
    path = f"{out}/{name}"
    return json.load(open(path)) if os.path.exists(path) else None
for config in configs:
    ours, peft, burn = load(f"weblora-{config}.json"), load(f"peft-{config}.json"), load(f"burn-{config}.json")
    base = load(f"base-{config}.json")
    print(f"\n{config}: {ours['device']['name']} ({ours['device']['backend']}, {ours['device']['kernels']} kernels)")
    torch_peak = f"; torch's large f32 matmul {peft['fma_peak_gflops']:.1f} GFLOP/s" if peft else ""
    print(f"FMA ceiling {ours['fma_peak_gflops']:.1f} GFLOP/s{torch_peak}")
    print(f"{'matmul':<34} {'M×N×K':>18} {'GFLOP/s':>9} {'% peak':>7} {'torch':>9} {'vs base':>8}")
    for i, a in enumerate(ours["matmul"]):
        mnk = f"{a['m']}×{a['n']}×{a['k']}"
        torch = f"{peft['matmul'][i]['gflops']:>9.2f}" if peft else f"{'-':>9}"
        vs = f"{a['gflops'] / base['matmul'][i]['gflops']:.2f}×" if base else "-"
        print(f"{a['name']:<34} {mnk:>18} {a['gflops']:>9.2f} {a['percent_of_peak']:>6.1f}% {torch} {vs:>8}")
    if burn:
        d = burn["device"]
        print(f"beside Burn {burn['burn']} (wgpu {burn['wgpu']}) on {d['name']} ({d['backend']}), f32 matmul GFLOP/s")
        print(f"{'matmul':<34} {'M×N×K':>18} {'ours':>9} {'Burn':>9} {'ours/Burn':>10}")
        for a, b in zip(ours["matmul"], burn["matmul"]):
            if (a["m"], a["n"], a["k"]) != (b["m"], b["n"], b["k"]) or a["name"] != b["name"]:
                sys.exit(f"gpu-bench: the Burn peer timed {b['name']} {b['m']}×{b['n']}×{b['k']}, not {a['name']}")
            mnk = f"{a['m']}×{a['n']}×{a['k']}"
            print(f"{a['name']:<34} {mnk:>18} {a['gflops']:>9.2f} {b['gflops']:>9.2f} {a['gflops'] / b['gflops']:>9.2f}×")
    if ours["train"]:
        best = {(r["weights"], r["recompute"]): r["tokens_per_s"] for r in peft["train"]} if peft else {}
        was = {(r["weights"], r["recompute"]): r["tokens_per_s"] for r in base["train"]} if base else {}
        print(f"{'training':<28} {'tokens/s':>9} {'vs PEFT f32':>12} {'vs PEFT bf16':>13} {'vs base':>8} {'GPU MB':>8}")
        for r in ours["train"]:
            f32, bf16 = best.get(("f32", r["recompute"])), best.get(("bf16", r["recompute"]))
            old = was.get((r["weights"], r["recompute"]))
            ratio = lambda other: f"{r['tokens_per_s'] / other:.2f}×" if other else "-"
            label = f"{r['weights']} recompute={r['recompute']}"
            print(f"{label:<28} {r['tokens_per_s']:>9.1f} {ratio(f32):>12} {ratio(bf16):>13} {ratio(old):>8} "
                  f"{r['peak_gpu_bytes'] / 1e6:>8.0f}")
    for r in peft["train"] if peft else []:
        label = f"PEFT {r['weights']} recompute={r['recompute']}"
        print(f"{label:<28} {r['tokens_per_s']:>9.1f}")
    if ours["decode"]:
        theirs = f"; PEFT f32 {peft['decode']['tokens_per_s']:.2f}" if peft else ""
        theirs += f"; baseline {base['decode']['tokens_per_s']:.2f}" if base and base["decode"] else ""
        print(f"decode: {ours['decode']['tokens_per_s']:.2f} tokens/s{theirs}")
PY
