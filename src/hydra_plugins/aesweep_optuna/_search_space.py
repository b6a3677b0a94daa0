"""Hydra's override grammar -> Optuna distributions, checked against the composed config.

    choice(a, b, c)  or  a,b,c       CategoricalDistribution([a, b, c])
    range(lo, hi[, step])            IntDistribution(lo, last value, step); FloatDistribution if any
                                     of lo/hi/step is a float (Python's range: hi is excluded)
    tag(log, range(lo, hi))          IntDistribution(lo, hi - 1, log=True)      (step 1 only)
    interval(lo, hi)                 FloatDistribution(lo, hi), both ends included (Hydra's
                                     interval is always float, even interval(1, 10))
    tag(int, interval(lo, hi))       IntDistribution(lo, hi), both ends included
    tag(log, interval(lo, hi))       the same on a log scale (lo > 0); tag(log, int, ...) for ints
    anything else                    a fixed override, passed to every job unchanged

A parameter whose key is a config group (``model``, ``optimizer``) picks the group's option; a
value parameter that exists only under some options (``optimizer.momentum`` for sgd, not adam)
is suggested only in trials whose composed config has that key.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import (
    ChoiceSweep,
    IntervalSweep,
    Override,
    QuotedString,
    RangeSweep,
    Transformer,
)
from hydra.errors import HydraException
from omegaconf import DictConfig, ListConfig, OmegaConf
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from aesweep.keys import dotted_keys, node_exists
from aesweep.errors import ConfigError

ALLOWED_TAGS = ("log", "int")

ComposeFn = Callable[[list[str]], DictConfig]


@dataclass(frozen=True)
class SearchParam:
    """One entry of the search space: a searched distribution or a fixed override."""

    key: str  # the override key as written, with its +/++ prefix if any
    text: str  # the value as written: "tag(log, interval(1e-4, 1e-1))", "conv", ...
    source: str  # where it was written, for error lines: hydra.sweeper.params.<key> or <key>
    distribution: BaseDistribution | None = None  # None: a fixed override
    choice_texts: tuple[str, ...] = ()  # override text of each categorical choice, in order
    is_group: bool = False  # key names a config group (model=conv) rather than a value
    line: str = ""  # the fixed override exactly as written

    @property
    def name(self) -> str:
        """The Optuna parameter name, also the trials.csv column: the key without + prefixes."""
        return self.key.lstrip("+")

    @property
    def searched(self) -> bool:
        return self.distribution is not None

    def override(self, value: Any = None) -> str:
        """The override line a job gets for this parameter (``value``: the sampled value)."""
        if self.distribution is None:
            return self.line
        if isinstance(self.distribution, CategoricalDistribution):
            return f"{self.key}={self.choice_texts[int(self.distribution.to_internal_repr(value))]}"
        return f"{self.key}={Transformer.str(value)}"


def value_as_override_text(value: Any) -> str:
    """A YAML value from ``params:`` as override grammar text (strings are grammar already)."""
    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value, resolve=False)
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return Transformer.str(value)


def parse_search_space(
    params: Mapping[str, Any] | None, arguments: Sequence[str], group_options: Callable[[str], list[str]]
) -> list[SearchParam]:
    """Parse ``hydra.sweeper.params`` and the command line's overrides into one search space.

    A command-line override replaces a ``params`` entry with the same key. ``group_options(name)``
    lists a config group's options (empty when ``name`` is not a group).
    """
    entries: dict[str, tuple[str, str]] = {}  # key without prefix -> (line, source)
    for key, value in (params or {}).items():
        entries[str(key).lstrip("+~")] = (f"{key}={value_as_override_text(value)}", f"hydra.sweeper.params.{key}")
    for line in arguments:
        key = line.split("=", 1)[0].lstrip("+~")
        entries.pop(key, None)
        entries[key] = (line, key)

    parser = OverridesParser.create()
    space = []
    for line, source in entries.values():
        text = line.split("=", 1)[1] if "=" in line else ""
        try:
            override = parser.parse_override(line)
        except HydraException as error:
            raise ConfigError(source, text, _hydra_message(error)) from None
        space.append(_to_param(override, line, text, source, group_options))
    return space


def _hydra_message(error: Exception) -> str:
    message = " ".join(str(error).split())
    return message.replace("ValueError while evaluating", "cannot evaluate")


def _to_param(
    override: Override, line: str, text: str, source: str, group_options: Callable[[str], list[str]]
) -> SearchParam:
    key = override.get_key_element()
    if override.is_hydra_override():
        raise ConfigError(source, text, "hydra.* settings cannot be searched; set them in the sweep file")
    options = group_options(override.key_or_group)
    is_group = bool(options)
    if not override.is_sweep_override():
        if is_group and not override.is_delete():
            _check_options(source, text, [override.value()], options)
        return SearchParam(key=key, text=text, source=source, is_group=is_group, line=line)
    if override.is_delete():
        raise ConfigError(source, text, "a deletion (~key) cannot be searched")

    sweep = override.value()
    unknown_tags = sorted(set(sweep.tags) - set(ALLOWED_TAGS))
    if unknown_tags:
        raise ConfigError(source, text, f"tags {', '.join(ALLOWED_TAGS)} (unknown: {', '.join(unknown_tags)})")
    if isinstance(sweep, ChoiceSweep):
        if sweep.tags:
            raise ConfigError(source, text, "tags apply to interval() and range(), not choice()")
        values, texts = _choices(sweep.list, source, text)
        if is_group:
            _check_options(source, text, values, options)
        distribution: BaseDistribution = CategoricalDistribution(values)
        return SearchParam(key, text, source, distribution, tuple(texts), is_group)
    if is_group:
        raise ConfigError(source, text, f"choice() of the group's options {', '.join(options)}")
    if isinstance(sweep, RangeSweep):
        return SearchParam(key, text, source, _range_distribution(sweep, source, text))
    if isinstance(sweep, IntervalSweep):
        return SearchParam(key, text, source, _interval_distribution(sweep, "int" in sweep.tags, source, text))
    raise ConfigError(source, text, "choice(), range(), interval() or tag(log|int, ...) of them")


def _choices(elements: list[Any], source: str, text: str) -> tuple[list[Any], list[str]]:
    """Optuna's choices (plain values; lists/dicts as their override text) and each override text."""
    values, texts = [], []
    for element in elements:
        element_text = Transformer.str(element)
        if isinstance(element, QuotedString):
            value: Any = element.text
        elif element is None or isinstance(element, (bool, int, float, str)):
            value = element
        else:
            value = element_text
        if value in values:  # Optuna finds a choice by ==, so true and 1 (false, 0 and 0.0) are one choice to it
            earlier, shown = value_as_override_text(values[values.index(value)]), value_as_override_text(value)
            same = "is listed twice" if earlier == shown else f"equals {earlier}, listed before it"
            raise ConfigError(source, text, f"distinct choices ({shown} {same})")
        values.append(value)
        texts.append(element_text)
    return values, texts


