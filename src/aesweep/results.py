"""Results tables: collect finished runs into one DataFrame, compare configurations, plot a sweep.

Data flows one way: Hydra run directories (``.hydra/config.yaml``, ``.hydra/hydra.yaml``,
``.hydra/overrides.yaml``, ``metrics.json``) and sweep tables (``trials.csv``) -> one tidy
DataFrame with one row per run -> leaderboards and PNGs. Nothing here trains or reaches back
into a run; a run's ``metrics.json`` is the single source of its numbers.

A run row holds bookkeeping columns (``run_dir``, ``sweep``, ``trial``, ``state``, ...), flattened
config columns (``model.bottleneck``, ``optimizer`` = the short class name of ``optimizer._target_``)
and every metric (``val.mapped_acc``, ``test.nmi``, ...). Runs whose config columns are equal form a
*configuration*; ``seed`` is bookkeeping, so repeats with several seeds share a configuration.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf

from aesweep.errors import AesweepError, ConfigError
from aesweep.io import write_csv_atomic

Warn = Callable[[str], None]

METRIC_SPLITS = ("val", "test", "fit")
METRIC_NAMES = ("mapped_acc", "hungarian_acc", "nmi", "ari", "clusters_used", "recon_mse")
DEFAULT_METRIC = "val.mapped_acc"
BASELINE_SWEEP = "baseline"
# metrics.json "status" -> Optuna's trial state names, so runs.csv and trials.csv share a `state` column.
STATE_OF_STATUS = {"completed": "COMPLETE", "pruned": "PRUNED", "diverged": "FAIL", "failed": "FAIL"}
COMPLETE = "COMPLETE"

# Columns that describe a run rather than its configuration (runs.csv and trials.csv alike).
RUN_COLUMNS = ("run_dir", "sweep", "sweep_dir", "job", "trial", "study_name", "status", "state", "reason", "seed")
TAIL_COLUMNS = ("params", "epochs", "epochs_planned", "seconds", "device_used", "overrides")
_BOOKKEEPING = set(RUN_COLUMNS) | set(TAIL_COLUMNS) | {"number", "value", "datetime_start", "datetime_complete", "worker",
                                                       "duration", "_scope", "_source"}
_BOOKKEEPING_PREFIXES = tuple(f"{split}." for split in METRIC_SPLITS) + ("values_", "trial.", "hydra.", "versions.",
                                                                         "user_attrs_", "system_attrs_")
# Hydra's instantiate keywords: never part of a configuration's identity.
_INSTANTIATE_KEYS = {"_target_", "_partial_", "_recursive_", "_convert_", "_args_"}


def _warn_stderr(message: str) -> None:
    print(f"aesweep: warning: {message}", file=sys.stderr)


# --------------------------------------------------------------------------------------------- collect


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
    if not metrics_path.is_file():
        metrics = _failed_trial(run_dir)
        if metrics is None:
            raise SkippedRun("no metrics.json (crashed, killed or still running)")
    else:
        try:
            metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise SkippedRun(f"metrics.json is not valid JSON (half-written?): {error}") from None
    if not isinstance(metrics, dict):
        raise SkippedRun("metrics.json is not a JSON object")
    try:
        config = flatten_config(OmegaConf.load(run_dir / ".hydra" / "config.yaml"))
    except Exception as error:  # yaml or omegaconf errors: either way the run cannot be described
        raise SkippedRun(f".hydra/config.yaml is unreadable: {_one_line(error)}") from None
    hydra = _read_hydra(run_dir)
    for group, choice in hydra.get("choices", {}).items():
        config.setdefault(group, choice)

    row: dict = {"run_dir": str(run_dir)}
    sweep = _sweep_name(run_dir, hydra)
    row["sweep"] = sweep
    row["sweep_dir"] = str(run_dir.parent) if sweep is not None else None
    row["job"] = None
    if sweep is not None:
        row["job"] = hydra.get("job_num", int(run_dir.name) if run_dir.name.isdigit() else None)
    trial = metrics.get("trial") or {}
    row["trial"] = trial.get("number")
    row["study_name"] = trial.get("study_name")
    status = metrics.get("status")
    row["status"] = status
    row["state"] = STATE_OF_STATUS.get(status, str(status).upper())
    row["reason"] = metrics.get("reason")
    row["seed"] = config.pop("seed", metrics.get("seed"))
    # trial.* keys are the sweeper's link to its study, already in the trial/study_name columns.
    row.update({key: value for key, value in config.items() if not key.startswith("trial.")})
    for split in METRIC_SPLITS:
        values = metrics.get(split) or {}
        for name in METRIC_NAMES:
            row[f"{split}.{name}"] = values.get(name)
        for name, value in values.items():
            row.setdefault(f"{split}.{name}", value)
    for key in ("params", "epochs", "epochs_planned", "seconds"):
        row[key] = metrics.get(key)
    row["device_used"] = metrics.get("device")
    row["overrides"] = hydra.get("overrides")
    return row


def _failed_trial(run_dir: Path) -> dict | None:
    """What the sweep's trials.csv says of a trial that ended without metrics.json, when it says FAIL.

    A trial refused by its config, crashed, or left running by a killed sweep writes no metrics.json;
    its sweep recorded why, so it is a `failed` row with that reason rather than a run to skip.
    """
    trials_csv = run_dir.parent / "trials.csv"
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


def _sweep_name(run_dir: Path, hydra: dict) -> str | None:
    """The sweep a job belongs to (None for a single run): outputs/sweeps/<name>/<time>/<job> -> <name>."""
    in_sweep = "MULTIRUN" in hydra.get("mode", "") or (run_dir.parent / "multirun.yaml").is_file()
    if not in_sweep:
        return None
    parts = run_dir.resolve().parts
    if "sweeps" in parts[:-2]:
        index = len(parts) - 1 - parts[::-1].index("sweeps")
        if index + 1 < len(parts) - 1:
            return parts[index + 1]
    choice = hydra.get("sweep_choice")
    return str(choice) if choice not in (None, "null") else run_dir.parent.parent.name


def collect_runs(dirs: Iterable[Path], warn: Warn = _warn_stderr) -> pd.DataFrame:
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
    metrics = [c for split in METRIC_SPLITS for c in runs.columns if c.startswith(f"{split}.")]
    tail = [c for c in TAIL_COLUMNS if c in runs.columns]
    config = sorted(c for c in runs.columns if c not in set(front) | set(metrics) | set(tail))
    return runs[front + config + metrics + tail]


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


# --------------------------------------------------------------------------------------------- compare


def config_columns(table: pd.DataFrame) -> list[str]:
    """The columns that define a configuration: everything but bookkeeping, metrics and ``seed``."""
    return [c for c in table.columns if c not in _BOOKKEEPING and not c.startswith(_BOOKKEEPING_PREFIXES)]


def load_runs(sources: Sequence[Path], warn: Warn = _warn_stderr) -> pd.DataFrame:
    """Concatenate runs from runs.csv / trials.csv files and run or sweep directories (collected on the fly).

    A trials.csv names only the searched parameters, so its rows get a ``_scope`` of their own file:
    they form configurations only with rows of the same sweep.
    """
    tables = []
    for source in map(Path, sources):
        if source.is_dir():
            table = collect_runs([source], warn)
            table["_scope"] = ""
        elif source.is_file():
            table = _read_csv(source)
            is_trials = "number" in table.columns and "status" not in table.columns
            table["_scope"] = str(source) if is_trials else ""
            if "sweep" not in table.columns:
                table.insert(0, "sweep", _sweep_of_table(source, table))
        else:
            raise AesweepError(f"no such file or directory: '{source}' "
                               "(give runs.csv/trials.csv files or run/sweep directories)")
        if "state" not in table.columns:
            table["state"] = COMPLETE
        table["_source"] = str(source)
        tables.append(table)
    runs = pd.concat(tables, ignore_index=True, sort=False)
    if "run_dir" in runs.columns:
        duplicated = runs["run_dir"].notna() & runs.duplicated("run_dir")
        if duplicated.any():
            warn(f"{int(duplicated.sum())} runs appear in more than one input (same run_dir): counted once")
            runs = runs[~duplicated].reset_index(drop=True)
    return runs


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise AesweepError(f"cannot read '{path}' as a CSV table: {_one_line(error)}") from None


def _sweep_of_table(path: Path, table: pd.DataFrame) -> str:
    """outputs/sweeps/<name>/<time>/trials.csv -> <name>; else the study name; else the file's folder name."""
    parts = path.resolve().parts
    if "sweeps" in parts[:-2]:
        index = len(parts) - 1 - parts[::-1].index("sweeps")
        if index + 2 < len(parts):
            return parts[index + 1]
    if "study_name" in table.columns and table["study_name"].notna().any():
        return str(table["study_name"].dropna().iloc[0])
    return path.parent.name


