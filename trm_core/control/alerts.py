"""Tell someone: the keeper's alerts (``[alerts]``), because the old project's worst failures were the ones
nobody saw.

The keeper feeds every log line it reads to ``Alerts.see`` and calls ``Alerts.check`` now and then for what
no line says (a stale checkpoint, a low disk). An alert runs ``alerts.command`` through the shell, in its
own session, with the ``alert`` record as one JSON line on stdin and ``TRM_ALERT_KIND``, ``TRM_RUN_DIR``,
``TRM_STEP`` in its environment, at most once per kind per ``alerts.min_interval_s``. The command runs on
a thread of its own with a timeout: a failing or hanging command becomes a ``warning`` event and never
holds up the keeper, let alone training.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable

from trm_core.config import AlertsConfig, SupervisorConfig
from trm_core.control.run_status import run_status
from trm_core.rundir.records import (Alert, Event, GiveUp, Restart, RunEnd, Stall, Step, WarningEvent, as_line,
                                     parse)

CHECK_EVERY_S = 30.0


class Alerts:
    def __init__(self, run_dir: Path, settings: AlertsConfig, supervisor: SupervisorConfig,
                 emit: Callable[[Event], None]) -> None:
        self.run_dir, self.settings, self.supervisor, self.emit = run_dir, settings, supervisor, emit
        self.last_sent: dict[str, float] = {}
        self.step: int | None = None
        self._checked = time.monotonic()
        self._threads: list[threading.Thread] = []

    @property
    def enabled(self) -> bool:
        return bool(self.settings.command.strip())

    def see(self, lines: list[dict[str, Any]]) -> None:
        """The alerts that log lines fire: a stall, a crash (a restart for anything but a stall), a give-up,
        a completed run."""
        for line in lines:
            ev = parse(line)
            if isinstance(ev, (Step, RunEnd)) and ev.step is not None:
                self.step = ev.step
            if isinstance(ev, Stall):
                self.fire("stalled", f"the worker stalled: {ev.phase} of step {ev.step} ran {ev.seconds}s", line)
            elif isinstance(ev, Restart) and ev.reason != "stalled":
                self.fire("crashed", f"the worker failed after step {ev.failed_step} ({ev.reason}); {ev.message}", line)
            elif isinstance(ev, GiveUp):
                self.fire("gave_up", f"the run gave up at step {ev.failed_step} ({ev.reason}); {ev.message}", line)
            elif isinstance(ev, RunEnd) and ev.status == "completed":
                self.fire("completed", f"the run completed at step {ev.step}", line)

    def check(self, now: float | None = None) -> None:
        """What no log line says, looked at every CHECK_EVERY_S: a stale checkpoint, a low disk."""
        now = time.monotonic() if now is None else now
        if not self.enabled or now - self._checked < CHECK_EVERY_S:
            return
        self._checked = now
        st = run_status(self.run_dir, self.supervisor)
        if st.checkpoint_stale:
            self.fire("checkpoint_stale", f"the newest checkpoint (step {st.checkpoint_step}) is "
                      f"{st.checkpoint_age_s or 0:.0f}s old while the run is at step {st.step}", None)
        if st.disk_warning:
            self.fire("disk_low", st.disk_warning, None)

    def fire(self, kind: str, message: str, trigger: dict[str, Any] | None) -> None:
        if not self.enabled or kind not in self.settings.on:
            return
        now = time.monotonic()
        if kind in self.last_sent and now - self.last_sent[kind] < self.settings.min_interval_s:
            return
        self.last_sent[kind] = now
        record = Alert(kind=kind, step=self.step, message=message, trigger=trigger)
        self.emit(record)
        line = json.dumps(as_line(record, round(time.time(), 6)))
        thread = threading.Thread(target=self._run, args=(kind, line), name=f"alert-{kind}", daemon=True)
        thread.start()
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]

    def _run(self, kind: str, line: str) -> None:
        env = {**os.environ, "TRM_ALERT_KIND": kind, "TRM_RUN_DIR": str(self.run_dir),
               "TRM_STEP": "" if self.step is None else str(self.step)}
        try:
            proc = subprocess.Popen(self.settings.command, shell=True, stdin=subprocess.PIPE,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
                                    start_new_session=True)  # its own group: a timeout kills all it started
        except OSError as exc:
            self.emit(WarningEvent(message=f"alert {kind}: the command could not start: {exc}"))
            return
        try:
            _, err = proc.communicate(line + "\n", timeout=self.settings.timeout_s)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.communicate()
            self.emit(WarningEvent(message=f"alert {kind}: the command ran over alerts.timeout_s = "
                                           f"{self.settings.timeout_s:g}s and was killed"))
            return
        except BrokenPipeError:  # it exited without reading its stdin: fine, if it exits 0
            err = proc.stderr.read() if proc.stderr else ""
            proc.wait()
        if proc.returncode != 0:
            last = (err.strip().splitlines() or ["no output"])[-1][:200]
            self.emit(WarningEvent(message=f"alert {kind}: the command exited {proc.returncode}: {last}"))

    def wait(self, timeout_s: float) -> None:
        """Let alerts in flight finish (the keeper's last word may be one), up to ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
