"""The faulthandler backstop of the watchdog (for hangs that hold the GIL) is re-armed at most every half
timeout: arming starts a C thread, and once a step it cost the tiny preset 0.2 ms a step. Its deadline then
stays at least 1.5 x timeout + 30 s after a phase began."""

from __future__ import annotations

import faulthandler
from pathlib import Path

import pytest

from trm_core.rundir.events import EventWriter
from trm_core.worker import watchdog as watchdog_mod
from trm_core.worker.watchdog import Watchdog


def test_the_backstop_is_rearmed_only_when_half_the_timeout_has_passed(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    armed: list[float] = []
    monkeypatch.setattr(watchdog_mod.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(watchdog_mod.faulthandler, "dump_traceback_later",
                        lambda timeout, exit: armed.append(timeout))
    dog = Watchdog(EventWriter(tmp_path / "events.jsonl"), timeout_s=100.0, heartbeat_s=1.0)
    for step in range(1, 200):  # 199 steps in 49.5 s: one arming
        dog.begin("step", step)
        dog.end()
        now[0] += 0.25
    assert armed == [230.0]
    now[0] += 1.0  # 50.5 s after the arming: the next phase re-arms
    dog.begin("step", 200)
    assert armed == [230.0, 230.0]
    dog.begin("eval", 200)
    for _ in range(60):  # an eval's batches re-arm it the same way, so a long eval never trips it
        now[0] += 1.0
        dog.progress(1, 2)
    assert len(armed) == 3
    faulthandler.cancel_dump_traceback_later()
