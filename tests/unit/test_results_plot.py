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


SEED_VALUES = {0: [0.50, 0.61, 0.55], 1: [0.80, 0.86, 0.78], 2: [0.70, 0.74, 0.72]}  # trial -> val of seeds 0, 1, 2
SEEDED_BEST = 1  # highest mean val.mapped_acc


def seeded_sweep(tmp_path, statistic, seed_values=SEED_VALUES):
    """A sweep over seeds 0, 1, 2 as the sweeper leaves it: each run in <trial>/seed<s>/, trials.csv with the
    trial's value (`statistic` over its seeds), each seed's value and their sd, the mean metrics, the trial folder
    as run_dir and the sweeper's slot bookkeeping (busy_seconds, runs_started, runs_ended)."""
    sweep_dir = tmp_path / "outputs" / "sweeps" / "default" / "2026-12-05_05-06-08"
    rows = []
    for number, values in seed_values.items():
        for seed, value in enumerate(values):
            (sweep_dir / str(number) / f"seed{seed}").mkdir(parents=True)
            metrics = {"status": "completed", "val": {"mapped_acc": value}, "test": {"mapped_acc": value - 0.01},
                       "confusion": {"fit": confusion_of(10 * number + seed), "test": confusion_of(10 * number + seed)}}
            (sweep_dir / str(number) / f"seed{seed}" / "metrics.json").write_text(json.dumps(metrics))
        value = min(values) if statistic == "min" else np.mean(values)
        rows.append({"number": number, "state": "COMPLETE", "value": value,
                     **{f"value.seed{seed}": seed_value for seed, seed_value in enumerate(values)},
                     "value.std": np.std(values, ddof=1),
                     "model.bottleneck": BOTTLENECK[number], "optimizer.lr": LR[number],
                     "val.mapped_acc": np.mean(values), "test.mapped_acc": np.mean(values) - 0.01,
                     "run_dir": str(sweep_dir / str(number)), "busy_seconds": 300.0 + number,
                     "runs_ended": 1796447576.9 + 400 * number, "runs_started": 1796447366.2 + 400 * number,
                     "study_name": "default"})
    pd.DataFrame(rows).to_csv(sweep_dir / "trials.csv", index=False)
    write_study_yaml(sweep_dir, str(sweep_dir / "gone.journal"))
    return sweep_dir


def test_plot_of_a_sweep_over_seeds_draws_the_objective_only_against_its_parameters(tmp_path):
    sweep_dir = seeded_sweep(tmp_path, "min")

    written = plot_sweep(sweep_dir, note=lambda _: None)

    assert {path.name for path in written} - {"confusion_best.png"} == {
        "history.png", "vs_model.bottleneck.png", "vs_optimizer.lr.png"}


@pytest.mark.parametrize("statistic, seed", [
    ("min", 2),  # the worst seed's value is the trial's: that run
    ("mean", 0),  # a mean is no single run's value: the run nearest it (0.80 of 0.78, 0.80, 0.86)
])
def test_plot_confusion_of_a_sweep_over_seeds_is_the_seed_run_nearest_the_best_trials_value(tmp_path, monkeypatch,
                                                                                             statistic, seed):
    sweep_dir = seeded_sweep(tmp_path, statistic)
    plotted, notes = [], []
    monkeypatch.setattr(plots, "save_confusion_png",
                        lambda confusion, path, title=None, classes=None: plotted.append((confusion, path, title)))

    plot_sweep(sweep_dir, note=notes.append)

    (confusion, path, title), = plotted
    assert path == sweep_dir / "confusion_best.png"
    assert confusion.tolist() == confusion_of(10 * SEEDED_BEST + seed)
    score = SEED_VALUES[SEEDED_BEST][seed] - 0.01
    assert title == f"best trial {SEEDED_BEST}, seed {seed}, test split: mapped_acc {score:.4f}"
    assert not [n for n in notes if n.startswith("confusion skipped")]


def test_plot_confusion_of_a_sweep_ranked_by_the_worst_seed_is_of_the_trial_the_sweep_ranked_best(tmp_path,
                                                                                                   monkeypatch):
    # trial 0 has the higher mean (0.833 against 0.810), trial 1 the better worst seed (0.80 against 0.60)
    sweep_dir = seeded_sweep(tmp_path, "min", {0: [0.60, 0.95, 0.95], 1: [0.80, 0.82, 0.81]})
    titles = []
    monkeypatch.setattr(plots, "save_confusion_png",
                        lambda confusion, path, title=None, classes=None: titles.append(title))

    plot_sweep(sweep_dir, note=lambda _: None)

    assert titles == ["best trial 1, seed 0, test split: mapped_acc 0.7900"]
