"""After a search in a front end: the result goes to whoever still waits for it, and when nobody does (the
dashboard quit meanwhile), a run the search stopped is resumed all the same. The rule is control/tune.py's
``finish``, checked here with a real run; the dashboard's side of it is that a dashboard that has quit takes
no result."""

from __future__ import annotations

from pathlib import Path

import pytest

from trm_core.config import SupervisorConfig
from trm_core.control import tune
from trm_core.rundir.identity import live_keeper
from trm_core.rundir.layout import RunDir

from helpers import events, kill_worker, run_worker, wait_for


@pytest.mark.process
def test_a_finished_search_nobody_takes_resumes_the_run_it_stopped(tmp_path: Path, micro_args: list[str]) -> None:
    from trm_tui.dashboard.dashboard_app import Dashboard
    from trm_tui.dashboard.messages import SearchFinished

    run_dir = tmp_path / "run"
    done = run_worker(run_dir, [*micro_args, "--set", "train.max_steps=40"], TRM_TEST_STOP_AT_STEP=6)
    assert done.returncode == 0, done.stderr
    stopped_at = events(run_dir, "run_end")[-1]["step"]
    over = tune.SearchOver(outcome=None, error="cancelled", was_running=True)
    try:
        assert tune.finish(over, RunDir(run_dir), deliver=lambda _over: True) is True
        assert live_keeper(run_dir) is None  # taken: the taker resumes it as it shows the result

        gone = Dashboard(run_dir, None, SupervisorConfig())
        gone.quitting.set()  # the dashboard has quit: its loop takes no more messages
        assert gone.tuner.deliver(SearchFinished(over)) is False
        assert tune.finish(over, RunDir(run_dir), deliver=gone.tuner.deliver) is False
        wait_for(lambda: any(e.get("resumed_from") == stopped_at for e in events(run_dir, "run_start")),
                 timeout=120, what="the run resumed from its checkpoint")
    finally:
        kill_worker(run_dir)
