# Does pruning pay on the 2-core CPU? sweep=default (8,000 images, 5 epochs a trial), time box off, one
# torch thread per sweep, two sweeps at a time, sampler seeds $SEEDS (default 0-3), three pruner arms:
#   off     hydra.sweeper.pruner=null
#   median  the sweep file's MedianPruner(n_startup_trials=5, n_warmup_steps=2)
#   sha     SuccessiveHalvingPruner(min_resource=1, reduction_factor=3) (asynchronous successive halving)
#   bash outputs/reference/cpu-2core/pruning-s4/run.sh          (from the repository root; ~10 min a seed)
#     step 1: each arm with the same trial budget, 16 trials
#   STEP=2 bash outputs/reference/cpu-2core/pruning-s4/run.sh   (~5 min a seed)
#     step 2, equal time rather than equal trials: each sha study continued to 40 trials, about the
#     trial-seconds of 16 unpruned ones (the same command with a larger n_trials resumes the study, and
#     trial k still samples with its own seed, so this is what a 40-trial sweep would have run)
# then: aesweep bench pruning <arm> <off> ... --target 0.8,0.9 (docs/performance.md, "Pruning that pays").
HERE=outputs/sweeps/default/pruning-s4; PY=${PY:-.venv/bin/python}
sweep() {  # arm seed trials
  local arm=$1 seed=$2 trials=$3 pruner=()
  case $arm in
    off) pruner=(hydra.sweeper.pruner=null) ;;
    sha) pruner=(hydra.sweeper.pruner=null
                 'hydra.sweeper.pruner={_target_:optuna.pruners.SuccessiveHalvingPruner,min_resource:1,reduction_factor:3}') ;;
  esac
  $PY train.py -m sweep=default hydra.sweeper.timeout=null hydra.sweeper.n_trials=$trials trainer.threads=1 \
    hydra.sweeper.sampler.seed=$seed hydra.sweeper.study_name=$arm-seed$seed \
    hydra.sweeper.storage=$HERE/journal-$arm-seed$seed.log hydra.sweep.dir=$HERE/$arm-seed$seed "${pruner[@]}" \
    >> /tmp/pruning-s4-$arm-seed$seed.log 2>&1
}
export -f sweep; export HERE PY
mkdir -p $HERE
for seed in ${SEEDS:-0 1 2 3}; do
  if [ "${STEP:-1}" = 1 ]; then printf '%s\n' "off $seed 16" "median $seed 16" "sha $seed 16"; else echo "sha $seed 40"; fi
done | xargs -P 2 -L 1 bash -c 'sweep $0 $1 $2'
