"""The run dir's contract: the name of every file in it, how each is written, and the worker's exit codes.

Every process that touches a run (the worker, the supervisor, auto-tune, ``trm-tui status``, the
dashboard) agrees on these names through this module alone. A run dir holds:

- ``config.toml``: the run's resolved config, written by the worker (or by ``trm-tui autotune`` before
  training); ``--resume`` reads it.
- ``events.jsonl``: the event log (``rundir.events``, one typed record per line: ``rundir.records``).
- ``checkpoints/``: ``step-NNNNNNNN.pt`` and its sidecar ``.json`` (``rundir.checkpoints``).
- ``worker.json`` and ``worker.lock``: who the live worker is, and its lock (``rundir.identity``).
- ``worker.log``: the worker's stdout and stderr, when a supervisor launched it.
- ``launch.lock``: held while a worker or a keeper is launched, so two starts at once give one of each.
- ``keeper.json``, ``keeper.lock``, ``keeper.log``: the run's keeper (``control.keeper``), the process that
  supervises the worker whether or not any front end is open: who it is, its lock, its output.
- ``commands/``: commands from clients (stop, kill, cancel a restart) waiting for the keeper, one file each.
- ``stop.request``: present while a stop asked for from anywhere is in force (counted only when the run's
  owner wrote it: ``rundir.ownership``).

Nothing here imports torch: readers of a run must stay cheap.
"""

from __future__ import annotations

import errno
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

RUN_CONFIG = "config.toml"
EVENTS = "events.jsonl"
CHECKPOINTS = "checkpoints"
EVALS = "evals"
WORKER_IDENTITY = "worker.json"
WORKER_LOCK = "worker.lock"
WORKER_LOG = "worker.log"
LAUNCH_LOCK = "launch.lock"
STOP_REQUEST = "stop.request"
KEEPER_IDENTITY = "keeper.json"
KEEPER_LOCK = "keeper.lock"
KEEPER_LOG = "keeper.log"
START_LOCK = "start.lock"  # held by a front end from its first moment until the run's keeper has claimed it
COMMANDS = "commands"
COMPILE_CACHE = "compile-cache"  # torch.compile's caches (Inductor, Triton): a restart compiles from them

NODES = "nodes"
DEFAULT_RUN_DIR = Path("runs/default")  # --run-dir when none is given


@dataclass(frozen=True)
class RunDir:
    """A run's folder as one node sees it: the run's own files (rank 0's events, config, checkpoints, the rank
    files) at ``root``, and this node's keeper and launcher files (identity, lock, log, commands, stop.request)
    in ``control``: the root itself on node 0, as in a one-node run, ``nodes/node-N`` on node N (a shared
    file system holds them all). Every path of a run is named here, so no caller joins names or guesses
    which of the two folders a ``--run-dir`` meant."""

    root: Path
    node: int = 0

    @classmethod
    def at(cls, folder: Path) -> "RunDir":
        """The run a folder names: a run's root (node 0), or a node's control folder ``ROOT/nodes/node-N``."""
        name = folder.name
        if folder.parent.name == NODES and name.startswith("node-") and name[5:].isdigit():
            return cls(folder.parent.parent, int(name[5:]))
        return cls(folder)

    @property
    def control(self) -> Path:
        """This node's folder for its keeper, launcher, commands and stop request."""
        return self.root if self.node == 0 else self.root / NODES / f"node-{self.node}"

    @property
    def leads(self) -> bool:
        """Node 0: its keeper writes the run's own log and judges the group (which rank took it down)."""
        return self.node == 0

    # the run's files, at its root (rank 0 writes them)
    @property
    def events(self) -> Path:
        return self.root / EVENTS

    @property
    def config(self) -> Path:
        return self.root / RUN_CONFIG

    @property
    def checkpoints(self) -> Path:
        return self.root / CHECKPOINTS

    @property
    def evals(self) -> Path:
        """Where ``trm-tui eval`` (and the in-training eval, with ``train.eval_save_predictions``) writes."""
        return self.root / EVALS

    # this node's files
    @property
    def keeper_events(self) -> Path:
        """Where this node's keeper writes its records: the run's log on node 0, a log of its own on node N."""
        return self.control / EVENTS

    @property
    def worker_log(self) -> Path:
        return self.control / WORKER_LOG

    @property
    def launch_lock(self) -> Path:
        return self.control / LAUNCH_LOCK

    @property
    def stop_request(self) -> Path:
        return self.control / STOP_REQUEST

    @property
    def keeper_log(self) -> Path:
        return self.control / KEEPER_LOG

    def stop_requests(self) -> tuple[Path, Path]:
        """This node's stop request, and the whole run's."""
        return self.stop_request, self.root / STOP_REQUEST

    def stop_reason(self) -> str:
        """What asked for the stop in force, as its stop.request says (after the pid and the time); ""."""
        path = self._own_stop_request(os.geteuid())
        if path is None:
            return ""
        try:
            fields = path.read_text(errors="replace").split(maxsplit=2)
        except OSError:
            return ""
        return fields[2].strip() if len(fields) == 3 else ""

    def stop_requested(self, owner: int | None = None) -> bool:
        """A stop is in force for this node, or for the whole run: written by any front end, the keeper, or a
        person for a node that no signal reaches, as the run's owner (``owner``; the caller's uid by default,
        as the run's own processes are the owner's). A file anyone else wrote does not count."""
        return self._own_stop_request(os.geteuid() if owner is None else owner) is not None

    def _own_stop_request(self, uid: int) -> Path | None:
        """This node's stop request, else the whole run's, that ``uid`` wrote; None when neither."""
        for path in self.stop_requests():
            try:
                if os.lstat(path).st_uid == uid:
                    return path
            except OSError:
                continue
        return None



