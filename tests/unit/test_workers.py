"""Stale-trial detection: which RUNNING trials were abandoned by a dead sweep process."""

import datetime
import subprocess
import time

from optuna.trial import FrozenTrial, TrialState

from hydra_plugins.aesweep_optuna._workers import (
    HEARTBEAT_ATTR,
    WORKER_ATTR,
    Worker,
    stale_reason,
)

ME = Worker.this_process()


def running(owner, heartbeat=None, started_ago=0.0):
    system_attrs = {} if owner is None else {WORKER_ATTR: owner.as_attr()}
    if heartbeat is not None:
        system_attrs[HEARTBEAT_ATTR] = heartbeat
    return FrozenTrial(
        number=0,
        state=TrialState.RUNNING,
        value=None,
        values=None,
        datetime_start=datetime.datetime.now() - datetime.timedelta(seconds=started_ago),
        datetime_complete=None,
        params={},
        distributions={},
        user_attrs={},
        system_attrs=system_attrs,
        intermediate_values={},
        trial_id=0,
    )


def dead_worker_here():
    child = subprocess.Popen(["true"])
    child.wait()
    return Worker(ME.host, child.pid, ME.pid_space, "")


def test_a_trial_whose_sweep_process_died_on_this_machine_is_stale_at_once():
    assert "ended while the trial ran" in stale_reason(running(dead_worker_here()), ME, time.time(), stale_after=600)


def test_this_processs_own_trial_is_not_stale():
    assert stale_reason(running(ME), ME, time.time(), stale_after=600) is None


def test_a_live_process_whose_pid_was_reused_counts_as_dead():
    reused = Worker(ME.host, ME.pid, ME.pid_space, started="1")  # same pid, another start time
    assert stale_reason(running(reused), Worker(ME.host, 1, ME.pid_space, ""), time.time(), 600) is not None


def test_a_remote_trial_is_stale_only_after_its_heartbeat_goes_quiet():
    remote = Worker("elsewhere", 4242, "elsewhere/boot/pid:[1]", "99")
    now = time.time()
    assert stale_reason(running(remote, heartbeat=now - 30), ME, now, stale_after=600) is None
    assert "no heartbeat" in stale_reason(running(remote, heartbeat=now - 900), ME, now, stale_after=600)
    assert "no heartbeat" in stale_reason(running(remote, started_ago=900), ME, now, stale_after=600)


def test_trials_not_claimed_by_the_sweeper_are_never_touched():
    assert stale_reason(running(None, started_ago=10**6), ME, time.time(), stale_after=1) is None


def test_trial_seeds_keep_seed_0s_sequence_and_give_each_sweep_seed_its_own_block():
    from hydra_plugins.aesweep_optuna._settings import trial_seed

    assert [trial_seed(0, k) for k in range(4)] == [0, 1, 2, 3]  # what the reference sweeps were measured with
    assert not {trial_seed(1, k) for k in range(1000)} & {trial_seed(0, k) for k in range(1000)}
    assert 0 <= trial_seed(10**9, 5) < 2**32  # numpy's seed range
