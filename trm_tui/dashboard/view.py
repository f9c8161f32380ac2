"""What the dashboard shows, folded from events: plain data, no Textual, so it is cheap to test.

Curves keep the whole run in bounded memory (min-max buckets); the events pane keeps the newest entries.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from trm_core.rundir.states import SUPERVISED, RunState
from trm_core.control.status import ETA_WINDOW, checkpoint_stale, disk_warning, eta_seconds, silent_for, stall_after
from trm_core.rundir.records import (Alert, AutotuneResult, AutotuneStart, AutotuneTrial, Checkpoint, CommandAck, ErrorEvent,
                                     Eval, Event, GiveUp, Heartbeat, KeeperEnd, KeeperStart, Restart, RunEnd, RunStart,
                                     Stall, Step, WarningEvent, parse)
from trm_tui.dashboard.series import MinMaxSeries
from trm_tui.event_text import event_line

NOTABLE = {cls.KIND for cls in (RunStart, Checkpoint, Eval, WarningEvent, ErrorEvent, Stall, Restart, GiveUp, RunEnd,
                                KeeperStart, CommandAck, KeeperEnd, Alert, AutotuneStart, AutotuneTrial,
                                AutotuneResult)}
ALERTING = {cls.KIND for cls in (WarningEvent, ErrorEvent, Stall, GiveUp, Restart)}


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass
class EventLine:
    time: float
    kind: str
    text: str
    alert: bool


@dataclass
class RunView:
    run_name: str
    state: RunState = RunState.STARTING
    pid: int | None = None
    world_size: int = 1  # ranks training the run (its newest run_start)
    started: float | None = None
    step: int = 0
    total_steps: int = 0
    epoch: int = 0
    samples_per_s: float = 0.0
    tokens_per_s: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)
    eval_loss: float | None = None
    eval_scores: dict = field(default_factory=dict)  # the newest eval's accuracy, exact, masked_accuracy
    eval_score_curve: MinMaxSeries = field(default_factory=MinMaxSeries)  # the task's held-out score by step
    checkpoint_step: int | None = None
    checkpoint_time: float | None = None
    checkpoint_every: int = 0
    heartbeat_s: float = 5.0
    last_activity: float | None = None
    loss: MinMaxSeries = field(default_factory=lambda: MinMaxSeries(400))
    eval_curve: MinMaxSeries = field(default_factory=lambda: MinMaxSeries(200))
    throughput: MinMaxSeries = field(default_factory=lambda: MinMaxSeries(400))
    events: deque = field(default_factory=lambda: deque(maxlen=1000))
    checkpoint_bytes: int | None = None  # the newest checkpoint's size: the next one needs about as much
    events_seen: int = 0  # notable events ever appended: the events screen follows by this count
    recent_step_s: deque = field(default_factory=lambda: deque(maxlen=20))
    step_times: deque = field(default_factory=lambda: deque(maxlen=ETA_WINDOW))  # since the last (re)start
    non_finite: bool = False
    end_status: RunState | None = None
    autotune_seen: set = field(default_factory=set)
    tuning: bool = False  # a search (from any client) holds the run: its autotune_start has no result yet
    in_step: Heartbeat | None = None  # the newest heartbeat inside the current step (long steps show it)
    version: int = 0  # bumped on every change the screen should show

    def feed(self, events: list[dict[str, Any]], history: bool = False) -> None:
        for line in events:
            self._one(parse(line), history)
        if events:
            self.version += 1

    def _one(self, ev: Event, history: bool) -> None:
        kind, t = ev.event, ev.time
        if kind.startswith("autotune_"):
            # the search hands its events over directly, and the log tail may deliver them once more
            if (kind, t) in self.autotune_seen:
                return
            self.autotune_seen.add((kind, t))
        if isinstance(ev, (Step, Heartbeat, RunStart, Checkpoint, Eval)):
            self.last_activity = t
        if isinstance(ev, (Step, Eval, RunStart, RunEnd)):
            self.in_step = None
        match ev:
            case Heartbeat() if ev.phase in ("step", "eval"):
                self.in_step = ev
            case Step():
                if not history and self.state in (RunState.STARTING, RunState.RESTARTING):
                    self.state = RunState.RUNNING  # attached past the run_start, or it was lost: steps prove it
                self.step, self.total_steps = ev.step, ev.total_steps or self.total_steps
                self.epoch = ev.epoch if ev.epoch is not None else self.epoch
                self.samples_per_s, self.tokens_per_s = ev.samples_per_s or 0.0, ev.tokens_per_s or 0.0
                self.metrics = {k: getattr(ev, k) for k in ("loss", "halt_loss", "accuracy", "lr", "grad_norm",
                                                             "sup_steps", "exact", "masked_accuracy")
                                if _number(getattr(ev, k))}
                if _number(ev.loss):
                    self.loss.append(ev.step, ev.loss)
                self.throughput.append(ev.step, ev.samples_per_s or 0.0)
                self.recent_step_s.append((ev.step_s or 0.0) + (ev.data_s or 0.0))
                self.step_times.append((t, ev.step))
                return
            case Eval() if _number(ev.loss):
                self.eval_loss = ev.loss
                self.eval_curve.append(ev.step, ev.loss)
                self.eval_scores = {k: getattr(ev, k) for k in ("accuracy", "exact", "masked_accuracy", "pass_at_1",
                                                                "pass_at_2") if _number(getattr(ev, k))}
                _, score = self.task_score()
                if score is not None:
                    self.eval_score_curve.append(ev.step, score)
            case RunStart():
                self.tuning = False
                self.step_times.clear()  # the ETA's pace counts from this (re)start: a pause is not the pace
                self.pid, self.started = ev.pid, t
                self.world_size = ev.world_size or 1
                train = (ev.config or {}).get("train", {})
                self.checkpoint_every = train.get("checkpoint_every", 0)
                self.heartbeat_s = float(train.get("heartbeat_s", self.heartbeat_s))
                self.total_steps = ev.total_steps or self.total_steps
                self.end_status = None  # this start has not ended (yet): a worker that dies silently failed
                if not history:
                    self.state = RunState.RUNNING
            case Checkpoint():
                self.checkpoint_step, self.checkpoint_time = ev.step, t
                self.checkpoint_bytes = ev.bytes or self.checkpoint_bytes
            case ErrorEvent() if ev.kind == "non_finite":
                self.non_finite = True
            case Restart():
                self.state = RunState.RESTARTING
            case AutotuneStart():
                self.tuning = True
            case AutotuneResult():
                self.tuning = False
            case KeeperStart() if not history and self.state not in SUPERVISED:
                self.state, self.end_status = RunState.STARTING, None  # a start or resume, from any client
            case CommandAck() if not history and ev.accepted and ev.command in ("stop", "kill") \
                    and self.state in SUPERVISED:
                self.state = RunState.STOPPING  # asked from any client: every dashboard shows it
            case RunEnd():
                # the final state shows once the supervisor saw the process go (see finish); in the history
                # of a run opened as it is, it is how that run ended
                self.end_status = RunState.STALLED if ev.reason == "stalled" \
                    else RunState.of(ev.status, RunState.STOPPED)
                if not history:
                    self.state = RunState.STALLED if self.end_status == RunState.STALLED else RunState.STOPPING
        if kind in NOTABLE:
            self.events.append(EventLine(t, kind, event_line(ev) or kind, kind in ALERTING))
            self.events_seen += 1

    def task_score(self) -> tuple[str, float | None]:
        """The figure that fits the task, held-out when there is an eval: the code task's accuracy on the
        masked bytes, ARC's pass@2 (puzzles solved in two attempts, by voting), else the share of whole
        answers right (puzzles solved)."""
        for key, label in (("masked_accuracy", "masked acc"), ("pass_at_2", "pass@2"), ("exact", "exact")):
            if key in self.eval_scores:
                return f"eval {label}", self.eval_scores[key]
            if key in self.metrics:
                return label, self.metrics[key]
        return "exact", None

    def task_curve_label(self) -> str:
        return self.task_score()[0] if self.eval_scores else "eval exact"

    def finish(self, exit_code: int | None) -> None:
        """Supervision is over: the run's final state."""
        if self.end_status == RunState.STALLED:
            self.state = RunState.STALLED  # stalled, and not restarted (the keeper gave up, or was not there)
        else:
            self.state = RunState.FAILED if exit_code else (self.end_status or RunState.STOPPED)
        self.version += 1

    def eta_s(self) -> float | None:
        """Only while it runs: a stopped run has no arrival time."""
        return eta_seconds(list(self.step_times), self.total_steps) if self.state == RunState.RUNNING else None

    def stall_after_s(self, configured: float) -> float:
        return stall_after(configured, list(self.recent_step_s), self.heartbeat_s)

    def alerts(self, now: float, stall_after: float, disk_free_mb: float | None, gpu_idle: bool) -> list[str]:
        out = []
        silent = silent_for(self.last_activity, now, stall_after) if self.state == RunState.RUNNING else None
        if silent is not None:
            out.append(f"STALLED: no step or heartbeat for {silent:.0f}s")
        since = max(self.checkpoint_time or 0.0, self.started or 0.0) or now  # a resume restarts the clock
        if self.state == RunState.RUNNING and self.checkpoint_every and \
                checkpoint_stale(now, since, self.checkpoint_every, list(self.recent_step_s)):
            out.append(f"CHECKPOINT STALE: newest is {now - since:.0f}s old")
        if self.non_finite:
            out.append("NON-FINITE LOSS: the run stopped")
        low = disk_warning(disk_free_mb * 2**20 if disk_free_mb is not None else None, self.checkpoint_bytes)
        if low:
            out.append(f"DISK LOW: {low}")
        if gpu_idle and self.state == RunState.RUNNING:
            out.append("GPU IDLE while the run is running")
        return out

    def uptime_s(self, now: float) -> float | None:
        return now - self.started if self.started and self.state == RunState.RUNNING else None
