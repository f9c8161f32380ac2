"""The run's best eval by the task's figure, kept by the worker across a stop and a resume, and shown beside the
score it aims at (train.target_score: the paper's, in the paper presets) by status, runs and the eval chart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trm_core.rundir.records import Eval
from trm_core.rundir.scores import after_eval, best_of, headline

from helpers import cli_run, events, run_worker


def test_the_task_figure_and_the_best_of_it() -> None:
    assert headline({"exact": 0.5, "accuracy": 0.9}) == ("exact", 0.5)
    assert headline({"exact": 0.5, "pass_at_2": 0.25}) == ("pass@2", 0.25)  # ARC: puzzles solved in two tries
    assert headline({"exact": 0.1, "masked_accuracy": 0.4}) == ("masked acc", 0.4)
    assert headline({"exact": None, "accuracy": 0.9}) is None
    assert best_of((0.5, 4), 0.5, 8) == (0.5, 4)  # a tie keeps the earlier step
    assert best_of((0.5, 4), 0.6, 8) == (0.6, 8) and best_of(None, None, 8) is None
    old = Eval(step=4, epoch=1, seconds=1.0, loss=1.0, accuracy=0.9, masked_accuracy=None, exact=0.3, sup_steps=2.0,
               samples=8)
    carried = Eval(step=8, epoch=1, seconds=1.0, loss=1.0, accuracy=0.9, masked_accuracy=None, exact=0.2,
                   sup_steps=2.0, samples=8, best_score=0.7, best_step=2)
    assert after_eval(None, old) == (0.3, 4)
    assert after_eval(after_eval(None, old), carried) == (0.7, 2)  # an eval before the part of the log read


@pytest.mark.process
def test_the_best_eval_survives_a_resume_and_stands_beside_the_target(tmp_path: Path, micro_args: list[str]) -> None:
    run_dir = tmp_path / "runs" / "aim"
    run_dir.parent.mkdir()
    args = micro_args + ["--set", "train.max_steps=16", "--set", "train.target_score=0.9",
                         "--set", "train.target_name=paper"]
    first = run_worker(run_dir, args, TRM_TEST_STOP_AT_STEP=9)
    assert first.returncode == 0, first.stderr
    second = run_worker(run_dir, ["--resume"])
    assert second.returncode == 0, second.stderr

    evals = events(run_dir, "eval")
    assert [e["step"] for e in evals] == [4, 8, 12, 16]
    best = None
    for e in evals:  # every eval carries the best so far, the evals before the resume included
        best = best_of(best, e["masked_accuracy"], e["step"])
        assert (e["best_score"], e["best_step"]) == best

    status = json.loads(cli_run("status", "--run-dir", str(run_dir), "--json").stdout)
    assert (status["best_score"], status["best_step"]) == best
    assert (status["eval_metric"], status["eval_score"]) == ("masked acc", evals[-1]["masked_accuracy"])
    assert (status["target_score"], status["target_name"]) == (0.9, "paper")
    rows = dict(line.split(None, 1) for line in cli_run("status", "--run-dir", str(run_dir)).stdout.splitlines())
    assert rows["eval"] == (f"masked acc {evals[-1]['masked_accuracy']:.3f}; best {best[0]:.3f} at step "
                            f"{best[1]} (paper 0.900)")
    listed = cli_run("runs", "--root", str(run_dir.parent)).stdout
    assert f"{best[0]:.3f} (paper 0.900)" in listed


def test_the_best_eval_is_found_however_far_back_the_newest_eval_lies(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A paper preset evaluates every few thousand steps: its newest eval may lie further back than any tail
    read. The worker's start reads back to it (window by window, a line cut by a window's edge made whole);
    status takes the best from the newest checkpoint's sidecar, written with it."""
    from trm_core.control.run_status import run_status
    from trm_core.rundir import checkpoints as ckpt
    from trm_core.rundir import log_queries
    from trm_core.rundir.events import EventWriter
    from trm_core.rundir.records import Step

    log = tmp_path / "events.jsonl"
    writer = EventWriter(log)
    writer.emit(Eval(step=5, epoch=1, seconds=1.0, loss=1.0, accuracy=0.9, masked_accuracy=None, exact=0.25,
                     sup_steps=2.0, samples=8, best_score=0.5, best_step=3))
    for step in range(6, 400):
        writer.emit(Step(step=step, total_steps=400, epoch=1, loss=1.0, halt_loss=0.1, accuracy=0.5, exact=0.0,
                         lr=1e-3, grad_norm=1.0, sup_steps=2.0, step_s=0.1, samples_per_s=10.0, tokens_per_s=100.0,
                         data_s=0.0, masked_accuracy=None, updates=2, peak_mem_mb=1.0))
    for window in (97, 1000, 1 << 20):  # smaller than a line, a few lines, the whole log
        monkeypatch.setattr(log_queries, "TAIL_BYTES", window)
        assert log_queries.best_eval(log) == (0.5, 3)
    assert log_queries.best_eval(tmp_path / "no-log.jsonl") is None

    monkeypatch.setattr(log_queries, "TAIL_BYTES", 1 << 20)
    import torch
    ckpt.save_checkpoint(tmp_path / "checkpoints", {"w": torch.zeros(1)}, step=399, epoch=1, loss=1.0,
                         config_hash="x", best=(0.5, 3))
    status = run_status(tmp_path, tail_bytes=1000)  # a tail with no eval in it
    assert (status.best_score, status.best_step, status.eval_score) == (0.5, 3, None)
