"""The sweep loop: validate everything, then claim trials, launch them as a batch, record them.

plan   settings, search space, sampler, pruner, storage and study are all checked before the
       first trial; a mistake ends the command with one ``error:`` line and exit status 2
claim  under the claim lock: fail stale trials, then ask up to n_jobs trials while the study
       has fewer than n_trials (every state counts, every worker's trials count)
launch one batch through hydra/launcher (basic: in this process; joblib: worker processes);
       each job gets the sampled overrides plus trial.* telling it which trial it is
record read the job's metrics.json: completed -> COMPLETE with the objective value(s),
       pruned -> PRUNED, diverged / failed / exception / missing metric -> FAIL with a reason
tables trials.csv and best.yaml after every batch; a summary at the end; exit status 1 when
       every trial this command ran failed
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import math
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Quote, QuotedString
from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf
from optuna.trial import TrialState

from aesweep.config import check_creatable
from aesweep.errors import AesweepError, ConfigError, one_line
from aesweep.pruning import PRUNER_ATTR, checked_pruner, is_journal_file, lookup_metric, open_storage
from aesweep.results import METRIC_NAMES, METRIC_SPLITS

from . import _tables
from ._config_check import COMPOSE_KEY, check_trial_configs
from ._search_space import (
    SearchParam,
    check_against_config,
    fixed_overrides,
    grid_search_space,
    parse_search_space,
    suggest,
    trial_overrides,
    value_as_override_text,
)
from ._workers import HEARTBEAT_ATTR, WORKER_ATTR, Heartbeat, Worker, claim_lock, fail_stale_trials

log = logging.getLogger(__name__)

DIRECTIONS = ("maximize", "minimize")
DEFAULT_STORAGE = "outputs/optuna/journal.log"  # relative to the directory the command starts in


@dataclass
class Plan:
    """Everything checked before the first trial."""

    study: optuna.Study
    storage: Any
    storage_url: str
    space: list[SearchParam]
    objectives: list[str]
    sweep_dir: Path

    @property
    def fixed(self) -> list[str]:
        return fixed_overrides(self.space)


@dataclass
class Claim:
    """A trial this worker asked for, and the job that will run it."""

    trial: optuna.Trial
    overrides: list[str]  # the task overrides that reproduce the run (recorded, and best.yaml)
    job_overrides: list[str] = field(default_factory=list)  # + trial.* and the job's subdir
    run_dir: Path = Path()


def _exit(code: int, message: str) -> NoReturn:
    sys.stdout.flush()
    print(message, file=sys.stderr, flush=True)
    raise SystemExit(code)


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value


def _quoted(text: str) -> str:
    return QuotedString(text=text, quote=Quote.single).with_quotes()


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Let SIGTERM (a scheduler pre-empting the sweep) unwind like Ctrl-C, so running trials get FAIL."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class OptunaSweep:
    """The sweeper's state and loop; ``AesweepOptunaSweeper`` is the thin Hydra-facing shell."""

    def __init__(
        self,
        sampler: Any,
        pruner: Any,
        direction: Any,
        objective: Any,
        study_name: str | None,
        storage: str | None,
        n_trials: int,
        n_jobs: int,
        timeout: float | None,
        params: Any,
        baseline_study: str | None,
        heartbeat_interval: float,
        stale_after: float,
        top_k: int,
    ) -> None:
        self.sampler_cfg = _plain(sampler)
        self.pruner_cfg = _plain(pruner)
        self.direction = _plain(direction)
        self.objective = _plain(objective)
        self.study_name = study_name
        self.storage = storage
        self.n_trials = n_trials
        self.n_jobs = n_jobs
        self.timeout = timeout
        self.params = _plain(params) or {}
        self.baseline_study = baseline_study
        self.heartbeat_interval = heartbeat_interval
        self.stale_after = stale_after
        self.top_k = top_k
        self.worker = Worker.this_process()
        self.hydra_context: HydraContext | None = None
        self.config: DictConfig | None = None
        self.launcher: Any = None
        self._job_index = 0
        self._exhausted = False  # a grid/brute-force sampler ran out of points

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.hydra_context = hydra_context
        self.config = config
        # Hydra sets HydraConfig for each job, not for the sweeper; without it the sweep's own
        # ${hydra:...} interpolations (hydra.sweep.dir: .../${hydra:runtime.choices.sweep}/...) fail.
        HydraConfig.instance().set_config(config)
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    # ---------------------------------------------------------------- plan
    def compose(self, overrides: list[str]) -> DictConfig:
        """A job's config for these overrides, as the launcher will compose it."""
        assert self.hydra_context is not None and self.config is not None
        return self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))

    def _compose_checked(self, overrides: list[str]) -> DictConfig:
        try:
            return self.compose(overrides)
        except Exception as error:  # Hydra/OmegaConf raise several kinds; one line for the user
            raise ConfigError(COMPOSE_KEY, " ".join(overrides), one_line(error)) from None

    def _objectives_and_directions(self) -> tuple[list[str], list[str]]:
        objectives = [self.objective] if isinstance(self.objective, str) else list(self.objective or [])
        if not objectives or not all(isinstance(o, str) and o for o in objectives):
            raise ConfigError(
                "hydra.sweeper.objective", self.objective, "a metric path like val.mapped_acc, or a list of them"
            )
        _check_objectives(objectives, self.objective)
        directions = [self.direction] if isinstance(self.direction, str) else list(self.direction or [])
        if len(directions) == 1 and len(objectives) > 1:
            raise ConfigError("hydra.sweeper.direction", self.direction, f"one direction per objective {objectives}")
        if len(directions) != len(objectives) or any(d not in DIRECTIONS for d in directions):
            raise ConfigError(
                "hydra.sweeper.direction", self.direction, f"maximize or minimize, one per objective {objectives}"
            )
        return objectives, directions

    def _check_numbers(self) -> None:
        def need(key: str, value: Any, ok: bool, allowed: str) -> None:
            if not ok:
                raise ConfigError(f"hydra.sweeper.{key}", value, allowed)

        whole = lambda v: isinstance(v, int) and not isinstance(v, bool)  # noqa: E731
        need("n_trials", self.n_trials, whole(self.n_trials) and self.n_trials >= 1, "a whole number >= 1")
        need("n_jobs", self.n_jobs, whole(self.n_jobs) and self.n_jobs >= 1, "a whole number >= 1")
        need("timeout", self.timeout, self.timeout is None or self.timeout > 0, "seconds > 0, or null")
        need("top_k", self.top_k, whole(self.top_k) and self.top_k >= 1, "a whole number >= 1")
        need("heartbeat_interval", self.heartbeat_interval, self.heartbeat_interval > 0, "seconds > 0")
        need(
            "stale_after",
            self.stale_after,
            self.stale_after >= 3 * self.heartbeat_interval,
            f"seconds >= 3 x heartbeat_interval ({3 * self.heartbeat_interval:g})",
        )

    def _storage_url(self) -> str:
        assert self.config is not None
        launch_dir = Path(self.config.hydra.runtime.cwd)
        storage = self.storage or DEFAULT_STORAGE
        if is_journal_file(storage):
            return str((launch_dir / Path(storage).expanduser()).resolve())
        if (
            storage.startswith("sqlite:///")
            and not storage.startswith("sqlite:////")
            and storage != "sqlite:///:memory:"
        ):
            return "sqlite:///" + str((launch_dir / storage[len("sqlite:///") :]).resolve())
        return storage

    def _study_name(self) -> str:
        assert self.config is not None
        if self.study_name:
            return str(self.study_name)
        return str(self.config.hydra.runtime.choices.get("sweep") or self.config.hydra.job.name)

    def _sampler(self, space: list[SearchParam], seed: int | None) -> optuna.samplers.BaseSampler:
        """The configured sampler; ``seed`` replaces the configured seed (see ``_reseed``)."""
        cfg = dict(self.sampler_cfg or {"_target_": "optuna.samplers.TPESampler"})
        target = cfg.get("_target_")
        cls = _import_class(target)
        if not (isinstance(cls, type) and issubclass(cls, optuna.samplers.BaseSampler)):
            raise ConfigError(
                "hydra.sweeper.sampler._target_", target, "an optuna.samplers class, e.g. optuna.samplers.TPESampler"
            )
        if issubclass(cls, optuna.samplers.TPESampler):
            cfg.setdefault("constant_liar", True)  # parallel trials must not pile onto one point
        if issubclass(cls, optuna.samplers.GridSampler):
            cfg.setdefault("search_space", grid_search_space(space))
        if issubclass(cls, optuna.samplers.BruteForceSampler):
            grid_search_space(space)  # the same rule: every searched parameter must be discrete
        if seed is not None:
            cfg["seed"] = seed
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return instantiate({**cfg, "_convert_": "all"})
        except Exception as error:
            raise ConfigError("hydra.sweeper.sampler", target, one_line(error.__cause__ or error)) from None

    def _reseed(self, plan: Plan, trial: optuna.Trial) -> None:
        """With a configured seed, sample trial k from a sampler seeded with ``trial_seed(seed, k)``.

        A sequential sweep stays reproducible, while a resumed sweep or a second worker does not
        replay the first trials' random draws (which would repeat their parameters).
        """
        seed = (self.sampler_cfg or {}).get("seed")
        # GridSampler's seed shuffles the grid, and a trial's grid point is an index into that order:
        # every trial must see the same order, or points repeat and others are never run.
        if seed is not None and not isinstance(plan.study.sampler, optuna.samplers.GridSampler):
            plan.study.sampler = self._sampler(plan.space, trial_seed(int(seed), trial.number))

    def _pruner(self) -> optuna.pruners.BasePruner:
        try:
            return checked_pruner(self.pruner_cfg, "hydra.sweeper.pruner")
        except ConfigError as error:
            merged = self._pruner_merge_error()
            raise (merged or error) from None

    def _pruner_merge_error(self) -> ConfigError | None:
        """Say so when a command-line pruner was merged into the config file's and got arguments it rejects.

        Hydra merges ``hydra.sweeper.pruner={...}`` into the sweep file's pruner dict, keeping the file's
        keys that the new dict does not set: ``{_target_: MedianPruner}`` over SuccessiveHalvingPruner's
        ``min_resource: 1`` builds MedianPruner(min_resource=1).
        """
        assert self.config is not None
        key = "hydra.sweeper.pruner"
        given: dict[str, Any] = {}  # what the command line set, since the last pruner=null
        from_file = True
        parser = OverridesParser.create()
        for line in self.config.hydra.overrides.hydra:
            try:
                override = parser.parse_override(str(line))
            except Exception:  # Hydra parsed it before us; never mind the odd one
                continue
            if override.key_or_group == key and not override.is_delete():
                value = override.value()
                if value is None:
                    given, from_file = {}, False
                elif isinstance(value, dict):
                    given.update(value)
            elif override.key_or_group.startswith(key + "."):
                given[override.key_or_group[len(key) + 1 :].split(".")[0]] = override.value()
        pruner = self.pruner_cfg if isinstance(self.pruner_cfg, dict) else {}
        target = pruner.get("_target_")
        left = [name for name in pruner if name not in given and name != "_target_"]
        rejected = [name for name in left if not _accepts_argument(_import_class(target), name)]
        if not (from_file and given and rejected):
            return None
        sweep = self.config.hydra.runtime.choices.get("sweep")
        origin = f"sweep={sweep}'s pruner" if sweep else "the config's pruner"
        kept = ", ".join(f"{name}={pruner[name]}" for name in rejected)
        wanted = "{" + ",".join(f"{name}:{value_as_override_text(value)}" for name, value in given.items()) + "}"
        short = str(target).rpartition(".")[2]
        return ConfigError(
            key,
            target,
            f"a pruner and its own arguments, but Hydra merged the command line's pruner into {origin}, which "
            f"left {kept} that {short} does not accept; replace the pruner whole: "
            f"hydra.sweeper.pruner=null 'hydra.sweeper.pruner={wanted}' (hydra.sweeper.pruner=null alone: no pruning)",
        )

    def _app_validate(self) -> Callable[[DictConfig], None] | None:
        """aesweep.config.validate when the app checks its configs with it, else None.

        An app says so by registering aesweep.config.ValidateBeforeRun in hydra.callbacks (train.py's
        conf/config.yaml does), so a sweep checks its trials' configs by the rules a single run obeys.
        Other apps (the tests' torch-free stand-in) have other keys and no such callback.
        """
        from aesweep.config import ValidateBeforeRun, validate

        assert self.config is not None
        for callback in (self.config.hydra.get("callbacks") or {}).values():
            cls = _import_class(callback.get("_target_")) if isinstance(callback, DictConfig) else None
            if isinstance(cls, type) and issubclass(cls, ValidateBeforeRun):
                return validate
        return None

    def plan(self, arguments: list[str]) -> Plan:
        assert self.config is not None and self.hydra_context is not None
        self._check_numbers()
        objectives, directions = self._objectives_and_directions()
        loader = self.hydra_context.config_loader
        config_name, hydra_overrides = self.config.hydra.job.config_name, list(self.config.hydra.overrides.hydra)

        def group_options(name: str) -> list[str]:  # with hydra.searchpath's folders, which the loader alone lacks
            return list(loader.get_group_options(name, config_name=config_name, overrides=hydra_overrides))

        space = parse_search_space(self.params, arguments, group_options)
        if not any(p.searched for p in space):
            raise ConfigError("hydra.sweeper.params", self.params, "at least one choice(), range() or interval()")
        check_against_config(space, self._compose_checked)
        validate = self._app_validate()
        if validate is not None:
            check_trial_configs(space, self._compose_checked, validate)
        if self.n_jobs > 1 and type(self.launcher).__name__ == "BasicLauncher":
            log.warning("hydra.sweeper.n_jobs=%d with Hydra's basic launcher runs each batch's trials one after "
                        "another; for trials at once use hydra/launcher=joblib hydra.launcher.n_jobs=%d (README, "
                        "Parallel trials and several workers)", self.n_jobs, self.n_jobs)
        sampler = self._sampler(space, None)
        pruner = self._pruner()
        if self.pruner_cfg and len(objectives) > 1:
            log.warning("pruning is off: Optuna cannot prune multi-objective studies")
        sweep_dir = Path(os.path.abspath(str(self.config.hydra.sweep.dir)))  # as Hydra's run_job does
        check_creatable(str(sweep_dir), "hydra.sweep.dir")  # before the storage: a refused sweep writes nothing
        storage_url = self._storage_url()
        try:
            storage = open_storage(storage_url)
        except ConfigError as error:
            raise ConfigError("hydra.sweeper.storage", storage_url, error.allowed) from None
        name = self._study_name()
        with claim_lock(storage_url, name):
            try:
                storage.get_study_id_from_name(name)
            except KeyError:
                study = optuna.create_study(
                    storage=storage, sampler=sampler, pruner=pruner, study_name=name, directions=directions
                )
            else:  # loaded, not created: create_study(load_if_exists=True) appends to a journal even then
                study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
                self._check_existing(study, storage_url, objectives, directions, space)
                _warn_changed_fixed(study, fixed_overrides(space))
            recorded_space = study.user_attrs.get(_tables.SEARCH_SPACE_ATTR) or {}
            study.set_user_attr(FIXED_ATTR, fixed_overrides(space))
            study.set_user_attr(PRUNER_ATTR, self.pruner_cfg)
            study.set_user_attr(_tables.OBJECTIVES_ATTR, objectives)
            # Kept for parameters this command does not search: searching one again must not change it.
            study.set_user_attr(
                _tables.SEARCH_SPACE_ATTR, {**recorded_space, **{p.name: p.text for p in space if p.searched}}
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names(objectives)
        return Plan(study, storage, storage_url, space, objectives, sweep_dir)

    def _check_existing(
        self,
        study: optuna.Study,
        storage_url: str,
        objectives: list[str],
        directions: list[str],
        space: list[SearchParam],
    ) -> None:
        """A resumed study must keep its directions, objectives and each parameter's distribution.

        A parameter's distribution is the one recorded in the study (the grammar text of the command
        that first searched it), else the one its latest trial was sampled from. Any change (range,
        choices, step, log scale) is refused: the sampler would model old and new trials as one space
        (Optuna's own check only refuses a change of kind), and trials.csv would mix ranges.
        """
        where = f"study '{study.study_name}' in {storage_url} (or pick a new hydra.sweeper.study_name)"
        existing = [d.name.lower() for d in study.directions]
        if existing != directions:
            raise ConfigError("hydra.sweeper.direction", self.direction, f"{existing} like the existing {where}")
        recorded = study.user_attrs.get(_tables.OBJECTIVES_ATTR)
        if recorded is not None and recorded != objectives:
            raise ConfigError("hydra.sweeper.objective", self.objective, f"{recorded} like the existing {where}")
        latest: dict[str, Any] = {}
        for trial in study.get_trials(deepcopy=False):
            latest.update(trial.distributions)
        recorded_space = study.user_attrs.get(_tables.SEARCH_SPACE_ATTR) or {}
        for param in space:
            if not param.searched:
                continue
            stored_text = recorded_space.get(param.name)
            stored = _distribution(param.name, stored_text) if stored_text is not None else None
            if stored is None:
                stored, stored_text = latest.get(param.name), str(latest.get(param.name))
            if stored is not None and stored != param.distribution:
                raise ConfigError(
                    param.source,
                    param.text,
                    f"{stored_text}, as study '{study.study_name}' in {storage_url} searches it (a changed range, "
                    "choices, step or log scale needs a new hydra.sweeper.study_name)",
                )

    # ---------------------------------------------------------------- claim
    def claim(self, plan: Plan, count: int) -> list[Claim]:
        """Ask up to ``count`` trials, never letting the study exceed n_trials (all workers together)."""
        claims = []
        with claim_lock(plan.storage_url, plan.study.study_name):
            trials = plan.study.get_trials(deepcopy=False)
            fail_stale_trials(plan.storage, trials, self.worker, self.stale_after)
            waiting = sum(t.state == TrialState.WAITING for t in trials)
            free = self.n_trials - len(trials) + waiting
            for _ in range(min(count, free)):
                claim = self._prepare(plan, plan.study.ask())
                if claim is not None:
                    claims.append(claim)
        return claims

    def _prepare(self, plan: Plan, trial: optuna.Trial) -> Claim | None:
        """Record the owner, sample the parameters, build and check the job's overrides."""
        self._reseed(plan, trial)
        plan.storage.set_trial_system_attr(trial._trial_id, WORKER_ATTR, self.worker.as_attr())
        plan.storage.set_trial_system_attr(trial._trial_id, HEARTBEAT_ATTR, time.time())
        run_dir = plan.sweep_dir / str(trial.number)
        trial.set_user_attr("worker", str(self.worker))
        trial.set_user_attr("run_dir", str(run_dir))
        try:
            overrides = self._sample(plan, trial)
        except Exception as error:  # the sampler would fail every trial the same way: stop here
            self._tell(plan, trial, TrialState.FAIL, None, {"reason": f"sampler: {one_line(error)}"})
            raise
        job_overrides = overrides + self._trial_overrides(plan, trial)
        try:
            self.compose(job_overrides)
        except Exception as error:  # this combination of values does not compose: fail just it
            self._tell(plan, trial, TrialState.FAIL, None, {"reason": f"config: {one_line(error)}"})
            return None
        trial.set_user_attr("overrides", overrides)
        return Claim(trial, overrides, job_overrides, run_dir)

    def _sample(self, plan: Plan, trial: optuna.Trial) -> list[str]:
        return trial_overrides(plan.space, lambda param: suggest(trial, param), self.compose)

    def _trial_overrides(self, plan: Plan, trial: optuna.Trial) -> list[str]:
        """What tells the job its trial (aesweep.pruning.TrialReporter reads it) and its folder."""
        overrides = [
            f"++trial.study_name={_quoted(plan.study.study_name)}",
            f"++trial.storage={_quoted(plan.storage_url)}",
            f"++trial.trial_id={trial._trial_id}",
            f"++trial.trial_number={trial.number}",
        ]
        if len(plan.objectives) == 1:
            overrides.append(f"++trial.report={_quoted(plan.objectives[0])}")
        # Name the job's folder after the trial number: unique even when workers share a sweep dir.
        return overrides + [f"hydra.sweep.subdir={trial.number}"]

    # ---------------------------------------------------------------- record
    def _tell(
        self, plan: Plan, trial: optuna.Trial, state: TrialState, values: list[float] | None, attrs: dict[str, Any]
    ) -> TrialState | None:
        """Store the attrs, then close the trial; None if another worker closed it first."""
        try:
            for key, value in attrs.items():
                trial.set_user_attr(key, value)
            plan.study.tell(trial, values=values, state=state)
        except (optuna.exceptions.UpdateFinishedTrialError, ValueError) as error:
            log.warning("trial %d was closed elsewhere (marked stale?): %s", trial.number, error)
            return None
        except RuntimeError as error:
            # Grid and brute-force samplers call study.stop() once the space is exhausted; outside
            # Study.optimize that raises, after the trial was stored. Stop claiming trials.
            if "stop" not in str(error):
                raise
            log.info("the sampler has tried every point of the search space")
            self._exhausted = True
        return state

    def record(
        self, plan: Plan, claim: Claim, job_return: JobReturn | None, launch_error: str | None
    ) -> TrialState | None:
        """Judge one finished job from its metrics.json (and exception) and tell the study."""
        run_dir = claim.run_dir
        if job_return is not None and job_return.hydra_cfg is not None:
            run_dir = Path(job_return.hydra_cfg.hydra.runtime.output_dir)
        metrics, metrics_problem = _read_metrics(run_dir / "metrics.json")
        attrs: dict[str, Any] = {"run_dir": str(run_dir), **_metric_attrs(metrics)}
        state, values, reason = self._judge(plan, claim, job_return, metrics, metrics_problem, launch_error)
        if reason:
            attrs["reason"] = reason
        outcome = self._tell(plan, claim.trial, state, values, attrs)
        shown = ", ".join(f"{v:.4g}" for v in values) if values else reason
        log.info("trial %d %s%s", claim.trial.number, state.name, f" {shown}" if shown else "")
        return outcome

    def _judge(
        self,
        plan: Plan,
        claim: Claim,
        job_return: JobReturn | None,
        metrics: dict[str, Any] | None,
        metrics_problem: str,
        launch_error: str | None,
    ) -> tuple[TrialState, list[float] | None, str | None]:
        if job_return is not None and job_return.status == JobStatus.FAILED:
            error = job_return._return_value  # the public return_value re-raises it
            if not isinstance(error, AesweepError):  # a bug, not a user mistake: keep its traceback
                log.error("trial %d: the job raised", claim.trial.number, exc_info=error)
            return TrialState.FAIL, None, one_line(error)
        if metrics is None:
            return TrialState.FAIL, None, launch_error or metrics_problem
        status = metrics.get("status")
        detail = metrics.get("reason")
        if status == "pruned":
            return TrialState.PRUNED, None, None
        if status == "diverged":
            return TrialState.FAIL, None, f"diverged: {detail or 'the loss became NaN/inf'}"
        if status != "completed":
            return TrialState.FAIL, None, f"{status}: {detail or 'no reason given'}"
        values = []
        for objective in plan.objectives:
            value = lookup_metric(metrics, objective)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                return TrialState.FAIL, None, f"objective {objective} is {value!r} in metrics.json"
            values.append(float(value))
        return TrialState.COMPLETE, values, None

    # ---------------------------------------------------------------- run
    def run(self, arguments: list[str]) -> list[list[JobReturn]]:
        try:
            plan = self.plan(arguments)
        except AesweepError as error:
            _exit(2, f"error: {error}")
        assert self.config is not None
        try:
            plan.sweep_dir.mkdir(parents=True, exist_ok=True)
            OmegaConf.save(self.config, plan.sweep_dir / "multirun.yaml")
        except OSError as error:  # checked in plan(); this catches a folder that went away since
            _exit(2, f"error: {ConfigError('hydra.sweep.dir', str(plan.sweep_dir), one_line(error))}")
        _tables.write_study_yaml(plan.sweep_dir, self._study_info(plan))
        existing = len(plan.study.get_trials(deepcopy=False))
        log.info(
            "study '%s' in %s: %d of %d trials exist", plan.study.study_name, plan.storage_url, existing, self.n_trials
        )
        if existing >= self.n_trials:
            log.info("nothing to run: raise hydra.sweeper.n_trials to continue, or set a new hydra.sweeper.study_name")

        outcomes: dict[int, TrialState | None] = {}  # trial number -> how this command closed it
        returns: list[list[JobReturn]] = []
        deadline = time.monotonic() + self.timeout if self.timeout else math.inf
        with _sigterm_as_interrupt(), Heartbeat(plan.storage, self.heartbeat_interval) as heartbeat:
            while time.monotonic() < deadline and not self._exhausted:
                claims = self.claim(plan, self.n_jobs)
                if not claims:
                    if self._nothing_left(plan):
                        break
                    continue  # every claimed trial failed its config check; claim again
                for claim in claims:
                    heartbeat.add(claim.trial._trial_id)
                batch = self._launch(plan, claims)
                outcomes.update((c.trial.number, self.record(plan, c, r, e)) for c, r, e in batch)
                returns.append([r for _, r, _ in batch if r is not None])
                for claim in claims:
                    heartbeat.discard(claim.trial._trial_id)
                _tables.write_tables(plan.sweep_dir, plan.study, plan.space, plan.objectives)
        self._finish(plan, outcomes)
        return returns

    def _nothing_left(self, plan: Plan) -> bool:
        if self._exhausted:
            return True
        trials = plan.study.get_trials(deepcopy=False)
        return len(trials) >= self.n_trials and not any(t.state == TrialState.WAITING for t in trials)

    def _launch(self, plan: Plan, claims: list[Claim]) -> list[tuple[Claim, JobReturn | None, str | None]]:
        """Run one batch; a launcher failure (a job process died) fails only the batch."""
        try:
            job_returns = list(self.launcher.launch([c.job_overrides for c in claims], initial_job_idx=self._job_index))
            launch_error = None
        except KeyboardInterrupt as interrupt:
            # Jobs that finished before the interrupt keep their result; the others end FAIL.
            why = str(interrupt) or "Ctrl-C"
            for claim in claims:
                self.record(plan, claim, None, f"sweep interrupted ({why})")
            _tables.write_tables(plan.sweep_dir, plan.study, plan.space, plan.objectives)
            # the shell's codes: 128 + the signal (SIGINT 2, SIGTERM 15)
            _exit(143 if why == f"signal {signal.SIGTERM}" else 130,
                  f"error: sweep interrupted ({why}): the running trials are recorded FAIL, finished ones kept; "
                  "run the same command again to continue")
        except Exception as error:
            log.error("launcher failed: %s", one_line(error))
            job_returns, launch_error = [], f"launcher: {one_line(error)}"
        self._job_index += len(claims)
        padded = job_returns + [None] * (len(claims) - len(job_returns))
        return [(claim, job_return, launch_error) for claim, job_return in zip(claims, padded)]

    def _study_info(self, plan: Plan) -> dict[str, Any]:
        return {
            "study_name": plan.study.study_name,
            "storage": plan.storage_url,
            "directions": [d.name.lower() for d in plan.study.directions],
            "objectives": plan.objectives,
            "n_trials": self.n_trials,
            "search_space": {p.name: p.text for p in plan.space if p.searched},
            "fixed": plan.fixed,
        }

    def _finish(self, plan: Plan, outcomes: dict[int, TrialState | None]) -> None:
        """Write the tables, print the summary; exit 1 if every trial this command ran failed."""
        table = _tables.write_tables(plan.sweep_dir, plan.study, plan.space, plan.objectives)
        baseline = _tables.baseline_line(plan.storage, self.baseline_study, plan.study, plan.objectives)
        print(
            _tables.summary(table, plan.study, plan.space, plan.objectives, self.top_k, plan.sweep_dir, baseline),
            flush=True,
        )
        trials = plan.study.get_trials(deepcopy=False)
        ran = {number: state for number, state in outcomes.items() if state is not None}
        if ran and all(state == TrialState.FAIL for state in ran.values()):
            mine = [t for t in trials if t.number in ran]
            _exit(1, f"error: all {len(ran)} trials of this sweep failed: {_tables.fail_reasons(mine)}")
        finished = [t for t in trials if t.state.is_finished()]
        if not ran and finished and all(t.state == TrialState.FAIL for t in finished):
            _exit(1, f"error: every trial of study '{plan.study.study_name}' failed: {_tables.fail_reasons(finished)}")


FIXED_ATTR = "aesweep.fixed"  # study user attribute: the fixed overrides of the command that last ran it


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


# Top-level numbers in every metrics.json besides the val/test/fit sections (aesweep.train.run writes them).
RUN_NUMBERS = ("params", "epochs", "seconds")


def _check_objectives(objectives: list[str], written: Any) -> None:
    """Refuse an objective no run reports, before any trial is spent on it.

    A single objective is also reported to the pruner after every epoch (trial.report), and a job
    reports only its validation metrics then; a multi-objective study is never pruned, so any number
    of the final metrics.json will do.
    """
    validation = [f"val.{name}" for name in METRIC_NAMES]
    final = [f"{split}.{name}" for split in METRIC_SPLITS for name in METRIC_NAMES] + list(RUN_NUMBERS)
    for objective in objectives:
        if len(objectives) == 1 and objective not in validation:
            also = " (test.*, fit.*, params, epochs, seconds only in a list of objectives)" if objective in final else ""
            raise ConfigError(
                "hydra.sweeper.objective",
                written,
                f"a validation metric, reported after every epoch: {', '.join(validation)}{also}",
            )
        if objective not in final:
            splits = "/".join(METRIC_SPLITS)
            raise ConfigError(
                "hydra.sweeper.objective",
                written,
                f"metrics of metrics.json: {splits}.{{{','.join(METRIC_NAMES)}}} or {', '.join(RUN_NUMBERS)}",
            )


def _accepts_argument(cls: Any, name: str) -> bool:
    """Whether calling ``cls`` accepts the keyword argument ``name`` (True when it cannot be told)."""
    try:
        parameters = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.kind == p.VAR_KEYWORD or (p.name == name and p.kind != p.POSITIONAL_ONLY) for p in parameters)


