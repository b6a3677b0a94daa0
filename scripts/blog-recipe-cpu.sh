#!/usr/bin/env bash
# blog-recipe-cpu: `python train.py`, the blog's recipe (model=blog, SGD, MSE), all 55,000 images, 20 epochs,
# in float32 as the reference run was.
#   bash scripts/blog-recipe-cpu.sh      (from the repository root; about 11 minutes on the 2-core CPU)
set -euo pipefail
source "$(dirname "$0")/common.sh"
OUT=${OUT:-outputs/reference/blog-recipe-cpu}; RUN=outputs/runs/blog-recipe-cpu; mkdir -p "$OUT"
"$PY" train.py device=cpu trainer.amp=false hydra.run.dir="$RUN"
cp "$RUN/metrics.json" "$OUT/metrics.json"
