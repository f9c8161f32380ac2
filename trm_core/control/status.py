"""The state of a run, from its files alone: for ``trm-tui status``, the headless line and the dashboard.

Reads only the end of ``events.jsonl`` (a run's log can hold millions of lines) and the newest checkpoint's
sidecar; falls back to the sidecar for progress when the log is missing or has no steps.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from trm_core.config import SupervisorConfig, tomllib
from trm_core.rundir import checkpoints as ckpt
from trm_core.rundir import layout
from trm_core.rundir.events import read_tail
from trm_core.rundir.states import RunState
from trm_core.rundir.identity import live_worker, run_lock_held
from trm_core.rundir.records import (AutotuneResult, AutotuneStart, Checkpoint, Eval, Event, Heartbeat, Restart, RunEnd,
                                     RunStart, Step, parse)

ETA_WINDOW = 200  # steps the ETA's pace is measured over: long enough not to swing with each noisy step


def eta_seconds(points: list[tuple[float, int]], total_steps: int) -> float | None:
    """Time to ``total_steps`` at the pace of recent (wall time, step) points, oldest first. Give it only
    points since the last (re)start: a pause between a stop and a resume is not the run's pace."""
    if len(points) < 2 or points[-1][1] <= points[0][1]:
        return None
    (t0, s0), (t1, s1) = points[0], points[-1]
    return (t1 - t0) / (s1 - s0) * max(0, total_steps - s1)


DISK_LOW_MB = 2048.0


def disk_warning(free_bytes: float | None, checkpoint_bytes: float | None) -> str | None:
    """Free space that will not last: under twice the newest checkpoint (the next save, and the one after,
    may not fit), or under 2 GiB (the log and a few checkpoints). None while there is room."""
    if free_bytes is None:
        return None
    free_mb = free_bytes / 2**20
    if checkpoint_bytes and free_bytes < 2 * checkpoint_bytes:
        return (f"{free_mb:.1f} MiB free, under twice the newest checkpoint ({checkpoint_bytes / 2**20:.1f} MiB): "
                f"the next saves may not fit")
    if free_mb < DISK_LOW_MB:
        return f"{free_mb:.0f} MiB free in the run dir's file system"
    return None


