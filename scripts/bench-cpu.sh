#!/usr/bin/env bash
# bench-cpu: the project's training loop against the blog's loop (blog model, batch 128) on this CPU, then the
# peak memory of one real `python train.py` epoch on all 55,000 images.
#   bash scripts/bench-cpu.sh            (from the repository root; about 15 minutes on the 2-core CPU)
# Run it on an otherwise idle machine: other processes on the cores change every figure.
set -euo pipefail
source "$(dirname "$0")/common.sh"
OUT=${OUT:-outputs/reference/bench-cpu}; mkdir -p "$OUT"
"${AESWEEP[@]}" bench --device cpu --modes blog-loop,default,eager,channels_last,channels_last+amp \
  --steps 60 --repeats 5 --out "$OUT/speed.csv"
for i in 1 2 3 4 5 6; do   # the host's speed drifts: judge the ratio on pairs run side by side
  "${AESWEEP[@]}" bench --device cpu --modes blog-loop,default --steps 60 --repeats 5 --out "$OUT/speed-pair$i.csv"
done
for i in 1 2; do           # the reference runs scored in batches of 1024 (eval.batch_size is 512 by default)
  "${AESWEEP[@]}" bench memory --device cpu --override eval.batch_size=1024 --out "$OUT/memory-$i.csv"
done
# one file for the six pairs and one for the two memory runs, markdown only
for i in 1 2 3 4 5 6; do printf '## pair %s\n\n' "$i"; cat "$OUT/speed-pair$i.md"; echo; done > "$OUT/speed-pairs.md"
for i in 1 2; do printf '## run %s\n\n' "$i"; cat "$OUT/memory-$i.md"; echo; done > "$OUT/memory.md"
rm -f "$OUT"/*.csv "$OUT"/*.log "$OUT"/speed-pair[0-9].md "$OUT"/memory-[0-9].md
