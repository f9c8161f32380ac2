"""The dashboard's key rules as a pure function: every acting key in every run state, with and without a
search, answered without starting an App."""

from __future__ import annotations

import os
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


@pytest.mark.parametrize("state", list(RunState))
def test_a_read_only_view_refuses_every_acting_key_and_nothing_else(state: RunState, tmp_path: Path) -> None:
    from trm_tui.dashboard.keys import READ_ONLY, acting_refused

    facts = KeyFacts(state, refused=acting_refused(tmp_path, read_only=True))
    assert all(why_not(action, facts) == READ_ONLY for action in ACTING)
    assert why_not("events", facts) is None and why_not("log", facts) is None
    assert acting_refused(tmp_path, read_only=False) is None  # the owner's own view


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a run to another user needs root (CI runs as root)")
def test_another_users_run_is_refused_by_name_and_labelled(tmp_path: Path) -> None:
    from trm_tui.dashboard.keys import acting_refused, view_label

    (tmp_path / "config.toml").write_text("")
    os.chown(tmp_path / "config.toml", 65534, 65534)
    why = acting_refused(tmp_path, read_only=False)
    assert why == "the run belongs to nobody (uid 65534): only its owner may stop, resume, auto-tune or kill it"
    assert why_not("stop", KeyFacts(RunState.RUNNING, refused=why)) == why
    assert view_label(tmp_path, read_only=False) == " (nobody's)"
    assert view_label(tmp_path, read_only=True) == " (nobody's) [read-only]"
