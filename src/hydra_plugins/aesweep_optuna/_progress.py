"""The sweep's live progress line: trials done of ``n_trials`` (or time used of ``timeout``), the study's trials
by state, the best value so far and its trial, and an ETA, as one tqdm line on stderr.

Everything on the line is read from the study, so trials of other workers on the same study (another
command, another machine) count too. The line is redrawn when a trial ends and every ``REFRESH_SECONDS``
in between; what is printed meanwhile is written above it rather than into it: this process's lines (the
sweep's log, in-process jobs' logs) and, when the line is drawn on the process's own stderr, the lines of
jobs in other processes started meanwhile (joblib's workers inherit the sweep's stdout and stderr, which
then lead through pipes to a thread that writes each whole line above the line). ``progress: auto`` shows
it only where stderr is a terminal: in a log file the one line per trial that the sweep logs anyway says
the same.
"""

from __future__ import annotations

import io
import logging
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any, TextIO

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState
from tqdm import tqdm

from ._tables import rank

PROGRESS_MODES = ("auto", True, False)
# Often enough for the running count and the clock to look live; each redraw reads the study's trials once.
REFRESH_SECONDS = 2.0
DRAIN_SECONDS = 2.0  # at the end, how long the relayed output may take to reach the terminal before the line goes
DRAIN_MARK = b"\x00aesweep-progress-drained\x00"
SHOWN_STATES = ((TrialState.COMPLETE, "complete"), (TrialState.PRUNED, "pruned"), (TrialState.FAIL, "failed"),
                (TrialState.RUNNING, "running"))


def is_shown(mode: Any, stream: TextIO) -> bool:
    """Whether the line is drawn: ``auto`` only on a terminal."""
    if mode == "auto":
        return bool(getattr(stream, "isatty", lambda: False)())
    return bool(mode)


def study_summary(trials: Sequence[FrozenTrial], directions: Sequence[StudyDirection]) -> str:
    """``3 complete, 1 pruned, 0 failed, 2 running; best 0.9123 (trial 4)`` for the study's trials."""
    counts = Counter(t.state for t in trials)
    text = ", ".join(f"{counts[state]} {name}" for state, name in SHOWN_STATES)
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.values]
    if not complete:
        return text
    signs = [1 if d == StudyDirection.MAXIMIZE else -1 for d in directions]
    scores = [[s * v for s, v in zip(signs, t.values)] for t in complete]  # larger is better in every objective
    if len(directions) > 1:  # no single best: the size of the Pareto front is what a glance can take in
        front = [a for a in scores if not any(all(x >= y for x, y in zip(b, a)) and b != a for b in scores)]
        return f"{text}; {len(front)} on the Pareto front"
    best = max(complete, key=lambda t: rank(t, signs[0] > 0))
    return f"{text}; best {best.values[0]:.4g} (trial {best.number})"


def trials_done(trials: Sequence[FrozenTrial]) -> int:
    return sum(t.state.is_finished() for t in trials)