def _check_options(source: str, text: str, values: list[Any], options: list[str]) -> None:
    for value in values:
        if value not in options:
            raise ConfigError(source, text, f"options of this config group: {', '.join(options)} (not {value})")


FLOAT_DIGITS = 12  # a float range's values are rounded to this many decimals: far below any step, above rounding


def _range_distribution(sweep: RangeSweep, source: str, text: str) -> BaseDistribution:
    values = list(sweep.range())
    if not values:
        raise ConfigError(source, text, "a range with at least one value (start < stop for a positive step)")
    low, high, step = min(values), max(values), abs(sweep.step)
    log = "log" in sweep.tags
    if log and (step != 1 or low <= 0):
        raise ConfigError(source, text, "tag(log, range(lo, hi)) needs lo > 0 and step 1")
    if all(isinstance(v, int) for v in (sweep.start, sweep.stop, sweep.step)):
        return IntDistribution(int(low), int(high), log=log, step=1 if log else int(step))
    if log:
        raise ConfigError(source, text, "tag(log, ...) on float steps: use tag(log, interval(lo, hi))")
    # Hydra's float range accumulates rounding (0 + 3 * 0.3 = 0.8999999999999999), and Optuna cuts a high off
    # the step's grid down to the step below (0.6): the last value, rounded back onto the grid, is the high.
    return FloatDistribution(float(low), round(float(high), FLOAT_DIGITS), step=float(step))


