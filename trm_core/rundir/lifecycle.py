"""A run dir's lifecycle: has it trained, may a new start land in it, and undoing a start that never trained.

Kept apart from ``layout`` (the file names and how each is written) because these rules read the log and
the run's locks: ``layout`` stays the one module every other one can import, ``identity`` included.
"""

from __future__ import annotations

from pathlib import Path

from trm_core.rundir import layout
from trm_core.rundir.identity import run_lock_held
from trm_core.rundir.records import CommandAck, KeeperEnd, KeeperStart, RunStart

# What a start that never trained may leave behind (its own files only; never a checkpoint).
_NEW_RUN_FILES = (layout.RUN_CONFIG, layout.EVENTS, layout.WORKER_IDENTITY, layout.WORKER_LOCK, layout.WORKER_LOG,
                  layout.LAUNCH_LOCK, layout.STOP_REQUEST, layout.KEEPER_IDENTITY, layout.KEEPER_LOCK,
                  layout.KEEPER_LOG, layout.START_LOCK)

# the event writer's compact JSON puts "event" first: a line's kind is found without parsing it
_RUN_START = f'"event":"{RunStart.KIND}"'.encode()
_KEEPER_ONLY = tuple(f'"event":"{cls.KIND}"'.encode() for cls in (KeeperStart, KeeperEnd, CommandAck))


def _has_checkpoints(run_dir: Path) -> bool:
    folder = run_dir / layout.CHECKPOINTS
    return folder.is_dir() and any(folder.iterdir())


def has_progress(run_dir: Path) -> bool:
    """The run has trained: a checkpoint, or a worker start in its log. Such a run is never forgotten."""
    if _has_checkpoints(run_dir):
        return True
    try:
        with open(run_dir / layout.EVENTS, "rb") as fh:
            return any(_RUN_START in line for line in fh)
    except OSError:
        return False


def holds_run(run_dir: Path) -> bool:
    """A new start must not land here: a checkpoint, or a log with any record but its keeper's own (a keeper
    writes ``keeper_start`` before the worker it launches checks the dir)."""
    if _has_checkpoints(run_dir):
        return True
    try:
        with open(run_dir / layout.EVENTS, "rb") as fh:
            return any(line.strip() and not any(k in line for k in _KEEPER_ONLY) for line in fh)
    except OSError:
        return False


def forget_new_run(run_dir: Path, created: bool) -> None:
    """A start that never trained (its config refused, its first auto-tune failed) leaves the run dir as it
    found it: the run-dir files a start writes are removed, and the folder too when the caller created it
    and nothing else is in it. Never touched: a run with progress, and a run whose lock another process
    holds (a start that won a race for the same dir). Call it after releasing your own hold on the lock."""
    if not run_dir.is_dir() or has_progress(run_dir) or run_lock_held(run_dir) \
            or run_lock_held(run_dir, layout.KEEPER_LOCK):
        return
    for name in _NEW_RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)
    inbox = run_dir / layout.COMMANDS
    if inbox.is_dir():
        for leftover in inbox.iterdir():
            leftover.unlink(missing_ok=True)
        inbox.rmdir()
    if created:
        try:
            run_dir.rmdir()
        except OSError:
            pass  # something else is in there: leave it to its owner
