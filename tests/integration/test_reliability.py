"""Reliability: mistakes refused before anything is written, faults recorded, sweeps reproducible.

Adds to tests/integration/test_train_refusals.py (config values, MNIST files, model=nope),
tests/unit/test_config.py and tests/integration/test_sweeper*.py (grammar on the command line, kill -9 and
resume, two workers):
- an unknown option in every other config group, in single runs and sweeps;
- malformed sweep grammar written in a sweep *file*, an uncreatable output folder and a storage
  that cannot be opened: one ``error:`` line, exit status 2, and an existing sweep (its study,
  trials.csv and folder) left exactly as it was;
- a trial whose process dies (SIGKILL, as the OOM killer sends) under the joblib launcher ends
  FAIL while the sweep goes on;
- the same sweep with the same sampler seed, run twice on CPU, proposes the same parameters and
  gets the same metrics.
Sweeps run the torch-free quadratic app (tests/apps/quadratic) except where train.py itself is the
point; those train.py runs stop before any data loads, except the marked integration test.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import optuna
import pandas as pd
import pytest
from helpers import (
    QUADRATIC_APP,
    REPO,
    SRC,
    SUBPROCESS_ENV,
    assert_one_error_line,
    train_py,
)

from aesweep.storage import open_storage

APP = QUADRATIC_APP

pytestmark = pytest.mark.timeout(300)


def quadratic(cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python app.py <args>`` in ``cwd``: the quadratic stand-in for train.py."""
    env = {**SUBPROCESS_ENV, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, str(APP), *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with its content's hash: equal snapshots mean nothing was touched."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def sweep_file(folder: Path, name: str, params: dict[str, str]) -> None:
    """A sweep file ``sweep/<name>.yaml`` in a config folder added with hydra.searchpath."""
    lines = [
        "# @package _global_",
        "defaults:",
        "  - override /hydra/sweeper: aesweep_optuna",
        "hydra:",
        "  sweeper:",
        "    n_trials: 2",
        "    params:",
        *(f"      {key}: {value}" for key, value in params.items()),
    ]
    (folder / "sweep").mkdir(parents=True, exist_ok=True)
    (folder / "sweep" / f"{name}.yaml").write_text("\n".join(lines) + "\n")


# ---------------------------------------------------------------------- an unknown group option

# model=nope is in tests/integration/test_train_refusals.py
GROUPS = ["data", "optimizer", "scheduler", "loss", "augment", "trainer", "eval", "device", "sweep"]


@pytest.fixture(scope="module")
def unknown_options(tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    """`python train.py <group>=xyzzy` for every group, plus one sweep; two at a time (~4 s of imports each)."""
    tmp = tmp_path_factory.mktemp("unknown")
    cases = {group: [f"{group}=xyzzy", f"hydra.run.dir={tmp / group}"] for group in GROUPS}
    cases["-m sweep=smoke optimizer=xyzzy"] = [
        "-m", "sweep=smoke", "optimizer=xyzzy", f"hydra.sweep.dir={tmp / 'sweep'}",
        f"hydra.sweeper.storage={tmp / 'journal.log'}",
    ]
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(train_py, *args) for name, args in cases.items()}
    return {name: (future.result(), tmp) for name, future in futures.items()}


@pytest.mark.parametrize("group", GROUPS)
def test_an_unknown_option_of_a_config_group_is_refused_without_traceback_or_run_dir(unknown_options, group):
    result, tmp = unknown_options[group]
    options = ", ".join(sorted(p.stem for p in (REPO / "conf" / group).glob("*.yaml")))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {group}='xyzzy' is not allowed: one of: {options}"]
    assert not (tmp / group).exists()


def test_an_unknown_group_option_stops_a_sweep_before_its_study_or_folder_exist(unknown_options):
    result, tmp = unknown_options["-m sweep=smoke optimizer=xyzzy"]
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[0].startswith("error: optimizer='xyzzy' is not allowed: one of: adam,")
    assert not (tmp / "sweep").exists() and not (tmp / "journal.log").exists()


# ---------------------------------------------------------------------- mistakes next to an existing sweep

BAD_SWEEP_FILES = {
    # sweep file name: (its params, texts the error line must hold)
    "reversed_interval": ({"x": "interval(5, 1)"}, ["hydra.sweeper.params.x='interval(5, 1)'", "lo < hi"]),
    "empty_choice": ({"kind": "choice()"}, ["hydra.sweeper.params.kind='choice()'", "empty choice"]),
    "log_from_zero": ({"x": "tag(log, interval(0, 1))"}, ["x='tag(log, interval(0, 1))'", "lo > 0"]),
    "log_negative": ({"x": "tag(log, interval(-1, 1))"}, ["x='tag(log, interval(-1, 1))'", "lo > 0"]),
    "misspelt_key": ({"widht": "range(4, 33, 4)"}, ["widht", "did you mean width?"]),
    "unknown_option": ({"optimizer": "choice(sgd, lion)"}, ["lion", "adam, sgd"]),
}
BAD_COMMAND_LINES = {
    # case: (overrides, texts the error line must hold)
    "sweep dir under a file": (
        ["hydra.sweep.dir={file}/sweep"],
        ["hydra.sweep.dir='{file}/sweep'", "{file} is a file"],
    ),
    "journal under a file": (
        ["hydra.sweeper.storage={file}/journal.log"],
        ["hydra.sweeper.storage='{file}/journal.log'", "cannot open it"],
    ),
    "sqlite in a missing folder": (
        ["hydra.sweeper.storage=sqlite:////nonexistent/dir/x.db"],
        ["hydra.sweeper.storage='sqlite:////nonexistent/dir/x.db'", "cannot open it", "unable to open database"],
    ),
    "postgresql nobody listens on": (
        ["hydra.sweeper.storage=postgresql://nobody@127.0.0.1:1/x"],
        ["hydra.sweeper.storage='postgresql://nobody@127.0.0.1:1/x' is not allowed: "],
    ),
}


@pytest.fixture(scope="module")
def beside_a_finished_sweep(tmp_path_factory):
    """A finished 2-trial sweep, then every mistake of this section aimed at its study and folder.

    Returns (results by case name, the sweep's files before, after, the launch folder, the file that
    stands where a folder should be).
    """
    cwd = tmp_path_factory.mktemp("existing")
    configs = cwd / "extra_conf"
    for name, (params, _) in BAD_SWEEP_FILES.items():
        sweep_file(configs, name, params)
    blocker = cwd / "a_file"
    blocker.write_text("not a folder\n")
    target = ["hydra.sweeper.study_name=kept", f"hydra.sweep.dir={cwd / 'kept'}"]
    good = quadratic(cwd, "-m", "sweep=smoke", "hydra.sweeper.n_trials=2", *target)
    assert good.returncode == 0, good.stderr
    before = snapshot(cwd / "kept") | {f"outputs/{k}": v for k, v in snapshot(cwd / "outputs").items()}

    cases = {name: ["-m", f"sweep={name}", f"hydra.searchpath=[file://{configs}]", *target] for name in BAD_SWEEP_FILES}
    for name, (overrides, _) in BAD_COMMAND_LINES.items():
        cases[name] = ["-m", "sweep=smoke", *target, *(o.format(file=blocker) for o in overrides)]
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {name: pool.submit(quadratic, cwd, *args) for name, args in cases.items()}
    results = {name: future.result() for name, future in futures.items()}
    after = snapshot(cwd / "kept") | {f"outputs/{k}": v for k, v in snapshot(cwd / "outputs").items()}
    return results, before, after, cwd, blocker


@pytest.mark.parametrize("name", BAD_SWEEP_FILES)
def test_malformed_grammar_in_a_sweep_file_is_one_error_line_with_exit_2(beside_a_finished_sweep, name):
    results = beside_a_finished_sweep[0]
    assert_one_error_line(results[name], *BAD_SWEEP_FILES[name][1])


@pytest.mark.parametrize("name", BAD_COMMAND_LINES)
def test_an_unusable_output_folder_or_storage_is_one_error_line_with_exit_2(beside_a_finished_sweep, name):
    results, _, _, _, blocker = beside_a_finished_sweep
    assert_one_error_line(results[name], *(text.format(file=blocker) for text in BAD_COMMAND_LINES[name][1]))


def test_refused_sweeps_leave_the_existing_study_and_its_tables_untouched(beside_a_finished_sweep):
    _, before, after, cwd, blocker = beside_a_finished_sweep
    assert "trials.csv" in before and "best.yaml" in before
    # same files, same bytes: trials.csv, best.yaml, study.yaml, trial folders, the journal, the trials' artifacts
    assert after == before
    assert sorted(p.name for p in cwd.iterdir()) == ["a_file", "extra_conf", "kept", "outputs"]
    assert sorted(p.name for p in (cwd / "outputs" / "optuna").iterdir()) == [
        "artifacts", "journal.log", "journal.log.claim-lock"
    ]
    assert blocker.read_text() == "not a folder\n"


# ---------------------------------------------------------------------- train.py: the same mistakes

@pytest.fixture(scope="module")
def train_py_refusals(tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    tmp = tmp_path_factory.mktemp("train_py")
    (tmp / "a_file").write_text("not a folder\n")
    configs = tmp / "extra_conf"
    sweep_file(configs, "bad_lr", {"optimizer.lr": "tag(log, interval(0, 0.1))"})
    storage = f"hydra.sweeper.storage={tmp / 'journal.log'}"
    cases = {
        "run dir under a file": [f"hydra.run.dir={tmp / 'a_file' / 'run'}"],
        "sweep dir under a file": ["-m", "sweep=smoke", storage, f"hydra.sweep.dir={tmp / 'a_file' / 'sweep'}"],
        "log interval from 0": [
            "-m", "sweep=bad_lr", f"hydra.searchpath=[file://{configs}]", storage, f"hydra.sweep.dir={tmp / 's'}"
        ],
    }
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(train_py, *args) for name, args in cases.items()}
    return {name: (future.result(), tmp) for name, future in futures.items()}


def test_train_py_sweep_with_a_malformed_sweep_file_writes_nothing(train_py_refusals):
    result, tmp = train_py_refusals["log interval from 0"]
    assert_one_error_line(result, "hydra.sweeper.params.optimizer.lr='tag(log, interval(0, 0.1))'", "lo > 0")
    assert not (tmp / "s").exists() and not (tmp / "journal.log").exists()


def test_train_py_sweep_into_an_uncreatable_folder_is_refused_before_its_study(train_py_refusals):
    result, tmp = train_py_refusals["sweep dir under a file"]
    assert_one_error_line(result, f"hydra.sweep.dir='{tmp / 'a_file' / 'sweep'}'", f"{tmp / 'a_file'} is a file")
    assert not (tmp / "journal.log").exists()


def test_train_py_run_into_an_uncreatable_folder_is_one_error_line(train_py_refusals):
    result, tmp = train_py_refusals["run dir under a file"]
    assert_one_error_line(result, "hydra.run.dir=", f"{tmp / 'a_file'} is a file")


# ---------------------------------------------------------------------- a trial's process dies

@pytest.mark.parametrize("slots", [1, 2])
def test_a_trial_whose_process_is_killed_ends_fail_while_the_sweep_goes_on(tmp_path, slots):
    # joblib with n_jobs >= 2 runs each trial in a worker process (with 1 it runs them in the sweep's
    # own process, where a SIGKILL ends the sweep: the kill -9 and resume case of test_sweeper.py).
    # With two slots the killed worker takes its neighbour's run down too (joblib's pool breaks): that
    # run is run again, alone, and completes; the slot is refilled and the study ends with its 4 trials.
    result = quadratic(
        tmp_path,
        "-m",
        "sweep=smoke",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        f"hydra.sweeper.n_jobs={slots}",
        "sleep=0.5",
        "hydra.sweeper.sampler._target_=optuna.samplers.BruteForceSampler",
        "mode=choice(sigkill, ok)",
        "x=choice(0.3, 0.5)",
        "kind=a",
        "width=8",
        "hydra.sweeper.n_trials=4",
        f"hydra.sweep.dir={tmp_path / 's'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = pd.read_csv(tmp_path / "s" / "trials.csv")
    assert list(rows["number"]) == [0, 1, 2, 3]
    killed, survived = rows[rows["mode"] == "sigkill"], rows[rows["mode"] == "ok"]
    assert list(killed["state"]) == ["FAIL", "FAIL"] and list(survived["state"]) == ["COMPLETE", "COMPLETE"]
    assert killed["reason"].str.contains("SIGKILL").all(), list(killed["reason"])
    assert not any((Path(d) / "metrics.json").exists() for d in killed["run_dir"])
    assert min(killed["number"]) < max(survived["number"])  # a trial ran (and completed) after a kill


BATCH_OF_TWO = ("hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=2",
                "hydra.sweeper.dispatch=batch", "hydra.sweeper.n_trials=2", "sleep=0.5", "mode_trial=0")


def test_in_a_batch_the_run_a_killed_worker_took_down_is_run_again_alone_and_completes(tmp_path):
    result = quadratic(tmp_path, "-m", "sweep=smoke", *BATCH_OF_TWO, "mode=sigkill",
                       f"hydra.sweep.dir={tmp_path / 's'}")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = pd.read_csv(tmp_path / "s" / "trials.csv")
    assert list(rows["state"]) == ["FAIL", "COMPLETE"]  # trial 1 is not failed for trial 0's kill
    assert "SIGKILL" in rows["reason"][0]
    assert "trial 1: the launcher's worker pool broke under its run (its run); running it again, alone" in result.stdout


def test_in_a_batch_a_trial_over_max_failure_rate_stops_the_sweep_once_the_batch_is_told(tmp_path):
    result = quadratic(tmp_path, "-m", "sweep=smoke", *BATCH_OF_TWO, "mode=raise", "hydra.sweeper.max_failure_rate=0",
                       f"hydra.sweep.dir={tmp_path / 's'}")
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith(
        "error: 1 of 2 trials failed, more than hydra.sweeper.max_failure_rate=0 allows")
    rows = pd.read_csv(tmp_path / "s" / "trials.csv")
    assert list(rows["state"]) == ["FAIL", "COMPLETE"]  # trial 1 completed in the batch: told as it ended
    record = json.loads((Path(rows["run_dir"][1]) / "metrics.json").read_text())
    assert rows["value"][1] == pytest.approx(record["val"]["mapped_acc"])


# ---------------------------------------------------------------------- determinism

def study_record(storage: str, study_name: str) -> list[tuple]:
    """(number, state, params, value, every val.* metric) per trial, in trial order."""
    study = optuna.load_study(study_name=study_name, storage=open_storage(storage))
    return [
        (
            t.number,
            t.state.name,
            t.params,
            t.value,
            {k: v for k, v in sorted(t.user_attrs.items()) if k.startswith("val.")},
        )
        for t in sorted(study.trials, key=lambda t: t.number)
    ]


def test_the_same_seeded_sweep_twice_proposes_the_same_params_and_gets_the_same_values(tmp_path):
    # 2 random start-up trials, then TPE's model: both parts of the sampler must replay.
    settings = ["-m", "sweep=smoke", "hydra.sweeper.n_trials=6", "+hydra.sweeper.sampler.n_startup_trials=2"]
    records = []
    for run, seed in (("a", 0), ("b", 0), ("other_seed", 1)):
        result = quadratic(tmp_path, *settings, f"hydra.sweeper.sampler.seed={seed}",
                           f"hydra.sweeper.storage={tmp_path / run / 'journal.log'}",
                           f"hydra.sweep.dir={tmp_path / run / 's'}")
        assert result.returncode == 0, result.stderr
        records.append(study_record(str(tmp_path / run / "journal.log"), "smoke"))
    first, second, other = records
    assert len(first) == 6 and all(state == "COMPLETE" for _, state, *_ in first)
    assert second == first
    # another seed draws another sequence, not the same one shifted: no trial repeats one of seed 0's
    assert not [params for _, _, params, *_ in other if params in [p for _, _, p, *_ in first]]


def test_the_same_seeded_train_py_sweep_twice_gets_identical_params_and_metrics(tmp_path, mnist_root):
    def sweep(run: str) -> subprocess.CompletedProcess:
        return train_py("-m", "sweep=smoke", f"data.root={mnist_root}", "data.subset=256", "trainer.epochs=1",
                        "device=cpu", "hydra.sweeper.n_trials=2",
                        f"hydra.sweeper.storage={tmp_path / run / 'journal.log'}",
                        f"hydra.sweep.dir={tmp_path / run / 's'}", timeout=240)

    with ThreadPoolExecutor(2) as pool:  # both at once: same results, whatever else runs beside them
        results = list(pool.map(sweep, ("a", "b")))
    for result in results:
        assert result.returncode == 0, result.stderr[-3000:]
    first, second = (study_record(str(tmp_path / run / "journal.log"), "smoke") for run in ("a", "b"))
    assert [state for _, state, *_ in first] == ["COMPLETE", "COMPLETE"]
    assert first[0][2] != first[1][2]  # two different proposals...
    assert second == first  # ...replayed exactly, with bit-identical metrics
    assert first[0][4]["val.mapped_acc"] == first[0][3]


# ---------------------------------------------------------------------- files cut short, disks full, readers

def test_a_journal_whose_last_record_was_cut_short_is_repaired_in_one_line_and_the_sweep_goes_on(tmp_path):
    assert quadratic(tmp_path, "-m", "sweep=smoke", "hydra.sweeper.n_trials=2").returncode == 0
    journal = tmp_path / "outputs" / "optuna" / "journal.log"
    whole = journal.read_bytes()
    torn = b'{"op_code":5,"worker_id":"w","trial_id":1,"param_na'  # a crash in the middle of an append
    journal.write_bytes(whole + torn)

    result = quadratic(tmp_path, "-m", "sweep=smoke", "hydra.sweeper.n_trials=3")
    assert result.returncode == 0, result.stderr[-2000:]
    (repaired,) = [line for line in (result.stdout + result.stderr).splitlines() if "cut short" in line]
    assert f"dropped {len(torn)} bytes" in repaired
    assert journal.read_bytes().startswith(whole) and journal.read_bytes().endswith(b"\n")
    study = optuna.load_study(study_name="smoke", storage=open_storage(str(journal)))
    assert [t.state.name for t in sorted(study.trials, key=lambda t: t.number)] == ["COMPLETE"] * 3


def test_a_disk_that_fills_while_the_record_is_written_fails_the_trial_and_leaves_no_half_file(tmp_path):
    result = quadratic(tmp_path, "-m", "sweep=smoke", "hydra.sweeper.n_trials=2", "mode=choice(diskfull, ok)",
                       "hydra.sweeper.sampler._target_=optuna.samplers.BruteForceSampler", "x=0.3", "kind=a",
                       "width=8", f"hydra.sweep.dir={tmp_path / 's'}")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = pd.read_csv(tmp_path / "s" / "trials.csv").set_index("mode")
    assert rows.loc["diskfull", "state"] == "FAIL"
    assert rows.loc["diskfull", "reason"] == "OSError: [Errno 28] No space left on device"
    folder = Path(rows.loc["diskfull", "run_dir"])
    assert not (folder / "metrics.json").exists() and not list(folder.glob(".metrics.json.*"))  # nothing half-written
    assert rows.loc["ok", "state"] == "COMPLETE"


def test_collect_run_while_a_sweep_writes_never_reads_a_half_written_file(tmp_path):
    env = {**SUBPROCESS_ENV, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    sweep = subprocess.Popen([sys.executable, str(APP), "-m", "sweep=smoke", "hydra.sweeper.n_trials=6", "sleep=0.2",
                              f"hydra.sweep.dir={tmp_path / 's'}"], cwd=tmp_path, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    collected = 0
    while sweep.poll() is None:
        if not (tmp_path / "s").is_dir():
            time.sleep(0.05)
            continue
        done = subprocess.run([sys.executable, "-m", "aesweep", "collect", str(tmp_path / "s"), "--out",
                               str(tmp_path / "runs.csv")], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert "half-written" not in done.stderr and "not valid JSON" not in done.stderr, done.stderr
        if done.returncode == 0:
            collected += 1
            assert pd.read_csv(tmp_path / "runs.csv")["state"].isin(["COMPLETE", "PRUNED", "FAIL"]).all()
    assert sweep.returncode == 0, sweep.stderr.read()[-2000:]
    assert collected >= 2  # it really read the sweep while it ran
