"""Refuse, before the first trial, a sweep whose trials the app's config check would fail.

The app's check (``aesweep.config.validate``) runs on each job's composed config, so without this a
typo in a fixed override (``model.activation=swish``) fails every trial and burns the study's
budget, and a ``choice()`` value that conflicts with the fixed config (``model.bottleneck:
choice(10, 16, 32)`` under the argmax readout, which needs bottleneck == eval.n_clusters) fails
every trial that draws it.

A searched value can make a fixed config valid (the fixed ``loss.recon_weight=0`` with a searched
``loss.iic_weight``), so the check composes whole trial configs: the fixed overrides plus one value
per searched parameter, taken from ``probe_values`` (every choice; a range's values, or its ends and
middle when it has many; an interval's ends and middle). Refusing needs certainty, one of:

* every combination of probe values failed, and the probe values were all of each parameter's values;
* the start and every one-parameter change of it (each choice; each range's ends and middle) failed
  with the *same* message, which names none of the parameters being varied. validate()'s messages
  name the refused key and show the values the refusal depends on (its "some loss weight > 0" rule
  is passed at a searched weight's upper end if at all), so a message that no single searched change
  alters is the fixed config's own (the typo case): no trial can pass it.

Anything less (the probes found no valid config, but the space was too large to try whole) refuses
nothing; those trials fail one by one with the check's reason, as they would without this module.
Passing configs are found at the first probe in practice, so a valid sweep costs one composition
per choice value.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from aesweep.errors import ConfigError, one_line

from ._search_space import ComposeFn, SearchParam, trial_overrides

ValidateFn = Callable[[DictConfig], None]

# A range with at most this many values is probed at every value (exactly); a longer one at its ends
# and middle.
ENUMERATE_UP_TO = 16
# Compositions tried beyond the one-parameter changes, for one question ("can anything pass?", "can
# this choice pass?"), before giving up without refusing; each costs one Hydra composition of a job's config.
MAX_PROBES = 64

# The key of a ConfigError for overrides Hydra cannot compose (the sweeper's, and this module's).
COMPOSE_KEY = "overrides"

Assignment = dict[str, Any]  # parameter name -> value


def probe_values(param: SearchParam) -> tuple[list[Any], bool]:
    """The values of a searched parameter the check tries, and whether they are all its values."""
    dist = param.distribution
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices), True
    if isinstance(dist, IntDistribution):
        count = (dist.high - dist.low) // dist.step + 1
        if count <= ENUMERATE_UP_TO:
            return list(range(dist.low, dist.high + 1, dist.step)), True
        middle = math.sqrt(dist.low * dist.high) if dist.log else (dist.low + dist.high) / 2
        middle = dist.low + round((middle - dist.low) / dist.step) * dist.step
        return _distinct([dist.low, middle, dist.high]), False
    if isinstance(dist, FloatDistribution):
        if dist.step is not None:
            count = int(round((dist.high - dist.low) / dist.step)) + 1
            if count <= ENUMERATE_UP_TO:
                return [dist.low + i * dist.step for i in range(count)], True
            middle = dist.low + round((count - 1) / 2) * dist.step
        else:
            middle = math.sqrt(dist.low * dist.high) if dist.log else (dist.low + dist.high) / 2
        return _distinct([dist.low, middle, dist.high]), False
    raise TypeError(f"unsupported distribution {dist!r}")


def _distinct(values: list[Any]) -> list[Any]:
    return list(dict.fromkeys(values))


class _Prober:
    """Composes and checks trial configs for assignments of the searched parameters."""

    def __init__(self, space: list[SearchParam], compose: ComposeFn, validate: ValidateFn) -> None:
        self.space = space
        self.searched = [p for p in space if p.searched]
        self.values = {p.name: probe_values(p) for p in self.searched}
        self.compose = compose
        self.validate = validate
        self._composed: dict[tuple[str, ...], DictConfig] = {}  # by the groups' options: one each

    def overrides(self, assignment: Assignment) -> list[str]:
        """A trial's overrides, as the sweeper samples them."""
        return trial_overrides(self.space, lambda param: assignment[param.name], self._compose_once)

    def _compose_once(self, overrides: list[str]) -> DictConfig:
        if tuple(overrides) not in self._composed:
            self._composed[tuple(overrides)] = self.compose(overrides)
        return self._composed[tuple(overrides)]

    def error(self, assignment: Assignment) -> ConfigError | None:
        """The check's error for this trial config, or None when it passes."""
        try:
            config = self.compose(self.overrides(assignment))
        except Exception as error:  # a combination Hydra cannot compose fails its trial too
            return error if isinstance(error, ConfigError) else ConfigError(COMPOSE_KEY, assignment, one_line(error))
        try:
            self.validate(config)
        except ConfigError as error:
            return error
        return None

    def search(self, start: Assignment, free: list[SearchParam]) -> tuple[Assignment | None, ConfigError | None, bool]:
        """A passing assignment that differs from ``start`` only in ``free`` parameters.

        Returns (assignment, None, False) when one passes; else (None, the start's error, whether
        no assignment can pass: see the module docstring).
        """
        nearby = [start] + [
            {**start, p.name: value} for p in free for value in self.values[p.name][0] if value != start[p.name]
        ]
        names = [p.name for p in free]
        rest = (
            {**start, **dict(zip(names, combination))}
            for combination in itertools.product(*(self.values[name][0] for name in names))
            if sum(start[name] != value for name, value in zip(names, combination)) > 1
        )
        first: ConfigError | None = None
        same = True
        for assignment in nearby:
            error = self.error(assignment)
            if error is None:
                return assignment, None, False
            first = first or error
            same = same and _gist(error) == _gist(first)
        assert first is not None
        if same and first.key not in names:
            return None, first, True
        tried = len(nearby)
        for assignment in itertools.islice(rest, MAX_PROBES):
            if self.error(assignment) is None:
                return assignment, None, False
            tried += 1
        total = math.prod(len(self.values[name][0]) for name in names)
        every_value = all(self.values[name][1] for name in names)
        return None, first, every_value and tried == total


def _gist(error: ConfigError) -> str:
    """What an error says, less the trial's own overrides when it is Hydra's (they always differ)."""
    return error.allowed if error.key == COMPOSE_KEY else str(error)


def check_trial_configs(space: list[SearchParam], compose: ComposeFn, validate: ValidateFn) -> None:
    """Raise ConfigError when no trial can pass ``validate``, or when a choice value never can.

    ``compose(overrides)`` composes a job's config; ``validate(config)`` raises ConfigError.
    """
    prober = _Prober(space, compose, validate)
    start = {p.name: prober.values[p.name][0][0] for p in prober.searched}
    passing, error, certain = prober.search(start, prober.searched)
    if passing is None:
        if certain:
            assert error is not None
            raise error  # the fixed config fails whatever the searched values: the app's own words
        return
    for param in prober.searched:
        if not isinstance(param.distribution, CategoricalDistribution):
            continue
        others = [p for p in prober.searched if p is not param]
        never: list[tuple[str, ConfigError]] = []
        for index, value in enumerate(param.distribution.choices):
            if value == passing[param.name]:
                continue
            found, error, certain = prober.search({**passing, param.name: value}, others)
            if found is None and certain:
                assert error is not None
                never.append((param.choice_texts[index], error))
        if never:
            shown = ", ".join(text for text, _ in never)
            raise ConfigError(
                param.source,
                param.text,
                f"choices that can pass the config check; {shown} cannot with the rest of the sweep ({never[0][1]})",
            )
