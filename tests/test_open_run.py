"""Any run, any state: ``trm-tui [--run-dir DIR]`` opens a run as it is, starts nothing unless asked, and keys
that cannot act now say why."""

from __future__ import annotations

import json

from pathlib import Path

import pytest

from trm_core.rundir.identity import live_keeper, live_worker
from trm_core.rundir.records import as_line
from trm_core.rundir.states import RunState
from trm_tui.dashboard.view import RunView

from helpers import Terminal, cli_run, events, kill_worker, record, run_worker, wait_for


def _finished(tmp_path: Path, micro_args: list[str], steps: int = 8, **faults: object) -> Path:
    run_dir = tmp_path / "run"
    result = run_worker(run_dir, micro_args + ["--set", f"train.max_steps={steps}"], **faults)
    assert result.returncode in (0, 1), result.stderr
    return run_dir


def _lines(run_dir: Path) -> int:
    return len(events(run_dir))


@pytest.mark.tmux
@pytest.mark.process
def test_a_completed_run_opens_with_its_curves_and_r_says_why_nothing_starts(tmp_path: Path,
                                                                            micro_args: list[str]) -> None:
    run_dir = _finished(tmp_path, micro_args)
    before = _lines(run_dir)
    with Terminal(["--run-dir", str(run_dir)], size=(80, 24)) as term:
        wait_for(lambda: "COMPLETED" in term.screen() and "│ step  8/8" in term.screen(), timeout=60,
                 what="the completed run on screen")
        assert "run ended: completed at step 8" in term.screen()
        term.keys("r")
        wait_for(lambda: "the run is complete; train it" in term.screen(), what="r saying why it cannot resume")
        term.keys("q")
        wait_for(lambda: "EXIT=0" in term.screen(), what="the dashboard to quit")
    assert _lines(run_dir) == before and live_keeper(run_dir) is None  # looking started nothing


@pytest.mark.tmux
@pytest.mark.process
def test_a_stopped_run_opens_stopped_and_r_resumes_it(tmp_path: Path, micro_args: list[str]) -> None:
    run_dir = _finished(tmp_path, micro_args, steps=16, TRM_TEST_STOP_AT_STEP=4)
    assert events(run_dir, "run_end")[-1]["status"] == "stopped"
    before = _lines(run_dir)
    term = Terminal(["--run-dir", str(run_dir)], size=(80, 24), TRM_TEST_STEP_SLEEP_S=0.3)
    try:
        wait_for(lambda: "STOPPED" in term.screen() and "│ step  4/16" in term.screen(), timeout=60,
                 what="the stopped run on screen")
        assert _lines(run_dir) == before and live_worker(run_dir) is None
        term.keys("s")  # nothing runs: the key says so instead of doing nothing silently
        wait_for(lambda: "nothing to stop: the run is stopped" in term.screen(), what="s saying why")
        term.keys("r")
        wait_for(lambda: "RUNNING" in term.screen(), timeout=60, what="the resumed run")
        assert events(run_dir, "run_start")[-1]["resumed_from"] == 4
        term.keys("s")
        wait_for(lambda: "STOPPING" in term.screen(), what="stopping")
        term.keys("s")
        wait_for(lambda: "already stopping" in term.screen(), what="a second s saying why")
        term.keys("r")  # asked while it stops: it waits for the worker to exit, then resumes
        wait_for(lambda: "resume waits for the worker to exit" in term.screen(), what="r saying it waits")
        wait_for(lambda: len(events(run_dir, "run_start")) == 3, timeout=60, what="the queued resume")
        term.keys("q")
        wait_for(lambda: "EXIT=0" in term.screen(), what="the dashboard to quit")
    finally:
        term.close()
        kill_worker(run_dir)


