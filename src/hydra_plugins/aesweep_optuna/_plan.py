"""Everything a sweep checks before its first trial, and the study it then runs.

Settings, search space, the trials' configs, sampler, pruner, sweep folder, storage and study are all
checked here; a mistake ends the command with one ``error:`` line and exit status 2 before anything is
written. A resumed study must keep its directions, objectives and every parameter's distribution.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from omegaconf import DictConfig

from aesweep.errors import ConfigError, one_line
from aesweep.io import check_creatable
from aesweep.storage import open_storage, resolved
from aesweep.trial import PRUNER_ATTR

from ._config_check import COMPOSE_KEY, check_trial_configs
from ._search_space import (
    SearchParam,
    check_against_config,
    fixed_overrides,
    parse_search_space,
    value_as_override_text,
)
from ._settings import SweepSettings, import_class
from ._workers import claim_lock
from .config import AesweepOptunaSweeperConf

log = logging.getLogger(__name__)

ComposeFn = Callable[[list[str]], DictConfig]

# Study user attributes the sweeper keeps, so a resumed or second worker checks itself against them.
OBJECTIVES_ATTR = "aesweep.objectives"  # the objective metric paths
SEARCH_SPACE_ATTR = "aesweep.search_space"  # {param: grammar text}
FIXED_ATTR = "aesweep.fixed"  # the fixed overrides of the command that last ran the study
SEEDS_ATTR = "aesweep.seeds"  # {seeds, statistic}: what a trial's value is a statistic of


@dataclass
class Plan:
    """Everything checked before the first trial."""

    study: optuna.Study
    storage: Any
    storage_url: str
    space: list[SearchParam]
    objectives: list[str]  # metric paths of the run record; with from_return, labels of the returned values
    sweep_dir: Path
    from_return: bool = False  # the objective is what the task function returns (an app without a run record)
    extend_space: Callable[[DictConfig, Any], None] | None = None  # custom_search_space
    baseline_study: str | None = None  # hydra.sweeper.baseline_study, in the app's study scope when it is the default
    measure_baseline: str = ""  # how to measure it, for the summary when the storage has none

    @property
    def fixed(self) -> list[str]:
        return fixed_overrides(self.space)


def make_plan(settings: SweepSettings, config: DictConfig, compose: ComposeFn,
              group_options: Callable[[str], list[str]], arguments: list[str], launcher: Any) -> Plan:
    """Check everything, then open (or create) the study; raises ConfigError for the first mistake."""
    settings.check_numbers()
    app = app_callback(config)
    objectives, directions = settings.objectives_and_directions(getattr(app, "default_objective", None))
    from_return = objectives is None
    if objectives is None:
        objectives = ["value"] if len(directions) == 1 else [str(i) for i in range(len(directions))]
    params = settings.params
    if settings.search_space is not None:
        if params:
            raise ConfigError("hydra.sweeper.search_space", settings.search_space,
                              "null when hydra.sweeper.params is set (search_space is Hydra 1.1's form of params)")
        params = params_of_search_space(settings.search_space)
        log.warning("hydra.sweeper.search_space is deprecated (Hydra 1.1's format); write instead: params: {%s}",
                    ", ".join(f"{name}: '{text}'" for name, text in params.items()))
    extend_space = _custom_search_space(settings.custom_search_space)

    def compose_checked(overrides: list[str]) -> DictConfig:
        try:
            return compose(overrides)
        except Exception as error:  # Hydra/OmegaConf raise several kinds; one line for the user
            raise ConfigError(COMPOSE_KEY, " ".join(overrides), one_line(error)) from None

    space = parse_search_space(params, arguments, group_options)
    if not any(p.searched for p in space) and settings.seeds is None and extend_space is None:
        raise ConfigError("hydra.sweeper.params", params, "at least one choice(), range() or interval() "
                                                          "(or hydra.sweeper.seeds: one configuration over seeds)")
    check_against_config(space, compose_checked)
    settings.check_seeds(compose_checked(fixed_overrides(space)).get("seed"))
    validate = getattr(app, "check_config", None)
    if callable(validate):
        check_trial_configs(space, compose_checked, validate)
    if settings.n_jobs > 1 and type(launcher).__name__ == "BasicLauncher":
        log.warning("hydra.sweeper.n_jobs=%d with Hydra's basic launcher runs one run at a time, in this "
                    "process; for trials at once use hydra/launcher=joblib hydra.launcher.n_jobs=%d (docs/sweeps.md)",
                    settings.n_jobs, settings.n_jobs)
    sampler = settings.build_sampler(space)
    pruner = settings.build_pruner(list(config.hydra.overrides.hydra), config.hydra.runtime.choices.get("sweep"))
    if settings.pruner and len(objectives) > 1:
        log.warning("pruning is off: Optuna cannot prune multi-objective studies")
    sweep_dir = Path(os.path.abspath(str(config.hydra.sweep.dir)))  # as Hydra's run_job does
    check_creatable(str(sweep_dir), "hydra.sweep.dir")  # before the storage: a refused sweep writes nothing
    storage_url = resolved(settings.storage, Path(config.hydra.runtime.cwd))
    try:
        storage = open_storage(storage_url)
    except ConfigError as error:
        raise ConfigError("hydra.sweeper.storage", storage_url, error.allowed) from None
    name = str(settings.study_name or default_study_name(app, config, config.hydra.runtime.choices.get("sweep")
                                                         or config.hydra.job.name))
    baseline_study = settings.baseline_study
    measure = f"run `python train.py -m sweep={baseline_study}` to measure it" if baseline_study else ""
    if baseline_study == AesweepOptunaSweeperConf.baseline_study:  # the default name: the app's own for this data
        baseline_study = default_study_name(app, config, baseline_study)
        if baseline_study != settings.baseline_study:
            measure = f"run `python train.py -m sweep={settings.baseline_study}` on this sweep's data to measure it"
    with claim_lock(storage_url, name):
        try:
            storage.get_study_id_from_name(name)
        except KeyError:
            study = optuna.create_study(storage=storage, sampler=sampler, pruner=pruner, study_name=name,
                                        directions=directions)
        else:  # loaded, not created: create_study(load_if_exists=True) appends to a journal even then
            study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
            _check_resumed(settings, study, storage_url, objectives, directions, space)
            _check_resumed_seeds(settings, study, storage_url)
            _warn_changed_fixed(study, fixed_overrides(space))
        recorded_space = study.user_attrs.get(SEARCH_SPACE_ATTR) or {}
        study.set_user_attr(FIXED_ATTR, fixed_overrides(space))
        study.set_user_attr(PRUNER_ATTR, settings.pruner)
        study.set_user_attr(OBJECTIVES_ATTR, objectives)
        study.set_user_attr(SEEDS_ATTR, {"seeds": settings.seeds, "statistic": settings.seed_statistic})
        # Kept for parameters this command does not search: searching one again must not change it.
        study.set_user_attr(SEARCH_SPACE_ATTR, {**recorded_space, **{p.name: p.text for p in space if p.searched}})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(objectives)
    return Plan(study, storage, storage_url, space, objectives, sweep_dir, from_return, extend_space, baseline_study,
                measure)


def app_callback(config: DictConfig) -> Any:
    """What the app tells the sweeper about its jobs, when it does: a Hydra callback class (in
    ``hydra.callbacks``) with ``check_config(config)``, which raises ConfigError for a config its runs would
    refuse, ``default_objective``, the run-record metric to optimise unless told otherwise, and
    ``study_name(name, config)``, the study a default name stands for (``default_study_name``). train.py's config
    registers one (aesweep.config.ValidateBeforeRun); other apps are not checked, and their objective is what
    their task function returns."""
    for callback in (config.hydra.get("callbacks") or {}).values():
        cls = import_class(callback.get("_target_")) if isinstance(callback, DictConfig) else None
        if callable(getattr(cls, "check_config", None)):
            return cls
    return None


def default_study_name(app: Any, config: DictConfig, name: str) -> str:
    """A study name the user did not choose, as the app names it (``study_name(name, config)`` of its callback),
    so that runs the plain name would put into one study stay apart: train.py's sweeps on Fashion-MNIST run
    study `<sweep>-fashion_mnist` against `baseline-fashion_mnist`. Apps without one: the plain name."""
    named = getattr(app, "study_name", None)
    return str(named(name, config)) if callable(named) else name


def _custom_search_space(path: str | None) -> Callable[[DictConfig, Any], None] | None:
    if not path:
        return None
    function = import_class(path)
    if not callable(function):
        raise ConfigError("hydra.sweeper.custom_search_space", path,
                          "a dotted path to a function(config, trial), e.g. my_app.search.configure")
    return function


SEARCH_SPACE_TYPES = ("float", "int", "categorical")


def params_of_search_space(search_space: Any) -> dict[str, str]:
    """Hydra 1.1's search_space ({x: {type: float, low: 0, high: 1, log: false, step: null}, ...}) as params."""
    key = "hydra.sweeper.search_space"
    if not isinstance(search_space, dict):
        raise ConfigError(key, search_space, "a mapping of parameter names to {type, low, high, ...}")
    params = {}
    for name, spec in search_space.items():
        kind = spec.get("type") if isinstance(spec, dict) else None
        if kind not in SEARCH_SPACE_TYPES:
            raise ConfigError(f"{key}.{name}.type", kind, "one of: " + ", ".join(SEARCH_SPACE_TYPES))
        if kind == "categorical":
            choices = spec.get("choices")
            if not isinstance(choices, list) or not choices:
                raise ConfigError(f"{key}.{name}.choices", choices, "a non-empty list")
            params[name] = f"choice({', '.join(value_as_override_text(c) for c in choices)})"
            continue
        low, high, step, log_scale = spec.get("low"), spec.get("high"), spec.get("step"), bool(spec.get("log"))
        for bound, value in (("low", low), ("high", high)):
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ConfigError(f"{key}.{name}.{bound}", value, "a number")
        # range() excludes its stop: a stop past high (by less than a step) keeps high itself and nothing above it
        if kind == "int" and step not in (None, 1) and not log_scale:
            params[name] = f"range({int(low)}, {int(high) + 1}, {int(step)})"
        elif kind == "int":
            params[name] = f"tag({'log, ' if log_scale else ''}int, interval({int(low)}, {int(high)}))"
        elif step is not None:
            params[name] = f"range({low}, {high + step / 2}, {step})"  # half a step: no float rounding decides
        else:
            params[name] = f"tag(log, interval({low}, {high}))" if log_scale else f"interval({low}, {high})"
    return params


