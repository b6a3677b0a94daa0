"""`aesweep plot`: PNGs for one sweep - history, the objective against each parameter, parameter importances,
the best run's confusion matrix."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from aesweep import record
from aesweep.errors import AesweepError, folded
from aesweep.results.collect import COMPLETE, Warn, collect_runs, config_columns, read_csv, warn_stderr
from aesweep.results.compare import minimized
from aesweep.results.table import compact, is_numeric_column
from aesweep.storage import StorageUnavailable, open_sweep_study, read_study_file


def read_sweep_trials(sweep_dir: Path, warn: Warn = warn_stderr) -> pd.DataFrame:
    """The sweep's trials: its trials.csv, or else its job directories collected (``number`` = trial or job)."""
    trials_csv = sweep_dir / "trials.csv"
    if trials_csv.is_file():
        trials = read_csv(trials_csv)
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


def parameter_importances(study, objectives: Sequence[str], metric: str) -> dict[str, float]:
    """fANOVA importances (seeded, so reruns agree) of the study's params for ``metric``."""
    import optuna

    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    target = None
    if len(study.directions) > 1:
        index = list(objectives).index(metric) if metric in objectives else 0
        target = lambda trial: trial.values[index]  # noqa: E731
    return optuna.importance.get_param_importances(study, evaluator=evaluator, target=target)


def plot_sweep(sweep_dir: Path, note: Warn = warn_stderr, warn: Warn = warn_stderr) -> list[Path]:
    """Write history.png, vs_<param>.png per numeric parameter, importances.png and confusion_best.png.

    Returns the paths written. A study storage that cannot be opened costs only importances.png (one note).
    """
    from aesweep import plots

    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise AesweepError(f"no such sweep directory: '{sweep_dir}' (give outputs/sweeps/<name>/<time>/)")
    trials = read_sweep_trials(sweep_dir, warn)
    info = read_study_file(sweep_dir)
    objectives = [str(o) for o in info.get("objectives") or []]
    metric = next((m for m in objectives + [record.DEFAULT_OBJECTIVE, "value"] if m in trials.columns), None)
    if metric is None:
        raise AesweepError(f"{sweep_dir}/trials.csv has no {record.DEFAULT_OBJECTIVE} or value column to plot")
    directions = [str(d).lower() for d in info.get("directions") or []]
    index = objectives.index(metric) if metric in objectives else 0
    maximize = directions[index] != "minimize" if index < len(directions) else not minimized(metric)
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
        if (not is_numeric_column(values)) or values.nunique() < 2:
            continue
        positive = values.dropna() > 0
        # the axis the sweep searched on (tag(log, ...)); for a sweep without study.yaml, a wide positive spread
        log_x = "log" in searched[param] if param in searched else (
            bool(positive.all()) and values.max() / values.min() >= 100)
        path = sweep_dir / f"vs_{param.replace('/', '_')}.png"
        plots.save_param_scatter_png(values, finished[metric], path, param, metric, log_x=log_x)
        written.append(path)

    try:
        study = open_sweep_study(sweep_dir)
        importances = parameter_importances(study, objectives, metric)
        if not importances:
            raise StorageUnavailable("the study has no parameters to rank")
    except StorageUnavailable as reason:
        note(f"importances skipped: {reason}")
    except Exception as error:  # optuna refuses too few or constant trials with various errors
        note(f"importances skipped: {folded(error)}")
    else:
        path = sweep_dir / "importances.png"
        plots.save_importances_png(importances, path, title=f"parameter importances for {metric}")
        written.append(path)
        note("importances: " + ", ".join(f"{k}={v:.2f}" for k, v in importances.items()))

    # the trial the sweep ranks best: by its value - over seeds, their statistic (the worst seed, say), where
    # `metric` holds their mean - else by the metric itself
    ranked = next(column for column in (f"values_{metric}", "value", metric)
                  if column in finished.columns and finished[column].notna().all())
    best = finished[ranked].astype(float).idxmax() if maximize else finished[ranked].astype(float).idxmin()
    best_row = finished.loc[best]
    confusion_path = _best_confusion(best_row, sweep_dir, note, metric)
    if confusion_path is not None:
        written.append(confusion_path)
    return written


def _best_confusion(best: pd.Series, sweep_dir: Path, note: Warn, metric: str) -> Path | None:
    """confusion_best.png from the best run's metrics.json (test split, else fit); None with a note if missing.

    A trial run over seeds keeps its runs in ``<trial>/seed<s>/``: the one drawn is the run whose value is nearest
    the trial's (its worst seed, for a trial ranked by its worst); the title names the seed.
    """
    from aesweep import plots

    candidates = []
    if isinstance(best.get("run_dir"), str):
        run_dir = Path(best["run_dir"])
        candidates += [run_dir, sweep_dir / run_dir.name]
    for key in ("job", "number"):
        if key in best and pd.notna(best[key]):
            candidates.append(sweep_dir / compact(best[key]))
    for folder in candidates:
        found = _read_record(folder)
        if found is not None:
            run_dir, metrics, which = folder, found, ""
            break
        runs = _seed_runs(folder)
        if runs:
            seed, run_dir, metrics = _seed_run_of(best, runs, metric)
            which = f", seed {seed}"
            break
    else:
        note(f"confusion skipped: the best trial's run directory was not found "
             f"(tried {', '.join(map(str, candidates))})")
        return None
    confusion = metrics.get("confusion") or {}
    split = "test" if confusion.get("test") else "fit"
    if not confusion.get(split):
        note(f"confusion skipped: {run_dir}/metrics.json has no confusion matrix")
        return None
    path = sweep_dir / "confusion_best.png"
    score = (metrics.get(split) or {}).get("mapped_acc")
    title = f"best trial {compact(best['number'])}{which}, {split} split"
    if score is not None:
        title += f": mapped_acc {score:.4f}"
    plots.save_confusion_png(np.asarray(confusion[split]), path, title=title, classes=metrics.get("classes"))
    return path


def _read_record(run_dir: Path) -> dict | None:
    """A run folder's record, or None where it has none readable."""
    try:
        return record.read(run_dir)
    except record.RecordUnreadable:
        return None


def _seed_runs(trial_dir: Path) -> list[tuple[int, Path, dict]]:
    """The finished runs of a trial run over seeds (``<trial>/seed<s>/metrics.json``), by seed."""
    runs = []
    for folder in trial_dir.glob("seed*") if trial_dir.is_dir() else []:
        seed = folder.name[len("seed"):]
        metrics = _read_record(folder) if seed.lstrip("-").isdigit() else None
        if metrics is not None:
            runs.append((int(seed), folder, metrics))
    return sorted(runs, key=lambda run: run[0])


def _seed_run_of(best: pd.Series, runs: list[tuple[int, Path, dict]], metric: str) -> tuple[int, Path, dict]:
    """The seed run standing for a trial: the one whose value (trials.csv's `value.seed<s>`, or
    `values_<metric>.seed<s>` with several objectives) is nearest the trial's - its worst seed for a trial ranked
    by its worst -, else its lowest seed."""
    column = f"values_{metric}" if f"values_{metric}" in best.index else "value"
    reported = pd.to_numeric(best.get(column), errors="coerce")

    def distance(run: tuple[int, Path, dict]) -> float:
        value = pd.to_numeric(best.get(f"{column}.seed{run[0]}"), errors="coerce")
        return abs(value - reported) if pd.notna(value) and pd.notna(reported) else math.inf

    return min(runs, key=distance)  # min keeps the first (lowest seed) of equals
