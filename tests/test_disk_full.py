"""A full disk, on a real size-limited tmpfs: the worker says so in one line and exits with the code that makes
its keeper wait for space (no restarts burnt, no temp files left, older checkpoints intact); front ends keep
watching; freeing space lets the run go on by itself."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from trm_core.rundir.layout import EXIT_DISK_FULL

from helpers import cli, cli_run, events, kill_worker, terminate, wait_for


@pytest.fixture()
def small_disk(tmp_path: Path):
    """A 3 MiB tmpfs (root and a kernel that lets us mount one; else the test says why it cannot run)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a size-limited tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@pytest.mark.process
def test_a_full_disk_waits_for_space_then_goes_on(small_disk: Path, tmp_path: Path, micro_args: list[str]) -> None:
    run_dir = small_disk / "run"
    # checkpoints of about 0.9 MiB every 4 steps: the third or fourth one does not fit in 3 MiB
    sizes = ["--set", "model.dim=96", "--set", "model.seq_len=64", "--set", "train.checkpoint_every=4",
             "--set", "train.keep_checkpoints=3", "--set", "train.max_steps=40", "--set", "train.eval_every=0"]
    front = cli("--no-ui", "--run-dir", str(run_dir), *micro_args, *sizes)
    try:
        wait_for(lambda: any(e.get("kind") == "disk_full" for e in events(run_dir, "error")), timeout=120,
                 what="the worker's disk-full error")
        error = next(e for e in events(run_dir, "error") if e.get("kind") == "disk_full")
        assert "disk full: cannot write" in error["message"] and "MiB free" in error["message"], error
        wait_for(lambda: any("disk full at step" in (e.get("message") or "") for e in events(run_dir, "warning")),
                 timeout=30, what="the keeper saying it waits for space")
        end = events(run_dir, "run_end")[-1]
        assert (end["status"], end["exit_code"], end["reason"]) == ("failed", EXIT_DISK_FULL, "disk full")
        assert not list((run_dir / "checkpoints").glob(".*tmp*")), "a failed save left its temp file"
        assert not events(run_dir, "restart") and not events(run_dir, "give_up")  # waiting, not burning restarts
        status = cli_run("status", "--run-dir", str(run_dir))
        assert "WARNING     disk low:" in status.stdout, status.stdout
        time.sleep(2)
        assert front.poll() is None, front.stderr.read()  # the front end keeps watching
        subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)  # space is freed
        assert front.wait(timeout=120) == 0, front.stderr.read()
        restart = events(run_dir, "restart")[-1]
        assert restart["reason"] == "disk full" and "free now" in restart["message"]
        assert events(run_dir, "run_end")[-1]["status"] == "completed"
        out, err = front.communicate()
        assert "Traceback" not in err and "disk full" in out
    finally:
        terminate(front)
        kill_worker(run_dir)
