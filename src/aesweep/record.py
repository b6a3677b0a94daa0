"""The run record: the `metrics.json` every run writes last, and the one place that names its fields.

A record is a JSON object:

    status          "completed", "pruned" or "diverged" (a run that raised writes no record)
    reason          why it stopped early, or null
    dataset         the data= option it trained on ("mnist", "fashion_mnist"); records without one are MNIST's
    classes         the dataset's class names, label i's at [i]
    fit, val, test  per split, METRICS (below); fit = the training split the mapping was fitted on.
                    A pruned run keeps only val (the epoch it was pruned at); a diverged one none.
    confusion       {"fit": [[...]], "test": [[...]]}: cluster x class counts the scores are computed from
    mapping         cluster -> class, fitted on the training split (-1: a cluster no training image fell in)
    params, epochs, epochs_planned, seconds, device, seed, versions
    inits           with trainer.n_init > 1: per initialisation {"seed", "fit_cluster_entropy",
                    "val_mapped_acc", "chosen"} after its trainer.init_epochs epochs; else null
    trial           {"study_name", "number"} when a sweep ran it, else null

`aesweep.train.run` writes it (`write`), and the sweeper, `aesweep collect/compare`, the benches and the
confirmation runs read it (`read`); metric paths such as `val.mapped_acc` address it (`lookup`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aesweep.errors import AesweepError, one_line

RECORD_FILE = "metrics.json"

SPLITS = ("val", "test", "fit")
METRICS = ("mapped_acc", "hungarian_acc", "nmi", "ari", "clusters_used", "recon_mse")
# Top-level numbers of every record, beside the per-split metrics.
RUN_NUMBERS = ("params", "epochs", "epochs_planned", "seconds")
STATUSES = ("completed", "pruned", "diverged")
# A run's status -> Optuna's trial state names, so runs.csv and trials.csv share a `state` column.
STATE_OF_STATUS = {"completed": "COMPLETE", "pruned": "PRUNED", "diverged": "FAIL", "failed": "FAIL"}

# What a sweep optimises, and a run reports to its pruner after every epoch, unless told otherwise.
DEFAULT_OBJECTIVE = "val.mapped_acc"
VALIDATION_METRICS = tuple(f"val.{name}" for name in METRICS)
FINAL_METRICS = tuple(f"{split}.{name}" for split in SPLITS for name in METRICS) + RUN_NUMBERS


# Before a second dataset existed, nothing named its dataset: every run, record and study was MNIST's.
DATASET_OF_UNNAMED = "mnist"


def dataset(record: Mapping[str, Any]) -> str:
    """The data= option a run trained on (records without one are MNIST's)."""
    return record.get("dataset") or DATASET_OF_UNNAMED


def study_name(name: str, dataset: str) -> str:
    """A sweep's default study name (its sweep's, or the baseline's) for runs on `dataset`, so that one study
    never holds two datasets: MNIST's studies keep the plain names they had before there was a second dataset,
    every other dataset's add it (`default-fashion_mnist`)."""
    return name if dataset == DATASET_OF_UNNAMED else f"{name}-{dataset}"


class RecordUnreadable(AesweepError):
    """A run folder without a readable record: missing (crashed, killed, still running) or half-written."""


class RecordMissing(RecordUnreadable):
    """No record at all: the run crashed, was killed, or still runs."""


def write(run_dir: str | Path, record: Mapping[str, Any]) -> None:
    """Write the record atomically: its presence means the run ended. NaN/inf become null."""
    from aesweep.io import write_json_atomic

    write_json_atomic(Path(run_dir) / RECORD_FILE, dict(record))


def read(run_dir: str | Path) -> dict[str, Any]:
    """The record of a run folder; RecordUnreadable with a one-line reason when there is none to read."""
    path = Path(run_dir) / RECORD_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecordMissing(f"no {RECORD_FILE} in {path.parent} (crashed, killed or still running)") from None
    except (OSError, ValueError) as error:
        raise RecordUnreadable(f"{path} is unreadable (half-written?): {one_line(error)}") from None
    if not isinstance(record, dict):
        raise RecordUnreadable(f"{path} is not a JSON object")
    return record


def lookup(record: Mapping[str, Any], path: str) -> Any:
    """The value at a metric path such as `val.mapped_acc` or `params`: a flat key, else nested objects."""
    if path in record:
        return record[path]
    node: Any = record
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def paths(record: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Every leaf path of a (nested) record or metrics dict, for error lines."""
    found = []
    for key, value in record.items():
        path = f"{prefix}{key}"
        found.extend(paths(value, path + ".") if isinstance(value, Mapping) else [path])
    return found


def split_metrics(record: Mapping[str, Any], splits: tuple[str, ...] = ("val", "test")) -> dict[str, Any]:
    """The record's numbers per split, flat (`val.mapped_acc`), NaN/inf as None."""
    flat: dict[str, Any] = {}
    for split in splits:
        for name, value in (record.get(split) or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                flat[f"{split}.{name}"] = value if math.isfinite(value) else None
    return flat


def objective_problem(objectives: list[str]) -> str | None:
    """What is wrong with these objective paths, or None.

    A single objective is also reported to the pruner after every epoch, when a run has only its
    validation metrics; a multi-objective study is never pruned, so any number of the final record will do.
    """
    for objective in objectives:
        if len(objectives) == 1 and objective not in VALIDATION_METRICS:
            also = " (test.*, fit.*, params, epochs, seconds only in a list of objectives)" if (
                objective in FINAL_METRICS) else ""
            return f"a validation metric, reported after every epoch: {', '.join(VALIDATION_METRICS)}{also}"
        if objective not in FINAL_METRICS:
            return f"metrics of {RECORD_FILE}: {'/'.join(SPLITS)}.{{{','.join(METRICS)}}} or {', '.join(RUN_NUMBERS)}"
    return None
