"""``trm-tui runs``: every run under a folder in one table (or JSON lines), whatever state each is in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import cli_run, events, run_worker


@pytest.mark.process
def test_runs_lists_each_run_with_its_state_and_figures(tmp_path: Path, micro_args: list[str]) -> None:
    root = tmp_path / "runs"
    root.mkdir()
    done = run_worker(root / "done", micro_args + ["--set", "train.max_steps=8"])
    stopped = run_worker(root / "paused", micro_args + ["--set", "train.max_steps=16"], TRM_TEST_STOP_AT_STEP=4)
    failed = run_worker(root / "broken", micro_args + ["--set", "train.max_steps=16"], TRM_TEST_CRASH_AT_STEP=3)
    assert (done.returncode, stopped.returncode, failed.returncode) == (0, 0, 1)
    (root / "notes").mkdir()  # a folder that holds no run is not listed
    (root / "README").write_text("not a run")

    shown = cli_run("runs", "--root", str(root))
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].split() == ["RUN", "STATE", "STEP", "LOSS", "EVAL", "ACC", "BEST", "TO-TARGET", "SAMPLES/S", "ETA",
                                "CHECKPOINT", "STARTED", "CONFIG", "DIFFERS"]
    table_lines = lines[1:4]
    assert "EVAL: the newest eval's loss; ACC: its token accuracy; BEST: the run's best eval by masked acc (the " \
           "task's figure" in " ".join(lines[4:])  # the two eval figures are told apart, and BEST's figure named
    rows = {line.split()[0]: line.split() for line in table_lines}
    assert set(rows) == {"done", "paused", "broken"}
    assert rows["done"][1:3] == ["completed", "8/8"] and rows["paused"][1:3] == ["stopped", "4/16"]
    assert rows["broken"][1] == "failed"
    assert rows["done"][-1] == "max_steps=8" and rows["paused"][-1] == "max_steps=16"  # what the runs differ in
    assert [line.split()[0] for line in table_lines] == ["broken", "paused", "done"]  # newest first

    # in a terminal of 80 columns: each run on one line, the columns that do not fit named, and a corrupt
    # config still in sight (the CONFIG column that says CORRUPT is the first left out)
    from helpers import Terminal, wait_for

    config = root / "paused" / "config.toml"
    config.write_text(config.read_text() + "\n[model\n")

    with Terminal(["runs", "--root", str(root)], size=(80, 24)) as term:
        screen = wait_for(lambda: term.screen() if "left out" in term.screen() else None, what="the runs table")
    shown_lines = [line for line in screen.splitlines() if line.strip()]
    assert [line.split()[0] for line in shown_lines[1:4]] == ["broken", "paused", "done"]  # no row wrapped
    assert all(len(line.rstrip()) <= 80 for line in shown_lines)
    flat = " ".join(screen.split())
    assert "(80 columns: CONFIG, STARTED" in flat and "--wide shows every column" in flat
    assert shown_lines[0].split()[:3] == ["RUN", "STATE", "STEP"]
    assert "stopped, corrupt config" in shown_lines[2] and "BEST: the run's best eval" in flat

    as_json = [json.loads(line) for line in cli_run("runs", "--json", "--root", str(root)).stdout.splitlines()]
    by_name = {Path(r["run_dir"]).name: r for r in as_json}
    assert by_name["done"]["eval_loss"] is not None and by_name["done"]["config_hash"]
    assert by_name["paused"]["checkpoint_step"] == 4 and by_name["paused"]["eta_s"] is None

    missing = cli_run("runs", "--root", str(tmp_path / "nothing"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr


@pytest.mark.process
def test_the_runs_screen_switches_runs_and_compares_the_marked(tmp_path: Path, micro_args: list[str]) -> None:
    import asyncio

    from trm_core.config import SupervisorConfig
    from trm_tui.dashboard.dashboard_app import Dashboard
    from trm_tui.dashboard.runs_screen import CompareScreen, RunsScreen
    from trm_tui.dashboard.widgets import Curve

    root = tmp_path / "runs"
    root.mkdir()
    for name, lr in (("slow", "0.0003"), ("fast", "0.01")):
        done = run_worker(root / name, micro_args + ["--set", "train.max_steps=12", "--set", f"train.learning_rate={lr}",
                                                     "--set", "train.target_score=0.01"])
        assert done.returncode == 0, done.stderr

    async def drive() -> tuple[str, str, Path | None]:
        app = Dashboard(root / "slow", None, SupervisorConfig())
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause(0.5)
            await pilot.press("R")
            await pilot.pause(0.5)
            assert isinstance(app.screen, RunsScreen) and len(app.screen.runs) == 2
            await pilot.press("space", "up", "space", "c")  # newest first: "fast" is above "slow"
            await pilot.pause(1.0)
            assert isinstance(app.screen, CompareScreen)
            loss = str(app.screen.query_one("#compare-loss", Curve).render())
            evals = str(app.screen.query_one("#compare-eval", Curve).render())
            table = app.screen.query_one("#compare-table")
            headers = [str(c.label) for c in table.ordered_columns]
            rows = {str(table.get_row_at(i)[0]): [str(c) for c in table.get_row_at(i)] for i in range(table.row_count)}
            await pilot.press("escape")
            target = next(r for r in app.screen.runs if r.name == "fast")
            app.screen.query_one("DataTable").move_cursor(row=app.screen.runs.index(target))
            await pilot.press("enter")
            await pilot.pause(0.5)
        return loss, evals, app.switch_to, headers, rows
    loss, evals, switched, headers, rows = asyncio.run(drive())
    # the table below the charts: scores, then only the config keys the runs differ in
    assert headers[:7] == ["RUN", "STATE", "STEP", "LOSS", "EVAL LOSS", "BEST", "TO-TARGET"]
    assert headers[7:] == ["train.learning_rate"]
    reached = events(root / "fast", "target_reached")  # time to target, side by side
    assert reached and rows["fast"][6].endswith(f" @{reached[0]['step']}") and rows["fast"][6].startswith("0:00:")
    lr = headers.index("train.learning_rate")
    assert rows["slow"][lr] == "0.0003" and rows["fast"][lr] == "0.01"
    assert rows["fast"][1] == "completed" and rows["fast"][2] == "12"
    assert "slow" in loss and "fast" in loss and "slow" in evals and "fast" in evals  # one legend entry per run
    assert "waiting for steps" not in loss
    assert switched == (root / "fast").resolve()
