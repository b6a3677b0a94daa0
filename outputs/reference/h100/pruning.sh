# Prepared for the next GPU session (not yet run on a GPU): does pruning pay on the H100?
#   bash outputs/reference/h100/pruning.sh     (from the repository root; about 6 minutes on an H100)
# The headline sweep twice at once on one GPU, same sampler seed and trial budget: study prune-on
# (MedianPruner from sweeps/full.yaml) and prune-off (hydra.sweeper.pruner=null), 4 workers each, so
# both see the same contention; then trial-seconds to a target for each (aesweep bench pruning).
[ -n "$DRY_RUN" ] || source outputs/reference/h100/setup.sh || exit 1  # DRY_RUN=1: this machine, CPU
OUT=${OUT:-$PWD/h100-results}; LOGS=/tmp/pruning-logs; mkdir -p $OUT $LOGS; TRIALS=${TRIALS:-24}; PIDS=()
for study in prune-on prune-off; do
  extra=""; [ $study = prune-off ] && extra="hydra.sweeper.pruner=null"
  for i in 1 2 3 4; do
    timeout ${LIMIT_S:-420} python3 train.py -m sweep=full hydra.sweeper.study_name=$study \
      hydra.sweep.dir=outputs/sweeps/full/$study hydra.sweeper.n_trials=$TRIALS hydra.sweeper.timeout=null \
      trainer.threads=2 $extra $EXTRA > $LOGS/$study-worker$i.log 2>&1 &
    PIDS+=($!)
  done
done
wait "${PIDS[@]}"; tar czf $OUT/logs.tgz -C $LOGS .  # the device returns at most 8 files
for study in prune-on prune-off; do cp outputs/sweeps/full/$study/trials.csv $OUT/$study-trials.csv; done
python3 -m aesweep bench pruning outputs/sweeps/full/prune-on outputs/sweeps/full/prune-off \
  --target ${TARGET:-0.97} --out $OUT/pruning.csv
