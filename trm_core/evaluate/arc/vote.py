"""ARC's pass@k: every augmented copy of a test input votes for an answer, and a puzzle counts as solved when
the right grid is among its k most voted answers (the ARC Prize allows two attempts, so pass@2 is the score).

Each prediction is cropped at its end-of-grid marks (``crop``), mapped back to the original puzzle's colours
and orientation through the inverse of its augmentation (named in ``identifiers.json``), and filed under the
original puzzle and the original test input it answers (found by hashing the input mapped back the same way).
Answers are ranked by votes, ties by the mean halting confidence of their voters. A puzzle scores the share of
its test inputs answered right; pass@k is the mean over the puzzles the eval saw. This follows the reference
implementation's evaluator (its ``test_puzzles.json`` and ``identifiers.json`` are read as they are), written
anew here.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from trm_core.config import ConfigError, DataConfig
from trm_core.prep.arc import crop, read_json, undo

TEST_PUZZLES = "test_puzzles.json"
IDENTIFIERS = "identifiers.json"


def arc_set_dir(data: DataConfig) -> Path | None:
    """The folder of a run's data when it is an ARC set (its test puzzles beside train/ and test/), else None:
    the one test of "is this ARC" from the data's folder."""
    if data.kind != "puzzles" or not data.dataset_dir:
        return None
    root = Path(data.dataset_dir).expanduser()
    return root if (root / TEST_PUZZLES).exists() else None


def voting_for(data: DataConfig) -> "ArcVoting | None":
    """ARC's voting for a run's data, built from its folder; None for any other data (Sudoku, Maze, code)."""
    root = arc_set_dir(data)
    return ArcVoting.from_dataset(root) if root is not None else None


def grid_hash(grid: np.ndarray) -> str:
    """A grid's identity: its shape and its cells (as the reference hashes grids, so hashes agree)."""
    grid = np.ascontiguousarray(grid, dtype=np.uint8)
    return hashlib.sha256(bytes(grid.shape) + grid.tobytes()).hexdigest()


@dataclass
class _Answer:
    votes: int = 0
    confidence: float = 0.0  # summed; divided by votes when ranked
    grid: list | None = None  # the answer itself, in the original puzzle's colours and orientation

    def rank_key(self) -> tuple[int, float]:
        return self.votes, self.confidence / self.votes


