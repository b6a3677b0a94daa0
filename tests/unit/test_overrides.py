"""`python train.py`'s command line, checked before Hydra sees it (aesweep.overrides): every mistake Hydra would
report in many lines is one ConfigError."""

import pytest
from helpers import CONF_DIR

from aesweep.errors import ConfigError
from aesweep.overrides import check_command_line


@pytest.mark.parametrize(
    "argument, key, value",
    [
        ("model=nope", "model", "nope"),
        ("sweep=nope", "sweep", "nope"),
        ("optimizer=sgd,lion", "optimizer", "lion"),
        ("model.bottleneck=choice()", "model.bottleneck", "choice()"),
    ],
)
def test_command_line_mistakes_hydra_would_report_in_many_lines_are_one_config_error(argument, key, value):
    with pytest.raises(ConfigError) as caught:
        check_command_line(["-m", argument], CONF_DIR)
    assert (caught.value.key, caught.value.value) == (key, value)
    assert "\n" not in str(caught.value)


def test_command_line_check_lets_valid_overrides_and_flags_through():
    check_command_line(
        ["-m", "sweep=smoke", "model=conv,blog", "optimizer.lr=tag(log, interval(1e-4, 1e-2))",
         "hydra/launcher=joblib", "--cfg", "job", "sweep=null", "~trial.report", "+extra=1"],
        CONF_DIR,
    )


@pytest.mark.parametrize(
    "arguments, key, allowed",
    [
        (["trainer.epoch=3"], "trainer.epoch", "did you mean trainer.epochs, trainer.init_epochs? write +trainer.epoch=3 to add a new key"),
        (["modle=conv"], "modle", "did you mean model?"),
        (["model.dropout=0.1"], "model.dropout", "model=blog has no dropout (model=conv, mlp has)"),
        (["optimizer=adam", "optimizer.momentum=0.9"], "optimizer.momentum",
         "optimizer=adam has no momentum (optimizer=rmsprop, sgd has)"),
        (["-m", "sweep=smoke", "hydra.sweeper.samplr.seed=1"], "hydra.sweeper.samplr.seed",
         "did you mean hydra.sweeper.sampler.seed"),
    ],
)
def test_a_key_the_config_does_not_have_is_one_error_naming_where_it_is(arguments, key, allowed):
    with pytest.raises(ConfigError) as caught:
        check_command_line(arguments, CONF_DIR)
    assert caught.value.key == key
    assert caught.value.allowed.startswith(f"{key} is not a config key; ") and allowed in caught.value.allowed


def test_keys_that_exist_under_the_chosen_options_or_are_added_pass():
    check_command_line(["model=conv", "model.dropout=0.1", "+trainer.note=x", "optimizer=sgd", "optimizer.momentum=0.9",
                        "-m", "sweep=smoke", "hydra.sweeper.n_trials=3", "model.hidden=64"], CONF_DIR)


def test_a_launcher_hydra_does_not_know_is_refused_with_the_installed_ones():
    with pytest.raises(ConfigError) as caught:
        check_command_line(["-m", "hydra/launcher=slrum"], CONF_DIR)
    assert (caught.value.key, caught.value.value) == ("hydra/launcher", "slrum")
    assert caught.value.allowed.startswith("did you mean slurm? one of: ")
    assert "basic" in caught.value.allowed and "slurm" in caught.value.allowed


def test_a_typed_setting_given_the_wrong_type_is_one_error():
    with pytest.raises(ConfigError) as caught:
        check_command_line(["-m", "sweep=smoke", "hydra.sweeper.n_trials=abc"], CONF_DIR)
    assert (caught.value.key, caught.value.value) == ("hydra.sweeper.n_trials", "abc")
    assert "could not be converted to Integer" in caught.value.allowed


@pytest.mark.parametrize(
    "arguments, key, value",
    [
        (["model=conv", "model.channels=[a]"], "model.channels", "[a]"),
        (["model=mlp", "model.hidden=[64,b]"], "model.hidden", "[64,b]"),
        (["-m", "sweep=smoke", "hydra.sweeper.seeds=[0,x]"], "hydra.sweeper.seeds", "[0,x]"),
    ],
)
def test_a_list_element_of_the_wrong_type_is_one_error_naming_the_lists_key(arguments, key, value):
    with pytest.raises(ConfigError) as caught:
        check_command_line(arguments, CONF_DIR)
    assert (caught.value.key, caught.value.value) == (key, value)
    assert "could not be converted to Integer" in caught.value.allowed


@pytest.mark.parametrize("arguments", [["trainer.epochs=1", "trainer.epochs=abc"],
                                       ["trainer.epochs=abc", "trainer.epochs=1"]])
def test_a_key_given_twice_is_refused_with_the_value_that_failed(arguments):
    with pytest.raises(ConfigError) as caught:
        check_command_line(arguments, CONF_DIR)
    assert (caught.value.key, caught.value.value) == ("trainer.epochs", "abc")


def test_a_launcher_preset_whose_plugin_is_missing_is_one_error_pointing_to_its_install_line():
    import importlib.util

    if importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is not None:
        pytest.skip("hydra-ray-launcher is installed: the preset composes")
    with pytest.raises(ConfigError) as caught:
        check_command_line(["-m", "sweep=smoke", "hydra/launcher=ray_cluster"], CONF_DIR)
    assert (caught.value.key, caught.value.value) == ("hydra/launcher", "ray_cluster")
    assert "builds on hydra/launcher/ray, which is not there; its Hydra plugin is not installed" in caught.value.allowed
