"""The files a sweep leaves in its directory, and the summary it prints.

Everything is built from the study in the storage, not from this process's memory, so the tables
include trials run by other workers and by earlier (interrupted) invocations, and agree with what
``optuna.load_study`` shows. Files are written to a temporary name and renamed: a crash never
leaves a truncated table.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import yaml
from optuna.trial import FrozenTrial, TrialState

from aesweep.io import write_text_atomic

from ._outcome import value_columns
from ._plan import OBJECTIVES_ATTR, SEEDS_ATTR
from ._search_space import SearchParam

# Per-trial user attributes written by the sweeper, in trials.csv's column order after the metrics.
TRIAL_ATTR_COLUMNS = ("epochs", "epochs_planned", "seconds", "params", "status", "reason", "run_dir", "worker")


# Columns of whole counts, kept integers in trials.csv.
COUNT_COLUMNS = ("clusters_used", "params", "epochs", "epochs_planned")
CONFIRM_ATTR = "aesweep.confirmed"  # study user attribute: {trial number: {seeds, metric, val, test, failed}}


def test_twin(objective: str) -> str:
    """The held-out metric a validation objective stands for: val.mapped_acc -> test.mapped_acc."""
    return "test." + objective.removeprefix("val.") if objective.startswith("val.") else objective


def trials_frame(study: optuna.Study, space: Sequence[SearchParam], objectives: Sequence[str],
                 seeds: Sequence[int] | None = None) -> pd.DataFrame:
    """One row per trial: number, state, objective value(s) (with seeds: each seed's and their spread),
    searched params, metrics, bookkeeping."""
    frame = study.trials_dataframe(
        attrs=("number", "state", "value", "params", "user_attrs", "datetime_start"), multi_index=True
    )
    if frame.empty:
        frame = pd.DataFrame(columns=pd.MultiIndex.from_tuples([("number", ""), ("state", "")]))
    renamed: dict[str, pd.Series] = {}
    for (group, name), column in frame.items():
        if group in ("value", "values"):
            continue
        renamed[name if group in ("params", "user_attrs") else group] = column
    for column_name, objective in zip(value_columns(objectives), objectives):
        source = ("value", objective) if len(objectives) == 1 else ("values", objective)
        renamed[column_name] = frame[source] if source in frame.columns else pd.Series([math.nan] * len(frame))
    table = pd.DataFrame(renamed)
    table["study_name"] = study.study_name

    params = [p.name for p in space if p.searched]
    metrics = [c for prefix in ("val.", "test.") for c in sorted(table.columns) if c.startswith(prefix)]
    per_seed = [f"{column}.{part}" for column in value_columns(objectives)
                for part in [f"seed{seed}" for seed in seeds or []] + (["std"] if seeds else [])]
    leading = ["number", "state", *value_columns(objectives), *per_seed, *params, *metrics, *TRIAL_ATTR_COLUMNS]
    for column in leading:
        if column not in table.columns:
            table[column] = None
    rest = [c for c in table.columns if c not in leading and c != "overrides"]
    for column in (c for c in table.columns if c.endswith(COUNT_COLUMNS)):
        # a pruned trial has no test metrics, and the gap would turn counts into floats (10.0)
        counts = pd.to_numeric(table[column], errors="coerce")
        if counts.notna().any() and (counts.dropna() % 1 == 0).all():
            table[column] = counts.astype("Int64")
    return table[leading + rest].reset_index(drop=True)


def rank(trial: FrozenTrial, maximize: bool, first_column: str = "value") -> tuple[float, float, int]:
    """Sort key of a COMPLETE trial, larger is better: its first value, then - where several trials share that value,
    as the worst of three seeds often does - that objective's mean over the seeds (its per-seed values are the user
    attrs ``<first_column>.seed<s>``), then the earlier trial."""
    sign = 1 if maximize else -1
    prefix = first_column + ".seed"
    per_seed = [v for k, v in trial.user_attrs.items() if k.startswith(prefix) and isinstance(v, (int, float))]
    return sign * trial.values[0], sign * (statistics.fmean(per_seed) if per_seed else trial.values[0]), -trial.number


def study_rank(study: optuna.Study) -> Callable[[FrozenTrial], tuple[float, float, int]]:
    """`rank` for the trials of this study."""
    maximize = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    first_column = value_columns(list(study.user_attrs.get(OBJECTIVES_ATTR) or [""] * len(study.directions)))[0]
    return lambda trial: rank(trial, maximize, first_column)


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The best COMPLETE trial as `rank` orders them; for several objectives, the best of the Pareto front."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return None
    return max(study.best_trials if len(study.directions) > 1 else complete, key=study_rank(study))


def ranking(table: pd.DataFrame, study: optuna.Study, objectives: Sequence[str], top_k: int) -> pd.DataFrame:
    """The top ``top_k`` COMPLETE trials (Pareto front first if several objectives), as `rank` orders them."""
    key = study_rank(study)
    ranks = {t.number: key(t) for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))}
    done = table[table["state"] == "COMPLETE"]
    done = done.assign(_rank=done["number"].map(lambda n: ranks.get(n, (-math.inf,) * 3)))
    order = ["_rank"]
    if len(objectives) > 1:
        pareto = {t.number for t in study.best_trials}
        done, order = done.assign(_pareto=done["number"].isin(pareto)), ["_pareto", "_rank"]
    return done.sort_values(order, ascending=False).drop(columns=order).head(top_k)


def best_overrides(trial: FrozenTrial) -> list[str]:
    return list(trial.user_attrs.get("overrides", []))


def chosen_trial(study: optuna.Study) -> FrozenTrial | None:
    """best.yaml's trial: among confirmed trials the one best on its confirmation's validation mean (the test
    figures are only reported), else the search's best."""
    confirmed = {int(n): e for n, e in (study.user_attrs.get(CONFIRM_ATTR) or {}).items() if e.get("val")}
    candidates = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.number in confirmed]
    if not candidates:
        return best_trial(study)
    sign = 1 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else -1
    return max(candidates, key=lambda t: (sign * statistics.fmean(confirmed[t.number]["val"]), -t.number))


