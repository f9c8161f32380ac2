"""What the benchmarks share: where the repository is, an environment whose child processes import this
checkout, ``--set`` flags from a list, and timing a piece of work."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]


def repo_env(**extra: Any) -> dict[str, str]:
    """This process's environment with the repository first on PYTHONPATH (a child process imports this
    checkout, installed or not), plus ``extra``."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return env | {k: str(v) for k, v in extra.items()}


def set_flags(sets: list[str]) -> list[str]:
    """``--set KEY=VALUE`` for each item, as trm-tui and the worker take them."""
    return [flag for item in sets for flag in ("--set", item)]


def seconds(work: Callable[[], Any]) -> float:
    """Wall seconds of one call of ``work``."""
    t0 = time.perf_counter()
    work()
    return time.perf_counter() - t0


def median_seconds(work: Callable[[], Any], repeat: int) -> float:
    """The median of ``repeat`` timings of ``work`` (the machines are noisy; the median shrugs off a spike)."""
    return statistics.median(seconds(work) for _ in range(repeat))
