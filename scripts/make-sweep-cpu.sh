#!/usr/bin/env bash
# make-sweep-cpu: the sweep `make sweep` runs (sweep=default: 100 trials at most, successive halving, an
# 18-minute time box) on an otherwise idle CPU, then its 3 best trials on seeds 0-2, one torch thread per run,
# two runs at a time; the configuration with the best mean val.mapped_acc chosen.
#   bash scripts/make-sweep-cpu.sh       (from the repository root; about 21 minutes on the 2-core CPU)
set -euo pipefail
source "$(dirname "$0")/common.sh"
OUT=${OUT:-outputs/reference/make-sweep-cpu}; SWEEP=${SWEEP:-outputs/sweeps/default/make-sweep-cpu}
FIXED=(model=conv data.subset=8000 trainer.epochs=5)   # what sweeps/default.yaml sets for every trial
mkdir -p "$OUT"

/usr/bin/time -v "$PY" train.py -m sweep=default hydra.sweeper.study_name=default-cpu \
  hydra.sweeper.storage="$SWEEP.journal.log" hydra.sweep.dir="$SWEEP"
cp "$SWEEP/trials.csv" "$SWEEP/best.yaml" "$OUT/"

for n in $(top_trials "$SWEEP/trials.csv" 3); do
  mapfile -t params < <(trial_params "$SWEEP/trials.csv" "$n")
  "$PY" train.py -m sweep=seeds "${FIXED[@]}" "${params[@]}" trainer.threads=1 \
    hydra/launcher=joblib hydra.launcher.n_jobs=2 hydra.sweeper.n_jobs=2 \
    hydra.sweeper.study_name="default-cpu-trial$n" hydra.sweeper.storage="$SWEEP.journal.log" \
    hydra.sweep.dir="$SWEEP/top3/trial$n"
done
"${AESWEEP[@]}" collect "$SWEEP/top3" --out "$OUT/top3-over-seeds-runs.csv"
"${AESWEEP[@]}" compare "$SWEEP/top3" --format md > "$OUT/top3-over-seeds.md"
