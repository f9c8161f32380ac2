"""A run's past, read without parsing all of it: evenly spread samples of the log, then its last megabyte in
full. The main view and the compare view both draw from it, so both show the same downsampled history."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trm_core.rundir import layout
from trm_core.rundir.events import read_span, sample_events
from trm_core.rundir.records import Eval, Step
from trm_tui.dashboard.view import RunView

HISTORY_TAIL_BYTES = 1 << 20
HISTORY_SAMPLES = 2000


def read_history(path: Path, end: int) -> list[dict[str, Any]]:
    """The events of the first ``end`` bytes: spread samples (steps and evals) up to the last megabyte, then
    every line of it."""
    tail_start = max(0, end - HISTORY_TAIL_BYTES)
    early = sample_events(path, HISTORY_SAMPLES, end=tail_start) if tail_start else []
    return [e for e in early if e["event"] in (Step.KIND, Eval.KIND)] + read_span(path, tail_start, end)


def history_view(run_dir: Path) -> RunView:
    """A run's curves and last state, for a run this dashboard is not following (the compare view)."""
    path = run_dir / layout.EVENTS
    try:
        end = path.stat().st_size
    except OSError:
        end = 0
    view = RunView(run_dir.name)
    view.feed(read_history(path, end), history=True)
    return view
