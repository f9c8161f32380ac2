"""Graceful stop on SIGTERM/SIGINT: finish the step, checkpoint, exit 0. A second signal exits at once."""

from __future__ import annotations

import os
import signal
from typing import Callable

from trm_core.rundir.layout import EXIT_OK


class StopRequest:
    def __init__(self) -> None:
        self.requested: str | None = None
        self.on_second: Callable[[int], None] = lambda signum: None  # set once there is a run to record

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        if self.requested is None:
            self.requested = name
            return
        self.on_second(signum)
        os._exit(EXIT_OK)  # stopped on request, without a checkpoint: run_end says forced
