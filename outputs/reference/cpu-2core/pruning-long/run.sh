# Does pruning pay when trials are long? The 5-epoch `make sweep` leaves a pruner little to cut (a trial
# stopped at epoch 1 still costs a fifth of a full one; pruning-s5/ measured 1.9x fewer trial-seconds and
# no target reached 2x faster at the median). Real sweeps train longer (sweep=full: 20 epochs), so here
# the same sweep=default file with 15-epoch trials. Same sampler seed and trial budget (TRIALS, default 30)
# in every arm, time box off, one torch thread per sweep and two sweeps at a time on the 2-core CPU
# (xargs -P 2: the arms of a pair see the same contention), sampler seeds $SEEDS (default 0-3), arms $ARMS:
#   off   hydra.sweeper.pruner=null
#   sha   the file's own pruner: successive halving from epoch 1 (rungs at epochs 1, 3, 9)
#   sha3  successive halving from epoch 3 (rungs at 3, 9): IIC trials score ~0.4 after one epoch and
#         ~0.97 after fifteen, so an epoch-1 rung cuts them (seed 1 of the first run, session 8)
#   hb    Hyperband, epochs 1 to EPOCHS, reduction factor 3 (the best replayed pruner on 30-epoch trials)
# then `aesweep bench pruning` over every seed's pairs of each pruned arm with `off`:
#   bash outputs/reference/cpu-2core/pruning-long/run.sh                 (from the repository root; ~1 h 45 min)
#   ARMS=sha3 bash outputs/reference/cpu-2core/pruning-long/run.sh       (then: the sha3 arms, ~30 min)
# Targets: 0.9, 0.95, 0.96, 0.97, 0.975 fixed before the first run; unpruned-best (each seed's unpruned best)
# added after seed 0.
# Session 9, 30-epoch trials (24 a sweep, sampler seeds 0-1) in their own folder (then replay.sh there):
#   OUT=outputs/reference/cpu-2core/pruning-30ep EPOCHS=30 TRIALS=24 SEEDS="0 1" ARMS="off sha3" bash ...run.sh
#   OUT=outputs/reference/cpu-2core/pruning-30ep EPOCHS=30 TRIALS=24 SEEDS="0 1" ARMS=hb bash ...run.sh
# Session 10, seeds 2-3 of the unpruned and Hyperband arms (1 h 35 min), then replay.sh over all four:
#   OUT=outputs/reference/cpu-2core/pruning-30ep EPOCHS=30 TRIALS=24 SEEDS="2 3" ARMS="off hb" bash ...run.sh
OUT=${OUT:-outputs/reference/cpu-2core/pruning-long}; HERE=outputs/sweeps/default/$(basename $OUT); PY=${PY:-.venv/bin/python}
sweep() {  # arm seed
  local arm=$1 seed=$2 pruner=()
  [ $arm = off ] && pruner=(hydra.sweeper.pruner=null)
  [ $arm = sha3 ] && pruner=(hydra.sweeper.pruner.min_resource=3)
  [ $arm = hb ] && pruner=(hydra.sweeper.pruner=null "hydra.sweeper.pruner={_target_:optuna.pruners.HyperbandPruner,min_resource:1,max_resource:${EPOCHS:-15},reduction_factor:3}")
  /usr/bin/time -f "$arm-seed$seed: %e s wall, %M KB peak" \
    $PY train.py -m sweep=default trainer.epochs=${EPOCHS:-15} trainer.threads=1 \
    hydra.sweeper.timeout=null hydra.sweeper.n_trials=${TRIALS:-30} \
    hydra.sweeper.sampler.seed=$seed hydra.sweeper.study_name=$arm-seed$seed \
    hydra.sweeper.storage=$HERE/journal-$arm-seed$seed.log hydra.sweep.dir=$HERE/$arm-seed$seed \
    "${pruner[@]}" > /tmp/pruning-long-$arm-seed$seed.log 2>&1
  tail -n 1 /tmp/pruning-long-$arm-seed$seed.log
  cp $HERE/$arm-seed$seed/trials.csv $OUT/trials-$arm-seed$seed.csv
}
export -f sweep; export HERE OUT PY
mkdir -p $HERE $OUT
# the long unpruned arms first, so the two slots stay busy
for seed in ${SEEDS:-0 1 2 3}; do for arm in ${ARMS:-off sha}; do echo "$arm $seed"; done; done |
  xargs -P ${P:-2} -L 1 bash -c 'sweep $0 $1'
for arm in sha sha3 hb; do
  pairs=(); for pruned in $OUT/trials-$arm-seed*.csv; do [ -f $pruned ] && pairs+=($pruned ${pruned/trials-$arm/trials-off}); done
  [ ${#pairs[@]} -gt 0 ] && $PY -m aesweep bench pruning "${pairs[@]}" \
    --target ${TARGET:-0.9,0.95,0.96,0.97,0.975,unpruned-best} --out $OUT/pruning-$arm.csv | tail -n 1
done
