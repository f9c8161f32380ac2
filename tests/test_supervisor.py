"""The supervisor and its commands as real processes: detach, attach, one worker per run, stop/resume,
auto-restart and its give-up rule, identity-checked signals, status."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from trm_core.rundir.identity import read_identity
from trm_core.rundir.layout import WORKER_IDENTITY

from helpers import Terminal, cli, cli_run, events, kill_worker, record, wait_for


def status(run_dir: Path) -> dict:
    result = cli_run("status", "--run-dir", str(run_dir), "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.process
def test_worker_survives_supervisor_kill_and_a_new_one_attaches(tmp_path: Path, micro_args: list[str]) -> None:
    run_dir = tmp_path / "run"
    first = cli("--no-ui", "--run-dir", str(run_dir), *micro_args, TRM_TEST_STEP_SLEEP_S=0.1)
    try:
        wait_for(lambda: len(events(run_dir, "step")) >= 2, what="steps")
        worker_pid = read_identity(run_dir).pid
        os.kill(first.pid, signal.SIGKILL)  # the supervisor dies, as with a dropped SSH session
        first.wait(timeout=10)
        seen = len(events(run_dir, "step"))
        wait_for(lambda: len(events(run_dir, "step")) >= seen + 3, what="the orphaned worker to keep stepping")
        assert psutil.pid_exists(worker_pid)
        second = cli("--no-ui", "--run-dir", str(run_dir))
        time.sleep(3)
        assert read_identity(run_dir).pid == worker_pid  # attached, not relaunched
        assert status(run_dir)["state"] == "running"
        stop = cli_run("stop", "--run-dir", str(run_dir))
        assert stop.returncode == 0 and f"worker pid {worker_pid}" in stop.stdout
        out, _ = second.communicate(timeout=60)
        assert second.returncode == 0
        assert f"attached to the running worker (pid {worker_pid})" in out
        assert "step " in out and "run ended: stopped" in out
    finally:
        kill_worker(run_dir)
    st = status(run_dir)
    assert st["state"] == "stopped" and st["checkpoint_step"] == st["step"]


@pytest.mark.process
def test_two_supervisors_at_once_give_one_worker(tmp_path: Path, micro_args: list[str]) -> None:
    run_dir = tmp_path / "run"
    args = ("--no-ui", "--run-dir", str(run_dir), *micro_args, "--set", "train.max_steps=30")
    a, b = cli(*args, TRM_TEST_STEP_SLEEP_S=0.05), cli(*args, TRM_TEST_STEP_SLEEP_S=0.05)
    try:
        out_a, err_a = a.communicate(timeout=120)
        out_b, err_b = b.communicate(timeout=120)
    finally:
        kill_worker(run_dir)
    assert (a.returncode, b.returncode) == (0, 0), (err_a, err_b)
    assert len(events(run_dir, "run_start")) == 1
    assert [e["step"] for e in events(run_dir, "step")] == list(range(1, 31))
    assert ("attached to the running worker" in out_a) != ("attached to the running worker" in out_b)


@pytest.mark.process
def test_stop_then_resume_through_the_cli(tmp_path: Path, micro_args: list[str]) -> None:
    run_dir = tmp_path / "run"
    runner = cli("--no-ui", "--run-dir", str(run_dir), *micro_args, "--set", "train.max_steps=40",
                 TRM_TEST_STEP_SLEEP_S=0.05)
    try:
        wait_for(lambda: len(events(run_dir, "step")) >= 5, what="steps")
        assert cli_run("stop", "--run-dir", str(run_dir)).returncode == 0
        assert runner.wait(timeout=60) == 0
        stopped_at = events(run_dir, "run_end")[-1]["step"]
        assert events(run_dir, "checkpoint")[-1]["step"] == stopped_at
        resumed = cli_run("--no-ui", "--run-dir", str(run_dir), "--resume", timeout=180)
        assert resumed.returncode == 0, resumed.stderr
    finally:
        kill_worker(run_dir)
    steps = [e["step"] for e in events(run_dir, "step")]
    assert steps == list(range(1, 41))  # continues at the next step, nothing repeated or skipped
    assert events(run_dir, "run_start")[-1]["resumed_from"] == stopped_at
    again = cli_run("--no-ui", "--run-dir", str(run_dir), "--resume")
    assert again.returncode == 0 and "is complete at step 40; nothing to resume" in again.stdout


@pytest.mark.process
def test_a_second_stop_says_at_once_that_one_is_under_way(tmp_path: Path, micro_args: list[str]) -> None:
    """A second trm-tui stop right after the first waited 10 s for a keeper on its way out, or would have
    sent a second signal (an exit without the checkpoint): it says at once what is under way."""
    import time

    run_dir = tmp_path / "run"
    runner = cli("--no-ui", "--run-dir", str(run_dir), *micro_args, "--set", "train.max_steps=400",
                 "--set", "train.checkpoint_every=1000", TRM_TEST_STEP_SLEEP_S=0.05,
                 TRM_TEST_SLOW_CHECKPOINT="-1:8")
    try:
        wait_for(lambda: len(events(run_dir, "step")) >= 3, what="steps")
        first = cli("stop", "--run-dir", str(run_dir))
        wait_for(lambda: (run_dir / "control" / "stop.request").exists() or (run_dir / "stop.request").exists(),
                 what="the first stop's request")
        t0 = time.monotonic()
        second = cli_run("stop", "--run-dir", str(run_dir))
        assert time.monotonic() - t0 < 5 and second.returncode == 0
        assert "a stop is already under way" in second.stdout and "trm-tui stop" in second.stdout
        out, _ = first.communicate(timeout=120)
        assert "stopped in" in out  # graceful: the second stop sent no second signal
        assert runner.wait(timeout=60) == 0
        assert events(run_dir, "checkpoint")[-1]["step"] == events(run_dir, "run_end")[-1]["step"]
    finally:
        kill_worker(run_dir)


@pytest.mark.process
def test_restarts_after_a_crash_and_after_a_stall(tmp_path: Path, micro_args: list[str]) -> None:
    run_dir = tmp_path / "run"
    once = tmp_path / "once"
    once.mkdir()
    result = cli_run("--no-ui", "--run-dir", str(run_dir), *micro_args, "--set", "train.max_steps=12",
                     "--set", "train.step_timeout_s=1.5", "--set", "supervisor.restart_backoff_s=0.2",
                     TRM_TEST_CRASH_AT_STEP=5, TRM_TEST_STALL_AT_STEP=10, TRM_TEST_ONCE_DIR=once, timeout=240)
    assert result.returncode == 0, result.stderr
    restarts = events(run_dir, "restart")
    assert [(r["failed_step"], r["exit_code"]) for r in restarts] == [(4, 1), (9, 3)]
    assert [r["delay_s"] for r in restarts] == [0.2, 0.4]  # exponential backoff
    assert "restart: the worker failed after step 4" in result.stdout
    assert [e["resumed_from"] for e in events(run_dir, "run_start")][1:] == [4, 8]
    assert events(run_dir, "run_end")[-1]["status"] == "completed"
    assert status(run_dir)["restarts"] == 2


@pytest.mark.process
def test_a_supervisor_that_attaches_inherits_the_restart_budget(tmp_path: Path, micro_args: list[str]) -> None:
    """max_restarts = 1: the first supervisor spends it on a crash and dies; the one that attaches must not
    restart the stall that follows (a fresh budget per front end would restart forever)."""
    run_dir = tmp_path / "run"
    once = tmp_path / "once"
    once.mkdir()
    settings = ["--set", "supervisor.max_restarts=1", "--set", "supervisor.restart_backoff_s=0.1",
                "--set", "train.step_timeout_s=1.5"]
    first = cli("--no-ui", "--run-dir", str(run_dir), *micro_args, *settings, TRM_TEST_CRASH_AT_STEP=3,
                TRM_TEST_STALL_AT_STEP=12, TRM_TEST_ONCE_DIR=once, TRM_TEST_STEP_SLEEP_S=0.05)
    try:
        wait_for(lambda: events(run_dir, "restart") and len(events(run_dir, "step")) >= 5, what="one restart")
        first.kill()
        first.wait()
        second = cli_run("--no-ui", "--run-dir", str(run_dir), *micro_args, *settings, timeout=120)
        assert "attached to the running worker" in second.stdout
        assert second.returncode == 1, second.stdout
        give_up = events(run_dir, "give_up")[-1]
        assert give_up["failed_step"] == 11 and "supervisor.max_restarts = 1" in give_up["message"]
        assert len(events(run_dir, "restart")) == 1
    finally:
        if first.poll() is None:
            first.kill()
        kill_worker(run_dir)


@pytest.mark.process
def test_gives_up_when_failing_again_at_the_same_step(tmp_path: Path, micro_args: list[str]) -> None:
    run_dir = tmp_path / "run"
    result = cli_run("--no-ui", "--run-dir", str(run_dir), *micro_args, "--set", "supervisor.restart_backoff_s=0.1",
                     TRM_TEST_CRASH_AT_STEP=6, timeout=180)
    assert result.returncode == 1
    assert len(events(run_dir, "restart")) == 1
    give_up = events(run_dir, "give_up")[-1]
    assert give_up["failed_step"] == 5 and "failed again at step 5" in give_up["message"]
    assert "giving up" in result.stdout
    assert status(run_dir)["state"] == "failed"


@pytest.mark.process
def test_a_recycled_pid_is_never_signalled(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        real_start = psutil.Process(bystander.pid).create_time()
        # the recorded worker had this pid but started earlier: the pid now belongs to someone else
        (run_dir / WORKER_IDENTITY).write_text(json.dumps(
            {"pid": bystander.pid, "create_time": real_start - 100, "host": os.uname().nodename, "started": 0}))
        result = cli_run("stop", "--run-dir", str(run_dir), "--force")
        assert result.returncode == 0 and "no worker is running" in result.stdout
        time.sleep(0.2)
        assert bystander.poll() is None  # still alive: never signalled
        assert status(run_dir)["pid"] is None
        # the control: with its true start time it is the worker, and it is stopped
        (run_dir / WORKER_IDENTITY).write_text(json.dumps(
            {"pid": bystander.pid, "create_time": real_start, "host": os.uname().nodename, "started": 0}))
        assert "killing worker pid" in cli_run("stop", "--run-dir", str(run_dir), "--force").stdout
        assert bystander.wait(timeout=10) == -signal.SIGKILL
    finally:
        bystander.kill()


@pytest.mark.process
def test_identity_survives_a_wall_clock_step_but_not_a_recycled_pid(tmp_path: Path) -> None:
    """A stepped clock moves the wall-clock start time psutil reports; the kernel's tick count does not."""
    from trm_core.rundir.identity import ProcessIdentity, start_ticks
    proc = subprocess.Popen(["sleep", "60"])
    try:
        ticks = start_ticks(proc.pid)
        assert ticks is not None and ticks > 0
        wall = psutil.Process(proc.pid).create_time()
        host = os.uname().nodename
        assert ProcessIdentity(proc.pid, wall - 3600, host, 0.0, ticks).is_alive()  # clock stepped an hour
        assert not ProcessIdentity(proc.pid, wall, host, 0.0, ticks - 1).is_alive()  # another process
        assert ProcessIdentity(proc.pid, wall, host, 0.0).is_alive()  # an old worker.json without ticks
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.process
def test_status_shows_a_frozen_worker_as_stalled_and_an_old_checkpoint_as_stale(tmp_path: Path, micro_args: list[str]) -> None:
    run_dir = tmp_path / "run"
    runner = cli("--no-ui", "--run-dir", str(run_dir), *micro_args, "--set", "supervisor.stall_after_s=1.5",
                 "--set", "train.checkpoint_every=2", TRM_TEST_STEP_SLEEP_S=0.05)
    try:
        wait_for(lambda: len(events(run_dir, "step")) >= 3, what="steps")
        st = status(run_dir)
        assert st["state"] == "running" and st["pid"] == read_identity(run_dir).pid and st["step"] >= 3
        assert not st["checkpoint_stale"]
        from trm_core.control.run_status import run_status
        later = run_status(run_dir, now=time.time() + 3600)  # an hour on and no new checkpoint: stale
        assert later.checkpoint_stale and later.state == "stalled"
        os.kill(st["pid"], signal.SIGSTOP)  # frozen: no steps, no heartbeats
        time.sleep(2.5)
        frozen = status(run_dir)
        assert frozen["state"] == "stalled" and "no step or heartbeat" in frozen["reason"]
        os.kill(st["pid"], signal.SIGCONT)
        wait_for(lambda: status(run_dir)["state"] == "running", what="running again")
    finally:
        kill_worker(run_dir)
        runner.kill()


