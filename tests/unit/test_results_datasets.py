"""Runs of two datasets in one outputs tree: `aesweep collect` names each run's dataset, `aesweep compare` never
pools two datasets into one configuration or one baseline, and each row's gain is over its own dataset's baseline."""

import io
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from aesweep.results.collect import collect_runs
from aesweep.results.compare import compare

MNIST_BASELINE = [0.50, 0.54, 0.52]  # the blog's recipe on MNIST, seeds 0-2: mean 0.52
FASHION_BASELINE = [0.30, 0.34, 0.32]  # on Fashion-MNIST: mean 0.32
MNIST_CONV = [0.90]  # one configuration (bottleneck 16) on MNIST, seed 0
FASHION_CONV = [0.60, 0.62]  # the same configuration on Fashion-MNIST, seeds 0 and 1: mean 0.61


def make_run(run_dir: Path, dataset: str | None, bottleneck: int, seed: int, val: float, study: str) -> None:
    """A finished sweep run; dataset None: a record and config from before runs named their dataset (MNIST)."""
    data = {"root": "data", "subset": 8000} | ({"name": dataset} if dataset else {})
    config = {"seed": seed, "data": data, "model": {"_target_": "aesweep.model.ConvAutoencoder", "bottleneck": bottleneck},
              "trial": {"study_name": study, "trial_number": 0}}
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    choices = {"data": dataset or "mnist", "model": "conv"}
    (run_dir / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"mode": "MULTIRUN", "job": {"num": seed},
                                                                             "runtime": {"choices": choices}}}))
    (run_dir.parent / "multirun.yaml").write_text("hydra: {}\n")
    scores = {"mapped_acc": val, "hungarian_acc": val, "nmi": 0.5, "ari": 0.4, "clusters_used": 10, "recon_mse": 0.02}
    record = {"status": "completed", "reason": None, "val": scores, "test": scores, "fit": scores, "seed": seed,
              "trial": {"study_name": study, "number": seed}}
    if dataset:
        record |= {"dataset": dataset, "classes": [str(c) for c in range(10)]}
    (run_dir / "metrics.json").write_text(json.dumps(record))


@pytest.fixture
def outputs(tmp_path):
    sweeps = tmp_path / "outputs" / "sweeps"
    for seed, val in enumerate(MNIST_BASELINE):  # recorded before datasets were named
        make_run(sweeps / "baseline" / "2026-01-01_10-00-00" / str(seed), None, 10, seed, val, "baseline")
    for seed, val in enumerate(FASHION_BASELINE):
        make_run(sweeps / "baseline" / "2026-02-01_10-00-00" / str(seed), "fashion_mnist", 10, seed, val,
                 "baseline-fashion_mnist")
    for seed, val in enumerate(MNIST_CONV):
        make_run(sweeps / "default" / "2026-02-02_10-00-00" / str(seed), "mnist", 16, seed, val, "default")
    for seed, val in enumerate(FASHION_CONV):
        make_run(sweeps / "default" / "2026-02-03_10-00-00" / str(seed), "fashion_mnist", 16, seed, val,
                 "default-fashion_mnist")
    return tmp_path / "outputs"


def leaderboard(sources, *, by=None, baseline=None) -> tuple[pd.DataFrame, list[str], list[str]]:
    notes, warnings = [], []
    text = compare(sources, by=by, baseline=baseline, fmt="csv", note=notes.append, warn=warnings.append)
    return pd.read_csv(io.StringIO(text)), notes, warnings


def test_collect_names_each_runs_dataset_in_a_column_after_the_bookkeeping(outputs):
    runs = collect_runs([outputs], warn=pytest.fail)

    by_folder = {Path(d).parent.name: dataset for d, dataset in zip(runs["run_dir"], runs["dataset"])}
    assert by_folder == {"2026-01-01_10-00-00": "mnist", "2026-02-01_10-00-00": "fashion_mnist",
                         "2026-02-02_10-00-00": "mnist", "2026-02-03_10-00-00": "fashion_mnist"}
    columns = list(runs.columns)
    assert columns[columns.index("seed") + 1] == "dataset"
    assert "data" not in columns and "data.name" not in columns  # the data= option and data.name say the same


