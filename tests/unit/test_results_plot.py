"""`aesweep plot`: PNGs beside a sweep's trials.csv, importances from the Optuna study named in study.yaml."""

import json

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from aesweep import plots
from aesweep.cli import main
from aesweep.results.plot import plot_sweep

BOTTLENECK = [8, 16, 32, 8, 16, 32, 64]
LR = [1e-4, 1e-3, 1e-2, 1e-1, 3e-3, 3e-2, 1e-3]
OPTIMIZER = ["adam", "sgd", "adam", "sgd", "adam", "sgd", "adam"]
ACC = [0.41, 0.55, 0.72, 0.38, 0.60, 0.66, 0.20]
STATE = ["COMPLETE"] * 6 + ["PRUNED"]
BEST = 2  # highest val.mapped_acc among the completed trials
EXPECTED_PNGS = {"history.png", "vs_model.bottleneck.png", "vs_optimizer.lr.png", "importances.png",
                 "confusion_best.png"}


def confusion_of(number):
    return (np.arange(100).reshape(10, 10) + number).tolist()


@pytest.fixture
def sweep(tmp_path):
    sweep_dir = tmp_path / "outputs" / "sweeps" / "search" / "2026-01-04_10-00-00"
    for number in range(len(ACC)):
        (sweep_dir / str(number)).mkdir(parents=True)
        metrics = {"status": "completed", "test": {"mapped_acc": ACC[number] - 0.01},
                   "confusion": {"fit": confusion_of(number), "test": confusion_of(number)}}
        (sweep_dir / str(number) / "metrics.json").write_text(json.dumps(metrics))
    pd.DataFrame({
        "number": range(len(ACC)), "state": STATE, "val.mapped_acc": ACC, "model.bottleneck": BOTTLENECK,
        "optimizer.lr": LR, "optimizer": OPTIMIZER, "seconds": [10.0] * len(ACC),
        "run_dir": [str(sweep_dir / str(n)) for n in range(len(ACC))], "study_name": ["search"] * len(ACC),
    }).to_csv(sweep_dir / "trials.csv", index=False)

    journal = tmp_path / "outputs" / "optuna" / "search.journal"
    journal.parent.mkdir(parents=True)
    study = optuna.create_study(study_name="search", direction="maximize",
                                storage=JournalStorage(JournalFileBackend(str(journal))))
    distributions = {"model.bottleneck": IntDistribution(8, 64), "optimizer.lr": FloatDistribution(1e-4, 1e-1, log=True),
                     "optimizer": CategoricalDistribution(["adam", "sgd"])}
    for number in range(6):
        params = {"model.bottleneck": BOTTLENECK[number], "optimizer.lr": LR[number], "optimizer": OPTIMIZER[number]}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions, value=ACC[number]))
    write_study_yaml(sweep_dir, str(journal))
    return sweep_dir


def write_study_yaml(sweep_dir, storage):
    info = {"study_name": "search", "storage": storage, "directions": ["maximize"], "objectives": ["val.mapped_acc"]}
    (sweep_dir / "study.yaml").write_text(yaml.safe_dump(info))


def test_plot_writes_non_empty_pngs_beside_trials_csv(sweep):
    notes = []
    written = plot_sweep(sweep, note=notes.append)

    assert {path.name for path in written} == EXPECTED_PNGS
    for path in written:
        assert path.parent == sweep
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    assert not [p for p in sweep.iterdir() if p.name.endswith(".tmp")]
    assert notes[0].startswith("importances: ")
    assert {part.split("=")[0] for part in notes[0][len("importances: "):].split(", ")} == {
        "model.bottleneck", "optimizer.lr", "optimizer"}


def test_plot_confusion_is_the_best_completed_trials_test_matrix(sweep, monkeypatch):
    plotted = []
    original = plots.save_confusion_png
    monkeypatch.setattr(plots, "save_confusion_png",
                        lambda confusion, path, title=None, classes=None: (plotted.append((confusion, title, classes)),
                                                                           original(confusion, path, title, classes)))
    plot_sweep(sweep, note=lambda _: None)

    (confusion, title, classes), = plotted
    assert confusion.tolist() == confusion_of(BEST)
    assert title == f"best trial {BEST}, test split: mapped_acc {ACC[BEST] - 0.01:.4f}"
    assert classes is None  # a record from before records named their classes: MNIST's, numbered


def test_plot_confusion_names_the_classes_of_the_best_runs_record(sweep, monkeypatch):
    names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    path = sweep / str(BEST) / "metrics.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "dataset": "fashion_mnist", "classes": names}))
    plotted = []
    monkeypatch.setattr(plots, "save_confusion_png", lambda *args, classes=None, **kwargs: plotted.append(classes))

    plot_sweep(sweep, note=lambda _: None)

    assert plotted == [names]


def test_plot_without_a_readable_storage_skips_importances_in_one_line(sweep, capsys):
    missing = sweep.parent / "gone.journal"
    write_study_yaml(sweep, str(missing))

    assert main(["plot", str(sweep)]) == 0

    out, err = capsys.readouterr()
    assert {line.rsplit("/", 1)[-1] for line in out.splitlines()} == EXPECTED_PNGS - {"importances.png"}
    assert err == f"aesweep plot: importances skipped: storage file {missing} not found\n"
    assert not missing.exists()  # opening a storage read-only never creates one


def test_plot_missing_sweep_dir_is_one_line_error(tmp_path, capsys):
    assert main(["plot", str(tmp_path / "nope")]) == 2

    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("aesweep plot: error: no such sweep directory: ")


def test_plot_on_a_sweep_killed_before_any_trial_finished_is_one_line_error(tmp_path, capsys):
    killed = tmp_path / "sweep"
    (killed / "0" / ".hydra").mkdir(parents=True)  # the first trial's folder, never finished
    (killed / "0" / ".hydra" / "config.yaml").write_text("seed: 0\n")
    (killed / "multirun.yaml").write_text("hydra: {}\n")

    assert main(["plot", str(killed)]) == 2

    err = capsys.readouterr().err.splitlines()
    assert err[-1] == (f"aesweep plot: error: '{killed}' holds no trials.csv and no finished runs: give a sweep "
                       "directory (outputs/sweeps/<name>/<time>/)")
    assert "Traceback" not in "\n".join(err)


def test_a_parameter_searched_on_a_log_scale_is_plotted_on_one(sweep, monkeypatch):
    info = yaml.safe_load((sweep / "study.yaml").read_text())
    info["search_space"] = {"model.bottleneck": "tag(log, range(8, 64))", "optimizer.lr": "interval(1e-4, 1e-1)"}
    (sweep / "study.yaml").write_text(yaml.safe_dump(info))
    axes = {}
    monkeypatch.setattr(plots, "save_param_scatter_png",
                        lambda values, metric_values, path, param, metric, log_x: axes.update({param: log_x}))

    plot_sweep(sweep, note=lambda _: None)

    # bottleneck spans only 8x, lr 1000x: the searched scale decides, not the spread
    assert axes == {"model.bottleneck": True, "optimizer.lr": False}
