#!/usr/bin/env bash
# bf16-accuracy-cpu: the same runs in float32 and with bf16 autocast (trainer.amp=true; needs a CPU with native
# bf16, AVX512-BF16 or AMX): the blog's recipe on all data for 5 epochs, seeds 0-2, and an IIC recipe on 20,000
# images for 8 epochs, seeds 0-9.
#   bash scripts/bf16-accuracy-cpu.sh    (from the repository root; about 40 minutes on the 2-core CPU)
set -euo pipefail
source "$(dirname "$0")/common.sh"
OUT=${OUT:-outputs/reference/bf16-accuracy-cpu}; HERE=outputs/sweeps/bf16-accuracy; mkdir -p "$OUT"
IIC=(model=conv optimizer=adam loss=iic trainer.batch_size=256 data.subset=20000 trainer.epochs=8)
for precision in float32 bf16; do
  amp=false; [ $precision = bf16 ] && amp=true
  "$PY" train.py -m sweep=seeds device=cpu trainer.epochs=5 trainer.amp=$amp \
    hydra.sweeper.study_name="blog-$precision" hydra.sweeper.storage="$HERE/journal.log" \
    hydra.sweep.dir="$HERE/blog-$precision"
  cp "$HERE/blog-$precision/trials.csv" "$OUT/blog-recipe-$precision.csv"
  # ten seeds: a plain Hydra multirun, its runs gathered by aesweep collect
  "$PY" train.py -m 'seed=range(0,10)' device=cpu "${IIC[@]}" trainer.amp=$amp hydra.sweep.dir="$HERE/iic-$precision"
  "${AESWEEP[@]}" collect "$HERE/iic-$precision" --out "$OUT/iic-$precision.csv"
done
