"""Auto-tune a stopped run: try candidates in trial processes, write the winner into the run's config.toml,
and record it all as events. Stopping a running run first and resuming it afterwards are
``control.tune``'s: this package measures, and never drives the run's processes.

Each trial is its own process (``trm_core.autotune.trial``), watched by ``autotune.runner``. The run's worker lock is held for the whole search so no
worker can start (and no supervisor restart one) while trials use the machine.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from trm_core import config as config_mod
from trm_core.autotune.choice import choice_settings, saved_with
from trm_core.autotune.runner import TrialRunner
from trm_core.autotune.search import Candidate, Search, SearchSpace, Trial, choose
from trm_core.config import Config, ConfigError
from trm_core.rundir import checkpoints as ckpt
from trm_core.rundir import layout
from trm_core.rundir.events import EventWriter
from trm_core.rundir.identity import RunClaimed, lock_run
from trm_core.rundir.records import AutotuneResult, AutotuneStart, Event
from trm_core.telemetry import nvidia_gpu_present  # torch's 'auto' picks CUDA where NVML sees a GPU

class AutotuneError(RuntimeError):
    """The search could not run (no run, a worker that would not stop, a worker that started meanwhile,
    the run's own settings failing in a trial). ``was_running``: the search had stopped the run, so a front
    end should resume it."""

    def __init__(self, message: str, was_running: bool = False) -> None:
        super().__init__(message)
        self.was_running = was_running


@dataclass
class Outcome:
    trials: list[Trial]
    baseline: Trial | None
    chosen: Trial | None
    changed: dict[str, tuple[object, object]] = field(default_factory=dict)  # key -> (before, after)
    was_running: bool = False
    note: str = ""
    result_event: dict = field(default_factory=dict)  # the autotune_result event as written


def _checkpoint_step(run_dir: Path) -> int:
    found = ckpt.list_checkpoints(run_dir / layout.CHECKPOINTS)
    return max((c.step for c in found), default=0)


def search_config(run_dir: Path, sets: list[str] | tuple[str, ...] = ()) -> tuple[dict, Config]:
    """The run's saved config (its tables) and the config a search of it runs with: ``sets`` may override
    only ``autotune.*`` keys, for this search alone. Raises ConfigError naming what is wrong."""
    config_path = run_dir / layout.RUN_CONFIG
    if not config_path.exists():
        raise ConfigError(f"{run_dir} holds no run ({layout.RUN_CONFIG} is missing); start one with trm-tui first, or "
                          f"give --preset/--config/--set to tune a new run before training")
    saved = config_mod.read_run_config(config_path)
    bad = [s for s in sets if not s.startswith("autotune.")]
    if bad:
        raise ConfigError(f"--set {bad[0]}: only autotune.* keys can be set for a search")
    return saved, config_mod.resolve(base=saved, env={}, sets=list(sets))


def autotune(run_dir: Path, on_event: Callable[[dict], None] | None = None, sets: list[str] | tuple[str, ...] = (),
             cancel: threading.Event | None = None, env: dict[str, str] | None = None,
             was_running: bool = False) -> Outcome:
    """Tune the micro-batch and threads (and, when allowed, the batch) of the run in ``run_dir``, which no
    worker may hold (``control.tune`` stops a running one first and says so in ``was_running``). ``sets``
    override ``autotune.*`` keys for this search only; ``on_event`` sees each event as it is written (front
    ends show trials live). Raises AutotuneError or ConfigError."""
    saved, cfg = search_config(run_dir, sets)
    cancel = cancel or threading.Event()
    try:
        lock_fd = lock_run(run_dir)  # held for the whole search: no worker starts meanwhile
    except RunClaimed as exc:
        raise AutotuneError(f"{exc}; nothing was tuned", was_running) from None
    try:
        events = EventWriter(run_dir / layout.EVENTS)
        try:
            def emit(record: Event) -> dict:
                line = events.emit(record)
                if on_event:
                    on_event(line)
                return line
            return _search(run_dir, cfg, saved, run_dir / layout.RUN_CONFIG, was_running, emit, cancel, env)
        finally:
            events.close()
    finally:
        os.close(lock_fd)


@dataclass
class _Plan:
    """What a search of this run may try, and why it may not try more."""

    step: int           # the newest checkpoint's step
    on_cuda: bool
    cores: int          # one rank's share of the cores (0 on CUDA)
    share: int          # one rank's share of the global batch
    grow: bool          # the batch may change
    note: str           # why a batch change was asked for and not applied ("" otherwise)
    space: SearchSpace


TUNED_KEYS = ("train.threads", "train.micro_batch_size")


def pinned_settings(run_dir: Path) -> dict[str, str]:
    """The tuned keys the user set by hand (``--set`` at any start of the run, the newest value winning), which
    a search keeps as they are; a key set to 0 (torch's default / the whole batch) is left to the search."""
    from trm_core.rundir.log_queries import every
    from trm_core.rundir.records import RunStart

    pinned: dict[str, str] = {}
    for start in every(run_dir / layout.EVENTS, RunStart):
        for item in start.overrides or []:
            key, _, value = str(item).partition("=")
            if key.strip() in TUNED_KEYS:
                pinned[key.strip()] = value.strip()
    return {k: v for k, v in pinned.items() if v not in ("0", "")}


def _plan(run_dir: Path, cfg: Config) -> _Plan:
    """What a search of this run may try: one rank's share of the batch on its share of the cores (none on a
    GPU), the batch itself only for a run not yet trained alone, and never a setting the user pinned."""
    a, t = cfg.autotune, cfg.train
    step = _checkpoint_step(run_dir)
    on_cuda = t.device.startswith("cuda") or (t.device == "auto" and nvidia_gpu_present())
    # with several ranks a trial is one rank: its share of the global batch, on one GPU or its share of the cores
    ranks_here = cfg.distributed.nproc_per_node
    cores = 0 if on_cuda else _usable_cores() // ranks_here
    share = cfg.rank_batch
    grow = a.allow_batch_change and step == 0 and cfg.distributed.world_size == 1
    # a CPU rank runs with its share of the cores unless train.threads says otherwise (distributed.node_launcher)
    threads = t.threads or (cores if ranks_here > 1 and cores else 0)
    pinned = pinned_settings(run_dir) if a.keep_pinned else {}
    note = " ".join(filter(None, [_batch_note(cfg, step), _pinned_note(pinned)]))
    space = SearchSpace(batch_size=share, start=Candidate(share, cfg.micro_batch, threads),
                        cores=0 if "train.threads" in pinned else cores,
                        max_batch_size=(a.max_batch_size or 8 * t.batch_size) if grow else 0,
                        min_gain=a.min_gain, tune_micro="train.micro_batch_size" not in pinned)
    return _Plan(step, on_cuda, cores, share, grow, note, space)


def _usable_cores() -> int:
    """The cores this process may run on (its affinity where the OS says it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _batch_note(cfg: Config, step: int) -> str:
    """Why autotune.allow_batch_change is not applied (a run already trained, several ranks); "" when it is
    or was not asked for."""
    if not cfg.autotune.allow_batch_change:
        return ""
    if step > 0:
        return (f"autotune.allow_batch_change: not applied, the run is at step {step}; a new batch size would "
                f"change its data order and schedule (start a new run to tune the batch)")
    if cfg.distributed.world_size > 1:
        return (f"autotune.allow_batch_change: not applied with {cfg.distributed.world_size} ranks; each trial "
                f"measures one rank's {cfg.rank_batch} samples and the global batch stays {cfg.train.batch_size}")
    return ""


def _pinned_note(pinned: dict[str, object]) -> str:
    """The settings kept because the user set them at a start; "" when none were."""
    if not pinned:
        return ""
    kept = ", ".join(f"{key} = {value}" for key, value in pinned.items())
    return (f"kept as you set them at a start (--set): {kept}; to tune them too: "
            f"trm-tui autotune --set autotune.keep_pinned=false")


def _search(run_dir: Path, cfg: Config, saved: dict, config_path: Path, was_running: bool,
            emit: Callable[[Event], dict], cancel: threading.Event, env: dict[str, str] | None) -> Outcome:
    a, t = cfg.autotune, cfg.train
    plan = _plan(run_dir, cfg)
    deadline = time.monotonic() + a.max_seconds
    runner = TrialRunner(config_path, cfg, deadline, cancel, env, plan.on_cuda)
    emit(AutotuneStart(step=plan.step, batch_size=t.batch_size, micro_batch_size=cfg.micro_batch, threads=t.threads,
                       memory_limit_mb=round(runner.limit_mb, 1), device="cuda" if plan.on_cuda else "cpu",
                       cores=plan.cores, max_seconds=a.max_seconds, allow_batch_change=plan.grow, note=plan.note))
    trials = Search(plan.space, _measuring(runner, emit, was_running),
                    lambda: cancel.is_set() or time.monotonic() > deadline).run()
    baseline = trials[0] if trials else None
    # cancelled: the run keeps its settings, and the record says so
    chosen = baseline if cancel.is_set() else choose(trials, baseline, a.min_gain)
    changed, note = {}, plan.note
    if chosen is not None and chosen is not baseline and not cancel.is_set():
        changed, batch_note = _write_choice(cfg, saved, config_path, chosen, baseline, plan)
        note = batch_note or note
    before_sps = baseline.samples_per_s if baseline and baseline.accepted else None
    written = emit(AutotuneResult(
        changed={k: list(v) for k, v in changed.items()}, before_samples_per_s=_round(before_sps),
        after_samples_per_s=_round(chosen.samples_per_s if chosen else None), trials=len(trials),
        cancelled=cancel.is_set(), note=note, lr_rule="sqrt" if "train.learning_rate" in changed else None))
    return Outcome(trials, baseline, chosen, changed, was_running, note, written)


def _measuring(runner: TrialRunner, emit: Callable[[Event], dict], was_running: bool) -> Callable[[Candidate], Trial]:
    """The search's measure: a trial, recorded; the run's own settings crashing ends the search."""
    measured: list[Trial] = []

    def measure(cand: Candidate) -> Trial:
        trial = runner(cand)
        emit(trial.to_event())
        if not measured and trial.reason.startswith("crashed"):
            # the run's own settings fail: no candidate can be compared with them (a bad data path, a bug)
            why = f"the run's current settings crash in a trial: {trial.reason}"
            emit(AutotuneResult(changed={}, before_samples_per_s=None, after_samples_per_s=None, trials=1,
                                cancelled=False, note=f"aborted: {why}", lr_rule=None))
            raise AutotuneError(f"{why}; nothing was tuned (see the trial's error above)", was_running)
        measured.append(trial)
        return trial
    return measure


def _write_choice(cfg: Config, saved: dict, config_path: Path, chosen: Trial, baseline: Trial | None,
                  plan: _Plan) -> tuple[dict[str, tuple[object, object]], str]:
    """Write the chosen settings into the run's config.toml; what changed (key -> (before, after)) and the
    note about a new batch."""
    t = cfg.train
    new_train, batch_note = choice_settings(cfg, chosen, baseline, plan.cores, plan.share)
    before = {"micro_batch_size": cfg.micro_batch, "threads": t.threads, "batch_size": t.batch_size,
              "learning_rate": t.learning_rate, "max_steps": t.max_steps, "warmup_steps": t.warmup_steps,
              "eval_every": t.eval_every, "checkpoint_every": t.checkpoint_every}
    changed = {f"train.{k}": (before[k], v) for k, v in new_train.items() if before[k] != v}
    if changed:  # over the saved config, not this search's own --set autotune.* overrides
        plain = config_mod.resolve(base=saved, env={})
        tuned = config_mod.resolve(base=saved_with(plain, new_train), env={})
        config_mod.write_config(tuned, config_path)
    return changed, batch_note


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
