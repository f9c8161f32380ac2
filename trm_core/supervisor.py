"""The supervisor: one worker per run, launched detached, attached to by anyone, restarted when it fails.

UI-free: the headless front end and the dashboard both drive it through ``poll()``. The worker runs in
its own session with its output in ``RUN_DIR/worker.log`` (never a pipe), so the supervisor, its
terminal or the SSH session can die without touching training; a later supervisor attaches to the same
worker through its recorded identity (pid + start time).
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from trm_core.config import SupervisorConfig
from trm_core.events import EVENTS_FILE, EventTail, EventWriter, read_tail
from trm_core.identity import WorkerIdentity, live_worker, read_identity

WORKER_LOG = "worker.log"
LAUNCH_LOCK = "launch.lock"
STOP_REQUEST = "stop.request"  # present while a stop asked for from anywhere is in force
EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_STALLED = 0, 1, 2, 3


@contextmanager
def _flocked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def spawn_worker(run_dir: Path, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    with open(run_dir / WORKER_LOG, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "trm_core.worker", "--run-dir", str(run_dir), *args],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env)


def launch_or_attach(run_dir: Path, args: list[str], env: dict[str, str] | None = None,
                     claim_timeout_s: float = 300.0) -> tuple[WorkerIdentity | None, subprocess.Popen | None]:
    """Attach to the run's live worker, or launch one. Two callers at once still give one worker:
    the launch lock is held until the new worker has claimed the run (or died trying)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with _flocked(run_dir / LAUNCH_LOCK):
        ident = live_worker(run_dir)
        if ident is not None:
            return ident, None
        (run_dir / STOP_REQUEST).unlink(missing_ok=True)  # launching again supersedes an older stop
        proc = spawn_worker(run_dir, args, env)
        deadline = time.monotonic() + claim_timeout_s
        while time.monotonic() < deadline:
            ident = read_identity(run_dir)
            if ident is not None and ident.pid == proc.pid:
                return ident, proc
            if proc.poll() is not None:
                return None, proc
            time.sleep(0.05)
        return None, proc  # not claimed yet: never hand back an older worker's identity


def last_run_end(path: Path) -> dict[str, Any] | None:
    """The run_end of the newest worker start, if it wrote one (read from the end of the log)."""
    end = None
    for ev in read_tail(path, 1 << 16):
        if ev["event"] == "run_start":
            end = None
        elif ev["event"] == "run_end":
            end = ev
    return end


@dataclass
class StopResult:
    was_running: bool
    graceful: bool = False
    killed: bool = False
    seconds: float = 0.0


def wait_gone(ident: WorkerIdentity, timeout_s: float, proc: subprocess.Popen | None = None) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None:
            proc.poll()  # reap our own child so it does not linger as a zombie
        if not ident.is_alive():
            return True
        time.sleep(0.05)
    return not ident.is_alive()


def mark_stop_requested(run_dir: Path) -> None:
    if run_dir.is_dir():
        (run_dir / STOP_REQUEST).write_text(f"{os.getpid()} {time.time()}\n")


def stop_requested(run_dir: Path) -> bool:
    return (run_dir / STOP_REQUEST).exists()


def stop_worker(run_dir: Path, grace_s: float, force: bool = False,
                proc: subprocess.Popen | None = None) -> StopResult:
    """Graceful first (SIGTERM: the worker checkpoints and exits); SIGKILL with ``force`` or after ``grace_s``."""
    ident = live_worker(run_dir)
    mark_stop_requested(run_dir)  # so no supervisor restarts what is being stopped, even by SIGKILL
    if ident is None:
        return StopResult(was_running=False)
    t0 = time.monotonic()
    if not force:
        ident.send(signal.SIGTERM)
        if wait_gone(ident, grace_s, proc):
            return StopResult(True, graceful=True, seconds=time.monotonic() - t0)
    ident.send(signal.SIGKILL)
    wait_gone(ident, 30, proc)
    return StopResult(True, killed=True, seconds=time.monotonic() - t0)


