"""The config's schema, and the one check of a composed config before anything runs or is written.

Every option file in `conf/` extends its schema here (`defaults: [/schema/<group>/<option>@_here_]`), so
Hydra types each key as it composes (`trainer.epochs=abc` is refused there) and refuses keys the schema
does not have. The values and their comments live in the YAML files; a schema field holds the key's type
and the rule its value must keep. `validate` checks every field's rule, then the rules that span several
keys (`cross_key_problems`); the first violation is one ConfigError line: key, value, what is allowed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from hydra.experimental.callback import Callback
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

from aesweep import record
from aesweep.data import DATASETS, DEFAULT_DATASET
from aesweep.errors import ConfigError
from aesweep.io import check_creatable

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"  # the project's config groups, beside src/
TRAINING_IMAGES = 60_000  # in MNIST and Fashion-MNIST alike
SEED_MAX = 2**32 - 1  # NumPy's seeds are 32-bit
SPLIT_SEED_MAX = 2**64 - 1  # the split's torch.Generator takes 64 bits
CLUSTERING_TERMS = ("entropy", "balance", "consistency", "iic")  # the loss terms that shape the bottleneck's clusters


# ------------------------------------------------------------------------------------------------ rules


@dataclass(frozen=True)
class Rule:
    check: Callable[[object], bool]
    allowed: str


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def integer(low: int | None = None, nullable: bool = False, high: int | None = None) -> Rule:
    bounds = " and ".join(([f">= {low}"] if low is not None else []) + ([f"<= {high}"] if high is not None else []))
    text = "an integer" + (f" {bounds}" if bounds else "") + (" or null" if nullable else "")
    return Rule(lambda v: (nullable and v is None) or (_is_int(v) and (low is None or v >= low)
                                                       and (high is None or v <= high)), text)


def number(low: float | None = None, high: float | None = None, low_open: bool = False, high_open: bool = False,
           nullable: bool = False) -> Rule:
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


def text() -> Rule:
    return Rule(lambda v: isinstance(v, str), "a string")


def int_list(low: int = 1, empty: bool = False, example: str = "[16,32,64]") -> Rule:
    def ok(v: object) -> bool:
        return isinstance(v, (list, ListConfig)) and (empty or len(v) > 0) and all(_is_int(x) and x >= low for x in v)

    size = "" if empty else "non-empty "
    return Rule(ok, f"a {size}list of integers >= {low}, e.g. {example}" + (" ([] = no hidden layer)" if empty else ""))


def int_or_int_list(low: int = 1) -> Rule:
    as_list = int_list(low)
    return Rule(lambda v: (_is_int(v) and v >= low) or as_list.check(v), f"an integer >= {low} or {as_list.allowed}")


def key(rule: Rule) -> Any:
    """A schema field: its type is the annotation, its value comes from the option's YAML file, `rule` checks it."""
    return field(default=MISSING, metadata={"rule": rule})


# ----------------------------------------------------------------------------------------------- schema

ACTIVATIONS = ("relu", "leaky_relu", "elu", "gelu", "silu", "tanh")
AUTO_OR_BOOL = choice("auto", True, False)


@dataclass
class DataSchema:
    name: str = key(choice(*DATASETS))
    root: str = key(text())
    download: bool = key(boolean())
    val_size: int = key(integer(1))
    split_seed: int = key(integer(0, high=SPLIT_SEED_MAX))
    subset: Optional[int] = key(integer(1, nullable=True))


@dataclass
class ModelSchema:
    """The keys every model has: the scored bottleneck and the hidden activation."""

    _target_: str = MISSING
    bottleneck: int = key(integer(1))
    bottleneck_activation: str = key(choice("softmax", "sigmoid", "none"))
    temperature: float = key(number(0, low_open=True))
    activation: str = key(choice(*ACTIVATIONS))


@dataclass
class BlogModelSchema(ModelSchema):
    pass


