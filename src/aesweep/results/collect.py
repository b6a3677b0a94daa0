"""`aesweep collect`: every finished run under some folders -> one row per run, one table.

A run row holds bookkeeping columns (``run_dir``, ``sweep``, ``trial``, ``state``, ...), flattened
config columns (``model.bottleneck``, ``optimizer`` = the short class name of ``optimizer._target_``)
and every metric (``val.mapped_acc``, ``test.nmi``, ...). Runs whose config columns are equal form a
*configuration*; ``seed`` is bookkeeping, so repeats with several seeds share a configuration.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd
import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf

from aesweep import record
from aesweep.errors import AesweepError, folded
from aesweep.io import write_csv_atomic
from aesweep.trial import BUSY_ATTR, ENDED_ATTR, STARTED_ATTR

Warn = Callable[[str], None]

BASELINE_SWEEP = "baseline"
COMPLETE = "COMPLETE"

DATASET = "dataset"  # the data= option a run trained on: part of its configuration, never pooled with another
# Columns that describe a run rather than its configuration (runs.csv and trials.csv alike).
RUN_COLUMNS = ("run_dir", "sweep", "sweep_dir", "role", "job", "trial", "study_name", "status", "state", "reason",
               "seed")
# What a run did in its sweep: a trial's run (search), or a re-run of a best trial on a fresh seed (confirm).
SEARCH, CONFIRM = "search", "confirm"
TAIL_COLUMNS = ("params", "epochs", "epochs_planned", "seconds", "device_used", "overrides")
# What a sweep's trials.csv holds beside its searched parameters and metrics (hydra_plugins.aesweep_optuna._tables):
# the trial's number, state and timing, the objective value(s) - `value`, or `values_<objective>` for several - with
# over seeds each seed's (`value.seed<s>`, `values_<objective>.seed<s>`) and their sd (`.std`), the trial's user
# attributes (its runs' epochs, seconds, status, reason, folder, worker: all run or tail columns; how long they held
# a slot: aesweep.trial's BUSY_ATTR, STARTED_ATTR, ENDED_ATTR) and Optuna's own `user_attrs_`/`system_attrs_`.
SWEEP_COLUMNS = {"number", "value", "datetime_start", "datetime_complete", "duration", "worker",
                 BUSY_ATTR, STARTED_ATTR, ENDED_ATTR}
SWEEP_PREFIXES = ("value.", "values_", "user_attrs_", "system_attrs_")
BOOKKEEPING = set(RUN_COLUMNS) | set(TAIL_COLUMNS) | SWEEP_COLUMNS | {"_scope", "_source"}
BOOKKEEPING_PREFIXES = tuple(f"{split}." for split in record.SPLITS) + SWEEP_PREFIXES + ("trial.", "hydra.",
                                                                                        "versions.")
# Hydra's instantiate keywords: never part of a configuration's identity.
_INSTANTIATE_KEYS = {"_target_", "_partial_", "_recursive_", "_convert_", "_args_"}


def warn_stderr(message: str) -> None:
    print(f"aesweep: warning: {message}", file=sys.stderr)


def config_columns(table: pd.DataFrame) -> list[str]:
    """The columns that define a configuration: everything but bookkeeping, metrics and ``seed``."""
    return [c for c in table.columns if c not in BOOKKEEPING and not c.startswith(BOOKKEEPING_PREFIXES)]


class SkippedRun(Exception):
    """A run directory that cannot be turned into a row (crashed, half-written, unreadable)."""


def find_run_dirs(root: Path) -> list[Path]:
    """Every Hydra job directory (one holding ``.hydra/config.yaml``) at or below ``root``, naturally sorted.

    Hidden directories are not entered, nor are run directories (runs do not nest).
    """
    found = []
    for current, subdirs, _ in os.walk(root):
        if os.path.isfile(os.path.join(current, ".hydra", "config.yaml")):
            found.append(Path(current))
            subdirs.clear()
        else:
            subdirs[:] = [d for d in subdirs if not d.startswith(".")]
    return sorted(found, key=_natural_key)


def _natural_key(path: Path) -> list:
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in Path(path).parts]


def read_run(run_dir: Path) -> dict:
    """One run directory -> one row (dict of column -> value). Raises SkippedRun with a one-line reason."""
    metrics_path = run_dir / "metrics.json"
    sweep_dir = sweep_folder(run_dir)
    if not metrics_path.is_file():
        metrics = _failed_trial(run_dir, sweep_dir)
        if metrics is None:
            raise SkippedRun("no metrics.json (crashed, killed or still running)")
    else:
        try:
            metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise SkippedRun(f"metrics.json is not valid JSON (half-written?): {error}") from None
        except OSError as error:  # unreadable (permissions, a folder of that name)
            raise SkippedRun(f"metrics.json cannot be read: {folded(error)}") from None
    if not isinstance(metrics, dict):
        raise SkippedRun("metrics.json is not a JSON object")
    try:
        config = flatten_config(OmegaConf.load(run_dir / ".hydra" / "config.yaml"))
    except Exception as error:  # yaml or omegaconf errors: either way the run cannot be described
        raise SkippedRun(f".hydra/config.yaml is unreadable: {folded(error)}") from None
    hydra = _read_hydra(run_dir)
    for group, choice in hydra.get("choices", {}).items():
        config.setdefault(group, choice)

    row: dict = {"run_dir": str(run_dir)}
    sweep = _sweep_name(run_dir, sweep_dir, hydra)
    row["sweep"] = sweep
    row["sweep_dir"] = str(sweep_dir or run_dir.parent) if sweep is not None else None
    row["role"] = None
    row["job"] = None
    if sweep is not None:
        inside = run_dir.relative_to(sweep_dir).parts if sweep_dir else (run_dir.name,)
        row["role"] = CONFIRM if inside[0] == CONFIRM else SEARCH
        row["job"] = hydra.get("job_num", int(inside[0]) if inside[0].isdigit() else None)
    trial = metrics.get("trial") or {}
    row["trial"] = trial.get("number")
    row["study_name"] = trial.get("study_name")
    status = metrics.get("status")
    row["status"] = status
    row["state"] = record.STATE_OF_STATUS.get(status, str(status).upper())
    row["reason"] = metrics.get("reason")
    row["seed"] = config.pop("seed", metrics.get("seed"))
    # The dataset is part of the configuration, in a column of its own: the record's, else the config's (a
    # failed trial has no record). The data= option and data.name say the same, so they are not repeated.
    config.pop("data", None)
    configured = config.pop("data.name", None)
    row[DATASET] = metrics.get("dataset") or configured or record.DATASET_OF_UNNAMED
    # trial.* keys are the sweeper's link to its study, already in the trial/study_name columns.
    row.update({key: value for key, value in config.items() if not key.startswith("trial.")})
    for split in record.SPLITS:
        values = metrics.get(split) or {}
        for name in record.METRICS:
            row[f"{split}.{name}"] = values.get(name)
        for name, value in values.items():
            row.setdefault(f"{split}.{name}", value)
    for key in ("params", "epochs", "epochs_planned", "seconds"):
        row[key] = metrics.get(key)
    row["device_used"] = metrics.get("device")
    row["overrides"] = hydra.get("overrides")
    return row


def sweep_folder(run_dir: Path) -> Path | None:
    """The sweep folder a job's folder lies in (the one holding multirun.yaml): its parent, or above it for a
    trial's run per seed (<trial>/seed<s>) and a confirmation run (confirm/<trial>/seed<s>)."""
    for folder in list(run_dir.parents)[:3]:
        if (folder / "multirun.yaml").is_file():
            return folder
    return None


