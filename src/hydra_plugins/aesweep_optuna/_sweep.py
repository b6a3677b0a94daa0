"""The sweep loop: plan (``_plan``), then claim trials, launch them as a batch, record them.

plan   settings, search space, sampler, pruner, storage and study are all checked before the
       first trial; a mistake ends the command with one ``error:`` line and exit status 2
claim  under the claim lock: fail stale trials, then ask up to n_jobs trials while the study
       has fewer than n_trials (every state counts, every worker's trials count)
launch one batch through hydra/launcher (basic: in this process; joblib: worker processes);
       each job gets the sampled overrides plus trial.* telling it which trial it is
record read the job's metrics.json: completed -> COMPLETE with the objective value(s),
       pruned -> PRUNED, diverged / failed / exception / missing metric -> FAIL with a reason
tables trials.csv and best.yaml after every batch; a summary at the end; exit status 1 when
       every trial this command ran failed
"""

from __future__ import annotations

import logging
import math
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import optuna
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.types import Quote, QuotedString
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from aesweep import record
from aesweep.errors import AesweepError, ConfigError, one_line
from aesweep.storage import write_study_file

from . import _tables
from ._plan import Plan, make_plan
from ._search_space import suggest, trial_overrides
from ._settings import SweepSettings
from ._workers import HEARTBEAT_ATTR, WORKER_ATTR, Heartbeat, Worker, claim_lock, fail_stale_trials

log = logging.getLogger(__name__)


@dataclass
class Claim:
    """A trial this worker asked for, and the job that will run it."""

    trial: optuna.Trial
    overrides: list[str]  # the task overrides that reproduce the run (recorded, and best.yaml)
    job_overrides: list[str] = field(default_factory=list)  # + trial.* and the job's subdir
    run_dir: Path = Path()


def _exit(code: int, message: str) -> NoReturn:
    sys.stdout.flush()
    print(message, file=sys.stderr, flush=True)
    raise SystemExit(code)


