"""Validation of the composed config before anything runs or is written.

Hydra composes and types nothing by itself for plain YAML, so `python train.py trainer.epochs=0` would
otherwise fail deep inside the loop. Each rule names a key, checks its value and says what is allowed;
`validate` raises the first violation as a one-line ConfigError.
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from aesweep.errors import ConfigError
from aesweep.io import check_creatable
from aesweep.keys import dotted_keys, node_exists

_MISSING = object()
CONF_DIR = Path(__file__).resolve().parents[2] / "conf"  # the project's config groups, beside src/


@dataclass(frozen=True)
class Rule:
    check: Callable[[object], bool]
    allowed: str


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def integer(low: int | None = None, nullable: bool = False) -> Rule:
    text = "an integer" + (f" >= {low}" if low is not None else "") + (" or null" if nullable else "")
    return Rule(lambda v: (nullable and v is None) or (_is_int(v) and (low is None or v >= low)), text)


def number(
    low: float | None = None, high: float | None = None, low_open: bool = False, high_open: bool = False,
    nullable: bool = False,
) -> Rule:
    def ok(v: object) -> bool:
        if nullable and v is None:
            return True
        if not _is_number(v) or v != v:  # NaN fails every comparison
            return False
        if low is not None and (v <= low if low_open else v < low):
            return False
        return high is None or (v < high if high_open else v <= high)

    bounds = []
    if low is not None:
        bounds.append(f"{'>' if low_open else '>='} {low}")
    if high is not None:
        bounds.append(f"{'<' if high_open else '<='} {high}")
    return Rule(ok, "a number" + (" " + " and ".join(bounds) if bounds else "") + (" or null" if nullable else ""))


def choice(*options: object) -> Rule:
    def same(value: object, option: object) -> bool:  # 1 == True in Python; not here
        return value == option and isinstance(value, bool) == isinstance(option, bool)

    shown = ("null" if o is None else str(o).lower() if isinstance(o, bool) else str(o) for o in options)  # as typed
    return Rule(lambda v: any(same(v, o) for o in options), "one of: " + ", ".join(shown))


def boolean() -> Rule:
    return Rule(lambda v: isinstance(v, bool), "true or false")


def int_list(low: int = 1) -> Rule:
    return Rule(
        lambda v: isinstance(v, (list, ListConfig)) and len(v) > 0 and all(_is_int(x) and x >= low for x in v),
        f"a non-empty list of integers >= {low}, e.g. [16,32,64]",
    )


def int_or_int_list(low: int = 1) -> Rule:
    as_list = int_list(low)
    return Rule(lambda v: (_is_int(v) and v >= low) or as_list.check(v), f"an integer >= {low} or {as_list.allowed}")


ACTIVATIONS = ("relu", "leaky_relu", "elu", "gelu", "silu", "tanh")

RULES: dict[str, Rule] = {
    "seed": integer(0),
    "data.val_size": integer(1),
    "data.subset": integer(1, nullable=True),
    "data.split_seed": integer(0),
    "data.download": boolean(),
    "model.bottleneck": integer(1),
    "model.activation": choice(*ACTIVATIONS),
    "model.bottleneck_activation": choice("softmax", "sigmoid", "none"),
    "model.temperature": number(0, low_open=True),
    "model.batch_norm": boolean(),
    "model.dropout": number(0, 1, high_open=True),
    "model.channels": int_list(1),
    "model.kernels": int_or_int_list(1),
    "model.strides": int_or_int_list(1),
    "optimizer.lr": number(0, low_open=True),
    "optimizer.momentum": number(0, 1, high_open=True),
    "optimizer.weight_decay": number(0),
    "optimizer.alpha": number(0, 1, low_open=True, high_open=True),
    "scheduler.name": choice("none", "cosine"),
    "scheduler.warmup_epochs": number(0),
    "scheduler.min_lr_ratio": number(0, 1),
    "loss.recon": choice("mse", "bce"),
    "loss.recon_weight": number(0),
    "loss.entropy_weight": number(0),
    "loss.balance_weight": number(0),
    "loss.consistency_weight": number(0),
    "loss.iic_weight": number(0),
    "loss.iic_lambda": number(0, low_open=True),
    "loss.warmup_epochs": number(0),
    "augment.rotation": number(0, 180),
    "augment.scale": number(0, 1, high_open=True),
    "augment.translate": number(0, 0.5),
    "augment.noise": number(0),
    "trainer.epochs": integer(1),
    "trainer.batch_size": integer(1),
    "trainer.compile": boolean(),
    "trainer.compile_mode": choice("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"),
    "trainer.cuda_graph": choice("auto", True, False),
    "trainer.cudnn_benchmark": choice("auto", True, False),
    "trainer.amp": choice("auto", True, False),
    "trainer.channels_last": choice("auto", True, False),
    "trainer.threads": integer(1, nullable=True),
    "trainer.grad_clip": number(0, low_open=True, nullable=True),
    "trainer.progress": choice("auto", True, False),
    "trainer.save_weights": boolean(),
    "eval.readout": choice("argmax", "kmeans"),
    "eval.n_clusters": integer(2),
    "eval.allow_overclustering": boolean(),
    "eval.batch_size": integer(1),
    "eval.kmeans_n_init": integer(1),
    "device.type": choice("auto", "cpu", "cuda", "mps"),
}


# model.hidden means one dense layer in the conv model and the hidden widths in the MLP.
HIDDEN_RULES: dict[str, Rule] = {
    "ConvAutoencoder": integer(1, nullable=True),
    "MLPAutoencoder": Rule(lambda v: isinstance(v, (list, ListConfig)) and all(_is_int(x) and x >= 1 for x in v),
                           "a list of integers >= 1, e.g. [512,256] ([] = no hidden layer)"),
}

MNIST_TRAINING_IMAGES = 60_000


def training_images(data_cfg: DictConfig) -> int:
    """How many images the training split holds: the 60k less the validation split, cut to data.subset."""
    available = MNIST_TRAINING_IMAGES - data_cfg.val_size
    return available if data_cfg.subset is None else min(data_cfg.subset, available)


def _lookup(cfg: DictConfig, dotted: str) -> object:
    node: object = cfg
    for part in dotted.split("."):
        if not isinstance(node, DictConfig) or part not in node:
            return _MISSING
        node = node[part]
    return node


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError for the first key whose value breaks its rule, or for inconsistent keys."""
    for key, rule in RULES.items():
        value = _lookup(cfg, key)
        if value is _MISSING:
            continue  # the key belongs to a group option not selected (e.g. momentum under adam)
        if not rule.check(value):
            shown = OmegaConf.to_container(value) if isinstance(value, (DictConfig, ListConfig)) else value
            raise ConfigError(key, shown, rule.allowed)

    if cfg.data.val_size >= MNIST_TRAINING_IMAGES:
        raise ConfigError("data.val_size", cfg.data.val_size, f"fewer than the {MNIST_TRAINING_IMAGES} training images")
    if cfg.eval.readout == "argmax" and cfg.model.bottleneck != cfg.eval.n_clusters and not cfg.eval.allow_overclustering:
        raise ConfigError(
            "model.bottleneck",
            cfg.model.bottleneck,
            f"equal to eval.n_clusters={cfg.eval.n_clusters} with eval.readout=argmax "
            "(each unit is a cluster); use eval.readout=kmeans or eval.allow_overclustering=true",
        )
    hidden = _lookup(cfg, "model.hidden")
    hidden_rule = HIDDEN_RULES.get(str(cfg.model.get("_target_", "")).rsplit(".", 1)[-1])
    if hidden is not _MISSING and hidden_rule and not hidden_rule.check(hidden):
        shown = OmegaConf.to_container(hidden) if isinstance(hidden, ListConfig) else hidden
        raise ConfigError("model.hidden", shown, hidden_rule.allowed)
    if cfg.eval.readout == "kmeans" and cfg.eval.n_clusters > training_images(cfg.data):
        raise ConfigError("eval.n_clusters", cfg.eval.n_clusters,
                          f"at most the {training_images(cfg.data)} training images k-means is fitted on "
                          "(data.subset, data.val_size)")
    weights = [cfg.loss[k] for k in ("recon_weight", "entropy_weight", "balance_weight", "consistency_weight", "iic_weight")]
    if not any(w > 0 for w in weights):
        raise ConfigError("loss.recon_weight", cfg.loss.recon_weight, "> 0, or another loss term's weight > 0")


