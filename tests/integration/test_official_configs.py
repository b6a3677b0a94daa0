"""Sweep configs written for the official hydra-optuna-sweeper and lightning-hydra-template run under
aesweep_optuna with only the `hydra/sweeper` line changed: the documented shapes (single objective, a list of
directions, a custom search space function, Hydra 1.1's search_space), every sampler and pruner option of the
groups, and lightning-hydra-template's hparams_search file on train.py itself.

The official shapes run tests/apps/official/sphere.py, an app that returns its objective(s) and writes no run
record, as the official plugin's examples do; pruners need epoch reports, so they run the quadratic app.
"""

import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
import pytest
from helpers import DATA_ROOT, QUADRATIC_APP, REPO, SRC, SUBPROCESS_ENV, assert_one_error_line, train_py

from aesweep.storage import open_storage

SPHERE = REPO / "tests" / "apps" / "official" / "sphere.py"
LHT_SHAPE = REPO / "tests" / "apps" / "official" / "lightning"  # holds sweep/lht_shape.yaml
# Each option builds and samples in tests/unit/test_presets.py; these run whole sweeps with a few of them.
SAMPLERS = ["random", "grid", "cmaes"]
PRUNERS = ["median", "successive_halving"]

pytestmark = pytest.mark.timeout(240)


def app(script: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**SUBPROCESS_ENV, "PYTHONPATH": str(SRC)}
    return subprocess.run([sys.executable, str(script), "-m", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=200)


def study(cwd: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(str(cwd / "outputs" / "optuna" / "journal.log")))


def test_the_documented_single_objective_shape_minimises_what_the_app_returns(tmp_path):
    done = app(SPHERE, tmp_path, "hydra.sweeper.n_trials=5")
    assert done.returncode == 0, done.stderr[-2000:]
    trials = study(tmp_path, "sphere").trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 5
    for trial in trials:  # the returned x^2 + y^2 (+ the config's z^2) is the value, minimised
        assert trial.value == pytest.approx(trial.params["x"] ** 2 + trial.params["y"] ** 2 + 1)
        assert trial.params["x"] in [-5.5 + 0.5 * i for i in range(22)] and trial.params["y"] in (-5, 0, 5)
    assert study(tmp_path, "sphere").direction == optuna.study.StudyDirection.MINIMIZE


def test_a_list_of_directions_takes_the_apps_returned_values_with_the_chosen_sampler(tmp_path):
    done = app(SPHERE, tmp_path, "--config-name", "multi_objective", "hydra.sweeper.n_trials=4")
    assert done.returncode == 0, done.stderr[-2000:]
    found = study(tmp_path, "multi-objective")
    assert isinstance(found.sampler, optuna.samplers.NSGAIISampler) or len(found.trials) == 4
    for trial in found.trials:
        x, y = trial.params["x"], trial.params["y"]
        assert trial.values == pytest.approx([x**2 + y**2, (x - 2) ** 2 + (y - 1) ** 2])


def test_a_custom_search_space_function_adds_parameters_by_their_override_keys(tmp_path):
    done = app(SPHERE, tmp_path, "--config-name", "custom_space", "hydra.sweeper.n_trials=4")
    assert done.returncode == 0, done.stderr[-2000:]
    for trial in study(tmp_path, "custom-search-space").trials:
        x, z, w = trial.params["x"], trial.params["z"], trial.params["+w"]
        assert abs(z - x) <= 0.5 and 0 <= w <= 1
        assert trial.value == pytest.approx(w**2 + x**2 + trial.params["y"] ** 2 + z**2)


def test_a_custom_search_space_function_that_raises_stops_the_sweep_in_one_line_with_its_trial_failed(tmp_path):
    done = app(SPHERE, tmp_path, "--config-name", "custom_space", "hydra.sweeper.n_trials=3",
               "hydra.sweeper.custom_search_space=sphere.configure_until_trial_1")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1] == ("error: trial 1 failed in the sampler: ValueError: no space for trial 1; "
                                            "the sweep stopped")
    first, second = sorted(study(tmp_path, "custom-search-space").trials, key=lambda t: t.number)
    assert (first.state.name, second.state.name) == ("COMPLETE", "FAIL")
    assert second.user_attrs["reason"] == "sampler: ValueError: no space for trial 1"