@dataclass
class ConvModelSchema(ModelSchema):
    heads: int = key(integer(1))
    overcluster: int = key(integer(0))
    channels: List[int] = key(int_list(1))
    kernels: Any = key(int_or_int_list(1))
    strides: Any = key(int_or_int_list(1))
    hidden: Optional[int] = key(integer(1, nullable=True))
    batch_norm: bool = key(boolean())
    dropout: float = key(number(0, 1, high_open=True))


@dataclass
class MLPModelSchema(ModelSchema):
    heads: int = key(integer(1))
    overcluster: int = key(integer(0))
    hidden: List[int] = key(int_list(1, empty=True, example="[512,256]"))
    batch_norm: bool = key(boolean())
    dropout: float = key(number(0, 1, high_open=True))


@dataclass
class OptimizerSchema:
    _target_: str = MISSING
    _partial_: bool = True  # Hydra builds a function of the parameters, which the run passes in
    lr: float = key(number(0, low_open=True))
    weight_decay: float = key(number(0))


@dataclass
class AdamSchema(OptimizerSchema):
    pass


@dataclass
class SGDSchema(OptimizerSchema):
    momentum: float = key(number(0, 1, high_open=True))


@dataclass
class RMSpropSchema(OptimizerSchema):
    momentum: float = key(number(0, 1, high_open=True))
    alpha: float = key(number(0, 1, low_open=True, high_open=True))


@dataclass
class SchedulerSchema:
    name: str = key(choice("none", "cosine"))
    warmup_epochs: float = key(number(0))
    min_lr_ratio: float = key(number(0, 1))


@dataclass
class LossSchema:
    recon: str = key(choice("mse", "bce"))
    recon_weight: float = key(number(0))
    entropy_weight: float = key(number(0))
    balance_weight: float = key(number(0))
    consistency_weight: float = key(number(0))
    iic_weight: float = key(number(0))
    iic_lambda: float = key(number(0, low_open=True))
    overcluster_weight: float = key(number(0))
    views: int = key(integer(1))
    warmup_epochs: float = key(number(0))


@dataclass
class AugmentSchema:
    rotation: float = key(number(0, 180))
    scale: float = key(number(0, 1, high_open=True))
    translate: float = key(number(0, 0.5))
    noise: float = key(number(0))
    erase: float = key(number(0, 1, high_open=True))
    erase_aspect: float = key(number(0, low_open=True))


@dataclass
class TrainerSchema:
    epochs: int = key(integer(1))
    n_init: int = key(integer(1))
    init_epochs: int = key(integer(1))
    batch_size: int = key(integer(1))
    grad_clip: Optional[float] = key(number(0, low_open=True, nullable=True))
    ema_decay: Optional[float] = key(number(0, 1, low_open=True, high_open=True, nullable=True))
    compile: bool = key(boolean())
    compile_mode: str = key(choice("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"))
    cuda_graph: Any = key(AUTO_OR_BOOL)
    cudnn_benchmark: Any = key(AUTO_OR_BOOL)
    amp: Any = key(AUTO_OR_BOOL)
    channels_last: Any = key(AUTO_OR_BOOL)
    threads: Optional[int] = key(integer(1, nullable=True))
    progress: Any = key(AUTO_OR_BOOL)
    save_weights: bool = key(boolean())


@dataclass
class EvalSchema:
    readout: str = key(choice("argmax", "kmeans"))
    n_clusters: int = key(integer(2))
    allow_overclustering: bool = key(boolean())
    batch_size: int = key(integer(1))
    kmeans_n_init: int = key(integer(1))


@dataclass
class DeviceSchema:
    type: str = key(choice("auto", "cpu", "cuda", "mps"))


@dataclass
class LoggerSchema:
    """Experiment tracking (aesweep.tracking): none, mlflow or tensorboard."""

    name: str = key(choice("none", "mlflow", "tensorboard"))