def _check_resumed(settings: SweepSettings, study: optuna.Study, storage_url: str, objectives: list[str],
                   directions: list[str], space: list[SearchParam]) -> None:
    """A resumed study must keep its directions, objectives and each parameter's distribution.

    A parameter's distribution is the one recorded in the study (the grammar text of the command that
    first searched it), else the one its latest trial was sampled from. Any change (range, choices, step,
    log scale) is refused: the sampler would model old and new trials as one space (Optuna's own check
    only refuses a change of kind), and trials.csv would mix ranges.
    """
    where = f"study '{study.study_name}' in {storage_url} (or pick a new hydra.sweeper.study_name)"
    existing = [d.name.lower() for d in study.directions]
    if existing != directions:
        raise ConfigError("hydra.sweeper.direction", settings.direction, f"{existing} like the existing {where}")
    recorded = study.user_attrs.get(OBJECTIVES_ATTR)
    if recorded is not None and recorded != objectives:
        raise ConfigError("hydra.sweeper.objective", settings.objective, f"{recorded} like the existing {where}")
    latest: dict[str, Any] = {}
    for trial in study.get_trials(deepcopy=False):
        latest.update(trial.distributions)
    recorded_space = study.user_attrs.get(SEARCH_SPACE_ATTR) or {}
    for param in space:
        if not param.searched:
            continue
        stored_text = recorded_space.get(param.name)
        stored = _distribution(param.name, stored_text) if stored_text is not None else None
        if stored is None:
            stored, stored_text = latest.get(param.name), str(latest.get(param.name))
        if stored is not None and stored != param.distribution:
            raise ConfigError(
                param.source, param.text,
                f"{stored_text}, as study '{study.study_name}' in {storage_url} searches it (a changed range, "
                "choices, step or log scale needs a new hydra.sweeper.study_name)",
            )


