"""Hydra override grammar -> Optuna distributions: every form, int vs float, and the mistakes."""


import pytest
import yaml
from helpers import REPO
from omegaconf import OmegaConf
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from aesweep.errors import ConfigError
from hydra_plugins.aesweep_optuna._search_space import (
    check_against_config,
    grid_search_space,
    parse_search_space,
)

GROUPS = {"model": ["blog", "conv", "mlp"], "optimizer": ["adam", "sgd"]}


def group_options(name):
    return GROUPS.get(name, [])


def param(text, key="p"):
    (entry,) = parse_search_space({key: text}, [], group_options)
    return entry


@pytest.mark.parametrize(
    "text, expected",
    [
        ("choice(relu, gelu, silu)", CategoricalDistribution(["relu", "gelu", "silu"])),
        ("relu,gelu", CategoricalDistribution(["relu", "gelu"])),
        ("choice(16, 32, 64)", CategoricalDistribution([16, 32, 64])),
        ("choice(true, false)", CategoricalDistribution([True, False])),
        ("range(0, 5)", IntDistribution(0, 4)),
        ("range(16, 129, 16)", IntDistribution(16, 128, step=16)),
        ("range(0.1, 0.5, 0.1)", FloatDistribution(0.1, 0.4, step=0.1)),
        ("tag(log, range(1, 65))", IntDistribution(1, 64, log=True)),
        ("interval(0, 1)", FloatDistribution(0.0, 1.0)),
        ("interval(1, 10)", FloatDistribution(1.0, 10.0)),
        ("tag(int, interval(1, 64))", IntDistribution(1, 64)),
        ("tag(log, interval(1e-4, 1e-1))", FloatDistribution(1e-4, 1e-1, log=True)),
        ("tag(log, int, interval(1, 1024))", IntDistribution(1, 1024, log=True)),
    ],
)
def test_each_grammar_form_maps_to_its_distribution(text, expected):
    assert param(text).distribution == expected


def test_int_range_gives_ints_and_float_range_gives_floats():
    assert isinstance(param("range(2, 10, 2)").distribution, IntDistribution)
    assert isinstance(param("range(2.0, 10, 2)").distribution, FloatDistribution)


def test_interval_is_float_unless_tagged_int():
    assert isinstance(param("interval(1, 10)").distribution, FloatDistribution)
    assert isinstance(param("tag(int, interval(1, 10))").distribution, IntDistribution)


def test_fixed_values_pass_through_unchanged():
    fixed = parse_search_space(
        {"data.subset": 2000, "eval.readout": "kmeans", "model.batch_norm": True}, [], group_options
    )
    assert [p.searched for p in fixed] == [False, False, False]
    assert [p.override() for p in fixed] == ["data.subset=2000", "eval.readout=kmeans", "model.batch_norm=true"]


def test_sampled_values_become_override_lines():
    assert param("tag(log, interval(1e-4, 1e-1))", "optimizer.lr").override(0.001) == "optimizer.lr=0.001"
    assert param("range(0, 5)", "seed").override(3) == "seed=3"
    assert param("choice(relu, gelu)", "model.activation").override("gelu") == "model.activation=gelu"


def test_list_choices_are_categorical_strings_that_override_as_lists():
    channels = param("choice([16,32],[32,64])", "model.channels")
    assert channels.distribution == CategoricalDistribution(["[16,32]", "[32,64]"])
    assert channels.override("[32,64]") == "model.channels=[32,64]"


def test_a_config_group_key_searches_its_options():
    model = param("choice(conv, mlp)", "model")
    assert model.is_group and model.override("mlp") == "model=mlp"


def test_command_line_override_replaces_the_sweep_files_entry():
    space = parse_search_space({"x": "interval(0, 1)", "y": 3}, ["x=choice(0.5, 0.7)", "sweep=smoke"], group_options)
    assert [(p.key, p.searched) for p in space] == [("y", False), ("x", True), ("sweep", False)]
    assert space[1].distribution == CategoricalDistribution([0.5, 0.7])