@dataclass
class ArcVoting:
    """The answers of one eval, voted per original test input. ``add`` takes a batch of predictions; ``result``
    gives the pass@k figures; ``reset`` starts the next eval."""

    identifiers: list[str]
    # original puzzle -> [(input hash, answer hash)] for each of its test pairs
    solutions: dict[str, list[tuple[str, str]]]
    ks: Sequence[int] = (1, 2)
    # original puzzle -> its test pairs as the dataset's test_puzzles.json gives them (input and output grids)
    tests: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _answers: dict[str, dict[str, dict[str, _Answer]]] = field(default_factory=dict)
    _undo: dict[int, tuple[str, Callable[[np.ndarray], np.ndarray]]] = field(default_factory=dict)

    @classmethod
    def from_dataset(cls, dataset_dir: Path) -> "ArcVoting | None":
        """The voting for a dataset with ARC's test puzzles beside it; None for any other (Sudoku, Maze)."""
        puzzles_path, ids_path = dataset_dir / TEST_PUZZLES, dataset_dir / IDENTIFIERS
        if not puzzles_path.exists():
            return None
        where = "an ARC dataset keeps it beside train/ and test/"
        puzzles, identifiers = read_json(puzzles_path, where), read_json(ids_path, where)
        if not isinstance(identifiers, list) or not all(isinstance(n, str) for n in identifiers):
            raise ConfigError(f"{ids_path}: expected a list of puzzle identifier names")
        if not isinstance(puzzles, dict):
            raise ConfigError(f"{puzzles_path}: expected an object of ARC puzzles by id")
        solutions, tests = {}, {}
        for name, puzzle in puzzles.items():
            try:
                solutions[name] = [(grid_hash(np.array(pair["input"])), grid_hash(np.array(pair["output"])))
                                   for pair in puzzle["test"]]
                tests[name] = list(puzzle["test"])
            except (KeyError, TypeError, ValueError):
                raise ConfigError(f"{puzzles_path}: puzzle {name}: expected test pairs with input and output "
                                  f"grids") from None
        return cls(identifiers, solutions, tests=tests)

    def reset(self) -> None:
        self._answers = {}

    def empty(self) -> "ArcVoting":
        """Another voting over the same puzzles with no answers yet (one checkpoint's own votes)."""
        return ArcVoting(self.identifiers, self.solutions, self.ks, self.tests, _undo=self._undo)

    def _inverse(self, identifier: int) -> tuple[str, Callable[[np.ndarray], np.ndarray]]:
        if identifier not in self._undo:
            if not 0 <= identifier < len(self.identifiers):
                raise ValueError(f"puzzle identifier {identifier} is not in {IDENTIFIERS} "
                                 f"({len(self.identifiers)} names)")
            self._undo[identifier] = undo(self.identifiers[identifier])
        return self._undo[identifier]

    def add(self, identifiers: np.ndarray, inputs: np.ndarray, predictions: np.ndarray,
            confidence: np.ndarray) -> None:
        """One batch: puzzle identifiers (batch,), input and predicted tokens (batch, 900), and the halting
        head's probability at exit (batch,). Blank identifiers (0, padding) are skipped."""
        for ident, tokens, pred, q in zip(identifiers.tolist(), inputs, predictions, confidence.tolist()):
            if ident == 0:
                continue
            name, back = self._inverse(int(ident))
            input_hash = grid_hash(back(crop(tokens)))
            grid = back(crop(pred))
            answer = self._answers.setdefault(name, {}).setdefault(input_hash, {}) \
                .setdefault(grid_hash(grid), _Answer())
            if answer.grid is None:
                answer.grid = grid.tolist()
            answer.votes += 1
            answer.confidence += float(q)

    def ranked(self, name: str, input_hash: str) -> list[tuple[str, _Answer]]:
        """The answers to one original test input, most voted first (ties: the more confident)."""
        return sorted(self._answers.get(name, {}).get(input_hash, {}).items(), key=lambda kv: kv[1].rank_key(),
                      reverse=True)

    def answers(self, top: int = 10) -> dict[str, list[dict[str, Any]]]:
        """Each voted puzzle's test inputs in its own order, each with its ``top`` answers: the grid, its votes,
        the mean halting confidence of its voters and whether it is the right one (arc_votes.json)."""
        out: dict[str, list[dict[str, Any]]] = {}
        for name in sorted(self._answers):
            pairs = self.solutions.get(name, [])
            tests = self.tests.get(name, [{}] * len(pairs))
            out[name] = [{"input": test.get("input"), "output": test.get("output"),
                          "answers": [{"grid": a.grid, "votes": a.votes,
                                       "confidence": round(a.confidence / a.votes, 6), "correct": h == answer_hash}
                                      for h, a in self.ranked(name, input_hash)[:top]]}
                         for (input_hash, answer_hash), test in zip(pairs, tests)]
        return out

    def result(self) -> dict[str, Any]:
        """``{"pass_at_1": ..., "pass_at_2": ..., "voted_puzzles": n}`` over the puzzles with any answer."""
        solved = defaultdict(float)
        seen = 0
        for name in self._answers:
            pairs = self.solutions.get(name)
            if not pairs:
                continue
            seen += 1
            hits = defaultdict(int)
            for input_hash, answer_hash in pairs:
                ranked = self.ranked(name, input_hash)
                for k in self.ks:
                    hits[k] += any(h == answer_hash for h, _ in ranked[:k])
            for k in self.ks:
                solved[k] += hits[k] / len(pairs)
        out: dict[str, Any] = {f"pass_at_{k}": (solved[k] / seen if seen else 0.0) for k in self.ks}
        return out | {"voted_puzzles": seen}

