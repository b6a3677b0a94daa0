"""The sweep loop: plan (``_plan``), then claim trials and keep ``n_jobs`` runs going until the budget is spent.

plan     settings, search space, sampler, pruner, storage and study are all checked before the first
         trial; a mistake ends the command with one ``error:`` line and exit status 2
baseline the configuration the sweep is compared with, measured over the sweep's seeds when the
         storage has none (``baseline_overrides``)
claim    under the claim lock: fail stale trials, then ask one trial while the study has fewer than
         n_trials (every worker's trials count, in every state but WAITING: an enqueued trial counts once
         a worker asks for it); it becomes one run per seed
dispatch a run starts the moment a slot frees (``_dispatch``), sampled with what is known by then
         (TPE's constant liar covers the trials still running); ``dispatch: batch`` waits for a whole batch
record   a trial's runs judged and combined (``_outcome``) and told to the study as soon as its last run ends
confirm  the best configurations re-run on fresh seeds (``_confirm``), then trials.csv, best.yaml and a
         summary; exit status 1 when every trial this command ran failed
"""

from __future__ import annotations

import logging
import math
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import optuna
from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from aesweep import tracking
from aesweep.errors import AesweepError, ConfigError, one_line
from aesweep.storage import write_study_file
from aesweep.trial import BUSY_ATTR, ENDED_ATTR, STARTED_ATTR, slot_use

from . import _tables
from ._artifacts import describe_study, upload_run_files
from ._confirm import confirm_best, measure_baseline
from ._claim import Claim, seed_overrides, trial_link
from ._dispatch import Dispatcher, RunJob
from ._outcome import combine, judge_run
from ._plan import Plan, make_plan
from ._progress import SweepProgress
from ._search_space import suggest, trial_overrides, value_as_override_text
from ._settings import SweepSettings
from ._workers import HEARTBEAT_ATTR, WORKER_ATTR, Heartbeat, Worker, claim_lock, fail_stale_trials

log = logging.getLogger(__name__)

# At most this often is trials.csv rebuilt while a sweep runs (and always at its end): rebuilding reads every
# trial of the study, so after each of a thousand one-second trials it would cost more than the trials.
TABLES_EVERY_S = 5.0


class SamplerFailed(Exception):
    """The sampler (or a custom_search_space function) raised while proposing a trial: it would again."""


def _counted(trials: list[optuna.trial.FrozenTrial]) -> int:
    """The trials that count against n_trials: all but the enqueued ones no worker has asked for yet."""
    return sum(t.state != TrialState.WAITING for t in trials)


def _to_run_again(run: RunJob) -> bool:
    """A run the launcher's worker pool took down when another run killed it: once more, alone (the one at fault
    dies again and fails with its reason; the others were only in the way)."""
    if not run.pool_broke or run.retried:
        return False
    run.retried, run.pool_broke, run.launch_error = True, False, None
    log.warning("trial %d: the launcher's worker pool broke under its run (%s); running it again, alone",
                run.trial_number, f"seed {run.seed}" if run.seed is not None else "its run")
    return True