class SweepProgress:
    """A context manager around the sweep's loop: draws the line, keeps it fresh, writes output above it."""

    def __init__(self, study: optuna.Study, n_trials: int, timeout: float | None, mode: Any,
                 stream: TextIO | None = None) -> None:
        self.study, self.n_trials, self.timeout = study, n_trials, timeout
        self.stream = stream if stream is not None else sys.stderr
        self.shown = is_shown(mode, self.stream)
        self.bar: tqdm | None = None
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._restore: list[tuple[Any, str, Any]] = []  # (object, attribute, original) put back on exit
        self._relays: list[_Relay] = []  # this process's console descriptors, led through pipes while shown

    def __enter__(self) -> SweepProgress:
        if not self.shown:
            return self
        if _is_own_stderr(self.stream):
            try:
                self._relays = _Relay.start_for_own_console(self)
            except OSError:  # no pipes here: other processes' lines may run into the line, as they did
                self._relays = []
        line_stream = self._relays[-1].text_stream() if self._relays else self.stream
        trials = self.study.get_trials(deepcopy=False)
        common = {"file": line_stream, "desc": self.study.study_name, "dynamic_ncols": True,
                  "postfix": self._summary(trials)}  # tqdm draws once on creation: with the counts already
        if self.timeout:  # the sweep ends at the deadline: the bar is the time used of it
            layout = "{desc}: {elapsed} of " + tqdm.format_interval(self.timeout) + " |{bar}| ETA {remaining}{postfix}"
            self.bar = tqdm(total=int(self.timeout), bar_format=layout, **common)
        else:
            layout = "{desc}: {n}/{total} trials |{bar}| {elapsed}, ETA {remaining}{postfix}"
            self.bar = tqdm(total=self.n_trials, initial=min(trials_done(trials), self.n_trials), bar_format=layout,
                            **common)
        self._draw(trials)
        if not self._relays:  # with relays, this process's console output takes the same way as other processes'
            self._write_above_the_line()
        threading.Thread(target=self._refresh_until_stopped, name="sweep-progress", daemon=True).start()
        return self

    @property
    def text(self) -> str:
        """The line as drawn now ('' when off)."""
        return str(self.bar) if self.bar is not None else ""

    def update(self) -> None:
        """Redraw from the study's trials now (a trial just ended)."""
        if self.bar is not None:
            self._draw(self.study.get_trials(deepcopy=False))

    def _draw(self, trials: Sequence[FrozenTrial]) -> None:
        assert self.bar is not None
        with self._lock:
            if self.timeout:
                self.bar.n = min(int(time.monotonic() - self._started), int(self.timeout))
            else:
                self.bar.n = min(trials_done(trials), self.n_trials)
            self.bar.set_postfix_str(self._summary(trials), refresh=False)
            self.bar.refresh()

    def _summary(self, trials: Sequence[FrozenTrial]) -> str:
        summary = study_summary(trials, self.study.directions)
        return f"{trials_done(trials)}/{self.n_trials} trials: {summary}" if self.timeout else summary

    def write_above(self, write: Any) -> None:
        """Calls `write` (which writes whole lines to the terminal) with the line cleared, then draws it again."""
        with self._lock:
            bar = self.bar
            drawn = bar is not None and not bar.disable
            if drawn:
                bar.clear()
            write()
            if drawn:
                bar.refresh()

    def _refresh_until_stopped(self) -> None:
        while not self._stop.wait(REFRESH_SECONDS):
            try:
                self.update()
            except Exception:  # a storage hiccup costs one redraw, never the sweep
                continue

    def _write_above_the_line(self) -> None:
        """Route this process's console output (print, logging handlers) through streams that clear the line,
        write whole lines and draw it again. Jobs in other processes (joblib, SLURM) write as they will."""
        for name in ("stdout", "stderr"):
            real = getattr(sys, name)
            above = _AboveTheLine(real, self)
            self._restore.append((sys, name, real))
            setattr(sys, name, above)
            # Handlers made before now (Hydra's) hold the real stream; jobs run in this process resolve
            # ext://sys.stdout anew and get the wrapper.
            for handler in logging.getLogger().handlers:
                if isinstance(handler, logging.StreamHandler) and handler.stream is real:
                    self._restore.append((handler, "stream", real))
                    handler.stream = above

    def __exit__(self, *exc: object) -> None:
        if self.bar is None:
            return
        self._stop.set()
        try:
            self.update()
        except Exception:  # the storage may be what failed; the line is closed all the same
            pass
        for relay in self._relays:
            relay.drain()
        with self._lock:
            self.bar.close()
            for relay in self._relays:  # the console is the terminal again; late lines are still passed on
                relay.stop_relaying()
        for owner, attribute, original in reversed(self._restore):
            above = getattr(owner, attribute)
            if isinstance(above, _AboveTheLine):
                above.flush_pending()
            setattr(owner, attribute, original)
        for handler in logging.getLogger().handlers:  # handlers that jobs made around the wrapper
            if isinstance(handler, logging.StreamHandler) and isinstance(handler.stream, _AboveTheLine):
                handler.stream = handler.stream.stream