@dataclass
class MLflowLoggerSchema(LoggerSchema):
    tracking_uri: str = key(text())
    artifact_location: str = key(text())
    experiment: str = key(text())


@dataclass
class TensorBoardLoggerSchema(LoggerSchema):
    dir: str = key(text())


@dataclass
class TrialSchema:
    """Filled in by the aesweep_optuna sweeper for each of its jobs (aesweep.trial); null in a single run."""

    study_name: Optional[str] = None
    storage: Optional[str] = None
    trial_id: Optional[int] = None
    trial_number: Optional[int] = None
    report: str = key(text())


# The schema of each option file: conf/<group>/<option>.yaml extends /schema/<group>/<option>.
SCHEMAS: dict[str, dict[str, type]] = {
    "data": {name: DataSchema for name in DATASETS},
    "model": {"blog": BlogModelSchema, "conv": ConvModelSchema, "mlp": MLPModelSchema},
    "optimizer": {"adam": AdamSchema, "adamw": AdamSchema, "sgd": SGDSchema, "rmsprop": RMSpropSchema},
    "scheduler": {"none": SchedulerSchema, "cosine": SchedulerSchema},
    "loss": {name: LossSchema for name in ("mse", "bce", "imsat", "iic")},
    "augment": {"none": AugmentSchema, "affine": AugmentSchema},
    "trainer": {"default": TrainerSchema},
    "eval": {"default": EvalSchema},
    "device": {name: DeviceSchema for name in ("auto", "cpu", "cuda", "mps")},
    "trial": {"default": TrialSchema},
    "logger": {"none": LoggerSchema, "mlflow": MLflowLoggerSchema, "tensorboard": TensorBoardLoggerSchema},
}
ROOT_RULES = {"seed": integer(0, high=SEED_MAX)}  # the root stays open: a sweep file may add keys of its own there


def register_schemas() -> None:
    store = ConfigStore.instance()
    for group, options in SCHEMAS.items():
        for option, schema in options.items():
            store.store(group=f"schema/{group}", name=option, node=schema, provider="aesweep")


register_schemas()


# ------------------------------------------------------------------------------------------- validation


