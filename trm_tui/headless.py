"""The headless front end: launch the worker, print progress from its events, stop it on Ctrl-C.

The worker runs in its own session with output to ``RUN_DIR/worker.log``, never a pipe, so a closed
terminal cannot block or kill training.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TextIO

from trm_core.events import EVENTS_FILE, EventTail
from trm_core.worker import EXIT_CONFIG
from trm_tui.progress import event_line, progress_line

WORKER_LOG = "worker.log"


class Headless:
    def __init__(self, run_dir: Path, worker_args: list[str], as_json: bool = False, out: TextIO = sys.stdout) -> None:
        self.run_dir, self.worker_args, self.as_json, self.out = run_dir, worker_args, as_json, out
        self.stop_signals = 0
        self.exit_code: int | None = None

    def _on_interrupt(self, proc: subprocess.Popen) -> None:
        self.stop_signals += 1
        what = "stopping after this step (checkpoint); Ctrl-C again to exit now" if self.stop_signals == 1 \
            else "exiting now"
        print(f"trm-tui: {what}", file=sys.stderr, flush=True)
        proc.send_signal(signal.SIGTERM)

    def run(self) -> int:
        created = not self.run_dir.exists()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            code = self._launch()
        finally:
            if created:
                self._remove_if_config_error()
        return code

    def _remove_if_config_error(self) -> None:
        """A config error found by the worker leaves nothing behind, as one found here would."""
        leftovers = {p.name for p in self.run_dir.iterdir()}
        if leftovers <= {WORKER_LOG} and self.exit_code == EXIT_CONFIG:
            (self.run_dir / WORKER_LOG).unlink(missing_ok=True)
            self.run_dir.rmdir()

    def _launch(self) -> int:
        tail = EventTail(self.run_dir / EVENTS_FILE, from_end=True)
        with open(self.run_dir / WORKER_LOG, "ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "trm_core.worker", *self.worker_args],
                                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        previous = signal.signal(signal.SIGINT, lambda *_: self._on_interrupt(proc))
        try:
            return self._follow(proc, tail)
        finally:
            signal.signal(signal.SIGINT, previous)

    def _follow(self, proc: subprocess.Popen, tail: EventTail) -> int:
        last_print, pending, rates = 0.0, None, []
        while True:
            code = proc.poll()
            for ev in tail.poll():
                if self.as_json:
                    self.out.write(json.dumps(ev) + "\n")
                elif ev["event"] == "step":
                    rates.append((ev["time"], ev["step"]))
                    rates = rates[-50:]
                    pending = ev
                elif (line := event_line(ev)) is not None:
                    if pending is not None:  # keep lines in event order
                        self.out.write(progress_line(pending, self._eta(pending, rates)) + "\n")
                        pending = None
                    self.out.write(line + "\n")
            now = time.monotonic()
            if pending is not None and (now - last_print >= 1.0 or code is not None):
                self.out.write(progress_line(pending, self._eta(pending, rates)) + "\n")
                pending, last_print = None, now
            self.out.flush()
            if code is not None:
                self.exit_code = code
                if code != 0:
                    self._show_log_tail(code)
                return code
            time.sleep(0.2)

    def _show_log_tail(self, code: int, lines: int = 15) -> None:
        """A failed worker explains itself in worker.log (a config error found late, a traceback)."""
        log = self.run_dir / WORKER_LOG
        try:
            tail = log.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            tail = []
        print(f"trm-tui: the worker exited with code {code}; last lines of {log}:", file=sys.stderr)
        for line in tail:
            print(f"  {line}", file=sys.stderr)

    @staticmethod
    def _eta(step: dict, rates: list[tuple[float, int]]) -> float | None:
        if len(rates) < 2 or rates[-1][1] == rates[0][1]:
            return None
        per_step = (rates[-1][0] - rates[0][0]) / (rates[-1][1] - rates[0][1])
        return per_step * max(0, (step.get("total_steps") or 0) - step["step"])