def _quoted(text: str) -> str:
    return QuotedString(text=text, quote=Quote.single).with_quotes()


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Let SIGTERM (a scheduler pre-empting the sweep) unwind like Ctrl-C, so running trials get FAIL."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class OptunaSweep:
    """The sweeper's state and loop; ``AesweepOptunaSweeper`` is the thin Hydra-facing shell."""

    def __init__(self, **settings: Any) -> None:
        self.settings = SweepSettings(**settings)
        self.worker = Worker.this_process()
        self.hydra_context: HydraContext | None = None
        self.config: DictConfig | None = None
        self.launcher: Any = None
        self._job_index = 0
        self._exhausted = False  # a grid/brute-force sampler ran out of points

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.hydra_context = hydra_context
        self.config = config
        # Hydra sets HydraConfig for each job, not for the sweeper; without it the sweep's own
        # ${hydra:...} interpolations (hydra.sweep.dir: .../${hydra:runtime.choices.sweep}/...) fail.
        HydraConfig.instance().set_config(config)
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def compose(self, overrides: list[str]) -> DictConfig:
        """A job's config for these overrides, as the launcher will compose it."""
        assert self.hydra_context is not None and self.config is not None
        return self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))

    def plan(self, arguments: list[str]) -> Plan:
        assert self.config is not None and self.hydra_context is not None
        loader, config = self.hydra_context.config_loader, self.config
        config_name, hydra_overrides = config.hydra.job.config_name, list(config.hydra.overrides.hydra)

        def group_options(name: str) -> list[str]:  # with hydra.searchpath's folders, which the loader alone lacks
            return list(loader.get_group_options(name, config_name=config_name, overrides=hydra_overrides))

        return make_plan(self.settings, config, self.compose, group_options, arguments, self.launcher)

    # ---------------------------------------------------------------- claim
    def claim(self, plan: Plan, count: int) -> list[Claim]:
        """Ask up to ``count`` trials, never letting the study exceed n_trials (all workers together)."""
        claims = []
        with claim_lock(plan.storage_url, plan.study.study_name):
            trials = plan.study.get_trials(deepcopy=False)
            fail_stale_trials(plan.storage, trials, self.worker, self.settings.stale_after)
            waiting = sum(t.state == TrialState.WAITING for t in trials)
            free = self.settings.n_trials - len(trials) + waiting
            for _ in range(min(count, free)):
                claim = self._prepare(plan, plan.study.ask())
                if claim is not None:
                    claims.append(claim)
        return claims

    def _prepare(self, plan: Plan, trial: optuna.Trial) -> Claim | None:
        """Record the owner, sample the parameters, build and check the job's overrides."""
        sampler = self.settings.trial_sampler(plan.space, trial.number)
        if sampler is not None:
            plan.study.sampler = sampler
        plan.storage.set_trial_system_attr(trial._trial_id, WORKER_ATTR, self.worker.as_attr())
        plan.storage.set_trial_system_attr(trial._trial_id, HEARTBEAT_ATTR, time.time())
        run_dir = plan.sweep_dir / str(trial.number)
        trial.set_user_attr("worker", str(self.worker))
        trial.set_user_attr("run_dir", str(run_dir))
        try:
            overrides = self._sample(plan, trial)
        except Exception as error:  # the sampler would fail every trial the same way: stop here
            self._tell(plan, trial, TrialState.FAIL, None, {"reason": f"sampler: {one_line(error)}"})
            raise
        job_overrides = overrides + self._trial_overrides(plan, trial)
        try:
            self.compose(job_overrides)
        except Exception as error:  # this combination of values does not compose: fail just it
            self._tell(plan, trial, TrialState.FAIL, None, {"reason": f"config: {one_line(error)}"})
            return None
        trial.set_user_attr("overrides", overrides)
        return Claim(trial, overrides, job_overrides, run_dir)

    def _sample(self, plan: Plan, trial: optuna.Trial) -> list[str]:
        return trial_overrides(plan.space, lambda param: suggest(trial, param), self.compose)

    def _trial_overrides(self, plan: Plan, trial: optuna.Trial) -> list[str]:
        """What tells the job its trial (aesweep.pruning.TrialReporter reads it) and its folder."""
        overrides = [
            f"++trial.study_name={_quoted(plan.study.study_name)}",
            f"++trial.storage={_quoted(plan.storage_url)}",
            f"++trial.trial_id={trial._trial_id}",
            f"++trial.trial_number={trial.number}",
        ]
        if len(plan.objectives) == 1:
            overrides.append(f"++trial.report={_quoted(plan.objectives[0])}")
        # Name the job's folder after the trial number: unique even when workers share a sweep dir.
        return overrides + [f"hydra.sweep.subdir={trial.number}"]

    # ---------------------------------------------------------------- record
    def _tell(
        self, plan: Plan, trial: optuna.Trial, state: TrialState, values: list[float] | None, attrs: dict[str, Any]
    ) -> TrialState | None:
        """Store the attrs, then close the trial; None if another worker closed it first."""
        try:
            for key, value in attrs.items():
                trial.set_user_attr(key, value)
            plan.study.tell(trial, values=values, state=state)
        except (optuna.exceptions.UpdateFinishedTrialError, ValueError) as error:
            log.warning("trial %d was closed elsewhere (marked stale?): %s", trial.number, error)
            return None
        except RuntimeError as error:
            # Grid and brute-force samplers call study.stop() once the space is exhausted; outside
            # Study.optimize that raises, after the trial was stored. Stop claiming trials.
            if "stop" not in str(error):
                raise
            log.info("the sampler has tried every point of the search space")
            self._exhausted = True
        return state

    def record(
        self, plan: Plan, claim: Claim, job_return: JobReturn | None, launch_error: str | None
    ) -> TrialState | None:
        """Judge one finished job from its metrics.json (and exception) and tell the study."""
        run_dir = claim.run_dir
        if job_return is not None and job_return.hydra_cfg is not None:
            run_dir = Path(job_return.hydra_cfg.hydra.runtime.output_dir)
        try:
            metrics, metrics_problem = record.read(run_dir), ""
        except record.RecordMissing:
            metrics, metrics_problem = None, f"the job wrote no {record.RECORD_FILE} in {run_dir}"
        except record.RecordUnreadable as problem:
            metrics, metrics_problem = None, str(problem)
        attrs: dict[str, Any] = {"run_dir": str(run_dir), **_metric_attrs(metrics)}
        state, values, reason = self._judge(plan, claim, job_return, metrics, metrics_problem, launch_error)
        if reason:
            attrs["reason"] = reason
        outcome = self._tell(plan, claim.trial, state, values, attrs)
        shown = ", ".join(f"{v:.4g}" for v in values) if values else reason
        log.info("trial %d %s%s", claim.trial.number, state.name, f" {shown}" if shown else "")
        return outcome

    def _judge(
        self,
        plan: Plan,
        claim: Claim,
        job_return: JobReturn | None,
        metrics: dict[str, Any] | None,
        metrics_problem: str,
        launch_error: str | None,
    ) -> tuple[TrialState, list[float] | None, str | None]:
        if job_return is not None and job_return.status == JobStatus.FAILED:
            error = job_return._return_value  # the public return_value re-raises it
            if not isinstance(error, AesweepError):  # a bug, not a user mistake: keep its traceback
                log.error("trial %d: the job raised", claim.trial.number, exc_info=error)
            return TrialState.FAIL, None, one_line(error)
        if metrics is None:
            return TrialState.FAIL, None, launch_error or metrics_problem
        status = metrics.get("status")
        detail = metrics.get("reason")
        if status == "pruned":
            return TrialState.PRUNED, None, None
        if status == "diverged":
            return TrialState.FAIL, None, f"diverged: {detail or 'the loss became NaN/inf'}"
        if status != "completed":
            return TrialState.FAIL, None, f"{status}: {detail or 'no reason given'}"
        values = []
        for objective in plan.objectives:
            value = record.lookup(metrics, objective)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                return TrialState.FAIL, None, f"objective {objective} is {value!r} in metrics.json"
            values.append(float(value))
        return TrialState.COMPLETE, values, None

    # ---------------------------------------------------------------- run
    def run(self, arguments: list[str]) -> list[list[JobReturn]]:
        try:
            plan = self.plan(arguments)
        except AesweepError as error:
            _exit(2, f"error: {error}")
        assert self.config is not None
        try:
            plan.sweep_dir.mkdir(parents=True, exist_ok=True)
            OmegaConf.save(self.config, plan.sweep_dir / "multirun.yaml")
        except OSError as error:  # checked in plan(); this catches a folder that went away since
            _exit(2, f"error: {ConfigError('hydra.sweep.dir', str(plan.sweep_dir), one_line(error))}")
        write_study_file(plan.sweep_dir, self._study_info(plan))
        existing = len(plan.study.get_trials(deepcopy=False))
        log.info(
            "study '%s' in %s: %d of %d trials exist", plan.study.study_name, plan.storage_url, existing, self.settings.n_trials
        )
        if existing >= self.settings.n_trials:
            log.info("nothing to run: raise hydra.sweeper.n_trials to continue, or set a new hydra.sweeper.study_name")

        outcomes: dict[int, TrialState | None] = {}  # trial number -> how this command closed it
        returns: list[list[JobReturn]] = []
        deadline = time.monotonic() + self.settings.timeout if self.settings.timeout else math.inf
        with _sigterm_as_interrupt(), Heartbeat(plan.storage, self.settings.heartbeat_interval) as heartbeat:
            while time.monotonic() < deadline and not self._exhausted:
                claims = self.claim(plan, self.settings.n_jobs)
                if not claims:
                    if self._nothing_left(plan):
                        break
                    continue  # every claimed trial failed its config check; claim again
                for claim in claims:
                    heartbeat.add(claim.trial._trial_id)
                batch = self._launch(plan, claims)
                outcomes.update((c.trial.number, self.record(plan, c, r, e)) for c, r, e in batch)
                returns.append([r for _, r, _ in batch if r is not None])
                for claim in claims:
                    heartbeat.discard(claim.trial._trial_id)
                _tables.write_tables(plan.sweep_dir, plan.study, plan.space, plan.objectives)
        self._finish(plan, outcomes)
        return returns

    def _nothing_left(self, plan: Plan) -> bool:
        if self._exhausted:
            return True
        trials = plan.study.get_trials(deepcopy=False)
        return len(trials) >= self.settings.n_trials and not any(t.state == TrialState.WAITING for t in trials)

    def _launch(self, plan: Plan, claims: list[Claim]) -> list[tuple[Claim, JobReturn | None, str | None]]:
        """Run one batch; a launcher failure (a job process died) fails only the batch."""
        try:
            job_returns = list(self.launcher.launch([c.job_overrides for c in claims], initial_job_idx=self._job_index))
            launch_error = None
        except KeyboardInterrupt as interrupt:
            # Jobs that finished before the interrupt keep their result; the others end FAIL.
            why = str(interrupt) or "Ctrl-C"
            for claim in claims:
                self.record(plan, claim, None, f"sweep interrupted ({why})")
            _tables.write_tables(plan.sweep_dir, plan.study, plan.space, plan.objectives)
            # the shell's codes: 128 + the signal (SIGINT 2, SIGTERM 15)
            _exit(143 if why == f"signal {signal.SIGTERM}" else 130,
                  f"error: sweep interrupted ({why}): the running trials are recorded FAIL, finished ones kept; "
                  "run the same command again to continue")
        except Exception as error:
            log.error("launcher failed: %s", one_line(error))
            job_returns, launch_error = [], f"launcher: {one_line(error)}"
        self._job_index += len(claims)
        padded = job_returns + [None] * (len(claims) - len(job_returns))
        return [(claim, job_return, launch_error) for claim, job_return in zip(claims, padded)]

    def _study_info(self, plan: Plan) -> dict[str, Any]:
        return {
            "study_name": plan.study.study_name,
            "storage": plan.storage_url,
            "directions": [d.name.lower() for d in plan.study.directions],
            "objectives": plan.objectives,
            "n_trials": self.settings.n_trials,
            "search_space": {p.name: p.text for p in plan.space if p.searched},
            "fixed": plan.fixed,
        }

    def _finish(self, plan: Plan, outcomes: dict[int, TrialState | None]) -> None:
        """Write the tables, print the summary; exit 1 if every trial this command ran failed."""
        table = _tables.write_tables(plan.sweep_dir, plan.study, plan.space, plan.objectives)
        baseline = _tables.baseline_line(plan.storage, self.settings.baseline_study, plan.study, plan.objectives)
        print(
            _tables.summary(table, plan.study, plan.space, plan.objectives, self.settings.top_k, plan.sweep_dir, baseline),
            flush=True,
        )
        trials = plan.study.get_trials(deepcopy=False)
        ran = {number: state for number, state in outcomes.items() if state is not None}
        if ran and all(state == TrialState.FAIL for state in ran.values()):
            mine = [t for t in trials if t.number in ran]
            _exit(1, f"error: all {len(ran)} trials of this sweep failed: {_tables.fail_reasons(mine)}")
        finished = [t for t in trials if t.state.is_finished()]
        if not ran and finished and all(t.state == TrialState.FAIL for t in finished):
            _exit(1, f"error: every trial of study '{plan.study.study_name}' failed: {_tables.fail_reasons(finished)}")


def _metric_attrs(metrics: dict[str, Any] | None) -> dict[str, Any]:
    """The run's val.* and test.* metrics and bookkeeping, flattened into trial user attrs."""
    if not metrics:
        return {}
    attrs = record.split_metrics(metrics)
    for key in ("status", *record.RUN_NUMBERS):
        if key in metrics:
            attrs[key] = metrics[key]
    return attrs
