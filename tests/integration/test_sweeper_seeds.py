"""A sweep that searches for what holds over seeds: each trial runs once per seed (hydra.sweeper.seeds), its
value is a statistic over them, pruning stops a trial's other runs, the best trials are confirmed on fresh seeds
and the baseline is measured over the same seeds. On the torch-free quadratic app, whose score moves with the
seed (seed_noise), in a subprocess as a user runs it.
"""

import io
import json
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from helpers import QUADRATIC_APP, SUBPROCESS_ENV, assert_one_error_line

from aesweep.cli import main as aesweep
from aesweep.storage import open_storage

pytestmark = pytest.mark.timeout(240)

SEEDED = ["hydra.sweeper.seeds=[0,1,2]", "seed_noise=0.05", "hydra.sweeper.n_trials=3"]


def sweep(cwd: Path, *overrides: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(QUADRATIC_APP), "-m", "sweep=smoke", f"hydra.sweep.dir={cwd / 'sweep'}", *overrides]
    return subprocess.run(command, cwd=cwd, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=200)


def study(cwd: Path, name: str = "smoke") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(str(cwd / "outputs" / "optuna" / "journal.log")))


def seed_values(trial_dir: Path, seeds, metric="mapped_acc") -> list[float]:
    return [json.loads((trial_dir / f"seed{s}" / "metrics.json").read_text())["val"][metric] for s in seeds]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """Three trials over seeds 0, 1, 2, then the best two confirmed on seeds 7 and 8."""
    cwd = tmp_path_factory.mktemp("seeded")
    result = sweep(cwd, *SEEDED, "hydra.sweeper.confirm.seeds=[7,8]", "hydra.sweeper.confirm.top_k=2")
    assert result.returncode == 0, result.stderr
    return cwd, cwd / "sweep", result


def test_each_trial_runs_once_per_seed_and_its_value_is_the_mean_over_them(seeded):
    _, sweep_dir, _ = seeded
    trials = pd.read_csv(sweep_dir / "trials.csv")
    assert list(trials["state"]) == ["COMPLETE"] * 3
    for _, trial in trials.iterrows():
        values = seed_values(sweep_dir / str(trial["number"]), (0, 1, 2))
        assert len(set(values)) == 3  # the seed really moved the score
        assert trial["value"] == pytest.approx(statistics.fmean(values))
        assert [trial[f"value.seed{s}"] for s in (0, 1, 2)] == pytest.approx(values)
        assert trial["value.std"] == pytest.approx(statistics.stdev(values))


def test_confirmation_reruns_the_best_on_fresh_seeds_only_and_reports_both_figures(seeded):
    cwd, sweep_dir, result = seeded
    confirm = pd.read_csv(sweep_dir / "confirm.csv")
    best_two = pd.read_csv(sweep_dir / "trials.csv").sort_values(["value", "number"], ascending=[False, True])
    assert sorted(confirm["trial"].unique()) == sorted(best_two["number"].head(2))
    assert sorted(confirm["seed"]) == [7, 7, 8, 8]
    for _, run in confirm.iterrows():
        metrics = json.loads((Path(run["run_dir"]) / "metrics.json").read_text())
        assert metrics["seed"] == run["seed"] and metrics["trial"] is None  # never reported to the search
        assert run["test.mapped_acc"] == metrics["test"]["mapped_acc"]
    best = int(best_two["number"].iloc[0])
    tests = confirm[confirm["trial"] == best]["test.mapped_acc"]
    expected = (f"confirmed on seeds 7, 8: test.mapped_acc {tests.mean():.4f} +- {tests.std():.4f} "
                f"(worst {tests.min():.4f})")
    assert expected in result.stdout
    assert f"trial {best}: search val.mapped_acc {best_two['value'].iloc[0]:.4f} (over seeds 0, 1, 2)" in result.stdout
    assert expected in (sweep_dir / "best.yaml").read_text().splitlines()[1]
    assert study(cwd).user_attrs["aesweep.confirmed"][str(best)]["seeds"] == [7, 8]