@pytest.mark.parametrize(
    "text, allowed",
    [
        ("interval(5, 1)", "lo < hi"),
        ("choice()", "empty choice"),
        ("tag(log, interval(0, 1))", "lo > 0"),
        ("tag(log, range(0, 4))", "lo > 0"),
        ("range(5, 1)", "at least one value"),
        ("tag(int, interval(0.5, 3))", "whole-number"),
        ("tag(cube, interval(0, 1))", "unknown: cube"),
        ("choice(a, b, a)", "distinct choices (a is listed twice)"),
        ("choice(1, true)", "distinct choices (true equals 1, listed before it)"),  # one choice to Optuna
        ("choice(0, false)", "distinct choices (false equals 0, listed before it)"),
        ("tag(log, choice(1, 2))", "not choice()"),
    ],
)
def test_malformed_grammar_is_one_config_error_naming_key_and_value(text, allowed):
    with pytest.raises(ConfigError) as raised:
        param(text, "optimizer.lr")
    message = str(raised.value)
    assert message.startswith("hydra.sweeper.params.optimizer.lr=") and allowed in message
    assert "\n" not in message


def test_unknown_group_option_is_rejected_with_the_options():
    with pytest.raises(ConfigError, match="options of this config group: blog, conv, mlp"):
        param("choice(conv, transformer)", "model")


CONFIGS = {
    "sgd": OmegaConf.create({"optimizer": {"lr": 0.1, "momentum": 0.9}, "model": {"bottleneck": 10}}),
    "adam": OmegaConf.create({"optimizer": {"lr": 0.001}, "model": {"bottleneck": 10}}),
}


def compose(overrides):
    return CONFIGS["adam" if "optimizer=adam" in overrides else "sgd"]


def test_a_key_missing_from_the_config_is_rejected_with_a_suggestion():
    space = parse_search_space({"model.botleneck": "range(2, 9)"}, [], group_options)
    with pytest.raises(ConfigError, match="did you mean model.bottleneck"):
        check_against_config(space, compose)


def test_a_key_present_under_another_option_of_a_searched_group_is_allowed():
    space = parse_search_space(
        {"optimizer": "choice(adam, sgd)", "optimizer.momentum": "interval(0, 0.99)"}, [], group_options
    )
    check_against_config(space, lambda overrides: CONFIGS["sgd" if "optimizer=sgd" in overrides else "adam"])


def test_a_plus_key_may_add_a_new_key():
    check_against_config(parse_search_space({"+extra": "interval(0, 1)"}, [], group_options), compose)


def test_grid_search_space_enumerates_choices_and_ranges_but_not_intervals():
    space = parse_search_space({"seed": "range(0, 5)", "kind": "choice(a, b)"}, [], group_options)
    assert grid_search_space(space) == {"seed": [0, 1, 2, 3, 4], "kind": ["a", "b"]}
    with pytest.raises(ConfigError, match="cannot enumerate an interval"):
        grid_search_space(parse_search_space({"x": "interval(0, 1)"}, [], group_options))


ROOT = REPO
SWEEP_FILES = sorted((ROOT / "sweeps").glob("*.yaml"))
SPEC_GROUPS = {  # the options each searchable group has in the project's conf/
    group: sorted(p.stem for p in (ROOT / "conf" / group).glob("*.yaml"))
    for group in ("model", "optimizer", "loss", "scheduler", "augment")
}


def test_the_five_sweeps_exist():
    assert {p.stem for p in SWEEP_FILES} >= {"smoke", "baseline", "architecture", "optimizer", "default"}


@pytest.mark.parametrize("path", SWEEP_FILES, ids=lambda p: p.stem)
def test_each_sweep_file_selects_the_sweeper_and_searches_params_or_seeds(path):
    text = path.read_text()
    assert text.startswith("# @package _global_")
    config = yaml.safe_load(text)
    assert {"override /hydra/sweeper": "aesweep_optuna"} in config["defaults"]
    sweeper = config["hydra"]["sweeper"]
    space = parse_search_space(sweeper.get("params"), [], lambda name: SPEC_GROUPS.get(name, []))
    assert any(p.searched for p in space) or sweeper["seeds"]  # a configuration over seeds searches nothing


