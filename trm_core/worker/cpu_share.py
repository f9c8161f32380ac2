"""The worker's share of a CPU that others use too.

torch takes every core by default. With a neighbour on them, that default collapses: a run at the default
threads trained at 13-20 samples/s where one thread gave 444 (a busy 2-core machine), and nothing said so. Two
guards: a fresh start with ``train.threads = 0`` takes the cores that are free at that moment (kept in the run's
config, so a resume runs as the start did; auto-tune finds better once the machine is quiet), and a run whose
throughput falls to a third of its best while other processes hold the cores says so, naming auto-tune.
"""

from __future__ import annotations

from dataclasses import dataclass

import psutil

from trm_core.telemetry.host_stats import cores

BUSY_AT_LEAST = 0.5   # other processes using less than half a core leave every core to the run
COLLAPSE = 3.0        # throughput below its best divided by this, over ...
COLLAPSED_LOGS = 3    # ... this many logged steps in a row, while others hold ...
OTHERS_BUSY = 0.5     # ... at least this many cores: a warning (once a while)
WARN_EVERY_S = 600.0
CROWDED_CPU = "crowded_cpu"  # the warning's ``about``: front ends show it as an alert naming auto-tune


def free_threads(busy: float, available: int) -> int | None:
    """Threads for a fresh start: the cores others leave free; None when they leave (almost) all of them (torch's
    default then)."""
    if busy < BUSY_AT_LEAST:
        return None
    return max(1, min(available, round(available - busy)))


@dataclass
class CollapseWatch:
    """Fed each logged step's samples/s; says when the throughput collapsed while others hold the cores."""

    best: float = 0.0
    low_in_a_row: int = 0
    warned_at: float = -WARN_EVERY_S

    def __post_init__(self) -> None:
        self.me = psutil.Process()
        self.me.cpu_percent(None)
        psutil.cpu_percent(None)  # prime both deltas

    def see(self, samples_per_s: float, now: float) -> str | None:
        """A warning's text when the run is a third of its best for a few logs and other processes are busy."""
        self.best = max(self.best, samples_per_s)
        self.low_in_a_row = self.low_in_a_row + 1 if samples_per_s * COLLAPSE < self.best else 0
        if self.low_in_a_row < COLLAPSED_LOGS or now - self.warned_at < WARN_EVERY_S:
            return None
        n = cores()
        busy = n * psutil.cpu_percent(None) / 100.0 - self.me.cpu_percent(None) / 100.0
        if busy < OTHERS_BUSY:
            return None  # slower for a reason of its own (an eval, a longer step), not a crowded machine
        self.warned_at = now
        return (f"throughput fell to {samples_per_s:,.1f} samples/s from its best of {self.best:,.1f}: other "
                f"processes hold {busy:.1f} of {n} cores; auto-tune (a in the dashboard, or trm-tui autotune) finds "
                f"the threads and micro-batch for the machine as it is now")
