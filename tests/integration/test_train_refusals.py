"""Bad input, end to end through `python train.py`: one line naming key and value, exit 2, nothing on disk.

Every case here fails before data loads or training starts (about 3 s of imports each).
"""

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from helpers import (
    REPO,
    SUBPROCESS_ENV,
    assert_one_error_line,
    compose_config,
    raw_root_with,
    real_raw_bytes,
    train_py,
)

from aesweep.errors import ConfigError
from aesweep.train import resolve_device

CONFIG_MISTAKES = [
    # override, key, value as the error line shows it
    ("model.activation=swish", "model.activation", "'swish'"),
    ("eval.readout=mode", "eval.readout", "'mode'"),
    ("model.bottleneck=0", "model.bottleneck", "0"),
    ("optimizer.lr=0", "optimizer.lr", "0"),
    ("optimizer.lr=-1", "optimizer.lr", "-1"),
    ("trainer.epochs=0", "trainer.epochs", "0"),
    ("trainer.batch_size=0", "trainer.batch_size", "0"),
    ("model.bottleneck=16", "model.bottleneck", "16"),  # argmax readout needs width == eval.n_clusters (10)
    ("device.type=tpu", "device.type", "'tpu'"),
]
CORRUPT_FILE = "t10k-images-idx3-ubyte"


@pytest.fixture(scope="module")
def refused(tmp_path_factory, mnist_root) -> dict[str, tuple[subprocess.CompletedProcess, Path, Path]]:
    """Every bad-input run of this module, started together: each is ~3 s of imports, so they overlap.

    Maps a case name to (result, its hydra.run.dir, its data.root or None).
    """
    tmp = tmp_path_factory.mktemp("refused")
    empty_root = tmp / "empty"
    empty_root.mkdir()
    corrupt_root = raw_root_with(tmp / "corrupt", CORRUPT_FILE, content=real_raw_bytes(CORRUPT_FILE)[:4096])
    existing = tmp / "existing" / "run"
    existing.mkdir(parents=True)
    (existing / "notes.txt").write_text("keep me")
    cases = {override: ([override], None) for override, _, _ in CONFIG_MISTAKES}
    cases |= {
        "missing data": ([f"data.root={empty_root}", "data.download=false", "device=cpu"], empty_root),
        "corrupt data": ([f"data.root={corrupt_root}", "device=cpu"], corrupt_root),
        "model=nope": (["model=nope"], None),
        "model.kernels=[3,3]": (["model=conv", "model.kernels=[3,3]", "device=cpu"], None),
        "existing run dir": (["model.activation=swish"], None),
    }
    if not torch.cuda.is_available():  # with a GPU this would train for real
        cases["device=cuda"] = (["device=cuda"], None)
    run_dirs = {name: tmp / f"case{i}" / "run" for i, name in enumerate(cases)}
    run_dirs["existing run dir"] = existing
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(train_py, *args, f"hydra.run.dir={run_dirs[name]}")
                   for name, (args, _) in cases.items()}
    return {name: (futures[name].result(), run_dirs[name], cases[name][1]) for name in cases}


def assert_refused_in_one_line(result, run_dir, *expected_texts):
    """Exit 2, stderr exactly one line `error: ...` holding each expected text, no traceback, no run dir."""
    assert_one_error_line(result, *expected_texts)
    assert not run_dir.exists()


@pytest.mark.parametrize("override, key, value", CONFIG_MISTAKES, ids=[case[0] for case in CONFIG_MISTAKES])
def test_config_mistake_is_one_error_line_with_exit_2_and_no_run_dir(refused, override, key, value):
    result, run_dir, _ = refused[override]
    assert_refused_in_one_line(result, run_dir, f"{key}={value} is not allowed: ")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_a_command_line_refused_by_its_checks_never_imports_torch(tmp_path):
    """The command line and the config are checked without torch, scikit-learn and SciPy (~4 s of imports)."""
    result = subprocess.run([sys.executable, "-X", "importtime", "train.py", "model.activation=swish",
                             f"hydra.run.dir={tmp_path / 'run'}"], cwd=REPO, env=SUBPROCESS_ENV,
                            capture_output=True, text=True, timeout=120)
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()
                if line.startswith("import time:")}
    assert result.returncode == 2 and {"hydra", "omegaconf", "numpy"} <= imported
    assert not imported & {"torch", "sklearn", "scipy"}


def test_cuda_without_a_gpu_is_one_error_line_with_exit_2(refused):
    result, run_dir, _ = refused["device=cuda"]
    assert_refused_in_one_line(result, run_dir, "device='cuda'", "no CUDA GPU", "device=cpu")


def test_missing_mnist_says_to_run_make_data(refused):
    result, run_dir, root = refused["missing data"]
    assert_refused_in_one_line(result, run_dir, f"data.root='{root}'", "is missing", "`make data`")


def test_corrupt_mnist_file_is_named_with_its_md5(refused):
    result, run_dir, root = refused["corrupt data"]
    assert_refused_in_one_line(result, run_dir, f"data.root='{root}'", CORRUPT_FILE, "md5")


def test_unknown_group_option_is_one_error_line_listing_the_options(refused):
    result, run_dir, _ = refused["model=nope"]
    assert_refused_in_one_line(result, run_dir, "model='nope' is not allowed: one of: blog, conv, mlp")


def test_model_constructor_mistake_is_one_error_line_too(refused):
    # A rule only the model can check (one kernel per conv layer) must surface like any other mistake,
    # not wrapped by hydra.utils.instantiate into a multi-line InstantiationException with exit 1.
    result, run_dir, _ = refused["model.kernels=[3,3]"]
    assert_refused_in_one_line(result, run_dir, "model.kernels=[3, 3] is not allowed: ")


def test_refused_run_keeps_files_already_in_an_existing_run_dir(refused):
    # Cleaning up after a mistake removes only what this run wrote, never a user's directory.
    result, run_dir, _ = refused["existing run dir"]
    assert result.returncode == 2
    assert (run_dir / "notes.txt").read_text() == "keep me"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_resolve_device_refuses_cuda_without_a_gpu():
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        resolve_device(compose_config("device=cuda").device)


def test_resolve_device_auto_falls_back_to_what_the_machine_has():
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert resolve_device(compose_config("device=auto").device).type == expected
