"""Fault injection for the test suite: one ``Faults`` object that the worker (and an auto-tune trial)
receives, inert unless a ``TRM_TEST_*`` variable is set.

Real failures are hard to time in a test: these make the real worker hang, crash, receive a signal or go
non-finite at a chosen step, or write a checkpoint slowly, so the watchdog, the stop path, the exit codes
and the supervisor can be tested end to end. Inert, they cost a few integer comparisons per step.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from typing import Callable, Mapping

from torch import nn


@dataclass(frozen=True)
class Faults:
    stall_at_step: int = 0   # TRM_TEST_STALL_AT_STEP: sleep forever inside this step
    crash_at_step: int = 0   # TRM_TEST_CRASH_AT_STEP: raise inside this step
    stop_at_step: int = 0    # TRM_TEST_STOP_AT_STEP: the worker sends itself SIGTERM during this step
    nan_at_step: int = 0     # TRM_TEST_NAN_AT_STEP: poison one weight with NaN before this step
    step_sleep_s: float = 0  # TRM_TEST_STEP_SLEEP_S: slow every step down (long-step heartbeats)
    slow_checkpoint: tuple[int, float] = (0, 0.0)  # TRM_TEST_SLOW_CHECKPOINT=STEP:SECONDS_PER_MB (-1: every step)
    once_dir: str = ""       # TRM_TEST_ONCE_DIR: each fault fires once, remembered by a marker file here
    trial_crash_micro_batch: int = 0  # TRM_TEST_TRIAL_CRASH_MICRO_BATCH: that auto-tune trial dies (exit 70)
    sup_step_sleep_s: float = 0  # TRM_TEST_SUP_STEP_SLEEP_S: slow every supervision step down (long steps)
    eval_batch_sleep_s: float = 0  # TRM_TEST_EVAL_BATCH_SLEEP_S: slow every eval batch down (long evals)
    rank: int = -1           # TRM_TEST_FAULT_RANK: with several ranks, the step faults fire on this rank only
    compile_guess_s: float | None = None  # TRM_TEST_COMPILE_GUESS_S: "auto" compiles however short the run

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Faults:
        def num(name: str) -> float:
            return float(environ.get(f"TRM_TEST_{name}", 0) or 0)

        at, _, per_mb = environ.get("TRM_TEST_SLOW_CHECKPOINT", "0:0").partition(":")
        return cls(int(num("STALL_AT_STEP")), int(num("CRASH_AT_STEP")), int(num("STOP_AT_STEP")),
                   int(num("NAN_AT_STEP")), num("STEP_SLEEP_S"), (int(at), float(per_mb or 0)),
                   environ.get("TRM_TEST_ONCE_DIR", ""), int(num("TRIAL_CRASH_MICRO_BATCH")),
                   num("SUP_STEP_SLEEP_S"), num("EVAL_BATCH_SLEEP_S"), int(environ.get("TRM_TEST_FAULT_RANK", -1)),
                   num("COMPILE_GUESS_S") if "TRM_TEST_COMPILE_GUESS_S" in environ else None)

    def _fires(self, name: str, at: int, step: int) -> bool:
        if step != at:
            return False
        if not self.once_dir:
            return True
        marker = os.path.join(self.once_dir, f"{name}-{step}")
        if os.path.exists(marker):
            return False
        open(marker, "w").close()
        return True

    def before_step(self, step: int, model: nn.Module, rank: int = 0) -> None:
        if self.rank >= 0 and rank != self.rank:
            return
        if self.step_sleep_s:
            time.sleep(self.step_sleep_s)
        if self._fires("stall", self.stall_at_step, step):
            while True:
                time.sleep(3600)
        if self._fires("crash", self.crash_at_step, step):
            raise RuntimeError(f"injected crash at step {step} (TRM_TEST_CRASH_AT_STEP)")
        if step == self.stop_at_step:
            os.kill(os.getpid(), signal.SIGTERM)
        if step == self.nan_at_step:
            import torch
            with torch.no_grad():
                next(model.parameters()).view(-1)[0] = float("nan")

    def checkpoint_writes(self, step: int) -> Callable[[int], None] | None:
        """Slow the checkpoint of ``step`` down, per byte written: it widens the window in which a kill or a
        signal lands mid-write. None (no slowing) unless asked for."""
        at, per_mb = self.slow_checkpoint
        if not per_mb or at not in (step, -1):
            return None
        return lambda size: time.sleep(per_mb * max(1, size) / (1 << 20))

    def after_supervision_step(self) -> None:
        if self.sup_step_sleep_s:
            time.sleep(self.sup_step_sleep_s)

    def after_eval_batch(self) -> None:
        if self.eval_batch_sleep_s:
            time.sleep(self.eval_batch_sleep_s)

    def before_trial(self, micro_batch: int) -> None:
        if self.trial_crash_micro_batch and self.trial_crash_micro_batch == micro_batch:
            raise SystemExit(70)  # this candidate's trial dies as a crashing process would
