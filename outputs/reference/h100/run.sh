# The GPU measurements behind outputs/reference/h100/, as one command on a lent H100 (under 10 minutes):
#   bash outputs/reference/h100/run.sh      (from the repository root; results under $OUT, or ./h100-results)
# 1. the CUDA tests; 2. the speed bench; 3. the headline sweep (8 workers on one GPU, one study);
# 4. its top 3 trials over seeds 0-2, chosen on validation. Trials/hour (trials.csv) was a second command:
#   source outputs/reference/h100/setup.sh; aesweep bench trials --device cuda --concurrency 1,8 --trials 8 \
#     --subset 5000 --epochs 2      (via python3 -m aesweep; about 3 minutes)
# BUDGET_S (default 560) bounds the whole script: the re-seeding gets whatever time is left.
[ -n "$DRY_RUN" ] || source outputs/reference/h100/setup.sh || exit 1  # DRY_RUN=1: this machine, CPU
RES=/tmp/h100-results; mkdir -p $RES; OUT=${OUT:-$PWD/h100-results}; mkdir -p $OUT
pack() { tar czf $OUT/results.tgz --exclude='*.pt' -C $RES . -C $PWD outputs/sweeps outputs/optuna 2>/dev/null; }
stamp() { echo "== ${SECONDS}s $*" | tee -a $RES/phases.txt; }

stamp tests
timeout 60 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py > $RES/pytest.txt 2>&1; tail -3 $RES/pytest.txt

stamp speed
timeout 95 python3 -m aesweep bench --device ${DEV:-cuda} \
  --modes seed-loop,default,eager,cudnn_benchmark,cuda_graph,cuda_graph+amp,amp,batch=1024 \
  --warmup 10 --steps 150 --repeats 3 --timeout 40 --out $RES/speed.csv > /dev/null 2> $RES/speed.err
cut -d'|' -f2,8,9,18 $RES/speed.md | head -12; pack

stamp sweep
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 5 > $RES/gpu_util.csv &
SMI=$!; WORKERS=()
for i in 1 2 3 4 5 6 7 8; do
  timeout 230 python3 train.py -m sweep=full hydra.sweep.dir=outputs/sweeps/full/h100 trainer.threads=2 \
    hydra.sweeper.timeout=${SWEEP_S:-140} $EXTRA > $RES/sweep_worker$i.log 2>&1 &
  WORKERS+=($!)
done
wait "${WORKERS[@]}"; kill $SMI; tail -16 $RES/sweep_worker1.log | cut -c1-250; pack

LEFT=$(( ${BUDGET_S:-560} - SECONDS - 10 ))
stamp "reseed (${LEFT}s left)"
timeout $LEFT python3 -m aesweep reseed outputs/sweeps/full/h100 --top 3 --seeds 0,1,2 --jobs 9 \
  --timeout $(( LEFT - 5 )) > $RES/reseed.md 2> $RES/reseed.err; cat $RES/reseed.md $RES/reseed.err | cut -c1-300
pack; stamp done
