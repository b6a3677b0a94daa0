"""`aesweep collect`: one row per finished run from a fabricated Hydra outputs tree."""

import io
import json
import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from aesweep.cli import main
from aesweep.results.collect import collect_runs
from aesweep.results.compare import compare

SINGLE = "runs/2026-01-01/10-00-00"
BASELINE = "sweeps/baseline/2026-01-01_11-00-00"
SEARCH = "sweeps/search/2026-01-02_09-00-00"
BASELINE_VAL = [0.50, 0.54, 0.52]
BASELINE_TEST = [0.49, 0.55, 0.51]


def make_config(bottleneck=10, optimizer="torch.optim.SGD", lr=0.01, seed=0):
    return {
        "seed": seed,
        "trial": {"study_name": None, "storage": None, "trial_id": None, "trial_number": None},
        "data": {"subset": 2000, "batch_size": 64},
        "model": {"_target_": "aesweep.model.BlogAutoencoder", "bottleneck": bottleneck,
                  "activation": "relu", "hidden": [128, 64]},
        "optimizer": {"_target_": optimizer, "_partial_": True, "lr": lr},
        "trainer": {"epochs": 5, "batch_size": "${data.batch_size}",
                    "checkpoint": "${hydra:runtime.output_dir}/model.pt"},
    }


def make_metrics(val_acc, test_acc, status="completed", seed=0, trial=None, study="baseline"):
    def split(acc):
        return None if acc is None else {"mapped_acc": acc, "hungarian_acc": acc, "nmi": 0.5, "ari": 0.4,
                                         "clusters_used": 10, "recon_mse": 0.02}

    return {
        "status": status, "reason": None if status == "completed" else f"{status} at epoch 2",
        "val": split(val_acc), "test": split(test_acc), "fit": split(val_acc),
        "confusion": {"fit": [[1] * 10] * 10, "test": [[2] * 10] * 10}, "mapping": list(range(10)),
        "params": 1234, "epochs": 5, "epochs_planned": 5, "seconds": 12.5, "device": "cpu", "seed": seed,
        "versions": {"python": "3.11"},
        "trial": None if trial is None else {"study_name": study, "number": trial},
    }


def make_run(run_dir: Path, config, metrics, multirun=False, job=None, choices=None):
    """A Hydra job directory; metrics is a dict, raw text (half-written) or None (crashed)."""
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    hydra = {"hydra": {"mode": "MULTIRUN" if multirun else "RUN", "job": {"num": job},
                       "runtime": {"choices": {"loss": "mse", "hydra/sweeper": "aesweep_optuna",
                                               **(choices or {})}}}}
    (run_dir / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(hydra))
    (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"seed={config['seed']}"]))
    if multirun:
        (run_dir.parent / "multirun.yaml").write_text("hydra: {}\n")
    if isinstance(metrics, dict):
        (run_dir / "metrics.json").write_text(json.dumps(metrics))
    elif isinstance(metrics, str):
        (run_dir / "metrics.json").write_text(metrics)


@pytest.fixture
def outputs(tmp_path):
    root = tmp_path / "outputs"
    make_run(root / SINGLE, make_config(optimizer="torch.optim.Adam", lr=0.001), make_metrics(0.61, 0.60))
    for seed, (val, test) in enumerate(zip(BASELINE_VAL, BASELINE_TEST)):
        make_run(root / BASELINE / str(seed), make_config(seed=seed), make_metrics(val, test, seed=seed, trial=seed),
                 multirun=True, job=seed, choices={"sweep": "baseline"})
    search = root / SEARCH
    make_run(search / "0", make_config(bottleneck=16), make_metrics(0.70, 0.69, trial=0, study="search"),
             multirun=True, job=0)
    make_run(search / "1", make_config(bottleneck=32), None, multirun=True, job=1)  # crashed
    make_run(search / "2", make_config(bottleneck=64), '{"status": "completed", "val": {"mapp',
             multirun=True, job=2)  # half-written
    make_run(search / "3", make_config(bottleneck=8), make_metrics(0.30, None, "pruned", trial=3, study="search"),
             multirun=True, job=3)
    make_run(search / "4", make_config(bottleneck=4, lr=10.0),
             make_metrics(None, None, "diverged", trial=4, study="search"), multirun=True, job=4)
    return root


def collect(outputs):
    warnings = []
    return collect_runs([outputs], warn=warnings.append), warnings


def row(runs, relative):
    matches = runs[runs["run_dir"].str.endswith(relative)]
    assert len(matches) == 1, relative
    return matches.iloc[0]


def test_collect_makes_one_row_per_finished_run_and_one_warning_per_broken_run(outputs):
    runs, warnings = collect(outputs)

    assert len(runs) == 1 + 3 + 3
    assert len(warnings) == 2
    assert f"{SEARCH}/1: no metrics.json" in warnings[0]
    assert f"{SEARCH}/2: metrics.json is not valid JSON" in warnings[1]


