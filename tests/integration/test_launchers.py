"""Cluster launchers: the same sweeps through hydra-submitit-launcher (SLURM) and hydra-ray-launcher (Ray).

The project ships presets in conf/hydra/launcher/ (``hydra/launcher=slurm``, ``hydra/launcher=ray_cluster``)
that extend the plugins' own configs (``submitit_slurm``, ``ray``). Each test needs its plugin and is
skipped where it is not installed (``pip install -e '.[cluster]'`` installs submitit's; Ray is left
to the user, it is large). Composition runs ``python train.py ... --cfg hydra`` (Hydra refuses
``-m`` together with ``--cfg``, so the sweep is selected without it); a real sweep runs through
``submitit_local``, the same launcher code as SLURM with local processes instead of sbatch.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from helpers import QUADRATIC_APP, REPO, SUBPROCESS_ENV, train_py

from aesweep.storage import open_storage

APP = QUADRATIC_APP

pytestmark = pytest.mark.timeout(180)


def composed_hydra(*overrides: str) -> dict:
    """The `hydra` node `python train.py <overrides> --cfg hydra` prints."""
    result = train_py(*overrides, "--cfg", "hydra", timeout=120)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)["hydra"]


@pytest.fixture(scope="module")
def submitit():
    return pytest.importorskip(
        "hydra_plugins.hydra_submitit_launcher", reason="hydra-submitit-launcher is not installed"
    )


@pytest.fixture(scope="module")
def ray_launcher():
    return pytest.importorskip("hydra_plugins.hydra_ray_launcher", reason="hydra-ray-launcher is not installed")


def test_the_slurm_preset_composes_with_a_sweep_and_sets_one_gpu_per_trial(submitit):
    hydra_cfg = composed_hydra("sweep=smoke", "hydra/launcher=slurm", "hydra.launcher.partition=gpu")
    launcher = hydra_cfg["launcher"]
    assert launcher["_target_"] == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher["gpus_per_node"], launcher["cpus_per_task"], launcher["partition"]) == (1, 4, "gpu")
    assert launcher["submitit_folder"] == "${hydra.sweep.dir}/.submitit/%j"
    assert hydra_cfg["sweeper"]["_target_"].endswith("AesweepOptunaSweeper")
    assert hydra_cfg["sweeper"]["n_trials"] == 4  # the sweep file still applies


def test_the_plugins_own_submitit_slurm_config_composes_too(submitit):
    launcher = composed_hydra("sweep=smoke", "hydra/launcher=submitit_slurm")["launcher"]
    assert launcher["_target_"].endswith("SlurmLauncher") and launcher["gpus_per_node"] is None


def test_the_ray_cluster_preset_composes_with_a_sweep(ray_launcher):
    hydra_cfg = composed_hydra("sweep=smoke", "hydra/launcher=ray_cluster")
    launcher = hydra_cfg["launcher"]
    assert launcher["_target_"] == "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher"
    assert launcher["ray"]["init"]["address"] == "auto"
    assert launcher["ray"]["remote"] == {"num_cpus": 4, "num_gpus": 1, "max_calls": 1}
    assert hydra_cfg["sweeper"]["_target_"].endswith("AesweepOptunaSweeper")


def test_the_plugins_own_ray_config_composes_too(ray_launcher):
    launcher = composed_hydra("sweep=smoke", "hydra/launcher=ray")["launcher"]
    assert launcher["_target_"].endswith("RayLauncher") and launcher["ray"]["init"]["address"] is None


def test_a_sweep_runs_its_trials_as_submitit_jobs(submitit, tmp_path):
    pythonpath = os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))
    command = [
        sys.executable, str(APP), "-m", "sweep=smoke", "hydra/launcher=submitit_local", "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.n_trials=3", f"hydra.sweep.dir={tmp_path / 's'}",
    ]
    result = subprocess.run(
        command, cwd=tmp_path, env={**SUBPROCESS_ENV, "PYTHONPATH": pythonpath}, capture_output=True, text=True,
        timeout=150,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    study = optuna.load_study(study_name="smoke", storage=open_storage(str(tmp_path / "outputs/optuna/journal.log")))
    trials = sorted(study.trials, key=lambda t: t.number)
    assert [(t.number, t.state.name) for t in trials] == [(0, "COMPLETE"), (1, "COMPLETE"), (2, "COMPLETE")]
    assert all(list(t.intermediate_values) == [1, 2, 3] for t in trials)  # each job reported to its trial
    assert [Path(t.user_attrs["run_dir"]) for t in trials] == [tmp_path / "s" / str(n) for n in range(3)]
    assert (tmp_path / "s" / ".submitit").is_dir()  # the jobs went through submitit
