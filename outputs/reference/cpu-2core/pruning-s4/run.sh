# Does pruning pay on the 2-core CPU? sweep=default (8,000 images, 5 epochs a trial), 16 trials, time box
# off, one torch thread per sweep, two sweeps at a time; three pruner arms x sampler seeds $SEEDS (0-3):
#   off     hydra.sweeper.pruner=null
#   median  the sweep file's MedianPruner(n_startup_trials=5, n_warmup_steps=2)
#   sha     SuccessiveHalvingPruner(min_resource=1, reduction_factor=3) (asynchronous successive halving)
#   bash outputs/reference/cpu-2core/pruning-s4/run.sh      (from the repository root; ~10 min a seed)
# then: aesweep bench pruning <arm> <off> --target ... for each seed (see README, Pruning that pays).
HERE=outputs/sweeps/default/pruning-s4; PY=${PY:-.venv/bin/python}; TRIALS=${TRIALS:-16}
sweep() {  # arm seed
  local arm=$1 seed=$2 pruner=()
  case $arm in
    off) pruner=(hydra.sweeper.pruner=null) ;;
    sha) pruner=(hydra.sweeper.pruner=null
                 'hydra.sweeper.pruner={_target_:optuna.pruners.SuccessiveHalvingPruner,min_resource:1,reduction_factor:3}') ;;
  esac
  $PY train.py -m sweep=default hydra.sweeper.timeout=null hydra.sweeper.n_trials=$TRIALS trainer.threads=1 \
    hydra.sweeper.sampler.seed=$seed hydra.sweeper.study_name=$arm-seed$seed \
    hydra.sweeper.storage=$HERE/journal-$arm-seed$seed.log hydra.sweep.dir=$HERE/$arm-seed$seed "${pruner[@]}" \
    > /tmp/pruning-s4-$arm-seed$seed.log 2>&1
}
export -f sweep; export HERE PY TRIALS
mkdir -p $HERE
for seed in ${SEEDS:-0 1 2 3}; do printf '%s\n' "off $seed" "median $seed" "sha $seed"; done |
  xargs -P 2 -L 1 bash -c 'sweep $0 $1'
