"""ARC's pass@k: predictions cropped at their end-of-grid marks, mapped back through each augmentation's inverse,
voted per original test input; and the worker reporting it on a real (tiny) ARC set."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from trm_core.evaluate.arc.vote import ArcVoting, grid_hash
from trm_core.prep.arc import SIDE, crop, disguise, to_canvas

from helpers import cli_run, events, run_worker

RIGHT_A0 = np.array([[1, 2], [3, 4]], dtype=np.uint8)
RIGHT_A1 = np.array([[5, 5, 5]], dtype=np.uint8)
RIGHT_B0 = np.array([[7]], dtype=np.uint8)
INPUT_A0, INPUT_A1, INPUT_B0 = (np.array([[1]], dtype=np.uint8), np.array([[2, 0]], dtype=np.uint8),
                                np.array([[3], [3]], dtype=np.uint8))
WRONG = [np.array([[9, 9]], dtype=np.uint8), np.array([[0]], dtype=np.uint8), np.array([[6, 6], [6, 6]], dtype=np.uint8)]


def _canvas(grid: np.ndarray) -> np.ndarray:
    return to_canvas(grid, 0, 0, *grid.shape)


def _voting(copies: int) -> tuple[ArcVoting, dict[str, list]]:
    """Two puzzles, A with two test inputs and B with one, each in ``copies`` disguises (the first plain)."""
    rng = np.random.default_rng(3)
    names, disguises = ["<blank>"], {}
    for pid in ("A", "B"):
        disguises[pid] = [(pid, lambda g: g)] + [disguise(pid, rng) for _ in range(copies - 1)]
        names += [name for name, _ in disguises[pid]]
    solutions = {"A": [(grid_hash(INPUT_A0), grid_hash(RIGHT_A0)), (grid_hash(INPUT_A1), grid_hash(RIGHT_A1))],
                 "B": [(grid_hash(INPUT_B0), grid_hash(RIGHT_B0))]}
    return ArcVoting(names, solutions), disguises


def _vote(voting: ArcVoting, disguises: dict, pid: str, copy: int, given: np.ndarray, answer: np.ndarray,
          confidence: float) -> None:
    """One disguised copy's prediction, as the model would give it: disguised input and answer on canvases."""
    name, apply = disguises[pid][copy]
    voting.add(np.array([voting.identifiers.index(name)]), _canvas(apply(given))[None],
               _canvas(apply(answer))[None], np.array([confidence]))


def test_scripted_predictions_give_the_expected_pass_at_k() -> None:
    voting, dis = _voting(copies=4)
    # A, first input: the right answer has 3 votes of 4: solved at pass@1
    for copy in range(3):
        _vote(voting, dis, "A", copy, INPUT_A0, RIGHT_A0, 0.5)
    _vote(voting, dis, "A", 3, INPUT_A0, WRONG[0], 0.99)
    # A, second input: a wrong answer leads with 2 votes; the right one ties another wrong one at 1 vote and wins
    # the tie on halting confidence: second place, solved at pass@2 only
    _vote(voting, dis, "A", 0, INPUT_A1, WRONG[1], 0.2)
    _vote(voting, dis, "A", 1, INPUT_A1, WRONG[1], 0.2)
    _vote(voting, dis, "A", 2, INPUT_A1, RIGHT_A1, 0.9)
    _vote(voting, dis, "A", 3, INPUT_A1, WRONG[2], 0.1)
    # B: the right answer comes third
    for copy, answer in ((0, WRONG[0]), (1, WRONG[0]), (2, WRONG[2]), (3, RIGHT_B0)):
        _vote(voting, dis, "B", copy, INPUT_B0, answer, 0.5)
    assert voting.result() == {"pass_at_1": pytest.approx(0.25), "pass_at_2": pytest.approx(0.5), "voted_puzzles": 2}
    # the confidence decides the tie: with the right answer less sure than its rival, A's second input is lost
    voting.reset()
    for copy, (answer, q) in enumerate(((WRONG[1], 0.2), (WRONG[1], 0.2), (RIGHT_A1, 0.1), (WRONG[2], 0.9))):
        _vote(voting, dis, "A", copy, INPUT_A1, answer, q)
    assert voting.result() == {"pass_at_1": 0.0, "pass_at_2": 0.0, "voted_puzzles": 1}


