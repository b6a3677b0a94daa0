# Session 7's command on a lent H100: aesweep.kernels (trainer.conv_kernels=triton) against cuDNN.
#   bash outputs/reference/h100/session7/run1.sh   (from the repository root; everything in $OUT/results.tgz)
# 1. the kernels' tests compiled on the GPU (tests/test_kernels.py) and the graphed-step test with them;
# 2. the bench: default (cuDNN), default+triton, default+triton+tf32+fused, eager as the loss reference
#    (as run it also asked for default+tf32+fused, which is no mode: the bench refused, see run1-output.txt);
# 3. profile_step.py: the same variants plus compile, profiling triton+tf32+fused kernel by kernel;
# 4. tune_kernels.py: each launch's time per tile configuration, inside a CUDA graph; then profile_step.py
#    again with the fastest tiles (--tiles);
# 5. val.mapped_acc of the seed recipe (20 epochs, all 55,000 images) with cuDNN and with triton, seeds 0-2.
[ -n "$DRY_RUN" ] || source outputs/reference/h100/setup.sh || exit 1  # DRY_RUN=1 DEV=cpu: phases that run on a CPU
RES=/tmp/session7; mkdir -p $RES; OUT=${OUT:-$PWD/h100-results}; mkdir -p $OUT; DEV=${DEV:-cuda}
pack() { tar czf $OUT/results.tgz -C $RES .; }
stamp() { echo "== ${SECONDS}s $*" | tee -a $RES/phases.txt; }

stamp tests
timeout 90 python3 -m pytest -q -p no:cacheprovider tests/test_kernels.py \
  "tests/test_cuda.py::test_graphed_step_on_triton_convolutions_trains_like_cudnn" > $RES/pytest.txt 2>&1
tail -3 $RES/pytest.txt; pack

stamp bench
timeout 120 python3 -m aesweep bench --device $DEV \
  --modes ${MODES:-default,eager,default+triton,default+triton+tf32+fused,default+tf32+fused} \
  --warmup 10 --steps 150 --repeats 3 --timeout 60 --out $RES/speed.csv > /dev/null 2> $RES/speed.err
cut -d'|' -f2,8,9,17,18,21 $RES/speed.md | tail -n +3 | head -8; pack

stamp profile
timeout 100 python3 outputs/reference/h100/profile_step.py --device $DEV --profile triton+tf32+fused \
  --variants ${VARIANTS:-default,triton,triton+tf32+fused,triton+tf32+fused+compile} > $RES/profile.txt 2>&1
grep -E "per step|failed" $RES/profile.txt; pack

stamp tune
timeout 100 python3 outputs/reference/h100/tune_kernels.py --json $RES/tiles.json > $RES/tune.txt 2>&1
tail -16 $RES/tune.txt; pack
stamp tuned
timeout 60 python3 outputs/reference/h100/profile_step.py --device $DEV --tiles $RES/tiles.json \
  --variants ${TUNED_VARIANTS:-default,triton+tf32+fused,triton} > $RES/profile-tuned.txt 2>&1
grep -E "per step|failed" $RES/profile-tuned.txt; pack

stamp accuracy
timeout 90 python3 train.py -m device=$DEV seed=0,1,2 trainer.conv_kernels=${KERNELS:-cudnn,triton} ${ACC_ARGS:-} \
  hydra.sweep.dir=$RES/accuracy > $RES/accuracy.txt 2>&1
python3 - <<'PY' | tee $RES/accuracy.md
import json, pathlib
for f in sorted(pathlib.Path("/tmp/session7/accuracy").glob("*/metrics.json")):
    m = json.loads(f.read_text()); o = (f.parent / ".hydra/overrides.yaml").read_text().split()
    print(f.parent.name, " ".join(x for x in o if "seed" in x or "conv_kernels" in x), m["status"], m["seconds"],
          m["val"] and round(m["val"]["mapped_acc"], 4), m["test"] and round(m["test"]["mapped_acc"], 4))
PY
stamp done; pack
