"""ARC evals stay separate, and an ensemble over checkpoints is an explicit choice.

The reference's ARC evaluator keeps its votes from one eval to the next (TinyRecursiveModels
``evaluators/arc.py`` lines 59-67: the answers are made once in ``__init__`` and ``begin_eval`` clears them
only ``if not self.aggregated_voting``, true by default), so its final eval votes over every checkpoint it
evaluated (its issue #35). Here each in-training eval counts only its own checkpoint's votes, and
``trm-tui eval --checkpoints A,B`` votes over the named checkpoints' answers together, beside each member's
own figures."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from helpers import cli_run, events, run_worker, small_arc_set

AUG = 2  # each test input is answered by the original and its 2 disguises: 3 votes an eval


@pytest.fixture(scope="module")
def arc_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("arc")
    small_arc_set(root, aug=AUG)
    sets = {"data.kind": "'puzzles'", "data.dataset_dir": f"'{root / 'ds'}'", "model.dim": 16, "model.depth": 1,
            "model.latent_steps": 1, "model.refinement_blocks": 1, "model.max_supervision_steps": 2,
            "train.batch_size": 6, "train.max_steps": 8, "train.eval_every": 4, "train.eval_batches": 0,
            "train.checkpoint_every": 4, "train.threads": 1, "train.warmup_steps": 2, "train.learning_rate": 0.01,
            "train.ema_decay": 0.9, "train.eval_save_predictions": "true"}
    done = run_worker(root / "run", [a for k, v in sets.items() for a in ("--set", f"{k}={v}")], timeout=300)
    assert done.returncode == 0, done.stderr
    return root / "run"


def votes_per_input(votes: dict) -> list[int]:
    return [sum(a["votes"] for a in test["answers"]) for tests in votes.values() for test in tests]


def pass_at(merged: dict, k: int) -> float:
    """pass@k from voted answers: rank by votes, then mean confidence; a puzzle scores its share of inputs."""
    per_puzzle = []
    for tests in merged.values():
        hits = 0
        for answers in tests:
            ranked = sorted(answers.values(), key=lambda a: (a["votes"], a["conf"] / a["votes"]), reverse=True)
            hits += any(a["correct"] for a in ranked[:k])
        per_puzzle.append(hits / len(tests))
    return sum(per_puzzle) / len(per_puzzle)


def merge(*all_votes: dict) -> dict:
    """Two evals' voted answers counted together, from their arc_votes.json alone."""
    out: dict = {}
    for votes in all_votes:
        for puzzle, tests in votes.items():
            slots = out.setdefault(puzzle, [defaultdict(lambda: {"votes": 0, "conf": 0.0, "correct": False})
                                            for _ in tests])
            for slot, test in zip(slots, tests):
                for a in test["answers"]:
                    entry = slot[json.dumps(a["grid"])]
                    entry["votes"] += a["votes"]
                    entry["conf"] += a["confidence"] * a["votes"]
                    entry["correct"] = a["correct"]
    return out


@pytest.mark.process
def test_each_eval_votes_alone_and_an_ensemble_is_asked_for(arc_run: Path, tmp_path: Path) -> None:
    evals = {e["step"]: e for e in events(arc_run, "eval")}
    assert sorted(evals) == [4, 8]
    alone = {s: json.loads((arc_run / "evals" / f"step-{s}-ema-test" / "arc_votes.json").read_text()) for s in (4, 8)}
    for step in (4, 8):  # the second eval did not keep the first's votes
        assert votes_per_input(alone[step]) == [AUG + 1] * 6, step
    fresh = cli_run("eval", "--run-dir", str(arc_run), "--checkpoint", "8", "--batch-size", "6", "--json",
                    timeout=300)
    assert fresh.returncode == 0, fresh.stderr
    assert json.loads(fresh.stdout)["pass@2"] == evals[8]["pass@2"]  # as a fresh eval of that checkpoint alone

    done = cli_run("eval", "--run-dir", str(arc_run), "--checkpoints", "4,8", "--batch-size", "6", "--json",
                   timeout=300)
    assert done.returncode == 0, done.stderr
    metrics = json.loads(done.stdout)
    assert metrics["ensemble"] == [4, 8] and metrics["folder"].endswith("ensemble-4+8-ema-test")
    for member in metrics["members"]:  # each member's own figures are its separate eval's
        for name in ("pass@1", "pass@2", "exact"):
            assert member[name] == evals[member["step"]][name], (member["step"], name)
        # the worker ran on train.threads = 1, the eval on the machine's threads: the attention network's
        # float32 sums may round differently in the last bits
        assert member["loss"] == pytest.approx(evals[member["step"]]["loss"], rel=1e-6), member["step"]
    voted = json.loads((Path(metrics["folder"]) / "arc_votes.json").read_text())
    assert votes_per_input(voted) == [2 * (AUG + 1)] * 6  # both checkpoints' answers in one count
    together = merge(alone[4], alone[8])
    assert metrics["pass@1"] == pytest.approx(pass_at(together, 1))
    assert metrics["pass@2"] == pytest.approx(pass_at(together, 2))


@pytest.mark.process
def test_an_ensemble_refuses_what_it_cannot_mean(arc_run: Path) -> None:
    for args, says in ((["--checkpoints", "8"], "two or more"), (["--checkpoints", "8,8"], "step 8 twice"),
                       (["--checkpoints", "4,8", "--split", "train"], "test split"), (["--checkpoints", "4,8", "--split", "test", "--checkpoint", "4"], "--checkpoints only"),
                       (["--checkpoints", "4,8", "--checkpoint", "4"], "--checkpoints only"),
                       (["--checkpoints", "4,99"], "99")):
        out = cli_run("eval", "--run-dir", str(arc_run), *args)
        assert out.returncode == 2 and says in out.stderr and "Traceback" not in out.stderr, (args, out.stderr)
