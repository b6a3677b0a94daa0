"""`data=fashion_mnist` through `python train.py` as a user runs it: a small run on the real files, its record and
pictures named by Fashion-MNIST's classes, the refusals of a missing or altered file, and a small sweep whose
study is kept apart from MNIST's studies of the same sweep."""

import json
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from helpers import assert_one_error_line, raw_root_with, train_py
from PIL import Image
from sklearn.metrics import normalized_mutual_info_score

from aesweep.metrics import UNMAPPED, fit_cluster_to_label_map, fit_one_to_one_map
from aesweep.storage import open_storage

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
SMALL = ["data=fashion_mnist", "data.subset=512", "trainer.epochs=1", "device=cpu", "trainer.threads=1"]


@pytest.fixture(scope="module")
def fashion_run(tmp_path_factory, fashion_mnist_root):
    run_dir = tmp_path_factory.mktemp("fashion") / "run"
    result = train_py(*SMALL, f"data.root={fashion_mnist_root}", f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-2000:]
    return run_dir, json.loads((run_dir / "metrics.json").read_text())


def test_the_record_names_the_dataset_and_its_classes(fashion_run):
    _, metrics = fashion_run
    assert (metrics["status"], metrics["dataset"], metrics["classes"]) == ("completed", "fashion_mnist", CLASSES)


def test_the_run_trains_on_512_images_and_scores_the_10000_official_test_images(fashion_run):
    _, metrics = fashion_run
    fit, test = np.array(metrics["confusion"]["fit"]), np.array(metrics["confusion"]["test"])
    assert (fit.sum(), test.sum()) == (512, 10000)
    assert test.sum(axis=0).tolist() == [1000] * 10  # Fashion-MNIST's test split: 1,000 of each class


def test_test_scores_recomputed_from_the_confusion_matrices(fashion_run):
    _, metrics = fashion_run
    fit, test = np.array(metrics["confusion"]["fit"]), np.array(metrics["confusion"]["test"])

    def accuracy(mapping):
        return sum(test[c, d] for c, d in enumerate(mapping) if d != UNMAPPED) / test.sum()

    assert metrics["test"]["mapped_acc"] == accuracy(fit_cluster_to_label_map(fit))
    assert metrics["test"]["hungarian_acc"] == accuracy(fit_one_to_one_map(fit))
    clusters, labels = np.nonzero(test)
    counts = test[clusters, labels]
    nmi = normalized_mutual_info_score(np.repeat(labels, counts), np.repeat(clusters, counts))
    assert metrics["test"]["nmi"] == pytest.approx(nmi, abs=1e-12)


def test_reconstructions_stand_under_the_class_name_of_each_test_image(fashion_run):
    run_dir, _ = fashion_run
    with Image.open(run_dir / "reconstructions.png") as image:
        pixels = np.asarray(image.convert("L"))
    assert pixels.shape[1] == 16 * 30 + 2  # 16 test images and their reconstructions on a 2 px grid
    band = pixels[: -(2 * 30 + 2)]
    assert band.shape[0] > 40  # "Ankle boot", the first test image's class, written upright
    assert all((band[:, 2 + c * 30 : 30 + c * 30] < 128).any() for c in range(16))


def test_the_confusion_picture_is_written(fashion_run):
    run_dir, _ = fashion_run
    with Image.open(run_dir / "confusion.png") as image:
        assert image.format == "PNG" and min(image.size) >= 100


def test_a_missing_file_stops_the_run_in_one_line_naming_data_root_and_make_data(tmp_path, fashion_mnist_root):
    root = raw_root_with(tmp_path / "data", "train-images-idx3-ubyte", None, "FashionMNIST", fashion_mnist_root)
    run_dir = tmp_path / "run"

    result = train_py(*SMALL, f"data.root={root}", "data.download=false", f"hydra.run.dir={run_dir}")

    assert_one_error_line(result, f"data.root='{root}'", "train-images-idx3-ubyte is missing", "`make data`",
                          "dataset-fashion-mnist")
    assert not run_dir.exists()


def test_an_altered_file_stops_the_run_in_one_line_naming_its_md5(tmp_path, fashion_mnist_root):
    name = "t10k-labels-idx1-ubyte"
    content = bytearray((fashion_mnist_root / "FashionMNIST" / "raw" / name).read_bytes())
    content[100] ^= 0x01
    root = raw_root_with(tmp_path / "data", name, bytes(content), "FashionMNIST", fashion_mnist_root)
    run_dir = tmp_path / "run"

    result = train_py(*SMALL, f"data.root={root}", f"hydra.run.dir={run_dir}")  # download on: never over a bad file

    assert_one_error_line(result, f"data.root='{root}'", f"{name} is corrupt or truncated",
                          "expected 15d484375f8d13e6eb1aabb0c3f46965", "`make data`")
    assert not run_dir.exists()


def test_a_sweep_on_fashion_mnist_runs_a_study_of_its_own_beside_mnists(tmp_path, fashion_mnist_root):
    journal = tmp_path / "journal.log"
    storage = open_storage(str(journal))
    optuna.create_study(study_name="smoke", storage=storage)  # as `sweep=smoke` on MNIST leaves it

    result = train_py("-m", "sweep=smoke", "data=fashion_mnist", f"data.root={fashion_mnist_root}", "trainer.threads=1",
                      "hydra.sweeper.n_trials=2", f"hydra.sweeper.storage={journal}", f"hydra.sweep.dir={tmp_path / 's'}",
                      timeout=240)

    assert result.returncode == 0, result.stderr[-2000:]
    assert "Study 'smoke-fashion_mnist': 2 trials" in result.stdout
    assert "no study 'baseline-fashion_mnist' in this storage" in result.stdout
    assert len(optuna.load_study(study_name="smoke", storage=storage).trials) == 0
    trials = pd.read_csv(tmp_path / "s" / "trials.csv")
    for run_dir in trials["run_dir"]:
        metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
        assert (metrics["dataset"], metrics["trial"]["study_name"]) == ("fashion_mnist", "smoke-fashion_mnist")
