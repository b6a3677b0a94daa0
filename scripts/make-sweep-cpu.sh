#!/usr/bin/env bash
# make-sweep-cpu: `make sweep` as a new user runs it (sweep=default: each trial over seeds 0-2, the best
# confirmed on seeds 10-12, the blog's recipe measured as the baseline), timed, on an otherwise idle CPU;
# then its best.yaml re-run alone on seeds 20-22, which neither the search nor the confirmation used.
#   bash scripts/make-sweep-cpu.sh       (from a fresh clone's root; about 30 minutes on the 2-core CPU)
set -euo pipefail
source "$(dirname "$0")/common.sh"
OUT=${OUT:-outputs/reference/make-sweep-cpu}; mkdir -p "$OUT"
if [ -e outputs/optuna/journal.log ]; then
  echo "make-sweep-cpu: outputs/optuna/journal.log exists; run this from a fresh clone (the baseline and the" \
       "study must be measured anew)" >&2
  exit 2
fi

make install data
start=$(date +%s)
/usr/bin/time -v make sweep 2>&1 | tee "$OUT/make-sweep.log"
echo "make sweep (search + confirmation + baseline): $(( $(date +%s) - start )) s wall" | tee -a "$OUT/make-sweep.log"

SWEEP=$(ls -d outputs/sweeps/default/*/ | tail -n 1)
BASELINE=$(ls -d outputs/sweeps/baseline/*/ | tail -n 1)
cp "$SWEEP/trials.csv" "$SWEEP/confirm.csv" "$SWEEP/best.yaml" "$OUT/"
cp "$BASELINE/trials.csv" "$OUT/baseline-trials.csv"

# best.yaml alone (no sweeper), seeds 20-22, two runs at a time as in the sweep
mapfile -t BEST < <(sed -n 's/^- //p' "$SWEEP/best.yaml")
for seed in 20 21 22; do
  "$PY" train.py "${BEST[@]}" seed=$seed hydra.run.dir="outputs/runs/best-yaml-seed$seed" &
  if [ "$seed" = 21 ]; then wait; fi
done
wait
"${AESWEEP[@]}" collect outputs/runs/best-yaml-seed20 outputs/runs/best-yaml-seed21 outputs/runs/best-yaml-seed22 \
  --out "$OUT/best-yaml-seeds-20-22.csv"
