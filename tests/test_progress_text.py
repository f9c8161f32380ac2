"""The text every front end shows for a long step, from the heartbeats inside it."""

from __future__ import annotations

from trm_core.rundir.records import Heartbeat, as_line
from trm_tui.dashboard.view import RunView
from trm_tui.progress import step_progress_line, step_progress_short

from helpers import record


def beat(phase_s: float, done: int | None = 4, phase: str = "step") -> Heartbeat:
    return Heartbeat(step=3, phase=phase, phase_s=phase_s, sup_step=done, sup_steps=16 if done else None)


def test_a_long_step_says_how_far_and_how_long() -> None:
    assert step_progress_line(beat(92.0)) == ("step 3 in progress, supervision step 4 of at most 16 done: 0:01:32 "
                                              "so far, at most about 0:06:08 for the step at this pace")
    assert step_progress_short(beat(92.0)) == "sup 4/16  0:01:32/~0:06:08"
    assert step_progress_line(beat(92.0, done=None)) == "step 3 in progress: 0:01:32 so far"  # no step done yet


def test_short_steps_and_other_phases_say_nothing() -> None:
    assert step_progress_line(beat(2.0)) is None and step_progress_short(beat(2.0)) == ""
    assert step_progress_line(beat(60.0, phase="checkpoint")) is None


def test_the_dashboard_keeps_the_newest_beat_until_the_step_ends() -> None:
    view = RunView("r")
    view.feed([as_line(beat(30.0), 1.0), as_line(beat(35.0, done=5), 6.0)])
    assert view.in_step is not None and view.in_step.sup_step == 5
    view.feed([as_line(record("step", step=3, total_steps=10, loss=1.0), 7.0)])
    assert view.in_step is None
