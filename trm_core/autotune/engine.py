"""Auto-tune a stopped run: try candidates in trial processes, write the winner into the run's config.toml,
and record it all as events. Stopping a running run first and resuming it afterwards are
``control.tune``'s: this package measures, and never drives the run's processes.

Each trial is its own process (``trm_core.autotune.trial``), watched from here: its RSS is polled and the
process killed the moment it passes the memory limit, so a candidate that would exhaust the host is a
rejected candidate, not an OOM-killed machine. The run's worker lock is held for the whole search so no
worker can start (and no supervisor restart one) while trials use the machine.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import psutil

from trm_core import config as config_mod
from trm_core.autotune.search import Candidate, Search, SearchSpace, Trial, choose
from trm_core.autotune.trial import EXIT_OOM
from trm_core.config import Config, ConfigError
from trm_core.rundir import checkpoints as ckpt
from trm_core.rundir import layout
from trm_core.rundir.events import EventWriter
from trm_core.rundir.identity import RunClaimed, lock_run
from trm_core.rundir.records import AutotuneResult, AutotuneStart, Event
from trm_core.telemetry import GpuProbe

POLL_S = 0.05


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


def memory_limit_mb(cfg: Config, on_cuda: bool = False) -> float:
    """Host memory a trial may use: (1 - margin) of this machine's RAM, never more than is free now (a
    trial must not wake the kernel's OOM killer before the poll sees it), and on CPU the configured cap.
    On CUDA ``autotune.memory_limit_mb`` caps the GPU (the trial enforces it), not the host."""
    vm = psutil.virtual_memory()
    limit = min((1 - cfg.autotune.memory_margin) * vm.total, 0.95 * vm.available) / 2**20
    return min(limit, cfg.autotune.memory_limit_mb) if cfg.autotune.memory_limit_mb and not on_cuda else limit


def _tree_rss_mb(proc: psutil.Process) -> float:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total / 2**20


class TrialRunner:
    """Runs one candidate's trial process and turns whatever happens into a Trial."""

    def __init__(self, config_path: Path, cfg: Config, deadline: float, cancel: threading.Event,
                 env: dict[str, str] | None = None, on_cuda: bool = False) -> None:
        self.config_path, self.cfg, self.deadline, self.cancel = config_path, cfg, deadline, cancel
        self.limit_mb = memory_limit_mb(cfg, on_cuda)
        self.env = env
        # one trial may take a quarter of the budget: micro-batch 1 of a large batch must not eat all of it
        self.trial_s = max(30.0, cfg.autotune.max_seconds / 4)

    def __call__(self, cand: Candidate) -> Trial:
        a = self.cfg.autotune
        gpu_limit = a.memory_limit_mb  # the trial applies the margin to the GPU's own size
        argv = [sys.executable, "-m", "trm_core.autotune.trial", "--config", str(self.config_path),
                "--batch-size", str(cand.batch_size), "--micro-batch", str(cand.micro_batch),
                "--threads", str(cand.threads), "--warmup", str(a.warmup_steps), "--measure", str(a.measure_steps),
                "--memory-margin", str(a.memory_margin), "--gpu-limit-mb", str(gpu_limit)]
        started = time.monotonic()
        # files, not pipes: a chatty trial (warnings, compile logs) must never block on a full pipe
        with tempfile.TemporaryFile("w+") as out_f, tempfile.TemporaryFile("w+") as err_f:
            proc = subprocess.Popen(argv, stdout=out_f, stderr=err_f, text=True, env=self.env,
                                    start_new_session=True)  # the terminal's Ctrl-C is for the search, not it
            peak, reason = self._watch(proc, started)
            out_f.seek(0)
            err_f.seek(0)
            out, err = out_f.read(), err_f.read()
        seconds = time.monotonic() - started
        return self._result(cand, proc.returncode, out, err, peak, reason, seconds)

    def _watch(self, proc: subprocess.Popen, started: float) -> tuple[float, str]:
        """Poll the trial until it ends or must be killed: (peak RSS in MiB, why it was killed or "")."""
        watched = psutil.Process(proc.pid)
        peak, reason = 0.0, ""
        while proc.poll() is None:
            try:
                peak = max(peak, _tree_rss_mb(watched))
            except psutil.Error:
                pass
            if peak > self.limit_mb:
                reason = f"over the memory limit ({peak:.0f} > {self.limit_mb:.0f} MiB)"
            elif time.monotonic() > self.deadline:
                reason = "out of time (autotune.max_seconds)"
            elif time.monotonic() - started > self.trial_s:
                reason = f"too slow (over {self.trial_s:.0f}s, a quarter of autotune.max_seconds)"
            elif self.cancel.is_set():
                reason = "cancelled"
            if reason:
                proc.kill()
                break
            time.sleep(POLL_S)
        proc.wait()
        return peak, reason

    def _result(self, cand: Candidate, returncode: int, out: str, err: str, peak: float, reason: str,
                seconds: float) -> Trial:
        if reason:
            return Trial(cand, False, peak_mb=peak, reason=reason, seconds=seconds)
        result = _last_json(out)
        if returncode == EXIT_OOM:
            return Trial(cand, False, reason="out of memory", seconds=seconds)
        if returncode != 0 or result is None:
            last = (err.strip().splitlines() or ["no output"])[-1]
            return Trial(cand, False, reason=f"crashed (exit {returncode}): {last[:200]}", seconds=seconds)
        measured = dataclasses.replace(cand, threads=cand.threads or int(result["threads"]))
        on_gpu = str(result["device"]).startswith("cuda")
        peak_mb = float(result["peak_mb"])
        limit = float(result.get("limit_mb") or 0) if on_gpu else self.limit_mb
        if limit and peak_mb > limit:
            return Trial(measured, False, float(result["samples_per_s"]), peak_mb,
                         f"over the memory limit ({peak_mb:.0f} > {limit:.0f} MiB)", seconds)
        return Trial(measured, True, float(result["samples_per_s"]), peak_mb, seconds=seconds)


