"""The sampler and pruner option groups (hydra/sweeper/sampler=..., hydra/sweeper/pruner=...): every option has
Optuna's own defaults, composes through Hydra, builds its Optuna object and proposes a trial."""

import inspect

import optuna
import pytest
from helpers import CONF_DIR
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from aesweep.trial import checked_pruner
from hydra_plugins.aesweep_optuna import presets
from hydra_plugins.aesweep_optuna._settings import SweepSettings

REQUIRED = {"percentile": {"percentile": 50.0}, "threshold": {"lower": 0.0},
            "patient": {"wrapped_pruner": {"_target_": "optuna.pruners.MedianPruner"}, "patience": 2}}


@pytest.mark.parametrize("preset", [*presets.SAMPLERS.values(), *presets.PRUNERS.values()], ids=lambda c: c.__name__)
def test_each_option_has_the_installed_optunas_keyword_arguments_and_defaults(preset):
    module, _, name = preset._target_.rpartition(".")
    cls = getattr(optuna.samplers if module.endswith("samplers") else optuna.pruners, name)
    fields = {key: value for key, value in vars(preset()).items() if key != "_target_"}
    for parameter in inspect.signature(cls).parameters.values():
        if parameter.name == "search_space":  # GridSampler's: the sweeper fills it from params
            assert parameter.name not in fields
            continue
        assert parameter.name in fields, parameter.name
        default = parameter.default
        plain = default is None or isinstance(default, (bool, int, float, str))
        assert fields[parameter.name] == (default if plain and default is not parameter.empty else None)


def composed(group: str, option: str) -> dict:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["hydra/sweeper=aesweep_optuna", f"hydra/sweeper/{group}={option}"],
                      return_hydra_config=True)
    return OmegaConf.to_container(cfg.hydra.sweeper[group], resolve=True)


@pytest.mark.parametrize("option", presets.SAMPLERS)
def test_each_sampler_option_composes_builds_and_proposes_a_trial(option):
    sampler_cfg = composed("sampler", option)
    settings = SweepSettings(sampler=sampler_cfg, pruner=None, direction="maximize", objective=None,
                             study_name=None, storage=None, n_trials=1, n_jobs=1, timeout=None, params={},
                             baseline_study=None, heartbeat_interval=30, stale_after=600, top_k=1)
    from hydra_plugins.aesweep_optuna._search_space import parse_search_space, suggest

    space = parse_search_space({"x": "range(0, 4)", "kind": "choice(a, b)"}, [], lambda name: [])
    sampler = settings.build_sampler(space)
    assert type(sampler).__name__ == sampler_cfg["_target_"].rpartition(".")[2]
    study = optuna.create_study(sampler=sampler, direction="maximize")
    for _ in range(2):
        trial = study.ask()
        values = [suggest(trial, param) for param in space]
        study.tell(trial, values[0])
    assert len(study.trials) == 2


@pytest.mark.parametrize("option", presets.PRUNERS)
def test_each_pruner_option_composes_and_builds(option):
    pruner_cfg = {**composed("pruner", option), **REQUIRED.get(option, {})}
    pruner = checked_pruner(pruner_cfg, "hydra.sweeper.pruner")
    assert type(pruner).__name__ == pruner_cfg["_target_"].rpartition(".")[2]