@pytest.mark.process
def test_status_of_a_missing_run_and_from_checkpoint_only(tmp_path: Path, micro_args: list[str]) -> None:
    missing = cli_run("status", "--run-dir", str(tmp_path / "nothing"))  # a typo is said, not shown as a state
    assert missing.returncode == 2 and "no run in" in missing.stderr and "does not exist" in missing.stderr
    a_file = tmp_path / "a-file"
    a_file.write_text("not a run")
    assert cli_run("status", "--run-dir", str(a_file)).returncode == 2
    (tmp_path / "empty").mkdir()
    assert status(tmp_path / "empty")["state"] == "not started"
    run_dir = tmp_path / "run"
    assert cli_run("--no-ui", "--run-dir", str(run_dir), *micro_args, "--set", "train.max_steps=4").returncode == 0
    (run_dir / "events.jsonl").unlink()  # the log is gone: progress still comes from the checkpoint
    st = status(run_dir)
    assert st["step"] == 4 and st["checkpoint_step"] == 4 and st["loss"] is not None


@pytest.mark.process
@pytest.mark.tmux
def test_no_ui_in_a_real_terminal(tmp_path: Path, micro_args: list[str]) -> None:
    """Inside tmux (a real TTY): progress lines on screen, no escape codes of ours, Ctrl-C stops with a checkpoint."""
    import shutil as sh

    if sh.which("tmux") is None:
        import pytest
        pytest.skip("tmux is not installed")
    run_dir = tmp_path / "run"
    term = Terminal(["--no-ui", "--run-dir", str(run_dir), *micro_args], size=(160, 40), TRM_TEST_STEP_SLEEP_S=0.1)
    try:
        wait_for(lambda: "step " in term.screen() and "samples/s" in term.screen(), what="progress on screen")
        assert "\x1b[" not in term.screen(escapes=True)
        term.keys("C-c")
        wait_for(lambda: "EXIT=" in term.screen(), what="trm-tui to exit")
        text = term.screen()
        assert "stopping after this step" in text and "run ended: stopped" in text and "EXIT=0" in text
        assert "(Ctrl-C in trm-tui --no-ui)" in text  # what arrived, not the SIGTERM the worker got from it
    finally:
        term.close()
        kill_worker(run_dir)
    assert events(run_dir, "checkpoint")[-1]["step"] == events(run_dir, "run_end")[-1]["step"]
    assert events(run_dir, "run_end")[-1]["reason"] == "Ctrl-C in trm-tui --no-ui"
    assert any(line.startswith("run started, ") and " steps: pid " in line for line in text.splitlines())