def _run_config(run_dir: Path) -> dict[str, Any]:
    try:
        with open(run_dir / layout.RUN_CONFIG, "rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError):
        return {}


@dataclass
class RunStatus:
    state: RunState
    pid: int | None
    step: int | None
    total_steps: int | None
    epoch: int | None
    loss: float | None
    samples_per_s: float | None
    eta_s: float | None
    checkpoint_step: int | None
    checkpoint_age_s: float | None
    checkpoint_stale: bool
    restarts: int
    last_activity_age_s: float | None
    stall_after_s: float | None
    reason: str | None
    eval_loss: float | None = None       # the newest eval in the log's tail
    eval_accuracy: float | None = None
    started_time: float | None = None    # the run's first run_start (the log's first line)
    config_hash: str | None = None
    disk_free_mb: float | None = None
    disk_warning: str | None = None      # free space will not last (see disk_warning)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def stall_after(configured_s: float, step_times: list[float], heartbeat_s: float) -> float:
    """How long a silent worker counts as stalled: supervisor.stall_after_s, or else 10x the typical step
    (at least a minute, at least three heartbeats). `status` and the dashboard both use this."""
    if configured_s:
        return configured_s
    typical = statistics.median(step_times) if step_times else 0.0
    return max(60.0, 10 * typical, 3 * heartbeat_s)


def silent_for(last_activity: float | None, now: float, stall_after_s: float) -> float | None:
    """How long a live worker has been silent (no step, heartbeat, start, checkpoint or eval) when that is
    past ``stall_after_s``, else None: the one stall rule of `status`, the dashboard and the runs list."""
    if last_activity is None or now - last_activity <= stall_after_s:
        return None
    return now - last_activity


def checkpoint_stale(now: float, since: float, checkpoint_every: int, step_times: Sequence[float]) -> bool:
    """The old "checkpoint stopped updating" alarm: the newest checkpoint (or, with none yet, the start of the
    run) is older than two checkpoint intervals at the typical recent step time, plus a minute. `status` and
    the dashboard both use this."""
    if not step_times:
        return False
    expected = checkpoint_every * statistics.median(step_times)
    return now - since > 2 * expected + 60


def _tuning(events: list[Event]) -> bool:
    """The newest of run_start / autotune_start / autotune_result is an autotune_start."""
    last = next((e for e in reversed(events) if isinstance(e, (RunStart, AutotuneStart, AutotuneResult))), None)
    return isinstance(last, AutotuneStart)


def run_status(run_dir: Path, settings: SupervisorConfig | None = None, now: float | None = None,
               tail_bytes: int = 1 << 20) -> RunStatus:
    """The run's state and figures from the last ``tail_bytes`` of its log (a list of many runs reads less)."""
    settings = settings or SupervisorConfig()
    now = time.time() if now is None else now
    events = [parse(line) for line in read_tail(run_dir / layout.EVENTS, tail_bytes)]
    starts = [i for i, e in enumerate(events) if isinstance(e, RunStart)]
    current = events[starts[-1]:] if starts else events
    steps = [e for e in events if isinstance(e, Step)]
    last_step = steps[-1] if steps else None
    end = next((e for e in reversed(current) if isinstance(e, RunEnd)), None)
    start = events[starts[-1]] if starts else None
    # run_start may be older than the tail: then the run's settings come from its config.toml
    config = (start.config if isinstance(start, RunStart) else None) or _run_config(run_dir)
    train = config.get("train", {})
    restarts = sum(1 for e in events if isinstance(e, Restart))
    info = ckpt.latest_progress(run_dir / layout.CHECKPOINTS)
    ident = live_worker(run_dir)

    step = last_step.step if last_step else (info.step if info else None)
    recent = steps[-20:]
    step_times = [(e.step_s or 0.0) + (e.data_s or 0.0) for e in recent]
    since_start = [e for e in current if isinstance(e, Step)][-ETA_WINDOW:]
    eta = eta_seconds([(e.time, e.step) for e in since_start], last_step.total_steps or 0) if last_step else None
    activity = [e for e in current if isinstance(e, (Step, Heartbeat, RunStart, Checkpoint, Eval))]
    last_activity_age = now - activity[-1].time if activity else None
    stall_s = stall_after(settings.stall_after_s, step_times, float(train.get("heartbeat_s", 5.0)))

    if ident is not None:
        silent = silent_for(activity[-1].time if activity else None, now, stall_s)
        state, reason = (RunState.STALLED, f"no step or heartbeat for {silent:.0f}s") if silent is not None \
            else (RunState.RUNNING, None)
    elif _tuning(events) and run_lock_held(run_dir):
        state, reason = RunState.TUNING, "an auto-tune search holds the run; it resumes afterwards if it was running"
    elif end is not None:
        state, reason = RunState.of(end.status, RunState.FAILED), end.reason
        if end.status == RunState.FAILED and end.reason == "stalled":
            state = RunState.STALLED
    elif start is not None:
        state, reason = RunState.FAILED, "the worker died without writing run_end (killed, or out of memory)"
    else:
        state, reason = (RunState.STOPPED, "no events; progress from the checkpoint") if info \
            else (RunState.NOT_STARTED, None)

    if state != RunState.RUNNING:
        eta = None  # a run that is not running has no arrival time
    age = now - info.time if info else None
    stale = False
    if ident is not None:
        # the clock starts at the newest checkpoint or the newest (re)start, whichever is later: a run resumed
        # after a long pause is not stale in its first interval
        since = max(info.time if info is not None else 0.0, start.time if start else 0.0) or now
        stale = checkpoint_stale(now, since, int(train.get("checkpoint_every", 0) or 0), step_times)
    last_eval = next((e for e in reversed(events) if isinstance(e, Eval)), None)
    free = layout.free_bytes(run_dir)
    return RunStatus(state=state, pid=ident.pid if ident else None, step=step,
                     total_steps=last_step.total_steps if last_step else None,
                     epoch=last_step.epoch if last_step else (info.epoch if info else None),
                     loss=last_step.loss if last_step else (info.loss if info else None),
                     samples_per_s=last_step.samples_per_s if last_step else None, eta_s=eta,
                     checkpoint_step=info.step if info else None, checkpoint_age_s=age, checkpoint_stale=stale,
                     restarts=restarts, last_activity_age_s=last_activity_age, stall_after_s=stall_s,
                     reason=reason, eval_loss=last_eval.loss if last_eval else None,
                     eval_accuracy=last_eval.accuracy if last_eval else None, started_time=_first_start(run_dir),
                     config_hash=(start.config_hash if isinstance(start, RunStart) else None)
                     or (info.config_hash if info else None),
                     disk_free_mb=free / 2**20 if free is not None else None,
                     disk_warning=disk_warning(free, info.bytes if info else None))


def _first_start(run_dir: Path) -> float | None:
    """When the run first started: the time of its log's first line (a heartbeat of the worker's start-up, or
    its run_start), read without reading the rest."""
    try:
        with open(run_dir / layout.EVENTS, "rb") as fh:
            first = fh.readline(1 << 16)
    except OSError:
        return None
    try:
        value = json.loads(first).get("time")
    except (ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, (int, float)) else None
