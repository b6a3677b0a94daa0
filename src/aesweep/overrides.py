"""A `python train.py` command line, checked before Hydra sees it.

Hydra refuses an override it cannot parse, an option a group does not have, a key the config does not
have or a value a typed key cannot take - each with a multi-line message and exit status 1. Checking the
command line first keeps every such mistake to one `error:` line and exit status 2. What a value must be
is the schema's to say (aesweep.config); anything else is left to Hydra.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from aesweep.config import rule_of
from aesweep.errors import ConfigError
from aesweep.keys import dotted_keys, node_exists


def check_command_line(arguments: list[str], conf_dir: Path) -> None:
    """Refuse, in one line, override syntax errors, options a config group does not have, keys the
    config does not have and values a typed setting cannot take.

    Hydra reports each with a multi-line message and exit 1; checking the command line first keeps
    every user mistake to one `error:` line and exit 2. Anything else is left to Hydra.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    overrides = [a for a in arguments if "=" in a and not a.startswith("-")]
    # Extra config folders (hydra.searchpath) can add group options this check cannot see.
    check_options = not any(a.lstrip("+").startswith("hydra.searchpath") for a in overrides)
    parser = OverridesParser.create()
    parsed = []
    for text in overrides:
        try:
            (override,) = parser.parse_overrides([text])
        except OverrideParseException as exc:
            key = text.split("=", 1)[0]
            reason = str(exc).splitlines()[1] if len(str(exc).splitlines()) > 1 else str(exc)
            raise ConfigError(key, text.split("=", 1)[1], f"Hydra's override grammar ({reason})") from None
        parsed.append(override)
        group = override.key_or_group
        options_dir = conf_dir / group
        if not check_options or "/" in group or override.package or not options_dir.is_dir() or override.is_delete():
            continue
        options = sorted(p.stem for p in options_dir.glob("*.yaml"))
        if override.is_sweep_override():
            if not override.is_choice_sweep():
                continue  # a range or interval over a group is the sweeper's to refuse
            values = list(override.sweep_string_iterator())
        else:
            values = [override.get_value_element_as_str()]
        for value in values:
            if value not in options and value != "null":
                raise ConfigError(group, value, one_of(value, options))
    # Another primary config (--config-name, --config-path, --config-dir) has other keys.
    if check_options and not any(a.split("=", 1)[0] in OTHER_CONFIG_FLAGS for a in arguments):
        check_keys_exist(parsed, conf_dir)


def one_of(value: str, options: list[str]) -> str:
    """`one of: a, b, c`, after `did you mean b?` when the value is a near miss of one of them."""
    close = difflib.get_close_matches(value, options, n=1, cutoff=0.6)
    return (f"did you mean {close[0]}? " if close else "") + "one of: " + ", ".join(options)


OTHER_CONFIG_FLAGS = {"--config-name", "-cn", "--config-path", "-cp", "--config-dir", "-cd", "--experimental-rerun"}


