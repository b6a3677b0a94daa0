"""The aesweep_optuna sweeper end to end, on a torch-free stand-in for train.py (tests/apps/quadratic).

Each test runs ``app.py -m sweep=smoke ...`` in a subprocess, as a user would, with the study in a
journal file under the test's folder; a run takes one to a few seconds.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from helpers import QUADRATIC_APP, REPO, SRC

from aesweep.storage import open_storage

APP = QUADRATIC_APP
BRUTE_FORCE = "hydra.sweeper.sampler._target_=optuna.samplers.BruteForceSampler"

pytestmark = pytest.mark.timeout(180)


def command(*overrides):
    return [sys.executable, str(APP), "-m", "sweep=smoke", *overrides]


def environment():
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}


def sweep(cwd, *overrides):
    return subprocess.run(command(*overrides), cwd=cwd, env=environment(), capture_output=True, text=True, timeout=150)


def load(cwd, study_name="smoke"):
    return optuna.load_study(
        study_name=study_name, storage=open_storage(str(cwd / "outputs" / "optuna" / "journal.log"))
    )


def table(sweep_dir):
    return pd.read_csv(sweep_dir / "trials.csv")


def states(study):
    return [t.state.name for t in sorted(study.trials, key=lambda t: t.number)]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """One smoke sweep of 4 trials, shared by the tests that only read its results."""
    cwd = tmp_path_factory.mktemp("smoke")
    result = sweep(cwd, f"hydra.sweep.dir={cwd / 'sweep'}")
    assert result.returncode == 0, result.stderr
    return cwd, cwd / "sweep", result


def test_smoke_sweep_writes_one_row_per_trial_all_complete(smoke):
    _, sweep_dir, _ = smoke
    rows = table(sweep_dir)
    assert list(rows["number"]) == [0, 1, 2, 3]
    assert set(rows["state"]) == {"COMPLETE"}
    for column in ("value", "x", "kind", "width", "val.mapped_acc", "test.mapped_acc", "epochs", "seconds", "run_dir"):
        assert rows[column].notna().all(), column
    assert all((Path(d) / "metrics.json").exists() for d in rows["run_dir"])
    assert [Path(d).name for d in rows["run_dir"]] == ["0", "1", "2", "3"]


def test_optuna_load_study_sees_the_same_trials_as_trials_csv(smoke):
    cwd, sweep_dir, _ = smoke
    rows = table(sweep_dir).set_index("number")
    study = load(cwd)
    assert sorted(t.number for t in study.trials) == list(rows.index)
    for trial in study.trials:
        assert trial.state.name == rows.loc[trial.number, "state"]
        assert trial.value == pytest.approx(rows.loc[trial.number, "value"])
        assert trial.params["width"] == rows.loc[trial.number, "width"]


def test_study_yaml_tells_other_tools_where_the_study_is(smoke):
    cwd, sweep_dir, _ = smoke
    info = yaml.safe_load((sweep_dir / "study.yaml").read_text())
    assert info["study_name"] == "smoke"
    assert info["storage"] == str(cwd / "outputs" / "optuna" / "journal.log")
    assert info["directions"] == ["maximize"] and info["objectives"] == ["val.mapped_acc"]


def test_best_yaml_reruns_the_best_trial_as_a_single_run(smoke):
    cwd, sweep_dir, result = smoke
    rows = table(sweep_dir)
    best = rows.loc[rows["value"].idxmax()]
    overrides = yaml.safe_load((sweep_dir / "best.yaml").read_text())
    assert overrides[0] == "sweep=smoke" and f"width={best['width']}" in overrides
    single = subprocess.run(
        [sys.executable, str(APP), *overrides, f"hydra.run.dir={cwd / 'rerun'}"],
        cwd=cwd,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert single.returncode == 0, single.stderr
    metrics = json.loads((cwd / "rerun" / "metrics.json").read_text())
    assert metrics["val"]["mapped_acc"] == pytest.approx(best["value"])
    assert "Top 4 by val.mapped_acc" in result.stdout and "Baseline: none measured" in result.stdout


def test_pruning_stops_a_bad_trial_after_its_first_epoch(tmp_path):
    result = sweep(
        tmp_path,
        BRUTE_FORCE,
        "x=choice(-1, 0.3)",
        "kind=a",
        "width=8",
        "epochs=5",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.pruner={_target_:optuna.pruners.ThresholdPruner,lower:0.5}",
        f"hydra.sweep.dir={tmp_path / 's'}",
    )
    assert result.returncode == 0, result.stderr
    rows = table(tmp_path / "s").set_index("x")
    assert rows.loc[-1.0, "state"] == "PRUNED" and rows.loc[-1.0, "epochs"] == 1
    assert rows.loc[0.3, "state"] == "COMPLETE" and rows.loc[0.3, "epochs"] == 5
    history = pd.read_csv(Path(rows.loc[-1.0, "run_dir"]) / "history.csv")
    assert len(history) == 1  # fewer epochs than the 5 configured
    pruned = next(t for t in load(tmp_path).trials if t.state.name == "PRUNED")
    assert list(pruned.intermediate_values) == [1]


def test_a_pruner_from_the_sweep_file_is_replaced_by_clearing_it_first(tmp_path):
    from aesweep.trial import PRUNER_ATTR

    median = "hydra.sweeper.pruner={_target_:optuna.pruners.MedianPruner,n_startup_trials:5}"  # as a sweep file sets it
    threshold = "hydra.sweeper.pruner={_target_:optuna.pruners.ThresholdPruner,lower:0.5}"
    result = sweep(tmp_path, median, "hydra.sweeper.pruner=null", threshold, "hydra.sweeper.n_trials=1", "epochs=1",
                   f"hydra.sweep.dir={tmp_path / 's'}")
    assert result.returncode == 0, result.stderr
    assert load(tmp_path).user_attrs[PRUNER_ATTR] == {"_target_": "optuna.pruners.ThresholdPruner", "lower": 0.5}


def test_a_raising_and_a_diverging_trial_end_fail_while_the_sweep_completes(tmp_path):
    result = sweep(
        tmp_path,
        BRUTE_FORCE,
        "mode=choice(ok, raise, diverge)",
        "x=0.3",
        "kind=a",
        "width=8",
        "hydra.sweeper.n_trials=3",
        f"hydra.sweep.dir={tmp_path / 's'}",
    )
    assert result.returncode == 0, result.stderr
    rows = table(tmp_path / "s").set_index("mode")
    assert rows.loc["ok", "state"] == "COMPLETE"
    assert (
        rows.loc["raise", "state"] == "FAIL" and rows.loc["raise", "reason"] == "RuntimeError: told to raise at epoch 1"
    )
    assert (
        rows.loc["diverge", "state"] == "FAIL" and rows.loc["diverge", "reason"] == "diverged: loss is nan at epoch 1"
    )


def test_when_every_trial_fails_the_command_exits_1_with_the_reasons(tmp_path):
    result = sweep(
        tmp_path, BRUTE_FORCE, "mode=choice(raise, nometrics)", "x=0.3", "kind=a", "width=8", "hydra.sweeper.n_trials=2"
    )
    assert result.returncode == 1
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("error: all 2 trials of this sweep failed: ")
    assert "1x RuntimeError: told to raise at epoch 1" in last_line and "1x the job wrote no metrics.json" in last_line


def test_kill_9_mid_trial_then_rerun_finishes_n_trials_with_the_interrupted_one_failed(tmp_path):
    overrides = ("hydra.sweeper.n_trials=3", "epochs=4", "sleep=0.4")
    first = subprocess.Popen(
        command(*overrides), cwd=tmp_path, env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    journal = tmp_path / "outputs" / "optuna" / "journal.log"
    deadline = time.time() + 60
    while time.time() < deadline:  # wait until trial 1 has reported an epoch: mid-trial
        if journal.exists() and any(t.number == 1 and t.intermediate_values for t in load(tmp_path).trials):
            break
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert [t.state.name for t in load(tmp_path).trials] == ["COMPLETE", "RUNNING"]

    second = sweep(tmp_path, *overrides)
    assert second.returncode == 0, second.stderr
    study = load(tmp_path)
    assert sorted(t.number for t in study.trials) == [0, 1, 2]
    assert states(study) == ["COMPLETE", "FAIL", "COMPLETE"]
    assert "ended while the trial ran" in study.trials[1].user_attrs["reason"]
    assert study.trials[2].params != study.trials[0].params  # the seeded sampler did not replay trial 0


def test_sigterm_mid_trial_records_the_running_trial_as_failed_before_exiting(tmp_path):
    first = subprocess.Popen(
        command("hydra.sweeper.n_trials=2", "epochs=6", "sleep=0.4"),
        cwd=tmp_path,
        env=environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    journal = tmp_path / "outputs" / "optuna" / "journal.log"
    deadline = time.time() + 60
    while time.time() < deadline and not (
        journal.exists() and any(t.intermediate_values for t in load(tmp_path).trials)
    ):
        time.sleep(0.2)
    first.send_signal(signal.SIGTERM)  # what a scheduler sends when it pre-empts the job
    _, stderr = first.communicate(timeout=60)
    assert first.returncode == 143 and "Traceback" not in stderr
    assert stderr.splitlines()[-1] == ("error: sweep interrupted (signal 15): the running trials are recorded FAIL, "
                                       "finished ones kept; run the same command again to continue")
    (trial,) = load(tmp_path).trials
    assert trial.state.name == "FAIL" and trial.user_attrs["reason"].startswith("sweep interrupted")


def test_joblib_launcher_runs_two_trials_at_the_same_time(tmp_path):
    result = sweep(
        tmp_path,
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.n_trials=2",
        "epochs=2",
        "sleep=0.5",
    )
    assert result.returncode == 0, result.stderr
    first, second = load(tmp_path).trials
    assert states(load(tmp_path)) == ["COMPLETE", "COMPLETE"]
    assert first.datetime_start < second.datetime_complete and second.datetime_start < first.datetime_complete
    assert first.user_attrs["run_dir"] != second.user_attrs["run_dir"]


@pytest.fixture(scope="module")
def slow_first_trial(tmp_path_factory):
    """Two slots, 6 trials, trial 0 slow (3 epochs of 2 s) and the rest quick: once per dispatch mode."""
    spans = {}
    for mode in ("async", "batch"):
        cwd = tmp_path_factory.mktemp(mode)
        result = sweep(cwd, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=2",
                       "hydra.sweeper.n_trials=6", f"hydra.sweeper.dispatch={mode}", "slow_trial=0", "slow_sleep=2",
                       "sleep=0.05", f"hydra.sweep.dir={cwd / 'sweep'}")
        assert result.returncode == 0, result.stderr
        trials = sorted(load(cwd).trials, key=lambda t: t.number)
        spans[mode] = [(t.user_attrs["runs_started"], t.user_attrs["runs_ended"]) for t in trials]
    return spans


def test_async_dispatch_runs_the_quick_trials_beside_the_slow_one_without_waiting_for_it(slow_first_trial):
    (_, slow_end), *quick = slow_first_trial["async"]
    assert all(end < slow_end for _, end in quick)  # all five ran on the other slot while trial 0 ran
    assert all(later_start >= end for (_, end), (later_start, _) in zip(quick, quick[1:]))  # one after another


def test_batch_dispatch_waits_for_the_slowest_trial_of_a_batch_before_the_next(slow_first_trial):
    spans = slow_first_trial["batch"]
    batches = [spans[i:i + 2] for i in range(0, 6, 2)]
    for batch, following in zip(batches, batches[1:]):
        assert min(start for start, _ in following) >= max(end for _, end in batch)
    (slow_start, slow_end), (quick_start, quick_end) = batches[0]
    assert quick_end - quick_start < (slow_end - slow_start) / 3  # the job's own span, not the batch's


def test_two_sweep_commands_on_one_study_run_exactly_n_trials_together(tmp_path):
    overrides = ("hydra.sweeper.n_trials=6", "epochs=2", "sleep=0.2")
    workers = [
        subprocess.Popen(
            command(*overrides, f"hydra.sweep.dir={tmp_path / f'w{i}'}"),
            cwd=tmp_path,
            env=environment(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    for worker in workers:
        assert worker.wait(timeout=150) == 0, worker.stderr.read()
    study = load(tmp_path)
    assert sorted(t.number for t in study.trials) == [0, 1, 2, 3, 4, 5]
    assert states(study) == ["COMPLETE"] * 6
    assert len({t.user_attrs["run_dir"] for t in study.trials}) == 6


def test_two_objectives_record_both_values(tmp_path):
    result = sweep(
        tmp_path,
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.objective=[val.mapped_acc,params]",
        "hydra.sweeper.direction=[maximize,minimize]",
        f"hydra.sweep.dir={tmp_path / 's'}",
    )
    assert result.returncode == 0, result.stderr
    rows = table(tmp_path / "s")
    assert list(rows["state"]) == ["COMPLETE"] * 3
    assert list(rows["values_params"]) == list(rows["width"] * 10)
    assert list(rows["values_val.mapped_acc"]) == list(rows["val.mapped_acc"])


def test_a_parameter_missing_from_a_groups_option_is_searched_only_where_it_exists(tmp_path):
    result = sweep(
        tmp_path,
        BRUTE_FORCE,
        "optimizer=choice(sgd, adam)",
        "optimizer.momentum=choice(0.0, 0.9)",
        "x=0.3",
        "kind=a",
        "width=8",
        "hydra.sweeper.n_trials=3",
        f"hydra.sweep.dir={tmp_path / 's'}",
    )
    assert result.returncode == 0, result.stderr
    params = sorted((t.params["optimizer"], t.params.get("optimizer.momentum")) for t in load(tmp_path).trials)
    assert params == [("adam", None), ("sgd", 0.0), ("sgd", 0.9)]


@pytest.mark.parametrize(
    "override, named",
    [
        ("hydra.sweeper.params.x='interval(5, 1)'", "x='interval(5, 1)'"),
        ("hydra.sweeper.params.kind='choice()'", "kind='choice()'"),
        ("x=tag(log, interval(0, 1))", "x='tag(log, interval(0, 1))'"),
        ("widht=range(4, 33, 4)", "widht is not a config key; did you mean width?"),
    ],
)
def test_malformed_search_space_exits_2_with_one_line_before_any_trial(tmp_path, override, named):
    result = sweep(tmp_path, override)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: ") and named in result.stderr
    assert not (tmp_path / "outputs" / "optuna" / "journal.log").exists()


def test_the_smoke_sweep_drives_train_py_end_to_end_on_two_slots_each_runs_lines_labelled(tmp_path, mnist_root):
    repo = REPO
    result = subprocess.run(
        [
            sys.executable,
            str(repo / "train.py"),
            "-m",
            "sweep=smoke",
            f"data.root={mnist_root}",
            "hydra.sweeper.n_trials=2",
            f"hydra.sweeper.storage={tmp_path / 'journal.log'}",
            f"hydra.sweep.dir={tmp_path / 's'}",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            "hydra.sweeper.n_jobs=2",
            "trainer.threads=1",
        ],
        cwd=tmp_path,
        env={**environment(), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = table(tmp_path / "s")
    assert list(rows["number"]) == [0, 1] and set(rows["state"]) <= {"COMPLETE", "PRUNED"}
    metrics = json.loads((Path(rows["run_dir"][0]) / "metrics.json").read_text())
    assert metrics["trial"] == {"study_name": "smoke", "number": 0}
    assert rows["val.mapped_acc"][0] == pytest.approx(metrics["val"]["mapped_acc"])

    # The two runs log side by side: the sweep log says which slot runs which, and each run's console lines
    # start with its folder, while its own train.log stays as the job writes it.
    output = (result.stdout + result.stderr).splitlines()
    assert {line.split("] ", 1)[1] for line in output if "] slot " in line and "started" in line} == {
        "slot 1/2: run 0 started", "slot 2/2: run 1 started"}
    assert sum("] slot " in line and " ended after " in line for line in output) == 2
    busy = [line for line in output if line.startswith("This command's trials kept its 2 slots ")]
    assert len(busy) == 1 and 0 < float(busy[0].split("slots ")[1].split("%")[0]) <= 100
    for number in (0, 1):
        epochs = [line for line in output if "[aesweep.train]" in line and " - epoch 1/2 " in line
                  and line.startswith(f"[{number}] [")]
        assert len(epochs) == 1, output
        own_log = (tmp_path / "s" / str(number) / "train.log").read_text().splitlines()
        assert any(" - epoch 1/2 " in line for line in own_log)
        assert all(line.startswith("[20") for line in own_log if line.strip())


def test_a_seeded_grid_sweep_runs_every_point_once(tmp_path):
    result = sweep(
        tmp_path,
        "hydra.sweeper.sampler._target_=optuna.samplers.GridSampler",
        "x=choice(-1, 0.5)",
        "kind=choice(a, b)",
        "width=8",
        "hydra.sweeper.n_trials=4",
        f"hydra.sweep.dir={tmp_path / 's'}",
    )
    assert result.returncode == 0, result.stderr
    points = sorted(zip(table(tmp_path / "s")["x"], table(tmp_path / "s")["kind"]))
    assert points == [(-1, "a"), (-1, "b"), (0.5, "a"), (0.5, "b")]


def test_several_slots_on_the_basic_launcher_warn_that_the_runs_go_one_after_another(tmp_path):
    result = sweep(tmp_path, "hydra.sweeper.n_jobs=2", "hydra.sweeper.n_trials=2", f"hydra.sweep.dir={tmp_path / 's'}")
    assert result.returncode == 0, result.stderr
    assert ("hydra.sweeper.n_jobs=2 with Hydra's basic launcher runs one run at a time, in this process; "
            "for trials at once use hydra/launcher=joblib hydra.launcher.n_jobs=2") in result.stdout + result.stderr
    joblib = sweep(tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=2",
                   "hydra.sweeper.n_trials=4", f"hydra.sweep.dir={tmp_path / 's'}")
    assert joblib.returncode == 0 and "basic launcher" not in joblib.stdout + joblib.stderr


def test_resuming_a_study_with_other_fixed_settings_warns_and_names_them(tmp_path):
    assert sweep(tmp_path, "epochs=2", "hydra.sweeper.n_trials=1").returncode == 0
    same = sweep(tmp_path, "epochs=2", "hydra.sweeper.n_trials=2")
    other = sweep(tmp_path, "epochs=3", "hydra.sweeper.n_trials=3")
    assert same.returncode == 0 and "other fixed settings" not in same.stdout + same.stderr
    assert other.returncode == 0
    assert ("study 'smoke' continues with other fixed settings than its earlier trials: now epochs=3; before epochs=2"
            in other.stdout + other.stderr)


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_a_seeded_scrambled_qmc_search_proposes_the_points_of_optunas_own_qmc_sampler(tmp_path):
    # one sequence for the whole study: a sampler seeded anew for each trial would draw from a new one each time
    result = sweep(tmp_path, "hydra/sweeper/sampler=qmc", "hydra.sweeper.sampler.scramble=true",
                   "hydra.sweeper.sampler.seed=0", f"hydra.sweep.dir={tmp_path / 's'}")
    assert result.returncode == 0, result.stderr

    def objective(trial):
        trial.suggest_float("x", -1, 1), trial.suggest_categorical("kind", ["a", "b"])
        trial.suggest_int("width", 4, 32, step=4)
        return 0.0

    reference = optuna.create_study(sampler=optuna.samplers.QMCSampler(seed=0, scramble=True))
    reference.optimize(objective, n_trials=4)
    assert [t.params for t in sorted(load(tmp_path).trials, key=lambda t: t.number)] == [
        t.params for t in reference.trials]


def test_enqueued_trials_run_first_and_those_past_n_trials_wait_without_holding_the_sweep(tmp_path):
    assert sweep(tmp_path, "hydra.sweeper.n_trials=1").returncode == 0
    for x in (0.1, 0.2, 0.25):
        load(tmp_path).enqueue_trial({"x": x, "kind": "a", "width": 8})

    # the study holds its n_trials with a trial still WAITING: the sweep ends all the same
    second = subprocess.run(command("hydra.sweeper.n_trials=3", "hydra.sweeper.confirm.seeds=[7]",
                                    f"hydra.sweep.dir={tmp_path / 's'}"),
                            cwd=tmp_path, env=environment(), capture_output=True, text=True, timeout=60)

    assert second.returncode == 0, second.stderr
    assert "study 'smoke' in" in second.stdout and "1 of 3 trials exist, 3 more enqueued (WAITING)" in second.stdout
    trials = sorted(load(tmp_path).trials, key=lambda t: t.number)
    assert states(load(tmp_path)) == ["COMPLETE", "COMPLETE", "COMPLETE", "WAITING"]
    assert [t.params["x"] for t in trials[1:3]] == [0.1, 0.2]  # in the order they were enqueued
    confirmed = pd.read_csv(tmp_path / "s" / "confirm.csv")
    assert list(confirmed["seed"]) == [7]  # a trial left WAITING past n_trials does not hold the confirmation back
