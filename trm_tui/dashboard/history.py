"""A run's past, read without parsing all of it: evenly spread samples of the log, then its last megabyte in
full. The main view and the compare view both draw from it, so both show the same downsampled history."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trm_core.control.client import NODE_0_KEEPER, KeeperClient
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


def run_history(client: KeeperClient) -> list[dict[str, Any]]:
    """The run's past, up to where ``client`` follows from: this node's keeper log, and on node N also the
    run's own log (rank 0's steps, evals and run_end, without node 0's keeper records), in time order."""
    own = read_history(client.rundir.keeper_events, client.tail.offset)
    if client.run_tail is None:
        return own
    run = [e for e in read_history(client.rundir.events, client.run_tail.offset)
           if e.get("event") not in NODE_0_KEEPER]
    return sorted(run + own, key=lambda e: e.get("time") or 0.0)


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
