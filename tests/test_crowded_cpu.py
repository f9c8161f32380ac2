"""A CPU that other processes use too: a fresh start takes the cores they leave free, a run whose speed
collapses beside them says so naming auto-tune, and doctor says the machine is busy. The neighbour is real: a
process spinning on a core."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import events, run_worker


@pytest.fixture
def neighbour():
    """A process keeping one core busy for the length of the test."""
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    time.sleep(0.5)
    yield spin
    spin.kill()
    spin.wait()


@pytest.mark.process
def test_a_fresh_start_beside_a_busy_neighbour_takes_the_free_cores(tmp_path: Path, micro_args: list[str],
                                                                    neighbour: subprocess.Popen) -> None:
    run = tmp_path / "run"
    done = run_worker(run, [*micro_args, "--set", "train.threads=0", "--set", "train.max_steps=2"])
    assert done.returncode == 0, done.stderr
    assert events(run, "run_start")[0]["threads"] == 1
    warned = " ".join(e["message"] for e in events(run, "warning"))
    assert "train.threads = 0: other processes hold" in warned and "this run takes 1 thread" in warned, warned
    assert "threads = 1" in (run / "config.toml").read_text()  # a resume runs as this start did


def test_a_collapse_beside_a_busy_neighbour_is_said_naming_auto_tune(neighbour: subprocess.Popen) -> None:
    from trm_core.telemetry.host_stats import others_busy
    from trm_core.worker.cpu_share import CollapseWatch

    assert others_busy() >= 0.5  # what doctor's load check reads
    watch = CollapseWatch()
    said = [watch.see(rate, float(t)) for t, rate in enumerate([400, 420, 410, 60, 50, 55])]
    time.sleep(0.3)
    said.append(watch.see(50, 10.0))
    warnings = [s for s in said if s]
    assert len(warnings) == 1 and "from its best of 420.0" in warnings[0] and "auto-tune" in warnings[0], said
    assert watch.see(40, 11.0) is None  # said once a while, not at every log line
