"""The state of a run, from its files alone: for ``trm-tui status``, the headless line and the dashboard.

Reads only the end of ``events.jsonl`` (a run's log can hold millions of lines) and the newest checkpoint's
sidecar; falls back to the sidecar for progress when the log is missing or has no steps.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from trm_core.config import SupervisorConfig, tomllib
from trm_core.rundir import checkpoints as ckpt
from trm_core.rundir import layout
from trm_core.rundir.events import read_tail
from trm_core.rundir.identity import live_worker, run_lock_held

def eta_seconds(points: list[tuple[float, int]], total_steps: int) -> float | None:
    """Time to ``total_steps`` at the pace of recent (wall time, step) points, oldest first."""
    if len(points) < 2 or points[-1][1] <= points[0][1]:
        return None
    (t0, s0), (t1, s1) = points[0], points[-1]
    return (t1 - t0) / (s1 - s0) * max(0, total_steps - s1)


def _run_config(run_dir: Path) -> dict[str, Any]:
    try:
        with open(run_dir / layout.RUN_CONFIG, "rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError):
        return {}


@dataclass
class RunStatus:
    state: str                    # running | stalled | stopped | completed | failed | not started
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def stall_after(configured_s: float, step_times: list[float], heartbeat_s: float) -> float:
    """How long a silent worker counts as stalled: supervisor.stall_after_s, or else 10x the typical step
    (at least a minute, at least three heartbeats). `status` and the dashboard both use this."""
    if configured_s:
        return configured_s
    typical = statistics.median(step_times) if step_times else 0.0
    return max(60.0, 10 * typical, 3 * heartbeat_s)


def _tuning(events: list[dict[str, Any]]) -> bool:
    """The newest of run_start / autotune_start / autotune_result is an autotune_start."""
    last = next((e["event"] for e in reversed(events)
                 if e["event"] in ("run_start", "autotune_start", "autotune_result")), None)
    return last == "autotune_start"


def run_status(run_dir: Path, settings: SupervisorConfig | None = None, now: float | None = None) -> RunStatus:
    settings = settings or SupervisorConfig()
    now = time.time() if now is None else now
    events = read_tail(run_dir / layout.EVENTS)
    starts = [i for i, e in enumerate(events) if e["event"] == "run_start"]
    current = events[starts[-1]:] if starts else events
    steps = [e for e in events if e["event"] == "step"]
    last_step = steps[-1] if steps else None
    end = next((e for e in reversed(current) if e["event"] == "run_end"), None)
    start = events[starts[-1]] if starts else None
    config = (start or {}).get("config") or _run_config(run_dir)  # run_start may be older than the tail
    train = config.get("train", {})
    restarts = sum(1 for e in events if e["event"] == "restart")
    info = ckpt.latest_progress(run_dir / layout.CHECKPOINTS)
    ident = live_worker(run_dir)

    step = last_step["step"] if last_step else (info.step if info else None)
    recent = steps[-20:]
    step_times = [e["step_s"] + e.get("data_s", 0.0) for e in recent]
    eta = eta_seconds([(e["time"], e["step"]) for e in recent], last_step.get("total_steps") or 0) \
        if last_step else None
    activity = [e for e in current if e["event"] in ("step", "heartbeat", "run_start", "checkpoint", "eval")]
    last_activity_age = now - activity[-1]["time"] if activity else None
    stall_s = stall_after(settings.stall_after_s, step_times, float(train.get("heartbeat_s", 5.0)))

    if ident is not None:
        stalled = last_activity_age is not None and last_activity_age > stall_s
        state, reason = ("stalled", f"no step or heartbeat for {last_activity_age:.0f}s") if stalled else ("running", None)
    elif _tuning(events) and run_lock_held(run_dir):
        state, reason = "tuning", "an auto-tune search holds the run; it resumes afterwards if it was running"
    elif end is not None:
        state, reason = end["status"], end.get("reason")
        if end["status"] == "failed" and end.get("reason") == "stalled":
            state = "stalled"
    elif start is not None:
        state, reason = "failed", "the worker died without writing run_end (killed, or out of memory)"
    else:
        state, reason = ("stopped", "no events; progress from the checkpoint") if info else ("not started", None)

    age = now - info.time if info else None
    stale = False
    if ident is not None and step_times:
        # the newest checkpoint (or, with none yet, the start of the run) is older than two checkpoint
        # intervals at the recent step time, plus a minute: the old "checkpoint stopped updating" alarm
        since = info.time if info is not None else start["time"] if start else now
        expected = int(train.get("checkpoint_every", 0) or 0) * statistics.median(step_times)
        stale = now - since > 2 * expected + 60
    return RunStatus(state=state, pid=ident.pid if ident else None, step=step,
                     total_steps=last_step.get("total_steps") if last_step else None,
                     epoch=last_step.get("epoch") if last_step else (info.epoch if info else None),
                     loss=last_step["loss"] if last_step else (info.loss if info else None),
                     samples_per_s=last_step.get("samples_per_s") if last_step else None, eta_s=eta,
                     checkpoint_step=info.step if info else None, checkpoint_age_s=age, checkpoint_stale=stale,
                     restarts=restarts, last_activity_age_s=last_activity_age, stall_after_s=stall_s,
                     reason=reason)