def _failed_trial(run_dir: Path, sweep_dir: Path | None) -> dict | None:
    """What the sweep's trials.csv says of a trial that ended without metrics.json, when it says FAIL.

    A trial refused by its config, crashed, or left running by a killed sweep writes no metrics.json;
    its sweep recorded why, so it is a `failed` row with that reason rather than a run to skip.
    """
    trials_csv = (sweep_dir or run_dir.parent) / "trials.csv"
    if sweep_dir is not None and run_dir.relative_to(sweep_dir).parts[0] != run_dir.name:
        run_dir = sweep_dir / run_dir.relative_to(sweep_dir).parts[0]  # a seed's run: its trial's folder
    if not trials_csv.is_file():
        return None
    try:
        trials = pd.read_csv(trials_csv)
    except (OSError, ValueError):
        return None
    if "state" not in trials or "number" not in trials:
        return None
    if "run_dir" in trials:
        mine = trials[trials["run_dir"].astype(str).map(lambda text: Path(text).name) == run_dir.name]
    else:
        mine = trials[trials["number"].astype(str) == run_dir.name]
    if len(mine) != 1 or mine["state"].iloc[0] != "FAIL":
        return None
    trial = mine.iloc[0]
    reason = trial.get("reason")
    return {"status": "failed", "reason": None if pd.isna(reason) else str(reason),
            "trial": {"number": int(trial["number"]),
                      "study_name": None if pd.isna(trial.get("study_name")) else trial.get("study_name")}}


