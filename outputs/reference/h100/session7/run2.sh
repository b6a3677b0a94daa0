# Session 7's second command on the H100, after run1.sh (triton 0.250 s/epoch, +TF32 +fused 0.214, tuned
# tiles 0.194; cuDNN 0.323; val.mapped_acc equal over seeds 0-2):
#   bash outputs/reference/h100/session7/run2.sh   (from the repository root; everything in $OUT/results.tgz)
# 1. tests/test_kernels.py (float32 on both sides now) and the graphed-step test on triton;
# 2. the bench with the tuned tiles now in aesweep.kernels: default (cuDNN) against default+triton+tf32+fused;
# 3. profile_step.py: triton+tf32+fused with and without the weight gradients on a side stream, profiled;
# 4. tune_kernels.py again, every line, for the tiles' table.
# As run: the side-stream experiment (variant triton+tf32+fused+overlap, aesweep.kernels.OVERLAP_WEIGHT_GRADIENTS)
# measured 0.418 vs 0.414 ms and was then removed, so that variant no longer exists; the tests phase hit its
# 60-s timeout after 5 passes (run2-pytest.txt; compiling the float32 variants) - run3.sh ran them all.
[ -n "$DRY_RUN" ] || source outputs/reference/h100/setup.sh || exit 1  # DRY_RUN=1 DEV=cpu: phases that run on a CPU
RES=/tmp/session7b; mkdir -p $RES; OUT=${OUT:-$PWD/h100-results}; mkdir -p $OUT; DEV=${DEV:-cuda}
pack() { tar czf $OUT/results.tgz -C $RES .; }
stamp() { echo "== ${SECONDS}s $*" | tee -a $RES/phases.txt; }

stamp tests
timeout 60 python3 -m pytest -q -p no:cacheprovider --tb=short tests/test_kernels.py \
  "tests/test_cuda.py::test_graphed_step_on_triton_convolutions_trains_like_cudnn" > $RES/pytest.txt 2>&1
grep -E "^E |passed|failed" $RES/pytest.txt | head -12; pack

stamp bench
timeout 100 python3 -m aesweep bench --device $DEV --modes ${MODES:-default,default+triton+tf32+fused} \
  --warmup 10 --steps 150 --repeats 3 --timeout 60 --out $RES/speed.csv > /dev/null 2> $RES/speed.err
cut -d'|' -f2,8,9,17,18,21 $RES/speed.md | tail -n +3 | head -4 || true; tail -5 $RES/speed.err; pack

stamp profile
timeout 70 python3 outputs/reference/h100/profile_step.py --device $DEV --profile triton+tf32+fused+overlap \
  --variants ${VARIANTS:-triton+tf32+fused,triton+tf32+fused+overlap} > $RES/profile.txt 2>&1
grep -E "per step|failed" $RES/profile.txt; grep -A32 "Self CUDA %" $RES/profile.txt | cut -c1-62,120-200 | head -34
pack

stamp tune
timeout 90 python3 outputs/reference/h100/tune_kernels.py --json $RES/tiles.json > $RES/tune.txt 2>&1
grep -v "^  " $RES/tune.txt | cut -c1-70; stamp done; pack
