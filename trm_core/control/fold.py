"""A run's figures folded from its log's records, oldest first: the one fold behind `status`, the dashboard,
the headless lines and the runs list, so that each front end only formats what it shows.

The fold knows what the log says. Whether a worker lives now, or a search holds the run's lock, is for the
caller to ask of the files (``control.status``) or of the process it supervises (the dashboard).
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from trm_core.rundir.records import (AutotuneResult, AutotuneStart, Checkpoint, CompileChoice, ErrorEvent, Eval, Event,
                                     Heartbeat, Restart, RunEnd, RunStart, Step, TargetReached)
from trm_core.rundir.scores import after_eval, is_number
from trm_core.rundir.states import RunState

ETA_WINDOW = 200  # steps the ETA's pace is measured over: long enough not to swing with each noisy step
STEP_TIME_WINDOW = 20  # steps the typical step time is the median of
ACTIVITY = (Step, Heartbeat, RunStart, Checkpoint, Eval)  # a worker that writes any of these is not stalled
STEP_METRICS = ("loss", "halt_loss", "accuracy", "lr", "grad_norm", "sup_steps", "exact", "masked_accuracy")


def eta_seconds(points: Sequence[tuple[float, int]], total_steps: int) -> float | None:
    """Time to ``total_steps`` at the pace of recent (wall time, step) points, oldest first. Give it only
    points since the last (re)start: a pause between a stop and a resume is not the run's pace."""
    if len(points) < 2 or points[-1][1] <= points[0][1]:
        return None
    (t0, s0), (t1, s1) = points[0], points[-1]
    return (t1 - t0) / (s1 - s0) * max(0, total_steps - s1)


def stall_after(configured_s: float, step_times: Sequence[float], heartbeat_s: float) -> float:
    """How long a silent worker counts as stalled: supervisor.stall_after_s, or else 10x the typical step
    (at least a minute, at least three heartbeats)."""
    if configured_s:
        return configured_s
    typical = statistics.median(step_times) if step_times else 0.0
    return max(60.0, 10 * typical, 3 * heartbeat_s)


def silent_for(last_activity: float | None, now: float, stall_after_s: float) -> float | None:
    """How long a live worker has been silent (no step, heartbeat, start, checkpoint or eval) when that is
    past ``stall_after_s``, else None: the one stall rule."""
    if last_activity is None or now - last_activity <= stall_after_s:
        return None
    return now - last_activity


def checkpoint_stale(now: float, since: float, checkpoint_every: int, step_times: Sequence[float]) -> bool:
    """The old "checkpoint stopped updating" alarm: the newest checkpoint (or, with none yet, the start of the
    run) is older than two checkpoint intervals at the typical recent step time, plus a minute."""
    if not step_times:
        return False
    expected = checkpoint_every * statistics.median(step_times)
    return now - since > 2 * expected + 60


def end_state(end: RunEnd) -> RunState:
    """How a run_end says its run ended: a stall is a failure of its own kind."""
    return RunState.STALLED if end.reason == "stalled" else RunState.of(end.status, RunState.FAILED)