def flatten_config(cfg: DictConfig) -> dict:
    """Dotted keys -> leaf values, interpolations resolved where possible.

    ``group._target_: torch.optim.SGD`` becomes ``group: SGD`` (other instantiate keywords are dropped),
    lists become their JSON text so that a row stays one scalar per column and survives a CSV round trip.
    """
    flat: dict = {}

    def walk(prefix: str, node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                key = str(key)
                dotted = f"{prefix}.{key}" if prefix else key
                if key == "_target_":
                    if prefix:
                        flat[prefix] = str(_resolved(cfg, dotted, value)).rsplit(".", 1)[-1]
                elif key not in _INSTANTIATE_KEYS:
                    walk(dotted, value)
        else:
            value = _resolved(cfg, prefix, node)
            flat[prefix] = json.dumps(value) if isinstance(value, (list, dict)) else value

    walk("", OmegaConf.to_container(cfg, resolve=False))
    return flat


def _resolved(cfg: DictConfig, key: str, raw: object) -> object:
    """The resolved value of ``key``; the raw text when it needs Hydra's runtime (``${hydra:...}``) to resolve."""
    if not (isinstance(raw, str) and "${" in raw) and not isinstance(raw, (list, dict)):
        return raw
    # The run's own Hydra runtime is gone; a Hydra config set in this process (a test, a notebook)
    # would resolve it to this process's values, so the text is kept.
    if isinstance(raw, str) and "${hydra:" in raw:
        return raw
    try:
        value = OmegaConf.select(cfg, key, throw_on_resolution_failure=True)
    except Exception:
        return raw
    if isinstance(value, (DictConfig, ListConfig)):
        try:
            return OmegaConf.to_container(value, resolve=True)
        except Exception:
            return OmegaConf.to_container(value, resolve=False)
    return value


def _read_hydra(run_dir: Path) -> dict:
    """What Hydra recorded about the job: mode, job number, config group choices, command-line overrides."""
    info: dict = {}
    try:
        hydra = (yaml.safe_load((run_dir / ".hydra" / "hydra.yaml").read_text(encoding="utf-8")) or {})
        hydra = hydra.get("hydra", {})
    except (OSError, yaml.YAMLError):
        hydra = {}
    if hydra:
        info["mode"] = str(hydra.get("mode", ""))
        num = (hydra.get("job") or {}).get("num")
        if isinstance(num, int):
            info["job_num"] = num
        choices = (hydra.get("runtime") or {}).get("choices") or {}
        info["sweep_choice"] = choices.get("sweep")
        info["choices"] = {group.replace("/", "."): choice for group, choice in choices.items()
                           if not group.startswith("hydra/") and group != "sweep" and choice is not None}
    try:
        overrides = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text(encoding="utf-8"))
        info["overrides"] = " ".join(str(item) for item in overrides or [])
    except (OSError, yaml.YAMLError):
        pass
    return info


