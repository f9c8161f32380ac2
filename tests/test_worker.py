"""The worker as a real process: exact resume, signals, kill -9 mid-checkpoint, watchdog, failures."""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path

import pytest

from trm_core.rundir import checkpoints as ckpt

from helpers import MICRO, events, run_worker, start_worker, terminate, wait_for


def _steps(run_dir: Path) -> dict[int, float]:
    return {e["step"]: e["loss"] for e in events(run_dir, "step")}


# A corpus cut to 1,600 bytes: 12 steps per epoch, so 16 steps cross an epoch boundary.
SHORT_EPOCHS = ["--set", "data.max_bytes=1600", "--set", "train.max_steps=16"]


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> tuple[Path, list[str]]:
    """One uninterrupted run that the interrupted ones are compared with."""
    root = tmp_path_factory.mktemp("straight")
    sets = MICRO + [f"data.paths=['{corpus}']", f"data.cache_dir='{root / 'cache'}'"]
    args = [a for s in sets for a in ("--set", s)] + SHORT_EPOCHS
    result = run_worker(root / "run", args)
    assert result.returncode == 0, result.stderr
    assert events(root / "run", "run_start")[0]["steps_per_epoch"] == 12
    return root / "run", args


@pytest.mark.parametrize("stop_at", [4, 6, 12])  # on a checkpoint step, between, at the end of epoch 1
@pytest.mark.process
def test_stop_and_resume_is_bit_identical(tmp_path: Path, straight_run: tuple[Path, list[str]], stop_at: int) -> None:
    straight, args = straight_run
    split = tmp_path / "split"
    # the worker signals itself during the step: a real SIGTERM through the real stop path
    first = run_worker(split, args, TRM_TEST_STOP_AT_STEP=stop_at)
    assert first.returncode == 0, first.stderr
    end = events(split, "run_end")[-1]
    assert (end["status"], end["step"]) == ("stopped", stop_at)
    assert ckpt.latest_progress(split / "checkpoints").step == stop_at
    second = run_worker(split, ["--resume"])
    assert second.returncode == 0, second.stderr
    assert events(split, "run_start")[-1]["resumed_from"] == stop_at
    expected, got = _steps(straight), _steps(split)
    assert sorted(got) == list(range(1, 17))
    assert all(got[s] == expected[s] for s in range(1, 17)), (got, expected)  # atol = rtol = 0
    evals = lambda d: [(e["step"], e["loss"]) for e in events(d, "eval")]  # noqa: E731
    assert evals(split) == evals(straight)
    assert events(split, "run_end")[-1]["status"] == "completed"
    again = run_worker(split, ["--resume"])  # a completed run says so and does nothing
    assert again.returncode == 0 and "already complete at step 16" in again.stdout
    assert len(events(split, "run_start")) == 2


@pytest.mark.process
def test_truncated_newest_checkpoint_falls_back_and_replays_exactly(
        tmp_path: Path, straight_run: tuple[Path, list[str]]) -> None:
    straight, args = straight_run
    run_dir = tmp_path / "run"
    shutil.copytree(straight, run_dir)
    newest = run_dir / "checkpoints" / "step-00000016.pt"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    before = len(events(run_dir, "step"))
    resumed = run_worker(run_dir, ["--resume"])  # unchanged config: not "already complete", a fallback
    assert resumed.returncode == 0, resumed.stderr
    warning = events(run_dir, "warning")[-1]["message"]
    assert "step-00000016.pt" in warning and "truncated" in warning
    assert events(run_dir, "run_start")[-1]["resumed_from"] == 12
    replayed = events(run_dir, "step")[before:]
    assert [e["step"] for e in replayed] == [13, 14, 15, 16]
    assert all(e["loss"] == _steps(straight)[e["step"]] for e in replayed)
    assert (run_dir / "checkpoints" / "step-00000016.pt.corrupt").exists()  # set aside, not deleted
    assert ckpt.newest_verified(run_dir / "checkpoints")[0].step == 16  # rewritten, and it verifies


