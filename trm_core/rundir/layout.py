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
- ``stop.request``: present while a stop asked for from anywhere is in force.

Nothing here imports torch: readers of a run must stay cheap.
"""

from __future__ import annotations

import errno
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

RUN_CONFIG = "config.toml"
EVENTS = "events.jsonl"
CHECKPOINTS = "checkpoints"
WORKER_IDENTITY = "worker.json"
WORKER_LOCK = "worker.lock"
WORKER_LOG = "worker.log"
LAUNCH_LOCK = "launch.lock"
STOP_REQUEST = "stop.request"
KEEPER_IDENTITY = "keeper.json"
KEEPER_LOCK = "keeper.lock"
KEEPER_LOG = "keeper.log"
COMMANDS = "commands"

NODES = "nodes"


def node_dir(run_dir: Path, node_rank: int) -> Path:
    """Where node ``node_rank`` of a multi-node run keeps its own keeper and launcher files (identity, lock,
    log, commands, stop.request): node 0 at the run dir's top, as a one-node run; node N in ``nodes/node-N``.
    The run's events, config and checkpoints are rank 0's, at the top (a shared file system)."""
    return run_dir if node_rank == 0 else run_dir / NODES / f"node-{node_rank}"


def run_root(control_dir: Path) -> Path:
    """The run dir a node's control dir belongs to (``node_dir`` inverted)."""
    if control_dir.parent.name == NODES and control_dir.name.startswith("node-"):
        return control_dir.parent.parent
    return control_dir


def stop_requested(node: Path) -> bool:
    """A stop is in force for a node's dir (``node_dir``), or for the run it belongs to: written by any front
    end, the keeper, or a person for a node that no signal reaches."""
    return (node / STOP_REQUEST).exists() or (run_root(node) / STOP_REQUEST).exists()


# The worker's exit codes, which the supervisor acts on.
EXIT_OK = 0        # completed, or stopped on request
EXIT_FAILED = 1    # an exception or a non-finite loss: restart from the last checkpoint (within the budget)
EXIT_CONFIG = 2    # bad config or a run dir it cannot use: restarting cannot help
EXIT_STALLED = 3   # the watchdog saw a phase hang: restart from the last checkpoint
EXIT_DISK_FULL = 5  # no space left in the run dir: restart only once space is freed

# What a start that never trained may leave behind (its own files only; never a checkpoint).
_NEW_RUN_FILES = (RUN_CONFIG, EVENTS, WORKER_IDENTITY, WORKER_LOCK, WORKER_LOG, LAUNCH_LOCK, STOP_REQUEST,
                  KEEPER_IDENTITY, KEEPER_LOCK, KEEPER_LOG)


TEMP_GLOB = ".*.tmp-*"


def temp_name(path: Path) -> Path:
    """Where ``path`` is written before its rename: hidden, in the same folder (a rename never crosses a file
    system), named by the writing pid so a sweep can tell a dead writer's leftovers from a live one's."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def temp_writer(path: Path) -> int | None:
    """The pid that wrote temp file ``path`` (a ``TEMP_GLOB`` match), or None when it is not one of ours."""
    pid = path.name.rsplit("-", 1)[-1]
    return int(pid) if path.name.startswith(".") and ".tmp-" in path.name and pid.isdigit() else None


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """Write ``path`` whole or not at all: a temp file, flushed and fsynced, then renamed over ``path``. A
    crash at any instant leaves either the old file or the new one, never half of one."""
    tmp = temp_name(path)
    try:
        with open(tmp, "wb") as fh:
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


def write_atomic(path: Path, data: bytes) -> None:
    with atomic_file(path) as fh:
        fh.write(data)


def _has_checkpoints(run_dir: Path) -> bool:
    folder = run_dir / CHECKPOINTS
    return folder.is_dir() and any(folder.iterdir())


def has_progress(run_dir: Path) -> bool:
    """The run has trained: a checkpoint, or a worker start in its log. Such a run is never forgotten."""
    if _has_checkpoints(run_dir):
        return True
    from trm_core.rundir.records import RunStart  # the writer's compact JSON puts "event" first
    marker = f'"event":"{RunStart.KIND}"'.encode()
    try:
        with open(run_dir / EVENTS, "rb") as fh:
            return any(marker in line for line in fh)
    except OSError:
        return False


def holds_run(run_dir: Path) -> bool:
    """A new start must not land here: a checkpoint, or a log with any record but its keeper's own (a keeper
    writes ``keeper_start`` before the worker it launches checks the dir)."""
    from trm_core.rundir.records import CommandAck, KeeperEnd, KeeperStart

    if _has_checkpoints(run_dir):
        return True
    keepers = tuple(f'"event":"{cls.KIND}"'.encode() for cls in (KeeperStart, KeeperEnd, CommandAck))
    try:
        with open(run_dir / EVENTS, "rb") as fh:
            return any(line.strip() and not any(k in line for k in keepers) for line in fh)
    except OSError:
        return False


def forget_new_run(run_dir: Path, created: bool) -> None:
    """A start that never trained (its config refused, its first auto-tune failed) leaves the run dir as it
    found it: the run-dir files a start writes are removed, and the folder too when the caller created it
    and nothing else is in it. Never touched: a run with progress, and a run whose lock another process
    holds (a start that won a race for the same dir). Call it after releasing your own hold on the lock."""
    from trm_core.rundir.identity import run_lock_held

    if not run_dir.is_dir() or has_progress(run_dir) or run_lock_held(run_dir) \
            or run_lock_held(run_dir, KEEPER_LOCK):
        return
    for name in _NEW_RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)
    inbox = run_dir / COMMANDS
    if inbox.is_dir():
        for leftover in inbox.iterdir():
            leftover.unlink(missing_ok=True)
        inbox.rmdir()
    if created:
        try:
            run_dir.rmdir()
        except OSError:
            pass  # something else is in there: leave it to its owner
