"""The text every front end shows for a long step, from the heartbeats inside it."""

from __future__ import annotations

from trm_core.rundir.records import Heartbeat, as_line
from trm_tui.dashboard.view import RunView
from trm_tui.event_text import step_progress_line, step_progress_short

from helpers import record


def beat(phase_s: float, done: int | None = 4, phase: str = "step") -> Heartbeat:
    return Heartbeat(step=3, phase=phase, phase_s=phase_s, sup_step=done, sup_steps=16 if done else None)


def test_a_long_step_says_how_far_and_how_long() -> None:
    assert step_progress_line(beat(92.0)) == ("step 3 in progress, supervision step 4 of at most 16 done: 0:01:32 "
                                              "so far, at most about 0:06:08 for the step at this pace")
    assert step_progress_short(beat(92.0)) == "sup 4/16  0:01:32/~0:06:08"
    assert step_progress_line(beat(92.0, done=None)) == "step 3 in progress: 0:01:32 so far"  # no step done yet


def test_a_long_eval_says_how_many_batches_and_how_long() -> None:
    hb = Heartbeat(step=10, phase="eval", phase_s=70.0, batch=30, batches=60)
    assert step_progress_line(hb) == ("eval after step 10 in progress, batch 30 of 60 done: 0:01:10 so far, "
                                      "about 0:02:20 for the eval at this pace")
    assert step_progress_short(hb) == "eval 30/60  0:01:10/~0:02:20"
    view = RunView("r")
    view.feed([as_line(hb, 1.0)])
    assert view.in_step == hb
    from trm_tui.dashboard.widgets import now_row, waiting_text
    assert now_row(view) == ("now", "eval 30/60  0:01:10/~0:02:20")  # was "in eval  eval 30/60 ..."
    assert waiting_text("eval exact") == "eval exact: waiting for the first eval"  # was "samples/s: waiting for steps"
    assert waiting_text("samples/s") == "samples/s: waiting for steps"
    view.feed([as_line(record("eval", step=10, loss=1.0, accuracy=0.5, exact=0.0, sup_steps=2, samples=8), 2.0)])
    assert view.in_step is None  # the eval is over


def test_short_steps_and_other_phases_say_nothing() -> None:
    assert step_progress_line(beat(2.0)) is None and step_progress_short(beat(2.0)) == ""
    assert step_progress_line(beat(60.0, phase="checkpoint")) is None


def test_the_dashboard_keeps_the_newest_beat_until_the_step_ends() -> None:
    view = RunView("r")
    view.feed([as_line(beat(30.0), 1.0), as_line(beat(35.0, done=5), 6.0)])
    assert view.in_step is not None and view.in_step.sup_step == 5
    view.feed([as_line(record("step", step=3, total_steps=10, loss=1.0), 7.0)])
    assert view.in_step is None


def run_with_a_pause() -> list[dict]:
    """100 steps at 1 s each, a stop, ten hours later a resume at the same pace."""
    lines = [as_line(record("run_start", total_steps=1000, config={"train": {"checkpoint_every": 100}}), 0.0)]
    lines += [as_line(record("step", step=s, total_steps=1000, loss=1.0, step_s=1.0, data_s=0.0), float(s))
              for s in range(1, 101)]
    lines.append(as_line(record("checkpoint", step=100, epoch=1, path="p", bytes=1, seconds=0.1), 100.0))
    resumed = 100.0 + 36_000
    lines.append(as_line(record("run_start", total_steps=1000, resumed_from=100,
                                config={"train": {"checkpoint_every": 100}}), resumed))
    lines += [as_line(record("step", step=100 + s, total_steps=1000, loss=1.0, step_s=1.0, data_s=0.0),
                      resumed + s) for s in range(1, 11)]
    return lines


def test_the_eta_counts_from_the_last_restart_and_a_resume_is_not_stale() -> None:
    view = RunView("r")
    view.feed(run_with_a_pause())
    now = 100.0 + 36_000 + 11
    assert view.eta_s() is not None and 880 <= view.eta_s() <= 900  # 890 steps at 1 s, not the 10-hour pause
    assert not any(a.startswith("CHECKPOINT STALE") for a in view.alerts(now, 600.0, None, False))


def test_status_agrees(tmp_path) -> None:
    """The same log read by status, with this test process standing in for the live worker."""
    import json as json_mod
    import os
    import socket

    import psutil

    from trm_core.control.run_status import run_status
    from trm_core.rundir.identity import start_ticks
    lines = run_with_a_pause()
    now = 100.0 + 36_000 + 11
    (tmp_path / "events.jsonl").write_text("".join(json_mod.dumps(line) + "\n" for line in lines))
    me = os.getpid()
    (tmp_path / "worker.json").write_text(json_mod.dumps({
        "pid": me, "create_time": psutil.Process(me).create_time(), "host": socket.gethostname(),
        "started": now, "start_ticks": start_ticks(me)}))
    st = run_status(tmp_path, now=now)
    assert st.state == "running"
    assert 880 <= st.eta_s <= 900 and st.checkpoint_stale is False
    (tmp_path / "worker.json").unlink()  # nothing runs: no ETA
    assert run_status(tmp_path, now=now).eta_s is None


def test_a_crowded_cpu_warning_is_an_alert_naming_auto_tune_while_it_is_fresh() -> None:
    view = RunView("r")
    lines = [as_line(record("run_start", total_steps=1000, config={}), 0.0)]
    lines += [as_line(record("step", step=s, total_steps=1000, loss=1.0, step_s=1.0, data_s=0.0), float(s))
              for s in range(1, 11)]
    lines.append(as_line(record("warning", message="throughput fell to 13.0 samples/s", about="crowded_cpu"), 11.0))
    view.feed(lines)
    said = [a for a in view.alerts(12.0, 600.0, None, False) if a.startswith("SLOWED")]
    assert said and "press a to auto-tune" in said[0]
    assert not [a for a in view.alerts(11.0 + 601, 1e9, None, False) if a.startswith("SLOWED")]  # gone when old
