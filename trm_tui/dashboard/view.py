"""What the dashboard shows, folded from events: plain data, no Textual, so it is cheap to test.

Curves keep the whole run in bounded memory (min-max buckets); the events pane keeps the newest entries.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from trm_core.control.fold import RunFold, end_state, is_number, silent_for
from trm_core.control.run_status import disk_warning
from trm_core.rundir.records import (Alert, AutotuneResult, AutotuneStart, AutotuneTrial, Checkpoint, CommandAck,
                                     CompileChoice, DepthStageEvent, ErrorEvent, TargetReached,
                                     Eval, Event, GiveUp, KeeperEnd, KeeperStart, Restart, RunEnd, RunStart, Stall, Step,
                                     WarningEvent, parse)
from trm_core.rundir.scores import HEADLINES
from trm_core.rundir.states import SUPERVISED, RunState
from trm_tui.dashboard.series import MinMaxSeries
from trm_tui.event_text import event_line

NOTABLE = {cls.KIND for cls in (RunStart, Checkpoint, Eval, WarningEvent, CompileChoice, DepthStageEvent, TargetReached, ErrorEvent, Stall, Restart,
                                GiveUp, RunEnd, KeeperStart, CommandAck, KeeperEnd, Alert, AutotuneStart, AutotuneTrial,
                                AutotuneResult)}
CROWDED_SHOWN_S = 600.0  # a crowded-CPU warning shows as an alert this long (the worker repeats it while it lasts)
ALERTING = {cls.KIND for cls in (WarningEvent, ErrorEvent, Stall, GiveUp, Restart)}


@dataclass
class EventLine:
    time: float
    kind: str
    text: str
    alert: bool


@dataclass
class RunView(RunFold):
    """The run's fold (figures, as ``status`` has them) plus what only a screen needs: curves, the events pane,
    and the state followed live as records arrive (``history`` records are how an opened run got here)."""

    run_name: str = ""
    state: RunState = RunState.STARTING
    eval_loss: float | None = None
    eval_scores: dict = field(default_factory=dict)  # the newest eval's accuracy, exact, masked_accuracy
    eval_score_curve: MinMaxSeries = field(default_factory=MinMaxSeries)  # the task's held-out score by step
    loss: MinMaxSeries = field(default_factory=lambda: MinMaxSeries(400))
    eval_curve: MinMaxSeries = field(default_factory=lambda: MinMaxSeries(200))
    throughput: MinMaxSeries = field(default_factory=lambda: MinMaxSeries(400))
    events: deque = field(default_factory=lambda: deque(maxlen=1000))
    events_seen: int = 0  # notable events ever appended: the events screen follows by this count
    autotune_seen: set = field(default_factory=set)
    crowded: tuple[float, str] | None = None  # the newest crowded-CPU warning (time, message) of this start
    version: int = 0  # bumped on every change the screen should show

    def move_to(self, state: RunState, pid: int | None = None) -> None:
        """A state this window knows before the log says it (s pressed: stopping; r: starting; a live worker
        found: running), and the worker's pid when it is known."""
        self.state = state
        if pid is not None:
            self.pid = pid
        self.version += 1

    def feed(self, events: list[dict[str, Any]], history: bool = False) -> None:
        for line in events:
            self._one(parse(line), history)
        if events:
            self.version += 1

    def _one(self, ev: Event, history: bool) -> None:
        kind = ev.event
        if kind.startswith("autotune_"):
            # the search hands its events over directly, and the log tail may deliver them once more
            if (kind, ev.time) in self.autotune_seen:
                return
            self.autotune_seen.add((kind, ev.time))
        self._follow(ev, history)
        self.add(ev)
        self._draw(ev)
        if kind in NOTABLE:
            self.events.append(EventLine(ev.time, kind, event_line(ev) or kind, kind in ALERTING))
            self.events_seen += 1

    def _follow(self, ev: Event, history: bool) -> None:
        """The state as a live record moves it; a restart shows in the history too (``finish`` settles it)."""
        if isinstance(ev, Restart):
            self.state = RunState.RESTARTING
        if history:
            return
        match ev:
            case Step() if self.state in (RunState.STARTING, RunState.RESTARTING):
                self.state = RunState.RUNNING  # attached past the run_start, or it was lost: steps prove it
            case RunStart():
                self.state = RunState.RUNNING
            case KeeperStart() if self.state not in SUPERVISED:
                self.state, self.end = RunState.STARTING, None  # a start or resume, from any client
            case CommandAck() if ev.accepted and ev.command in ("stop", "kill") and self.state in SUPERVISED:
                self.state = RunState.STOPPING  # asked from any client: every dashboard shows it
            case RunEnd():
                # the final state shows once the supervisor saw the process go (see finish)
                self.state = RunState.STALLED if end_state(ev) == RunState.STALLED else RunState.STOPPING

    def _draw(self, ev: Event) -> None:
        """The curves a record adds a point to."""
        match ev:
            case WarningEvent(about="crowded_cpu"):
                self.crowded = (ev.time, ev.message)
            case RunStart():
                self.crowded = None  # a new start measures anew
            case Step():
                if is_number(ev.loss):
                    self.loss.append(ev.step, ev.loss)
                self.throughput.append(ev.step, ev.samples_per_s or 0.0)
            case Eval() if is_number(ev.loss):
                self.eval_loss = ev.loss
                self.eval_curve.append(ev.step, ev.loss)
                self.eval_scores = {k: getattr(ev, k) for k in ("accuracy", "exact", "masked_accuracy", "pass_at_1",
                                                                "pass_at_2") if is_number(getattr(ev, k))}
                _, score = self.task_score()
                if score is not None:
                    self.eval_score_curve.append(ev.step, score)

    def task_score(self) -> tuple[str, float | None]:
        """The figure that fits the task, held-out when there is an eval: the code task's accuracy on the
        masked bytes, ARC's pass@2 (puzzles solved in two attempts, by voting), else the share of whole
        answers right (puzzles solved)."""
        for key, label in HEADLINES:
            if key in self.eval_scores:
                return f"eval {label}", self.eval_scores[key]
            if key in self.metrics:
                return label, self.metrics[key]
        return "exact", None

    def task_curve_label(self) -> str:
        return self.task_score()[0] if self.eval_scores else "eval exact"

    def finish(self, exit_code: int | None) -> None:
        """Supervision is over: the run's final state (in the history of a run opened as it is, its run_end
        says how it ended)."""
        ended = self.ended_as()
        if ended == RunState.STALLED:
            self.state = RunState.STALLED  # stalled, and not restarted (the keeper gave up, or was not there)
        else:
            self.state = RunState.FAILED if exit_code else (ended or RunState.STOPPED)
        self.version += 1

    def eta_s(self) -> float | None:
        """Only while it runs: a stopped run has no arrival time."""
        return super().eta_s() if self.state == RunState.RUNNING else None

    def alerts(self, now: float, stall_after: float, disk_free_mb: float | None, gpu_idle: bool) -> list[str]:
        out = []
        silent = silent_for(self.last_activity, now, stall_after) if self.state == RunState.RUNNING else None
        if silent is not None:
            out.append(f"STALLED: no step or heartbeat for {silent:.0f}s")
        if self.state == RunState.RUNNING and self.checkpoint_is_stale(now, self.checkpoint_time):
            since = max(self.checkpoint_time or 0.0, self.started or 0.0)
            out.append(f"CHECKPOINT STALE: newest is {now - since:.0f}s old")
        if self.non_finite:
            out.append("NON-FINITE LOSS: the run stopped")
        elif self.error is not None and self.state == RunState.FAILED:  # why, not only that it failed
            out.append(f"FAILED in step {self.error.step}: {self.error_line()} (the traceback: l shows worker.log)")
        low = disk_warning(disk_free_mb * 2**20 if disk_free_mb is not None else None, self.checkpoint_bytes)
        if low:
            out.append(f"DISK LOW: {low}")
        if gpu_idle and self.state == RunState.RUNNING:
            out.append("GPU IDLE while the run is running")
        if self.crowded is not None and self.state == RunState.RUNNING and now - self.crowded[0] < CROWDED_SHOWN_S:
            out.append("SLOWED by other processes on the cores: press a to auto-tune (events: the figures)")
        return out

    def uptime_s(self, now: float) -> float | None:
        return now - self.started if self.started and self.state == RunState.RUNNING else None
