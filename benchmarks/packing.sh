#!/usr/bin/env bash
# Packing's speed-up on chats of mixed lengths: `weblora train` over one epoch with and without
# --packing, the same settings and data, run unpacked, packed, packed, unpacked; prints each
# run's wall time.
#
# The data: data/pirate_chat.jsonl's 40 chats joined, in file order, into multi-turn
# conversations of PACK_GROUPS chats in turn (default "1 2 3 4 5": 14 conversations of 67 to 204
# tokens; "1 1 1 1 6": 16 single chats of about 60 tokens and 4 long ones), trained on the
# answers, PACK_BATCH (default 2) conversations a step, unshuffled.
#
# usage: [PACK_GROUPS="1 2 3 4 5"] [PACK_BATCH=2] benchmarks/packing.sh [WEBLORA_BIN] [OUT]
#        (defaults: target/release/weblora, a temp dir)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${1:-$root/target/release/weblora}"
out="${2:-$(mktemp -d)}"
model="$root/cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
mkdir -p "$out"
python3 - "$root/data/pirate_chat.jsonl" "$out/mixed_chats.jsonl" "${PACK_GROUPS:-1 2 3 4 5}" <<'PY'
import json, sys
chats = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
sizes = [int(k) for k in sys.argv[3].split()]
out, i, g = [], 0, 0
while i < len(chats):
    k = sizes[g % len(sizes)]
    out.append({"messages": [m for c in chats[i:i + k] for m in c["messages"]]})
    i, g = i + k, g + 1
with open(sys.argv[2], "w") as f:
    for c in out:
        f.write(json.dumps(c) + "\n")
PY
settings=(--model "$model" --data "$out/mixed_chats.jsonl" --epochs 1 --batch-size "${PACK_BATCH:-2}" --seq-len 384
    --rank 8 --alpha 16 --lr 0.001 --seed 1 --no-shuffle)
"$bin" data --model "$model" --data "$out/mixed_chats.jsonl" --seq-len 384 | head -7
for run in unpacked packed packed unpacked; do
    flag=()
    [ "$run" = packed ] && flag=(--packing)
    start=$(date +%s%N)
    "$bin" train "${settings[@]}" "${flag[@]}" --out "$out/$run" --overwrite >"$out/$run.log" 2>&1
    ms=$((($(date +%s%N) - start) / 1000000))
    echo "$run: $((ms / 1000)).$(printf %03d $((ms % 1000))) s, $(grep -c '^update ' "$out/$run.log" || true) updates, $(grep '^memory:' "$out/$run.log" | cut -d' ' -f2-5)"
done
