"""Validation of the composed config before anything runs or is written.

Hydra composes and types nothing by itself for plain YAML, so `python train.py trainer.epochs=0` would
otherwise fail deep inside the loop. Each rule names a key, checks its value and says what is allowed;
`validate` raises the first violation as a one-line ConfigError.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, ListConfig, OmegaConf

from aesweep.errors import ConfigError

_MISSING = object()


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
    "optimizer.fused": choice(None, True, False),
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
    "trainer.conv_kernels": choice("auto", "cudnn", "triton"),
    "trainer.matmul_precision": choice("highest", "high", "medium"),
    "trainer.threads": integer(1, nullable=True),
    "trainer.mmap_threshold_mb": number(0, low_open=True, nullable=True),
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

    if cfg.data.val_size >= 60000:
        raise ConfigError("data.val_size", cfg.data.val_size, "fewer than the 60000 training images")
    if cfg.eval.readout == "argmax" and cfg.model.bottleneck != cfg.eval.n_clusters and not cfg.eval.allow_overclustering:
        raise ConfigError(
            "model.bottleneck",
            cfg.model.bottleneck,
            f"equal to eval.n_clusters={cfg.eval.n_clusters} with eval.readout=argmax "
            "(each unit is a cluster); use eval.readout=kmeans or eval.allow_overclustering=true",
        )
    weights = [cfg.loss[k] for k in ("recon_weight", "entropy_weight", "balance_weight", "consistency_weight", "iic_weight")]
    if not any(w > 0 for w in weights):
        raise ConfigError("loss.recon_weight", cfg.loss.recon_weight, "> 0, or another loss term's weight > 0")


def check_creatable(folder: str, key: str) -> None:
    """Raise ConfigError unless `folder` exists as a writable folder or can be created."""
    target = Path(os.path.abspath(folder))
    existing = target
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(key, str(target), f"a folder that can be created, but {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(key, str(target), f"a folder that can be created, but {existing} is not writable")


class ValidateBeforeRun(Callback):
    """Hydra callback: check the config and the run folder before Hydra creates that folder.

    Registered in conf/config.yaml, so a refused `python train.py ...` prints one line, exits 2 and
    leaves nothing on disk. (Sweeps check their folder and every trial's values in the sweeper.)
    """

    def on_run_start(self, config: DictConfig, **kwargs: object) -> None:
        try:
            check_creatable(str(config.hydra.run.dir), "hydra.run.dir")
            validate(config)
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None


def check_command_line(arguments: list[str], conf_dir: Path) -> None:
    """Refuse, in one line, override syntax errors and options a config group does not have.

    Hydra reports both with a multi-line message and exit 1; checking the command line first keeps
    every user mistake to one `error:` line and exit 2. Anything else is left to Hydra.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    overrides = [a for a in arguments if "=" in a and not a.startswith("-")]
    # Extra config folders (hydra.searchpath) can add group options this check cannot see.
    check_options = not any(a.lstrip("+").startswith("hydra.searchpath") for a in overrides)
    parser = OverridesParser.create()
    for text in overrides:
        try:
            (override,) = parser.parse_overrides([text])
        except OverrideParseException as exc:
            key = text.split("=", 1)[0]
            reason = str(exc).splitlines()[1] if len(str(exc).splitlines()) > 1 else str(exc)
            raise ConfigError(key, text.split("=", 1)[1], f"Hydra's override grammar ({reason})") from None
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