def _last_json(text: str) -> dict | None:
    for line in reversed(text.strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


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


def _search(run_dir: Path, cfg: Config, saved: dict, config_path: Path, was_running: bool,
            emit: Callable[[Event], dict], cancel: threading.Event, env: dict[str, str] | None) -> Outcome:
    a, t = cfg.autotune, cfg.train
    step = _checkpoint_step(run_dir)
    on_cuda = t.device.startswith("cuda") or (t.device == "auto" and _cuda_visible())
    cores = 0 if on_cuda else (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    # with several ranks a trial is one rank: its share of the global batch, on one GPU or its share of the cores
    ranks_here = cfg.distributed.nproc_per_node
    cores = cores // ranks_here if cores else 0
    share = cfg.rank_batch
    grow = a.allow_batch_change and step == 0 and cfg.distributed.world_size == 1
    note = ""
    if a.allow_batch_change and step > 0:
        note = (f"autotune.allow_batch_change: not applied, the run is at step {step}; a new batch size would "
                f"change its data order and schedule (start a new run to tune the batch)")
    elif a.allow_batch_change and cfg.distributed.world_size > 1:
        note = (f"autotune.allow_batch_change: not applied with {cfg.distributed.world_size} ranks; each trial "
                f"measures one rank's {share} samples and the global batch stays {t.batch_size}")
    # a CPU rank runs with its share of the cores unless train.threads says otherwise (distributed.node_launcher)
    threads = t.threads or (cores if ranks_here > 1 and cores else 0)
    space = SearchSpace(batch_size=share, start=Candidate(share, cfg.micro_batch, threads),
                        cores=cores, max_batch_size=(a.max_batch_size or 8 * t.batch_size) if grow else 0,
                        min_gain=a.min_gain)
    deadline = time.monotonic() + a.max_seconds
    runner = TrialRunner(config_path, cfg, deadline, cancel, env, on_cuda)
    emit(AutotuneStart(step=step, batch_size=t.batch_size, micro_batch_size=cfg.micro_batch, threads=t.threads,
                       memory_limit_mb=round(runner.limit_mb, 1), device="cuda" if on_cuda else "cpu", cores=cores,
                       max_seconds=a.max_seconds, allow_batch_change=grow, note=note))
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

    search = Search(space, measure, lambda: cancel.is_set() or time.monotonic() > deadline)
    trials = search.run()
    baseline = trials[0] if trials else None
    # cancelled: the run keeps its settings, and the record says so
    chosen = baseline if cancel.is_set() else choose(trials, baseline, a.min_gain)
    changed: dict[str, tuple[object, object]] = {}
    if chosen is not None and chosen is not baseline and not cancel.is_set():
        new_train, batch_note = _choice_settings(cfg, chosen, baseline, cores, share)
        note = batch_note or note
        before = {"micro_batch_size": cfg.micro_batch, "threads": t.threads, "batch_size": t.batch_size,
                  "learning_rate": t.learning_rate, "max_steps": t.max_steps, "warmup_steps": t.warmup_steps,
                  "eval_every": t.eval_every, "checkpoint_every": t.checkpoint_every}
        changed = {f"train.{k}": (before[k], v) for k, v in new_train.items() if before[k] != v}
        if changed:  # over the saved config, not this search's own --set autotune.* overrides
            plain = config_mod.resolve(base=saved, env={})
            tuned = config_mod.resolve(base=saved_with(plain, new_train), env={})
            config_mod.write_config(tuned, config_path)
    before_sps = baseline.samples_per_s if baseline and baseline.accepted else None
    written = emit(AutotuneResult(
        changed={k: list(v) for k, v in changed.items()}, before_samples_per_s=_round(before_sps),
        after_samples_per_s=_round(chosen.samples_per_s if chosen else None), trials=len(trials),
        cancelled=cancel.is_set(), note=note, lr_rule="sqrt" if "train.learning_rate" in changed else None))
    return Outcome(trials, baseline, chosen, changed, was_running, note, written)


def _choice_settings(cfg: Config, chosen: Trial, baseline: Trial | None, cores: int,
                     share: int) -> tuple[dict[str, object], str]:
    """The train.* values the chosen candidate sets: its micro-batch and threads, and with a new batch the
    learning rate and the step counts that keep the run's samples; and the note that says so ("" without)."""
    t, c = cfg.train, chosen.candidate
    new_train: dict[str, object] = {"micro_batch_size": c.micro_batch}
    default_threads = t.threads == 0 and baseline is not None and c.threads == baseline.candidate.threads
    if cores and not default_threads:  # torch's default count stays "default" (0), not pinned
        new_train["threads"] = c.threads
    if c.batch_size == share:
        return new_train, ""
    new_train["batch_size"] = c.batch_size
    new_train["learning_rate"] = scaled_learning_rate(t.learning_rate, t.batch_size, c.batch_size)
    new_train |= same_samples(t, c.batch_size)
    return new_train, sample_note(t, c.batch_size, new_train)


# Counted in steps, meant as amounts of data: with a batch k times larger, each is divided by k.
PER_SAMPLE_STEPS = ("max_steps", "warmup_steps", "eval_every", "checkpoint_every")


def same_samples(t, new_batch: int) -> dict[str, int]:
    """The step counts that keep the run's amount of data (and its cadence of evals and checkpoints) when the
    batch changes: a run of max_steps = 600 at batch 16 sees 9,600 samples, and must see them at batch 128
    too (75 steps), not eight times as many. With max_steps = 0 the run is counted in epochs, which the
    worker turns into steps with the new batch by itself."""
    out = {}
    for key in PER_SAMPLE_STEPS:
        steps = getattr(t, key)
        if steps:
            out[key] = max(1, round(steps * t.batch_size / new_batch))
    return out


def sample_note(t, new_batch: int, new_train: dict) -> str:
    if t.max_steps:
        what = (f"max_steps {t.max_steps} -> {new_train['max_steps']} keeps the run at about "
                f"{t.max_steps * t.batch_size:,} samples")
    else:
        what = f"the run is counted in epochs ({t.epochs}), so it keeps its samples"
    scaled = ", ".join(f"{k} {getattr(t, k)} -> {new_train[k]}" for k in PER_SAMPLE_STEPS[1:] if k in new_train)
    return (f"batch {t.batch_size} -> {new_batch}: {what}" + (f"; also {scaled}" if scaled else "")
            + "; learning rate by the square-root rule")


def scaled_learning_rate(lr: float, old_batch: int, new_batch: int) -> float:
    """The square-root rule for adaptive optimisers (AdamW): lr * sqrt(new / old) (Malladi et al., 2022,
    "On the SDEs and Scaling Rules for Adaptive Gradient Algorithms")."""
    return lr * math.sqrt(new_batch / old_batch)


def saved_with(cfg: Config, train: dict[str, object]) -> dict:
    tables = cfg.to_dict()
    tables["train"].update(train)
    return tables


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _cuda_visible() -> bool:
    """Whether torch would pick CUDA for device 'auto', without importing torch here (trials do)."""
    probe = GpuProbe()
    try:
        return probe.sample().available
    finally:
        probe.close()
