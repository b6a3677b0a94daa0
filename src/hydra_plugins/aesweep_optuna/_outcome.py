"""How a finished run is judged, and how a trial's runs (one per seed) make the trial's state and value.

A run is judged from its job's return (an exception) and its run record (metrics.json): completed ->
COMPLETE with the objective value(s), pruned -> PRUNED, diverged / raised / no record / a missing metric ->
FAIL with the reason. A trial over several seeds fails if any of its runs failed (the reason names the
seed), is pruned if any was pruned, and is COMPLETE otherwise, its value the seed statistic of its runs'.
"""

from __future__ import annotations

import logging
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from optuna.trial import TrialState

from aesweep import record
from aesweep.errors import AesweepError, one_line
from aesweep.trial import seed_statistic

log = logging.getLogger(__name__)


@dataclass
class RunOutcome:
    """One run's verdict: its state, objective values (COMPLETE only), why it failed, and its record."""

    seed: int | None
    run_dir: Path
    state: TrialState
    values: list[float] | None = None
    reason: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)


def judge_run(seed: int | None, run_dir: Path, job_return: JobReturn | None, objectives: list[str],
              launch_error: str | None = None, from_return: bool = False) -> RunOutcome:
    """The run's verdict; with ``from_return`` its values are what the task function returned (one number per
    objective), and a run without a record (an app that writes none) is judged by that alone."""
    if job_return is not None and job_return.hydra_cfg is not None:
        run_dir = Path(job_return.hydra_cfg.hydra.runtime.output_dir)
    if job_return is not None and job_return.status == JobStatus.FAILED:
        error = job_return._return_value  # the public return_value re-raises it
        if not isinstance(error, AesweepError):  # a bug, not a user mistake: keep its traceback in the log
            log.error("the run in %s raised", run_dir, exc_info=error)
        return RunOutcome(seed, run_dir, TrialState.FAIL, reason=one_line(error))
    try:
        metrics = record.read(run_dir)
    except record.RecordMissing:
        if from_return and job_return is not None:
            return _judge_returned(seed, run_dir, job_return.return_value, len(objectives), {"status": "completed"})
        return RunOutcome(seed, run_dir, TrialState.FAIL,
                          reason=launch_error or f"the job wrote no {record.RECORD_FILE} in {run_dir}")
    except record.RecordUnreadable as problem:
        return RunOutcome(seed, run_dir, TrialState.FAIL, reason=launch_error or str(problem))
    status, detail = metrics.get("status"), metrics.get("reason")
    if status == "pruned":
        return RunOutcome(seed, run_dir, TrialState.PRUNED, metrics=metrics)
    if status == "diverged":
        return RunOutcome(seed, run_dir, TrialState.FAIL, reason=f"diverged: {detail or 'the loss became NaN/inf'}",
                          metrics=metrics)
    if status != "completed":
        return RunOutcome(seed, run_dir, TrialState.FAIL, reason=f"{status}: {detail or 'no reason given'}",
                          metrics=metrics)
    if from_return:
        returned = job_return.return_value if job_return is not None else None
        return _judge_returned(seed, run_dir, returned, len(objectives), metrics)
    values = []
    for objective in objectives:
        value = record.lookup(metrics, objective)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            return RunOutcome(seed, run_dir, TrialState.FAIL, metrics=metrics,
                              reason=f"objective {objective} is {value!r} in {record.RECORD_FILE}")
        values.append(float(value))
    return RunOutcome(seed, run_dir, TrialState.COMPLETE, values=values, metrics=metrics)


def _judge_returned(seed: int | None, run_dir: Path, returned: Any, count: int, metrics: dict[str, Any]) -> RunOutcome:
    values = list(returned) if isinstance(returned, (list, tuple)) else [returned]
    numbers = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if len(values) != count or len(numbers) != count or not all(math.isfinite(v) for v in numbers):
        return RunOutcome(seed, run_dir, TrialState.FAIL, metrics=metrics,
                          reason=f"the task returned {returned!r}; the study needs {count} finite number(s)")
    return RunOutcome(seed, run_dir, TrialState.COMPLETE, values=numbers, metrics=metrics)


def value_columns(objectives: list[str]) -> list[str]:
    """``value`` for one objective; ``values_<metric>`` for several (Optuna's naming in trials_dataframe)."""
    return ["value"] if len(objectives) == 1 else [f"values_{name}" for name in objectives]


def combine(runs: list[RunOutcome], objectives: list[str], maximize: list[bool], statistic: str,
            trial_dir: Path) -> tuple[TrialState, list[float] | None, dict[str, Any]]:
    """The trial's state, values and user attrs (reason, metrics, per-seed values) from its runs."""
    seeded = runs[0].seed is not None
    attrs: dict[str, Any] = {"run_dir": str(trial_dir if seeded else runs[0].run_dir)}
    failed = [run for run in runs if run.state == TrialState.FAIL]
    if failed:
        attrs["reason"] = "; ".join(f"seed {run.seed}: {run.reason}" if seeded else str(run.reason) for run in failed)
    attrs.update(_mean_metrics([run.metrics for run in runs if run.metrics]))
    if failed:
        return TrialState.FAIL, None, attrs
    if any(run.state == TrialState.PRUNED for run in runs):
        return TrialState.PRUNED, None, attrs
    per_objective = list(zip(*(run.values for run in runs)))
    values = [seed_statistic(list(v), statistic, up) for v, up in zip(per_objective, maximize)]
    if seeded:
        for column, seed_values in zip(value_columns(objectives), per_objective):
            attrs.update({f"{column}.seed{run.seed}": value for run, value in zip(runs, seed_values)})
            attrs[f"{column}.std"] = statistics.stdev(seed_values) if len(seed_values) > 1 else None
    return TrialState.COMPLETE, values, attrs


def _mean_metrics(records: list[dict[str, Any]]) -> dict[str, Any]:
    """val.* and test.* metrics (mean over the runs that have them) and bookkeeping, as trial user attrs."""
    if not records:
        return {}
    flat = [record.split_metrics(r) for r in records]
    attrs: dict[str, Any] = {}
    for name in dict.fromkeys(k for f in flat for k in f):
        values = [f[name] for f in flat if f.get(name) is not None]
        attrs[name] = statistics.fmean(values) if values else None
    attrs["status"] = ",".join(dict.fromkeys(str(r.get("status")) for r in records))
    for name in ("epochs", "epochs_planned", "params"):
        known = [r[name] for r in records if isinstance(r.get(name), (int, float))]
        if known:
            attrs[name] = max(known)
    seconds = [r["seconds"] for r in records if isinstance(r.get("seconds"), (int, float))]
    if seconds:
        attrs["seconds"] = sum(seconds)  # what the trial cost, all its runs together
    return attrs
