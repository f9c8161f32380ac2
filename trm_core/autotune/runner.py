"""One candidate's trial process, watched from here: its RSS is polled and the process killed the moment it
passes the memory limit, so a candidate that would exhaust the host is a rejected candidate, not an
OOM-killed machine; whatever happens becomes a ``Trial``."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from trm_core.autotune.search import Candidate, Trial
from trm_core.autotune.trial import EXIT_OOM
from trm_core.config import Config

POLL_S = 0.05


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