def test_a_metrics_json_that_cannot_be_read_is_one_warning_not_a_traceback(outputs, monkeypatch):
    unreadable = outputs / SEARCH / "0" / "metrics.json"
    read_text = Path.read_text

    def refuse(path, *args, **kwargs):  # as for a user without read permission (root reads every file)
        if path == unreadable:
            raise PermissionError(13, "Permission denied", str(path))
        return read_text(path, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", refuse)
    runs, warnings = collect(outputs)

    assert len(runs) == 1 + 3 + 2
    assert f"{SEARCH}/0: metrics.json cannot be read: [Errno 13] Permission denied: '{unreadable}'" in warnings[0]


def test_a_trial_its_sweep_recorded_as_failed_is_a_failed_row_with_the_sweeps_reason(outputs):
    search = outputs / SEARCH
    reason = "ConfigError: model.activation='swish' is not allowed: one of: relu, gelu"
    pd.DataFrame({"number": [0, 1], "state": ["COMPLETE", "FAIL"], "reason": [None, reason],
                  "run_dir": [str(search / "0"), str(search / "1")], "study_name": ["search", "search"]}
                 ).to_csv(search / "trials.csv", index=False)

    runs, warnings = collect(outputs)

    failed = row(runs, f"{SEARCH}/1")
    assert (failed["status"], failed["state"], failed["reason"]) == ("failed", "FAIL", reason)
    assert (failed["trial"], failed["study_name"], failed["model.bottleneck"]) == (1, "search", 32)
    assert pd.isna(failed["val.mapped_acc"])
    assert len(warnings) == 1 and f"{SEARCH}/2: metrics.json is not valid JSON" in warnings[0]


def test_collect_flattens_config_to_dotted_columns_with_short_target_names(outputs):
    runs, _ = collect(outputs)
    single = row(runs, SINGLE)

    assert single["optimizer"] == "Adam"
    assert single["model"] == "BlogAutoencoder"
    assert single["optimizer.lr"] == 0.001
    assert single["model.bottleneck"] == 10
    assert single["model.hidden"] == "[128, 64]"
    assert single["trainer.batch_size"] == 64  # interpolation resolved
    assert single["trainer.checkpoint"] == "${hydra:runtime.output_dir}/model.pt"  # needs Hydra: kept as text
    assert single["loss"] == "mse"  # a config group choice without _target_
    assert not [c for c in runs.columns if "_target_" in c or "_partial_" in c or c.startswith(("trial.", "hydra"))]


def test_collect_takes_sweep_trial_state_and_metrics_from_each_run(outputs):
    runs, _ = collect(outputs)
    baseline = runs[runs["sweep"] == "baseline"]

    assert baseline["trial"].tolist() == [0, 1, 2]
    assert baseline["seed"].tolist() == [0, 1, 2]
    assert baseline["val.mapped_acc"].tolist() == BASELINE_VAL
    assert baseline["test.mapped_acc"].tolist() == BASELINE_TEST
    assert set(baseline["state"]) == {"COMPLETE"}
    assert pd.isna(row(runs, SINGLE)["sweep"])
    pruned, diverged = row(runs, f"{SEARCH}/3"), row(runs, f"{SEARCH}/4")
    assert (pruned["sweep"], pruned["state"], pruned["val.mapped_acc"]) == ("search", "PRUNED", 0.30)
    assert math.isnan(pruned["test.mapped_acc"])
    assert (diverged["status"], diverged["state"], diverged["reason"]) == ("diverged", "FAIL", "diverged at epoch 2")
    assert row(runs, f"{SEARCH}/0")["seconds"] == 12.5


def test_collect_command_writes_runs_csv_that_reads_back_as_collected(outputs, capsys):
    assert main(["collect", str(outputs)]) == 0

    out, err = capsys.readouterr()
    written = pd.read_csv(outputs / "runs.csv")
    runs, _ = collect(outputs)
    pd.testing.assert_frame_equal(written[["run_dir", "model.bottleneck", "val.mapped_acc"]],
                                  runs[["run_dir", "model.bottleneck", "val.mapped_acc"]], check_dtype=False)
    assert out.startswith("7 runs (2 sweeps, 1 single run) -> ")
    assert [line.split(": ")[0:2] for line in err.splitlines()] == [["aesweep collect", "warning"]] * 2


def test_collect_out_option_names_the_csv(outputs, tmp_path):
    assert main(["collect", str(outputs / "sweeps"), "--out", str(tmp_path / "tables" / "mine.csv")]) == 0

    assert len(pd.read_csv(tmp_path / "tables" / "mine.csv")) == 6
    assert not (outputs / "sweeps" / "runs.csv").exists()


def test_collect_missing_directory_is_one_line_error_and_writes_nothing(tmp_path, capsys):
    assert main(["collect", str(tmp_path / "nowhere"), "--out", str(tmp_path / "runs.csv")]) == 2

    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("aesweep collect: error: no such directory: ") and "nowhere" in err
    assert not (tmp_path / "runs.csv").exists()


def test_collect_directory_without_runs_is_an_error(tmp_path, capsys):
    assert main(["collect", str(tmp_path)]) == 2
    assert "no Hydra run directories under" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_compare_on_a_directory_matches_the_metrics_json_files(outputs):
    table = compare([outputs], fmt="csv", note=lambda _: None, warn=lambda _: None)
    leaderboard = pd.read_csv(io.StringIO(table))

    baseline_mean = sum(BASELINE_VAL) / 3
    best = leaderboard.iloc[0]
    assert (best["model.bottleneck"], best["mean val.mapped_acc"]) == (16, 0.70)
    assert best["gain pts"] == pytest.approx((0.70 - baseline_mean) * 100)
    baseline = leaderboard[leaderboard["sweep"] == "baseline"].iloc[0]
    assert baseline["runs"] == 3 and baseline["seeds"] == "0,1,2"
    assert baseline["mean val.mapped_acc"] == pytest.approx(baseline_mean)
    assert baseline["test.mapped_acc of best"] == 0.55