def filter_runs(runs: pd.DataFrame, where: str) -> pd.DataFrame:
    """Rows matching a pandas query; dotted column names may be written bare (``model.bottleneck > 8``)."""
    visible = [c for c in runs.columns if not c.startswith("_")]
    try:
        kept = runs.query(_backtick_dotted_names(where, runs.columns), engine="python")
        if not isinstance(kept, pd.DataFrame):
            raise ValueError("the expression does not select rows")
    except Exception as error:  # pandas raises many kinds (SyntaxError, UndefinedVariableError, TypeError...)
        raise AesweepError(f"--where {where!r}: {_one_line(error)}; columns: {', '.join(visible)}") from None
    if kept.empty:
        raise AesweepError(f"--where {where!r} matched none of the {len(runs)} runs")
    return kept


_QUOTED = re.compile(r"""('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|`[^`]*`)""")


def _backtick_dotted_names(expr: str, columns: Iterable[str]) -> str:
    dotted = sorted((c for c in columns if not c.isidentifier()), key=len, reverse=True)
    pieces = _QUOTED.split(expr)
    for i in range(0, len(pieces), 2):  # even pieces lie outside quotes and backticks
        for name in dotted:
            pieces[i] = re.sub(rf"(?<![\w.`]){re.escape(name)}(?![\w`])", f"`{name}`", pieces[i])
    return "".join(pieces)


