"""The dashboard's key rules as a pure function: every acting key in every run state, with and without a
search, answered without starting an App."""

from __future__ import annotations

from pathlib import Path

import pytest

from trm_core.rundir.states import SUPERVISED, RunState
from trm_tui.dashboard.keys import ACTING, TUNABLE, KeyFacts, Search, why_not


@pytest.mark.parametrize("state", list(RunState))
def test_stop_and_kill_act_on_a_supervised_run_only(state: RunState) -> None:
    facts = KeyFacts(state)
    if state == RunState.STOPPING:
        assert "already stopping" in why_not("stop", facts) and why_not("kill", facts) is None
    elif state in SUPERVISED:
        assert why_not("stop", facts) is None and why_not("kill", facts) is None
    else:
        assert why_not("stop", facts) == f"nothing to stop: the run is {state}"
        assert why_not("kill", facts) == f"nothing to kill: the run is {state}"


@pytest.mark.parametrize("state", list(RunState))
def test_autotune_needs_a_running_or_stopped_run(state: RunState) -> None:
    answer = why_not("autotune", KeyFacts(state))
    assert (answer is None) == (state in TUNABLE), answer


def test_resume_says_why_not_and_how_to_go_on() -> None:
    run = Path("runs/r1")
    assert why_not("resume", KeyFacts(RunState.STOPPED)) is None
    assert why_not("resume", KeyFacts(RunState.FAILED)) is None
    assert why_not("resume", KeyFacts(RunState.RUNNING)) == "the run is running already"
    assert why_not("resume", KeyFacts(RunState.STOPPED, supervising=True)) == "the run is stopped already"
    assert "resumes then" in why_not("resume", KeyFacts(RunState.STOPPING))
    done = why_not("resume", KeyFacts(RunState.COMPLETED, run_dir=run))
    assert f"trm-tui --resume --run-dir {run} --set train.max_steps=N" in done


@pytest.mark.parametrize("search", [Search.HERE, Search.KEEPER])
def test_a_search_from_here_owns_every_acting_key(search: Search) -> None:
    for action in ACTING:
        assert "auto-tune search owns the run" in why_not(action, KeyFacts(RunState.RUNNING, search=search))
    assert why_not("events", KeyFacts(RunState.RUNNING, search=search)) is None


def test_a_search_elsewhere_leaves_resume_and_autotune_to_say_so_themselves() -> None:
    facts = KeyFacts(RunState.STOPPED, searched_elsewhere=True, supervising=True)
    assert why_not("resume", facts) is None and why_not("autotune", facts) is None
    assert why_not("stop", facts) == "nothing to stop: the run is stopped"
