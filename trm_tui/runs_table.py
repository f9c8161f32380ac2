"""The runs under a folder as a table, one line each, from the tails of their logs and their checkpoint sidecars
(never a whole log: a root of a hundred runs with million-line logs lists in about a second). ``trm-tui runs``
prints it; the dashboard's runs screen shows it."""

from __future__ import annotations

import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

from trm_core.control.run_status import RunStatus, run_status
from trm_core.rundir import layout, lifecycle
from trm_tui.event_text import best_text, duration

DEFAULT_ROOT = Path("runs")


@dataclass
class RunRow:
    run_dir: Path
    status: RunStatus
    differs: str = ""  # the config keys this run's value differs in from the others listed, as key=value


# keys that differ between any two runs without saying how they differ as experiments (where each run keeps
# its data cache is its own business)
NOT_A_DIFFERENCE = ("data.cache_dir",)


def mark_differences(rows: list[RunRow]) -> list[str]:
    """Fill each row's ``differs`` with the keys the listed runs do not share (learning rate, seed: what a
    comparison is about); the keys, in the config's order."""
    from trm_core.export.tables import differing_keys, run_config_columns

    if len(rows) < 2:
        return []
    configs = [run_config_columns(row.run_dir) for row in rows]
    keys = [k for k in differing_keys(configs) if k not in NOT_A_DIFFERENCE and k != "config_error"]
    for row, cfg in zip(rows, configs):
        row.differs = ",".join(f"{k.split('.', 1)[-1]}={_short(cfg.get(k, '-'))}" for k in keys) or "-"
    return keys


def _short(value: object) -> str:
    text = format(value, "g") if isinstance(value, float) else str(value)
    return text if len(text) <= 24 else text[:23] + "~"


def find_runs(root: Path) -> list[Path]:
    """The run dirs directly under ``root`` (a folder holding a run's log, checkpoints or config)."""
    found = []
    for child in sorted(root.iterdir()) if root.is_dir() else []:
        if child.is_dir() and (lifecycle.holds_run(child) or (child / layout.RUN_CONFIG).exists()):
            found.append(child)
    return found


# Enough of a log's tail for the newest step, eval and (re)start and the ETA's window of steps (about 330 bytes a
# step event); a megabyte each, as `trm-tui status` reads, made a hundred runs take 5 s.
TAIL_BYTES = 128 << 10


def list_runs(root: Path) -> list[RunRow]:
    rows = [RunRow(run_dir, run_status(run_dir, tail_bytes=TAIL_BYTES)) for run_dir in find_runs(root)]
    # newest first: the run you just started is the one you look for
    return sorted(rows, key=lambda r: -(r.status.started_time or 0.0))


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


HEADERS = ("RUN", "STATE", "STEP", "LOSS", "EVAL", "ACC", "BEST", "TO-TARGET", "SAMPLES/S", "ETA", "CHECKPOINT",
           "STARTED", "CONFIG", "DIFFERS")


def table_cells(row: RunRow) -> tuple[str, ...]:
    """One run's cells under HEADERS (the CLI table and the dashboard's runs screen)."""
    st = row.status
    step = f"{st.step}/{st.total_steps}" if st.step is not None and st.total_steps else str(st.step or "-")
    ckpt = f"{st.checkpoint_step} ({_age(st.checkpoint_age_s)} ago)" + (" STALE" if st.checkpoint_stale else "") \
        if st.checkpoint_step is not None else "-"
    started = time.strftime("%Y-%m-%d %H:%M", time.localtime(st.started_time)) if st.started_time else "-"
    state = f"{st.state}, corrupt config" if st.config_error else str(st.state)  # seen at any width
    return (row.run_dir.name, state, step, _num(st.loss, ".4f"), _num(st.eval_loss, ".4f"),
            _num(st.eval_accuracy, ".3f"), best_text(st.best_score, st.target_score, st.target_name),
            duration(st.target_seconds) if st.target_step is not None else "-", _num(st.samples_per_s, ".1f"), duration(st.eta_s), ckpt,
            started, "CORRUPT" if st.config_error else (st.config_hash or "-")[:8], row.differs or "-")


def columns(rows: list[RunRow]) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """The headers and each run's cells; an OWNER column after RUN when any run is another user's (a shared
    folder), for the CLI table and the dashboard's runs screen alike."""
    headers, cells = HEADERS, [table_cells(row) for row in rows]
    if any(not row.status.mine for row in rows):
        headers = (HEADERS[0], "OWNER", *HEADERS[1:])
        cells = [(c[0], row.status.owner or "-", *c[1:]) for c, row in zip(cells, rows)]
    return headers, cells


# the columns a narrow terminal leaves out first (RUN, STATE, STEP and the scores stay)
DROPPABLE = ("CONFIG", "STARTED", "ETA", "SAMPLES/S", "EVAL", "TO-TARGET", "CHECKPOINT", "OWNER", "ACC", "DIFFERS")


def fit(headers: tuple[str, ...], cells: list[tuple[str, ...]], width: int) -> tuple[tuple[str, ...], list[tuple[str, ...]], list[str]]:
    """The columns that fit ``width`` (each row one line): the least needed left out first; and which were."""
    dropped: list[str] = []

    def line_width(hs: tuple[str, ...], cs: list[tuple[str, ...]]) -> int:
        return sum(max(len(r[i]) for r in [hs, *cs]) for i in range(len(hs))) + 2 * (len(hs) - 1)
    for name in DROPPABLE:
        if line_width(headers, cells) <= width:
            break
        if name in headers:
            i = headers.index(name)
            headers = headers[:i] + headers[i + 1:]
            cells = [c[:i] + c[i + 1:] for c in cells]
            dropped.append(name)
    return headers, cells, dropped


def table(rows: list[RunRow], width: int | None = None) -> str:
    """The runs as aligned text columns; with ``width``, the columns that fit it and a line naming the rest."""
    headers, cells = columns(rows)
    dropped: list[str] = []
    if width:
        headers, cells, dropped = fit(headers, cells, width)
    lines = [headers, *cells]
    widths = [max(len(line[i]) for line in lines) for i in range(len(headers))]
    text = "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines)
    if dropped:
        text += "\n" + textwrap.fill(f"({width} columns: {', '.join(dropped)} left out; --wide shows every column)",
                                     width, break_on_hyphens=False)
    said = dict(LEGEND)
    metrics = sorted({r.status.eval_metric for r in rows if r.status.eval_metric})
    if metrics:  # which figure BEST ranks by, as these runs' evals name it
        said["BEST"] = said["BEST"].replace("the task's figure (", f"{' / '.join(metrics)} (the task's figure: ")
    if rows and all(r.status.best_score == 0 for r in rows):
        said["BEST"] += " (0 for every run: none answers a whole puzzle yet; ACC, the token accuracy, tells them apart)"
    legend = "; ".join(f"{name}: {what}" for name, what in said.items() if name in headers)
    if legend and rows:
        text += "\n" + textwrap.fill(legend, width or 1000)
    return text


# what the columns whose names do not say it hold (the eval columns are different figures)
LEGEND = {"EVAL": "the newest eval's loss", "ACC": "its token accuracy",
          "BEST": "the run's best eval by the task's figure (whole answers right; pass@2 for ARC; masked-byte "
                  "accuracy for code), beside its target",
          "TO-TARGET": "wall time from the run's start until an eval first reached train.target_score",
          "DIFFERS": "the config keys these runs do not share, with this run's value"}