@pytest.mark.process
def test_sigterm_finishes_step_checkpoints_and_exits_0(tmp_path: Path, micro_args: list[str]) -> None:
    run_dir = tmp_path / "run"
    proc = start_worker(run_dir, micro_args + ["--set", "train.checkpoint_every=1000"], TRM_TEST_STEP_SLEEP_S=0.05)
    try:
        wait_for(lambda: len(events(run_dir, "step")) >= 3, what="three steps")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        terminate(proc)
    end = events(run_dir, "run_end")[-1]
    assert end["status"] == "stopped" and end["reason"] == "SIGTERM"
    saved = events(run_dir, "checkpoint")[-1]
    assert saved["step"] == end["step"] == events(run_dir, "step")[-1]["step"]
    info, failed = ckpt.newest_verified(run_dir / "checkpoints")
    assert info.step == end["step"] and failed == []


@pytest.mark.process
def test_kill_9_during_checkpoint_write_leaves_a_verifying_checkpoint(tmp_path: Path, micro_args: list[str]) -> None:
    run_dir = tmp_path / "run"
    args = micro_args + ["--set", "train.checkpoint_every=2", "--set", "train.step_timeout_s=600"]
    # slow the step-4 save down (seconds for the micro model) so the kill lands inside torch.save
    proc = start_worker(run_dir, args, TRM_TEST_SLOW_CHECKPOINT="4:60")
    try:
        wait_for(lambda: events(run_dir, "checkpoint"), what="first checkpoint")
        tmp = wait_for(lambda: list((run_dir / "checkpoints").glob(".step-00000004.pt.tmp-*")), what="a checkpoint mid-write")
        time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        terminate(proc)
    assert tmp[0].exists()  # the half-written temp file is there, never renamed into place
    info, failed = ckpt.newest_verified(run_dir / "checkpoints")
    assert info is not None and info.step == 2 and failed == []
    resumed = run_worker(run_dir, ["--resume", "--set", "train.max_steps=5"])
    assert resumed.returncode == 0, resumed.stderr
    assert events(run_dir, "run_start")[-1]["resumed_from"] == 2
    assert [e["step"] for e in events(run_dir, "step")][-3:] == [3, 4, 5]
    assert not tmp[0].exists()  # a dead writer's temp file is cleaned up


@pytest.mark.process
def test_second_signal_exits_promptly_and_keeps_last_checkpoint(tmp_path: Path, micro_args: list[str]) -> None:
    run_dir = tmp_path / "run"
    # SIGTERM arrives during step 3; its graceful-stop checkpoint is written slowly
    proc = start_worker(run_dir, micro_args + ["--set", "train.checkpoint_every=2"], TRM_TEST_STOP_AT_STEP=3,
                        TRM_TEST_SLOW_CHECKPOINT="3:120")
    try:
        # a second signal must not wait for the stop checkpoint
        wait_for(lambda: list((run_dir / "checkpoints").glob(".step-00000003.pt.tmp-*")), what="the stop checkpoint mid-write")
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert time.monotonic() - t0 < 3
    finally:
        terminate(proc)
    end = events(run_dir, "run_end")[-1]
    assert end["status"] == "stopped" and end["forced"] is True
    info, failed = ckpt.newest_verified(run_dir / "checkpoints")
    assert info.step == 2 and failed == []