@dataclass(kw_only=True)
class RunFold:
    """What the records fed so far say about the run. Feed it in log order, one record at a time."""

    start: RunStart | None = None  # the newest (re)start
    end: RunEnd | None = None      # how the newest start ended, if it has
    last_step: Step | None = None
    last_eval: Eval | None = None
    best_eval: tuple[float, int] | None = None  # (score, step): the run's best by the task's figure (scores.py)
    target_score: float = 0.0  # train.target_score: a score to reach (the paper's); 0 = none
    target_name: str = "target"
    pid: int | None = None
    world_size: int = 1  # ranks training the run (its newest run_start)
    started: float | None = None
    step: int = 0
    total_steps: int = 0
    epoch: int = 0
    samples_per_s: float = 0.0
    tokens_per_s: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)
    checkpoint_step: int | None = None
    checkpoint_time: float | None = None
    checkpoint_bytes: int | None = None  # the newest checkpoint's size: the next one needs about as much
    checkpoint_every: int = 0  # steps between checkpoints (checkpoint_every_epochs in steps, when counted so)
    steps_per_epoch: int = 0
    heartbeat_s: float = 5.0
    last_activity: float | None = None
    restarts: int = 0
    non_finite: bool = False
    tuning: bool = False  # a search holds the run: its autotune_start has no result, and no start came since
    in_step: Heartbeat | None = None  # the newest heartbeat inside the current step (long steps show it)
    compile: CompileChoice | None = None  # train.compile = "auto"'s verdict, when the part read holds it
    error: ErrorEvent | None = None  # why the newest start failed, when it did (its message, its step)
    target_reached: TargetReached | None = None  # train.target_score's first reach, when the part read holds it
    recent_step_s: deque = field(default_factory=lambda: deque(maxlen=STEP_TIME_WINDOW))
    step_times: deque = field(default_factory=lambda: deque(maxlen=ETA_WINDOW))  # (time, step) since the start

    @classmethod
    def of(cls, records: Iterable[Event]) -> RunFold:
        fold = cls()
        for ev in records:
            fold.add(ev)
        return fold

    def add(self, ev: Event) -> None:
        if isinstance(ev, ACTIVITY):
            self.last_activity = ev.time
        if isinstance(ev, (Step, Eval, RunStart, RunEnd)):
            self.in_step = None
        match ev:
            case Heartbeat() if ev.phase in ("step", "eval"):
                self.in_step = ev
            case Step():
                self._add_step(ev)
            case RunStart():
                self._add_start(ev)
            case Eval():
                self.last_eval = ev
                self.best_eval = after_eval(self.best_eval, ev)
            case Checkpoint():
                self.checkpoint_step, self.checkpoint_time = ev.step, ev.time
                self.checkpoint_bytes = ev.bytes or self.checkpoint_bytes
            case ErrorEvent():
                self.error = ev
                self.non_finite = self.non_finite or ev.kind == "non_finite"
            case Restart():
                self.restarts += 1
            case AutotuneStart():
                self.tuning = True
            case AutotuneResult():
                self.tuning = False
            case CompileChoice():
                self.compile = ev
            case TargetReached():
                self.target_reached = ev
            case RunEnd():
                self.end = ev
                if ev.step is not None and ev.step > (self.step or 0):  # the last completed step, even one no
                    self.step = ev.step  # step line showed (log_every; a run trm-tui import wrote has none)

    def error_line(self) -> str | None:
        """The newest start's error as one line: its message's last line (an exception's own words)."""
        if self.error is None:
            return None
        lines = [line for line in (self.error.message or "").strip().splitlines() if line.strip()]
        return lines[-1] if lines else self.error.kind

    def _add_step(self, ev: Step) -> None:
        self.last_step = ev
        self.step, self.total_steps = ev.step, ev.total_steps or self.total_steps
        self.epoch = ev.epoch if ev.epoch is not None else self.epoch
        self.samples_per_s, self.tokens_per_s = ev.samples_per_s or 0.0, ev.tokens_per_s or 0.0
        self.metrics = {k: getattr(ev, k) for k in STEP_METRICS if is_number(getattr(ev, k))}
        self.recent_step_s.append((ev.step_s or 0.0) + (ev.data_s or 0.0))
        self.step_times.append((ev.time, ev.step))

    def _add_start(self, ev: RunStart) -> None:
        self.start, self.end, self.tuning, self.error = ev, None, False, None  # this start has not ended (yet)
        self.step_times.clear()  # the ETA's pace counts from this (re)start: a pause is not the pace
        self.pid, self.started = ev.pid, ev.time
        self.world_size = ev.world_size or 1
        self.total_steps = ev.total_steps or self.total_steps
        self.steps_per_epoch = ev.steps_per_epoch or 0
        self.use_settings((ev.config or {}).get("train", {}))

    def use_settings(self, train: dict[str, Any]) -> None:
        """The run's train.* settings the rules below need: from its run_start, or (when that is older than
        the part of the log read) from its config.toml."""
        self.checkpoint_every = int(train.get("checkpoint_every", 0) or 0) or \
            int(train.get("checkpoint_every_epochs", 0) or 0) * self.steps_per_epoch
        self.heartbeat_s = float(train.get("heartbeat_s", self.heartbeat_s))
        self.target_score = float(train.get("target_score", 0.0) or 0.0)
        self.target_name = str(train.get("target_name") or "target")

    def ended_as(self) -> RunState | None:
        """How the newest start ended, as the log says; None while it has not."""
        return end_state(self.end) if self.end is not None else None

    def eta_s(self) -> float | None:
        return eta_seconds(list(self.step_times), self.total_steps)

    def stall_after_s(self, configured_s: float) -> float:
        return stall_after(configured_s, list(self.recent_step_s), self.heartbeat_s)

    def silent_s(self, now: float, configured_s: float) -> float | None:
        """Seconds without a sign of life, when that is past the stall threshold; else None."""
        return silent_for(self.last_activity, now, self.stall_after_s(configured_s))

    def checkpoint_is_stale(self, now: float, checkpoint_time: float | None) -> bool:
        """The newest checkpoint (``checkpoint_time``: the caller's source for it) or, with none yet, the newest
        (re)start is too old. The clock starts at the later of the two: a run resumed after a long pause is
        not stale in its first interval."""
        since = max(checkpoint_time or 0.0, self.started or 0.0) or now
        return bool(self.checkpoint_every) and checkpoint_stale(now, since, self.checkpoint_every,
                                                                list(self.recent_step_s))
