#!/usr/bin/env bash
# pruning-cpu: sweep=default with and without a pruner - same sampler seed, same trial budget, time box off, each
# sweep in a storage of its own - then `aesweep bench pruning` over the pairs (and `bench curves`, a replay).
#   bash scripts/pruning-cpu.sh [STUDY ...]     (from the repository root; default: every study below)
#   make-sweep  sweep=default as shipped (successive halving from epoch 1) against none, 100 trials, sampler
#               seeds 0-4, one sweep at a time, torch's default threads            (about 55 minutes a seed)
#   16-trials   the same pruner against none, 16 trials, seeds 0-3, two sweeps at a time, one thread each;
#               then the pruned studies continued to 40 trials (a larger n_trials resumes a study)  (~15 min a seed)
#   15-epochs   trainer.epochs=15, 30 trials, halving from epoch 3 against none, seeds 0-3, two at a time,
#               then ten pruners replayed over the unpruned sweeps' learning curves  (about 2 hours)
#   30-epochs   trainer.epochs=30, 24 trials, Hyperband against none, seeds 0-3, two at a time, then
#               `aesweep bench curves` over the unpruned sweeps                    (about 3 hours)
set -euo pipefail
source "$(dirname "$0")/common.sh"
OUT=${OUT:-outputs/reference/pruning-cpu}; HERE=outputs/sweeps/default/pruning; mkdir -p "$OUT" "$HERE"
P=optuna.pruners
HALVING_FROM_3=(hydra.sweeper.pruner.min_resource=3)
HYPERBAND=(hydra.sweeper.pruner=null "hydra.sweeper.pruner={_target_:$P.HyperbandPruner,min_resource:1,max_resource:30,reduction_factor:3}")

sweep() {  # study arm seed trials threads [overrides...]: one sweep, its trials.csv in $HERE/<study>/<arm>-seed<seed>/
  local study=$1 arm=$2 seed=$3 trials=$4 threads=$5; shift 5
  local name=$study-$arm-seed$seed pruner=()
  [ "$arm" = none ] && pruner=(hydra.sweeper.pruner=null)
  "$PY" train.py -m sweep=default hydra.sweeper.timeout=null hydra.sweeper.n_trials="$trials" \
    hydra.sweeper.sampler.seed="$seed" hydra.sweeper.study_name="$name" hydra.sweeper.baseline_overrides=null \
    hydra.sweeper.storage="$HERE/$study/journal-$arm-seed$seed.log" hydra.sweep.dir="$HERE/$study/$arm-seed$seed" \
    ${threads:+trainer.threads=$threads} "${pruner[@]}" "$@" > "$HERE/$name.log" 2>&1
}
two_at_a_time() { xargs -P 2 -L 1 bash -c 'sweep "$@"' _; }
export -f sweep; export PY HERE
pairs() {  # study arm: WITH WITHOUT pairs of every seed that ran
  local found=()
  for with in "$HERE/$1/$2"-seed*; do found+=("$with" "${with/\/$2-seed//none-seed}"); done
  echo "${found[@]}"
}

for study in ${@:-make-sweep 16-trials 15-epochs 30-epochs}; do
  case $study in
    make-sweep)
      for seed in 0 1 2 3 4; do for arm in halving none; do sweep make-sweep $arm $seed 100 ""; done; done
      "${AESWEEP[@]}" bench pruning $(pairs make-sweep halving) --target 0.9,0.95,0.96,0.963,0.965 \
        --out "$OUT/make-sweep-100-trials.csv" ;;
    16-trials)
      for seed in 0 1 2 3; do printf '%s\n' "16-trials none $seed 16 1" "16-trials halving $seed 16 1"; done | two_at_a_time
      "${AESWEEP[@]}" bench pruning $(pairs 16-trials halving) --target 0.8,0.9 --out "$OUT/16-trials-halving.csv"
      for seed in 0 1 2 3; do echo "16-trials halving $seed 40 1"; done | two_at_a_time
      "${AESWEEP[@]}" bench pruning $(pairs 16-trials halving) --target 0.8,0.9 --out "$OUT/40-trials-halving.csv" ;;
    15-epochs)
      for seed in 0 1 2 3; do printf '%s\n' "15-epochs none $seed 30 1 trainer.epochs=15" \
        "15-epochs halving-from-3 $seed 30 1 trainer.epochs=15 ${HALVING_FROM_3[*]}"; done | two_at_a_time
      "${AESWEEP[@]}" bench pruning $(pairs 15-epochs halving-from-3) --out "$OUT/15-epochs-halving-from-3.csv" \
        --target 0.9,0.95,0.96,0.97,0.975,unpruned-best
      replay=()
      for pruner in "SuccessiveHalvingPruner, min_resource: 1, reduction_factor: 3" \
                    "SuccessiveHalvingPruner, min_resource: 3, reduction_factor: 3" \
                    "SuccessiveHalvingPruner, min_resource: 2, reduction_factor: 3" \
                    "SuccessiveHalvingPruner, min_resource: 3, reduction_factor: 4" \
                    "SuccessiveHalvingPruner, min_resource: 5, reduction_factor: 3" \
                    "HyperbandPruner, min_resource: 1, max_resource: 15, reduction_factor: 3" \
                    "HyperbandPruner, min_resource: 3, max_resource: 15, reduction_factor: 3" \
                    "MedianPruner, n_startup_trials: 5, n_warmup_steps: 2" \
                    "MedianPruner, n_startup_trials: 5, n_warmup_steps: 4" \
                    "PercentilePruner, percentile: 33, n_startup_trials: 5, n_warmup_steps: 2"; do
        replay+=(--replay "{_target_: $P.$pruner}")
      done
      "${AESWEEP[@]}" bench pruning "$HERE"/15-epochs/none-seed* "${replay[@]}" \
        --target 0.96,0.97,unpruned-best --out "$OUT/15-epochs-replay.csv" ;;
    30-epochs)
      for seed in 0 1 2 3; do printf '%s\n' "30-epochs none $seed 24 1 trainer.epochs=30" \
        "30-epochs hyperband $seed 24 1 trainer.epochs=30 ${HYPERBAND[*]}"; done | two_at_a_time
      "${AESWEEP[@]}" bench pruning $(pairs 30-epochs hyperband) --out "$OUT/30-epochs-hyperband.csv" \
        --target 0.9,0.95,0.96,0.97,0.975,unpruned-best
      "${AESWEEP[@]}" bench curves "$HERE"/30-epochs/none-seed* --out "$OUT/30-epochs-curves.csv" ;;
    *) echo "unknown study: $study (make-sweep, 16-trials, 15-epochs, 30-epochs)" >&2; exit 2 ;;
  esac
done
rm -f "$OUT"/*.csv   # keep the markdown tables