# The worker's exit codes, which the supervisor acts on.
EXIT_OK = 0        # completed, or stopped on request
EXIT_FAILED = 1    # an exception or a non-finite loss: restart from the last checkpoint (within the budget)
EXIT_CONFIG = 2    # bad config or a run dir it cannot use: restarting cannot help
EXIT_STALLED = 3   # the watchdog saw a phase hang: restart from the last checkpoint
EXIT_DISK_FULL = 5  # no space left in the run dir: restart only once space is freed
EXIT_INTERRUPTED = 130  # a command stopped by Ctrl-C before it finished (nothing half written), as shells count it

TEMP_GLOB = ".*.tmp-*"


def temp_name(path: Path) -> Path:
    """Where ``path`` is written before its rename: hidden, in the same folder (a rename never crosses a file
    system), named by the writing pid so a sweep can tell a dead writer's leftovers from a live one's."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def temp_writer(path: Path) -> int | None:
    """The pid that wrote temp file ``path`` (a ``TEMP_GLOB`` match), or None when it is not one of ours."""
    pid = path.name.rsplit("-", 1)[-1]
    return int(pid) if path.name.startswith(".") and ".tmp-" in path.name and pid.isdigit() else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_dead_temps(folder: Path) -> list[Path]:
    """Remove the temporaries (``TEMP_GLOB``: files or folders) in ``folder`` whose writer is no longer alive: a
    writer killed between its write and its rename (SIGKILL, a power cut) leaves one; a live writer's, this
    process's included, is left alone. Returns what was removed."""
    removed = []
    for p in folder.glob(TEMP_GLOB):
        pid = temp_writer(p)
        if pid is None or pid == os.getpid() or _pid_alive(pid):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_file(path: Path, mode: int = 0o666) -> Iterator[BinaryIO]:
    """Write ``path`` whole or not at all: a temp file, flushed and fsynced, then renamed over ``path``. A
    crash at any instant leaves either the old file or the new one, never half of one. ``mode`` is before
    the umask (the files that steer a run pass 0o644: no group may write them, whatever the umask)."""
    tmp = temp_name(path)
    try:
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class DiskFull(OSError):
    """No space left where the run writes: says which path and how much was free, in one line."""

    def __init__(self, path: Path, needed_bytes: int | None = None) -> None:
        free = free_bytes(path)
        need = f", needs about {needed_bytes / 2**20:.1f} MiB" if needed_bytes else ""
        have = f"{free / 2**20:.1f} MiB free" if free is not None else "free space unknown"
        super().__init__(errno.ENOSPC, f"disk full: cannot write {path}: {have}{need}")
        self.path, self.free, self.needed = path, free, needed_bytes

    def __str__(self) -> str:
        return self.strerror


def free_bytes(path: Path) -> int | None:
    """Free space in the file system holding ``path`` (or its nearest existing parent)."""
    for candidate in (path, *path.parents):
        try:
            return shutil.disk_usage(candidate).free
        except OSError:
            continue
    return None


def is_disk_full(exc: BaseException) -> bool:
    """An exception that is, or was caused by, running out of space."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def write_atomic(path: Path, data: bytes, mode: int = 0o666) -> None:
    with atomic_file(path, mode) as fh:
        fh.write(data)
