# Session 5's second command on a lent H100 (313 s there), after run1.sh showed the default step
# at 0.69 ms of GPU time (0.33 s/epoch) spread over ~36 cuDNN/cuBLAS/reduction kernels:
#   bash outputs/reference/h100/session5/run2.sh   (from the repository root; everything in $OUT/results.tgz)
# 1. profile_step.py: single switches (TF32 matmuls, fused optimizer, cuDNN trying every algorithm,
#    compile inside the graph) and their combination, profiling the combination with compile;
# 2. the bench's rows for the single switches, then default and default+compile with channels-last,
#    TF32 and the fused optimizer on (--override), eager as the loss reference;
# 3. the CUDA tests (tests/test_cuda.py, with the new compile-inside-the-graph test).
[ -n "$DRY_RUN" ] || source outputs/reference/h100/setup.sh || exit 1  # DRY_RUN=1 DEV=cpu MODES=.. VARIANTS=..
RES=/tmp/session5b; mkdir -p $RES; OUT=${OUT:-$PWD/h100-results}; mkdir -p $OUT; DEV=${DEV:-cuda}
pack() { tar czf $OUT/results.tgz -C $RES .; }
stamp() { echo "== ${SECONDS}s $*" | tee -a $RES/phases.txt; }
FAST=(--override trainer.channels_last=true --override trainer.matmul_precision=high --override optimizer.fused=true)

stamp variants
timeout 200 python3 outputs/reference/h100/profile_step.py --device $DEV --profile fast+compile \
  --variants ${VARIANTS:-default,tf32,fused,cudnn-all-algos,fast,compile,fast+compile,fast+autotune} \
  > $RES/profile-variants.txt 2>&1
grep -E "per step|failed" $RES/profile-variants.txt; pack

stamp bench
timeout 100 python3 -m aesweep bench --device $DEV --modes ${MODES:-default,eager,default+tf32,default+fused} \
  --warmup 10 --steps 150 --repeats 3 --timeout 60 --out $RES/speed-single.csv > /dev/null 2> $RES/speed-single.err
cut -d'|' -f2,8,9,17,18,21 $RES/speed-single.md | tail -n +3 | head -6; pack
timeout 100 python3 -m aesweep bench --device $DEV --modes ${FAST_MODES:-default,eager,default+compile} "${FAST[@]}" \
  --warmup 10 --steps 150 --repeats 3 --timeout 60 --out $RES/speed-fast.csv > /dev/null 2> $RES/speed-fast.err
cut -d'|' -f2,8,9,17,18,21 $RES/speed-fast.md | tail -n +3 | head -6; pack

stamp tests
timeout 100 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py > $RES/pytest.txt 2>&1; tail -3 $RES/pytest.txt
stamp done; pack