@pytest.mark.skipif(not (ROOT / "conf" / "config.yaml").exists(), reason="conf/config.yaml not written yet")
@pytest.mark.parametrize("path", SWEEP_FILES, ids=lambda p: p.stem)
def test_each_sweep_files_keys_exist_in_the_projects_config(path):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        params = compose("config", overrides=[f"sweep={path.stem}"], return_hydra_config=True).hydra.sweeper.params
        space = parse_search_space(params, [f"sweep={path.stem}"], lambda name: list(loader.get_group_options(name)))
        check_against_config(space, lambda overrides: compose("config", overrides=overrides))


# ---------------------------------------------------------------- Hydra 1.1's search_space format


@pytest.mark.parametrize("spec, expected, distribution", [
    ({"type": "float", "low": 0.1, "high": 1.0}, "interval(0.1, 1.0)", FloatDistribution(0.1, 1.0)),
    ({"type": "float", "low": 1e-4, "high": 1e-1, "log": True}, "tag(log, interval(0.0001, 0.1))",
     FloatDistribution(1e-4, 1e-1, log=True)),
    ({"type": "float", "low": -5.5, "high": 5.5, "step": 0.5}, "range(-5.5, 5.75, 0.5)",
     FloatDistribution(-5.5, 5.5, step=0.5)),
    ({"type": "float", "low": 0, "high": 1.0, "step": 0.3}, "range(0, 1.15, 0.3)",  # 1.0 is not on the grid
     FloatDistribution(0.0, 0.9, step=0.3)),
    ({"type": "int", "low": 1, "high": 8}, "tag(int, interval(1, 8))", IntDistribution(1, 8)),
    ({"type": "int", "low": 2, "high": 10, "step": 2}, "range(2, 11, 2)", IntDistribution(2, 10, step=2)),
    ({"type": "int", "low": 1, "high": 10, "step": 2}, "range(1, 11, 2)", IntDistribution(1, 9, step=2)),
    ({"type": "int", "low": 1, "high": 64, "log": True}, "tag(log, int, interval(1, 64))",
     IntDistribution(1, 64, log=True)),
    ({"type": "categorical", "choices": [32, 64, "a"]}, "choice(32, 64, a)", CategoricalDistribution([32, 64, "a"])),
])
def test_each_search_space_entry_becomes_params_text_of_the_same_distribution_never_past_high(
        spec, expected, distribution):
    from hydra_plugins.aesweep_optuna._plan import params_of_search_space

    params = params_of_search_space({"p": spec})
    assert params == {"p": expected}
    [param] = parse_search_space(params, [], lambda group: [])
    assert param.distribution == distribution


def test_a_search_space_entry_of_an_unknown_type_is_refused_naming_its_key():
    from hydra_plugins.aesweep_optuna._plan import params_of_search_space

    with pytest.raises(ConfigError) as refused:
        params_of_search_space({"lr": {"type": "loguniform", "low": 0, "high": 1}})
    assert str(refused.value) == ("hydra.sweeper.search_space.lr.type='loguniform' is not allowed: "
                                  "one of: float, int, categorical")


def test_a_study_run_without_seeds_refuses_seeds_on_resuming_naming_null_as_written():
    import types

    import optuna

    from hydra_plugins.aesweep_optuna._plan import SEEDS_ATTR, _check_resumed_seeds

    study = optuna.create_study(study_name="unseeded")
    study.set_user_attr(SEEDS_ATTR, {"seeds": None, "statistic": "mean"})
    settings = types.SimpleNamespace(seeds=[0, 1, 2], seed_statistic="mean")

    with pytest.raises(ConfigError) as refused:
        _check_resumed_seeds(settings, study, "outputs/optuna/journal.log")
    assert str(refused.value).startswith("hydra.sweeper.seeds=[0, 1, 2] is not allowed: null, as study 'unseeded' in ")
