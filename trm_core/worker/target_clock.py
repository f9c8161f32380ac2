"""Time to target: the first eval whose task figure reaches ``train.target_score`` becomes a ``target_reached``
event (its step, the wall time since the run's first start, the worker's own training time over its starts, the
samples seen): how a recipe is judged (issue 41), read back by status, runs and export without a scan."""

from __future__ import annotations

import time
from pathlib import Path

from trm_core.rundir import log_queries
from trm_core.rundir.records import RunEnd, TargetReached


class TargetClock:
    def __init__(self, events: Path, target: float, name: str, leader: bool) -> None:
        self.target, self.name = target, name
        self.started = time.monotonic()
        before = log_queries.newest(events, TargetReached) if leader and events.exists() else None
        self.event: TargetReached | None = before if isinstance(before, TargetReached) else None
        self.reached = not leader or target <= 0 or self.event is not None
        self.first_start = log_queries.first_time(events) or time.time()
        # the worker's seconds before this start (its run_end records), asked only while the target is ahead
        self.before_s = 0.0 if self.reached or not events.exists() else \
            sum(e.seconds or 0.0 for e in log_queries.every(events, RunEnd))

    def check(self, step: int, figure: float | None, samples: int) -> TargetReached | None:
        """The event, the first time ``figure`` reaches the target; None otherwise (and ever after)."""
        if self.reached or figure is None or figure < self.target:
            return None
        self.reached = True
        self.event = TargetReached(step=step, score=figure, target=self.target, name=self.name,
                                   seconds=round(time.time() - self.first_start, 3),
                                   train_seconds=round(self.before_s + time.monotonic() - self.started, 3),
                                   samples=samples)
        return self.event

    @property
    def sidecar(self) -> tuple[int, float, int] | None:
        """(step, seconds, samples) for every checkpoint saved after the target was reached."""
        e = self.event
        return (e.step, e.seconds, e.samples) if e is not None else None