def test_compare_shows_the_confirmed_figure_beside_the_search(seeded, capsys):
    _, sweep_dir, _ = seeded
    assert aesweep(["compare", str(sweep_dir / "trials.csv"), "--format", "csv"]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out))
    trials = pd.read_csv(sweep_dir / "trials.csv")
    confirm = pd.read_csv(sweep_dir / "confirm.csv")
    assert (table["runs"] == 1).all()  # a trials.csv row is a trial: its value already the statistic over seeds
    confirmed = table.dropna(subset=["confirmed test.mapped_acc"])
    assert len(confirmed) == 2 and set(confirmed["confirmed runs"]) == {2}
    for _, row in confirmed.iterrows():
        (number,) = trials.loc[(trials["x"] - row["x"]).abs() < 1e-12, "number"]
        scores = confirm.loc[confirm["trial"] == number, "test.mapped_acc"]
        assert row["confirmed test.mapped_acc"] == pytest.approx(scores.mean())
        assert row["confirmed worst test.mapped_acc"] == pytest.approx(scores.min())


def test_compare_of_the_sweep_folder_counts_each_seed_run_and_keeps_confirmations_apart(seeded, capsys):
    _, sweep_dir, _ = seeded
    assert aesweep(["compare", str(sweep_dir), "--format", "csv"]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert sorted(table["runs"]) == [3, 3, 3] and sorted(table["seeds"]) == ["0,1,2"] * 3
    assert sorted(table["confirmed runs"].fillna(0)) == [0, 2, 2]


@pytest.mark.parametrize("statistic", ["min", "mean-std"])
def test_the_statistic_over_seeds_is_the_one_asked_for(tmp_path, statistic):
    result = sweep(tmp_path, *SEEDED, "hydra.sweeper.n_trials=2", f"hydra.sweeper.seed_statistic={statistic}")
    assert result.returncode == 0, result.stderr
    for _, trial in pd.read_csv(tmp_path / "sweep" / "trials.csv").iterrows():
        values = seed_values(tmp_path / "sweep" / str(trial["number"]), (0, 1, 2))
        expected = min(values) if statistic == "min" else statistics.fmean(values) - statistics.stdev(values)
        assert trial["value"] == pytest.approx(expected)


def test_the_pruner_judges_an_epoch_once_every_seed_has_reached_it(tmp_path):
    # One slot: seeds 0 and 1 run whole (no epoch has all three seeds yet); seed 2's first epoch completes the
    # set, the pruner (which would stop anything) judges the mean of the three, and the trial is pruned there.
    result = sweep(tmp_path, *SEEDED, "hydra.sweeper.n_trials=2",
                   "+hydra.sweeper.pruner={_target_: optuna.pruners.ThresholdPruner, lower: 2.0}")
    assert result.returncode == 0, result.stderr
    for trial in study(tmp_path).trials:
        assert trial.state.name == "PRUNED"
        curves = [trial.system_attrs[f"aesweep:curve:seed{s}"] for s in (0, 1, 2)]
        assert [sorted(curve) for curve in curves] == [["1", "2", "3"], ["1", "2", "3"], ["1"]]
        assert trial.intermediate_values[1] == pytest.approx(statistics.fmean(curve["1"] for curve in curves))
        assert trial.intermediate_values[3] == pytest.approx(statistics.fmean(curve["3"] for curve in curves[:2]))


def test_a_failing_seed_run_fails_its_trial_with_the_reason_and_the_sweep_goes_on(tmp_path):
    result = sweep(tmp_path, *SEEDED, "fail_seed=1")
    assert result.returncode == 1  # every trial failed: the command says so
    trials = study(tmp_path).trials
    assert [t.state.name for t in trials] == ["FAIL"] * 3  # all three were tried, not just the first
    assert all(t.user_attrs["reason"] == "seed 1: RuntimeError: told to raise at epoch 1" for t in trials)


def test_a_resumed_study_keeps_its_seeds_and_statistic(tmp_path):
    assert sweep(tmp_path, *SEEDED, "hydra.sweeper.n_trials=1").returncode == 0
    assert sweep(tmp_path, *SEEDED, "hydra.sweeper.n_trials=2").returncode == 0
    assert len(study(tmp_path).trials) == 2
    before = (tmp_path / "outputs" / "optuna" / "journal.log").read_bytes()
    for change, refusal in ((["hydra.sweeper.seeds=[0,1]"], "hydra.sweeper.seeds=[0, 1] is not allowed: [0,1,2], "),
                            (["hydra.sweeper.seed_statistic=min"],
                             "hydra.sweeper.seed_statistic='min' is not allowed: mean, ")):
        refused = sweep(tmp_path, *SEEDED, "hydra.sweeper.n_trials=3", *change)
        assert_one_error_line(refused, f"{refusal}as study 'smoke'")
    assert (tmp_path / "outputs" / "optuna" / "journal.log").read_bytes() == before


@pytest.mark.parametrize("overrides, expected", [
    (["hydra.sweeper.seeds=[]"], "hydra.sweeper.seeds=[] is not allowed: a non-empty list of seeds"),
    (["hydra.sweeper.seeds=[0,1,1]"], "hydra.sweeper.seeds=[0, 1, 1] is not allowed: distinct seeds (1 repeated)"),
    (["hydra.sweeper.seeds=[0,1]", "hydra.sweeper.confirm.seeds=[1,5]"],
     "hydra.sweeper.confirm.seeds=[1, 5] is not allowed: fresh seeds the search never used; 1 is in "
     "hydra.sweeper.seeds [0, 1]"),
    (["hydra.sweeper.confirm.seeds=[0]"],
     "hydra.sweeper.confirm.seeds=[0] is not allowed: fresh seeds the search never used; 0 is in the config's seed"),
    (["hydra.sweeper.seed_statistic=median"],
     "hydra.sweeper.seed_statistic='median' is not allowed: one of: mean, min, mean-std"),
])
def test_bad_seed_settings_are_one_error_line_and_nothing_is_written(tmp_path, overrides, expected):
    result = sweep(tmp_path, *overrides)
    assert_one_error_line(result, expected)
    assert not (tmp_path / "sweep").exists() and not (tmp_path / "outputs").exists()


def test_the_baseline_is_measured_over_the_sweeps_seeds_once_when_the_storage_has_none(tmp_path):
    first = sweep(tmp_path, *SEEDED, "hydra.sweeper.n_trials=1", "hydra.sweeper.baseline_overrides=['kind=b','x=0.0']")
    assert first.returncode == 0, first.stderr
    baseline = study(tmp_path, "baseline")
    (trial,) = baseline.trials
    folder = tmp_path / "sweep" / "baseline"  # beside the sweep's folder in outputs/sweeps/, inside it elsewhere
    values = seed_values(folder / "0", (0, 1, 2))
    assert trial.value == pytest.approx(statistics.fmean(values))
    assert "kind=b" in trial.user_attrs["overrides"]
    assert yaml.safe_load((folder / "study.yaml").read_text())["study_name"] == "baseline"
    assert f"Baseline: study 'baseline', 1 completed trials: val.mapped_acc = {trial.value:.4f}" in first.stdout
    again = sweep(tmp_path, *SEEDED, "hydra.sweeper.n_trials=2", "hydra.sweeper.baseline_overrides=['kind=b','x=0.0']")
    assert again.returncode == 0, again.stderr
    assert len(study(tmp_path, "baseline").trials) == 1  # measured once


def test_a_baseline_cut_short_by_sigterm_is_failed_and_measured_by_the_next_command(tmp_path):
    baseline = ["hydra.sweeper.baseline_overrides=['kind=b','x=0.0']", "hydra.sweeper.n_trials=1"]
    first = subprocess.Popen([sys.executable, str(QUADRATIC_APP), "-m", "sweep=smoke", *SEEDED, *baseline,
                              "epochs=6", "sleep=0.4", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
                             cwd=tmp_path, env=SUBPROCESS_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)
    first_run = tmp_path / "sweep" / "baseline" / "0" / "seed0" / "history.csv"  # its first run has ended
    deadline = time.time() + 60
    while time.time() < deadline and not first_run.exists():
        time.sleep(0.2)
    first.send_signal(signal.SIGTERM)  # as Ctrl-C (SIGINT is ignored where the tests run in the background)
    _, stderr = first.communicate(timeout=60)
    assert first.returncode == 143 and "Traceback" not in stderr
    (cut,) = study(tmp_path, "baseline").trials
    assert cut.state.name == "FAIL" and cut.user_attrs["reason"] == "sweep interrupted (signal 15)"

    again = sweep(tmp_path, *SEEDED, *baseline, "epochs=2")

    assert again.returncode == 0, again.stderr
    assert [t.state.name for t in study(tmp_path, "baseline").trials] == ["FAIL", "COMPLETE"]
    assert "Baseline: study 'baseline', 1 completed trials" in again.stdout
