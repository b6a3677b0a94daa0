# Does pruning pay over a whole `make sweep`? sweep=default as shipped (8,000 images, 5 epochs a trial,
# successive halving) against the same file without a pruner: sampler seed 0, 100 trials each, time box
# off, one sweep after the other on the otherwise idle 2-core CPU (torch's default threads), then
#   aesweep bench pruning <sha> <off> --target 0.9,0.95,0.96,0.965
#   bash outputs/reference/cpu-2core/pruning-s5/run.sh     (from the repository root; about 50 minutes)
# The 16-trial comparison over seeds 0-3 (pruning-s4/) found every target first reached by one of TPE's
# random start-up trials; here the targets are the ones a whole sweep is run for.
HERE=outputs/sweeps/default/pruning-s5; PY=${PY:-.venv/bin/python}; OUT=outputs/reference/cpu-2core/pruning-s5
mkdir -p $HERE
for arm in ${ARMS:-sha off}; do
  pruner=(); [ $arm = off ] && pruner=(hydra.sweeper.pruner=null)
  /usr/bin/time -v $PY train.py -m sweep=default hydra.sweeper.timeout=null hydra.sweeper.n_trials=${TRIALS:-100} \
    hydra.sweeper.study_name=$arm hydra.sweeper.storage=$HERE/journal-$arm.log hydra.sweep.dir=$HERE/$arm \
    "${pruner[@]}" > /tmp/pruning-s5-$arm.log 2>&1
  tail -n 30 /tmp/pruning-s5-$arm.log | grep -E "Elapsed|Maximum resident|best" ; cp $HERE/$arm/trials.csv $OUT/trials-$arm.csv
done
$PY -m aesweep bench pruning $HERE/sha $HERE/off --target ${TARGET:-0.9,0.95,0.96,0.965} --out $OUT/pruning.csv
