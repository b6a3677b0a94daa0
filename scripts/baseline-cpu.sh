#!/usr/bin/env bash
# baseline-cpu: `python train.py -m sweep=baseline`, the blog's recipe on 8,000 images for 5 epochs (the budget
# of sweep=default) over its seeds, in float32 as the reference runs were, into a storage of its own.
#   bash scripts/baseline-cpu.sh         (from the repository root; about 7 minutes on the 2-core CPU)
set -euo pipefail
source "$(dirname "$0")/common.sh"
OUT=${OUT:-outputs/reference/baseline-cpu}; HERE=outputs/sweeps/baseline/baseline-cpu; mkdir -p "$OUT"
"$PY" train.py -m sweep=baseline device=cpu trainer.amp=false \
  hydra.sweeper.storage="$HERE/journal.log" hydra.sweep.dir="$HERE"
cp "$HERE/trials.csv" "$OUT/trials.csv"