@pytest.mark.process
def test_headless_open_prints_how_it_ended_and_starts_nothing(tmp_path: Path, micro_args: list[str]) -> None:
    run_dir = _finished(tmp_path, micro_args, TRM_TEST_CRASH_AT_STEP=3)
    assert events(run_dir, "run_end")[-1]["status"] == "failed"
    before = _lines(run_dir)
    shown = cli_run("--no-ui", "--run-dir", str(run_dir))
    assert shown.returncode == 0, shown.stderr
    assert "state       failed" in shown.stdout and f"trm-tui --resume --run-dir {run_dir}" in shown.stdout
    # why it failed, at one step everywhere: the error row, the log's lines, status --json
    assert "error       in step 3: RuntimeError: injected crash at step 3 (TRM_TEST_CRASH_AT_STEP) (the " \
           f"traceback: {run_dir / 'worker.log'}" in shown.stdout
    status = json.loads(cli_run("status", "--json", "--run-dir", str(run_dir)).stdout)
    assert status["error_step"] == 3 and status["error"].startswith("RuntimeError: injected crash at step 3")
    from trm_core.rundir.records import parse
    from trm_tui.event_text import event_line
    lines = [event_line(parse(e)) for e in events(run_dir) if e["event"] in ("error", "run_end")]
    assert lines == ["error in step 3: RuntimeError: injected crash at step 3 (TRM_TEST_CRASH_AT_STEP)",
                     "run ended: failed after step 2 (RuntimeError)"]
    view = RunView("r")
    view.feed(events(run_dir), history=True)
    view.finish(1)
    assert any(a.startswith("FAILED in step 3: RuntimeError: injected crash") for a in view.alerts(0.0, 60.0, None, False))
    detached = cli_run("--detach", "--run-dir", str(run_dir))
    assert detached.returncode == 2 and "nothing to start: the run" in detached.stderr
    assert _lines(run_dir) == before and live_keeper(run_dir) is None
    # flags that describe a new run on a folder that holds one are still refused, naming the way out
    again = cli_run("--no-ui", "--run-dir", str(run_dir), *micro_args)
    assert again.returncode == 2 and "already holds a run; use --resume" in again.stderr


def test_a_history_ends_as_its_log_says() -> None:
    def ended(*evs) -> RunState:
        view = RunView("r")
        view.feed([as_line(e, float(t)) for t, e in enumerate(evs)], history=True)
        code = 0 if evs and evs[-1].event == "run_end" and evs[-1].status in ("completed", "stopped") else 1
        view.finish(code)
        return view.state

    start = record("run_start", total_steps=8, pid=5)
    assert ended(start, record("run_end", status="completed", step=8)) == RunState.COMPLETED
    assert ended(start, record("run_end", status="stopped", step=4)) == RunState.STOPPED
    assert ended(start, record("run_end", status="failed", step=4, reason="stalled")) == RunState.STALLED
    # stopped, resumed, then the worker died without a word: that is a failure, not the old "stopped"
    assert ended(start, record("run_end", status="stopped", step=4), start) == RunState.FAILED


@pytest.mark.process
def test_e_shows_every_event_the_three_line_pane_cannot(tmp_path: Path, micro_args: list[str]) -> None:
    import asyncio

    from textual.widgets import Log

    from trm_core.config import SupervisorConfig
    from trm_tui.dashboard.dashboard_app import Dashboard
    from trm_tui.dashboard.screens import EventsScreen

    run_dir = _finished(tmp_path, micro_args, steps=16)  # checkpoints and evals every 4 steps: 10 events

    async def screen_lines() -> list[str]:
        app = Dashboard(run_dir, None, SupervisorConfig())
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause(1.0)
            await pilot.press("e")
            await pilot.pause(0.5)
            assert isinstance(app.screen, EventsScreen)
            from textual.widgets import Label
            assert "← → scroll long lines" in str(app.screen.query_one(Label).render())  # long lines are cut
            return list(app.screen.query_one(Log).lines)
    lines = asyncio.run(screen_lines())
    assert len(lines) >= 10, lines
    assert "run started, 16 steps" in lines[0] and "run ended: completed at step 16" in lines[-1]