def test_blank_identifiers_are_padding_and_unknown_ones_are_an_error() -> None:
    voting, dis = _voting(copies=2)
    voting.add(np.array([0]), _canvas(INPUT_B0)[None], _canvas(RIGHT_B0)[None], np.array([1.0]))
    assert voting.result() == {"pass_at_1": 0.0, "pass_at_2": 0.0, "voted_puzzles": 0}
    with pytest.raises(ValueError, match="puzzle identifier 99"):
        voting.add(np.array([99]), _canvas(INPUT_B0)[None], _canvas(RIGHT_B0)[None], np.array([1.0]))


def test_crop_takes_the_largest_all_colour_rectangle_at_the_top_left() -> None:
    grid = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8)
    assert np.array_equal(crop(_canvas(grid)), grid)
    full = np.full((SIDE, SIDE), 3, dtype=np.uint8)  # a 30x30 answer has no end-of-grid marks at all
    assert crop(full.reshape(-1)).shape == (SIDE, SIDE)
    ragged = _canvas(np.full((3, 4), 2, dtype=np.uint8)).reshape(SIDE, SIDE).copy()
    ragged[0, 4] = 5  # a prediction that runs past the mark on its first row only
    ragged[2, 2] = 1  # and puts a stray end-of-grid mark inside
    assert crop(ragged.reshape(-1)).shape == (2, 4)  # 2x4 (area 8) beats 1x5 and 3x2
    assert crop(np.zeros(SIDE * SIDE, dtype=np.uint8)).shape == (0, 0)  # all padding: an empty answer, no error


@pytest.mark.process
def test_training_on_a_built_arc_set_reports_pass_at_k(tmp_path: Path) -> None:
    src = tmp_path / "arc"
    src.mkdir()
    puzzles = {f"p{i:07d}": {"train": [{"input": [[i % 9 + 1, 0]], "output": [[0, i % 9 + 1]]}],
                             "test": [{"input": [[i % 9 + 1]]}]} for i in range(3)}
    solutions = {pid: [[[i % 9 + 1]]] for i, pid in enumerate(puzzles)}
    for subset in ("training", "evaluation"):
        (src / f"arc-agi_{subset}_challenges.json").write_text(json.dumps(puzzles))
        (src / f"arc-agi_{subset}_solutions.json").write_text(json.dumps(solutions))
    out = tmp_path / "ds"
    built = cli_run("data", "arc", "--json-dir", str(src), "--subsets", "training,evaluation",
                    "--test-set", "evaluation", "--out", str(out), "--aug", "2")
    assert built.returncode == 0, built.stderr
    assert set(json.loads((out / "test_puzzles.json").read_text())) == set(puzzles)
    sets = ["data.kind='puzzles'", f"data.dataset_dir='{out}'", "model.dim=16", "model.depth=1",
            "model.latent_steps=1", "model.refinement_blocks=1", "model.max_supervision_steps=2",
            "train.batch_size=4", "train.max_steps=4", "train.eval_every=2", "train.eval_batches=0",
            "train.threads=1", "train.warmup_steps=1"]
    run = run_worker(tmp_path / "run", [a for s in sets for a in ("--set", s)], timeout=300)
    assert run.returncode == 0, run.stderr
    evals = events(tmp_path / "run", "eval")
    assert len(evals) == 2
    for ev in evals:
        assert ev["samples"] == 9  # 3 test inputs x (the original and 2 disguises)
        assert ev["voted_puzzles"] == 3 and 0 <= ev["pass@1"] <= ev["pass@2"] <= 1
    end = events(tmp_path / "run", "run_end")[-1]
    assert "pass@2" in end["score"]