@pytest.mark.process
def test_stall_gives_stall_event_with_stacks_and_exit_3(tmp_path: Path, micro_args: list[str]) -> None:
    run_dir = tmp_path / "run"
    result = run_worker(run_dir, micro_args + ["--set", "train.step_timeout_s=1.5"], TRM_TEST_STALL_AT_STEP=3)
    assert result.returncode == 3
    stall = events(run_dir, "stall")[-1]
    assert stall["step"] == 3 and stall["phase"] == "step" and stall["seconds"] > 1.5
    main = next(t for t in stall["threads"] if t["thread"] == "MainThread")
    assert "before_step" in main["stack"] and "time.sleep" in main["stack"]
    assert events(run_dir, "heartbeat")  # the hang was announced before it was declared a stall
    assert events(run_dir, "run_end")[-1]["reason"] == "stalled"
    assert "watchdog: step of step 3" in result.stderr


@pytest.mark.process
def test_a_long_eval_shows_its_batches_and_stalls_only_on_a_stuck_batch(tmp_path: Path, micro_args: list[str]) -> None:
    """An eval of 5 batches of 0.6 s runs 3 s, twice the timeout: each finished batch shows it moving, so it is
    no stall, and heartbeats say how far it is. A batch that alone outlasts the timeout is a stall."""
    args = micro_args + ["--set", "train.step_timeout_s=1.5", "--set", "train.heartbeat_s=0.4",
                         "--set", "train.eval_batches=5", "--set", "train.max_steps=4"]
    run_dir = tmp_path / "long"
    result = run_worker(run_dir, args, TRM_TEST_EVAL_BATCH_SLEEP_S=0.6)
    assert result.returncode == 0, result.stderr
    assert [e["samples"] for e in events(run_dir, "eval")] == [20]
    inside = [e for e in events(run_dir, "heartbeat") if e["phase"] == "eval"]
    assert inside and {e["batches"] for e in inside if "batch" in e} == {5}
    assert max(e["phase_s"] for e in inside) > 1.5 and not events(run_dir, "stall")
    stuck = tmp_path / "stuck"
    result = run_worker(stuck, args, TRM_TEST_EVAL_BATCH_SLEEP_S=3)
    assert result.returncode == 3
    assert events(stuck, "stall")[-1]["phase"] == "eval"


@pytest.mark.process
def test_crash_gives_error_event_and_exit_1(tmp_path: Path, micro_args: list[str]) -> None:
    run_dir = tmp_path / "run"
    result = run_worker(run_dir, micro_args, TRM_TEST_CRASH_AT_STEP=2)
    assert result.returncode == 1
    error = events(run_dir, "error")[-1]
    assert "injected crash at step 2" in error["message"] and "Traceback" in error["traceback"]
    assert events(run_dir, "run_end")[-1]["status"] == "failed"


@pytest.mark.process
def test_non_finite_loss_stops_cleanly(tmp_path: Path, micro_args: list[str]) -> None:
    run_dir = tmp_path / "run"
    result = run_worker(run_dir, micro_args, TRM_TEST_NAN_AT_STEP=3)
    assert result.returncode == 1
    error = events(run_dir, "error")[-1]
    assert error["kind"] == "non_finite" and error["step"] == 3
    assert [e["step"] for e in events(run_dir, "step")] == [1, 2]
    assert events(run_dir, "run_end")[-1]["reason"] == "non-finite loss"


@pytest.mark.process
def test_a_non_finite_step_found_later_is_named_and_never_saved(tmp_path: Path, micro_args: list[str]) -> None:
    """With train.log_every = 4 the figures are read at step 4 (the device is not waited for between): the
    NaN that entered at step 3 is reported as step 3's, and no checkpoint holds a step after it."""
    run_dir = tmp_path / "run"
    result = run_worker(run_dir, micro_args + ["--set", "train.log_every=4", "--set", "train.checkpoint_every=2"],
                        TRM_TEST_NAN_AT_STEP=3)
    assert result.returncode == 1
    error = events(run_dir, "error")[-1]
    assert error["kind"] == "non_finite" and error["step"] == 3 and "at step 3" in error["message"]
    assert events(run_dir, "step") == []  # step 4 was the first to be read, and it raised
    assert [e["step"] for e in events(run_dir, "checkpoint")] == [2]
    assert events(run_dir, "run_end")[-1]["step"] == 2