def restarts_in_log(path: Path, window_s: float, now: float | None = None) -> list[tuple[float, int]]:
    """(time, failed step) of the restarts of the run's current episode within the window, oldest first.

    An episode starts with a launch by hand (a run_start that no restart led to) and ends with give_up:
    restarts before either belong to an earlier episode's budget."""
    now = time.time() if now is None else now
    episode: list[tuple[float, int]] = []
    restarting = False
    for ev in read_tail(path):
        kind = ev["event"]
        if kind == "restart":
            episode.append((ev["time"], ev.get("failed_step", -1)))
            restarting = True
        elif kind == "give_up" or (kind == "run_start" and not restarting):
            episode = []
        if kind == "run_start":
            restarting = False
    return [(t, step) for t, step in episode if now - t <= window_s]


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

    def __init__(self, run_dir: Path, launch_args: list[str], settings: SupervisorConfig,
                 env: dict[str, str] | None = None) -> None:
        self.run_dir, self.launch_args, self.settings, self.env = run_dir, launch_args, settings, env
        self.tail = EventTail(run_dir / EVENTS_FILE, from_end=True)
        self.policy = RestartPolicy(settings.max_restarts, settings.restart_window_s, settings.restart_backoff_s)
        self.ident: WorkerIdentity | None = None
        self.proc: subprocess.Popen | None = None
        self.attached = False
        self.exit_code: int | None = None  # set when the supervision is over
        self.last_end: dict[str, Any] | None = None
        self.last_step = 0
        self.restart_at: float | None = None
        self.stopping = False

    def start(self) -> None:
        self.ident, self.proc = launch_or_attach(self.run_dir, self.launch_args, self.env)
        self.attached = self.proc is None
        if self.attached:  # the restart budget belongs to the run's episode, not to this front end
            self.policy.history = restarts_in_log(self.run_dir / EVENTS_FILE, self.settings.restart_window_s)
        if self.stopping and self.ident is not None:  # a stop asked for while the worker was starting
            self.ident.send(signal.SIGTERM)

    def _emit(self, event: str, **fields: Any) -> None:
        writer = EventWriter(self.run_dir / EVENTS_FILE)
        try:
            writer.emit(event, **fields)
        finally:
            writer.close()

    def _worker_gone(self) -> bool:
        if self.proc is not None:
            if self.proc.poll() is not None:
                return True
            if self.ident is None:  # our worker is slow to claim the run: pick its identity up later
                ident = read_identity(self.run_dir)
                if ident is None or ident.pid != self.proc.pid:
                    return False
                self.ident = ident
                if self.stopping:
                    ident.send(signal.SIGTERM)
        return self.ident is None or not self.ident.is_alive()

    def poll(self) -> list[dict[str, Any]]:
        """New events since the last call; handles the worker's end (and restarts) as a side effect."""
        if self.exit_code is not None:
            return []
        events = self.tail.poll()
        for ev in events:
            if ev["event"] == "step":
                self.last_step = ev["step"]
            elif ev["event"] == "run_end":
                self.last_end = ev
        if self.restart_at is not None:
            if stop_requested(self.run_dir):  # stopped from elsewhere during the backoff
                self.restart_at, self.exit_code = None, EXIT_OK
                return events
            if time.monotonic() >= self.restart_at:
                self.restart_at = None
                self.last_end = None
                self.ident, self.proc = launch_or_attach(self.run_dir, ["--resume"], self.env)
            return events
        if not self._worker_gone():
            return events
        events += self.tail.poll()  # the last lines the worker wrote before exiting
        for ev in events:
            if ev["event"] == "run_end":
                self.last_end = ev
        if self.last_end is None:  # attached late: its run_end may predate our tail
            self.last_end = last_run_end(self.run_dir / EVENTS_FILE)
        self._on_exit()
        return events + self.tail.poll()  # with what _on_exit itself wrote, delivered once

    def _exit_code_of_worker(self) -> int | None:
        if self.proc is not None:
            return self.proc.wait()
        return None

    def _on_exit(self) -> None:
        code = self._exit_code_of_worker()
        end = self.last_end
        status = end["status"] if end else None
        if code == EXIT_CONFIG:
            self.exit_code = EXIT_CONFIG
            return
        if status in ("completed", "stopped") or self.stopping or (code == EXIT_OK and end is None) \
                or stop_requested(self.run_dir):
            self.exit_code = EXIT_OK
            return
        failed_step = end["step"] if end else self.last_step
        why = (end or {}).get("reason") or (f"exit code {code}" if code is not None else "worker vanished")
        restart, delay, message = self.policy.decide(failed_step)
        if restart:
            self._emit("restart", attempt=len(self.policy.history), failed_step=failed_step,
                       exit_code=code, reason=why, delay_s=delay, message=message)
            self.restart_at = time.monotonic() + delay
        else:
            self._emit("give_up", failed_step=failed_step, exit_code=code, reason=why, message=message)
            self.exit_code = EXIT_FAILED

    def request_stop(self) -> None:
        """Ask the worker to stop (non-blocking); a second request makes it exit without a checkpoint."""
        self.stopping = True
        self.restart_at = None
        mark_stop_requested(self.run_dir)
        if self.ident is not None:
            self.ident.send(signal.SIGTERM)
        # with no identity yet, start() sends the signal as soon as the worker has claimed the run

    def stop(self, force: bool = False) -> StopResult:
        self.stopping = True
        self.restart_at = None
        result = stop_worker(self.run_dir, self.settings.stop_grace_s, force, self.proc)
        if not result.was_running and self.exit_code is None:
            self.exit_code = EXIT_OK
        return result
