"""The states a run can be in, as ``trm-tui status`` and the dashboard name them: one enum for every module.

Two questions about a state have different answers, so there are two sets, defined here side by side:
``SUPERVISED``, supervision is in progress (a worker runs or is about to: stop and kill apply, a resume
does not), and ``HAS_WORKER``, a worker process exists now, so its pid means something. They differ by
``RESTARTING``: during the backoff no worker exists, but one is coming.
"""

from __future__ import annotations

from enum import Enum


class RunState(str, Enum):
    NOT_STARTED = "not started"
    STARTING = "starting"
    RUNNING = "running"
    STALLED = "stalled"
    RESTARTING = "restarting"
    STOPPING = "stopping"
    TUNING = "tuning"
    STOPPED = "stopped"
    COMPLETED = "completed"
    FAILED = "failed"

    # behave as the plain string everywhere: printing, formatting, dict keys, JSON
    __str__ = str.__str__
    __format__ = str.__format__
    __hash__ = str.__hash__

    @classmethod
    def of(cls, text: str | None, default: RunState) -> RunState:
        """The state a log's text names (``run_end.status``); ``default`` for none or one this version
        does not know."""
        try:
            return cls(text)
        except ValueError:
            return default


SUPERVISED = frozenset({RunState.STARTING, RunState.RUNNING, RunState.STALLED, RunState.RESTARTING,
                        RunState.STOPPING})
HAS_WORKER = SUPERVISED - {RunState.RESTARTING}