def _minimized(metric: str) -> bool:
    """Reconstruction errors and losses are better when lower; every other metric when higher."""
    return "mse" in metric or "loss" in metric


def _test_metric(metric: str) -> str | None:
    return "test." + metric[len("val."):] if metric.startswith("val.") else None


def _finished(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    return runs[(runs["state"] == COMPLETE) & runs[metric].notna()]


def _summarize(group: pd.DataFrame, metric: str) -> dict:
    """n, mean, sample std (ddof=1; NaN for one run), best value, the best run's test metrics."""
    values = group[metric].astype(float)
    best = values.idxmin() if _minimized(metric) else values.idxmax()
    test = _test_metric(metric)
    summary = {
        "runs": len(group),
        f"mean {metric}": values.mean(),
        f"std {metric}": values.std(ddof=1),
        f"best {metric}": values[best],
    }
    if test and test in group.columns:
        summary[f"{test} of best"] = group.at[best, test]
        summary[f"mean {test}"] = group[test].astype(float).mean()
    summary["best run_dir"] = group.at[best, "run_dir"] if "run_dir" in group.columns else None
    return summary


def configurations(runs: pd.DataFrame, metric: str = DEFAULT_METRIC) -> pd.DataFrame:
    """One row per configuration (runs differing only by seed): its config columns, sweeps, seeds, summary."""
    keys = config_columns(runs) + ["_scope"]
    rows = []
    for _, group in runs.groupby(keys, dropna=False, sort=False):
        row = {key: group[key].iloc[0] for key in keys}
        row["sweep"] = "+".join(sorted(group["sweep"].dropna().astype(str).unique())) if "sweep" in group else ""
        summary = _summarize(group, metric)
        row["runs"] = summary.pop("runs")
        if "seed" in group.columns:
            row["seeds"] = ",".join(_compact(s) for s in sorted(group["seed"].dropna().unique()))
        row.update(summary)
        rows.append(row)
    table = pd.DataFrame(rows)
    return table[_shown_config(table, keys) + [c for c in table.columns if c not in keys]]


def group_by(runs: pd.DataFrame, by: Sequence[str], metric: str = DEFAULT_METRIC) -> pd.DataFrame:
    """One row per value of the ``by`` columns, summarizing every run with that value."""
    config_keys = config_columns(runs) + ["_scope"]
    rows = []
    for values, group in runs.groupby(list(by), dropna=False, sort=False):
        row = dict(zip(by, values))
        row["runs"] = len(group)
        row["configs"] = group.groupby(config_keys, dropna=False).ngroups
        row.update(_summarize(group, metric))
        rows.append(row)
    return pd.DataFrame(rows)


def _shown_config(table: pd.DataFrame, keys: Sequence[str]) -> list[str]:
    """The config columns worth showing: those whose value differs between rows."""
    return [k for k in keys if k != "_scope" and table[k].astype(str).nunique(dropna=False) > 1]


def baseline_mean(runs: pd.DataFrame, baseline: str | None, metric: str,
                  warn: Warn = _warn_stderr) -> tuple[float, int, str] | None:
    """(mean, number of runs, label) of the baseline, or None when there is no default baseline sweep.

    ``baseline`` is a sweep name among ``runs`` or a path to load; None means the sweep named 'baseline'.
    """
    name = BASELINE_SWEEP if baseline is None else baseline
    if baseline is not None and Path(baseline).exists():
        rows, label = load_runs([Path(baseline)], warn), f"'{baseline}'"
        if metric not in rows.columns:
            raise ConfigError("--baseline", baseline, f"a table or directory with a {metric} column")
    else:
        sweeps = sorted(runs["sweep"].dropna().astype(str).unique()) if "sweep" in runs else []
        if name not in sweeps:
            if baseline is None:
                return None
            raise ConfigError("--baseline", baseline,
                              f"a sweep among the inputs ({', '.join(sweeps) or 'none'}) "
                              "or an existing runs.csv/trials.csv/directory")
        rows, label = runs[runs["sweep"] == name], f"sweep '{name}'"
        studies = sorted(rows["study_name"].dropna().astype(str).unique()) if "study_name" in rows else []
        if len(studies) > 1:
            # several studies ran the baseline file (other budgets, other names): keep the one named like the
            # sweep, as the sweeper's own summary does, rather than pool their budgets
            if name in studies:
                rows, label = rows[rows["study_name"] == name], f"sweep '{name}', study '{name}'"
            warn(f"{len(studies)} studies ran sweep '{name}' ({', '.join(studies)}): the baseline is "
                 f"{'study ' + repr(name) if name in studies else 'all of them pooled'}; --baseline PATH picks one")
    finished = _finished(rows, metric)
    if finished.empty:
        raise AesweepError(f"baseline {label} has no completed run with {metric}")
    return float(finished[metric].astype(float).mean()), len(finished), label


def add_gain(table: pd.DataFrame, metric: str, base: float) -> pd.DataFrame:
    """Gain of each row's mean over the baseline mean: in points (x100, for fractions) and as a ratio."""
    table = table.copy()
    mean = table[f"mean {metric}"].astype(float)
    table["gain pts"] = (mean - base) * 100.0
    table["gain ratio"] = mean / base if base else np.nan
    return table


def compare(sources: Sequence[Path], by: str | None = None, where: str | None = None, sort: str | None = None,
            top: int | None = None, fmt: str = "table", baseline: str | None = None,
            metric: str = DEFAULT_METRIC, warn: Warn = _warn_stderr,
            note: Warn = _warn_stderr) -> str:
    """The leaderboard as text in ``fmt`` (table, md or csv). Notes go to ``note`` for csv, under the table else."""
    runs = load_runs(sources, warn)
    numeric = [c for c in runs.columns
               if c.startswith(tuple(f"{split}." for split in METRIC_SPLITS)) and _is_numeric_column(runs[c])]
    if metric not in numeric:
        raise ConfigError("--metric", metric, f"a numeric metric column: {', '.join(numeric) or 'none found'}")
    keys = None
    if by:
        keys = [key.strip() for key in by.split(",") if key.strip()]
        allowed = config_columns(runs) + [c for c in ("sweep", "seed", "state") if c in runs.columns]
        for key in keys:
            if key not in runs.columns:
                raise ConfigError("--by", key, f"a column of the runs: {', '.join(allowed)}")
    base = baseline_mean(runs, baseline, metric, warn)
    notes = []
    if where:
        runs = filter_runs(runs, where)
    finished = _finished(runs, metric)
    left_out = len(runs) - len(finished)
    if finished.empty:
        raise AesweepError(f"none of the {len(runs)} runs completed with a {metric} value")
    table = group_by(finished, keys, metric) if keys else configurations(finished, metric)
    if base is not None:
        table = add_gain(table, metric, base[0])
    table = table[[c for c in table.columns if c != "best run_dir"] + ["best run_dir"]]
    table = _sort(table, sort, metric)
    if top:
        table = table.head(top)

    unit = f"value of {', '.join(keys)}" if keys else "configuration (runs differing only by seed)"
    notes.append(f"one row per {unit}; mean and std over its completed runs, std with ddof=1 (empty for a "
                 "single run); test metrics of its best run")
    if left_out:
        notes.append(f"{left_out} pruned, failed or diverged run{'s' * (left_out != 1)} left out")
    if not keys and "seed" in finished.columns:
        reruns = int((finished.groupby(config_columns(finished) + ["_scope"], dropna=False)["seed"]
                      .agg(lambda seeds: len(seeds) > seeds.nunique())).sum())
        if reruns:
            notes.append(f"{reruns} configuration{'s' * (reruns != 1)} ran a seed more than once (runs > seeds): "
                         "their std is partly rerun noise, not only the spread over seeds")
    if base is not None:
        notes.append(f"gain: mean {metric} minus the baseline's mean {base[0]:.4f} ({base[2]}, {base[1]} runs), "
                     "in points and as a ratio")
    elif baseline is None:
        notes.append(f"no sweep named '{BASELINE_SWEEP}' among the inputs: no gain columns "
                     "(use --baseline NAME_OR_PATH)")
    return format_table(table, fmt, notes, note)


def _sort(table: pd.DataFrame, sort: str | None, metric: str) -> pd.DataFrame:
    column, _, order = (sort or "").partition(":")
    if not column:
        return table.sort_values(f"mean {metric}", ascending=_minimized(metric), na_position="last",
                                 kind="stable")
    if column not in table.columns:
        raise ConfigError("--sort", sort, f"an output column, optionally with :asc or :desc: "
                                          f"{', '.join(table.columns)}")
    if order not in ("", "asc", "desc"):
        raise ConfigError("--sort", sort, f"{column}, {column}:asc or {column}:desc")
    try:
        return table.sort_values(column, ascending=order == "asc", na_position="last", kind="stable")
    except TypeError:  # mixed types in one column (numbers and text): order by their text
        return table.sort_values(column, ascending=order == "asc", na_position="last", kind="stable",
                                 key=lambda values: values.astype(str))


# --------------------------------------------------------------------------------------------- formats


def format_table(table: pd.DataFrame, fmt: str, notes: Sequence[str] = (), note: Warn = _warn_stderr) -> str:
    """Render as ``table`` (aligned text), ``md`` (markdown, notes as an italic paragraph) or ``csv``."""
    if fmt == "csv":
        for line in notes:
            note(line)
        return table.to_csv(index=False)
    cells = pd.DataFrame({column: [_cell(column, value) for value in table[column]] for column in table.columns})
    if fmt == "md":
        lines = ["| " + " | ".join(_md_escape(c) for c in cells.columns) + " |",
                 "|" + "|".join("---:" if _is_numeric_column(table[c]) else "---" for c in cells.columns) + "|"]
        lines += ["| " + " | ".join(_md_escape(v) for v in row) + " |" for row in cells.itertuples(index=False)]
        text = "\n".join(lines) + "\n"
        return text + ("\n" + " ".join(f"_{n}._" for n in notes) + "\n" if notes else "")
    if fmt == "table":
        text = cells.to_string(index=False) + "\n"
        return text + "".join(f"# {n}\n" for n in notes)
    raise ConfigError("--format", fmt, "table, md or csv")


def _cell(column: str, value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if column == "gain pts":
        return f"{value:+.2f}"
    if column == "gain ratio":
        return f"{value:.3f}"
    if isinstance(value, (float, np.floating)) and column.startswith(("mean ", "std ", "best ") + tuple(
            f"{split}." for split in METRIC_SPLITS)):
        return f"{value:.4f}"
    return _compact(value)


def _compact(value: object) -> str:
    """16.0 -> '16', 0.001 -> '0.001', True -> 'True'."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _is_numeric_column(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|")


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__


# --------------------------------------------------------------------------------------------- plot


class StorageUnavailable(Exception):
    """The sweep's Optuna study cannot be opened (no study.yaml, missing file, unreachable database)."""


def read_sweep_trials(sweep_dir: Path, warn: Warn = _warn_stderr) -> pd.DataFrame:
    """The sweep's trials: its trials.csv, or else its job directories collected (``number`` = trial or job)."""
    trials_csv = sweep_dir / "trials.csv"
    if trials_csv.is_file():
        trials = _read_csv(trials_csv)
        if "state" not in trials.columns:
            trials["state"] = COMPLETE
    else:
        no_trials = AesweepError(f"'{sweep_dir}' holds no trials.csv and no finished runs: give a sweep "
                                 "directory (outputs/sweeps/<name>/<time>/)")
        try:
            trials = collect_runs([sweep_dir], warn)
        except AesweepError:
            raise no_trials from None
        if trials.empty:  # only run folders of trials that never finished (a sweep killed early)
            raise no_trials
        trials["number"] = trials["trial"].fillna(trials["job"])
    return trials


def read_study_info(sweep_dir: Path) -> dict:
    """``study.yaml`` = {study_name, storage, directions, objectives}; empty when absent or unreadable."""
    try:
        info = yaml.safe_load((sweep_dir / "study.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return info if isinstance(info, dict) else {}


def open_study(info: dict, sweep_dir: Path):
    """Load the study read-only; never creates a storage file. Raises StorageUnavailable with one-line reason."""
    import optuna
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend

    from aesweep.pruning import rdb_url

    if not info:
        raise StorageUnavailable(f"no readable study.yaml in {sweep_dir}")
    storage, name = info.get("storage"), info.get("study_name")
    if not storage:
        raise StorageUnavailable("study.yaml names no storage (the study lived in memory)")
    storage = str(storage)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        if storage.startswith("sqlite:///"):
            path = _existing(storage[len("sqlite:///"):], sweep_dir)
            backend = RDBStorage(f"sqlite:///{path}", skip_table_creation=True)
        elif "://" in storage:
            url, engine_kwargs = rdb_url(storage)  # postgresql:// through psycopg 3, as the sweeper opens it
            backend = RDBStorage(url, engine_kwargs=engine_kwargs, skip_table_creation=True)
        else:  # a journal file
            backend = JournalStorage(JournalFileBackend(str(_existing(storage, sweep_dir))))
        return optuna.load_study(study_name=name, storage=backend)
    except StorageUnavailable:
        raise
    except Exception as error:
        raise StorageUnavailable(f"cannot open study {name!r} in {storage}: {_one_line(error)}") from None


def _existing(path_text: str, sweep_dir: Path) -> Path:
    """A storage file as written (relative to the current directory) or relative to the sweep directory."""
    for candidate in (Path(path_text).expanduser(), sweep_dir / path_text):
        if candidate.is_file():
            return candidate
    raise StorageUnavailable(f"storage file {path_text} not found")


def parameter_importances(study, objectives: Sequence[str], metric: str) -> dict[str, float]:
    """fANOVA importances (seeded, so reruns agree) of the study's params for ``metric``."""
    import optuna

    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    target = None
    if len(study.directions) > 1:
        index = list(objectives).index(metric) if metric in objectives else 0
        target = lambda trial: trial.values[index]  # noqa: E731
    return optuna.importance.get_param_importances(study, evaluator=evaluator, target=target)


def plot_sweep(sweep_dir: Path, note: Warn = _warn_stderr, warn: Warn = _warn_stderr) -> list[Path]:
    """Write history.png, vs_<param>.png per numeric parameter, importances.png and confusion_best.png.

    Returns the paths written. A study storage that cannot be opened costs only importances.png (one note).
    """
    from aesweep import plots

    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise AesweepError(f"no such sweep directory: '{sweep_dir}' (give outputs/sweeps/<name>/<time>/)")
    trials = read_sweep_trials(sweep_dir, warn)
    info = read_study_info(sweep_dir)
    objectives = [str(o) for o in info.get("objectives") or []]
    metric = next((m for m in objectives + [DEFAULT_METRIC, "value"] if m in trials.columns), None)
    if metric is None:
        raise AesweepError(f"{sweep_dir}/trials.csv has no {DEFAULT_METRIC} or value column to plot")
    directions = [str(d).lower() for d in info.get("directions") or []]
    index = objectives.index(metric) if metric in objectives else 0
    maximize = directions[index] != "minimize" if index < len(directions) else not _minimized(metric)
    finished = trials[(trials["state"] == COMPLETE) & trials[metric].notna()]
    if finished.empty:
        raise AesweepError(f"no completed trial with {metric} in {sweep_dir}: nothing to plot")

    if "number" not in finished.columns:
        finished = finished.assign(number=range(len(finished)))
    written = []
    path = sweep_dir / "history.png"
    plots.save_history_png(finished["number"], finished[metric], path, metric, maximize=maximize,
                           title=f"{sweep_dir.parent.name}: {metric} per trial")
    written.append(path)

    searched = {str(key): str(text) for key, text in (info.get("search_space") or {}).items()}
    for param in config_columns(trials):
        values = finished[param]
        if (not _is_numeric_column(values)) or values.nunique() < 2:
            continue
        positive = values.dropna() > 0
        # the axis the sweep searched on (tag(log, ...)); for a sweep without study.yaml, a wide positive spread
        log_x = "log" in searched[param] if param in searched else (
            bool(positive.all()) and values.max() / values.min() >= 100)
        path = sweep_dir / f"vs_{param.replace('/', '_')}.png"
        plots.save_param_scatter_png(values, finished[metric], path, param, metric, log_x=log_x)
        written.append(path)

    try:
        study = open_study(info, sweep_dir)
        importances = parameter_importances(study, objectives, metric)
        if not importances:
            raise StorageUnavailable("the study has no parameters to rank")
    except StorageUnavailable as reason:
        note(f"importances skipped: {reason}")
    except Exception as error:  # optuna refuses too few or constant trials with various errors
        note(f"importances skipped: {_one_line(error)}")
    else:
        path = sweep_dir / "importances.png"
        plots.save_importances_png(importances, path, title=f"parameter importances for {metric}")
        written.append(path)
        note("importances: " + ", ".join(f"{k}={v:.2f}" for k, v in importances.items()))

    best = finished[metric].astype(float).idxmax() if maximize else finished[metric].astype(float).idxmin()
    best_row = finished.loc[best]
    confusion_path = _best_confusion(best_row, sweep_dir, note)
    if confusion_path is not None:
        written.append(confusion_path)
    return written


def _best_confusion(best: pd.Series, sweep_dir: Path, note: Warn) -> Path | None:
    """confusion_best.png from the best run's metrics.json (test split, else fit); None with a note if missing."""
    from aesweep import plots

    candidates = []
    if isinstance(best.get("run_dir"), str):
        run_dir = Path(best["run_dir"])
        candidates += [run_dir, sweep_dir / run_dir.name]
    for key in ("job", "number"):
        if key in best and pd.notna(best[key]):
            candidates.append(sweep_dir / _compact(best[key]))
    for run_dir in candidates:
        try:
            metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            continue
        confusion = metrics.get("confusion") or {}
        split = "test" if confusion.get("test") else "fit"
        if not confusion.get(split):
            note(f"confusion skipped: {run_dir}/metrics.json has no confusion matrix")
            return None
        path = sweep_dir / "confusion_best.png"
        score = (metrics.get(split) or {}).get("mapped_acc")
        title = f"best trial {_compact(best['number'])}, {split} split"
        if score is not None:
            title += f": mapped_acc {score:.4f}"
        plots.save_confusion_png(np.asarray(confusion[split]), path, title=title)
        return path
    note(f"confusion skipped: the best trial's run directory was not found (tried {', '.join(map(str, candidates))})")
    return None
