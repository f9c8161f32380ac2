"""The watchdog: heartbeats while the worker is busy, and a loud exit when a phase hangs.

The old project bolted a timer onto each batch; here one thread watches whichever phase is running (a
training step, an eval, a checkpoint save). Past ``timeout_s`` it writes a ``stall`` event carrying the
Python stack of every thread and exits with code 3, so a supervisor can restart from the last checkpoint.
A faulthandler timer backs it up for hangs that hold the GIL (the Python thread could not run then).

With several ranks the same thread keeps the rank's heartbeat file (``report``). A rank that waits for its
peers in a collective when its timeout runs out is not the one that hung: it gives the rank it waits for a
grace period to find its own stall first (and write its own stacks), so the post-mortem names the right one.
"""

from __future__ import annotations

import faulthandler
import math
import os
import sys
import threading
import time
import traceback
from typing import TYPE_CHECKING, Any, Callable

from trm_core.rundir.states import RunState
from trm_core.rundir.events import EventWriter
from trm_core.rundir.layout import EXIT_STALLED
from trm_core.rundir.records import Heartbeat, RunEnd, Stall

if TYPE_CHECKING:
    from trm_core.worker.rank_report import RankReport


def thread_stacks() -> list[dict[str, Any]]:
    names = {t.ident: t.name for t in threading.enumerate()}
    return [{"thread": names.get(ident, str(ident)), "stack": "".join(traceback.format_stack(frame))}
            for ident, frame in sys._current_frames().items()]


class Watchdog:
    def __init__(self, events: EventWriter, timeout_s: float, heartbeat_s: float,
                 exit_fn: Callable[[int], None] = os._exit, report: RankReport | None = None) -> None:
        self.events = events
        self.report = report
        self.timeout_s = timeout_s
        self.heartbeat_s = heartbeat_s
        self._exit = exit_fn
        self._phase: str | None = None
        self._progress: tuple[int, int] | None = None
        self._step = 0
        self._since = 0.0
        self._alive = 0.0  # when the phase last showed it is moving: its start, or an eval's last batch
        self._armed_at = -math.inf  # when the faulthandler backstop was last armed
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="trm-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        faulthandler.cancel_dump_traceback_later()

    def begin(self, phase: str, step: int) -> None:
        """A phase that must finish within the timeout starts now."""
        self._progress = None
        self._step, self._since, self._phase = step, time.monotonic(), phase
        self._alive = self._since
        self._arm_backstop(self._since)

    def _arm_backstop(self, now: float) -> None:
        """The backstop for GIL-holding hangs, which this thread cannot see: faulthandler dumps the C-level
        stacks to stderr (worker.log) and exits 1 once ``2 x timeout + 30 s`` pass without a re-arm. Re-arming
        starts a new C thread (about 0.2 ms), so a phase re-arms only when the last arming is older than half
        the timeout: its backstop then fires at least 1.5 x timeout + 30 s after it began, still well past
        the watchdog's own stall at 1 x timeout."""
        if now - self._armed_at < self.timeout_s / 2:
            return
        self._armed_at = now
        faulthandler.dump_traceback_later(self.timeout_s * 2 + 30, exit=True)

    def end(self) -> None:
        self._phase = None

    def progress(self, done: int, total: int) -> None:
        """How far into the current phase (heartbeats say it): in a step, ``done`` of at most ``total``
        supervision steps; in an eval, ``done`` of ``total`` batches. An eval's timeout counts from its last
        finished batch: a whole-split eval may rightly run longer than any step, and a batch is smaller than
        a training step (no backward), so a batch that takes the timeout is a stall."""
        self._progress = (done, total)
        if self._phase == "eval":
            self._alive = time.monotonic()
            self._arm_backstop(self._alive)

    def _watch(self) -> None:
        tick = min(1.0, self.heartbeat_s / 2, self.timeout_s / 4)
        while not self._stop.wait(tick):
            now = time.monotonic()
            phase = self._phase
            if self.report is not None:
                self.report.beat(phase or "idle", self._step, now - self._since if phase else 0.0)
            if phase is not None and now - self._alive > self._timeout_now():
                self._stall(phase, now - self._alive)
                return
            if now - self.events.last_write >= self.heartbeat_s:
                progress = self._progress if phase in ("step", "eval") else None
                in_step, in_eval = (progress if phase == "step" else None), (progress if phase == "eval" else None)
                self.events.emit(Heartbeat(step=self._step, phase=phase or "idle",
                                           phase_s=round(now - self._since, 3) if phase else 0.0,
                                           sup_step=in_step[0] if in_step else None,
                                           sup_steps=in_step[1] if in_step else None,
                                           batch=in_eval[0] if in_eval else None,
                                           batches=in_eval[1] if in_eval else None))

    def _timeout_now(self) -> float:
        """The timeout, plus a grace while this rank waits for its peers (the one it waits for stalls first)."""
        waiting = self.report is not None and self.report.group.waiting_since is not None
        return self.timeout_s + (min(self.timeout_s, 60.0) if waiting else 0.0)

    def _stall(self, phase: str, seconds: float) -> None:
        stacks = thread_stacks()
        if self.report is not None:
            waited = " waiting for its peers" if self.report.group.waiting_since is not None else ""
            self.report.end("stalled", EXIT_STALLED, f"{phase} of step {self._step} ran {seconds:.1f}s{waited}",
                            stacks, self.timeout_s)
        group = self.report.group if self.report is not None else None
        self.events.emit(Stall(step=self._step, phase=phase, seconds=round(seconds, 3), timeout_s=self.timeout_s,
                               threads=stacks, rank=group.rank if group else None, host=group.host if group else None))
        done = self._step - 1 if phase == "step" else self._step
        self.events.emit(RunEnd(status=RunState.FAILED.value, step=done, exit_code=EXIT_STALLED, reason="stalled"))
        sys.stderr.write(f"watchdog: {phase} of step {self._step} ran {seconds:.1f}s > {self.timeout_s}s; "
                         "stacks:\n" + "\n".join(f"--- {s['thread']}\n{s['stack']}" for s in stacks))
        sys.stderr.flush()
        self._exit(EXIT_STALLED)