class _AboveTheLine(io.TextIOBase):
    """A console stream whose whole lines are written above the progress line (the line cleared, then drawn
    again), so log output and the line do not run into each other."""

    def __init__(self, stream: TextIO, progress: SweepProgress) -> None:
        super().__init__()
        self.stream, self.progress = stream, progress
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        if "\n" in self._pending:
            lines, _, self._pending = self._pending.rpartition("\n")
            self._emit(lines + "\n")
        return len(text)

    def flush_pending(self) -> None:
        if self._pending:
            self._emit(self._pending)
            self._pending = ""

    def _emit(self, text: str) -> None:
        self.progress.write_above(lambda: (self.stream.write(text), self.stream.flush()))

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def buffer(self) -> Any:  # bytes written there bypass the line, as a job in another process's would
        return self.stream.buffer

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", "utf-8")


def _is_own_stderr(stream: TextIO) -> bool:
    """Whether `stream` writes to this process's file descriptor 2, which the processes it starts inherit."""
    try:
        return stream.fileno() == 2
    except (AttributeError, OSError, ValueError):
        return False


class _Relay:
    """One of this process's console file descriptors (2, and 1 where it leads to the same place) pointed at a
    pipe while the line is shown; a thread writes what arrives there to the terminal, whole lines above the line.

    Processes started meanwhile inherit the pipe: their lines take the same way. They may outlive the sweep
    (joblib keeps its workers), so the thread goes on passing their output to the terminal afterwards.
    """

    def __init__(self, fd: int, progress: SweepProgress) -> None:
        self.fd, self.progress = fd, progress
        self.terminal = os.dup(fd)
        self.terminal_bytes = os.fdopen(self.terminal, "wb", buffering=0, closefd=False)
        self.source, sink = os.pipe()
        os.dup2(sink, fd)
        os.close(sink)
        self.relaying = True
        self.drained = threading.Event()
        threading.Thread(target=self._pass_on, name=f"sweep-progress-fd{fd}", daemon=True).start()

    @classmethod
    def start_for_own_console(cls, progress: SweepProgress) -> list[_Relay]:
        sys.stdout.flush()
        sys.stderr.flush()
        fds = [1] if _same_place(1, 2) else []
        return [cls(fd, progress) for fd in (*fds, 2)]  # fd 2's last: the line is drawn on its terminal

    def text_stream(self) -> TextIO:
        """A text stream to the terminal itself, for the line."""
        return os.fdopen(os.dup(self.terminal), "w", buffering=1,
                         encoding=getattr(sys.stderr, "encoding", None) or "utf-8", errors="replace")

    def _pass_on(self) -> None:
        pending = b""
        while True:
            try:
                chunk = os.read(self.source, 65536)
            except OSError:
                return
            if not chunk:
                break
            pending += chunk
            while DRAIN_MARK in pending:  # all written before the mark has arrived: pass it on, say so
                before, _, pending = pending.partition(DRAIN_MARK)
                if before:
                    self._write(before)
                self.drained.set()
            if b"\n" in pending:
                lines, _, pending = pending.rpartition(b"\n")
                self._write(lines + b"\n")
        if pending:
            self._write(pending)

    def _write(self, data: bytes) -> None:
        if self.relaying:
            self.progress.write_above(lambda: self.terminal_bytes.write(data))
        else:
            self.terminal_bytes.write(data)

    def drain(self) -> None:
        """Returns once what was written so far is on the terminal (or after DRAIN_SECONDS): a mark sent through
        the pipe behind it comes out of the thread."""
        sys.stdout.flush()
        sys.stderr.flush()
        self.drained.clear()
        os.write(self.fd, DRAIN_MARK)  # shorter than PIPE_BUF: never split by another process's write
        self.drained.wait(DRAIN_SECONDS)

    def stop_relaying(self) -> None:
        """Points the descriptor at the terminal again; the pipe stays for processes that still hold it."""
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(self.terminal, self.fd)
        self.relaying = False


def _same_place(fd: int, other: int) -> bool:
    try:
        return os.path.sameopenfile(fd, other)
    except OSError:
        return False
