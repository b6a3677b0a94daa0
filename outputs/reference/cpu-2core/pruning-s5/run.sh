# Does pruning pay over a whole `make sweep`? sweep=default as shipped (8,000 images, 5 epochs a trial,
# successive halving) against the same file without a pruner: sampler seed $SEED (default 0), 100 trials
# each, time box off, one sweep after the other on the otherwise idle 2-core CPU (torch's default
# threads), then `aesweep bench pruning` over every seed's pair found here:
#   bash outputs/reference/cpu-2core/pruning-s5/run.sh          (from the repository root; about 55 minutes)
#   SEED=1 bash outputs/reference/cpu-2core/pruning-s5/run.sh   (the same with sampler seed 1; seeds 2, 3 likewise)
# The 16-trial comparison over seeds 0-3 (pruning-s4/) found every target first reached by one of TPE's
# random start-up trials; here the targets are the ones a whole sweep is run for.
SEED=${SEED:-0}; HERE=outputs/sweeps/default/pruning-s5; PY=${PY:-.venv/bin/python}
OUT=outputs/reference/cpu-2core/pruning-s5
mkdir -p $HERE
for arm in ${ARMS:-sha off}; do
  pruner=(); [ $arm = off ] && pruner=(hydra.sweeper.pruner=null)
  /usr/bin/time -v $PY train.py -m sweep=default hydra.sweeper.timeout=null hydra.sweeper.n_trials=${TRIALS:-100} \
    hydra.sweeper.sampler.seed=$SEED hydra.sweeper.study_name=$arm-seed$SEED \
    hydra.sweeper.storage=$HERE/journal-$arm-seed$SEED.log hydra.sweep.dir=$HERE/$arm-seed$SEED \
    "${pruner[@]}" > /tmp/pruning-s5-$arm-seed$SEED.log 2>&1
  tail -n 30 /tmp/pruning-s5-$arm-seed$SEED.log | grep -E "Elapsed|Maximum resident|best"
  cp $HERE/$arm-seed$SEED/trials.csv $OUT/trials-$arm-seed$SEED.csv
done
pairs=(); for sha in $OUT/trials-sha-seed*.csv; do pairs+=($sha ${sha/trials-sha/trials-off}); done
$PY -m aesweep bench pruning "${pairs[@]}" --target ${TARGET:-0.9,0.95,0.96,0.963,0.965} --out $OUT/pruning.csv
