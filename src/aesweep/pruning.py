"""The job side of the sweeper link: report each epoch's metric to the Optuna trial, stop when pruned.

The sweeper (``hydra_plugins.aesweep_optuna``) injects ``trial.study_name``, ``trial.storage``,
``trial.trial_id``, ``trial.trial_number`` and ``trial.report`` into every job it launches. The
train loop builds a ``TrialReporter`` from that block and calls ``report(epoch, metrics)`` after
each validation; ``True`` means the pruner wants the trial stopped.

``open_storage`` lives here too, so the sweeper, the jobs and ``aesweep plot`` read a storage
string the same way. Optuna is imported lazily: a single run (no sweep) never pays for it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aesweep.errors import ConfigError, one_line

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

# Study user attribute holding the pruner's config ({_target_: ..., args}); the sweeper writes it,
# jobs build the same pruner from it, so the pruner is configured in one place (the sweep file).
PRUNER_ATTR = "aesweep.pruner"

# SQLite admits one writer at a time; a writer waits this long for the lock instead of failing
# with "database is locked" when several trial processes report at once.
SQLITE_BUSY_TIMEOUT_S = 60

# Tries at opening an RDB storage before giving up (see open_storage).
RDB_OPEN_ATTEMPTS = 3

STORAGE_FORMS = (
    "a journal file path (e.g. outputs/optuna/journal.log), sqlite:///path.db "
    "or postgresql://user:password@host:port/database"
)


def is_journal_file(storage: str) -> bool:
    """A storage string without a URL scheme names an Optuna journal file."""
    return "://" not in storage


def open_storage(storage: str) -> optuna.storages.BaseStorage:
    """Open an Optuna storage from a string: a journal file path or an RDB URL.

    Journal files (``JournalFileBackend``) are the default: appends under a file lock, safe for
    many processes on one machine (or NFS) and no server. RDB URLs go to ``RDBStorage``.
    """
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend

    if is_journal_file(storage):
        path = Path(storage).expanduser()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(str(path)))
        except OSError as error:
            where = f" ({error.filename})" if error.filename else ""  # "File exists (x)": x is a file, not a folder
            raise ConfigError("storage", storage, f"{STORAGE_FORMS}; cannot open it: {error.strerror}{where}") from None

    url, engine_kwargs = rdb_url(storage)
    for attempt in range(RDB_OPEN_ATTEMPTS):
        try:
            return RDBStorage(url, engine_kwargs=engine_kwargs)
        except ImportError:
            raise ConfigError(
                "storage", storage, "its database driver is not installed (PostgreSQL: pip install 'aesweep[postgres]')"
            ) from None
        except Exception as error:  # SQLAlchemy raises many kinds; the user needs one line.
            # Workers opening a fresh database at once race to create Optuna's tables; the loser
            # fails once and then finds them.
            if attempt + 1 < RDB_OPEN_ATTEMPTS:
                time.sleep(1.0)
                continue
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ConfigError("storage", storage, f"{STORAGE_FORMS}; cannot open it: {first_line}") from None
    raise AssertionError("unreachable")


def rdb_url(storage: str) -> tuple[str, dict[str, Any]]:
    """The SQLAlchemy URL and engine options for an RDB storage string."""
    if storage.startswith("sqlite:"):
        return storage, {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    if storage.startswith("postgresql://"):
        # SQLAlchemy's plain postgresql:// means psycopg2; the project's extra installs psycopg 3.
        try:
            import psycopg2  # noqa: F401
        except ImportError:
            try:
                import psycopg  # noqa: F401

                return "postgresql+psycopg://" + storage[len("postgresql://") :], {}
            except ImportError:
                pass
    return storage, {}


def lookup_metric(metrics: Mapping[str, Any], path: str) -> Any:
    """The value at a metric path such as ``val.mapped_acc``: a flat key, else nested dicts."""
    if path in metrics:
        return metrics[path]
    node: Any = metrics
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def metric_paths(metrics: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Every leaf path in a (possibly nested) metrics dict, for error messages."""
    paths = []
    for key, value in metrics.items():
        path = f"{prefix}{key}"
        paths.extend(metric_paths(value, path + ".") if isinstance(value, Mapping) else [path])
    return paths


