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
