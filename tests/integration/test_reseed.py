"""aesweep reseed: a sweep's best trials re-run over seeds, the choice made on mean validation only."""

from __future__ import annotations

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
def sweep(tmp_path_factory, mnist_root) -> Path:
    """A real 3-trial smoke sweep (512 images, 2 epochs a trial)."""
    tmp = tmp_path_factory.mktemp("reseed")
    sweep_dir = tmp / "sweep"
    result = subprocess.run(
        [sys.executable, str(REPO / "train.py"), "-m", "sweep=smoke", f"data.root={mnist_root}",
         "hydra.sweeper.n_trials=3", "hydra.sweeper.pruner=null", "trainer.threads=1",
         f"hydra.sweeper.storage={tmp / 'journal.log'}", f"hydra.sweep.dir={sweep_dir}"],
        cwd=tmp, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return sweep_dir


@pytest.fixture(scope="module")
def reseeded(sweep) -> Path:
    assert aesweep(["reseed", str(sweep), "--top", "2", "--seeds", "3,4", "--jobs", "2"]) == 0
    return sweep / "reseed"


def test_runs_the_top_trials_once_per_seed(sweep, reseeded):
    trials = pd.read_csv(sweep / "trials.csv")
    top2 = trials[trials["state"] == "COMPLETE"].sort_values("value", ascending=False)["number"].head(2).tolist()
    runs = pd.read_csv(reseeded / "runs.csv")
    assert sorted(zip(runs["trial"], runs["seed"])) == sorted((t, s) for t in top2 for s in (3, 4))
    assert (runs["status"] == "completed").all()


def test_each_run_is_the_trial_config_with_only_the_seed_changed(sweep, reseeded):
    runs = pd.read_csv(reseeded / "runs.csv")
    for row in runs.itertuples():
        run_config = yaml.safe_load((Path(row.run_dir) / ".hydra" / "config.yaml").read_text())
        trial_config = yaml.safe_load((sweep / str(row.trial) / ".hydra" / "config.yaml").read_text())
        assert run_config["seed"] == row.seed
        for key in ("model", "optimizer", "data", "loss"):
            assert run_config[key] == trial_config[key]
        metrics = json.loads((Path(row.run_dir) / "metrics.json").read_text())
        assert runs.loc[row.Index, "test.mapped_acc"] == metrics["test"]["mapped_acc"]
        assert metrics["trial"] is None  # a plain run, not reporting to the sweep's study


def test_chooses_the_best_mean_validation_and_reports_test_beside_it(reseeded):
    runs = pd.read_csv(reseeded / "runs.csv")
    summary = pd.read_csv(reseeded / "summary.csv")
    means = runs.groupby("trial")["val.mapped_acc"].mean()
    assert summary.loc[0, "chosen"] and not summary["chosen"].iloc[1:].any()
    assert summary.loc[0, "trial"] == means.idxmax()
    assert summary.loc[0, "val.mapped_acc mean"] == pytest.approx(means.max())
    chosen_test = runs[runs["trial"] == means.idxmax()]["test.mapped_acc"]
    assert summary.loc[0, "test.mapped_acc mean"] == pytest.approx(chosen_test.mean())
    assert summary.loc[0, "test.mapped_acc sd"] == pytest.approx(chosen_test.std(ddof=1))


def test_chosen_yaml_holds_the_chosen_trials_overrides(sweep, reseeded):
    summary = pd.read_csv(reseeded / "summary.csv")
    chosen = yaml.safe_load((reseeded / "chosen.yaml").read_text())
    trial_overrides = yaml.safe_load((sweep / str(summary.loc[0, "trial"]) / ".hydra" / "overrides.yaml").read_text())
    assert chosen == [o for o in trial_overrides if not o.lstrip("+").startswith("trial.")]


@pytest.mark.parametrize("args, words", [
    (["reseed", "/nonexistent/sweep"], ["no trials.csv", "/nonexistent/sweep"]),
    (["reseed", ".", "--metric", "test.mapped_acc"], ["--metric=test.mapped_acc", "val.*"]),
    (["reseed", ".", "--seeds", "0,x"], ["--seeds", "0,x"]),
    (["reseed", ".", "--top", "0"], ["--top"]),
])
def test_bad_arguments_are_one_line_and_exit_2(args, words, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert aesweep(args) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("aesweep reseed: error: ")
    assert all(word in lines[0] for word in words), lines[0]
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def recorded_sweep(tmp_path) -> Path:
    """A finished sweep as reseed reads it, without training: trials.csv and each trial's overrides.yaml."""
    sweep_dir = tmp_path / "sweep"
    rows = []
    for number, bottleneck in enumerate((10, 10)):
        (sweep_dir / str(number) / ".hydra").mkdir(parents=True)
        (sweep_dir / str(number) / ".hydra" / "overrides.yaml").write_text(
            yaml.safe_dump([f"model.bottleneck={bottleneck}", f"seed={number}", "++trial.trial_number=0"]))
        rows.append({"number": number, "state": "COMPLETE", "value": 0.5 + number / 10,
                     "run_dir": str(sweep_dir / str(number))})
    pd.DataFrame(rows).to_csv(sweep_dir / "trials.csv", index=False)
    return sweep_dir


def refused_before_any_run(args: list[str], sweep_dir: Path, monkeypatch, capsys) -> str:
    """Run `aesweep reseed`, which must refuse before starting a run; its one stderr line."""
    monkeypatch.setattr("aesweep.reseed.run_all", lambda *a, **k: pytest.fail("started the runs"))
    contents = sorted(p.relative_to(sweep_dir) for p in sweep_dir.rglob("*"))

    assert aesweep(["reseed", str(sweep_dir), *args]) == 2

    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("aesweep reseed: error: "), lines
    assert sorted(p.relative_to(sweep_dir) for p in sweep_dir.rglob("*")) == contents  # no reseed/, no run folders
    return lines[0]


def test_a_bad_override_value_is_refused_before_any_run_starts(recorded_sweep, monkeypatch, capsys):
    line = refused_before_any_run(["--override", "model.activation=swish"], recorded_sweep, monkeypatch, capsys)

    assert line.startswith("aesweep reseed: error: model.activation='swish' is not allowed: one of: relu, ")


def test_an_override_that_breaks_the_trials_config_is_refused_before_any_run_starts(recorded_sweep, monkeypatch,
                                                                                      capsys):
    # the trials' own model.bottleneck=10 is fine alone; with eval.n_clusters=12 the argmax readout cannot work
    line = refused_before_any_run(["--override", "eval.n_clusters=12"], recorded_sweep, monkeypatch, capsys)

    assert "model.bottleneck=10 is not allowed: equal to eval.n_clusters=12" in line


def test_an_override_without_equals_sign_is_refused_by_the_parser(recorded_sweep, monkeypatch, capsys):
    line = refused_before_any_run(["--override", "nokey"], recorded_sweep, monkeypatch, capsys)

    assert line == ("aesweep reseed: error: argument --override: 'nokey' is not allowed: KEY=VALUE, "
                    "a Hydra override such as model.bottleneck=16")


def test_an_unwritable_out_is_refused_before_any_run_starts(recorded_sweep, monkeypatch, capsys):
    blocker = recorded_sweep / "passwd"
    blocker.write_text("")

    line = refused_before_any_run(["--out", str(blocker / "r")], recorded_sweep, monkeypatch, capsys)

    assert line == f"aesweep reseed: error: --out='{blocker}/r': cannot write there (Not a directory: {blocker})"


def test_a_trial_that_set_its_own_thread_count_is_rerun_with_it(monkeypatch):
    from aesweep.reseed import cores_share

    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert cores_share(["model=conv", "trainer.threads=1"], jobs=1) == []  # the sweep's own: its numbers depend on it
    assert cores_share(["model=conv"], jobs=2) == ["trainer.threads=4"]
    assert cores_share(["model=conv"], jobs=16) == ["trainer.threads=1"]