@pytest.mark.process
def test_the_step_a_stop_ends_on_is_logged_whatever_log_every_says(tmp_path: Path, micro_args: list[str]) -> None:
    run_dir = tmp_path / "run"
    result = run_worker(run_dir, micro_args + ["--set", "train.log_every=4", "--set", "train.checkpoint_every=100"],
                        TRM_TEST_STOP_AT_STEP=6)
    assert result.returncode == 0
    assert [e["step"] for e in events(run_dir, "step")] == [4, 6]
    assert events(run_dir, "checkpoint")[-1]["step"] == 6 and events(run_dir, "run_end")[-1]["step"] == 6


@pytest.mark.process
def test_fresh_start_refuses_an_existing_run(tmp_path: Path, micro_args: list[str]) -> None:
    run_dir = tmp_path / "run"
    assert run_worker(run_dir, micro_args + ["--set", "train.max_steps=2"]).returncode == 0
    before = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    again = run_worker(run_dir, micro_args)
    assert again.returncode == 2 and "already holds a run; use --resume" in again.stderr
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == before
    unsafe = run_worker(run_dir, ["--resume", "--set", "model.dim=64"])
    assert unsafe.returncode == 2 and "model.dim cannot change on resume" in unsafe.stderr


@pytest.mark.process
def test_step_events_carry_the_documented_fields(tmp_path: Path, micro_args: list[str]) -> None:
    run_dir = tmp_path / "run"
    assert run_worker(run_dir, micro_args + ["--set", "train.max_steps=4"]).returncode == 0
    start = events(run_dir, "run_start")[0]
    for key in ("config", "pid", "host", "device", "world_size", "resumed_from", "total_steps", "parameters"):
        assert key in start
    step = events(run_dir, "step")[0]
    for key in ("step", "epoch", "loss", "halt_loss", "accuracy", "exact", "lr", "grad_norm", "samples_per_s",
                "tokens_per_s", "step_s", "data_s", "sup_steps", "updates", "peak_mem_mb"):
        assert key in step, key
    assert 1 <= step["sup_steps"] <= 2
    saved = events(run_dir, "checkpoint")[0]
    assert saved["bytes"] == Path(saved["path"]).stat().st_size
    assert (run_dir / "config.toml").exists()


@pytest.mark.process
def test_the_last_step_is_evaluated_and_the_best_evals_checkpoint_kept(tmp_path: Path, micro_args: list[str]) -> None:
    """14 steps, evals every 4 and checkpoints every 2: the run's last step is evaluated whatever eval_every says
    (its headline is its final model's), and the checkpoint of the best eval outlives keep_checkpoints = 1."""
    run = tmp_path / "run"
    done = run_worker(run, [*micro_args, "--set", "train.max_steps=14", "--set", "train.checkpoint_every=2",
                            "--set", "train.keep_checkpoints=1"])
    assert done.returncode == 0, done.stderr
    evals = events(run, "eval")
    assert [e["step"] for e in evals] == [4, 8, 12, 14]
    best_step = evals[-1]["best_step"]
    kept = sorted(int(p.stem.split("-")[1]) for p in (run / "checkpoints").glob("step-*.pt"))
    assert kept == sorted({14, best_step}), kept


@pytest.mark.process
@pytest.mark.parametrize("key, value", [("model.dim", "10000000"), ("model.expansion_factor", "1e7")])
def test_a_size_no_machine_holds_is_refused_before_anything_is_allocated(tmp_path: Path, micro_args: list[str],
                                                                          key: str, value: str) -> None:
    run = tmp_path / "run"
    done = run_worker(run, [*micro_args, "--set", f"{key}={value}"], timeout=120)
    assert done.returncode == 2 and "this run needs at least" in done.stderr and f"{key} = " in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and not run.exists()  # nothing left of a start that never trained
