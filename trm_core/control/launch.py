"""Launch, attach to and stop a run's worker, from any process.

The worker runs in its own session with its output in ``RUN_DIR/worker.log`` (never a pipe), so whoever
launched it, its terminal or the SSH session can die without touching training; a later process attaches
to the same worker through its recorded identity (pid + start time). A stop is recorded in
``stop.request`` before the worker is signalled, so no supervisor restarts what was stopped.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from trm_core.rundir import layout, log_queries, start_claim
from trm_core.rundir.identity import ProcessIdentity, live_keeper, live_worker, read_identity
from trm_core.config.schema import ConfigError
from trm_core.config.start import Start
from trm_core.rundir.layout import RunDir
from trm_core.rundir.ownership import CONTROL_FILE_MODE, is_mine


@contextmanager
def _flocked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _spawn(module: str, start: Start, log: Path, env: dict[str, str] | None) -> subprocess.Popen:
    """A process of this node's part of the run in its own session (no terminal's signal reaches it), output
    to ``log`` in its control folder (never a pipe that a dead parent would close)."""
    with os.fdopen(os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, CONTROL_FILE_MODE), "ab") as out:
        return subprocess.Popen([sys.executable, "-m", module, "--run-dir", str(start.rundir.control),
                                 *start.to_argv()], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env)


def _claimed(run_dir: Path, proc: subprocess.Popen, identity_name: str, timeout_s: float) -> ProcessIdentity | None:
    """The identity ``proc`` records once it has claimed the run; None if it dies first or time runs out
    (never an older process's identity)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ident = read_identity(run_dir, identity_name)
        if ident is not None and ident.pid == proc.pid:
            return ident
        if proc.poll() is not None:
            return None
        time.sleep(0.02)
    return None


def worker_module(start: Start) -> str:
    """What the keeper starts: the worker, or for a run of several ranks this node's torchrun launcher
    (``distributed.node_launcher``). A start whose config does not resolve gets the worker, which says why."""
    try:
        cfg = start.resolve(joining=True)
    except ConfigError:
        return "trm_core.worker"
    return "trm_core.distributed.node_launcher" if cfg.distributed.world_size > 1 else "trm_core.worker"


def spawn_worker(start: Start, env: dict[str, str] | None = None) -> subprocess.Popen:
    return _spawn(worker_module(start), start, start.rundir.worker_log, env)


def launch_or_attach(start: Start, env: dict[str, str] | None = None,
                     claim_timeout_s: float = 300.0) -> tuple[ProcessIdentity | None, subprocess.Popen | None]:
    """Attach to the run's live worker, or launch one. Two callers at once still give one worker:
    the launch lock is held until the new worker has claimed the run (or died trying)."""
    run = start.rundir
    run.control.mkdir(parents=True, exist_ok=True)
    with _flocked(run.launch_lock):
        ident = live_worker(run.control)
        if ident is not None:
            return ident, None
        run.stop_request.unlink(missing_ok=True)  # launching again supersedes an older stop
        proc = spawn_worker(start, env)
        return _claimed(run.control, proc, layout.WORKER_IDENTITY, claim_timeout_s), proc


def ensure_keeper(start: Start, env: dict[str, str] | None = None,
                  claim_timeout_s: float = 60.0) -> tuple[ProcessIdentity | None, bool]:
    """The run's keeper (``_ensure_keeper``); then this process's start claim goes: a stop from now on finds the
    keeper, or nothing to wait for."""
    try:
        return _ensure_keeper(start, env, claim_timeout_s)
    finally:
        start_claim.release(start.rundir.root)


def _ensure_keeper(start: Start, env: dict[str, str] | None, claim_timeout_s: float) -> tuple[ProcessIdentity | None, bool]:
    """The run's keeper: the live one, or a new one started for ``start`` (which launches the worker, or
    adopts the live one). Returns (its identity, or None when it died at once; whether it is new). Two
    callers at once still give one keeper: the launch lock is held until the new keeper has claimed the run."""
    from trm_core.control import commands

    run = start.rundir
    run.control.mkdir(parents=True, exist_ok=True)
    with _flocked(run.launch_lock):
        keeper = live_keeper(run.control)
        if keeper is not None and log_queries.keeper_ending(run.keeper_events):
            # it wrote its last word and is exiting (its last alert may be in flight): a start now is a new
            # episode, not one to attach to a keeper that will be gone in a moment
            wait_gone(keeper, KEEPER_EXIT_S)
            keeper = live_keeper(run.control)
        if keeper is not None:
            return keeper, False
        if live_worker(run.control) is None:
            commands.discard_all(run.control)  # a new start: commands left for an older keeper do not apply
        proc = _spawn("trm_core.control.keeper", start, run.keeper_log, env)
        return _claimed(run.control, proc, layout.KEEPER_IDENTITY, claim_timeout_s), True


KEEPER_EXIT_S = 40.0  # a keeper's exit after its keeper_end: at most its last alert's timeout (30 s) and a bit


def revive_keeper(run: RunDir, env: dict[str, str] | None = None) -> ProcessIdentity | None:
    """A live worker whose keeper is gone (killed, OOM): start a new keeper, which adopts it. Returns the
    adopted worker (for the caller to say so), or None when there was nothing to do."""
    ident = live_worker(run.control)
    if ident is None or live_keeper(run.control) is not None or not is_mine(run.root):
        return None  # another user's run: its keeper is theirs to start
    ensure_keeper(Start.resuming(run), env)
    return ident


def adoption_note(ident: ProcessIdentity) -> str:
    return f"the run's keeper is gone; starting a new one that adopts worker pid {ident.pid}"


def orphan_note(run: RunDir) -> str | None:
    """What a reader (a reading command, a read-only view) says of a live worker whose keeper is gone, which
    it does not adopt itself; None when there is no such worker."""
    ident = live_worker(run.control)
    if ident is None or live_keeper(run.control) is not None:
        return None
    return (f"the run's keeper is gone: worker pid {ident.pid} trains unsupervised (no restart after a crash, no "
            f"answer to commands); trm-tui adopt --run-dir {run.root} starts a keeper that adopts it (so does "
            f"opening the run in the owner's dashboard)")


@dataclass
class StopResult:
    was_running: bool
    graceful: bool = False
    killed: bool = False
    seconds: float = 0.0


def wait_gone(ident: ProcessIdentity, timeout_s: float, proc: subprocess.Popen | None = None) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None:
            proc.poll()  # reap our own child so it does not linger as a zombie
        if not ident.is_alive():
            return True
        time.sleep(0.05)
    return not ident.is_alive()


def mark_stop_requested(run: RunDir, why: str = "") -> None:
    """stop.request: no supervisor restarts what is being stopped; ``why`` (one line) names what asked."""
    if run.control.is_dir():
        why = " ".join(why.split())
        layout.write_atomic(run.stop_request, f"{os.getpid()} {time.time()} {why}".rstrip().encode() + b"\n",
                            CONTROL_FILE_MODE)


def stop_worker(run: RunDir, grace_s: float, force: bool = False,
                proc: subprocess.Popen | None = None, why: str = "") -> StopResult:
    """Graceful first (SIGTERM: the worker checkpoints and exits); SIGKILL with ``force`` or after ``grace_s``."""
    ident = live_worker(run.control)
    mark_stop_requested(run, why)  # so no supervisor restarts what is being stopped, even by SIGKILL
    if ident is None:
        return StopResult(was_running=False)
    t0 = time.monotonic()
    if not force:
        ident.request_stop()
        if wait_gone(ident, grace_s, proc):
            return StopResult(True, graceful=True, seconds=time.monotonic() - t0)
    ident.kill()
    wait_gone(ident, 30, proc)
    return StopResult(True, killed=True, seconds=time.monotonic() - t0)


