"""Refuse, before the first trial, a sweep whose trials the app's own config check would fail.

The app checks each job's composed config (``check_config`` of its Hydra callback), so without this a
typo in a fixed override (``model.activation=swish``) fails every trial and burns the study's budget, and
a ``choice()`` value that conflicts with the fixed config (``model.bottleneck: choice(10, 16)`` under the
argmax readout, which needs bottleneck == eval.n_clusters) fails every trial that draws it.

A searched value can make a fixed config valid (a fixed ``loss.recon_weight=0`` with a searched
``loss.iic_weight``), so whole trial configs are composed: a start (each searched parameter at its first
probe value) and every change of one parameter from it (each choice; a range's or an interval's ends and
middle). A refusal needs certainty: all of them failed with the *same* message, and that message names
none of the parameters being varied (the app's messages name the refused key and show the values the
refusal depends on), so no searched value alters it. Anything less refuses nothing: those trials fail one
by one with the check's reason. A valid sweep costs about one composition per choice value.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from aesweep.errors import ConfigError, one_line

from ._search_space import ComposeFn, SearchParam, trial_overrides

ValidateFn = Callable[[DictConfig], None]
Assignment = dict[str, Any]  # parameter name -> value

COMPOSE_KEY = "overrides"  # the key of a ConfigError for overrides Hydra cannot compose


def probe_values(param: SearchParam) -> list[Any]:
    """The values of a searched parameter the check tries: every choice; a range's or interval's ends and middle."""
    dist = param.distribution
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    if isinstance(dist, (IntDistribution, FloatDistribution)):
        middle = math.sqrt(dist.low * dist.high) if dist.log else (dist.low + dist.high) / 2
        if dist.step is not None:
            middle = dist.low + round((middle - dist.low) / dist.step) * dist.step
        if isinstance(dist, IntDistribution):
            middle = int(middle)
        return list(dict.fromkeys([dist.low, middle, dist.high]))
    raise TypeError(f"unsupported distribution {dist!r}")


def check_trial_configs(space: list[SearchParam], compose: ComposeFn, validate: ValidateFn) -> None:
    """Raise ConfigError when no trial can pass ``validate``, or when a choice value never can."""
    searched = [p for p in space if p.searched]
    values = {p.name: probe_values(p) for p in searched}
    composed: dict[tuple[str, ...], DictConfig] = {}

    def compose_once(overrides: list[str]) -> DictConfig:  # the groups' options, composed once each
        if tuple(overrides) not in composed:
            composed[tuple(overrides)] = compose(overrides)
        return composed[tuple(overrides)]

    def error(assignment: Assignment) -> ConfigError | None:
        try:
            config = compose(trial_overrides(space, lambda p: assignment[p.name], compose_once))
            validate(config)
        except ConfigError as refused:
            return refused
        except Exception as failed:  # a combination Hydra cannot compose fails its trial too
            return ConfigError(COMPOSE_KEY, assignment, one_line(failed))
        return None

    def passing_near(start: Assignment, free: list[SearchParam]) -> tuple[Assignment | None, ConfigError | None]:
        """An assignment that passes, from ``start`` and its one-parameter changes in ``free``; else None and,
        when no searched value can alter the refusal, the error every one of them shares."""
        nearby = [start] + [{**start, p.name: v} for p in free for v in values[p.name] if v != start[p.name]]
        refusals = []
        for assignment in nearby:
            refused = error(assignment)
            if refused is None:
                return assignment, None
            refusals.append(refused)
        first = refusals[0]
        certain = all(_gist(r) == _gist(first) for r in refusals) and first.key not in {p.name for p in free}
        return None, first if certain else None

    passing, refused = passing_near({p.name: values[p.name][0] for p in searched}, searched)
    if passing is None:
        if refused is not None:
            raise refused  # the fixed config fails whatever the searched values: the app's own words
        return
    for param in searched:
        if not isinstance(param.distribution, CategoricalDistribution):
            continue
        others = [p for p in searched if p is not param]
        never = []
        for index, value in enumerate(param.distribution.choices):
            if value != passing[param.name]:
                found, refused = passing_near({**passing, param.name: value}, others)
                if found is None and refused is not None:
                    never.append((param.choice_texts[index], refused))
        if never:
            shown = ", ".join(text for text, _ in never)
            raise ConfigError(param.source, param.text, f"choices that can pass the config check; {shown} cannot "
                                                        f"with the rest of the sweep ({never[0][1]})")


def _gist(error: ConfigError) -> str:
    """What an error says, less the trial's own overrides when it is Hydra's (they always differ)."""
    return error.allowed if error.key == COMPOSE_KEY else str(error)
