"""Many workers, one study, on a real PostgreSQL server: the documented multi-machine path.

A session fixture starts Debian's PostgreSQL: initdb into a temporary folder, a free port on
127.0.0.1, the unix socket in that folder, stopped (and the folder removed) at the end, even when a
test fails. The tests are skipped only where no ``initdb`` is installed; ``.ci/run`` installs the
``postgresql`` package, so CI runs them. Each test gets a fresh database, so workers also race to
create Optuna's tables, as they do on a new server. The sweeps run the torch-free quadratic app.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna
import pandas as pd
import pytest
from helpers import QUADRATIC_APP, SRC

from aesweep.storage import RDB_OUTAGE_S, open_storage

APP = QUADRATIC_APP
ADMIN = "aesweep"  # the cluster's superuser (initdb -U); trust authentication on 127.0.0.1 only

pytestmark = pytest.mark.timeout(240)


def postgres_bin_dir() -> Path | None:
    """The newest installed PostgreSQL's bin folder (Debian: /usr/lib/postgresql/<major>/bin)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).resolve().parent if on_path else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Server:
    bin_dir: Path
    port: int
    run_as: dict  # subprocess user/group for the server's own commands ({} when not root)
    folder: Path

    def client(self, program: str, *args: str) -> subprocess.CompletedProcess:
        command = [str(self.bin_dir / program), "-h", "127.0.0.1", "-p", str(self.port), "-U", ADMIN, *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)

    def url(self, database: str) -> str:
        return f"postgresql://{ADMIN}@127.0.0.1:{self.port}/{database}"

    def restart(self) -> None:
        """Stop the server (every connection dropped at once) and start it again, as an upgrade or a crash would."""
        env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        command = [str(self.bin_dir / "pg_ctl"), "restart", "-w", "-m", "fast", "-t", "60", "-D",
                   str(self.folder / "data"), "-l", str(self.folder / "server.log"), "-o",
                   f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, **self.run_as)
        assert done.returncode == 0, done.stderr


def server_user() -> dict:
    """initdb and postgres refuse to run as root: run them as the package's `postgres` user (or nobody)."""
    if os.geteuid() != 0:
        return {}
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    pytest.fail("running as root, and neither a `postgres` nor a `nobody` user exists to run PostgreSQL as")


@pytest.fixture(scope="session")
def postgres() -> Iterator[Server]:
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (no initdb); .ci/run installs Debian's postgresql package")
    run_as = server_user()
    folder = Path(tempfile.mkdtemp(prefix="aesweep-pg-"))  # not under pytest's root-only tmp folders
    if run_as:
        os.chown(folder, run_as["user"], run_as["group"])
    data, log = folder / "data", folder / "server.log"
    server = Server(bin_dir, free_port(), run_as, folder)
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}

    def as_server(*command: str) -> subprocess.CompletedProcess:
        return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, **run_as)

    started = False
    try:
        initdb = as_server(
            str(bin_dir / "initdb"), "-D", str(data), "-U", ADMIN, "--auth=trust", "-E", "UTF8", "--no-sync"
        )
        assert initdb.returncode == 0, f"initdb failed: {initdb.stderr}"
        options = f"-p {server.port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        start = as_server(str(bin_dir / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(data), "-l", str(log),
                          "-o", options)
        started = start.returncode == 0
        assert started, f"pg_ctl start failed: {start.stderr}\n{log.read_text() if log.exists() else ''}"
        yield server
    finally:
        if started:
            as_server(str(bin_dir / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(data))
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def storage_url(postgres: Server, request) -> str:
    """A fresh database for one test, as a postgresql:// storage URL."""
    database = "t_" + request.node.name.lower().replace("[", "_").replace("]", "")[:50]
    postgres.client("createdb", database)
    return postgres.url(database)


def environment() -> dict:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])),
        "HYDRA_FULL_ERROR": "1",  # a failure in CI shows its whole traceback
    }