def _check_resumed_seeds(settings: SweepSettings, study: optuna.Study, storage_url: str) -> None:
    """A resumed study keeps the seeds its trials ran on and the statistic over them: its values mean that."""
    recorded = study.user_attrs.get(SEEDS_ATTR)
    if recorded is None:
        return
    where = f"as study '{study.study_name}' in {storage_url} ran its trials (a new hydra.sweeper.study_name starts afresh)"
    if recorded.get("seeds") != settings.seeds:
        raise ConfigError("hydra.sweeper.seeds", settings.seeds, f"{value_as_override_text(recorded.get('seeds'))}, {where}")
    if recorded.get("seeds") is not None and recorded.get("statistic") != settings.seed_statistic:
        raise ConfigError("hydra.sweeper.seed_statistic", settings.seed_statistic,
                          f"{value_as_override_text(recorded.get('statistic'))}, {where}")



def _warn_changed_fixed(study: optuna.Study, fixed: list[str]) -> None:
    """Say so when a resumed study's trials run with other fixed settings than its earlier ones.

    Not refused: a resumed study may rightly move to another device or thread count. But a changed
    data.subset or trainer.epochs puts trials of another budget into one ranking and one sampler model.
    """
    before = study.user_attrs.get(FIXED_ATTR)
    if before is None or sorted(before) == sorted(fixed):
        return
    gone, new = sorted(set(before) - set(fixed)), sorted(set(fixed) - set(before))
    changes = ([f"now {' '.join(new)}"] if new else []) + ([f"before {' '.join(gone)}"] if gone else [])
    log.warning("study '%s' continues with other fixed settings than its earlier trials: %s; its ranking and "
                "sampler mix both (a new hydra.sweeper.study_name keeps them apart)", study.study_name,
                "; ".join(changes))


def _distribution(name: str, text: str) -> Any:
    """The Optuna distribution of a recorded grammar text, or None if it no longer parses."""
    try:
        (param,) = parse_search_space({name: text}, [], lambda group: [])  # a group's choice: the same choices
    except (ConfigError, ValueError):
        return None
    return param.distribution
