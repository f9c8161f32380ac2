"""Who the run's worker is, and the lock that makes it the only one.

The worker records itself in ``RUN_DIR/worker.json`` as pid + process start time and holds an exclusive
``flock`` on ``RUN_DIR/worker.lock`` for its whole life (the kernel drops it when the process dies, however
it dies). A pid alone is not an identity: after the worker dies its pid can be reused by an unrelated
process, so nothing here signals a pid whose start time differs from the recorded one.

On Linux the start time compared is the kernel's tick count since boot (``/proc/PID/stat``, field 22), not
the wall-clock start time: that one is derived from the boot time, which moves when the clock is stepped
(NTP, a VM resumed from a snapshot), and a live worker would then look like a stranger.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from trm_core.rundir import layout
from trm_core.rundir.ownership import CONTROL_FILE_MODE

_SAME_START_S = 0.05  # start times come from /proc in clock ticks (10 ms): equal within that is the same process


@dataclass(frozen=True)
class ProcessIdentity:
    """A process of the run (its worker, a node's launcher, its keeper) as pid + start time: a pid alone can
    be reused by another process once this one is gone."""

    pid: int
    create_time: float
    host: str
    started: float
    start_ticks: int | None = None  # Linux: clock ticks from boot to the process start; immune to clock steps
    role: str = "worker"  # or "launcher": a node's torchrun (distributed.node_launcher), its ranks its children

    def is_alive(self) -> bool:
        """The recorded process still runs (and is not a newer process that reuses its pid)."""
        if self.host != socket.gethostname():
            return False
        try:
            proc = psutil.Process(self.pid)
            ticks = start_ticks(self.pid) if self.start_ticks is not None else None
            same = (ticks == self.start_ticks if ticks is not None
                    else abs(proc.create_time() - self.create_time) < _SAME_START_S)
            return same and proc.status() != psutil.STATUS_ZOMBIE
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return False

    def send(self, sig: int) -> bool:
        """Signal the worker only if it is still the same process; False when it is gone."""
        if not self.is_alive():
            return False
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            return False
        return True

    def _send_group(self, sig: int) -> bool:
        """Signal a launcher's ranks, then the launcher (torchrun starts each rank in a session of its own, so
        they are found as its children, not by process group)."""
        if not self.is_alive():
            return False
        try:
            ranks = psutil.Process(self.pid).children(recursive=True)
        except psutil.Error:
            ranks = []
        for proc in ranks:
            try:
                proc.send_signal(sig)
            except psutil.Error:
                pass
        return self.send(sig)

    def request_stop(self) -> bool:
        """The graceful stop, once ``stop.request`` is written: SIGTERM to a worker. A node's launcher gets no
        signal: its ranks read ``stop.request`` after each step and agree on one to stop after, on every node
        (a signal to torchrun would end this node's ranks alone, and leave the other nodes' torchrun waiting)."""
        if self.role == "launcher":
            return self.is_alive()
        return self.send(signal.SIGTERM)

    def force_stop(self) -> bool:
        """A second stop: exit at once without a checkpoint (a second SIGTERM to a worker, or to every rank)."""
        if self.role == "launcher":
            return self._send_group(signal.SIGTERM) and self._send_group(signal.SIGTERM)
        return self.send(signal.SIGTERM)

    def kill(self) -> bool:
        """SIGKILL: the worker, or a launcher with its ranks."""
        return self._send_group(signal.SIGKILL) if self.role == "launcher" else self.send(signal.SIGKILL)


def process_start_time(pid: int) -> float:
    return psutil.Process(pid).create_time()


def start_ticks(pid: int) -> int | None:
    """The process's start in clock ticks since boot, from /proc; None where there is no /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: fields resume after the last ')'
    return int(stat[stat.rindex(")") + 2:].split()[19])


def read_identity(run_dir: Path, name: str = layout.WORKER_IDENTITY) -> ProcessIdentity | None:
    """The identity recorded in ``run_dir/name`` (the worker's by default, or the keeper's). One not written by
    the folder's owner (or this user) is no identity: in a folder others may write, a forged one would aim the owner's
    stop at a process of the forger's choosing."""
    path = run_dir / name
    try:
        if os.lstat(path).st_uid not in (os.stat(run_dir).st_uid, os.geteuid()):
            return None
        data = json.loads(path.read_text())
        ticks = data.get("start_ticks")
        return ProcessIdentity(int(data["pid"]), float(data["create_time"]), str(data["host"]), float(data["started"]),
                              int(ticks) if ticks is not None else None, str(data.get("role", "worker")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def live_worker(run_dir: Path) -> ProcessIdentity | None:
    """The run's worker when it is alive, else None."""
    ident = read_identity(run_dir)
    return ident if ident is not None and ident.is_alive() else None


def live_keeper(run_dir: Path) -> ProcessIdentity | None:
    """The run's keeper when it is alive, else None."""
    ident = read_identity(run_dir, layout.KEEPER_IDENTITY)
    return ident if ident is not None and ident.is_alive() else None


class RunClaimed(RuntimeError):
    """Another live worker holds this run dir."""


class KeeperClaimed(RuntimeError):
    """Another live keeper supervises this run."""


EXITING_S = 10.0  # how long a worker that has just exited may still hold the lock (see lock_run)


def lock_run(run_dir: Path, settle_s: float = EXITING_S) -> int:
    """Take the run's worker lock (the worker for its life, an auto-tune search for its own); returns the
    lock's fd, which holds it until closed or the process dies. Raises RunClaimed naming the holder.

    A worker that was just stopped counts as gone (its main thread is a zombie) while its other threads
    (torch's pool, the watchdog) still wind down, and its open files, the lock among them, close only with
    the last of them: held by no live worker, the lock is waited for up to ``settle_s`` before it counts as
    another process's."""
    fd = os.open(run_dir / layout.WORKER_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + settle_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            other = live_worker(run_dir)
            if other is None and time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            os.close(fd)
            if other is not None:
                raise RunClaimed(f"another worker (pid {other.pid}) is already running {run_dir}") from None
            raise RunClaimed(f"{run_dir} is locked by another process (an auto-tune search, or a worker starting "
                             f"up); try again when it is done") from None


def _record_self(run_dir: Path, name: str, role: str = "worker") -> None:
    pid = os.getpid()
    ident = ProcessIdentity(pid, process_start_time(pid), socket.gethostname(), time.time(), start_ticks(pid), role)
    layout.write_atomic(run_dir / name, json.dumps(asdict(ident)).encode(), CONTROL_FILE_MODE)


def claim_run(run_dir: Path, role: str = "worker") -> int:
    """Take the run's worker lock for this process and record who we are; returns the lock's fd.

    Keep the fd open for the life of the process: closing it (or dying) releases the lock.
    """
    fd = lock_run(run_dir)
    _record_self(run_dir, layout.WORKER_IDENTITY, role)
    return fd


def claim_keeper(run_dir: Path) -> int:
    """Take the run's keeper lock for this process and record it in keeper.json; returns the lock's fd (keep
    it open for the life of the keeper). Raises KeeperClaimed when another keeper holds it."""
    fd = os.open(run_dir / layout.KEEPER_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise KeeperClaimed(f"another keeper supervises {run_dir}") from None
    _record_self(run_dir, layout.KEEPER_IDENTITY)
    return fd


def run_lock_held(run_dir: Path, name: str = layout.WORKER_LOCK) -> bool:
    """Someone holds the run's worker lock (a worker that has not recorded itself yet, or an auto-tune
    search), or with ``name`` another of its locks. Probes without creating the lock file."""
    try:
        fd = os.open(run_dir / name, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