def _exit(code: int, message: str) -> NoReturn:
    sys.stdout.flush()
    print(message, file=sys.stderr, flush=True)
    raise SystemExit(code)


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
        self._exhausted = False  # a grid/brute-force sampler ran out of points
        self._tables_written = -math.inf

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.hydra_context = hydra_context
        self.config = config
        # Hydra sets HydraConfig for each job, not for the sweeper; without it the sweep's own
        # ${hydra:...} interpolations (hydra.sweep.dir: .../${hydra:runtime.choices.sweep}/...) fail.
        HydraConfig.instance().set_config(config)
        tracking.prepare(config, open_store=False)  # mlflow imports beside the sweep's planning
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
    def claim(self, plan: Plan) -> Claim | None:
        """Ask one trial unless the study has n_trials (all workers together); None when there is none to ask."""
        with claim_lock(plan.storage_url, plan.study.study_name):
            trials = plan.study.get_trials(deepcopy=False)
            fail_stale_trials(plan.storage, trials, self.worker, self.settings.stale_after)
            if _counted(trials) >= self.settings.n_trials:
                return None
            return self._prepare(plan, plan.study.ask())

    def _prepare(self, plan: Plan, trial: optuna.Trial) -> Claim | None:
        """Record the owner, sample the parameters, build and check each run's overrides."""
        sampler = self.settings.trial_sampler(plan.space, trial.number)
        if sampler is not None:
            plan.study.sampler = sampler
        plan.storage.set_trial_system_attr(trial._trial_id, WORKER_ATTR, self.worker.as_attr())
        plan.storage.set_trial_system_attr(trial._trial_id, HEARTBEAT_ATTR, time.time())
        trial_dir = plan.sweep_dir / str(trial.number)
        trial.set_user_attr("worker", str(self.worker))
        trial.set_user_attr("run_dir", str(trial_dir))
        try:
            overrides = trial_overrides(plan.space, lambda param: suggest(trial, param), self.compose)
            if plan.extend_space is not None:  # custom_search_space: whatever it suggests is set by its key
                known = set(trial.params)
                plan.extend_space(self.config, trial)
                overrides += [f"{name}={value_as_override_text(value)}" for name, value in trial.params.items()
                              if name not in known]
        except Exception as error:  # the sampler would fail every trial the same way: stop here
            reason = f"sampler: {one_line(error)}"
            self._tell(plan, trial, TrialState.FAIL, None, {"reason": reason})
            raise SamplerFailed(f"trial {trial.number} failed in the {reason}") from error
        link = trial_link(plan, trial, self.settings)
        runs = [RunJob(trial.number, seed, overrides + link + seed_overrides(trial.number, seed),
                       trial_dir if seed is None else trial_dir / f"seed{seed}") for seed in self.settings.seeds or [None]]
        # No composition here: the launcher composes each run's config, and a combination that cannot compose
        # fails its run there with Hydra's reason (the plan has checked the sweep's combinations already).
        trial.set_user_attr("overrides", overrides)
        return Claim(trial, overrides, runs, trial_dir)

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

    def record(self, plan: Plan, claim: Claim) -> TrialState | None:
        """Combine the trial's judged runs and tell the study."""
        maximize = [d == optuna.study.StudyDirection.MAXIMIZE for d in plan.study.directions]
        state, values, attrs = combine(claim.outcomes, plan.objectives, maximize, self.settings.seed_statistic,
                                       claim.trial_dir)
        if claim.busy:  # how long its runs held a slot: what `aesweep bench dispatch` weighs slots by
            attrs.update({BUSY_ATTR: sum(end - start for start, end in claim.busy),
                          STARTED_ATTR: min(start for start, _ in claim.busy), ENDED_ATTR: max(end for _, end in claim.busy)})
        upload_run_files(claim.trial, claim.outcomes, plan.storage_url, Path(self.config.hydra.runtime.cwd))
        closed = self._tell(plan, claim.trial, state, values, attrs)
        shown = ", ".join(f"{v:.4g}" for v in values) if values else attrs.get("reason")
        log.info("trial %d %s%s", claim.trial.number, state.name, f" {shown}" if shown else "")
        return closed

    # ---------------------------------------------------------------- run
    def run(self, arguments: list[str]) -> list[list[JobReturn]]:
        try:
            plan = self.plan(arguments)
        except AesweepError as error:
            _exit(2, f"error: {error}")
        assert self.config is not None
        tracking.prepare(self.config, open_store=True)  # settings checked: jobs in this process find the store open
        try:
            plan.sweep_dir.mkdir(parents=True, exist_ok=True)
            OmegaConf.save(self.config, plan.sweep_dir / "multirun.yaml")
        except OSError as error:  # checked in plan(); this catches a folder that went away since
            _exit(2, f"error: {ConfigError('hydra.sweep.dir', str(plan.sweep_dir), one_line(error))}")
        write_study_file(plan.sweep_dir, self._study_info(plan))
        describe_study(plan, self.config, self.settings)
        trials = plan.study.get_trials(deepcopy=False)
        existing = _counted(trials)
        waiting = len(trials) - existing
        log.info("study '%s' in %s: %d of %d trials exist%s", plan.study.study_name, plan.storage_url, existing,
                 self.settings.n_trials, f", {waiting} more enqueued (WAITING)" if waiting else "")
        if existing >= self.settings.n_trials:
            log.info("nothing to run: raise hydra.sweeper.n_trials to continue, or set a new hydra.sweeper.study_name")

        outcomes: dict[int, TrialState | None] = {}  # trial number -> how this command closed it
        returns: list[JobReturn] = []
        dispatcher = Dispatcher(self.launcher, self.settings.n_jobs)
        progress = SweepProgress(plan.study, self.settings.n_trials, self.settings.timeout, self.settings.progress)
        with _sigterm_as_interrupt(), Heartbeat(plan.storage, self.settings.heartbeat_interval) as heartbeat, progress:
            self._progress = progress
            try:
                measure_baseline(self, plan, dispatcher, heartbeat)
                deadline = time.monotonic() + self.settings.timeout if self.settings.timeout else math.inf
                loop = self._batches if self.settings.dispatch == "batch" else self._runs_as_slots_free
                loop(plan, dispatcher, heartbeat, deadline, outcomes, returns)
                confirm_best(self, plan, dispatcher)
            except KeyboardInterrupt as interrupt:
                self._interrupted(plan, str(interrupt) or "Ctrl-C")
            except SamplerFailed as failure:
                self._end_early(plan, "sweep stopped: the sampler failed", 1, f"error: {failure}; the sweep stopped")
        describe_study(plan, self.config, self.settings)  # again: the baseline may have been measured since
        self._finish(plan, outcomes, dispatcher.slots)
        return [returns]

    def _runs_as_slots_free(self, plan: Plan, dispatcher: Dispatcher, heartbeat: Heartbeat, deadline: float,
                            outcomes: dict[int, TrialState | None], returns: list[JobReturn]) -> None:
        """Keep every slot busy: a freed slot takes the next run of an open trial, or the first run of a new one.

        When the launcher's worker pool dies under its runs (joblib fails every run in flight when one worker is
        killed), those runs are run again, each alone: the one at fault dies again and fails with the reason,
        the others were only in the way and complete.
        """
        pending: deque[RunJob] = deque()
        again: deque[RunJob] = deque()  # runs a broken worker pool took down, to run once more, alone
        self._open: dict[int, Claim] = {}
        budget_left = True
        while True:
            while again and not dispatcher.running:
                dispatcher.start(again.popleft())
            # A run started beside one run again could be the next to break the pool and take it down twice.
            alone = any(run.retried for run in dispatcher.running.values())
            while dispatcher.free > 0 and not again and not alone:
                if not pending and budget_left:
                    budget_left = time.monotonic() < deadline and not self._exhausted
                    claim = self.claim(plan) if budget_left else None
                    if claim is None:  # the study has its n_trials
                        budget_left = False
                        break
                    self._open[claim.trial.number] = claim
                    heartbeat.add(claim.trial._trial_id)
                    pending.extend(claim.runs)
                if not pending:
                    break
                run = pending.popleft()
                claim = self._open[run.trial_number]
                if claim.stopped(plan.storage):  # a sibling seed was pruned or failed: this run is not needed
                    claim.skip(run)
                    self._close_if_done(plan, claim, heartbeat, outcomes)
                    self._stop_if_failing(plan, outcomes)
                    continue
                dispatcher.start(run)
            if not dispatcher.running:
                break
            run = dispatcher.next_finished()
            if _to_run_again(run):
                again.append(run)
                continue
            self._close_if_done(plan, self._finished(plan, run, returns), heartbeat, outcomes)
            self._stop_if_failing(plan, outcomes)

    def _batches(self, plan: Plan, dispatcher: Dispatcher, heartbeat: Heartbeat, deadline: float,
                 outcomes: dict[int, TrialState | None], returns: list[JobReturn]) -> None:
        """``dispatch: batch``: claim n_jobs trials, launch all their runs in one call, wait for the slowest.

        Runs that a broken worker pool took down are run again after the batch, each alone, as the asynchronous
        loop does; max_failure_rate judges the batch once all its trials are told.
        """
        self._open = {}
        while time.monotonic() < deadline and not self._exhausted:
            claims = []
            while len(claims) < self.settings.n_jobs:
                claim = self.claim(plan)
                if claim is None:
                    break
                claims.append(claim)
                self._open[claim.trial.number] = claim  # open at once: a sampler failing the next one fails it too
                heartbeat.add(claim.trial._trial_id)
            if not claims:  # the study has its n_trials
                break
            runs = [run for claim in claims for run in claim.runs]
            dispatcher.start_batch(runs)
            again = []
            for _ in runs:
                run = dispatcher.next_finished()
                if _to_run_again(run):
                    again.append(run)
                else:
                    self._finished(plan, run, returns)
            for run in again:
                dispatcher.start(run)
                self._finished(plan, dispatcher.next_finished(), returns)
            for claim in claims:
                self._close_if_done(plan, claim, heartbeat, outcomes)
            self._stop_if_failing(plan, outcomes)

    def _finished(self, plan: Plan, run: RunJob, returns: list[JobReturn]) -> Claim:
        """Judge a run that ended and hand it to its trial's claim."""
        if run.job_return is not None:
            returns.append(run.job_return)
        claim = self._open[run.trial_number]
        claim.finished(judge_run(run.seed, run.run_dir, run.job_return, plan.objectives, run.launch_error,
                                 plan.from_return), run)
        return claim

    def _close_if_done(self, plan: Plan, claim: Claim, heartbeat: Heartbeat,
                       outcomes: dict[int, TrialState | None]) -> None:
        if not claim.done:
            return
        outcomes[claim.trial.number] = self.record(plan, claim)
        heartbeat.discard(claim.trial._trial_id)
        del self._open[claim.trial.number]
        # trials.csv is rebuilt from the whole study: every few seconds while trials are short, after each long one
        if time.monotonic() - self._tables_written >= TABLES_EVERY_S:
            _tables.write_tables(plan.sweep_dir, plan.study, plan.space, plan.objectives, self.settings.seeds)
            self._tables_written = time.monotonic()
        self._progress.update()

    def _end_early(self, plan: Plan, reason: str, code: int, message: str) -> NoReturn:
        """Trials still running are recorded FAIL with the reason (finished ones kept), the tables written; exit."""
        for claim in list(getattr(self, "_open", {}).values()):
            self._tell(plan, claim.trial, TrialState.FAIL, None, {"reason": reason})
        _tables.write_tables(plan.sweep_dir, plan.study, plan.space, plan.objectives, self.settings.seeds)
        _exit(code, message)

    def _interrupted(self, plan: Plan, why: str) -> NoReturn:
        """Ctrl-C or SIGTERM: exit 130 or 143, the shell's codes (128 + SIGINT 2, SIGTERM 15)."""
        self._end_early(plan, f"sweep interrupted ({why})", 143 if why == f"signal {signal.SIGTERM}" else 130,
                        f"error: sweep interrupted ({why}): the running trials are recorded FAIL, finished ones kept; "
                        "run the same command again to continue")

    def _stop_if_failing(self, plan: Plan, outcomes: dict[int, TrialState | None]) -> None:
        """max_failure_rate: more of this command's finished trials failed than allowed -> stop, exit 1 (the
        trials still running are told FAIL)."""
        rate = self.settings.max_failure_rate
        closed = [state for state in outcomes.values() if state is not None]
        failed = sum(state == TrialState.FAIL for state in closed)
        if rate is None or not closed or failed / len(closed) <= rate:
            return
        mine = [t for t in plan.study.get_trials(deepcopy=False) if t.number in outcomes]
        self._end_early(plan, "sweep stopped: too many failed trials", 1,
                        f"error: {failed} of {len(closed)} trials failed, more than "
                        f"hydra.sweeper.max_failure_rate={rate:g} allows: {_tables.fail_reasons(mine)}")

    def _study_info(self, plan: Plan) -> dict[str, Any]:
        return {
            "study_name": plan.study.study_name,
            "storage": plan.storage_url,
            "directions": [d.name.lower() for d in plan.study.directions],
            "objectives": plan.objectives,
            "n_trials": self.settings.n_trials,
            "seeds": self.settings.seeds,
            "seed_statistic": self.settings.seed_statistic,
            "search_space": {p.name: p.text for p in plan.space if p.searched},
            "fixed": plan.fixed,
        }

    def _finish(self, plan: Plan, outcomes: dict[int, TrialState | None], slots: int) -> None:
        """Write the tables, print the summary; exit 1 if every trial this command ran failed."""
        table = _tables.write_tables(plan.sweep_dir, plan.study, plan.space, plan.objectives, self.settings.seeds)
        baseline = _tables.baseline_line(plan.storage, plan.baseline_study, plan.study, plan.objectives,
                                          plan.measure_baseline)
        trials = plan.study.get_trials(deepcopy=False)
        use = slot_use([t for t in trials if t.number in outcomes], slots) if slots > 1 else None
        busy = (f"This command's trials kept its {slots} slots {use[0]:.1%} busy over {use[1]:.0f} s, from their "
                "first run's start to their last run's end." if use else None)
        print(_tables.summary(table, plan.study, plan.space, plan.objectives, self.settings.top_k, plan.sweep_dir,
                              baseline, busy), flush=True)
        ran = {number: state for number, state in outcomes.items() if state is not None}
        if ran and all(state == TrialState.FAIL for state in ran.values()):
            mine = [t for t in trials if t.number in ran]
            _exit(1, f"error: all {len(ran)} trials of this sweep failed: {_tables.fail_reasons(mine)}")
        finished = [t for t in trials if t.state.is_finished()]
        if not ran and finished and all(t.state == TrialState.FAIL for t in finished):
            _exit(1, f"error: every trial of study '{plan.study.study_name}' failed: {_tables.fail_reasons(finished)}")
