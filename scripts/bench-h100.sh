#!/usr/bin/env bash
# bench-h100: training speed of the blog model at batch 128 on a GPU (every mode against the blog's loop, then
# what is left inside the whole-step CUDA graph), and trials per hour one at a time against 8 at once.
#   bash scripts/bench-h100.sh           (from the repository root, on a CUDA machine; about 6 minutes on an H100)
# The reference folder's speed-tf32-fused.md has no command here: its two extra rows are no bench modes.
set -euo pipefail
source "$(dirname "$0")/common.sh"
OUT=${OUT:-outputs/reference/bench-h100}; mkdir -p "$OUT"
TIMED=(--warmup 10 --steps 150 --repeats 3)
"${AESWEEP[@]}" bench --device cuda "${TIMED[@]}" --out "$OUT/speed.csv" \
  --modes blog-loop,default,eager,cudnn_benchmark,cuda_graph,cuda_graph+amp,amp,batch=1024
"${AESWEEP[@]}" bench --device cuda "${TIMED[@]}" --out "$OUT/speed-inside-graph.csv" \
  --modes default,eager,default+channels_last,default+compile
"${AESWEEP[@]}" bench trials --device cuda --concurrency 1,8 --trials 8 --subset 5000 --epochs 2 \
  --out "$OUT/trials-per-hour.csv"
rm -f "$OUT"/*.csv "$OUT"/*.log   # keep the markdown tables
