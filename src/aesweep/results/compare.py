"""`aesweep compare`: leaderboards of configurations across runs.csv / trials.csv files and run folders.

Runs whose configs differ only by `seed` form one configuration: mean and sample std (ddof=1) over its
runs, its best run and that run's test metrics, and the gain of the mean over the baseline's mean. The
dataset is part of a configuration, and each row's gain is over the baseline on its own dataset.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from aesweep import record
from aesweep.errors import AesweepError, ConfigError, folded
from aesweep.results.collect import (BASELINE_SWEEP, COMPLETE, CONFIRM, DATASET, SEARCH, Warn, collect_runs,
                                     config_columns, read_csv, warn_stderr)

CONFIRM_FILE = "confirm.csv"  # beside a sweep's trials.csv: its best trials re-run on fresh seeds
from aesweep.results.table import compact, format_table, is_numeric_column


def load_runs(sources: Sequence[Path], warn: Warn = warn_stderr) -> pd.DataFrame:
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
            table = read_csv(source)
            is_trials = "number" in table.columns  # runs.csv names a run's trial "trial", trials.csv "number"
            table["_scope"] = str(source) if is_trials else ""
            if "sweep" not in table.columns:
                table.insert(0, "sweep", _sweep_of_table(source, table))
            if is_trials:
                table = _with_confirmation_runs(table, source.parent / CONFIRM_FILE)
        else:
            raise AesweepError(f"no such file or directory: '{source}' "
                               "(give runs.csv/trials.csv files or run/sweep directories)")
        if "state" not in table.columns:
            table["state"] = COMPLETE
        if DATASET not in table.columns:
            table[DATASET] = [_dataset_of_run(run_dir) for run_dir in table.get("run_dir", [None] * len(table))]
        table["_source"] = str(source)
        tables.append(table)
    runs = pd.concat(tables, ignore_index=True, sort=False)
    if runs[DATASET].isna().all():  # no row says its dataset: compared as runs of one
        runs = runs.drop(columns=DATASET)
    if "run_dir" in runs.columns:
        duplicated = runs["run_dir"].notna() & runs.duplicated("run_dir")
        if duplicated.any():
            warn(f"{int(duplicated.sum())} runs appear in more than one input (same run_dir): counted once")
            runs = runs[~duplicated].reset_index(drop=True)
    return runs


def _dataset_of_run(run_dir: object) -> str | None:
    """The dataset of a row its table does not name one for (a trials.csv; a runs.csv older than the column), from
    its run record: the run folder's, or for a trial over seeds its first seed's; None where none is readable."""
    if not isinstance(run_dir, str):
        return None
    folder = Path(run_dir)
    for candidate in (folder, *sorted(folder.glob("seed*"))):
        try:
            return record.dataset(record.read(candidate))
        except record.RecordUnreadable:
            continue
    return None


def _dataset_key(value: object) -> str | None:
    return None if pd.isna(value) else str(value)


def _with_confirmation_runs(trials: pd.DataFrame, confirm_csv: Path) -> pd.DataFrame:
    """A trials.csv and the runs its sweep re-ran on fresh seeds (confirm.csv beside it): each such run a row
    of its trial's configuration with role `confirm`, its seed and its own metrics."""
    trials = trials.assign(role=SEARCH)
    if not confirm_csv.is_file():
        return trials
    runs = read_csv(confirm_csv)
    metrics = [c for c in runs.columns if c.startswith(tuple(f"{split}." for split in record.SPLITS))]
    by_number = trials.set_index("number")
    rows = []
    for _, run in runs.iterrows():
        if run["trial"] not in by_number.index:
            continue
        row = by_number.loc[run["trial"]].to_dict()
        row.update({name: None for name in row if name.startswith(tuple(f"{s}." for s in record.SPLITS))})
        row.update(number=run["trial"], role=CONFIRM, seed=run["seed"], state=run["state"], run_dir=run["run_dir"],
                   **{name: run[name] for name in metrics})
        rows.append(row)
    return pd.concat([trials, pd.DataFrame(rows)], ignore_index=True) if rows else trials


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
        raise AesweepError(f"--where {where!r}: {folded(error)}; columns: {', '.join(visible)}") from None
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


