"""A grid of test-time settings over one checkpoint: what each extra step, trajectory and noise scale buys, and
what it costs. ``trm-tui eval --sweep "steps=4,8,16 trajectories=1,4 noise=0,0.1"`` runs every combination
as a plain eval would (the same pass, the same figures) and keeps one row per setting.

The rows go to ``RUN/evals/sweep-step-N-WEIGHTS-SPLIT-GRID/metrics.json`` (GRID: the axes as given, spaces as
``_``), rewritten whole after each row, so an interrupted sweep keeps the rows it finished.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from trm_core.config import ConfigError
from trm_core.evaluate.loaded import LoadedCheckpoint
from trm_core.evaluate.predictions import METRICS
from trm_core.evaluate.session import folder_name, run_eval
from trm_core.evaluate.test_time.settings import TestTime
from trm_core.rundir import layout, strict_json

# a sweep's axes: the name on the command line, how a value reads, and the TestTime it sets
AXES: dict[str, tuple[Callable[[str], Any], Callable[[TestTime, Any], TestTime]]] = {
    "steps": (int, lambda t, v: dataclasses.replace(t, supervision_steps=v)),
    "trajectories": (int, lambda t, v: dataclasses.replace(t, trajectories=dataclasses.replace(t.trajectories, count=v))),
    "noise": (float, lambda t, v: dataclasses.replace(t, trajectories=dataclasses.replace(t.trajectories, noise=v))),
    "select": (str, lambda t, v: dataclasses.replace(t, trajectories=dataclasses.replace(t.trajectories, select=v))),
    "settle": (int, lambda t, v: dataclasses.replace(t, trajectories=dataclasses.replace(t.trajectories, settle=v))),
    "halt": (float, lambda t, v: dataclasses.replace(t, halt=v if v > 0 else None)),
    "escalate": (int, lambda t, v: dataclasses.replace(t, trajectories=dataclasses.replace(t.trajectories,
                                                                                           escalate=bool(v)))),
}
GRID_NAME_CHARS = 80  # of a sweep folder's name (file systems allow 255 bytes)
ROW_FIGURES = ("exact", "accuracy", "pass@1", "pass@2", "sup_steps", "forward_steps", "examples_per_s", "seconds")


@dataclasses.dataclass(frozen=True)
class Point:
    """One setting of the grid: the axes' values, and the test-time settings they make."""

    values: dict[str, Any]
    test_time: TestTime


def parse_sweep(text: str, base: TestTime = TestTime(), halts_as_trained: bool = False) -> list[Point]:
    """``"steps=4,8 trajectories=1,4 noise=0,0.1"``: every combination, the first axis slowest; the axes not
    named keep ``base``'s settings. A ``ConfigError`` naming ``--sweep`` and the part that does not read."""
    axes: dict[str, list[Any]] = {}
    for part in text.split():
        name, sep, values = part.partition("=")
        if not sep or not values or name not in AXES:
            raise ConfigError(f"--sweep {text!r}: {part!r} is not NAME=V1,V2,... with NAME one of {', '.join(AXES)}")
        if name in axes:
            raise ConfigError(f"--sweep {text!r}: {name} is named twice")
        read = AXES[name][0]
        try:
            axes[name] = [read(v) for v in values.split(",")]
        except ValueError:
            raise ConfigError(f"--sweep {text!r}: {part!r} holds a value that is not a {read.__name__}") from None
    if not axes:
        raise ConfigError(f"--sweep {text!r}: name at least one axis, e.g. \"steps=4,8,16 trajectories=1,4\"")
    points = []
    for combo in itertools.product(*axes.values()):
        values = dict(zip(axes, combo))
        test_time = base
        for name, value in values.items():
            test_time = AXES[name][1](test_time, value)
        problem = _problem(test_time, halts_as_trained)
        if problem:
            raise ConfigError(f"--sweep {text!r}: {problem}")
        points.append(Point(values, test_time))
    return points


def _problem(test_time: TestTime, halts_as_trained: bool) -> str | None:
    """The flags' own validator (``TestTime.problem``), its words named as the sweep's axes."""
    problem = test_time.problem(halts_as_trained)
    if not problem:
        return None
    for flag, axis in (("--supervision-steps", "steps"), ("--trajectories", "trajectories"), ("--noise", "noise"),
                       ("--settle", "settle"), ("--halt", "halt"), ("--escalate", "escalate"), ("--select", "select")):
        problem = problem.replace(flag, axis)
    return problem


def sweep_path(loaded: LoadedCheckpoint, text: str, split: str = "test", limit: int | None = None,
               evals: Path | None = None) -> Path:
    """``EVALS/sweep-step-N-WEIGHTS-SPLIT-GRID/metrics.json``: each grid its own folder, so a second sweep keeps
    the first."""
    size = loaded.dataset.split_size(split)
    count = size if limit is None else max(0, min(limit, size))
    grid = "_".join(text.split())
    if len(grid) > GRID_NAME_CHARS:  # a long grid would make a name the file system refuses: a short hash instead
        grid = grid[:GRID_NAME_CHARS - 13] + "-" + hashlib.sha256(grid.encode()).hexdigest()[:12]
    name = "sweep-" + folder_name(loaded.info.step, loaded.weights, split, count, size) + f"-{grid}"
    return (evals or loaded.run.evals) / name / METRICS


def run_sweep(loaded: LoadedCheckpoint, points: list[Point], text: str, split: str = "test",
              limit: int | None = None, batch_size: int | None = None, evals: Path | None = None,
              on_row: Callable[[dict[str, Any]], None] | None = None,
              on_progress: Callable[[int, int], None] | None = None) -> tuple[Path, list[dict[str, Any]]]:
    """Each point evaluated in turn (no predictions written), its row added to the sweep's metrics.json as it
    finishes; the file and the rows."""
    evals = evals or loaded.run.evals
    path = sweep_path(loaded, text, split, limit, evals)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    trained = loaded.cfg.model.max_supervision_steps
    scratch = layout.temp_name(evals / "sweep-scratch")  # named by this pid: a dead sweep's is found and removed
    scratch.mkdir()
    layout.remove_dead_temps(evals)  # a sweep or eval killed before it could clean up (SIGKILL) left its own
    try:
        for point in points:
            outcome = run_eval(loaded, split, limit, batch_size, on_progress, save_predictions=False,
                               evals=scratch, test_time=point.test_time)
            row = _row(point, outcome.metrics, trained)
            rows.append(row)
            _write(path, {"sweep": text, "step": loaded.info.step, "weights": loaded.weights, "split": split,
                          "examples": outcome.metrics["examples"], "device": str(loaded.ev.device), "rows": rows,
                          "complete": len(rows) == len(points), "time": time.time()})
            if on_row is not None:
                on_row(row)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return path, rows


def _row(point: Point, metrics: dict[str, Any], trained: int) -> dict[str, Any]:
    """A sweep row: every setting it ran with, then its figures; ``forward_steps`` is the supervision steps
    run per example over all its trajectories (its compute; one trajectory's is its ``sup_steps``)."""
    t = point.test_time
    settings = {"steps": t.steps(trained), "halt": t.halt, **t.trajectories.record()}
    figures = {name: metrics.get(name) for name in ROW_FIGURES}
    if figures["forward_steps"] is None:
        figures["forward_steps"] = figures["sup_steps"]
    return settings | figures


def _write(path: Path, content: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(strict_json.dumps(content, indent=1))
    os.replace(tmp, path)