def start_sweep(cwd: Path, *overrides: str) -> subprocess.Popen:
    command = [sys.executable, str(APP), "-m", "sweep=smoke", *overrides]
    return subprocess.Popen(
        command, cwd=cwd, env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def finish(worker: subprocess.Popen, timeout: float = 200) -> None:
    _, stderr = worker.communicate(timeout=timeout)
    assert worker.returncode == 0, stderr[-3000:]


def load(storage_url: str, study_name: str) -> optuna.Study:
    return optuna.load_study(study_name=study_name, storage=open_storage(storage_url))


def expected_value(params: dict, epochs: int) -> float:
    """The quadratic app's final score for these parameters (its optimizer is sgd, momentum 0.5)."""
    return 1.0 - (params["x"] - 0.3) ** 2 - (0.1 if params["kind"] == "b" else 0.0) - 0.05 * 0.5 - 0.2 / epochs


def test_three_workers_on_one_postgresql_study_run_exactly_n_trials_together(tmp_path, storage_url):
    n_trials, epochs = 9, 3
    overrides = [
        f"hydra.sweeper.storage={storage_url}",
        "hydra.sweeper.study_name=shared",
        f"hydra.sweeper.n_trials={n_trials}",
        f"epochs={epochs}",
        "sleep=0.3",
    ]
    workers = [start_sweep(tmp_path, *overrides, f"hydra.sweep.dir={tmp_path / f'w{i}'}") for i in range(3)]
    for worker in workers:
        finish(worker)

    study = load(storage_url, "shared")
    trials = sorted(study.trials, key=lambda t: t.number)
    assert [t.number for t in trials] == list(range(n_trials))  # none lost, none duplicated, no extra
    host = socket.gethostname()
    ran_by = Counter(t.user_attrs["worker"] for t in trials)
    assert set(ran_by) == {f"{host}:{w.pid}" for w in workers}  # every worker took part
    assert len({t.user_attrs["run_dir"] for t in trials}) == n_trials
    for trial in trials:  # each result belongs to its own parameters: no cross-talk between workers
        assert trial.state.name == "COMPLETE", (trial.number, trial.user_attrs.get("reason"))
        assert trial.value == pytest.approx(expected_value(trial.params, epochs))
        assert list(trial.intermediate_values) == list(range(1, epochs + 1))  # reported by the job, epoch by epoch
        assert Path(trial.user_attrs["run_dir"]).parent.name in {"w0", "w1", "w2"}

    # Each worker's table lists every trial of the study, its own and the others'; the last one
    # written (after every trial was told) shows them all finished, exactly as Optuna does.
    tables = {i: pd.read_csv(tmp_path / f"w{i}" / "trials.csv") for i in range(3)}
    for table in tables.values():
        assert list(table["number"]) == list(range(n_trials))
    newest = max(range(3), key=lambda i: (tmp_path / f"w{i}" / "trials.csv").stat().st_mtime_ns)
    assert list(tables[newest]["state"]) == ["COMPLETE"] * n_trials
    assert list(tables[newest]["value"]) == pytest.approx([t.value for t in trials])


def test_a_worker_killed_mid_trial_leaves_a_failed_trial_and_the_others_finish_the_study(tmp_path, storage_url):
    overrides = [f"hydra.sweeper.storage={storage_url}", "hydra.sweeper.n_trials=4", "epochs=4", "sleep=0.4"]
    open_storage(storage_url)  # Optuna's tables exist before this test starts polling the study
    doomed = start_sweep(tmp_path, *overrides, f"hydra.sweep.dir={tmp_path / 'doomed'}")
    deadline = time.time() + 90
    while time.time() < deadline:  # mid-trial: its first trial has reported an epoch
        try:
            if any(t.intermediate_values for t in load(storage_url, "smoke").trials):
                break
        except KeyError:  # the study does not exist yet
            pass
        time.sleep(0.2)
    doomed.send_signal(signal.SIGKILL)
    doomed.communicate()
    assert [t.state.name for t in load(storage_url, "smoke").trials] == ["RUNNING"]

    finish(start_sweep(tmp_path, *overrides, f"hydra.sweep.dir={tmp_path / 'survivor'}"))
    study = load(storage_url, "smoke")
    trials = sorted(study.trials, key=lambda t: t.number)
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE", "COMPLETE", "COMPLETE"]
    assert "ended while the trial ran" in trials[0].user_attrs["reason"]
    assert trials[0].user_attrs["worker"].endswith(f":{doomed.pid}")


def test_jobs_report_epochs_and_are_pruned_through_postgresql(tmp_path, storage_url):
    finish(
        start_sweep(
            tmp_path,
            f"hydra.sweeper.storage={storage_url}",
            "hydra.sweeper.sampler._target_=optuna.samplers.BruteForceSampler",
            "x=choice(-1, 0.3)",
            "kind=a",
            "width=8",
            "epochs=4",
            "hydra.sweeper.n_trials=2",
            "hydra.sweeper.pruner={_target_:optuna.pruners.ThresholdPruner,lower:0.5}",
            f"hydra.sweep.dir={tmp_path / 's'}",
        )
    )
    by_x = {t.params["x"]: t for t in load(storage_url, "smoke").trials}
    assert by_x[-1].state.name == "PRUNED" and list(by_x[-1].intermediate_values) == [1]
    assert by_x[0.3].state.name == "COMPLETE" and list(by_x[0.3].intermediate_values) == [1, 2, 3, 4]


def test_two_workers_ride_out_a_restart_of_the_server_without_losing_or_repeating_a_trial(
        tmp_path, storage_url, postgres):
    n_trials, epochs = 8, 3
    overrides = [f"hydra.sweeper.storage={storage_url}", "hydra.sweeper.study_name=restarted",
                 f"hydra.sweeper.n_trials={n_trials}", f"epochs={epochs}", "sleep=0.4"]
    open_storage(storage_url)
    workers = [start_sweep(tmp_path, *overrides, f"hydra.sweep.dir={tmp_path / f'w{i}'}") for i in range(2)]
    deadline = time.time() + 90
    while time.time() < deadline:  # mid-sweep: some trials done, others running
        try:
            if sum(t.state.name == "COMPLETE" for t in load(storage_url, "restarted").trials) >= 2:
                break
        except KeyError:
            pass
        time.sleep(0.2)
    postgres.restart()
    for worker in workers:
        finish(worker)

    trials = sorted(load(storage_url, "restarted").trials, key=lambda t: t.number)
    assert [t.number for t in trials] == list(range(n_trials))  # none lost, none duplicated
    for trial in trials:
        assert trial.state.name == "COMPLETE", (trial.number, trial.user_attrs.get("reason"))
        assert trial.value == pytest.approx(expected_value(trial.params, epochs))
        assert list(trial.intermediate_values) == list(range(1, epochs + 1))


def test_asking_telling_and_reading_trials_ride_out_repeated_restarts_of_the_server(storage_url, postgres):
    """Three threads ask, tell and read the study without pause while the server restarts eight times.

    A restart can land while SQLAlchemy loads a query's related rows; what surfaces then is not the lost
    connection itself but a PendingRollbackError raised in its handling: it is waited out like any outage."""
    optuna.create_study(study_name="restarts", storage=open_storage(storage_url))
    stop, failures, told = threading.Event(), [], Counter()

    def ask_tell_read(name: str) -> None:
        try:  # a thread may open its study while the server restarts, as a job starting then does
            study = optuna.load_study(study_name="restarts", storage=open_storage(storage_url, wait_s=RDB_OUTAGE_S))
        except Exception as error:  # noqa: BLE001 - collected, the test reports them all
            failures.append(f"{name}: opening: {type(error).__name__}: {error}")
            return
        while not stop.is_set():
            try:
                trial = study.ask()
                study.tell(trial, trial.suggest_float("x", 0.0, 1.0))
                told[name] += 1
                assert len(study.get_trials(deepcopy=False)) >= told[name]  # reads every trial and its rows
            except Exception as error:  # noqa: BLE001 - collected, the test reports them all
                failures.append(f"{name}: {type(error).__name__}: {error} <- {error.__cause__ or error.__context__!r}")
                return

    threads = [threading.Thread(target=ask_tell_read, args=(f"t{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    for _ in range(8):
        time.sleep(0.7)
        postgres.restart()
    time.sleep(1.0)
    stop.set()
    for thread in threads:
        thread.join(timeout=150)
    assert failures == []
    assert sorted(told) == ["t0", "t1", "t2"] and min(told.values()) > 0  # every thread asked and told
    trials = load(storage_url, "restarts").trials
    assert [t.number for t in trials] == list(range(sum(told.values())))  # none lost, none duplicated
    assert {t.state.name for t in trials} == {"COMPLETE"}
