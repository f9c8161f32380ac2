"""Fault injection for the test suite, driven by ``TRM_TEST_*`` environment variables.

Real failures are hard to time in a test: these hooks make the real worker hang or crash at a chosen
step so the watchdog, the exit codes and the supervisor can be tested end to end. Unset, they cost one
integer comparison per step.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Hooks:
    stall_at_step: int = 0   # TRM_TEST_STALL_AT_STEP: sleep forever inside this step
    crash_at_step: int = 0   # TRM_TEST_CRASH_AT_STEP: raise inside this step
    step_sleep_s: float = 0  # TRM_TEST_STEP_SLEEP_S: slow every step down (long-step heartbeats)

    def before_step(self, step: int) -> None:
        if self.step_sleep_s:
            time.sleep(self.step_sleep_s)
        if step == self.stall_at_step:
            while True:
                time.sleep(3600)
        if step == self.crash_at_step:
            raise RuntimeError(f"injected crash at step {step} (TRM_TEST_CRASH_AT_STEP)")


def load() -> Hooks:
    env = os.environ
    return Hooks(int(env.get("TRM_TEST_STALL_AT_STEP", 0) or 0), int(env.get("TRM_TEST_CRASH_AT_STEP", 0) or 0),
                 float(env.get("TRM_TEST_STEP_SLEEP_S", 0) or 0))