def training_images(data_cfg: DictConfig) -> int:
    """How many images the training split holds: the 60k less the validation split, cut to data.subset."""
    available = TRAINING_IMAGES - data_cfg.val_size
    return available if data_cfg.subset is None else min(data_cfg.subset, available)


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError for the first key whose value breaks its rule, or for keys that disagree."""
    for name, rule in ROOT_RULES.items():
        _check(name, cfg.get(name), rule)
    for group in SCHEMAS:
        node = cfg.get(group)
        schema = OmegaConf.get_type(node) if isinstance(node, DictConfig) else None
        if not (isinstance(schema, type) and is_dataclass(schema)):
            continue
        for spec in fields(schema):
            if "rule" in spec.metadata:
                _check(f"{group}.{spec.name}", node[spec.name], spec.metadata["rule"])
    problem = cross_key_problem(cfg)
    if problem:
        raise problem


def _check(key_name: str, value: object, rule: Rule) -> None:
    if not rule.check(value):
        shown = OmegaConf.to_container(value) if isinstance(value, (DictConfig, ListConfig)) else value
        raise ConfigError(key_name, shown, rule.allowed)


def rule_of(schema: object, name: str) -> Rule | None:
    """The rule a schema class (the `object_type` of an OmegaConf error) gives its field `name`."""
    if not (isinstance(schema, type) and is_dataclass(schema)):
        return None
    spec = next((f for f in fields(schema) if f.name == name), None)
    return spec.metadata.get("rule") if spec is not None else None


def has_clustering_terms(loss_cfg: DictConfig) -> bool:
    return any(loss_cfg[f"{term}_weight"] > 0 for term in CLUSTERING_TERMS)


def cross_key_problem(cfg: DictConfig) -> ConfigError | None:
    """The first rule that spans several keys and is broken, as a ConfigError naming the key to change."""
    if cfg.data.val_size >= TRAINING_IMAGES:
        return ConfigError("data.val_size", cfg.data.val_size, f"fewer than the {TRAINING_IMAGES} training images")
    if cfg.eval.readout == "argmax" and cfg.model.bottleneck != cfg.eval.n_clusters and not cfg.eval.allow_overclustering:
        return ConfigError("model.bottleneck", cfg.model.bottleneck,
                           f"equal to eval.n_clusters={cfg.eval.n_clusters} with eval.readout=argmax (each unit is a "
                           "cluster); use eval.readout=kmeans or eval.allow_overclustering=true")
    if cfg.eval.readout == "kmeans" and cfg.eval.n_clusters > training_images(cfg.data):
        return ConfigError("eval.n_clusters", cfg.eval.n_clusters,
                           f"at most the {training_images(cfg.data)} training images k-means is fitted on "
                           "(data.subset, data.val_size)")
    for per_layer in ("kernels", "strides"):
        value = cfg.model.get(per_layer)
        if isinstance(value, ListConfig) and len(value) != len(cfg.model.channels):
            return ConfigError(f"model.{per_layer}", list(value),
                               f"a list of {len(cfg.model.channels)} integers, one per entry of model.channels")
    if cfg.trainer.n_init > 1 and cfg.trainer.init_epochs > cfg.trainer.epochs:
        return ConfigError("trainer.init_epochs", cfg.trainer.init_epochs,
                           f"at most trainer.epochs={cfg.trainer.epochs} (each initialisation's epochs are the "
                           "first epochs of the run that goes on)")
    if cfg.model.get("heads", 1) > 1 and not has_clustering_terms(cfg.loss):
        return ConfigError("model.heads", cfg.model.heads,
                           "1 unless a clustering term's weight is > 0 (loss.entropy_weight, balance_weight, "
                           "consistency_weight, iic_weight): the head scored is the one with the lowest "
                           "clustering loss")
    if cfg.trainer.batch_size == 1 and cfg.model.get("batch_norm", False):
        return ConfigError("trainer.batch_size", 1, "at least 2 with model.batch_norm=true (BatchNorm cannot "
                                                    "normalise one image), or model.batch_norm=false")
    if cfg.model.get("overcluster", 0) and cfg.loss.overcluster_weight == 0:
        return ConfigError("loss.overcluster_weight", cfg.loss.overcluster_weight,
                           f"> 0 with model.overcluster={cfg.model.overcluster} (that head is trained by this "
                           "term alone), or model.overcluster=0")
    weights = [cfg.loss[k] for k in ("recon_weight", "entropy_weight", "balance_weight", "consistency_weight",
                                     "iic_weight")]
    if not any(w > 0 for w in weights):
        return ConfigError("loss.recon_weight", cfg.loss.recon_weight, "> 0, or another loss term's weight > 0")
    return None


class ValidateBeforeRun(Callback):
    """Hydra callback: check the config and the run folder before Hydra creates that folder.

    Registered in conf/config.yaml, so a refused `python train.py ...` prints one line, exits 2 and
    leaves nothing on disk. The aesweep_optuna sweeper finds `check_config` through this registration and
    runs it on the trials' configs before its study opens, and `study_name` to name its studies.
    """

    check_config = staticmethod(validate)
    default_objective = record.DEFAULT_OBJECTIVE  # what a sweep optimises unless hydra.sweeper.objective says so

    @staticmethod
    def study_name(name: str, config: DictConfig) -> str:
        """A default study name (the sweep's, the baseline's) for this config's dataset: `default`, or
        `default-fashion_mnist` with data=fashion_mnist, so that one study never holds two datasets."""
        return record.study_name(name, OmegaConf.select(config, "data.name", default=None) or DEFAULT_DATASET)

    def on_run_start(self, config: DictConfig, **kwargs: object) -> None:
        try:
            check_creatable(str(config.hydra.run.dir), "hydra.run.dir")
            validate(config)
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
