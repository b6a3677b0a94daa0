"""aesweep collect / compare / plot over a real smoke sweep of train.py, checked against its metrics.json files."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import REPO, SUBPROCESS_ENV

from aesweep.cli import main as aesweep



@pytest.fixture(scope="module")
def smoke_sweep(tmp_path_factory, mnist_root) -> Path:
    """A 3-trial smoke sweep of the real train.py, in its own storage and directory."""
    tmp = tmp_path_factory.mktemp("e2e")
    sweep_dir = tmp / "outputs" / "sweeps" / "smoke" / "t0"
    result = subprocess.run(
        [sys.executable, str(REPO / "train.py"), "-m", "sweep=smoke", f"data.root={mnist_root}",
         "hydra.sweeper.n_trials=3", "hydra.sweeper.pruner=null",
         f"hydra.sweeper.storage={tmp / 'journal.log'}", f"hydra.sweep.dir={sweep_dir}"],
        cwd=tmp, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return sweep_dir


def job_metrics(sweep_dir: Path) -> dict[str, dict]:
    return {str(p.parent): json.loads(p.read_text()) for p in sweep_dir.glob("*/metrics.json")}


def job_bottleneck(run_dir: str) -> int:
    config = yaml.safe_load((Path(run_dir) / ".hydra" / "config.yaml").read_text())
    return int(config["model"]["bottleneck"])


def test_collect_has_one_row_per_trial_with_the_numbers_of_its_metrics_json(smoke_sweep, tmp_path):
    out = tmp_path / "runs.csv"
    assert aesweep(["collect", str(smoke_sweep), "--out", str(out)]) == 0
    runs = pd.read_csv(out)
    metrics = job_metrics(smoke_sweep)
    assert len(runs) == len(metrics) == 3
    for _, row in runs.iterrows():
        raw = metrics[row["run_dir"]]
        assert row["val.mapped_acc"] == pytest.approx(raw["val"]["mapped_acc"])
        assert row["test.nmi"] == pytest.approx(raw["test"]["nmi"])
        assert row["sweep"] == "smoke" and row["state"] == "COMPLETE" and row["epochs"] == raw["epochs"] == 2


def test_compare_by_bottleneck_reports_each_groups_best_and_mean(smoke_sweep, capsys):
    assert aesweep(["compare", str(smoke_sweep), "--by", "model.bottleneck", "--format", "csv"]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out))
    by_width: dict[int, list[float]] = {}
    for run_dir, raw in job_metrics(smoke_sweep).items():
        by_width.setdefault(job_bottleneck(run_dir), []).append(raw["val"]["mapped_acc"])
    assert sorted(table["model.bottleneck"]) == sorted(by_width)
    for _, row in table.iterrows():
        values = by_width[row["model.bottleneck"]]
        assert row["runs"] == len(values)
        assert row["best val.mapped_acc"] == pytest.approx(max(values))
        assert row["mean val.mapped_acc"] == pytest.approx(sum(values) / len(values))


def test_compare_where_keeps_only_matching_runs(smoke_sweep, capsys):
    metrics = job_metrics(smoke_sweep)
    chosen_dir = min(metrics)
    width = job_bottleneck(chosen_dir)
    expected = [raw["val"]["mapped_acc"] for d, raw in metrics.items() if job_bottleneck(d) == width]
    assert aesweep(["compare", str(smoke_sweep), "--by", "model.bottleneck",
                    "--where", f"model.bottleneck == {width}", "--format", "csv"]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert list(table["model.bottleneck"]) == [width]
    assert table["runs"][0] == len(expected)
    assert table["best val.mapped_acc"][0] == pytest.approx(max(expected))


def test_plot_writes_history_importances_and_best_confusion(smoke_sweep):
    assert aesweep(["plot", str(smoke_sweep)]) == 0
    for name in ("history.png", "confusion_best.png", "importances.png"):
        png = smoke_sweep / name
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