def minimized(metric: str) -> bool:
    """Reconstruction errors and losses are better when lower; every other metric when higher."""
    return "mse" in metric or "loss" in metric


def _test_metric(metric: str) -> str | None:
    return "test." + metric[len("val."):] if metric.startswith("val.") else None


def _finished(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    return runs[(runs["state"] == COMPLETE) & runs[metric].notna()]


def _summarize(group: pd.DataFrame, metric: str) -> dict:
    """n, mean, sample std (ddof=1; NaN for one run), best value, the best run's test metrics."""
    values = group[metric].astype(float)
    best = values.idxmin() if minimized(metric) else values.idxmax()
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


def configurations(runs: pd.DataFrame, metric: str = record.DEFAULT_OBJECTIVE,
                   confirmations: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per configuration (runs differing only by seed): its config columns, sweeps, seeds, summary, and
    beside it the configuration's runs on fresh seeds after the search (`confirmations`), if any."""
    keys = config_columns(runs) + ["_scope"]
    shown = _test_metric(metric) or metric
    confirmed: dict[str, pd.Series] = {}
    if confirmations is not None and shown in confirmations.columns:
        for values, group in _finished(confirmations, shown).groupby(keys, dropna=False, sort=False):
            confirmed[_key_text(values)] = group[shown].astype(float)
    rows = []
    for values, group in runs.groupby(keys, dropna=False, sort=False):
        row = {key: group[key].iloc[0] for key in keys}
        row["sweep"] = "+".join(sorted(group["sweep"].dropna().astype(str).unique())) if "sweep" in group else ""
        summary = _summarize(group, metric)
        row["runs"] = summary.pop("runs")
        if "seed" in group.columns:
            row["seeds"] = ",".join(compact(s) for s in sorted(group["seed"].dropna().unique()))
        row.update(summary)
        if confirmed:
            scores = confirmed.get(_key_text(values), pd.Series(dtype=float))
            row[f"confirmed {shown}"] = scores.mean() if len(scores) else np.nan
            row[f"confirmed std {shown}"] = scores.std(ddof=1) if len(scores) > 1 else np.nan
            row[f"confirmed worst {shown}"] = (scores.max() if minimized(shown) else scores.min()) if len(scores) \
                else np.nan
            row["confirmed runs"] = len(scores)
        rows.append(row)
    table = pd.DataFrame(rows)
    return table[_shown_config(table, keys) + [c for c in table.columns if c not in keys]]


def _key_text(values: object) -> str:
    """A configuration's key, comparable across tables whose columns were read with different dtypes."""
    values = values if isinstance(values, tuple) else (values,)
    return "|".join("" if pd.isna(v) else compact(v) for v in values)


def group_by(runs: pd.DataFrame, by: Sequence[str], metric: str = record.DEFAULT_OBJECTIVE) -> pd.DataFrame:
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
    """The config columns worth showing: those whose value differs between rows, and the dataset, which each
    row's gain is measured on (`compare` drops it again when all rows share one)."""
    return [k for k in keys if k == DATASET or (k != "_scope" and table[k].astype(str).nunique(dropna=False) > 1)]


Baseline = tuple[float, int, str]  # mean, number of runs, label


def baseline_means(runs: pd.DataFrame, baseline: str | None, metric: str,
                   warn: Warn = warn_stderr) -> dict[str | None, Baseline] | None:
    """The baseline per dataset (None: runs that name none): its mean, number of runs and label; None when there
    is no default baseline sweep.

    ``baseline`` is a sweep name among ``runs`` or a path to load; None means the sweep named 'baseline'.
    """
    name = BASELINE_SWEEP if baseline is None else baseline
    if baseline is not None and Path(baseline).exists():
        rows, label, sweep = load_runs([Path(baseline)], warn), f"'{baseline}'", None
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
        rows, label, sweep = runs[runs["sweep"] == name], f"sweep '{name}'", name
    bases = {}
    datasets = rows[DATASET] if DATASET in rows.columns else pd.Series(None, index=rows.index, dtype=object)
    for dataset, mine in rows.groupby(datasets.map(_dataset_key), dropna=False, sort=True):
        bases[_dataset_key(dataset)] = _baseline_of(mine, sweep, _dataset_key(dataset), label, metric, warn)
    finished = {dataset: base for dataset, base in bases.items() if base is not None}
    if not finished:
        raise AesweepError(f"baseline {label} has no completed run with {metric}")
    return finished


def _baseline_of(rows: pd.DataFrame, sweep: str | None, dataset: str | None, label: str, metric: str,
                 warn: Warn) -> Baseline | None:
    """The baseline runs of one dataset (of the sweep named `sweep`, or None: a table or folder): their mean,
    count and label; None when none completed."""
    studies = sorted(rows["study_name"].dropna().astype(str).unique()) if "study_name" in rows else []
    if sweep is not None and len(studies) > 1:
        # several studies ran the baseline file (other budgets, other names): keep the one the sweeper's own
        # summary compares with (named like the sweep, for this dataset) rather than pool their budgets
        own = record.study_name(sweep, dataset or record.DATASET_OF_UNNAMED)
        if own in studies:
            rows, label = rows[rows["study_name"] == own], f"{label}, study '{own}'"
        warn(f"{len(studies)} studies ran sweep '{sweep}' ({', '.join(studies)}): the baseline is "
             f"{'study ' + repr(own) if own in studies else 'all of them pooled'}; --baseline PATH picks one")
    finished = _finished(rows, metric)
    if finished.empty:
        return None
    return float(finished[metric].astype(float).mean()), len(finished), label


def add_gain(table: pd.DataFrame, metric: str, bases: dict[str | None, Baseline]) -> pd.DataFrame:
    """Gain of each row's mean over the baseline mean on its dataset: in points (x100, for fractions) and as a
    ratio; none for a row whose dataset has no baseline."""
    table = table.copy()
    if list(bases) == [None]:  # a baseline that names no dataset (its run folders are gone): the one for every row
        base = pd.Series(bases[None][0], index=table.index, dtype=float)
    else:
        datasets = table[DATASET] if DATASET in table.columns else pd.Series(None, index=table.index, dtype=object)
        base = datasets.map(lambda dataset: bases.get(_dataset_key(dataset), (np.nan,))[0]).astype(float)
    mean = table[f"mean {metric}"].astype(float)
    table["gain pts"] = (mean - base) * 100.0
    table["gain ratio"] = (mean / base).where(base != 0)
    return table


def _gain_notes(bases: dict[str | None, Baseline], shown: Iterable[object], metric: str) -> list[str]:
    """How the gain columns were computed: one baseline, or one per dataset and those without one."""
    if list(bases) == [None] or (len(bases) == 1 and set(map(_dataset_key, shown)) <= set(bases)):
        (mean, count, label), = bases.values()
        return [f"gain: mean {metric} minus the baseline's mean {mean:.4f} ({label}, {count} runs), "
                "in points and as a ratio"]
    per_dataset = "; ".join(f"{dataset} {mean:.4f} ({label}, {count} runs)"
                            for dataset, (mean, count, label) in bases.items())
    notes = [f"gain: mean {metric} minus the baseline's mean on the same dataset ({per_dataset}), "
             "in points and as a ratio"]
    without = sorted({str(d) for d in map(_dataset_key, shown) if d not in bases})
    if without:
        notes.append(f"no baseline on {', '.join(without)}: no gain for its rows (use --baseline NAME_OR_PATH)")
    return notes


def compare(sources: Sequence[Path], by: str | None = None, where: str | None = None, sort: str | None = None,
            top: int | None = None, fmt: str = "table", baseline: str | None = None,
            metric: str = record.DEFAULT_OBJECTIVE, warn: Warn = warn_stderr,
            note: Warn = warn_stderr) -> str:
    """The leaderboard as text in ``fmt`` (table, md or csv). Notes go to ``note`` for csv, under the table else."""
    runs = load_runs(sources, warn)
    numeric = [c for c in runs.columns
               if c.startswith(tuple(f"{split}." for split in record.SPLITS)) and is_numeric_column(runs[c])]
    if metric not in numeric:
        raise ConfigError("--metric", metric, f"a numeric metric column: {', '.join(numeric) or 'none found'}")
    keys = None
    if by:
        keys = [key.strip() for key in by.split(",") if key.strip()]
        allowed = config_columns(runs) + [c for c in ("sweep", "seed", "state") if c in runs.columns]
        for key in keys:
            if key not in runs.columns:
                raise ConfigError("--by", key, f"a column of the runs: {', '.join(allowed)}")
    bases = baseline_means(runs, baseline, metric, warn)
    notes = []
    if where:
        runs = filter_runs(runs, where)
    confirming = runs["role"] == CONFIRM if "role" in runs.columns else pd.Series(False, index=runs.index)
    confirmations, runs = runs[confirming], runs[~confirming]
    finished = _finished(runs, metric)
    left_out = len(runs) - len(finished)
    if finished.empty:
        raise AesweepError(f"none of the {len(runs)} runs completed with a {metric} value")
    asked = keys or []
    if keys:
        # a row never pools datasets: grouped by its dataset too (dropped again below when there is one)
        keys = ([DATASET] if DATASET in finished.columns and DATASET not in keys else []) + keys
        table = group_by(finished, keys, metric)
    else:
        table = configurations(finished, metric, confirmations)
    if not keys and not confirmations.empty:
        notes.append(f"confirmed: {_test_metric(metric) or metric} of the runs a sweep re-ran on fresh seeds after its "
                     "search (confirm.csv), mean, std and worst; the search's own runs are the other columns")
    if bases is not None:
        table = add_gain(table, metric, bases)
    shown = table[DATASET] if DATASET in table.columns else [None]
    if DATASET in table.columns and table[DATASET].nunique(dropna=False) == 1 and DATASET not in asked:
        table = table.drop(columns=DATASET)  # one dataset: the notes name its baseline
    table = table[[c for c in table.columns if c != "best run_dir"] + ["best run_dir"]]
    table = _sort(table, sort, metric)
    if top:
        table = table.head(top)

    unit = f"value of {', '.join(k for k in keys if k in table.columns)}" if keys else \
        "configuration (runs differing only by seed)"
    notes.append(f"one row per {unit}; mean and std over its completed runs, std with ddof=1 (empty for a "
                 "single run); test metrics of its best run")
    if left_out:
        notes.append(f"{left_out} pruned, failed or diverged run{'s' * (left_out != 1)} left out")
    if not keys and "seed" in finished.columns:
        # only runs that name their seed count: a trials.csv's rows have none (NaN once confirm.csv adds the column)
        reruns = int((finished.groupby(config_columns(finished) + ["_scope"], dropna=False)["seed"]
                      .agg(lambda seeds: seeds.notna().sum() > seeds.nunique())).sum())
        if reruns:
            notes.append(f"{reruns} configuration{'s' * (reruns != 1)} ran a seed more than once (runs > seeds): "
                         "their std is partly rerun noise, not only the spread over seeds")
    if bases is not None:
        notes.extend(_gain_notes(bases, shown, metric))
    elif baseline is None:
        notes.append(f"no sweep named '{BASELINE_SWEEP}' among the inputs: no gain columns "
                     "(use --baseline NAME_OR_PATH)")
    return format_table(table, fmt, notes, note)


def _sort(table: pd.DataFrame, sort: str | None, metric: str) -> pd.DataFrame:
    column, _, order = (sort or "").partition(":")
    if not column:
        return table.sort_values(f"mean {metric}", ascending=minimized(metric), na_position="last",
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