def _interval_distribution(sweep: IntervalSweep, as_int: bool, source: str, text: str) -> BaseDistribution:
    low, high = float(sweep.start), float(sweep.end)
    log = "log" in sweep.tags
    if not low < high:
        raise ConfigError(source, text, "interval(lo, hi) with lo < hi")
    if log and low <= 0:
        raise ConfigError(source, text, "tag(log, interval(lo, hi)) with lo > 0 (a log scale has no zero)")
    if as_int:
        if not (low.is_integer() and high.is_integer()):
            raise ConfigError(source, text, "whole-number bounds for an integer interval")
        return IntDistribution(int(low), int(high), log=log)
    return FloatDistribution(low, high, log=log)


def fixed_overrides(space: list[SearchParam]) -> list[str]:
    """The overrides every trial shares: the sweep's and the command line's that are not searched."""
    return [p.override() for p in space if not p.searched]


def trial_overrides(space: list[SearchParam], value_of: Callable[[SearchParam], Any], compose: ComposeFn) -> list[str]:
    """One trial's overrides: the fixed ones, each searched group's option, then each searched value whose
    key exists under the chosen options (a key only some options have is left out under the others).

    ``value_of(param)`` gives a searched parameter's value (the sampler's suggestion), called groups first.
    """
    searched = [p for p in space if p.searched]
    groups = [p.override(value_of(p)) for p in searched if p.is_group]
    config = compose(fixed_overrides(space) + groups) if groups else None
    values = [
        p.override(value_of(p))
        for p in searched
        if not p.is_group and (config is None or p.key.startswith("+") or node_exists(config, p.key))
    ]
    return fixed_overrides(space) + groups + values


def check_against_config(space: list[SearchParam], compose: ComposeFn) -> None:
    """Check every key against the composed config, before any trial starts.

    ``compose(overrides)`` composes a job's config. A key must exist in the config composed with
    the fixed overrides, or under some option of a searched group; ``+key`` adds a new key.
    """
    fixed = fixed_overrides(space)
    base = compose(fixed)
    searched_groups = [p for p in space if p.searched and p.is_group]
    variants: list[DictConfig] = []  # the config under each option of each searched group, on demand

    def configs() -> Iterator[DictConfig]:
        yield base
        if not variants:
            for group in searched_groups:
                for choice_text in group.choice_texts:
                    variants.append(compose(fixed + [f"{group.key}={choice_text}"]))
        yield from variants

    for param in space:
        if param.is_group or param.key.startswith("+"):
            continue
        if not any(node_exists(cfg, param.key) for cfg in configs()):
            close = difflib.get_close_matches(param.key, dotted_keys(base), n=3)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            raise ConfigError(
                param.source, param.text, f"{param.key} is not a config key; {hint}write +{param.key} to add a new key"
            )


def grid_search_space(space: list[SearchParam]) -> dict[str, list[Any]]:
    """GridSampler's search_space from the searched params (choices and ranges only)."""
    grid = {}
    for param in space:
        dist = param.distribution
        if dist is None:
            continue
        if isinstance(dist, CategoricalDistribution):
            grid[param.name] = list(dist.choices)
        elif isinstance(dist, IntDistribution) and not dist.log:
            grid[param.name] = list(range(dist.low, dist.high + 1, dist.step))
        elif isinstance(dist, FloatDistribution) and dist.step is not None:
            count = int(round((dist.high - dist.low) / dist.step)) + 1
            grid[param.name] = [dist.low + i * dist.step for i in range(count)]
        else:
            raise ConfigError(
                param.source,
                param.text,
                "choice() or range(): grid and brute-force samplers cannot enumerate an interval",
            )
    return grid


def suggest(trial: Any, param: SearchParam) -> Any:
    """Ask the trial for this parameter through Optuna's public suggest API."""
    dist = param.distribution
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(param.name, dist.choices)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(param.name, dist.low, dist.high, step=dist.step, log=dist.log)
    if isinstance(dist, FloatDistribution):
        return trial.suggest_float(param.name, dist.low, dist.high, step=dist.step, log=dist.log)
    raise TypeError(f"unsupported distribution {dist!r}")
