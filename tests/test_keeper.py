"""The keeper: one process per run that supervises it whether or not a front end is open, and front ends
that are its clients. Real processes and real signals throughout."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from trm_core.rundir import layout
from trm_core.rundir.identity import live_keeper, read_identity

from helpers import cli, cli_run, events, kill_worker, wait_for, worker_env

pytestmark = pytest.mark.process
SLOW = {"TRM_TEST_STEP_SLEEP_S": 0.05}
FAST_RESTART = ["--set", "supervisor.restart_backoff_s=0.2", "--set", "train.max_steps=100000"]


def detach(run_dir: Path, micro_args: list[str], *extra: str) -> subprocess.CompletedProcess:
    return cli_run("--detach", "--run-dir", str(run_dir), *micro_args, *FAST_RESTART, *extra, **SLOW)


def worker_pids(run_dir: Path) -> list[int]:
    """Every live worker process of this run (by its command line), to prove there is only ever one."""
    return [p.pid for p in psutil.process_iter(["cmdline"])
            if "trm_core.worker" in " ".join(p.info["cmdline"] or []) and str(run_dir) in " ".join(p.info["cmdline"])]


def steps(run_dir: Path) -> int:
    return len(events(run_dir, "step"))


def test_detach_returns_at_once_and_the_keeper_restarts_a_killed_worker(tmp_path: Path, micro_args: list[str]) -> None:
    """No front end at all: kill -9 the worker and the keeper restarts it from the last checkpoint."""
    run_dir = tmp_path / "run"
    t0 = time.monotonic()
    started = detach(run_dir, micro_args)
    took = time.monotonic() - t0
    try:
        assert started.returncode == 0, started.stderr
        # at once: it waits for no step (under 1 s alone; 5 s leaves room for the suite's other workers)
        assert took < 5.0 and "keeper pid" in started.stdout and "trm-tui stop --run-dir" in started.stdout
        wait_for(lambda: len(events(run_dir, "checkpoint")) >= 1 and steps(run_dir) >= 6, what="steps")
        first = read_identity(run_dir)
        os.kill(first.pid, signal.SIGKILL)
        wait_for(lambda: events(run_dir, "restart"), what="the keeper's restart")
        wait_for(lambda: len(events(run_dir, "run_start")) == 2, what="the relaunched worker")
        resumed_from = events(run_dir, "run_start")[-1]["resumed_from"]
        assert resumed_from == events(run_dir, "checkpoint")[-1]["step"] or resumed_from is not None
        seen = steps(run_dir)
        wait_for(lambda: steps(run_dir) > seen + 3, what="steps after the restart")
        assert len(worker_pids(run_dir)) == 1
        status = json.loads(cli_run("status", "--run-dir", str(run_dir), "--json").stdout)
        assert status["state"] == "running" and status["restarts"] == 1
        assert "restart: the worker failed" in dashboard_events(run_dir)  # a dashboard opened afterwards
    finally:
        kill_worker(run_dir)


def dashboard_events(run_dir: Path) -> str:
    """The events pane of a dashboard opened on ``run_dir`` (attached through its keeper), as text."""
    import asyncio

    from trm_core.config import SupervisorConfig
    from trm_core.telemetry import GpuProbe
    from trm_tui.dashboard.dashboard_app import Dashboard
    from fake_nvml import FakeNvml
    app = Dashboard(run_dir, [], SupervisorConfig(), gpu_probe=GpuProbe(loader=lambda: FakeNvml([])))
    shown: list[str] = []

    async def scenario() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            for _ in range(100):
                await pilot.pause(0.1)
                if app.view.events and app.client is not None:
                    break
            shown.extend(line.text for line in app.view.events)
            await pilot.press("q")
    asyncio.run(scenario())
    return "\n".join(shown)


def test_a_killed_keeper_is_replaced_by_the_next_client_and_adopts_the_worker(tmp_path: Path,
                                                                             micro_args: list[str]) -> None:
    run_dir = tmp_path / "run"
    try:
        assert detach(run_dir, micro_args).returncode == 0
        wait_for(lambda: steps(run_dir) >= 4, what="steps")
        worker = read_identity(run_dir)
        os.kill(live_keeper(run_dir).pid, signal.SIGKILL)
        wait_for(lambda: live_keeper(run_dir) is None, what="the keeper to die")
        shown = cli_run("status", "--run-dir", str(run_dir))  # a reading command: it says, it starts nothing
        assert f"the run's keeper is gone: worker pid {worker.pid} trains unsupervised" in shown.stderr
        assert f"trm-tui adopt --run-dir {run_dir}" in shown.stderr
        time.sleep(1.0)
        assert live_keeper(run_dir) is None and len(events(run_dir, "keeper_start")) == 1
        adopted_now = cli_run("adopt", "--run-dir", str(run_dir))
        assert adopted_now.returncode == 0, adopted_now.stderr
        assert f"starting a new one that adopts worker pid {worker.pid}" in adopted_now.stdout
        wait_for(lambda: live_keeper(run_dir) is not None, what="a new keeper")
        again = cli_run("adopt", "--run-dir", str(run_dir))
        assert "nothing to adopt: keeper pid" in again.stdout
        adopted = events(run_dir, "keeper_start")[-1]
        assert adopted["adopted"] == worker.pid
        assert worker_pids(run_dir) == [worker.pid]  # adopted, never a second worker
        os.kill(worker.pid, signal.SIGKILL)  # a later crash is restarted by the new keeper
        wait_for(lambda: events(run_dir, "restart"), what="a restart by the new keeper")
        wait_for(lambda: len(worker_pids(run_dir)) == 1 and read_identity(run_dir).pid != worker.pid
                 and read_identity(run_dir).is_alive(), what="the relaunched worker")
    finally:
        kill_worker(run_dir)


def test_one_crash_with_three_front_ends_is_one_restart(tmp_path: Path, micro_args: list[str]) -> None:
    run_dir = tmp_path / "run"
    once = tmp_path / "once"
    once.mkdir()
    args = ("--no-ui", "--run-dir", str(run_dir), *micro_args, "--set", "train.max_steps=30",
            "--set", "supervisor.restart_backoff_s=0.2")
    fronts = [cli(*args, TRM_TEST_CRASH_AT_STEP=12, TRM_TEST_ONCE_DIR=once, **SLOW)]
    try:
        wait_for(lambda: steps(run_dir) >= 2, what="steps")
        fronts += [cli(*args), cli(*args)]
        outs = [f.communicate(timeout=180) for f in fronts]
        assert [f.returncode for f in fronts] == [0, 0, 0], [o[1] for o in outs]
        assert len(events(run_dir, "restart")) == 1
        assert all("restart: the worker failed after step 11" in out for out, _ in outs)
        assert events(run_dir, "run_end")[-1]["status"] == "completed"
    finally:
        for f in fronts:
            if f.poll() is None:
                f.kill()
        kill_worker(run_dir)


def test_an_attached_front_end_stops_watching_on_ctrl_c_and_the_run_goes_on(tmp_path: Path,
                                                                            micro_args: list[str]) -> None:
    run_dir = tmp_path / "run"
    try:
        assert detach(run_dir, micro_args).returncode == 0
        wait_for(lambda: steps(run_dir) >= 3, what="steps")
        watcher = cli("--no-ui", "--run-dir", str(run_dir))
        wait_for(lambda: steps(run_dir) >= 8, what="more steps")
        time.sleep(1)
        watcher.send_signal(signal.SIGINT)
        out, err = watcher.communicate(timeout=30)
        assert watcher.returncode == 0, err
        assert "attached to the running worker" in out and "stopped watching; the run goes on" in out
        seen = steps(run_dir)
        wait_for(lambda: steps(run_dir) > seen + 3, what="the run to keep stepping")
        assert events(run_dir, "run_end") == []
    finally:
        kill_worker(run_dir)


@pytest.mark.parametrize("sig, stops", [(signal.SIGTERM, True), (signal.SIGHUP, False)])
def test_signals_to_the_front_end_that_started_the_run(tmp_path: Path, micro_args: list[str], sig: int,
                                                       stops: bool) -> None:
    """SIGTERM (timeout, kill, systemctl stop) stops the run it started, with a checkpoint; SIGHUP (the
    terminal went away) never stops training."""
    run_dir = tmp_path / "run"
    front = cli("--no-ui", "--run-dir", str(run_dir), *micro_args, "--set", "train.max_steps=100000", **SLOW)
    try:
        wait_for(lambda: steps(run_dir) >= 4, what="steps")
        front.send_signal(sig)
        front.communicate(timeout=60)
        assert front.returncode == 0
        if stops:
            wait_for(lambda: events(run_dir, "keeper_end"), what="the end of supervision")
            end = events(run_dir, "run_end")[-1]
            assert end["status"] == "stopped" and events(run_dir, "checkpoint")[-1]["step"] == end["step"]
        else:
            seen = steps(run_dir)
            wait_for(lambda: steps(run_dir) > seen + 3, what="the run to keep stepping")
            assert events(run_dir, "run_end") == []
    finally:
        kill_worker(run_dir)


def test_json_is_pure_and_a_closed_pipe_is_quiet(tmp_path: Path, micro_args: list[str]) -> None:
    run_dir = tmp_path / "run"
    env = worker_env(**SLOW)
    launch = cli_run("--no-ui", "--json", "--run-dir", str(run_dir), *micro_args, "--set", "train.max_steps=8")
    assert launch.returncode == 0, launch.stderr
    assert [json.loads(line) for line in launch.stdout.splitlines()]  # every line is JSON
    try:
        assert detach(tmp_path / "r2", micro_args).returncode == 0
        wait_for(lambda: steps(tmp_path / "r2") >= 2, what="steps")
        attach = cli("--no-ui", "--json", "--run-dir", str(tmp_path / "r2"))
        time.sleep(3)
        attach.send_signal(signal.SIGINT)
        out, err = attach.communicate(timeout=30)
        lines = out.splitlines()
        assert lines and [json.loads(line) for line in lines] and "attached to the running worker" in err
        for argv in (["--no-ui", "--run-dir", str(tmp_path / "r2")], ["status", "--run-dir", str(tmp_path / "r2")]):
            piped = subprocess.run(f"{sys.executable} -m trm_tui.cli {' '.join(argv)} | head -2", shell=True,
                                   capture_output=True, text=True, env=env, timeout=60)
            assert piped.returncode == 0 and "Traceback" not in piped.stderr and "Error" not in piped.stderr, piped.stderr
            assert len(piped.stdout.splitlines()) == 2
        seen = steps(tmp_path / "r2")
        wait_for(lambda: steps(tmp_path / "r2") > seen + 3, what="the run to be unaffected")
    finally:
        kill_worker(tmp_path / "r2")


def test_a_kill_on_request_is_recorded_as_such(tmp_path: Path, micro_args: list[str]) -> None:
    """trm-tui stop --force under a keeper: status says stopped, and the log says the user killed it."""
    run_dir = tmp_path / "run"
    try:
        assert detach(run_dir, micro_args).returncode == 0
        wait_for(lambda: steps(run_dir) >= 4, what="steps")
        # a second start on the running run attaches, and says the flags that would have changed it were not applied
        again = cli_run("--detach", "--run-dir", str(run_dir), "--set", "train.learning_rate=0.1")
        assert again.returncode == 0 and "already running" in again.stderr and "--set not applied" in again.stderr
        assert cli_run("stop", "--force", "--run-dir", str(run_dir)).returncode == 0
        wait_for(lambda: events(run_dir, "keeper_end"), what="the end of supervision")
        end = events(run_dir, "run_end")[-1]
        assert end["status"] == "stopped" and end["reason"] == "killed on request" and end["forced"] is True
        assert events(run_dir, "restart") == []
        status = json.loads(cli_run("status", "--run-dir", str(run_dir), "--json").stdout)
        assert status["state"] == "stopped" and status["reason"] == "killed on request"
    finally:
        kill_worker(run_dir)


def test_commands_are_answered_for_every_client_to_see(tmp_path: Path, micro_args: list[str]) -> None:
    """A stop sent through the keeper's inbox is acknowledged in the log; a command it cannot act on is
    refused with the reason."""
    from trm_core.control import commands
    run_dir = tmp_path / "run"
    try:
        assert detach(run_dir, micro_args).returncode == 0
        wait_for(lambda: steps(run_dir) >= 3, what="steps")
        refused = commands.answer(run_dir, commands.send(run_dir, "cancel_restart", "test"), timeout_s=10)
        assert refused is not None and not refused.accepted and refused.reason == "no restart is pending"
        ack = commands.answer(run_dir, commands.send(run_dir, "stop", "test"), timeout_s=10)
        assert ack is not None and ack.accepted and "checkpoint" in ack.reason
        wait_for(lambda: events(run_dir, "keeper_end"), what="the end of supervision")
        assert events(run_dir, "run_end")[-1]["status"] == "stopped"
        assert not (run_dir / layout.COMMANDS).exists() or list((run_dir / layout.COMMANDS).iterdir()) == []
    finally:
        kill_worker(run_dir)


def alert_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_alerts_tell_someone_once_per_kind_and_never_disturb_training(tmp_path: Path, micro_args: list[str]) -> None:
    """An alert command that appends its stdin to a file: one line for the injected stall, one for the
    crash, one for the completion; a second crash within min_interval_s sends nothing more."""
    run_dir, sink, once = tmp_path / "run", tmp_path / "alerts.jsonl", tmp_path / "once"
    once.mkdir()
    alerts = ["--set", f"alerts.command='cat >> {sink}; echo \"$TRM_ALERT_KIND $TRM_STEP\" >> {sink}.env'",
              "--set", "alerts.min_interval_s=3600", "--set", "train.step_timeout_s=1.5",
              "--set", "supervisor.restart_backoff_s=0.2", "--set", "supervisor.max_restarts=5"]
    front = cli("--no-ui", "--run-dir", str(run_dir), *micro_args, *alerts, "--set", "train.max_steps=40",
                TRM_TEST_CRASH_AT_STEP=5, TRM_TEST_STALL_AT_STEP=10, TRM_TEST_ONCE_DIR=once, **SLOW)
    try:
        wait_for(lambda: len(events(run_dir, "run_start")) == 3 and steps(run_dir) >= 12, timeout=120,
                 what="the crash and the stall restarted")
        os.kill(read_identity(run_dir).pid, signal.SIGKILL)  # a second crash, within the rate limit
        out, err = front.communicate(timeout=180)
        assert front.returncode == 0, err
    finally:
        kill_worker(run_dir)
    wait_for(lambda: len(alert_lines(sink)) >= 3, what="the alerts on disk")
    kinds = [a["kind"] for a in alert_lines(sink)]
    assert sorted(kinds) == ["completed", "crashed", "stalled"], kinds
    assert len(events(run_dir, "restart")) == 3  # two crashes and a stall restarted; one crash alerted
    sent = {a["kind"]: a for a in alert_lines(sink)}
    assert sent["stalled"]["trigger"]["event"] == "stall" and sent["completed"]["step"] == 40
    assert "completed 40" in (tmp_path / "alerts.jsonl.env").read_text()
    assert "alert sent (crashed)" in out


def test_a_hanging_alert_command_is_killed_and_training_goes_on(tmp_path: Path, micro_args: list[str]) -> None:
    run_dir = tmp_path / "run"
    result = cli_run("--no-ui", "--run-dir", str(run_dir), *micro_args, "--set", "train.max_steps=12",
                     "--set", f"alerts.command='sleep 30 # {tmp_path}'", "--set", "alerts.timeout_s=1",
                     timeout=120)
    try:
        assert result.returncode == 0, result.stderr
        assert events(run_dir, "run_end")[-1]["status"] == "completed"
        killed = "alert completed: the command ran over alerts.timeout_s = 1s and was killed"
        wait_for(lambda: any(killed in w["message"] for w in events(run_dir, "warning")), timeout=10,
                 what="the warning (it follows keeper_end: the keeper waits for its last alert)")
        alert_cmd = f"sleep 30 # {tmp_path}"
        shells = [p for p in psutil.process_iter(["cmdline"]) if (p.info["cmdline"] or [])[-1:] == [alert_cmd]]
        assert not shells  # the command's shell was killed with its process group
    finally:
        kill_worker(run_dir)


@pytest.mark.skipif(__import__("shutil").which("tmux") is None, reason="tmux is not installed")
@pytest.mark.tmux
@pytest.mark.slow
def test_two_dashboards_and_a_headless_front_end_show_the_same_truth(tmp_path: Path, micro_args: list[str]) -> None:
    """Stop from one dashboard: the other and the headless front end show it within seconds; resume from the
    other: both show RUNNING; auto-tune from the first: the second shows TUNING and says why r does not act."""
    from helpers import Terminal
    run_dir = tmp_path / "run"
    trials = ["--set", "autotune.warmup_steps=1", "--set", "autotune.measure_steps=2",
              "--set", "autotune.max_seconds=120"]
    one = Terminal(["--run-dir", str(run_dir), *micro_args, *trials, "--set", "train.max_steps=100000"],
                   size=(100, 30), **SLOW)
    two = headless = None
    try:
        wait_for(lambda: "RUNNING" in one.screen() and steps(run_dir) >= 3, timeout=120, what="dashboard one")
        two = Terminal(["--run-dir", str(run_dir)], size=(100, 30), **SLOW)
        headless = cli("--no-ui", "--run-dir", str(run_dir))
        wait_for(lambda: "RUNNING" in two.screen(), what="dashboard two attached")
        one.keys("s")
        t0 = time.monotonic()
        wait_for(lambda: "STOPPED" in one.screen() and "STOPPED" in two.screen(), timeout=30,
                 what="both dashboards STOPPED")
        assert time.monotonic() - t0 < 10
        out, err = headless.communicate(timeout=30)
        assert headless.returncode == 0 and "run ended: stopped" in out, err
        two.keys("r")
        wait_for(lambda: "RUNNING" in one.screen() and "RUNNING" in two.screen(), timeout=60,
                 what="both dashboards RUNNING after the resume from the second")
        wait_for(lambda: steps(run_dir) >= 3 + len(events(run_dir, "run_start")), what="steps after the resume")
        one.keys("a")
        wait_for(lambda: events(run_dir, "autotune_trial"), timeout=120, what="a trial")
        wait_for(lambda: "TUNING" in two.screen(), timeout=10, what="TUNING on the second dashboard")
        two.keys("r")
        try:
            wait_for(lambda: "busy: an auto-tune search" in " ".join(two.screen().split()), timeout=10,
                     what="the reason r does not act")
        except AssertionError:
            (tmp_path / "screen.txt").write_text(two.screen())
            raise
        assert len(events(run_dir, "keeper_start")) == 2  # r in the second window started nothing
        wait_for(lambda: events(run_dir, "autotune_result"), timeout=180, what="the search's result")
        wait_for(lambda: "RUNNING" in one.screen() and "RUNNING" in two.screen(), timeout=60,
                 what="both dashboards RUNNING after the search")
        one.keys("q")
        two.keys("q")
        wait_for(lambda: "EXIT=0" in one.screen() and "EXIT=0" in two.screen(), what="both dashboards to quit")
        assert "comebackwith:trm-tui--run-dir" in "".join(one.screen().split())  # q says how to return (wrapped)
        assert len(worker_pids(run_dir)) == 1
    finally:
        for term in (one, two):
            if term is not None:
                term.close()
        if headless is not None and headless.poll() is None:
            headless.kill()
        kill_worker(run_dir)


@pytest.mark.process
def test_a_start_right_after_a_keeper_ended_gets_a_keeper_of_its_own(tmp_path: Path, micro_args: list[str]) -> None:
    """A keeper lingers after its keeper_end while its last alert runs: a resume asked for in that moment (the
    dashboard's r queued behind a stop) waits for it to go and starts its own, instead of attaching to it."""
    run_dir = tmp_path / "run"
    alert = ["--set", f"alerts.command='sleep 3 # {tmp_path}'", "--set", "alerts.on=['completed']"]
    first = cli_run("--no-ui", "--run-dir", str(run_dir), *micro_args, *alert, "--set", "train.max_steps=4")
    assert first.returncode == 0, first.stdout + first.stderr
    assert events(run_dir, "keeper_end") and live_keeper(run_dir) is not None  # ended, and still there (alerting)
    again = cli_run("--no-ui", "--run-dir", str(run_dir), "--resume", "--set", "train.max_steps=6")
    assert again.returncode == 0, again.stdout + again.stderr
    assert [e["resumed_from"] for e in events(run_dir, "run_start")] == [None, 4]
    assert [e["step"] for e in events(run_dir, "step")][-1] == 6 and len(events(run_dir, "keeper_start")) == 2


@pytest.mark.process
def test_a_stop_racing_a_start_reaches_it(tmp_path: Path, micro_args: list[str]) -> None:
    """A stop sent a moment after a resume, before its keeper exists, waits for the start and stops the run
    through its keeper: the run does not train on, and the stop says what it did."""
    run_dir = tmp_path / "run"
    first = cli_run("--no-ui", "--run-dir", str(run_dir), *micro_args, "--set", "train.max_steps=4")
    assert first.returncode == 0, first.stdout + first.stderr
    wait_for(lambda: live_keeper(run_dir) is None, what="the first keeper to go")
    start = cli("--detach", "--resume", "--run-dir", str(run_dir), "--set", "train.max_steps=100000", **SLOW)
    try:
        time.sleep(0.1)  # the start is importing: no keeper, no worker yet
        stop = cli_run("stop", "--run-dir", str(run_dir))
        assert stop.returncode == 0, stop.stdout + stop.stderr
        assert "start is under way" in stop.stdout and "the run is stopped" in stop.stdout, stop.stdout
        start.wait(30)
        assert read_identity(run_dir) is None or not read_identity(run_dir).is_alive()
        wait_for(lambda: live_keeper(run_dir) is None, what="the keeper to end")
        ends = events(run_dir, "run_end")
        assert len(ends) == 2 and ends[-1]["status"] == "stopped" and ends[-1]["step"] < 100, ends
    finally:
        cli_run("stop", "--force", "--run-dir", str(run_dir))
        start.wait(30)