def test_compare_keeps_one_configuration_per_dataset(outputs):
    table, _, _ = leaderboard([outputs])

    rows = {(r["dataset"], r["model.bottleneck"]): r for _, r in table.iterrows()}
    assert sorted(rows) == [("fashion_mnist", 10), ("fashion_mnist", 16), ("mnist", 10), ("mnist", 16)]
    assert rows["fashion_mnist", 16]["runs"] == 2
    assert rows["fashion_mnist", 16]["mean val.mapped_acc"] == pytest.approx(0.61)
    assert rows["mnist", 16]["mean val.mapped_acc"] == pytest.approx(0.90)


def test_compare_takes_the_gain_over_the_baseline_of_the_same_dataset(outputs):
    table, notes, warnings = leaderboard([outputs])

    gains = {(r["dataset"], r["model.bottleneck"]): r["gain pts"] for _, r in table.iterrows()}
    assert gains == pytest.approx({("mnist", 16): (0.90 - 0.52) * 100, ("fashion_mnist", 16): (0.61 - 0.32) * 100,
                                   ("mnist", 10): 0.0, ("fashion_mnist", 10): 0.0})
    assert ("gain: mean val.mapped_acc minus the baseline's mean on the same dataset (fashion_mnist 0.3200 "
            "(sweep 'baseline', 3 runs); mnist 0.5200 (sweep 'baseline', 3 runs)), in points and as a ratio") in notes
    assert warnings == []  # each dataset's baseline is one study: nothing pooled, nothing to choose


def test_compare_by_a_parameter_groups_within_each_dataset(outputs):
    table, notes, _ = leaderboard([outputs], by="model.bottleneck")

    assert sorted(zip(table["dataset"], table["model.bottleneck"], table["runs"])) == [
        ("fashion_mnist", 10, 3), ("fashion_mnist", 16, 2), ("mnist", 10, 3), ("mnist", 16, 1)]
    assert notes[0].startswith("one row per value of dataset, model.bottleneck;")


def test_one_dataset_shows_no_dataset_column_and_its_own_baseline(outputs):
    fashion = [outputs / "sweeps" / "baseline" / "2026-02-01_10-00-00", outputs / "sweeps" / "default" / "2026-02-03_10-00-00"]

    table, notes, _ = leaderboard(fashion)

    assert "dataset" not in table.columns
    assert table["gain pts"].tolist() == pytest.approx([(0.61 - 0.32) * 100, 0.0])
    assert "gain: mean val.mapped_acc minus the baseline's mean 0.3200 (sweep 'baseline', 3 runs), in points and " \
           "as a ratio" in notes


def test_a_baseline_of_another_dataset_gives_no_gain(outputs):
    table, notes, _ = leaderboard([outputs / "sweeps" / "default" / "2026-02-03_10-00-00"],
                                  baseline=str(outputs / "sweeps" / "baseline" / "2026-01-01_10-00-00"))

    assert table["gain pts"].isna().all()
    assert "no baseline on fashion_mnist: no gain for its rows (use --baseline NAME_OR_PATH)" in notes


def test_a_trials_csv_takes_each_rows_dataset_from_its_run_record(outputs):
    sweep = outputs / "sweeps" / "default" / "2026-02-03_10-00-00"
    pd.DataFrame({"number": [0, 1], "state": ["COMPLETE"] * 2, "value": FASHION_CONV, "val.mapped_acc": FASHION_CONV,
                  "seed": [0, 1], "run_dir": [str(sweep / "0"), str(sweep / "1")],
                  "study_name": ["default-fashion_mnist"] * 2}).to_csv(sweep / "trials.csv", index=False)

    table, _, _ = leaderboard([sweep / "trials.csv", outputs / "sweeps" / "baseline"])

    rows = {(r["dataset"], r["sweep"]): r["gain pts"] for _, r in table.iterrows()}
    assert rows == pytest.approx({("fashion_mnist", "default"): (0.61 - 0.32) * 100,
                                  ("fashion_mnist", "baseline"): 0.0, ("mnist", "baseline"): 0.0})
