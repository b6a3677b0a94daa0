"""Bad input, end to end through `python train.py`: one line naming key and value, exit 2, nothing on disk.

Every case here fails before data loads or training starts (about 3 s of imports each).
"""

import pytest
import torch
from conftest import compose_config, raw_root_with, real_raw_bytes, train_py

from aesweep.errors import ConfigError
from aesweep.train import resolve_device


def assert_refused_in_one_line(result, run_dir, *expected_texts):
    """Exit 2, stderr exactly one line `error: ...` holding each expected text, no traceback, no run dir."""
    assert "Traceback" not in result.stderr + result.stdout
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for text in expected_texts:
        assert text in lines[0]
    assert not run_dir.exists()


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


@pytest.mark.parametrize("override, key, value", CONFIG_MISTAKES, ids=[case[0] for case in CONFIG_MISTAKES])
def test_config_mistake_is_one_error_line_with_exit_2_and_no_run_dir(tmp_path, override, key, value):
    run_dir = tmp_path / "run"
    result = train_py(override, f"hydra.run.dir={run_dir}")
    assert_refused_in_one_line(result, run_dir, f"{key}={value} is not allowed: ")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_cuda_without_a_gpu_is_one_error_line_with_exit_2(tmp_path):
    run_dir = tmp_path / "run"
    result = train_py("device=cuda", f"hydra.run.dir={run_dir}")
    assert_refused_in_one_line(result, run_dir, "device='cuda'", "no CUDA GPU", "device=cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_resolve_device_refuses_cuda_without_a_gpu():
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        resolve_device(compose_config("device=cuda").device)


def test_resolve_device_auto_falls_back_to_what_the_machine_has():
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert resolve_device(compose_config("device=auto").device).type == expected


def test_missing_mnist_says_to_run_make_data(tmp_path):
    run_dir, empty_root = tmp_path / "run", tmp_path / "empty"
    empty_root.mkdir()
    result = train_py(f"data.root={empty_root}", "data.download=false", "device=cpu", f"hydra.run.dir={run_dir}")
    assert_refused_in_one_line(result, run_dir, f"data.root='{empty_root}'", "is missing", "`make data`")


def test_corrupt_mnist_file_is_named_with_its_md5(mnist_root, tmp_path):
    run_dir, name = tmp_path / "run", "t10k-images-idx3-ubyte"
    root = raw_root_with(tmp_path / "corrupt", name, content=real_raw_bytes(name)[:4096])  # truncated
    result = train_py(f"data.root={root}", "device=cpu", f"hydra.run.dir={run_dir}")
    assert_refused_in_one_line(result, run_dir, f"data.root='{root}'", name, "md5")


def test_unknown_group_option_is_hydras_error_without_traceback(tmp_path):
    run_dir = tmp_path / "run"
    result = train_py("model=nope", f"hydra.run.dir={run_dir}")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    assert "Could not find 'model/nope'" in result.stderr
    assert not run_dir.exists()


def test_model_constructor_mistake_is_one_error_line_too(tmp_path):
    # A rule only the model can check (one kernel per conv layer) must surface like any other mistake,
    # not wrapped by hydra.utils.instantiate into a multi-line InstantiationException with exit 1.
    run_dir = tmp_path / "run"
    result = train_py("model=conv", "model.kernels=[3,3]", "device=cpu", f"hydra.run.dir={run_dir}")
    assert_refused_in_one_line(result, run_dir, "model.kernels=[3, 3] is not allowed: ")


def test_refused_run_keeps_files_already_in_an_existing_run_dir(tmp_path):
    # Cleaning up after a mistake removes only what this run wrote, never a user's directory.
    run_dir = tmp_path / "mine"
    run_dir.mkdir()
    (run_dir / "notes.txt").write_text("keep me")
    result = train_py("model.activation=swish", f"hydra.run.dir={run_dir}")
    assert result.returncode == 2
    assert (run_dir / "notes.txt").read_text() == "keep me"
