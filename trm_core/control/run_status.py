"""The state of a run, from its files alone: for ``trm-tui status``, the headless line and the dashboard.

Reads only the end of ``events.jsonl`` (a run's log can hold millions of lines) and the newest checkpoint's
sidecar; falls back to the sidecar for progress when the log is missing or has no steps.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trm_core.config import SupervisorConfig, tomllib
from trm_core.control.fold import RunFold, end_state
from trm_core.rundir import checkpoints as ckpt
from trm_core.rundir import layout, lifecycle, log_queries
from trm_core.rundir.events import read_tail
from trm_core.rundir.states import RunState
from trm_core.rundir.identity import live_worker, run_lock_held
from trm_core.rundir.layout import RunDir
from trm_core.rundir.ownership import run_owner, user_name
from trm_core.rundir.records import parse
from trm_core.rundir.scores import best_of, headline

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
    eval_metric: str | None = None       # the task's eval figure (scores.py) and its newest value
    eval_score: float | None = None
    best_score: float | None = None      # the run's best eval by that figure, and its step
    best_step: int | None = None
    target_score: float | None = None    # train.target_score (the paper's, in the paper presets)
    target_name: str | None = None
    owner: str | None = None             # whose run it is (its config.toml's owner), as a login name
    owner_uid: int | None = None
    config_error: str | None = None      # the run's config.toml does not read: why, and how to fix it
    compiled: bool | None = None         # train.compile = "auto"'s verdict (the log's, else the checkpoint's)
    compile_reason: str | None = None    # why, when the part of the log read holds the verdict
    checkpoint_skipped: list[str] = field(default_factory=list)  # newer checkpoints that are not whole, and why
    error: str | None = None             # a failed run's error: its message's last line
    error_step: int | None = None        # the step it failed in (the last completed is one before, or ``step``)
    weights_from: str | None = None      # train.init_from's source, or what trm-tui import converted
    target_step: int | None = None       # when train.target_score was first reached: the step, the wall
    target_seconds: float | None = None  # seconds since the run's first start and the samples seen
    target_samples: int | None = None    # (the log's target_reached, else the newest checkpoint's sidecar)
    depth_stage: str | None = None       # train.depth_schedule's stage at the run's step, in words

    @property
    def mine(self) -> bool:
        """This user's run (or one whose owner is unknown): the one user who may act on it."""
        return self.owner_uid is None or self.owner_uid == os.geteuid()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_status(run_dir: Path, settings: SupervisorConfig | None = None, now: float | None = None,
               tail_bytes: int = 1 << 20) -> RunStatus:
    """The run's state and figures from the last ``tail_bytes`` of its log (a list of many runs reads less)."""
    settings = settings or SupervisorConfig()
    now = time.time() if now is None else now
    fold = RunFold.of(parse(line) for line in read_tail(run_dir / layout.EVENTS, tail_bytes))
    if fold.start is None or not fold.start.config:
        fold.use_settings(_run_config(run_dir).get("train", {}))  # run_start is older than the tail
    info, broken = ckpt.newest_whole(run_dir / layout.CHECKPOINTS)  # the newest a resume could use
    ident = live_worker(run_dir)
    stall_s = fold.stall_after_s(settings.stall_after_s)
    state, reason = _state(run_dir, fold, info, ident is not None, fold.silent_s(now, settings.stall_after_s))
    last, last_eval, free = fold.last_step, fold.last_eval, layout.free_bytes(run_dir)
    progress = last or info  # the log's newest step, else the newest checkpoint's sidecar
    return RunStatus(state=state, pid=getattr(ident, "pid", None), step=getattr(progress, "step", None),
                     total_steps=getattr(last, "total_steps", None), epoch=getattr(progress, "epoch", None),
                     loss=getattr(progress, "loss", None), samples_per_s=getattr(last, "samples_per_s", None),
                     eta_s=fold.eta_s() if last and state == RunState.RUNNING else None,
                     checkpoint_step=getattr(info, "step", None),
                     checkpoint_age_s=now - info.time if info else None,
                     checkpoint_stale=ident is not None and fold.checkpoint_is_stale(now, getattr(info, "time", None)),
                     restarts=fold.restarts,
                     last_activity_age_s=now - fold.last_activity if fold.last_activity is not None else None,
                     stall_after_s=stall_s, reason=reason, eval_loss=getattr(last_eval, "loss", None),
                     eval_accuracy=getattr(last_eval, "accuracy", None), started_time=log_queries.first_time(
                         run_dir / layout.EVENTS),
                     config_hash=getattr(fold.start, "config_hash", None) or getattr(info, "config_hash", None),
                     disk_free_mb=free / 2**20 if free is not None else None,
                     disk_warning=disk_warning(free, getattr(info, "bytes", None)), **_scores(fold, info),
                     config_error=config_error(run_dir, state), **_owner(run_dir),
                     compiled=fold.compile.compiled if fold.compile else getattr(info, "compiled", None),
                     compile_reason=fold.compile.reason if fold.compile else None,
                     checkpoint_skipped=[f"{i.path.name} (step {i.step}): {why}" for i, why in broken],
                     weights_from=fold.start.weights_source if fold.start else None, **_target(fold, info),
                     depth_stage=_depth_stage(fold.start, getattr(progress, "step", None), getattr(last, "total_steps", None)),
                     **_error(fold, state))


