"""Auto-tune: the search's rules on a scripted machine, then real trials against real runs."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest

from trm_core import config as config_mod
from trm_core.autotune.runner import TrialRunner
from trm_core.autotune.search import Candidate, Search, SearchSpace, Trial, choose, thread_counts
from trm_core.config import SupervisorConfig
from trm_core.rundir.identity import read_identity
from trm_tui.dashboard.dashboard_app import Dashboard

from helpers import Terminal, cli, cli_run, events, kill_worker, wait_for, worker_env

# -- the rules, on a scripted machine -------------------------------------------------------------------


def scripted(speed, peak, limit: float = float("inf")):
    """A measure function from formulas: speed(c) and peak(c) in MiB; over ``limit`` is rejected."""
    tried: list[Candidate] = []

    def measure(c: Candidate) -> Trial:
        tried.append(c)
        p = peak(c)
        if p > limit:
            return Trial(c, False, peak_mb=p, reason="over the memory limit")
        return Trial(c, True, speed(c), p)
    return measure, tried


def search(space: SearchSpace, measure) -> tuple[list[Trial], Trial | None]:
    trials = Search(space, measure, lambda: False).run()
    return trials, choose(trials, trials[0], space.min_gain)


def test_a_low_memory_limit_is_never_exceeded_and_bisection_finds_the_edge() -> None:
    # faster with every larger micro-batch; memory grows with it; 12 has divisors 1 2 3 4 6 12
    measure, tried = scripted(speed=lambda c: 10.0 * c.micro_batch ** 0.5, peak=lambda c: 100.0 + 50 * c.micro_batch,
                              limit=450.0)
    space = SearchSpace(batch_size=12, start=Candidate(12, 1, 2), cores=2)
    trials, chosen = search(space, measure)
    assert chosen is not None and chosen.peak_mb <= 450
    assert chosen.candidate.micro_batch == 6  # 8 is no divisor; 12 failed, bisection between 4 and 12 found 6
    assert all(t.peak_mb <= 450 for t in trials if t.accepted)
    assert {c.batch_size for c in tried} == {12}  # the effective batch never changes by default
    assert [c.micro_batch for c in tried[:4]] == [1, 2, 4, 12]


def test_growth_stops_when_it_stops_paying_and_threads_descend() -> None:
    measure, tried = scripted(speed=lambda c: min(c.micro_batch, 4) * (c.threads or 8) ** 0.5, peak=lambda c: 1.0)
    space = SearchSpace(batch_size=64, start=Candidate(64, 1, 8), cores=8)
    trials, chosen = search(space, measure)
    micro = [c.micro_batch for c in tried if c.threads == 8]
    assert micro == [1, 2, 4, 8, 16]  # flat at 8, flat again at 16: stop before 32 and 64
    assert chosen.candidate == Candidate(64, 4, 8)  # more threads are faster here; 4 threads was not
    assert [c.threads for c in tried if c.threads != 8] == [4]
    assert thread_counts(12) == [12, 8, 4, 2, 1]


def test_noise_is_not_a_reason_to_change_and_batch_growth_needs_permission() -> None:
    measure, tried = scripted(speed=lambda c: 100.0 + c.micro_batch * 0.1, peak=lambda c: 1.0)
    space = SearchSpace(batch_size=8, start=Candidate(8, 8, 2), cores=0, min_gain=0.03)
    trials, chosen = search(space, measure)
    assert chosen is trials[0]  # within 3% of the current settings: keep them
    measure, tried = scripted(speed=lambda c: float(c.micro_batch), peak=lambda c: 1.0)
    search(SearchSpace(batch_size=8, start=Candidate(8, 8, 0), cores=0), measure)
    assert max(c.batch_size for c in tried) == 8  # not allowed: the batch stays
    measure, tried = scripted(speed=lambda c: float(c.micro_batch), peak=lambda c: 1.0)
    _, chosen = search(SearchSpace(batch_size=8, start=Candidate(8, 8, 0), cores=0, max_batch_size=32), measure)
    assert max(c.batch_size for c in tried) == 32 and chosen.candidate == Candidate(32, 32, 0)


# -- real trials, real runs ---------------------------------------------------------------------------


FAST_TRIALS = ["--set", "autotune.keep_pinned=false", "--set", "autotune.warmup_steps=1", "--set", "autotune.measure_steps=2",
               "--set", "autotune.max_seconds=120"]


@pytest.mark.process
@pytest.mark.slow
def test_autotune_a_running_run_then_it_resumes_with_the_choice(tmp_path: Path, micro_args: list[str]) -> None:
    """Through the CLI against a supervised run. One trial crashes (injected): it is rejected and the run
    is untouched. The choice lands in config.toml, the effective batch stays, and the run continues."""
    run_dir = tmp_path / "run"
    # the keeper runs the trials: the injected fault goes into its environment, through the front end that starts it
    front = cli("--no-ui", "--run-dir", str(run_dir), *micro_args, *FAST_TRIALS, TRM_TEST_STEP_SLEEP_S=0.05,
                TRM_TEST_TRIAL_CRASH_MICRO_BATCH=1)
    try:
        wait_for(lambda: len(events(run_dir, "step")) >= 5, what="steps")
        tune = cli("autotune", "--run-dir", str(run_dir))
        wait_for(lambda: events(run_dir, "autotune_trial"), timeout=120, what="the first trial")
        status = cli("status", "--run-dir", str(run_dir), "--json")
        assert json.loads(status.communicate(timeout=60)[0])["state"] == "tuning"  # from any shell
        out, err = tune.communicate(timeout=240)
        assert tune.returncode == 0, err
        assert front.poll() is None  # the front end that started the run follows it through the keeper's search
        stopped_at = events(run_dir, "run_end")[-1]["step"]
        trials = events(run_dir, "autotune_trial")
        crashed = [t for t in trials if t["micro_batch_size"] == 1]
        assert crashed and not crashed[0]["accepted"] and crashed[0]["reason"].startswith("crashed (exit 70)")
        assert all(t["batch_size"] == 4 for t in trials)
        result = events(run_dir, "autotune_result")[-1]
        cfg = config_mod.read_run_config(run_dir / "config.toml")
        assert cfg["train"]["batch_size"] == 4
        for key, (_, after) in result["changed"].items():
            assert cfg["train"][key.split(".", 1)[1]] == after
        assert "auto-tune result" in out and "resumed: worker pid" in out
        assert "the run now trains at " in out and "samples/s (median of its 10 steps after the resume; the trial " \
            "measured " in out  # what the run reached, beside the trial's figure
        # the run resumes from its checkpoint with the chosen settings; steps continue, none repeated
        wait_for(lambda: events(run_dir, "run_start")[-1].get("resumed_from") == stopped_at, what="the resume")
        resumed = events(run_dir, "run_start")[-1]
        assert resumed["config"]["train"]["micro_batch_size"] == cfg["train"]["micro_batch_size"]
        wait_for(lambda: events(run_dir, "step")[-1]["step"] > stopped_at + 2, what="steps after tuning")
        steps = [e["step"] for e in events(run_dir, "step")]
        assert steps == list(range(1, len(steps) + 1))
        assert cli_run("stop", "--run-dir", str(run_dir)).returncode == 0
        assert front.wait(timeout=60) == 0  # the front end saw a requested stop, not a crash
    finally:
        if front.poll() is None:
            front.kill()
        kill_worker(run_dir)


@pytest.mark.process
@pytest.mark.slow
def test_a_real_memory_limit_rejects_the_large_micro_batches(tmp_path: Path, micro_args: list[str]) -> None:
    """Real trial processes and real peak RSS: with the limit between the smallest and the largest
    micro-batch's peak, nothing over it is chosen."""
    run_dir = tmp_path / "run"
    shape = ["--set", "train.batch_size=32", "--set", "train.micro_batch_size=32", "--set", "model.seq_len=256",
             "--set", "model.dim=64", "--set", "train.max_steps=2", "--set", "train.threads=1"]
    done = cli("--no-ui", "--run-dir", str(run_dir), *micro_args, *shape, *FAST_TRIALS)
    assert done.wait(timeout=120) == 0, done.stderr.read()
    cfg = config_mod.resolve(base=config_mod.read_run_config(run_dir / "config.toml"), env={})
    runner = TrialRunner(run_dir / "config.toml", cfg, time.monotonic() + 120, threading.Event(), env=worker_env())
    small, large = runner(Candidate(32, 1, 1)), runner(Candidate(32, 32, 1))
    assert small.accepted and large.accepted and large.peak_mb > small.peak_mb + 40, (small, large)
    limit = (small.peak_mb + large.peak_mb) / 2
    tune = cli("autotune", "--run-dir", str(run_dir), "--set", f"autotune.memory_limit_mb={limit:.0f}")
    out, err = tune.communicate(timeout=240)
    assert tune.returncode == 0, err
    trials = events(run_dir, "autotune_trial")
    assert any(not t["accepted"] and "memory limit" in t["reason"] for t in trials)
    assert all(t["peak_mb"] <= limit for t in trials if t["accepted"])
    chosen = config_mod.read_run_config(run_dir / "config.toml")["train"]
    peaks = {(t["micro_batch_size"], t["threads"]): t for t in trials}
    pick = peaks[(chosen["micro_batch_size"], chosen["threads"] or 1)]
    assert pick["accepted"] and pick["peak_mb"] <= limit
    assert "resumed" not in out  # the run was not running: it stays as it was


