"""``train.compile = "auto"``: the trial's rule on given step times, and the worker running it for real: the
verdict in the log and the checkpoint, a resume that keeps it, a compile that fails falling back to eager."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trm_core.control.run_status import run_status
from trm_core.rundir import checkpoints as ckpt
from trm_core.train.compile_choice import (COMPILE_GUESS_S, EAGER_WARMUP, MEASURED, TRIAL_STEPS, CompileTrial,
                                           CompileVerdict)

from helpers import cli_run, events, run_worker


def run_trial(trial: CompileTrial, eager_s: float, compiled_s: float,
              compile_s: float) -> list[tuple[bool, CompileVerdict | None]]:
    """Feeds the trial the time of each step it asks for; returns (ran compiled, verdict) per step."""
    seen = []
    while trial.measuring:
        compiled = trial.compiled_next
        first_compiled = compiled and not any(c for c, _ in seen)
        step_s = (compiled_s + compile_s if first_compiled else compiled_s) if compiled else eager_s
        seen.append((compiled, trial.observe(step_s)))
    return seen


def test_a_faster_compiled_step_is_kept_and_its_payback_said() -> None:
    trial = CompileTrial(10_000)
    seen = run_trial(trial, eager_s=0.10, compiled_s=0.05, compile_s=30.0)
    eager_steps = EAGER_WARMUP + MEASURED
    assert [c for c, _ in seen] == [False] * eager_steps + [True] * (TRIAL_STEPS - eager_steps)
    verdict = seen[-1][1]
    assert verdict is not None and verdict.compiled and trial.compiled_next
    assert (verdict.eager_step_s, verdict.compiled_step_s, verdict.compile_s) == (0.10, 0.05, 30.0)
    assert verdict.payback_steps == 601
    assert "2.00x faster" in verdict.reason and "paid back after 601 steps" in verdict.reason


def test_a_compiled_step_no_faster_goes_back_to_eager() -> None:
    trial = CompileTrial(10_000)
    verdict = run_trial(trial, eager_s=0.10, compiled_s=0.099, compile_s=30.0)[-1][1]
    assert verdict is not None and not verdict.compiled and not trial.compiled_next
    assert "not faster" in verdict.reason and verdict.payback_steps is None


def test_a_run_too_short_to_pay_never_compiles() -> None:
    few = CompileTrial(4 * TRIAL_STEPS - 1)
    assert few.verdict is not None and not few.verdict.compiled and not few.measuring
    quick = CompileTrial(1000)  # 1,000 steps of 0.1 s: 100 s eager, less than two guessed compiles
    seen = run_trial(quick, eager_s=0.1, compiled_s=0.01, compile_s=1.0)
    assert not any(c for c, _ in seen) and len(seen) == EAGER_WARMUP + MEASURED
    verdict = seen[-1][1]
    assert verdict is not None and not verdict.compiled and f"up to {COMPILE_GUESS_S:.0f} s" in verdict.reason


def test_a_compile_that_fails_is_an_eager_verdict() -> None:
    trial = CompileTrial(10_000)
    while not trial.compiled_next:
        trial.observe(0.1)
    verdict = trial.failed(RuntimeError("no C++ compiler\nmore lines"))
    assert not verdict.compiled and not trial.measuring and not trial.compiled_next
    assert verdict.reason == "the compile failed (RuntimeError: no C++ compiler)"


@pytest.mark.process
def test_auto_on_a_short_run_stays_eager_and_a_resume_keeps_the_verdict(tmp_path: Path,
                                                                       micro_args: list[str]) -> None:
    run_dir = tmp_path / "run"
    args = micro_args + ["--set", "train.compile='auto'", "--set", "train.max_steps=6"]
    assert run_worker(run_dir, args).returncode == 0
    [choice] = events(run_dir, "compile")
    assert choice["compiled"] is False and "too few to measure" in choice["reason"] and choice["step"] == 0
    state = ckpt.load_checkpoint(ckpt.newest_verified(run_dir / "checkpoints")[0], map_location=torch.device("cpu"))
    assert state["compiled"] is False
    shown = cli_run("status", "--run-dir", str(run_dir))
    assert "compile     eager: 6 steps to go: too few to measure" in shown.stdout, shown.stdout
    # a log read from past its compile event: the checkpoint's sidecar still says it
    far = run_status(run_dir, tail_bytes=200)
    assert (far.compiled, far.compile_reason) == (False, None)
    assert run_worker(run_dir, ["--resume", "--set", "train.max_steps=8"]).returncode == 0
    assert len(events(run_dir, "compile")) == 1  # the checkpoint's verdict, not a new trial
    assert not (run_dir / "compile-cache").exists() or not any((run_dir / "compile-cache").rglob("*.so"))


@pytest.mark.process
@pytest.mark.slow
def test_auto_times_both_keeps_the_faster_and_a_restart_compiles_from_the_cache(tmp_path: Path,
                                                                             micro_args: list[str]) -> None:
    """A real compile on this CPU (about a minute cold): the trial measures both networks and says which won;
    the resumed run takes the verdict without measuring, and if compiled, reads the run's compile cache."""
    run_dir = tmp_path / "run"
    args = micro_args + ["--set", "train.compile='auto'", "--set", "train.carry='refill'",
                         "--set", f"train.max_steps={TRIAL_STEPS + 2}", "--set", "train.checkpoint_every=100"]
    assert run_worker(run_dir, args, TRM_TEST_COMPILE_GUESS_S=0).returncode == 0
    [choice] = events(run_dir, "compile")
    print(f"\n{choice}")
    assert choice["step"] == TRIAL_STEPS and choice["compiled_step_s"] > 0 and choice["compile_s"] > 0
    assert any((run_dir / "compile-cache").rglob("*")), "the compile cache is in the run dir"
    assert run_worker(run_dir, ["--resume", "--set", f"train.max_steps={TRIAL_STEPS + 4}"]).returncode == 0
    assert len(events(run_dir, "compile")) == 1
    if choice["compiled"]:  # the resumed run compiled its first step again, from the run's cache
        first = next(e for e in events(run_dir, "step") if e["step"] == TRIAL_STEPS + 3)
        print(f"resumed first step {first['step_s']:.1f} s, with the compile from the cache; the trial's compile "
              f"{choice['compile_s']:.1f} s")
        assert first["step_s"] < choice["compile_s"] / 2


@pytest.mark.process
def test_a_compile_that_fails_under_auto_falls_back_to_eager(tmp_path: Path, micro_args: list[str]) -> None:
    """No working C++ compiler (CXX points at /bin/false): Inductor fails at the first compiled step; the run
    records why and goes on eager, every step trained once."""
    run_dir = tmp_path / "run"
    args = micro_args + ["--set", "train.compile='auto'", "--set", f"train.max_steps={TRIAL_STEPS + 2}",
                         "--set", "train.checkpoint_every=100"]
    result = run_worker(run_dir, args, TRM_TEST_COMPILE_GUESS_S=0, CXX="/bin/false",
                        TORCHINDUCTOR_CACHE_DIR=str(tmp_path / "cache"))
    assert result.returncode == 0, result.stderr[-2000:]
    [choice] = events(run_dir, "compile")
    assert choice["compiled"] is False and choice["reason"].startswith("the compile failed (")
    assert choice["step"] == EAGER_WARMUP + MEASURED
    assert [e["step"] for e in events(run_dir, "step")] == list(range(1, TRIAL_STEPS + 3))
    assert events(run_dir, "run_end")[-1]["status"] == "completed"