def _depth_stage(start: Any, step: int | None, total: int | None) -> str | None:
    """The depth curriculum's stage the next step runs in (the config of the newest start; pure arithmetic)."""
    from trm_core.config.curriculum import parse_depth_schedule, stage_at
    from trm_core.config.schema import ConfigError

    config = getattr(start, "config", None)
    items = config.get("train", {}).get("depth_schedule") if isinstance(config, dict) else None
    if not items or not total:
        return None
    try:
        stages = parse_depth_schedule(items)
    except ConfigError:
        return None
    k = stage_at(stages, step or 0, total)
    return f"stage {k + 1} of {len(stages)}: T={stages[k].T} n={stages[k].n} (train.depth_schedule)"


def _target(fold: RunFold, info: ckpt.CheckpointInfo | None) -> dict[str, Any]:
    """Time to target: the tail's target_reached, else the sidecar's (a long log's event is far back)."""
    ev = fold.target_reached
    found = (ev.step, ev.seconds, ev.samples) if ev is not None else getattr(info, "target", None)
    return dict(zip(("target_step", "target_seconds", "target_samples"), found)) if found else {}


def _error(fold: RunFold, state: RunState) -> dict[str, Any]:
    """The newest start's error, while the run stands failed (a restart that went on clears it)."""
    if fold.error is None or state not in (RunState.FAILED, RunState.STALLED):
        return {}
    return {"error": fold.error_line(), "error_step": fold.error.step}


def config_error(run_dir: Path, state: RunState) -> str | None:
    """Why the config.toml of a run that trained no longer reads, and how to fix it; None when it reads (or
    the run is still starting, with none yet). Status, runs and the dashboard ask this one question."""
    from trm_core.config.run_config import config_problem

    if state == RunState.STARTING or not lifecycle.holds_run(run_dir):
        return None
    return config_problem(run_dir)


def _owner(run_dir: Path) -> dict[str, Any]:
    uid = run_owner(RunDir.at(run_dir).root)
    return {"owner": user_name(uid) if uid is not None else None, "owner_uid": uid}


def _scores(fold: RunFold, info: ckpt.CheckpointInfo | None) -> dict[str, Any]:
    """The newest eval in the tail, and the run's best: the tail's or the newest checkpoint's sidecar's (a
    paper preset's evals are thousands of steps apart, further back than the tail reaches)."""
    figure = headline(fold.last_eval.__dict__) if fold.last_eval is not None else None
    best = fold.best_eval
    if info is not None and info.best is not None:
        best = best_of(best, *info.best)
    return {"eval_metric": figure[0] if figure else None, "eval_score": figure[1] if figure else None,
            "best_score": best[0] if best else None, "best_step": best[1] if best else None,
            "target_score": fold.target_score or None, "target_name": fold.target_name if fold.target_score else None}


def _state(run_dir: Path, fold: RunFold, info: ckpt.CheckpointInfo | None, worker_lives: bool,
           silent_s: float | None) -> tuple[RunState, str | None]:
    """The run's state and why, from what lives now (a worker, a search's lock) and what the log says."""
    if worker_lives:
        return (RunState.STALLED, f"no step or heartbeat for {silent_s:.0f}s") if silent_s is not None \
            else (RunState.RUNNING, None)
    if fold.tuning and run_lock_held(run_dir):
        return RunState.TUNING, "an auto-tune search holds the run; it resumes afterwards if it was running"
    if fold.end is not None:
        return end_state(fold.end), fold.end.reason
    if fold.start is not None:
        return RunState.FAILED, "the worker died without writing run_end (killed, or out of memory)"
    if info is not None:
        return RunState.STOPPED, "no events; progress from the checkpoint"
    return RunState.NOT_STARTED, None