def test_hydra_11s_search_space_runs_as_params_with_one_deprecation_line(tmp_path):
    done = app(SPHERE, tmp_path, "--config-name", "hydra11", "hydra.sweeper.n_trials=3")
    assert done.returncode == 0, done.stderr[-2000:]
    (line,) = [line for line in (done.stdout + done.stderr).splitlines() if "deprecated" in line]
    assert "params: {x: 'range(-5.5, 5.75, 0.5)', y: 'choice(-5, 0, 5)'}" in line
    for trial in study(tmp_path, "hydra11").trials:
        assert trial.params["y"] in (-5, 0, 5) and -5.5 <= trial.params["x"] <= 5.5


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_a_sampler_chosen_from_the_group_runs_the_sweep(tmp_path, sampler):
    done = app(SPHERE, tmp_path, f"hydra/sweeper/sampler={sampler}", "hydra.sweeper.n_trials=3")
    assert done.returncode == 0, done.stderr[-2000:]
    found = study(tmp_path, "sphere")
    assert [t.state.name for t in found.trials] == ["COMPLETE"] * 3
    table = pd.read_csv(next(tmp_path.rglob("trials.csv")))
    assert list(table["value"]) == pytest.approx([t.value for t in found.trials])


@pytest.mark.parametrize("pruner", PRUNERS)
def test_a_pruner_chosen_from_the_group_judges_the_jobs_reports(tmp_path, pruner):
    done = app(QUADRATIC_APP, tmp_path, "sweep=smoke", f"hydra/sweeper/pruner={pruner}", "hydra.sweeper.n_trials=3")
    assert done.returncode == 0, done.stderr[-2000:]
    trials = study(tmp_path, "smoke").trials
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials) and len(trials) == 3
    assert all(t.intermediate_values for t in trials)  # each job reported its epochs to that pruner


def test_a_stray_failure_ends_the_sweep_when_max_failure_rate_allows_none(tmp_path):
    done = app(SPHERE, tmp_path, "hydra.sweeper.n_trials=6", "error=true")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith(
        "error: 1 of 1 trials failed, more than hydra.sweeper.max_failure_rate=0 allows")
    assert len(study(tmp_path, "sphere").trials) == 1  # it stopped at the first failure


def test_lightning_hydra_templates_hparams_search_file_runs_with_only_the_sweeper_line_changed(tmp_path):
    # the file names the official class in _target_ and sets hydra.mode: MULTIRUN, as the template's does
    done = train_py(f"hydra.searchpath=[file://{LHT_SHAPE}]", "sweep=lht_shape", "hydra.sweeper.n_trials=2",
                    "data.subset=256", "data.val_size=500", "trainer.epochs=1", "trainer.save_weights=false",
                    "device=cpu", f"data.root={DATA_ROOT}", f"hydra.sweep.dir={tmp_path / 's'}",
                    f"hydra.sweeper.storage={tmp_path / 'journal.log'}")
    assert done.returncode == 0, done.stderr[-2000:]
    table = pd.read_csv(tmp_path / "s" / "trials.csv")
    assert list(table["state"]) == ["COMPLETE", "COMPLETE"]
    assert table["optimizer.lr"].between(0.0001, 0.1).all() and table["trainer.batch_size"].isin([32, 64, 128, 256]).all()


@pytest.mark.parametrize("argument, expected", [
    ("hydra/sweeper/sampler=randm", "hydra/sweeper/sampler='randm' is not allowed: did you mean random? one of: "),
    ("hydra.sweeper.sampler.n_startup_trails=3", "did you mean hydra.sweeper.sampler.n_startup_trials"),
])
def test_a_misspelled_option_or_key_of_the_groups_is_one_error_line(argument, expected):
    assert_one_error_line(train_py("-m", "sweep=default", argument), expected)


def test_the_hparams_search_shape_runs_on_any_app_with_only_the_sweeper_line_changed(tmp_path):
    done = subprocess.run([sys.executable, str(SPHERE), "--config-name", "lht", "hydra.sweeper.n_trials=2"],
                          cwd=tmp_path, env={**SUBPROCESS_ENV, "PYTHONPATH": str(SRC)}, capture_output=True, text=True,
                          timeout=200)  # no -m: the file sets hydra.mode MULTIRUN
    assert done.returncode == 0, done.stderr[-2000:]
    trials = study(tmp_path, "sphere").trials
    assert len(trials) == 2 and all(t.value == pytest.approx(t.params["x"] ** 2 + t.params["y"] ** 2) for t in trials)
