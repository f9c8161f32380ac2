"""A start under way, visible from its first moment: ``start.lock``.

A front end that starts or resumes a run spends its first second importing, resolving the config and running
its pre-checks before the run's keeper exists. A ``trm-tui stop`` in that second found neither keeper nor
worker and answered "no worker is running" while the run went on to train. So the starting process takes
``start.lock`` (an ``flock``, dropped by the kernel however the process ends) before anything heavy, and
lets it go once the keeper has claimed the run (``release``) or the start is refused (its exit). A stop that
finds the lock held (``identity.run_lock_held(dir, START_LOCK)``) waits for the keeper and stops the run through it.

Imports nothing heavy: it runs before the command's modules load.
"""

from __future__ import annotations

import argparse
import fcntl
import os
from pathlib import Path

from trm_core.rundir.layout import DEFAULT_RUN_DIR, START_LOCK

_held: dict[Path, int] = {}  # run folder -> the fd holding its start lock, in this process


def hold(run_dir: Path) -> bool:
    """Take the start lock of an existing run folder for this process (a folder not there yet holds no run a
    stop could name). False when the folder is missing or another start holds it (the launch lock still
    keeps the two starts to one keeper)."""
    key = Path(run_dir).resolve()
    if key in _held or not key.is_dir():
        return key in _held
    try:
        fd = os.open(key / START_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return False  # a folder this user cannot write: the start will say so itself
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    _held[key] = fd
    return True


def release(run_dir: Path) -> None:
    """The keeper has claimed the run (or no start will happen): a stop from now on finds the keeper."""
    fd = _held.pop(Path(run_dir).resolve(), None)
    if fd is not None:
        os.close(fd)


def started_run_dir(argv: list[str]) -> Path | None:
    """The run folder bare ``trm-tui`` will start or resume, read from its flags before its parser (and the
    modules it needs) load: the same ``--run-dir``, with its default; None when the flags describe no start
    (``--preset``, ``--config``, ``--set`` or ``--resume``), as ``Start.describes_run`` says: opening a run as
    it is writes nothing, not even this lock."""
    p = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    p.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR)
    for flag in ("--preset", "--config", "--set"):
        p.add_argument(flag, action="append")
    p.add_argument("--resume", action="store_true")
    try:
        known, _ = p.parse_known_args(argv)
    except (argparse.ArgumentError, SystemExit):  # a flag without its value: the real parser says so
        return None
    return known.run_dir if known.preset or known.config or known.set or known.resume else None
