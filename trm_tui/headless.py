"""The headless front end: drive the supervisor, print progress lines and notable events.

At most one progress line a second; every checkpoint, eval, restart, stall, warning, error and the end of
the run on its own line. No ANSI codes ever, so the output is the same under nohup, cron or CI.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from typing import Any, TextIO

from trm_core.control.status import eta_seconds
from trm_core.control.supervisor import Supervisor
from trm_core.rundir.records import Step, parse
from trm_tui.progress import event_line, progress_line


class Headless:
    def __init__(self, supervisor: Supervisor, as_json: bool = False, out: TextIO = sys.stdout) -> None:
        self.sup, self.as_json, self.out = supervisor, as_json, out
        self.stop_requests = 0
        self.rates: list[tuple[float, int]] = []

    def _on_interrupt(self, *_: Any) -> None:
        self.stop_requests += 1
        what = "stopping after this step (checkpoint); Ctrl-C again to exit now" if self.stop_requests == 1 \
            else "exiting now, without a checkpoint"
        print(f"trm-tui: {what}", file=sys.stderr, flush=True)
        self.sup.request_stop()

    def run(self) -> int:
        previous = signal.signal(signal.SIGINT, self._on_interrupt)
        try:
            self.sup.start()
            if self.sup.attached and self.sup.ident is not None:
                self._write(f"attached to the running worker (pid {self.sup.ident.pid}) of {self.sup.run_dir}")
            return self._follow()
        finally:
            signal.signal(signal.SIGINT, previous)

    def _write(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()

    def _follow(self) -> int:
        last_print, pending = 0.0, None
        while True:
            for line_fields in self.sup.poll():
                if self.as_json:
                    self._write(json.dumps(line_fields))
                    continue
                ev = parse(line_fields)
                if isinstance(ev, Step):
                    self.rates = (self.rates + [(ev.time, ev.step)])[-50:]
                    pending = ev
                elif (line := event_line(ev)) is not None:
                    if pending is not None:  # keep lines in event order
                        self._write(progress_line(pending, self._eta(pending)))
                        pending = None
                    self._write(line)
            now = time.monotonic()
            done = self.sup.exit_code is not None
            if pending is not None and (now - last_print >= 1.0 or done):
                self._write(progress_line(pending, self._eta(pending)))
                pending, last_print = None, now
            if done:
                return self.sup.exit_code
            time.sleep(0.2)

    def _eta(self, step: Step) -> float | None:
        return eta_seconds(self.rates, step.total_steps or 0)