def check_keys_exist(overrides: list, conf_dir: Path) -> None:
    """Refuse, in one line, a `key=value` whose key the composed config does not have.

    Hydra refuses it too ("Could not override ... Key 'epoch' is not in struct", several lines, exit 1).
    The config is composed with the command line's group choices, so a key that only another option of
    its group has (model.dropout under model=blog) is named as such. Searched values (`a=1,2`,
    `choice(...)`) are the sweeper's to check, and a swept group leaves the keys open.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException

    groups = [o for o in overrides if (conf_dir / o.key_or_group).is_dir() or "/" in o.key_or_group]
    if any(o.is_sweep_override() for o in groups):
        return
    values = [o for o in overrides if o not in groups and not (o.is_add() or o.is_force_add() or o.is_delete())
              and not o.is_sweep_override()]
    was_initialized = GlobalHydra.instance().is_initialized()
    try:
        with initialize_config_dir(config_dir=str(conf_dir.resolve()), version_base="1.3"):
            for group in (o for o in groups if "/" in o.key_or_group):  # hydra/launcher=...: plugins add options
                options = GlobalHydra.instance().config_loader().get_group_options(group.key_or_group)
                value = group.get_value_element_as_str()
                if options and value not in options and value != "null":
                    raise ConfigError(group.key_or_group, value, one_of(value, sorted(options)))
            cfg = compose("config", overrides=[o.input_line for o in groups], return_hydra_config=True)
            for override in values:
                key = override.key_or_group
                if node_exists(cfg, key) or not _addition_refused(cfg, key):
                    continue
                value = override.get_value_element_as_str()
                raise ConfigError(key, value, f"{key} is not a config key; {_where_else(cfg, key, conf_dir)}"
                                              f"write +{key}={value} to add a new key")
            # a value of the wrong type for a typed node (hydra.sweeper.n_trials=abc)
            compose("config", overrides=[o.input_line for o in groups + values], return_hydra_config=True)
    except (HydraException, OmegaConfBaseException, ValueError) as exc:
        refused = _refused_value(exc, values) or _unloadable_option(exc, groups)
        if refused:
            raise refused from None
        return  # anything else is Hydra's to report
    finally:
        if not was_initialized:
            GlobalHydra.instance().clear()


def _unloadable_option(exc: BaseException, groups: list) -> ConfigError | None:
    """A chosen option whose config loads another that is not installed (hydra/launcher=ray_cluster
    without hydra-ray-launcher): Hydra says "In 'hydra/launcher/ray_cluster': Could not load
    'hydra/launcher/ray'" and lists its search path."""
    match = re.match(r"In '([^']+)': Could not load '([^']+)'", str(exc))
    chosen = next((o for o in groups if match and match.group(1) == f"{o.key_or_group}/{o.get_value_element_as_str()}"),
                  None)
    if chosen is None:
        return None
    missing = match.group(2)
    hint = "; its Hydra plugin is not installed" if missing.startswith(("hydra/launcher/", "hydra/sweeper/")) else ""
    return ConfigError(chosen.key_or_group, chosen.get_value_element_as_str(),
                       f"an option whose config loads, but it builds on {missing}, which is not there{hint} "
                       f"(see the comment at the top of conf/{match.group(1)}.yaml)")


def _refused_value(exc: BaseException, values: list) -> ConfigError | None:
    """The override a typed node refused, as a ConfigError, when Hydra's error says which key it was."""
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    # an element of a list names its index: model.channels[0] is in the override of model.channels
    key = re.sub(r"(\[\d+\])+$", "", str(getattr(cause, "full_key", None)))
    given = [o for o in values if o.key_or_group == key]
    if not isinstance(cause, OmegaConfBaseException) or not given:
        return None
    # a key given twice: the override Hydra was merging when it failed, which its message names
    merging = re.match(r"Error merging override (.+)", str(exc))
    override = next((o for o in given if merging and o.input_line == merging.group(1)), given[-1])
    rule = rule_of(getattr(cause, "object_type", None), key.rpartition(".")[2])
    if rule is not None:  # the schema's own words for the key: `an integer >= 1`
        return ConfigError(key, override.value(), rule.allowed)
    reason = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
    return ConfigError(key, override.get_value_element_as_str(), f"a value its type takes ({reason})")


def _addition_refused(cfg: DictConfig, key: str) -> bool:
    """Whether Hydra would refuse to add `key`: its nearest existing parent is a struct mapping."""
    parts = key.split(".")
    node: object = cfg
    for part in parts[:-1]:
        if not isinstance(node, DictConfig) or part not in node.keys():
            break
        node = node._get_node(part)
    return isinstance(node, DictConfig) and OmegaConf.is_struct(node)


def _where_else(cfg: DictConfig, key: str, conf_dir: Path) -> str:
    """The options of the key's group that do have it, or the keys it was probably meant to be."""
    group, _, rest = key.partition(".")
    if rest and (conf_dir / group).is_dir():
        having = sorted(path.stem for path in (conf_dir / group).glob("*.yaml")
                        if node_exists(OmegaConf.load(path), rest))
        if having:
            return f"{group}={cfg.hydra.runtime.choices.get(group)} has no {rest} ({group}={', '.join(having)} has); "
    close = difflib.get_close_matches(key, dotted_keys(cfg), n=3, cutoff=0.8)
    return f"did you mean {', '.join(close)}? " if close else ""