def pruner_from_config(pruner_cfg: Mapping[str, Any] | None) -> optuna.pruners.BasePruner:
    """Build a pruner from ``{_target_: optuna.pruners.X, ...}``; ``None`` means never prune."""
    import optuna
    from hydra.utils import instantiate

    if not pruner_cfg:
        return optuna.pruners.NopPruner()
    return instantiate(dict(pruner_cfg))


PRUNER_FORMS = "null or an optuna.pruners class with its arguments, e.g. {_target_: optuna.pruners.MedianPruner}"


def checked_pruner(pruner_cfg: Mapping[str, Any] | None, key: str) -> optuna.pruners.BasePruner:
    """`pruner_from_config`, with a config that builds no pruner refused in one line naming `key`."""
    import optuna

    if pruner_cfg is not None and not isinstance(pruner_cfg, Mapping):  # hydra.sweeper.pruner=median
        raise ConfigError(key, pruner_cfg, PRUNER_FORMS)
    target = (pruner_cfg or {}).get("_target_")
    try:
        pruner = pruner_from_config(pruner_cfg)
    except Exception as error:  # Hydra wraps the import or argument error; its cause says what is wrong
        raise ConfigError(key, target, f"{PRUNER_FORMS} ({one_line(error.__cause__ or error)})") from None
    if not isinstance(pruner, optuna.pruners.BasePruner):
        raise ConfigError(key, target, PRUNER_FORMS)
    return pruner


class TrialReporter:
    """Reports one metric per epoch to a running Optuna trial and relays the pruner's verdict."""

    def __init__(self, trial: optuna.Trial, metric: str, prunable: bool) -> None:
        self.trial = trial
        self.metric = metric
        self.prunable = prunable

    @classmethod
    def from_config(cls, trial_cfg: Mapping[str, Any] | None) -> TrialReporter | None:
        """The reporter for the trial named in ``cfg.trial``; ``None`` outside a sweep."""
        if trial_cfg is None or trial_cfg.get("study_name") is None:
            return None
        import optuna

        storage = open_storage(str(trial_cfg["storage"]))
        study_name = str(trial_cfg["study_name"])
        try:
            study_id = storage.get_study_id_from_name(study_name)
        except KeyError:
            raise ConfigError("trial.study_name", study_name, f"a study in {trial_cfg['storage']}") from None
        pruner_cfg = storage.get_study_user_attrs(study_id).get(PRUNER_ATTR)
        study = optuna.load_study(study_name=study_name, storage=storage, pruner=pruner_from_config(pruner_cfg))
        trial_id = int(trial_cfg["trial_id"])
        try:
            number = storage.get_trial(trial_id).number
        except KeyError:
            raise ConfigError("trial.trial_id", trial_id, f"a trial of study {study_name!r}") from None
        if trial_cfg.get("trial_number") is not None and number != int(trial_cfg["trial_number"]):
            raise ConfigError("trial.trial_number", trial_cfg["trial_number"], f"{number} (trial_id {trial_id})")
        trial = optuna.trial.Trial(study, trial_id)
        return cls(trial, str(trial_cfg.get("report") or "val.mapped_acc"), prunable=len(study.directions) == 1)

    @property
    def number(self) -> int:
        return self.trial.number

    def report(self, epoch: int, metrics: Mapping[str, Any], last: bool = False) -> bool:
        """Report ``metrics[report]`` at step ``epoch``; True when the trial should stop now.

        After the ``last`` epoch the value is reported but the pruner is not asked: the training is
        paid for, and a finished trial tells the sampler more as COMPLETE than as PRUNED (a pruner
        whose rung or warm-up ends at the last epoch would otherwise throw finished trials away).
        Multi-objective studies are never pruned (Optuna cannot). A NaN/inf value is not reported:
        divergence is the train loop's call, not the pruner's. If the sweeper already closed the
        trial (it was declared stale), the job stops: nobody would record its result.
        """
        if not self.prunable:
            return False
        value = lookup_metric(metrics, self.metric)
        if value is None:
            raise ConfigError("trial.report", self.metric, f"one of the reported metrics {metric_paths(metrics)}")
        value = float(value)
        if not math.isfinite(value):
            return False
        from optuna.exceptions import UpdateFinishedTrialError

        try:
            self.trial.report(value, step=int(epoch))
            return not last and self.trial.should_prune()
        except UpdateFinishedTrialError:
            log.warning("trial %d was already closed by the sweeper; stopping this job", self.trial.number)
            return True