@pytest.mark.process
def test_a_forced_stop_from_another_shell_is_not_undone_by_auto_restart(tmp_path: Path, micro_args: list[str]) -> None:
    run_dir = tmp_path / "run"
    runner = cli("--no-ui", "--run-dir", str(run_dir), *micro_args, "--set", "supervisor.restart_backoff_s=0.2",
                 TRM_TEST_STEP_SLEEP_S=0.05)
    try:
        wait_for(lambda: len(events(run_dir, "step")) >= 3, what="steps")
        killed = cli_run("stop", "--run-dir", str(run_dir), "--force")
        assert "killing worker pid" in killed.stdout
        assert runner.wait(timeout=60) == 0  # stopped on request: exit 0, no restart
    finally:
        kill_worker(run_dir)
        runner.kill()
    assert events(run_dir, "restart") == [] and len(events(run_dir, "run_start")) == 1
    # a later resume is a new request: it runs (and clears the stop)
    resumed = cli_run("--no-ui", "--run-dir", str(run_dir), "--resume", "--set", "train.max_steps=12")
    assert resumed.returncode == 0, resumed.stderr
    assert events(run_dir, "run_end")[-1]["status"] == "completed"


def test_the_inherited_budget_is_the_current_episodes(tmp_path: Path) -> None:
    """Restarts before a give_up or a launch by hand are not held against a supervisor that attaches."""
    from trm_core.rundir.events import EventWriter
    from trm_core.rundir.log_queries import restarts_in_log
    path = tmp_path / "events.jsonl"
    writer = EventWriter(path)
    for kind, fields in [("run_start", {}), ("restart", {"failed_step": 3}), ("run_start", {}),
                         ("give_up", {"failed_step": 5}),
                         ("run_start", {}),  # launched by hand after the give-up: a new episode
                         ("restart", {"failed_step": 9}), ("run_start", {})]:
        writer.emit(record(kind, **fields))
    writer.close()
    assert [step for _, step in restarts_in_log(path, 3600)] == [9]
    assert restarts_in_log(path, 3600, now=time.time() + 7200) == []  # outside the window


