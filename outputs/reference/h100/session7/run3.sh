# Session 7's third command on the H100, after run2.sh showed the weight-gradient kernels at 40% of the
# step's GPU time (25.7 us each): their atomic adds now relaxed (Triton's default acq_rel fences each).
#   bash outputs/reference/h100/session7/run3.sh   (from the repository root; everything in $OUT/results.tgz)
# 1. the bench: default (cuDNN) against default+triton+tf32+fused and default+triton;
# 2. tests/test_kernels.py (float32 on both sides) and the graphed-step test on triton;
# 3. tune_kernels.py for the weight-gradient launches only.
[ -n "$DRY_RUN" ] || source outputs/reference/h100/setup.sh || exit 1  # DRY_RUN=1 DEV=cpu: phases that run on a CPU
RES=/tmp/session7c; mkdir -p $RES; OUT=${OUT:-$PWD/h100-results}; mkdir -p $OUT; DEV=${DEV:-cuda}
pack() { tar czf $OUT/results.tgz -C $RES .; }
stamp() { echo "== ${SECONDS}s $*" | tee -a $RES/phases.txt; }

stamp bench
timeout 80 python3 -m aesweep bench --device $DEV --modes ${MODES:-default,default+triton,default+triton+tf32+fused} \
  --warmup 10 --steps 150 --repeats 3 --timeout 50 --out $RES/speed.csv > /dev/null 2> $RES/speed.err
cut -d'|' -f2,8,9,17,18,21 $RES/speed.md | tail -n +3 | head -4 || true; tail -3 $RES/speed.err; pack

stamp tests
timeout 80 python3 -m pytest -q -p no:cacheprovider --tb=line -x tests/test_kernels.py \
  "tests/test_cuda.py::test_graphed_step_on_triton_convolutions_trains_like_cudnn" > $RES/pytest.txt 2>&1
tail -4 $RES/pytest.txt; pack

stamp tune
timeout 40 python3 outputs/reference/h100/tune_kernels.py --only wgrad,bgrad > $RES/tune.txt 2>&1
grep -v "^  " $RES/tune.txt | cut -c1-70; stamp done; pack
