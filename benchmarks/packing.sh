#!/usr/bin/env bash
# Packing's speed-up on chats of mixed lengths: `weblora train` over one epoch with and without
# --packing, the same settings and data, run unpacked, packed, packed, unpacked; prints each
# run's wall time and the dataset's tokens per second.
#
# The data: data/pirate_chat.jsonl's 40 chats joined into multi-turn conversations of 1, 2, 3, 4
# and 5 chats in turn (14 conversations, about 60 to 330 tokens), trained on the answers.
#
# usage: benchmarks/packing.sh [WEBLORA_BIN] [OUT]   (defaults: target/release/weblora, a temp dir)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${1:-$root/target/release/weblora}"
out="${2:-$(mktemp -d)}"
model="$root/cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
mkdir -p "$out"
python3 - "$root/data/pirate_chat.jsonl" "$out/mixed_chats.jsonl" <<'PY'
import json, sys
chats = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
out, i, k = [], 0, 1
while i < len(chats):
    group = chats[i:i + k]
    out.append({"messages": [m for c in group for m in c["messages"]]})
    i += k
    k = k % 5 + 1
with open(sys.argv[2], "w") as f:
    for c in out:
        f.write(json.dumps(c) + "\n")
PY
settings=(--model "$model" --data "$out/mixed_chats.jsonl" --epochs 1 --batch-size 2 --seq-len 384
    --rank 8 --alpha 16 --lr 0.001 --seed 1 --no-shuffle)
"$bin" data --model "$model" --data "$out/mixed_chats.jsonl" --seq-len 384 | head -12
for run in unpacked packed packed unpacked; do
    flag=()
    [ "$run" = packed ] && flag=(--packing)
    start=$(date +%s%N)
    "$bin" train "${settings[@]}" "${flag[@]}" --out "$out/$run" --overwrite >"$out/$run.log" 2>&1
    ms=$((($(date +%s%N) - start) / 1000000))
    steps=$(grep -c '^update ' "$out/$run.log" || true)
    echo "$run: $((ms / 1000)).$(printf %03d $((ms % 1000))) s, $steps updates"
done