def _distribution(name: str, text: str) -> Any:
    """The Optuna distribution of a recorded grammar text, or None if it no longer parses."""
    try:
        (param,) = parse_search_space({name: text}, [], lambda group: [])  # a group's choice: the same choices
    except (ConfigError, ValueError):
        return None
    return param.distribution


def _import_class(target: Any) -> Any:
    """The object a dotted ``_target_`` names, or None (Hydra's get_class logs its own error)."""
    module_name, _, name = str(target).rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError):
        return None


# Sampler seed s owns the block of per-trial seeds [s * stride, (s + 1) * stride): sweeps with seeds 0, 1, 2
# draw unrelated sequences (with seed + k, seed 1's trial k would repeat seed 0's trial k + 1), and seed 0
# keeps the sequence 0, 1, 2, ... that the shipped sweeps' reference results were measured with.
TRIAL_SEED_STRIDE = 1_000_003


def trial_seed(seed: int, trial_number: int) -> int:
    """The seed of the sampler that proposes trial `trial_number` of a sweep seeded with `seed`."""
    return (seed * TRIAL_SEED_STRIDE + trial_number) % 2**32


def _read_metrics(path: Path) -> tuple[dict[str, Any] | None, str]:
    try:
        return json.loads(path.read_text()), ""
    except FileNotFoundError:
        return None, f"the job wrote no metrics.json in {path.parent}"
    except (OSError, ValueError) as error:
        return None, f"unreadable {path}: {one_line(error)}"


def _metric_attrs(metrics: dict[str, Any] | None) -> dict[str, Any]:
    """The run's val.* and test.* metrics and bookkeeping, flattened into trial user attrs."""
    if not metrics:
        return {}
    attrs: dict[str, Any] = {}
    for section in ("val", "test"):
        for key, value in (metrics.get(section) or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                attrs[f"{section}.{key}"] = value if math.isfinite(value) else None
    for key in ("status", "epochs", "epochs_planned", "seconds", "params"):
        if key in metrics:
            attrs[key] = metrics[key]
    return attrs