class ValidateBeforeRun(Callback):
    """Hydra callback: check the config and the run folder before Hydra creates that folder.

    Registered in conf/config.yaml, so a refused `python train.py ...` prints one line, exits 2 and
    leaves nothing on disk. The aesweep_optuna sweeper finds `validate` through this registration and
    runs it on the trials' configs before its study opens, so without it sweeps lose that check too.
    """

    check_config = staticmethod(validate)  # what the sweeper runs on its trials' configs before the study opens

    def on_run_start(self, config: DictConfig, **kwargs: object) -> None:
        try:
            check_creatable(str(config.hydra.run.dir), "hydra.run.dir")
            validate(config)
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None


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
                raise ConfigError(group, value, "one of: " + ", ".join(options))
    # Another primary config (--config-name, --config-path, --config-dir) has other keys.
    if check_options and not any(a.split("=", 1)[0] in OTHER_CONFIG_FLAGS for a in arguments):
        check_keys_exist(parsed, conf_dir)


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
                    raise ConfigError(group.key_or_group, value, "one of: " + ", ".join(sorted(options)))
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
    full_key = getattr(cause, "full_key", None)
    override = next((o for o in values if o.key_or_group == full_key), None)
    if not isinstance(cause, OmegaConfBaseException) or override is None:
        return None
    reason = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
    return ConfigError(full_key, override.get_value_element_as_str(), f"a value its type takes ({reason})")


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