def _sweep_name(run_dir: Path, sweep_dir: Path | None, hydra: dict) -> str | None:
    """The sweep a job belongs to (None for a single run): outputs/sweeps/<name>/<time>/<job> -> <name>."""
    if "MULTIRUN" not in hydra.get("mode", "") and sweep_dir is None:
        return None
    parts = (sweep_dir or run_dir.parent).resolve().parts
    if "sweeps" in parts[:-1]:
        index = len(parts) - 1 - parts[::-1].index("sweeps")
        if index + 1 < len(parts) - 1:
            return parts[index + 1]
    choice = hydra.get("sweep_choice")
    return str(choice) if choice not in (None, "null") else (sweep_dir or run_dir.parent).parent.name


def collect_runs(dirs: Iterable[Path], warn: Warn = warn_stderr) -> pd.DataFrame:
    """One row per finished run under ``dirs``; crashed or half-written runs are skipped with one warning each.

    Raises AesweepError when a directory is missing or no run directory is found at all.
    """
    rows = []
    dirs = [Path(d) for d in dirs]
    for root in dirs:
        if not root.is_dir():
            raise AesweepError(f"no such directory: '{root}' (give run, sweep or outputs directories)")
    seen: set[Path] = set()
    for root in dirs:
        run_dirs = find_run_dirs(root)
        if not run_dirs:
            raise AesweepError(f"no Hydra run directories under '{root}' "
                               "(a run directory holds .hydra/config.yaml)")
        for run_dir in run_dirs:
            if run_dir.resolve() in seen:
                continue
            seen.add(run_dir.resolve())
            try:
                rows.append(read_run(run_dir))
            except SkippedRun as skipped:
                warn(f"skipped {run_dir}: {skipped}")
    if not rows:  # run folders, none finished yet: a table with its columns and no row, still a readable CSV
        return pd.DataFrame(columns=[*RUN_COLUMNS, *TAIL_COLUMNS])
    return _order_columns(_with_integer_columns(pd.DataFrame(rows), rows))


def _with_integer_columns(runs: pd.DataFrame, rows: list[dict]) -> pd.DataFrame:
    """Columns whose values are all ints stay integers (nullable Int64) despite missing values: 16, not 16.0."""
    for column in runs.columns:
        values = [row[column] for row in rows if row.get(column) is not None]
        if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            runs[column] = runs[column].astype("Int64")
    return runs


def _order_columns(runs: pd.DataFrame) -> pd.DataFrame:
    front = [c for c in RUN_COLUMNS if c in runs.columns]
    metrics = [c for split in record.SPLITS for c in runs.columns if c.startswith(f"{split}.")]
    tail = [c for c in TAIL_COLUMNS if c in runs.columns]
    config = sorted(c for c in runs.columns if c not in set(front) | set(metrics) | set(tail) | {DATASET})
    return runs[front + [DATASET] + config + metrics + tail]


def write_runs_csv(runs: pd.DataFrame, path: Path) -> None:
    """Write the runs table atomically (a reader never sees a truncated CSV)."""
    write_csv_atomic(path, runs)


def describe_runs(runs: pd.DataFrame) -> str:
    """'3 sweeps, 2 single runs' - a one-line summary for the command line."""
    if runs.empty or "sweep" not in runs:
        return "0 sweeps, 0 single runs"
    sweeps = runs["sweep_dir"].dropna().nunique() if "sweep_dir" in runs else runs["sweep"].dropna().nunique()
    singles = int(runs["sweep"].isna().sum())
    return f"{sweeps} sweep{'s' * (sweeps != 1)}, {singles} single run{'s' * (singles != 1)}"


def read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise AesweepError(f"cannot read '{path}' as a CSV table: {folded(error)}") from None