@pytest.mark.process
@pytest.mark.slow
def test_tune_before_training_may_grow_the_batch(tmp_path: Path, micro_args: list[str]) -> None:
    """A new run: autotune writes its config and, with allow_batch_change, tries larger batches; a larger
    batch comes with the square-root learning-rate rule. The run then starts from it with --resume."""
    run_dir = tmp_path / "run"
    tune = cli("autotune", "--run-dir", str(run_dir), *micro_args, *FAST_TRIALS, "--set", "train.max_steps=12",
               "--set", "autotune.allow_batch_change=true", "--set", "autotune.max_batch_size=8")
    out, err = tune.communicate(timeout=240)
    assert tune.returncode == 0, err
    assert "start it with: trm-tui --run-dir" in out
    assert max(t["batch_size"] for t in events(run_dir, "autotune_trial")) == 8
    result = events(run_dir, "autotune_result")[-1]
    train = config_mod.read_run_config(run_dir / "config.toml")["train"]
    if "train.batch_size" in result["changed"]:
        assert result["lr_rule"] == "sqrt"
        assert train["learning_rate"] == pytest.approx(0.003 * (train["batch_size"] / 4) ** 0.5)
        # the same samples: 12 at batch 4 is 6 steps at 8, not 12 steps of twice the data
        assert train["max_steps"] == round(12 * 4 / train["batch_size"]) and "max_steps 12 -> " in result["note"]
        assert "keeps the run at about 48 samples" in out
    else:
        assert train["batch_size"] == 4 and train["learning_rate"] == 0.003 and train["max_steps"] == 12
    fresh = cli("--no-ui", "--run-dir", str(run_dir), *micro_args)  # a fresh start would overwrite it: refused
    assert fresh.wait(timeout=120) == 2 and "use --resume" in fresh.stderr.read()
    started = cli("--no-ui", "--run-dir", str(run_dir), "--resume")
    assert started.wait(timeout=120) == 0
    run_start = events(run_dir, "run_start")[-1]
    assert run_start["config"]["train"] == train and events(run_dir, "run_end")[-1]["status"] == "completed"


