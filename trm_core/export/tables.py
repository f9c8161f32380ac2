"""A run's events, and a folder of runs, as CSV: what ``pd.read_csv`` takes in one call.

One row per event with one column per field (``export csv``), and one row per run with its scores beside its
resolved config flattened to ``model.dim``, ``train.learning_rate``, ... (``runs --csv``), so a sweep is one
table. Values that are not scalars (a run_start's config, a stall's stacks) are written as JSON.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Iterable, TextIO

from trm_core.config import ConfigError
from trm_core.config.run_config import saved_config
from trm_core.export.scalars import flat_config
from trm_core.rundir import layout
from trm_core.rundir.events import read_events

DEFAULT_EVENTS = ("step", "eval")
FIRST_COLUMNS = ("event", "time", "step")  # then each field in the order the log first gives it


def cell(value: Any) -> Any:
    """A CSV cell: scalars as they are, ``None`` empty, anything nested as JSON."""
    if value is None:
        return ""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True)
    return value


def write_rows(rows: Iterable[dict[str, Any]], out: TextIO, first: tuple[str, ...] = ()) -> int:
    """Rows of differing fields as one table: the union of their fields, ``first`` leading. Returns rows."""
    rows = list(rows)
    columns: dict[str, None] = {name: None for name in first}
    for row in rows:
        columns.update(dict.fromkeys(row))
    writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({name: cell(value) for name, value in row.items()})
    return len(rows)


def event_rows(run_dir: Path, kinds: Iterable[str] | None = DEFAULT_EVENTS) -> list[dict[str, Any]]:
    """The run's events of ``kinds`` (None: every kind), in log order, ``v`` left out."""
    wanted = None if kinds is None else set(kinds)
    events = read_events(run_dir / layout.EVENTS).events
    return [{k: v for k, v in e.items() if k != "v"} for e in events if wanted is None or e["event"] in wanted]


def run_config_columns(run_dir: Path) -> dict[str, Any]:
    """The run's resolved config, flattened (defaults filled in, as the run used them); a config that does
    not read gives a ``config_error`` column instead."""
    try:
        cfg = saved_config(run_dir)
    except ConfigError as exc:
        return {"config_error": str(exc)}
    return flat_config(cfg.to_dict())


def differing_keys(configs: list[dict[str, Any]]) -> list[str]:
    """The flattened config keys whose values are not the same in every run (what a comparison is about),
    in the config's own order; a key one run lacks counts as differing."""
    keys: dict[str, None] = {}
    for cfg in configs:
        keys.update(dict.fromkeys(cfg))
    missing = object()
    return [k for k in keys if len({repr(cfg.get(k, missing)) for cfg in configs}) > 1]
