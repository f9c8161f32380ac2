"""The headless front end: a client of the run's keeper that prints progress lines and notable events.

At most one progress line a second; every checkpoint, eval, restart, stall, warning, error and the end of
the run on its own line. No ANSI codes ever, so the output is the same under nohup, cron or CI. With
``--json`` stdout carries the log's own lines and nothing else; every human message goes to stderr.

Signals. A front end that started the run owns it: SIGINT or SIGTERM (Ctrl-C, ``timeout``, ``kill``,
``systemctl stop``) stops the run with a checkpoint, a second one without. A front end that attached to a
run already running only watches: any of them ends the watching, and the run goes on. SIGHUP (the
terminal or the SSH connection went away) never stops training. A closed pipe (``| head``) ends the front
end quietly, exit 0, and never touches the run.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from typing import Any, TextIO

from trm_core.control.client import KeeperClient
from trm_core.control.fold import RunFold, eta_seconds
from trm_core.rundir.layout import EXIT_OK
from trm_tui.signals import handling, quiet_stdout
from trm_core.rundir.records import Heartbeat, Step, parse
from trm_tui.event_text import event_line, progress_line, step_progress_line


class _StopWatching(Exception):
    """Leave the run to its keeper: the user stopped watching, or the pipe closed."""


class Headless:
    def __init__(self, client: KeeperClient, as_json: bool = False, out: TextIO = sys.stdout,
                 err: TextIO = sys.stderr) -> None:
        self.client, self.as_json, self.out, self.err = client, as_json, out, err
        self.stop_requests = 0
        self.fold = RunFold()  # the run's figures so far: the progress line's ETA
        self.owner = False   # this front end started the run: a stop signal stops it
        self.leave = False   # set by a signal: stop watching at the next turn of the loop
        self.announced = False

    def _say(self, message: str) -> None:
        """A human message: stderr under --json (stdout stays pure JSON), else stdout with the progress."""
        _put(self.err if self.as_json else self.out, message)

    def _on_stop_signal(self, signum: int, _frame: object) -> None:
        if not self.owner:
            self.leave = True  # only watching: the run is not ours to stop
            return
        self.stop_requests += 1
        what = "stopping after this step (checkpoint); Ctrl-C again to exit now" if self.stop_requests == 1 \
            else self._second_stop_text()
        name = signal.Signals(signum).name
        print(f"trm-tui: {name}: {what}", file=sys.stderr, flush=True)
        self.client.request_stop("Ctrl-C in trm-tui --no-ui" if signum == signal.SIGINT else
                                 f"{name} to trm-tui --no-ui (pid {os.getpid()})")

    def _second_stop_text(self) -> str:
        """What a second stop loses: only the step in progress. Said with the checkpoint a resume starts from
        (the first stop may already have written it)."""
        from trm_core.rundir.checkpoints import latest_progress

        newest = latest_progress(self.client.rundir.checkpoints)
        if newest is None:
            return "exiting now; no checkpoint was written yet, so a resume starts from the beginning"
        return f"exiting now, without finishing the step; a resume starts from the checkpoint of step {newest.step}"

    def _on_hangup(self, *_: Any) -> None:
        self.leave = True  # the terminal is gone: stop watching, never stop training

    def run(self) -> int:
        handlers = {signal.SIGINT: self._on_stop_signal, signal.SIGTERM: self._on_stop_signal,
                    signal.SIGHUP: self._on_hangup}
        try:
            with handling(handlers):
                self.client.start()
                self.owner = self.client.started_run
                return self._follow()
        except _StopWatching:
            quiet_stdout()
            return EXIT_OK

    def _write(self, line: str) -> None:
        _put(self.out, line)

    def _announce(self) -> None:
        if self.announced or self.owner or self.client.ident is None:
            return
        self.announced = True
        self._say(f"attached to the running worker (pid {self.client.ident.pid}) of {self.client.rundir.control}; "
                  f"Ctrl-C stops watching, not the run (trm-tui stop --run-dir {self.client.rundir.control} stops it)")

    def _follow(self) -> int:
        last_print, pending = 0.0, None
        while True:
            lines = self.client.poll()
            self._announce()
            for note in self.client.notes:
                self._say(f"trm-tui: {note}")
            self.client.notes.clear()
            for line_fields in lines:
                if self.as_json:
                    self._write(json.dumps(line_fields))
                    continue
                ev = parse(line_fields)
                self.fold.add(ev)
                if isinstance(ev, Heartbeat):
                    if (inside := step_progress_line(ev)) is not None:
                        self._write(inside)
                elif isinstance(ev, Step):
                    pending = ev
                elif (line := event_line(ev)) is not None:
                    if pending is not None:  # keep lines in event order
                        self._write(progress_line(pending, self._eta(pending)))
                        pending = None
                    self._write(line)
            now = time.monotonic()
            done = self.client.exit_code is not None
            if pending is not None and (now - last_print >= 1.0 or done):
                self._write(progress_line(pending, self._eta(pending)))
                pending, last_print = None, now
            if done:
                return self.client.exit_code
            if self.leave:
                self._say(f"trm-tui: stopped watching; the run goes on (trm-tui --run-dir {self.client.rundir.control} "
                          f"to watch it again)")
                return EXIT_OK
            time.sleep(0.2)

    def _eta(self, step: Step) -> float | None:
        """At the pace since the newest (re)start, to the total the step names."""
        return eta_seconds(list(self.fold.step_times), step.total_steps or 0)


def _put(stream: TextIO, line: str) -> None:
    """One line, flushed at once; a closed pipe ends the watching (never the run)."""
    try:
        stream.write(line + "\n")
        stream.flush()
    except BrokenPipeError:
        raise _StopWatching from None