@pytest.mark.process
def test_autotune_without_a_run_is_a_clear_error(tmp_path: Path) -> None:
    for extra in ([], ["--set", "autotune.max_seconds=60"]):  # autotune keys alone do not make a run
        proc = cli("autotune", "--run-dir", str(tmp_path / "none"), *extra)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 2 and "holds no run" in err and "Traceback" not in err
        assert not (tmp_path / "none").exists()


@pytest.mark.process
@pytest.mark.slow
def test_the_a_key_tunes_then_resumes(tmp_path: Path, micro_args: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    env = worker_env(TRM_TEST_STEP_SLEEP_S=0.05)
    for key in ("PYTHONPATH", "TRM_TEST_STEP_SLEEP_S"):
        monkeypatch.setenv(key, env[key])
    run_dir = tmp_path / "run"
    app = Dashboard(run_dir, [*micro_args, *FAST_TRIALS], SupervisorConfig())

    async def scenario() -> None:
        async with app.run_test(size=(100, 34)) as pilot:
            deadline = time.monotonic() + 120
            while app.view.step < 3 and time.monotonic() < deadline:
                await pilot.pause(0.1)
            assert app.view.state == "running"
            await pilot.press("a")
            await pilot.pause(0.2)
            assert app.tuning and app.check_action("stop", ()) is None  # the search owns the run
            deadline = time.monotonic() + 240
            while not any(e.kind == "autotune_result" for e in app.view.events) and time.monotonic() < deadline:
                await pilot.pause(0.2)
            assert sum(e.kind == "autotune_trial" for e in app.view.events) >= 2  # shown live
            stopped_at = events(run_dir, "run_end")[-1]["step"]
            deadline = time.monotonic() + 120
            while not (app.view.state == "running" and app.view.step > stopped_at + 1) and time.monotonic() < deadline:
                await pilot.pause(0.2)
            assert not app.tuning and app.view.state == "running"
            assert events(run_dir, "run_start")[-1]["resumed_from"] == stopped_at
            await pilot.press("s")
            deadline = time.monotonic() + 60
            while app.view.state != "stopped" and time.monotonic() < deadline:
                await pilot.pause(0.2)
            await pilot.press("q")
    try:
        asyncio.run(scenario())
        assert json.dumps(events(run_dir, "autotune_result")[-1])  # recorded in the run's log
    finally:
        kill_worker(run_dir)


@pytest.mark.process
def test_a_new_run_whose_settings_crash_is_an_error_and_leaves_nothing(tmp_path: Path, micro_args: list[str]) -> None:
    run_dir = tmp_path / "new"
    tune = cli("autotune", "--run-dir", str(run_dir), *micro_args, *FAST_TRIALS,
               "--set", f"data.paths=['{tmp_path / 'no-such-corpus'}']")
    out, err = tune.communicate(timeout=120)
    assert tune.returncode == 1 and "current settings crash in a trial" in err and "Traceback" not in err
    assert not run_dir.exists()  # nothing to refuse a later fresh start


@pytest.mark.process
def test_a_hangup_cancels_the_search_and_the_run_goes_on(tmp_path: Path, micro_args: list[str]) -> None:
    """SIGHUP (the SSH session dropped) mid-search: no setting changes, and the stopped run is resumed."""
    run_dir = tmp_path / "run"
    front = cli("--no-ui", "--run-dir", str(run_dir), *micro_args, *FAST_TRIALS, TRM_TEST_STEP_SLEEP_S=0.05)
    try:
        wait_for(lambda: len(events(run_dir, "step")) >= 3, what="steps")
        before = (run_dir / "config.toml").read_text()
        tune = cli("autotune", "--run-dir", str(run_dir))
        wait_for(lambda: events(run_dir, "autotune_trial"), timeout=120, what="the first trial")
        tune.send_signal(signal.SIGHUP)
        out, err = tune.communicate(timeout=120)
        assert tune.returncode == 0 and "SIGHUP" in err, err
        assert events(run_dir, "autotune_result")[-1]["cancelled"] is True
        assert (run_dir / "config.toml").read_text() == before
        stopped_at = events(run_dir, "run_end")[-1]["step"]
        wait_for(lambda: events(run_dir, "run_start")[-1].get("resumed_from") == stopped_at, what="the resume")
    finally:
        if front.poll() is None:
            front.kill()
        kill_worker(run_dir)


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
@pytest.mark.process
@pytest.mark.tmux
def test_quitting_the_dashboard_mid_search_resumes_the_run(tmp_path: Path, micro_args: list[str]) -> None:
    """The real program in tmux (Pilot cannot show this: its app loop outlives the app): a, then q while
    trials run. The run's keeper runs the search, so it goes on without the window, and the keeper resumes
    the run it stopped."""
    run_dir = tmp_path / "run"
    term = Terminal(["--run-dir", str(run_dir), *micro_args, *FAST_TRIALS], size=(100, 30),
                    TRM_TEST_STEP_SLEEP_S=0.05)
    try:
        wait_for(lambda: len(events(run_dir, "step")) >= 3, timeout=120, what="steps")
        wait_for(lambda: "RUNNING" in term.screen(), what="the dashboard")
        term.keys("a")
        wait_for(lambda: events(run_dir, "autotune_trial"), timeout=120, what="a trial")
        term.keys("q")
        wait_for(lambda: "EXIT=0" in term.screen(), timeout=120, what="the dashboard to quit")
        wait_for(lambda: events(run_dir, "autotune_result"), timeout=180, what="the keeper's search to finish")
        assert events(run_dir, "autotune_result")[-1]["cancelled"] is False
        stopped_at = events(run_dir, "run_end")[-1]["step"]
        wait_for(lambda: events(run_dir, "run_start")[-1].get("resumed_from") == stopped_at, what="the resume")
        assert read_identity(run_dir).is_alive()
    finally:
        term.close()
        kill_worker(run_dir)


def test_a_larger_batch_keeps_the_runs_samples_and_says_so() -> None:
    from trm_core.autotune.choice import same_samples, sample_note
    from trm_core.config import TrainConfig

    t = TrainConfig(batch_size=16, max_steps=600, warmup_steps=20, eval_every=100, checkpoint_every=100)
    scaled = same_samples(t, 128)
    assert scaled == {"max_steps": 75, "warmup_steps": 2, "eval_every": 12, "checkpoint_every": 12}
    assert sample_note(t, 128, scaled).startswith("batch 16 -> 128: max_steps 600 -> 75 keeps the run at about "
                                                  "9,600 samples")
    by_epochs = TrainConfig(batch_size=16, max_steps=0, epochs=3, eval_every=0)
    assert "max_steps" not in same_samples(by_epochs, 64) and "eval_every" not in same_samples(by_epochs, 64)
    assert "counted in epochs (3), so it keeps its samples" in sample_note(by_epochs, 64, same_samples(by_epochs, 64))


@pytest.mark.process
def test_settings_the_user_pinned_are_kept_and_the_record_says_so(tmp_path: Path, micro_args: list[str]) -> None:
    """A run started with --set train.threads=1 (the micro args pin the micro-batch too): a search keeps both,
    measures only the run's own settings, and its result says what it kept and how to tune them anyway (was:
    threads overridden, the user's choice gone)."""
    from trm_core.autotune.engine import _plan, pinned_settings

    run_dir = tmp_path / "run"
    done = cli_run("--no-ui", "--run-dir", str(run_dir), *micro_args, "--set", "train.max_steps=4")
    assert done.returncode == 0, done.stderr
    assert pinned_settings(run_dir) == {"train.threads": "1", "train.micro_batch_size": "2"}
    cfg = config_mod.resolve(base=config_mod.read_run_config(run_dir / "config.toml"), env={})
    plan = _plan(run_dir, cfg)
    assert plan.space.cores == 0 and not plan.space.tune_micro
    assert "kept as you set them at a start (--set): train.micro_batch_size = 2, train.threads = 1" in plan.note
    trials, _ = search(plan.space, scripted(speed=lambda c: 1.0 + c.micro_batch, peak=lambda c: 1.0)[0])
    assert [t.candidate for t in trials] == [plan.space.start]  # only the run's own settings
    # keep_pinned = false, or a start that set them back to 0, leaves them to the search
    free = config_mod.resolve(base=config_mod.read_run_config(run_dir / "config.toml"), env={},
                              sets=["autotune.keep_pinned=false"])
    assert _plan(run_dir, free).space.tune_micro and _plan(run_dir, free).space.cores > 0
    again = cli_run("--no-ui", "--resume", "--run-dir", str(run_dir), "--set", "train.max_steps=6",
                    "--set", "train.threads=0")
    assert again.returncode == 0, again.stderr
    assert pinned_settings(run_dir) == {"train.micro_batch_size": "2"}