@pytest.mark.process
def test_under_no_color_keys_that_cannot_act_leave_the_footer(tmp_path: Path, micro_args: list[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Grey does not show without colour: there the footer lists only the keys that act now."""
    import asyncio

    from trm_core.config import SupervisorConfig
    from trm_tui.dashboard.dashboard_app import Dashboard

    run_dir = _finished(tmp_path, micro_args)

    async def checks(no_color: bool) -> dict[str, object]:
        if no_color:
            monkeypatch.setenv("NO_COLOR", "1")
        else:
            monkeypatch.delenv("NO_COLOR", raising=False)
        app = Dashboard(run_dir, None, SupervisorConfig())
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause(1.0)
            return {action: app.check_action(action, ()) for action in ("stop", "resume", "kill", "log", "quit_keep")}
    coloured, plain = asyncio.run(checks(False)), asyncio.run(checks(True))
    assert coloured == {"stop": None, "resume": None, "kill": None, "log": True, "quit_keep": True}  # greyed
    assert plain == {"stop": False, "resume": False, "kill": False, "log": True, "quit_keep": True}  # hidden


@pytest.mark.process
def test_t_shows_the_held_out_score_curve(tmp_path: Path, micro_args: list[str]) -> None:
    import asyncio

    from trm_core.config import SupervisorConfig
    from trm_tui.dashboard.dashboard_app import Dashboard
    from trm_tui.dashboard.widgets import Curve

    run_dir = _finished(tmp_path, micro_args, steps=16)  # evals every 4 steps: four points

    async def shown() -> tuple[str, str, int]:
        app = Dashboard(run_dir, None, SupervisorConfig())
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause(1.0)
            before = app.query_one("#speed-curve", Curve).shows
            await pilot.press("t")
            await pilot.pause(0.5)
            curve = app.query_one("#speed-curve", Curve)
            return before, str(curve.render()), app.view.eval_score_curve.count
    before, after, points = asyncio.run(shown())
    assert before == "samples/s" and "eval masked acc" in after and points == 4


@pytest.mark.process
def test_t_draws_the_target_score_across_the_eval_chart(tmp_path: Path, micro_args: list[str]) -> None:
    """A paper preset's score (train.target_score, named by train.target_name) is a level line on the eval chart,
    named in its legend and kept in view however far above the curve it is."""
    import asyncio

    from trm_core.config import SupervisorConfig
    from trm_tui.dashboard.dashboard_app import Dashboard
    from trm_tui.dashboard.widgets import Curve

    run_dir = _finished(tmp_path, micro_args + ["--set", "train.target_score=0.95", "--set", "train.target_name=paper"],
                        steps=16)

    async def shown() -> str:
        app = Dashboard(run_dir, None, SupervisorConfig())
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause(1.0)
            await pilot.press("t")
            await pilot.pause(0.5)
            return str(app.query_one("#speed-curve", Curve).render())
    chart = asyncio.run(shown())
    assert "─ paper 0.950" in chart
    level_rows = [line for line in chart.splitlines() if line.count("─") > 40]
    assert len(level_rows) == 1  # drawn across the plot, inside its y range


@pytest.mark.process
def test_node_1_of_a_finished_two_node_run_opens_with_rank_0s_curves_and_its_end(tmp_path: Path,
                                                                                  micro_args: list[str]) -> None:
    """Node N's dashboard: its keeper's log is its own, the run's steps and run_end are in rank 0's log at the
    run's top. Opened as it is, node 1 shows those (the run's curves, how it ended), not an empty failure."""
    import asyncio

    from trm_core.config import SupervisorConfig
    from trm_tui.dashboard.dashboard_app import Dashboard

    root = _finished(tmp_path, micro_args, steps=8)
    node_1 = root / "nodes" / "node-1"
    node_1.mkdir(parents=True)

    async def opened() -> tuple[int, int, RunState, bool]:
        app = Dashboard(node_1, None, SupervisorConfig())
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause(1.5)
            return app.view.step, len(app.view.loss), app.view.state, live_keeper(node_1) is None
    step, points, state, no_keeper = asyncio.run(opened())
    assert (step, state) == (8, RunState.COMPLETED)
    assert points >= 2 and no_keeper  # its loss curve, and looking started nothing


@pytest.mark.process
def test_a_corrupt_config_is_named_everywhere_and_r_refuses(tmp_path: Path, micro_args: list[str]) -> None:
    """A stopped run whose config.toml no longer reads: status, runs, the open-run hint and the dashboard say
    so, with the file and how to fix it; r and a refuse instead of starting a worker that fails (was:
    "stopped", a --resume hint, and r turned the header FAILED with the reason cut off)."""
    import asyncio

    from trm_core.config import SupervisorConfig
    from trm_tui.dashboard.dashboard_app import Dashboard
    from trm_tui.dashboard.widgets import EventsPane

    run_dir = _finished(tmp_path, micro_args)
    config = run_dir / "config.toml"
    config.write_text(config.read_text() + "\n[model\n")
    status = cli_run("status", "--run-dir", str(run_dir))
    assert status.returncode == 2  # scripts notice (it was 0)
    as_json = cli_run("status", "--json", "--run-dir", str(run_dir))
    assert as_json.returncode == 2 and "not valid TOML" in json.loads(as_json.stdout)["config_error"]
    assert f"CONFIG      corrupt: config file {config} is not valid TOML" in status.stdout
    assert f"trm-tui export config --run-dir {run_dir} --restore" in status.stdout
    opened = cli_run("--no-ui", "--run-dir", str(run_dir))
    assert "cannot be resumed until its config reads" in opened.stdout and "--resume" not in opened.stdout.split("CONFIG")[0]
    runs = cli_run("runs", "--root", str(tmp_path))
    assert "CORRUPT" in runs.stdout.splitlines()[1]

    async def press_r() -> tuple[list[str], str, int]:
        app = Dashboard(run_dir, None, SupervisorConfig())
        async with app.run_test(size=(120, 30)) as pilot:
            await pilot.pause(1.0)
            before = len(events(run_dir))
            await pilot.press("r")
            await pilot.pause(1.0)
            said = [str(n.message) for n in app._notifications]
            pane = str(app.query_one(EventsPane).render())
            return said, pane, len(events(run_dir)) - before
    said, pane, new_lines = asyncio.run(press_r())
    assert any(s.startswith("cannot resume: the run's config file") for s in said), said
    assert "CONFIG CORRUPT" in pane
    assert new_lines == 0  # nothing was started
    # the one command the fix names puts the started config back, keeps the broken file, and refuses twice
    broken = config.read_bytes()
    restored = cli_run("export", "config", "--run-dir", str(run_dir), "--restore")
    assert restored.returncode == 0, restored.stderr
    assert "restored" in restored.stdout and (run_dir / "config.toml.broken").read_bytes() == broken
    assert cli_run("status", "--run-dir", str(run_dir)).returncode == 0
    printed = cli_run("export", "config", "--run-dir", str(run_dir))
    assert printed.stdout == config.read_text()
    again = cli_run("export", "config", "--run-dir", str(run_dir), "--restore")
    assert again.returncode == 2 and "nothing to restore" in again.stderr


@pytest.mark.process
def test_at_80x24_every_figure_and_every_key_is_on_screen(tmp_path: Path, micro_args: list[str]) -> None:
    """The metrics panel keeps all eight figures on their own lines (short labels where long ones would wrap
    and push the last row out), and the footer holds every key, t and q included, inside 80 columns."""
    import asyncio

    from textual.widgets._footer import FooterKey

    from trm_core.config import SupervisorConfig
    from trm_tui.dashboard.dashboard_app import Dashboard
    from trm_tui.dashboard.widgets import MetricsPanel

    run_dir = _finished(tmp_path, micro_args, steps=8)

    async def shown() -> tuple[str, list[tuple[str, int]]]:
        app = Dashboard(run_dir, None, SupervisorConfig())
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause(1.0)
            panel = app.query_one(MetricsPanel)
            keys = [(k.key_display, k.region.right) for k in app.screen.query(FooterKey)]
            return str(panel.render()), keys
    metrics, keys = asyncio.run(shown())
    lines = metrics.splitlines()
    assert len(lines) == 4, metrics  # nothing wrapped
    for figure in ("loss", "lr", "eval", "gnorm", "halt", "sup", "acc", "mask"):
        assert any(f" {figure} " in f" {line} " for line in lines), (figure, metrics)
    assert [k for k, _ in keys] == ["s", "r", "a", "e", "l", "K", "R", "p", "t", "?", "q"], keys
    assert max(right for _, right in keys) <= 80


def test_the_preset_help_lists_every_built_in_preset() -> None:
    from trm_core.config import BUILTIN_PRESETS
    from trm_tui.cli.start_or_open import build_parser

    helped = " ".join(build_parser().format_help().split())
    assert "built in (each described in config.toml): " + ", ".join(BUILTIN_PRESETS) in helped


@pytest.mark.tmux
@pytest.mark.process
def test_r_passes_the_checks_every_start_passes(tmp_path: Path, micro_args: list[str], corpus: Path) -> None:
    """The dashboard's r goes through the same checks as trm-tui --resume: a stopped run whose corpus is gone
    is not resumed; r says why (doctor's failing line), and nothing starts."""
    import shutil

    own = tmp_path / "corpus"
    shutil.copytree(corpus, own)
    args = [a.replace(str(corpus), str(own)) for a in micro_args]
    run_dir = _finished(tmp_path, args, steps=16, TRM_TEST_STOP_AT_STEP=4)
    shutil.rmtree(own)
    before = _lines(run_dir)
    with Terminal(["--run-dir", str(run_dir)], size=(100, 30)) as term:
        wait_for(lambda: "STOPPED" in term.screen(), timeout=60, what="the stopped run on screen")
        seen: list[str] = []

        def said() -> bool:  # r again every few seconds: a key sent while a loaded machine still mounts the app
            if len(seen) % 150 == 0:  # may be dropped, as a user's would, who presses it again
                term.keys("r")
            seen.append(" ".join(term.screen().split()))
            return "not resumed: not started: 1 check(s) failed" in seen[-1] and \
                "FAIL dataset present data.paths" in seen[-1]
        try:
            wait_for(said, timeout=60, what="r saying why it does not resume")
        except AssertionError:
            raise AssertionError(seen[-1]) from None
        term.keys("q")
        wait_for(lambda: "EXIT=" in term.screen(), what="the dashboard to quit")
    assert _lines(run_dir) == before and live_keeper(run_dir) is None