def _node_1_supervisor(root: Path, worker_code: str):
    """Node 1's supervisor of the two-node run at ``root``, just after node 1's launcher ended with
    ``worker_code`` (a real process that has exited)."""
    import sys

    from trm_core.config import Start, SupervisorConfig
    from trm_core.control.supervisor import Supervisor

    sup = Supervisor(Start(root, node=1, sets=("distributed.node_rank=1",)), SupervisorConfig())
    sup.proc = subprocess.Popen([sys.executable, "-c", worker_code])
    sup.proc.wait()
    return sup


@pytest.mark.process
def test_node_1_judges_its_end_by_the_runs_own_log_and_checkpoints(tmp_path: Path, micro_args: list[str]) -> None:
    """Node 1 of a two-node run whose rank 0 trained 8 steps (its log and checkpoints at the run's top; node 1's
    own log holds only its keeper's records). A kill on node 1 is recorded at the run's step; node 1's launcher
    out of disk waits for room for twice rank 0's newest checkpoint (never one in node 1's own dir)."""
    from trm_core.rundir import checkpoints as ckpt

    from helpers import run_worker

    root = tmp_path / "run"
    done = run_worker(root, [*micro_args, "--set", "train.max_steps=8", "--set", "train.eval_every=0"])
    assert done.returncode == 0, done.stderr
    node_1 = root / "nodes" / "node-1"
    node_1.mkdir(parents=True)

    killed = _node_1_supervisor(root, "import os, signal; os.kill(os.getpid(), 9)")
    killed.stopping = True  # the kill was asked for
    killed.poll()
    end = events(node_1, "run_end")[-1]
    assert (end["status"], end["reason"], end["step"]) == ("stopped", "killed on request", 8)
    assert killed.exit_code == 0

    full = _node_1_supervisor(root, "raise SystemExit(5)")
    newest = ckpt.latest_progress(root / "checkpoints")
    assert newest is not None and newest.bytes < 1 << 20
    full.poll()
    warning = events(node_1, "warning")[-1]["message"]
    assert warning.startswith("disk full at step 8:") and "once 1 MiB are free" in warning, warning
    assert full.space_needed == max(2 * newest.bytes, 1 << 20)
