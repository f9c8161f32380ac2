"""What the worker says on its own stdout: a start line, progress lines, an end line.

Run alone (``python -m trm_core.worker``) a user sees the run move; under a keeper the same lines land in
``RUN_DIR/worker.log``, so they are rationed: at most one a second on a terminal, one every 30 s otherwise.
The events file stays the record; these lines are for eyes.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Console:
    def __init__(self, out: TextIO = sys.stdout, interval_s: float | None = None) -> None:
        self.out = out
        tty = hasattr(out, "isatty") and out.isatty()
        self.interval_s = interval_s if interval_s is not None else (1.0 if tty else 30.0)
        self._last = -float("inf")

    def say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def due(self) -> bool:
        """Whether a progress line would be printed now (the worker reads a step's figures only then)."""
        return time.monotonic() - self._last >= self.interval_s

    def step(self, step: int, total: int, loss: float, samples_per_s: float, final: bool = False) -> None:
        if not (self.due() or final):
            return
        self._last = time.monotonic()
        self.say(f"step {step}/{total} ({100 * step / max(1, total):.1f}%)  loss {loss:.4f}  "
                 f"{samples_per_s:.1f} samples/s")
