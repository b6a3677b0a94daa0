#!/usr/bin/env bash
# headline-h100: sweep=full (all 55,000 images, 20-epoch IIC trials) with 8 workers sharing one GPU and one
# study, then the sweep's 3 best trials on seeds 0-2, the configuration with the best mean val.mapped_acc chosen.
#   bash scripts/headline-h100.sh        (from the repository root, on a CUDA machine; about 10 minutes on an H100)
# WORKERS (8) sweep workers, SWEEP_S (140) seconds before they start no new trial; results in $OUT.
set -euo pipefail
source "$(dirname "$0")/common.sh"
OUT=${OUT:-outputs/reference/headline-h100}; SWEEP=${SWEEP:-outputs/sweeps/full/h100}
WORKERS=${WORKERS:-8}; SWEEP_S=${SWEEP_S:-140}
THREADS=$(( $(nproc) / WORKERS )); [ "$THREADS" -ge 1 ] || THREADS=1
FIXED=(model=conv optimizer=adam loss=iic trainer.epochs=20)   # what sweeps/full.yaml sets for every trial
LOGS=$(mktemp -d); mkdir -p "$OUT"

for i in $(seq "$WORKERS"); do
  "$PY" train.py -m sweep=full hydra.sweep.dir="$SWEEP" hydra.sweeper.storage="$SWEEP.journal.log" \
    trainer.threads="$THREADS" hydra.sweeper.timeout="$SWEEP_S" > "$LOGS/worker$i.log" 2>&1 &
done
wait
cp "$SWEEP/trials.csv" "$OUT/trials.csv"

# the 3 best trials, each over seeds 0-2 (sweep=seeds), all at once: 9 runs share the GPU
THREADS=$(( $(nproc) / 9 )); [ "$THREADS" -ge 1 ] || THREADS=1
for n in $(top_trials "$SWEEP/trials.csv" 3); do
  mapfile -t params < <(trial_params "$SWEEP/trials.csv" "$n")
  echo "${FIXED[*]} ${params[*]}" > "$SWEEP/top3-trial$n.overrides"
  "$PY" train.py -m sweep=seeds "${FIXED[@]}" "${params[@]}" trainer.threads="$THREADS" \
    hydra/launcher=joblib hydra.launcher.n_jobs=3 hydra.sweeper.n_jobs=3 \
    hydra.sweeper.study_name="full-h100-trial$n" hydra.sweeper.storage="$SWEEP.journal.log" \
    hydra.sweep.dir="$SWEEP/top3/trial$n" > "$LOGS/trial$n.log" 2>&1 &
done
wait
"${AESWEEP[@]}" collect "$SWEEP/top3" --out "$SWEEP/top3/runs.csv"
"${AESWEEP[@]}" compare "$SWEEP/top3" --format md > "$OUT/top3-over-seeds.md"
chosen=$(choose_over_seeds "$SWEEP/top3/runs.csv" "$OUT")
cp "$SWEEP/top3-$(basename "$chosen").overrides" "$OUT/overrides.txt"
echo "chosen: $chosen; logs in $LOGS"