def write_tables(sweep_dir: Path, study: optuna.Study, space: Sequence[SearchParam], objectives: Sequence[str],
                 seeds: Sequence[int] | None = None) -> pd.DataFrame:
    """Write trials.csv and (once a trial completed) best.yaml; return the table."""
    table = trials_frame(study, space, objectives, seeds)
    write_text_atomic(sweep_dir / "trials.csv", table.to_csv(index=False))
    best = chosen_trial(study)
    if best is not None:
        values = ", ".join(f"{name} = {value:.6g}" for name, value in zip(objectives, best.values))
        path = sweep_dir / "best.yaml"
        confirmed = confirmed_line(study, best, list(objectives))
        header = (
            f"# Best trial {best.number} of study '{study.study_name}': {values}\n"
            + (f"# {confirmed}\n" if confirmed else "")
            + f"# Run it alone:  python train.py $(sed -n 's/^- //p' {path})\n"
        )
        write_text_atomic(path, header + yaml.safe_dump(best_overrides(best), default_flow_style=False))
    return table


def baseline_line(storage: Any, baseline_study: str | None, study: optuna.Study, objectives: Sequence[str],
                  how: str | None = None) -> str:
    """The baseline's mean +- sd and the best trial's gain over it, or why there is none (and `how` to measure it)."""
    objective = objectives[0]
    if how is None:
        how = f"run `python train.py -m sweep={baseline_study}` to measure it" if baseline_study else ""
    if not baseline_study or baseline_study not in optuna.study.get_all_study_names(storage):
        return f"Baseline: none measured (no study '{baseline_study}' in this storage; {how})."
    baseline = optuna.load_study(study_name=baseline_study, storage=storage)
    measured = baseline.user_attrs.get(OBJECTIVES_ATTR, [objective])[0]
    if measured != objective:
        return f"Baseline: study '{baseline_study}' measured {measured}, not {objective}; not compared."
    values = pd.Series([t.values[0] for t in baseline.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))])
    if values.empty:
        return f"Baseline: none measured (study '{baseline_study}' has no completed trial; {how})."
    spread = f" ± {values.std():.4f}" if len(values) > 1 else ""
    line = (
        f"Baseline: study '{baseline_study}', {len(values)} completed trials: {objective} = {values.mean():.4f}{spread}"
    )
    best = best_trial(study)
    if baseline_study == study.study_name or best is None:
        return line + "."
    gain = best.values[0] - values.mean()
    relative = f" ({gain / abs(values.mean()):+.1%})" if values.mean() else ""
    return f"{line}; best trial {best.number}: {best.values[0]:.4f}, {gain:+.4f}{relative} over the baseline mean."


