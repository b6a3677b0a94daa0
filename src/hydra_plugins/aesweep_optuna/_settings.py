"""The sweeper's settings (``hydra.sweeper.*``) as plain values, each checked, and the sampler and pruner they build."""

from __future__ import annotations

import importlib
import inspect
import warnings
from dataclasses import dataclass
from typing import Any

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from aesweep import record
from aesweep.errors import ConfigError, one_line
from aesweep.trial import STATISTICS, checked_pruner

from ._search_space import SearchParam, grid_search_space, value_as_override_text

DIRECTIONS = ("maximize", "minimize")
DISPATCH_MODES = ("async", "batch")
PRUNER_KEY = "hydra.sweeper.pruner"

# Sampler seed s owns the block of per-trial seeds [s * stride, (s + 1) * stride): sweeps with seeds 0, 1, 2
# draw unrelated sequences (with seed + k, seed 1's trial k would repeat seed 0's trial k + 1), and seed 0
# keeps the sequence 0, 1, 2, ... that the shipped sweeps' reference results were measured with.
TRIAL_SEED_STRIDE = 1_000_003


def plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value


@dataclass
class SweepSettings:
    """``hydra.sweeper.*`` (see ``config.AesweepOptunaSweeperConf`` for each key's meaning)."""

    sampler: Any
    pruner: Any
    direction: Any
    objective: Any
    study_name: str | None
    storage: str | None
    n_trials: int
    n_jobs: int
    timeout: float | None
    params: dict[str, Any]
    baseline_study: str | None
    heartbeat_interval: float
    stale_after: float
    top_k: int
    dispatch: str = "async"
    seeds: list[int] | None = None
    seed_statistic: str = "mean"
    confirm: Any = None
    baseline_overrides: list[str] | None = None
    custom_search_space: str | None = None
    search_space: Any = None
    max_failure_rate: float | None = None
    progress: Any = "auto"

    def __post_init__(self) -> None:
        self.sampler, self.pruner = plain(self.sampler), plain(self.pruner)
        self.direction, self.objective = plain(self.direction), plain(self.objective)
        self.params = plain(self.params) or {}
        self.search_space = plain(self.search_space)
        self.seeds, self.baseline_overrides = plain(self.seeds), plain(self.baseline_overrides)
        confirm = plain(self.confirm) or {}
        self.confirm_seeds: list[int] = list(confirm.get("seeds") or [])
        self.confirm_top_k = confirm.get("top_k", 1)

    def check_seeds(self, config_seed: Any) -> None:
        """The seeds a trial runs on, their statistic and the confirmation's seeds; refused in one line."""
        if self.seeds is not None:
            _check_seed_list("hydra.sweeper.seeds", self.seeds, allow_empty=False)
        if self.seed_statistic not in STATISTICS:
            raise ConfigError("hydra.sweeper.seed_statistic", self.seed_statistic, "one of: " + ", ".join(STATISTICS))
        _check_seed_list("hydra.sweeper.confirm.seeds", self.confirm_seeds, allow_empty=True)
        searched = list(self.seeds) if self.seeds is not None else [config_seed]
        overlap = sorted(set(self.confirm_seeds) & set(searched))
        if overlap:
            where = "hydra.sweeper.seeds" if self.seeds is not None else "the config's seed"
            raise ConfigError("hydra.sweeper.confirm.seeds", self.confirm_seeds,
                              f"fresh seeds the search never used; {', '.join(map(str, overlap))} "
                              f"{'is' if len(overlap) == 1 else 'are'} in {where} {searched}")
        top_k = self.confirm_top_k
        if not (isinstance(top_k, int) and not isinstance(top_k, bool) and top_k >= 1):
            raise ConfigError("hydra.sweeper.confirm.top_k", top_k, "a whole number >= 1")
        if self.baseline_overrides is not None and not (
                isinstance(self.baseline_overrides, list) and all(isinstance(o, str) for o in self.baseline_overrides)):
            raise ConfigError("hydra.sweeper.baseline_overrides", self.baseline_overrides,
                              "a list of overrides, e.g. [model=blog, loss=mse], or null")

    def check_numbers(self) -> None:
        def need(key: str, value: Any, ok: bool, allowed: str) -> None:
            if not ok:
                raise ConfigError(f"hydra.sweeper.{key}", value, allowed)

        whole = lambda v: isinstance(v, int) and not isinstance(v, bool)  # noqa: E731
        need("n_trials", self.n_trials, whole(self.n_trials) and self.n_trials >= 1, "a whole number >= 1")
        need("n_jobs", self.n_jobs, whole(self.n_jobs) and self.n_jobs >= 1, "a whole number >= 1")
        need("timeout", self.timeout, self.timeout is None or self.timeout > 0, "seconds > 0, or null")
        need("top_k", self.top_k, whole(self.top_k) and self.top_k >= 1, "a whole number >= 1")
        need("heartbeat_interval", self.heartbeat_interval, self.heartbeat_interval > 0, "seconds > 0")
        need("stale_after", self.stale_after, self.stale_after >= 3 * self.heartbeat_interval,
             f"seconds >= 3 x heartbeat_interval ({3 * self.heartbeat_interval:g})")
        need("dispatch", self.dispatch, self.dispatch in DISPATCH_MODES, "one of: " + ", ".join(DISPATCH_MODES))
        need("progress", self.progress, self.progress == "auto" or isinstance(self.progress, bool), "auto, true or false")
        rate = self.max_failure_rate
        need("max_failure_rate", rate, rate is None or (isinstance(rate, (int, float)) and 0 <= rate <= 1),
             "a fraction in [0, 1], or null (never stop for failed trials)")

    def objectives_and_directions(self, app_objective: str | None) -> tuple[list[str] | None, list[str]]:
        """The objective metric paths (None: the task function's return values) and one direction each."""
        objective, direction = self.objective, self.direction
        directions = [direction] if isinstance(direction, str) else list(direction or [])
        if objective is None and app_objective is None:  # the official plugin's way: what the task returns
            if not directions or any(d not in DIRECTIONS for d in directions):
                raise ConfigError("hydra.sweeper.direction", direction, "maximize or minimize, or a list of them")
            return None, directions
        objective = app_objective if objective is None else objective
        objectives = [objective] if isinstance(objective, str) else list(objective or [])
        if not objectives or not all(isinstance(o, str) and o for o in objectives):
            raise ConfigError("hydra.sweeper.objective", objective,
                              f"a metric path like {record.DEFAULT_OBJECTIVE}, or a list of them")
        problem = record.objective_problem(objectives)
        if problem:
            raise ConfigError("hydra.sweeper.objective", objective, problem)
        if len(directions) == 1 and len(objectives) > 1:
            raise ConfigError("hydra.sweeper.direction", direction, f"one direction per objective {objectives}")
        if len(directions) != len(objectives) or any(d not in DIRECTIONS for d in directions):
            raise ConfigError("hydra.sweeper.direction", direction,
                              f"maximize or minimize, one per objective {objectives}")
        return objectives, directions

    def build_sampler(self, space: list[SearchParam], seed: int | None = None) -> optuna.samplers.BaseSampler:
        """The configured sampler; ``seed`` replaces the configured seed (see ``trial_sampler``)."""
        cfg = dict(self.sampler or {"_target_": "optuna.samplers.TPESampler"})
        target = cfg.get("_target_")
        cls = import_class(target)
        if not (isinstance(cls, type) and issubclass(cls, optuna.samplers.BaseSampler)):
            raise ConfigError("hydra.sweeper.sampler._target_", target,
                              "an optuna.samplers class, e.g. optuna.samplers.TPESampler")
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

    def trial_sampler(self, space: list[SearchParam], trial_number: int) -> optuna.samplers.BaseSampler | None:
        """With a configured seed, the sampler that proposes trial k, seeded with ``trial_seed(seed, k)``.

        A sequential sweep stays reproducible, while a resumed sweep or a second worker does not replay
        the first trials' random draws (which would repeat their parameters). None: keep the study's.
        """
        seed = (self.sampler or {}).get("seed")
        cls = import_class((self.sampler or {}).get("_target_"))
        # GridSampler's seed shuffles the grid, and a trial's grid point is an index into that order:
        # every trial must see the same order, or points repeat and others are never run. QMCSampler's seed
        # scrambles its sequence, whose next point the study counts: a seed per trial would take the first
        # point of a new sequence each time, a random search. Both replay nothing on resuming as they are.
        if seed is None or (isinstance(cls, type) and issubclass(cls, (optuna.samplers.GridSampler,
                                                                        optuna.samplers.QMCSampler))):
            return None
        return self.build_sampler(space, trial_seed(int(seed), trial_number))

    def build_pruner(self, hydra_overrides: list[str], sweep_choice: str | None) -> optuna.pruners.BasePruner:
        try:
            return checked_pruner(self.pruner, PRUNER_KEY)
        except ConfigError as error:
            raise (self._pruner_merge_error(hydra_overrides, sweep_choice) or error) from None

    def _pruner_merge_error(self, hydra_overrides: list[str], sweep_choice: str | None) -> ConfigError | None:
        """Say so when a command-line pruner was merged into the config file's and got arguments it rejects.

        Hydra merges ``hydra.sweeper.pruner={...}`` into the sweep file's pruner dict, keeping the file's
        keys that the new dict does not set: ``{_target_: MedianPruner}`` over SuccessiveHalvingPruner's
        ``min_resource: 1`` builds MedianPruner(min_resource=1).
        """
        given: dict[str, Any] = {}  # what the command line set, since the last pruner=null
        from_file = True
        parser = OverridesParser.create()
        for line in hydra_overrides:
            try:
                override = parser.parse_override(str(line))
            except Exception:  # Hydra parsed it before us; never mind the odd one
                continue
            if override.key_or_group == PRUNER_KEY and not override.is_delete():
                value = override.value()
                if value is None:
                    given, from_file = {}, False
                elif isinstance(value, dict):
                    given.update(value)
            elif override.key_or_group.startswith(PRUNER_KEY + "."):
                given[override.key_or_group[len(PRUNER_KEY) + 1:].split(".")[0]] = override.value()
        pruner = self.pruner if isinstance(self.pruner, dict) else {}
        target = pruner.get("_target_")
        left = [name for name in pruner if name not in given and name != "_target_"]
        rejected = [name for name in left if not _accepts_argument(import_class(target), name)]
        if not (from_file and given and rejected):
            return None
        origin = f"sweep={sweep_choice}'s pruner" if sweep_choice else "the config's pruner"
        kept = ", ".join(f"{name}={pruner[name]}" for name in rejected)
        wanted = "{" + ",".join(f"{name}:{value_as_override_text(value)}" for name, value in given.items()) + "}"
        short = str(target).rpartition(".")[2]
        return ConfigError(
            PRUNER_KEY, target,
            f"a pruner and its own arguments, but Hydra merged the command line's pruner into {origin}, which "
            f"left {kept} that {short} does not accept; replace the pruner whole: "
            f"hydra.sweeper.pruner=null 'hydra.sweeper.pruner={wanted}' (hydra.sweeper.pruner=null alone: no pruning)",
        )


def _check_seed_list(key: str, seeds: Any, allow_empty: bool) -> None:
    whole = isinstance(seeds, list) and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
    if not whole or (not seeds and not allow_empty):
        raise ConfigError(key, seeds, "a non-empty list of seeds (whole numbers >= 0), e.g. [0, 1, 2]"
                          + (", or null" if not allow_empty else ""))
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise ConfigError(key, seeds, f"distinct seeds ({', '.join(map(str, repeated))} repeated)")


def trial_seed(seed: int, trial_number: int) -> int:
    """The seed of the sampler that proposes trial `trial_number` of a sweep seeded with `seed`."""
    return (seed * TRIAL_SEED_STRIDE + trial_number) % 2**32


def import_class(target: Any) -> Any:
    """The object a dotted ``_target_`` names, or None (Hydra's get_class logs its own error)."""
    module_name, _, name = str(target).rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError):
        return None


def _accepts_argument(cls: Any, name: str) -> bool:
    """Whether calling ``cls`` accepts the keyword argument ``name`` (True when it cannot be told)."""
    try:
        parameters = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.kind == p.VAR_KEYWORD or (p.name == name and p.kind != p.POSITIONAL_ONLY) for p in parameters)
