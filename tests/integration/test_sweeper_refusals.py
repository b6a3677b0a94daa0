"""Sweep mistakes refused before the first trial: one `error:` line, exit 2, nothing written.

train.py sweeps (whose configs aesweep.config.validate checks) are refused before any training, so
they take only the seconds Hydra and the imports take; the rest runs the torch-free
tests/apps/quadratic stand-in. The search-space logic of the config check runs in-process on the
project's own conf/ and sweeps/.
"""

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import CONF_DIR, REPO, SUBPROCESS_ENV, assert_one_error_line
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from test_sweeper import load, sweep

from aesweep.config import validate
from aesweep.errors import ConfigError
from hydra_plugins.aesweep_optuna._config_check import check_trial_configs
from hydra_plugins.aesweep_optuna._search_space import parse_search_space

pytestmark = pytest.mark.timeout(180)

SWEEP_FILES = sorted(p.stem for p in (REPO / "sweeps").glob("*.yaml"))


def train_sweep(cwd: Path, *overrides: str) -> subprocess.CompletedProcess:
    """`python train.py -m <overrides>` started in `cwd`, so anything it writes lands there."""
    command = [sys.executable, str(REPO / "train.py"), "-m", *overrides]
    return subprocess.run(command, cwd=cwd, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=150)


# ------------------------------------------------------------------ the config check, end to end


def test_a_typo_in_a_fixed_override_is_refused_before_any_trial(tmp_path):
    result = train_sweep(
        tmp_path, "sweep=smoke", "device=cpu", "hydra.sweeper.study_name=smoke-x", "hydra.sweeper.n_trials=2",
        "model.activation=swish",
    )
    assert_one_error_line(
        result, "model.activation='swish' is not allowed: one of: relu, leaky_relu, elu, gelu, silu, tanh"
    )
    assert list(tmp_path.iterdir()) == []  # no study, no sweep folder: the corrected command starts afresh


def test_a_choice_that_conflicts_with_the_fixed_config_in_every_trial_is_refused(tmp_path):
    result = train_sweep(
        tmp_path, "sweep=smoke", "device=cpu", "data.download=false", "hydra.sweeper.n_trials=2",
        "eval.readout=argmax", "model.bottleneck=choice(10, 16, 32)",
    )
    assert_one_error_line(
        result,
        "model.bottleneck='choice(10, 16, 32)' is not allowed: choices that can pass the config check; "
        "16, 32 cannot with the rest of the sweep (model.bottleneck=16 is not allowed: equal to eval.n_clusters=10",
    )
    assert list(tmp_path.iterdir()) == []


def test_a_pruner_merged_into_the_sweep_files_names_the_kept_arguments_and_the_replacement(tmp_path):
    replacement = "hydra.sweeper.pruner={_target_:optuna.pruners.SuccessiveHalvingPruner}"
    result = train_sweep(tmp_path, "sweep=default", replacement)
    assert_one_error_line(
        result,
        "hydra.sweeper.pruner='optuna.pruners.SuccessiveHalvingPruner' is not allowed:",
        "merged the command line's pruner into sweep=default's pruner, which left n_startup_trials=4, "
        "n_warmup_steps=2 that SuccessiveHalvingPruner does not accept",
        f"hydra.sweeper.pruner=null '{replacement}'",
    )
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ objectives (torch-free app)


def test_an_objective_no_run_reports_is_refused_with_the_metric_names(tmp_path):
    result = sweep(tmp_path, "hydra.sweeper.objective=val.bogus")
    assert_one_error_line(
        result,
        "hydra.sweeper.objective='val.bogus' is not allowed: a validation metric, reported after every epoch: "
        "val.mapped_acc, val.hungarian_acc, val.nmi, val.ari, val.clusters_used, val.recon_mse",
    )
    assert not (tmp_path / "outputs").exists()


def test_a_single_objective_must_be_a_validation_metric_the_pruner_can_follow(tmp_path):
    result = sweep(tmp_path, "hydra.sweeper.objective=params", "hydra.sweeper.direction=minimize")
    assert_one_error_line(
        result, "hydra.sweeper.objective='params' is not allowed: a validation metric", "params, epochs, seconds only "
        "in a list of objectives"
    )


def test_an_unknown_metric_in_a_list_of_objectives_is_refused(tmp_path):
    result = sweep(
        tmp_path, "hydra.sweeper.objective=[val.mapped_acc,parmas]", "hydra.sweeper.direction=[maximize,minimize]"
    )
    assert_one_error_line(
        result,
        "hydra.sweeper.objective=['val.mapped_acc', 'parmas'] is not allowed: metrics of metrics.json: "
        "val/test/fit.{mapped_acc,hungarian_acc,nmi,ari,clusters_used,recon_mse} or params, epochs, epochs_planned, seconds",
    )


# ------------------------------------------------------------------ a resumed study's distributions


@pytest.fixture
def one_trial_study(tmp_path):
    """Study "smoke" with one finished trial of x in interval(-1, 1); returns (cwd, journal bytes)."""
    first = sweep(tmp_path, "hydra.sweeper.n_trials=1", "epochs=1", f"hydra.sweep.dir={tmp_path / 'first'}")
    assert first.returncode == 0, first.stderr
    return tmp_path, (tmp_path / "outputs" / "optuna" / "journal.log").read_bytes()


