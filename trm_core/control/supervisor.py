"""The supervisor: follows a run's events, and restarts its worker when it fails.

UI-free: the run's keeper (``control.keeper``) drives it through ``poll()``; front ends are the keeper's
clients. Launching, attaching and stopping are ``launch``'s; this module decides what to do when the
worker ends.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from trm_core.config import Start, SupervisorConfig
from trm_core.rundir.states import RunState
from trm_core.control.launch import StopResult, launch_or_attach, mark_stop_requested, stop_worker
from trm_core.rundir import layout
from trm_core.rundir.events import EventTail, EventWriter
from trm_core.rundir import log_queries
from trm_core.rundir.identity import ProcessIdentity, read_identity
from trm_core.rundir import checkpoints as ckpt
from trm_core.rundir.layout import EXIT_CONFIG, EXIT_DISK_FULL, EXIT_FAILED, EXIT_OK
from trm_core.distributed.postmortem import find_culprit
from trm_core.rundir.records import (Event, GiveUp, RankDown, Restart, RunEnd, Stall, Step, WarningEvent,
                                     parse)


@dataclass
class RestartPolicy:
    """At most ``max_restarts`` within ``window_s``, backing off exponentially; never twice at one step."""

    max_restarts: int
    window_s: float
    backoff_s: float
    history: list[tuple[float, int]] = field(default_factory=list)  # (time, failed step) of each restart

    def decide(self, failed_step: int, now: float | None = None) -> tuple[bool, float, str]:
        now = time.time() if now is None else now
        recent = [(t, s) for t, s in self.history if now - t <= self.window_s]
        if self.history and self.history[-1][1] == failed_step:
            return False, 0.0, f"failed again at step {failed_step} after a restart: not restarting"
        if len(recent) >= self.max_restarts:
            return False, 0.0, (f"{len(recent)} restarts within {self.window_s:g}s "
                                f"(supervisor.max_restarts = {self.max_restarts}): not restarting")
        delay = self.backoff_s * (2 ** len(recent))
        self.history.append((now, failed_step))
        return True, delay, f"restart {len(recent) + 1} of {self.max_restarts} in {delay:g}s"


class Supervisor:
    """Launch or attach, follow the events, restart on crash or stall. Call ``poll()`` in a loop."""

    def __init__(self, start: Start, settings: SupervisorConfig, env: dict[str, str] | None = None) -> None:
        self.start_request, self.settings, self.env = start, settings, env
        self.rundir = start.rundir
        self.tail = EventTail(self.rundir.keeper_events, from_end=True)
        self.policy = RestartPolicy(settings.max_restarts, settings.restart_window_s, settings.restart_backoff_s)
        self.ident: ProcessIdentity | None = None
        self.proc: subprocess.Popen | None = None
        self.attached = False
        self.exit_code: int | None = None  # set when the supervision is over
        self.last_end: RunEnd | None = None
        self.last_step = 0
        self.restart_at: float | None = None
        self.stopping = False
        self.verdict = ""  # why supervision ended, when that is not plain from the worker's run_end
        self.space_needed: int | None = None  # the worker ran out of space: restart once this much is free
        self.unwritten = 0  # supervision records the full disk refused
        self.launched_at = time.time()  # the group's start: the post-mortem reads only its ranks' files

    def start(self) -> None:
        self.launched_at = time.time()
        self.ident, self.proc = launch_or_attach(self.start_request, self.env)
        if self.proc is None and self.ident is not None:
            self.launched_at = self.ident.started
        self.attached = self.proc is None
        if self.attached:  # the restart budget belongs to the run's episode, not to this front end
            self.policy.history = log_queries.restarts_in_log(self.rundir.keeper_events, self.settings.restart_window_s)
        if self.stopping and self.ident is not None:  # a stop asked for while the worker was starting
            self.ident.request_stop()

    def emit(self, record: Event) -> None:
        """Append a supervision record to the run's log. A log that cannot be written (a full disk) is said on
        stderr (the keeper's log, a terminal) and supervision goes on: the run needs its keeper most then."""
        try:
            writer = EventWriter(self.rundir.keeper_events)
            try:
                writer.emit(record)
            finally:
                writer.close()
        except OSError as exc:
            self.unwritten += 1
            print(f"trm-tui: cannot write {record.event} to {self.rundir.keeper_events}: {exc}", file=sys.stderr,
                  flush=True)

    def _worker_gone(self) -> bool:
        if self.proc is not None:
            if self.proc.poll() is not None:
                return True
            if self.ident is None:  # our worker is slow to claim the run: pick its identity up later
                ident = read_identity(self.rundir.control)
                if ident is None or ident.pid != self.proc.pid:
                    return False
                self.ident = ident
                if self.stopping:
                    ident.request_stop()
        return self.ident is None or not self.ident.is_alive()

    def poll(self) -> list[dict[str, Any]]:
        """New events since the last call; handles the worker's end (and restarts) as a side effect."""
        if self.exit_code is not None:
            return []
        events = self.tail.poll()
        self._note(events)
        if self.space_needed is not None:
            if self.rundir.stop_requested() or self.stopping:  # stopped while waiting for space
                self.space_needed, self.exit_code = None, EXIT_OK
                return events
            free = layout.free_bytes(self.rundir.root)
            if free is not None and free >= self.space_needed:
                self.emit(Restart(attempt=len(self.policy.history), failed_step=self.last_step, exit_code=EXIT_DISK_FULL,
                                  reason="disk full", delay_s=0.0,
                                  message=f"{free / 2**20:.0f} MiB free now: restarting from the newest checkpoint"))
                self.space_needed = None
                self.restart_at = time.monotonic()  # the restart path below, at once
            return events
        if self.restart_at is not None:
            if self.rundir.stop_requested():  # stopped from elsewhere during the backoff
                self.restart_at, self.exit_code = None, EXIT_OK
                return events
            if time.monotonic() >= self.restart_at:
                self.restart_at = None
                self.last_end = None
                self.launched_at = time.time()
                # the run's saved config; a node's own [distributed] flags (its node_rank) stay
                self.ident, self.proc = launch_or_attach(self.start_request.restarted(), self.env)
            return events
        if not self._worker_gone():
            return events
        last_lines = self.tail.poll()  # the last lines the worker wrote before exiting
        self._note(last_lines)
        events += last_lines
        if self.last_end is None and self.rundir.leads:  # attached late: its run_end may predate our tail
            # (node N's own log never holds its ranks' run_end, only what an earlier keeper of it wrote)
            self.last_end = log_queries.last_run_end(self.rundir.keeper_events)
        self._on_exit()
        return events + self.tail.poll()  # with what _on_exit itself wrote, delivered once

    def _note(self, lines: list[dict[str, Any]]) -> None:
        """Keep what the restart policy needs: the last step done, the worker's run_end."""
        for ev in map(parse, lines):
            if isinstance(ev, Step):
                self.last_step = ev.step
            elif isinstance(ev, RunEnd):
                self.last_end = ev

    def _exit_code_of_worker(self) -> int | None:
        if self.proc is not None:
            return self.proc.wait()
        return None

    def _on_exit(self) -> None:
        code = self._exit_code_of_worker()
        end = self.last_end
        status = end.status if end else None
        if code == EXIT_CONFIG:
            self.exit_code = EXIT_CONFIG
            return
        if status in (RunState.COMPLETED, RunState.STOPPED) or self.stopping or (code == EXIT_OK and end is None) \
                or self.rundir.stop_requested():
            if end is None and code != EXIT_OK:  # killed on request: say so, or it reads as a crash
                self.emit(RunEnd(status=RunState.STOPPED.value, step=self.last_step or log_queries.last_step(self.rundir.events),
                                 exit_code=code, reason="killed on request", forced=True))
                self.last_end = log_queries.last_run_end(self.rundir.keeper_events)
            self.exit_code = EXIT_OK
            return
        failed_step = end.step if end else (self.last_step or log_queries.last_step(self.rundir.events))
        if code == EXIT_DISK_FULL or (end is not None and end.exit_code == EXIT_DISK_FULL):
            self._wait_for_space(failed_step)
            return
        why = (end.reason if end else None) or (f"exit code {code}" if code is not None else "worker vanished")
        why = self._blame(failed_step) or why
        restart, delay, message = self.policy.decide(failed_step)
        if restart:
            self.emit(Restart(attempt=len(self.policy.history), failed_step=failed_step, exit_code=code, reason=why,
                               delay_s=delay, message=message))
            self.restart_at = time.monotonic() + delay
        else:
            self.emit(GiveUp(failed_step=failed_step, exit_code=code, reason=why, message=message))
            self.verdict = f"gave up: {message}"
            self.exit_code = EXIT_FAILED

    def _blame(self, failed_step: int) -> str | None:
        """A group of ranks went down: name the rank that took it down (a ``rank_down`` event, and its
        ``stall`` with the stacks from its rank file when it hung); the reason the restart gives. Node 0's
        keeper does this (it writes the run's log); None for a run of one process."""
        if not self.rundir.leads:
            return None
        found = find_culprit(self.rundir.root, self.launched_at, self.rundir.worker_log)
        if found is None:
            return None
        s = found.status
        if found.state == "stalled" and s.rank != 0:  # rank 0 wrote its own stall; another rank's is written here
            self.emit(Stall(step=s.step, phase=s.phase, seconds=s.phase_s, timeout_s=s.timeout_s or 0.0, threads=s.threads,
                            rank=s.rank, host=s.host))
        self.emit(RankDown(rank=s.rank, host=s.host, pid=s.pid, state=found.state, step=s.step or failed_step,
                           exit_code=found.exit_code, reason=found.reason, log=str(found.log)))
        return f"rank {s.rank} on {s.host} {found.state}: {found.reason}"

    def _wait_for_space(self, failed_step: int) -> None:
        """The worker ran out of space: restarting now would fail the same way and use up the restart budget.
        Wait until twice the newest checkpoint (or 64 MiB) is free, then restart; a stop ends the wait."""
        newest = ckpt.latest_progress(self.rundir.checkpoints)
        self.space_needed = max(2 * newest.bytes, 1 << 20) if newest is not None else 64 << 20
        free = layout.free_bytes(self.rundir.root) or 0
        self.emit(WarningEvent(message=f"disk full at step {failed_step}: {free / 2**20:.1f} MiB free in "
                                       f"{self.rundir.root}; the run restarts by itself once "
                                       f"{self.space_needed / 2**20:.0f} MiB are free (or stop it)"))

    def request_stop(self, why: str = "") -> None:
        """Ask the worker to stop (non-blocking); a second request makes it exit without a checkpoint. ``why``
        goes into stop.request, for the run's end line."""
        second = self.stopping
        self.stopping = True
        self.restart_at = None
        mark_stop_requested(self.rundir, why)
        if self.ident is not None:
            if second:
                self.ident.force_stop()
            else:
                self.ident.request_stop()
        # with no identity yet, start() sends the signal as soon as the worker has claimed the run

    def stop(self, force: bool = False) -> StopResult:
        self.stopping = True
        self.restart_at = None
        result = stop_worker(self.rundir, self.settings.stop_grace_s, force, self.proc)
        if not result.was_running and self.exit_code is None:
            self.exit_code = EXIT_OK
        return result
