"""The run's worker lock as a stopped worker leaves it: its main thread gone (the process reads as a zombie,
so no worker is alive) while its other threads still wind down and hold its open files, the lock among them.
An auto-tune search that stopped the run takes the lock next and must wait out that moment, not call the
run "locked by another process" (seen by hand: `trm-tui autotune` on a running tiny-preset run failed so)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trm_core.rundir.identity import RunClaimed, live_worker, lock_run

from helpers import REPO, wait_for, worker_env

pytestmark = pytest.mark.process

# a worker that claims the run, then ends its main thread first (pthread_exit) while a thread holds on
EXITING_WORKER = """
import ctypes, sys, threading, time
from pathlib import Path
from trm_core.rundir.identity import claim_run
claim_run(Path(sys.argv[1]))
threading.Thread(target=lambda: (time.sleep(float(sys.argv[2])), __import__("os")._exit(0))).start()
print("claimed", flush=True)
ctypes.CDLL(None).pthread_exit(None)
"""


def start_exiting_worker(run_dir: Path, linger_s: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", EXITING_WORKER, str(run_dir), str(linger_s)], cwd=REPO,
                            env=worker_env(), stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "claimed"
    wait_for(lambda: live_worker(run_dir) is None, timeout=10, what="the main thread to end")
    return proc


def test_a_worker_on_its_way_out_holds_the_lock_a_moment_and_the_next_holder_waits(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    proc = start_exiting_worker(run_dir, 30.0)
    with pytest.raises(RunClaimed, match="locked by another process"):
        lock_run(run_dir, settle_s=0.0)  # no live worker, and still locked: what the search used to meet
    proc.kill()
    proc.wait()

    proc = start_exiting_worker(run_dir, 1.5)
    t0 = time.monotonic()
    fd = lock_run(run_dir)  # waits for the last thread, then holds the lock
    assert 0.5 < time.monotonic() - t0 < 8
    proc.wait()
    with pytest.raises(RunClaimed):
        lock_run(run_dir, settle_s=0.2)  # held by this process now: another taker is refused
    os.close(fd)
