#!/usr/bin/env bash
# pruning-h100: sweep=full (all 55,000 images, 20-epoch IIC trials) in three arms side by side on one GPU, same
# sampler seed and TRIALS (12) trials each, WORKERS (3) workers per arm so every arm sees the same contention:
#   none      hydra.sweeper.pruner=null
#   halving   the file's SuccessiveHalvingPruner(min_resource=5, reduction_factor=3)
#   median    MedianPruner(n_startup_trials=8, n_warmup_steps=5), run for the contention; its table is not kept
# then `aesweep bench pruning` of halving against none at 0.9, 0.95, 0.97.
#   bash scripts/pruning-h100.sh         (from the repository root, on a CUDA machine; about 5 minutes on an H100)
set -euo pipefail
source "$(dirname "$0")/common.sh"
OUT=${OUT:-outputs/reference/pruning-h100}; HERE=outputs/sweeps/full/pruning; mkdir -p "$OUT" "$HERE"
TRIALS=${TRIALS:-12}; WORKERS=${WORKERS:-3}; ARMS=(none halving median)
THREADS=$(( $(nproc) / (WORKERS * ${#ARMS[@]}) )); [ "$THREADS" -ge 1 ] || THREADS=1
for arm in "${ARMS[@]}"; do
  pruner=()
  [ $arm = none ] && pruner=(hydra.sweeper.pruner=null)
  [ $arm = median ] && pruner=(hydra.sweeper.pruner=null
    'hydra.sweeper.pruner={_target_:optuna.pruners.MedianPruner,n_startup_trials:8,n_warmup_steps:5}')
  for i in $(seq "$WORKERS"); do
    "$PY" train.py -m sweep=full hydra.sweeper.study_name=prune-$arm hydra.sweeper.storage="$HERE/journal.log" \
      hydra.sweep.dir="$HERE/$arm" hydra.sweeper.n_trials="$TRIALS" hydra.sweeper.timeout=null \
      hydra.sweeper.baseline_overrides=null trainer.threads="$THREADS" "${pruner[@]}" > "$HERE/$arm-worker$i.log" 2>&1 &
  done
done
wait
cp "$HERE/none/trials.csv" "$OUT/trials-none.csv"
cp "$HERE/halving/trials.csv" "$OUT/trials-halving.csv"
"${AESWEEP[@]}" bench pruning "$HERE/halving" "$HERE/none" --target 0.9,0.95,0.97 --out "$OUT/pruning-halving.csv"
rm -f "$OUT/pruning-halving.csv"