@pytest.mark.parametrize(
    "changed, stored",
    [
        ("x=interval(-2, 1)", "interval(-1, 1)"),  # a wider range: Optuna alone accepts it
        ("x=tag(log, interval(0.1, 1))", "interval(-1, 1)"),
        ("width=range(4, 33, 8)", "range(4, 33, 4)"),  # another step
        ("kind=choice(a, b, c)", "choice(a, b)"),
    ],
)
def test_a_changed_distribution_on_a_resumed_study_is_refused_and_nothing_is_written(
    one_trial_study, changed, stored
):
    cwd, journal = one_trial_study
    result = sweep(cwd, changed, "hydra.sweeper.n_trials=2", f"hydra.sweep.dir={cwd / 'second'}")
    key, written = changed.split("=", 1)
    assert_one_error_line(
        result,
        f"{key}='{written}' is not allowed: {stored}, as study 'smoke' in {cwd / 'outputs' / 'optuna' / 'journal.log'} "
        "searches it (a changed range, choices, step or log scale needs a new hydra.sweeper.study_name)",
    )
    assert (cwd / "outputs" / "optuna" / "journal.log").read_bytes() == journal
    assert not (cwd / "second").exists()


def test_the_same_distribution_written_differently_continues_the_study(one_trial_study):
    cwd, _ = one_trial_study
    result = sweep(cwd, "x=interval(-1.0, 1.0)", "kind=a,b", "hydra.sweeper.n_trials=2", "epochs=1")
    assert result.returncode == 0, result.stderr
    assert [t.state.name for t in load(cwd).trials] == ["COMPLETE", "COMPLETE"]


# ------------------------------------------------------------------ the search-space logic, in-process


@pytest.fixture(scope="module")
def project():
    """(space(sweep, *overrides), compose(overrides)) on the project's conf/, as the sweeper sees them."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()

        def space(sweep_name, *overrides):
            arguments = [f"sweep={sweep_name}", *overrides]
            params = compose("config", overrides=[f"sweep={sweep_name}"], return_hydra_config=True).hydra.sweeper.params
            return parse_search_space(params, arguments, lambda name: list(loader.get_group_options(name)))

        yield space, lambda overrides: compose("config", overrides=overrides)


@pytest.mark.parametrize("sweep_name", SWEEP_FILES)
def test_every_shipped_sweep_passes_the_config_check(project, sweep_name):
    space, compose_config = project
    check_trial_configs(space(sweep_name), compose_config, validate)


@pytest.mark.parametrize(
    "overrides",
    [
        # the first choices (16, 10) fail bottleneck == n_clusters; each choice passes with one of the other's
        ("eval.readout=argmax", "model.bottleneck=choice(16, 10)", "eval.n_clusters=choice(10, 16)"),
        # every loss weight 0 fails, unless the searched iic_weight is above its low end
        ("loss.recon_weight=0", "loss.iic_weight=interval(0, 1)"),
        # bottleneck 16 fails under argmax, but the searched readout may be kmeans
        ("model.bottleneck=choice(10, 16)", "eval.readout=choice(argmax, kmeans)"),
        # n_clusters=16 would rescue bottleneck 16, and the check does not try all 38 values: no refusal
        ("eval.readout=argmax", "model.bottleneck=choice(10, 16)", "eval.n_clusters=range(2, 40)"),
    ],
)
def test_a_fixed_config_that_some_searched_value_makes_valid_is_not_refused(project, overrides):
    space, compose_config = project
    check_trial_configs(space("smoke", *overrides), compose_config, validate)


def test_a_choice_that_fails_with_every_value_of_the_rest_is_refused(project):
    space, compose_config = project
    with pytest.raises(ConfigError) as refused:  # n_clusters=10 never equals the fixed bottleneck 16
        check_trial_configs(
            space("smoke", "eval.readout=argmax", "model.bottleneck=16", "eval.n_clusters=choice(10, 16)"),
            compose_config,
            validate,
        )
    assert str(refused.value).startswith(
        "eval.n_clusters='choice(10, 16)' is not allowed: choices that can pass the config check; 10 cannot with "
        "the rest of the sweep (model.bottleneck=16 is not allowed: equal to eval.n_clusters=10"
    )


def test_a_fixed_value_that_fails_with_every_searched_value_is_refused_in_the_checks_words(project):
    space, compose_config = project
    with pytest.raises(ConfigError) as refused:
        check_trial_configs(space("clustering", "augment.rotation=200"), compose_config, validate)
    assert str(refused.value) == "augment.rotation=200 is not allowed: a number >= 0 and <= 180"


def test_a_group_option_whose_trials_cannot_compose_is_refused(project):
    space, compose_config = project
    with pytest.raises(ConfigError) as refused:  # model.hidden exists under mlp, not under seed
        check_trial_configs(space("smoke", "model=choice(blog, mlp)", "model.hidden=[64]"), compose_config, validate)
    assert str(refused.value).startswith(
        "model='choice(blog, mlp)' is not allowed: choices that can pass the config check; blog cannot with the rest "
        "of the sweep (overrides="
    )
