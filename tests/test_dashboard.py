"""The dashboard: Textual's Pilot against a real worker, NVML scenarios faked at the pynvml boundary,
and the real program in a real terminal (tmux)."""

from __future__ import annotations

import asyncio
import io
import re
import shutil
import time
from pathlib import Path

import pytest
from rich.console import Console

from trm_core.config import SupervisorConfig
from trm_core.rundir.identity import read_identity
from trm_core.telemetry import GpuProbe
from trm_tui.dashboard.dashboard_app import Dashboard
from trm_tui.dashboard.widgets import EventsPane, GpuPanel, HeaderBar

from helpers import Terminal, events, kill_worker, wait_for, worker_env
from fake_nvml import FakeNvml, NVMLError_NotSupported, h100


def text_of(widget) -> str:
    """What a panel shows, as plain text."""
    console = Console(width=100, file=io.StringIO(), record=True, color_system=None)
    console.print(widget.content)
    return console.export_text()


async def until(pilot, predicate, timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await pilot.pause(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture()
def slow_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    env = worker_env(TRM_TEST_STEP_SLEEP_S=0.05)
    for key in ("PYTHONPATH", "TRM_TEST_STEP_SLEEP_S"):
        monkeypatch.setenv(key, env[key])


@pytest.mark.process
def test_keys_stop_resume_and_quit_with_a_real_worker(tmp_path: Path, micro_args: list[str], slow_steps) -> None:
    run_dir = tmp_path / "run"
    fake = FakeNvml([h100(procs=[]), h100(util=1, power_mw=NVMLError_NotSupported)])
    app = Dashboard(run_dir, micro_args, SupervisorConfig(), gpu_probe=GpuProbe(loader=lambda: fake))

    async def scenario() -> None:
        async with app.run_test(size=(100, 34)) as pilot:
            await until(pilot, lambda: app.view.step >= 3, what="steps on the dashboard")
            assert app.view.state == "running"
            await until(pilot, lambda: "RUNNING" in text_of(app.query_one(HeaderBar)), what="the header (1 s redraw)")
            assert app.check_action("resume", ()) is None  # no resume while running
            gpu_text = text_of(app.query_one(GpuPanel))
            assert "0 H100 80GB" in gpu_text and "1 H100 80GB" in gpu_text and "N/A" in gpu_text  # two GPUs, an unsupported power field
            await pilot.press("s")
            await until(pilot, lambda: app.view.state == "stopped", what="stopped")
            stopped_at = events(run_dir, "run_end")[-1]["step"]
            assert events(run_dir, "checkpoint")[-1]["step"] == stopped_at
            assert app.check_action("stop", ()) is None
            # resume unlocks once the old worker has exited, not merely written run_end
            await until(pilot, lambda: app.check_action("resume", ()) is True, what="resume enabled")
            assert app.client.exit_code == 0
            await pilot.press("r")
            await until(pilot, lambda: app.view.state == "running" and app.view.step > stopped_at + 2,
                        what="resumed steps")
            assert events(run_dir, "run_start")[-1]["resumed_from"] == stopped_at
            assert app.view.loss.count <= len(events(run_dir, "step"))  # every step once, none replayed
            starts = [line.text for line in app.view.events if line.text.startswith(("run started", "run resumed"))]
            assert len(starts) == 2, starts  # no history fed twice
            assert any(f"resumed from step {stopped_at}" in line.text for line in app.view.events)
            newest = lambda: app.view.events[-1].text  # noqa: E731
            await until(pilot, lambda: newest() in text_of(app.query_one(EventsPane)), what="the events pane")
            await pilot.press("l")  # the raw worker log
            await until(pilot, lambda: app.screen.__class__.__name__ == "LogScreen", what="the log screen")
            await pilot.press("escape")
            await pilot.press("K")  # force-kill asks first; "n" keeps the worker
            await until(pilot, lambda: app.screen.__class__.__name__ == "ConfirmKill", what="the confirmation")
            await pilot.press("n")
            await pilot.pause(0.5)
            assert read_identity(run_dir).is_alive() and app.view.state == "running"
            await pilot.press("q")
    try:
        asyncio.run(scenario())
        worker = read_identity(run_dir)
        assert worker is not None and worker.is_alive()  # q left training running
        seen = len(events(run_dir, "step"))
        wait_for(lambda: len(events(run_dir, "step")) > seen + 2, what="steps after the dashboard quit")
    finally:
        kill_worker(run_dir)


@pytest.mark.process
def test_no_gpu_and_no_library_are_shown_not_raised(tmp_path: Path) -> None:
    def missing():
        raise ImportError("No module named 'pynvml'")

    app = Dashboard(tmp_path / "nothing", ["--set", "model.dimm=1"], SupervisorConfig(),
                    gpu_probe=GpuProbe(loader=missing))

    async def scenario() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: "no NVIDIA GPU" in text_of(app.query_one(GpuPanel)), what="GPU panel")
            await until(pilot, lambda: app.view.state == "failed", what="the bad config to end supervision")
            await pilot.press("question_mark")
            await pilot.pause(0.2)
            assert app.screen.__class__.__name__ == "HelpScreen"
            await pilot.press("escape")
            await pilot.press("q")
    asyncio.run(scenario())


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
@pytest.mark.process
@pytest.mark.tmux
def test_dashboard_end_to_end_in_tmux(tmp_path: Path, micro_args: list[str]) -> None:
    run_dir = tmp_path / "run"
    term = Terminal(["--run-dir", str(run_dir), *micro_args], size=(80, 24),  # the smallest supported
                    TRM_TEST_STEP_SLEEP_S=0.05)

    def step_on_screen() -> int:
        for line in term.screen().splitlines():
            if "│ step" in line:
                return int(line.split("step", 1)[1].split("/")[0].replace(",", "").strip())
        return -1

    try:
        wait_for(lambda: "RUNNING" in term.screen() and step_on_screen() >= 2, what="the dashboard running")
        first = step_on_screen()
        wait_for(lambda: step_on_screen() > first + 2, what="steps advancing on screen")
        term.keys("s")
        wait_for(lambda: "STOPPED" in term.screen(), what="STOPPED")
        stopped_at = events(run_dir, "run_end")[-1]["step"]
        assert events(run_dir, "checkpoint")[-1]["step"] == stopped_at
        term.keys("r")
        wait_for(lambda: "RUNNING" in term.screen() and step_on_screen() > stopped_at, what="resumed steps on screen")
        assert events(run_dir, "run_start")[-1]["resumed_from"] == stopped_at
        term.keys("q")
        wait_for(lambda: "EXIT=0" in term.screen(), what="the dashboard to quit")
        seen = len(events(run_dir, "step"))
        wait_for(lambda: len(events(run_dir, "step")) > seen + 2, what="training to continue after quit")
    finally:
        term.close()
        kill_worker(run_dir)


def colour_codes(ansi: str) -> set[str]:
    """The colour parameters in a screen's SGR sequences: '38;5', '38;2' (256 / true colour), or a basic
    colour code ('31', '42', '97'...). Defaults (39, 49) and attributes (bold, reverse) are not colours."""
    found: set[str] = set()
    for params in re.findall(r"\x1b\[([0-9;]*)m", ansi):
        codes = [int(c) if c else 0 for c in params.split(";")]
        i = 0
        while i < len(codes):
            code = codes[i]
            if code in (38, 48) and i + 1 < len(codes):
                found.add(f"{code};{codes[i + 1]}")
                i += 3 if codes[i + 1] == 5 else 5
                continue
            if 30 <= code <= 37 or 40 <= code <= 47 or 90 <= code <= 97 or 100 <= code <= 107:
                found.add(str(code))
            i += 1
    return found


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
@pytest.mark.parametrize("terminal", ["NO_COLOR", "16 colours"])
@pytest.mark.process
@pytest.mark.tmux
def test_no_color_and_16_colour_terminals(tmp_path: Path, micro_args: list[str], terminal: str) -> None:
    """The real program in tmux: NO_COLOR gives no colour codes at all; a plain xterm gets only the 16
    basic colours, never 256-colour or true-colour codes."""
    run_dir = tmp_path / "run"
    mode = ({"NO_COLOR": 1, "TERM": "xterm-256color", "COLORTERM": "truecolor"} if terminal == "NO_COLOR"
            else {"TERM": "xterm", "COLORTERM": ""})
    with Terminal(["--run-dir", str(run_dir), *micro_args, "--set", "train.max_steps=6"], size=(80, 24),
                  **mode) as term:
        done = lambda text: "COMPLETED" in text and "│ step  6/6" in text  # noqa: E731
        wait_for(lambda: done(term.screen()), timeout=120, what="the completed run on screen")
        codes = colour_codes(term.screen(escapes=True))
        if terminal == "NO_COLOR":
            assert codes == set(), f"colour codes under NO_COLOR: {sorted(codes)}"
        else:
            assert codes and not {c for c in codes if ";" in c}, f"beyond 16 colours: {sorted(codes)}"
        term.keys("q")
        wait_for(lambda: "EXIT=0" in term.screen(), what="the dashboard to quit")


@pytest.mark.process
def test_the_dashboard_shows_what_other_clients_do_and_a_kill_as_a_kill(tmp_path: Path, micro_args: list[str],
                                                                         slow_steps) -> None:
    """K then y: the dashboard and status agree (stopped, killed on request); a resume and a stop from
    another shell show on this dashboard within a poll or two."""
    import json as json_mod

    from helpers import cli_run
    run_dir = tmp_path / "run"
    app = Dashboard(run_dir, micro_args + ["--set", "train.max_steps=100000"], SupervisorConfig(),
                    gpu_probe=GpuProbe(loader=lambda: FakeNvml([])))

    def status() -> dict:
        return json_mod.loads(cli_run("status", "--run-dir", str(run_dir), "--json").stdout)

    async def scenario() -> None:
        async with app.run_test(size=(100, 34)) as pilot:
            await until(pilot, lambda: app.view.step >= 3, what="steps on the dashboard")
            await pilot.press("K")
            await until(pilot, lambda: app.screen.__class__.__name__ == "ConfirmKill", what="the confirmation")
            await pilot.press("y")
            await until(pilot, lambda: app.view.state == "stopped", what="stopped after the kill")
            st = status()
            assert st["state"] == "stopped" and st["reason"] == "killed on request"
            assert events(run_dir, "run_end")[-1]["forced"] is True and events(run_dir, "restart") == []
            assert cli_run("--detach", "--run-dir", str(run_dir), "--resume").returncode == 0  # another shell
            await until(pilot, lambda: app.view.state == "running", timeout=60, what="the resume from elsewhere")
            assert app.check_action("resume", ()) is None and app.check_action("stop", ()) is True
            assert cli_run("stop", "--run-dir", str(run_dir)).returncode == 0  # and a stop from elsewhere
            await until(pilot, lambda: app.view.state == "stopped", timeout=60, what="the stop from elsewhere")
            await pilot.press("q")
    try:
        asyncio.run(scenario())
    finally:
        kill_worker(run_dir)


def test_the_log_screen_follows_the_worker_log(tmp_path: Path) -> None:
    """l shows the worker log live: lines written after it opened appear, a partial line only once whole."""
    from textual.app import App
    from textual.widgets import Log

    from trm_tui.dashboard.screens import LogScreen
    log_file = tmp_path / "worker.log"
    log_file.write_text("first line\n")

    class LogApp(App[None]):
        def on_mount(self) -> None:
            self.push_screen(LogScreen(log_file))

    app = LogApp()

    def shown() -> list[str]:
        return list(app.screen.query_one(Log).lines)

    async def scenario() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: "first line" in shown(), what="the log's existing lines")
            with open(log_file, "a") as fh:
                fh.write("written later\nhalf a li")
            await until(pilot, lambda: "written later" in shown(), timeout=5, what="a line written after opening")
            assert not any("half a li" in line for line in shown())
            with open(log_file, "a") as fh:
                fh.write("ne\n")
            await until(pilot, lambda: "half a line" in shown(), timeout=5, what="the line once whole")
    asyncio.run(scenario())


def test_a_legend_of_six_runs_takes_the_rows_it_needs() -> None:
    """Six runs compared: every run is named in the legend (over as many rows as it takes), none dropped."""
    from rich.text import Text

    from trm_tui.dashboard.widgets import with_legend

    names = [f"sweep-lr-{k}e-4-seed{k}" for k in range(6)]
    drawn = with_legend(Text("\n".join(["." * 60] * 10)), [(name, "*", "red") for name in names], 60).plain
    assert all(name in drawn for name in names) and all(len(line) <= 60 for line in drawn.splitlines())