def fail_reasons(trials: Sequence[FrozenTrial]) -> str:
    """``2x RuntimeError: boom; 1x diverged: loss is nan`` for the FAIL trials given."""
    counts = Counter(t.user_attrs.get("reason") or "no reason recorded" for t in trials if t.state == TrialState.FAIL)
    return "; ".join(f"{count}x {reason}" for reason, count in counts.most_common())


def summary(
    table: pd.DataFrame,
    study: optuna.Study,
    space: Sequence[SearchParam],
    objectives: Sequence[str],
    top_k: int,
    sweep_dir: Path,
    baseline: str,
    busy: str | None = None,
) -> str:
    """The text printed when a sweep ends: counts, how busy the slots were, top trials, best, baseline, failures."""
    counts = table["state"].value_counts()
    states = ", ".join(f"{counts.get(s, 0)} {s}" for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING") if counts.get(s, 0))
    lines = [f"Study '{study.study_name}': {len(table)} trials ({states or 'none'}). Tables in {sweep_dir}"]
    if busy:
        lines.append(busy)
    top = ranking(table, study, objectives, top_k)
    if not top.empty:
        columns = ["number", *value_columns(objectives), *[p.name for p in space if p.searched], "epochs"]
        direction = ", ".join(f"{o} ({d.name.lower()})" for o, d in zip(objectives, study.directions))
        lines.append(f"Top {len(top)} by {direction}:")
        lines.append(top[columns].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        lines.append(f"Best overrides: {sweep_dir / 'best.yaml'}")
    confirmed = [line for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                 if (line := confirmed_line(study, trial, list(objectives)))]
    if confirmed:
        lines += ["Confirmed on fresh seeds (test only reported, never used to choose):", *confirmed]
    lines.append(baseline)
    failed = fail_reasons(study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
    if failed:
        lines.append(f"Failed trials: {failed}")
    return "\n".join(lines)


def confirmed_line(study: optuna.Study, trial: optuna.trial.FrozenTrial, objectives: list[str]) -> str | None:
    """`search: X; confirmed on seeds ...: mean +- sd (worst)` for a confirmed trial, else None."""
    entry = (study.user_attrs.get(CONFIRM_ATTR) or {}).get(str(trial.number))
    if not entry:
        return None
    seeds = (study.user_attrs.get(SEEDS_ATTR) or {}).get("seeds")
    over = f" (over seeds {', '.join(map(str, seeds))})" if seeds else ""
    line = f"trial {trial.number}: search {objectives[0]} {trial.values[0]:.4f}{over}"
    test = entry.get("test") or []
    if not test:
        return line + f"; confirmation on seeds {entry['seeds']} failed ({entry.get('failed', 0)} runs)"
    maximize = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    spread = f" +- {statistics.stdev(test):.4f}" if len(test) > 1 else ""
    worst = min(test) if maximize else max(test)
    val = entry.get("val") or []
    shown_val = f"; {objectives[0]} {statistics.fmean(val):.4f}" if val else ""
    failed = f"; {entry['failed']} run(s) failed" if entry.get("failed") else ""
    return (f"{line}; confirmed on seeds {', '.join(map(str, entry['seeds']))}: {entry['metric']} "
            f"{statistics.fmean(test):.4f}{spread} (worst {worst:.4f}){shown_val}{failed}")


def confirmation(study: optuna.Study, trial_number: int) -> dict[str, Any] | None:
    return (study.user_attrs.get(CONFIRM_ATTR) or {}).get(str(trial_number))
