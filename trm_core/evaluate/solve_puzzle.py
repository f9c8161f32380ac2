"""A puzzle of the user's own through a trained model: a Sudoku string, a maze drawing, or an ARC task file,
encoded as the dataset builders encode, run through every supervision step as the eval runs, and decoded.

A puzzle the model never trained on has no trained puzzle embedding. Sudoku and Maze configs do not use one
(``model.puzzle_emb_len = 0`` in the paper's), so nothing is lost. For ARC the blank identifier stands in, as
the reference does for a new task, unless the task is one of the dataset's (then its own identifiers); and the
task runs under several disguises (its own from the dataset, or fresh ones) whose answers, mapped back, vote.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trm_core.config import ConfigError
from trm_core.data.base import IGNORE, Batch
from trm_core.evaluate.arc.vote import grid_hash
from trm_core.evaluate.loaded import LoadedCheckpoint
from trm_core.evaluate.test_time.settings import TestTime
from trm_core.evaluate.trace import BatchRecord, StepTrace
from trm_core.prep.arc import SEPARATOR, SIDE, _grid, crop, disguise, to_canvas, undo
from trm_core.prep.maze import CHARSET
from trm_core.evaluate.batch_pass import evaluate_batches
from trm_core.evaluate.batch_size import check_fits

FRESH_DISGUISES = 8  # for an ARC task the dataset does not know: the original and 7 disguises vote


@dataclass
class Solved:
    """The model's answer to one puzzle (for ARC, to one test input): its tokens after each supervision step,
    the step halting would stop at, and the halting confidence at the end."""

    inputs: np.ndarray              # (seq,) the puzzle's tokens
    steps: list[np.ndarray]         # the answer's tokens after each supervision step
    halt_step: int
    confidence: float
    votes: list[dict[str, Any]] = field(default_factory=list)  # ARC: the voted answers (grid, votes, confidence)
    note: str = ""
    # with K trajectories: each one's answer at exit, its halting confidence there and its exit step; which kept
    trajectories: list[tuple[np.ndarray, float, int]] = field(default_factory=list)
    chosen: int = 0


def parse_sudoku(text: str) -> np.ndarray:
    """81 characters, '.' or '0' a blank, digits 1-9 (whitespace and | - + box drawing ignored)."""
    cells = [c for c in text if not c.isspace() and c not in "|-+"]
    if len(cells) != 81:
        raise ConfigError(f"a Sudoku has 81 cells; this one has {len(cells)}")
    bad = sorted({c for c in cells if c not in ".0123456789"})
    if bad:
        raise ConfigError(f"a Sudoku's cells are 1-9 and '.' or '0' for a blank; found {' '.join(map(repr, bad))}")
    from trm_core.prep.sudoku_rules import conflicts

    clash = conflicts([0 if c in ".0" else int(c) for c in cells])
    if clash:
        raise ConfigError(f"this Sudoku breaks its own rules, so it has no solution: {'; '.join(clash)}")
    return np.array([1 if c in ".0" else int(c) + 1 for c in cells], dtype=np.int64)


@dataclass
class SudokuVerdict:
    """A model's Sudoku answer as a solver shows it: the givens in place, where the model disagreed with one,
    and whether the filled grid is a solution."""

    filled: np.ndarray                      # (81,) tokens: each given as given, the model's token elsewhere
    disagreed: list[dict[str, Any]]         # {"cell": "r1c4", "given": 2, "model": 1 or None}, reading order
    valid: bool                             # every row, column and box holds 1..9 once, in ``filled``
    problems: list[str]                     # why not: the blank cells, the digits that stand twice
    given_labels: np.ndarray                # (81,) the givens as labels, IGNORE elsewhere: a drawing marks
    #                                         the model's tokens that differ from them

    def describe(self) -> list[str]:
        return [f"{d['cell']}: given {d['given']}, model {d['model'] if d['model'] is not None else 'blank'}"
                for d in self.disagreed]


def sudoku_verdict(inputs: np.ndarray, answer: np.ndarray) -> SudokuVerdict:
    """Keep the puzzle's givens (tokens 2..10 in ``inputs``) over the model's ``answer``; a small model
    often rewrites some of them, which says something about it but is no part of the answer to show."""
    from trm_core.prep.sudoku_rules import cell_name, conflicts, is_valid_solution

    given = inputs >= 2
    filled = np.where(given, inputs, answer).astype(np.int64)
    disagreed = [{"cell": cell_name(i), "given": int(inputs[i]) - 1,
                  "model": int(answer[i]) - 1 if 2 <= answer[i] <= 10 else None}
                 for i in np.flatnonzero(given & (answer != inputs))]
    digits = [int(t) - 1 if 2 <= t <= 10 else 0 for t in filled]
    blanks = [cell_name(i) for i, d in enumerate(digits) if d == 0]
    problems = ([f"{len(blanks)} cell{'s' if len(blanks) > 1 else ''} left blank ({', '.join(blanks)})"]
                if blanks else []) + conflicts(digits)
    return SudokuVerdict(filled, disagreed, is_valid_solution(digits), problems, np.where(given, inputs, IGNORE))


def parse_maze(text: str, seq_len: int) -> np.ndarray:
    """A square maze drawn in the characters '#' wall, ' ' open, 'S' start, 'G' goal, one row a line."""
    rows = [line.rstrip("\n") for line in text.splitlines() if line.strip()]
    side = math.isqrt(seq_len)
    if len(rows) != side or any(len(r) != side for r in rows):
        sizes = sorted({len(r) for r in rows})
        raise ConfigError(f"this model solves {side}x{side} mazes; the maze given has {len(rows)} rows of "
                          f"{'/'.join(map(str, sizes)) or 0} characters")
    bad = sorted({c for r in rows for c in r if c not in CHARSET})
    if bad:
        raise ConfigError(f"a maze is drawn in '#', ' ', 'S', 'G' (and 'o' for a path); found {' '.join(map(repr, bad))}")
    text = "".join(rows).replace("o", " ")
    for mark in "SG":
        if text.count(mark) != 1:
            raise ConfigError(f"a maze has one start S and one goal G; this one has {text.count(mark)} {mark}")
    return np.array([CHARSET.index(c) + 1 for c in text], dtype=np.int64)


def parse_arc(text: str, where: str) -> list[np.ndarray]:
    """An ARC task file's test inputs (``{"train": [...], "test": [{"input": grid}, ...]}``)."""
    try:
        task = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{where}: not JSON ({exc})") from None
    tests = task.get("test") if isinstance(task, dict) else None
    if not isinstance(tests, list) or not tests or not all(isinstance(t, dict) and "input" in t for t in tests):
        raise ConfigError(f"{where}: an ARC task has a \"test\" list of {{\"input\": grid}} objects")
    return [_grid(t["input"], f"{where}: test input {k + 1}") for k, t in enumerate(tests)]


def run_puzzles(loaded: LoadedCheckpoint, tokens: np.ndarray, puzzle_ids: np.ndarray,
                test_time: TestTime = TestTime()) -> list[BatchRecord]:
    """Each row of ``tokens`` through every supervision step (the eval's rules, with ``test_time``'s settings),
    recorded step by step."""
    records: list[BatchRecord] = []
    ev = test_time.apply(loaded.ev)
    check_fits(ev, loaded.cfg.model, loaded.dataset.vocab_size, len(tokens), "a puzzle's rows (its disguises)")
    inputs = torch.from_numpy(np.ascontiguousarray(tokens, dtype=np.int64))
    batch = Batch(inputs, torch.full_like(inputs, IGNORE), puzzle_ids=torch.from_numpy(puzzle_ids.astype(np.int64)))
    evaluate_batches(ev, [batch], trace=StepTrace(ev.halt_logit_threshold, records.append))
    return records


def _steps(record: BatchRecord, row: int) -> list[np.ndarray]:
    answer = record.first[row].astype(np.int64).copy()
    out = [answer.copy()]
    for s in range(1, int(record.exit_step[row])):
        moved = record.changes[(record.changes[:, 0] == row) & (record.changes[:, 1] == s)]
        answer[moved[:, 2]] = moved[:, 3]
        out.append(answer.copy())
    return out


def _trajectories(record: BatchRecord, row: int) -> tuple[list[tuple[np.ndarray, float, int]], int]:
    """Row ``row``'s trajectories (answer, confidence, exit step) and the one kept; none for one trajectory."""
    if record.trajectory_final is None or record.trajectory_prob is None or record.trajectory_exit is None:
        return [], 0
    kept = int(record.chosen[row]) if record.chosen is not None else 0
    return [(record.trajectory_final[row, k].astype(np.int64), float(record.trajectory_prob[row, k]),
             int(record.trajectory_exit[row, k])) for k in range(record.trajectory_final.shape[1])], kept


def solve_tokens(loaded: LoadedCheckpoint, tokens: np.ndarray, test_time: TestTime = TestTime()) -> Solved:
    """A Sudoku or a maze (no puzzle embedding needed)."""
    record = run_puzzles(loaded, tokens[None], np.zeros(1, dtype=np.int64), test_time)[0]
    exit_step = int(record.exit_step[0])
    trajectories, kept = _trajectories(record, 0)
    return Solved(tokens, _steps(record, 0), int(record.halt_step[0]), float(record.halt_prob[0, exit_step - 1]),
                  trajectories=trajectories, chosen=kept)


def solve_arc(loaded: LoadedCheckpoint, task_id: str, test_inputs: list[np.ndarray], seed: int = 0,
              test_time: TestTime = TestTime()) -> list[Solved]:
    """Each test input under the task's disguises; the answers mapped back and voted (votes, then confidence);
    with K trajectories every trajectory of every disguise votes."""
    names = _identifiers(loaded)
    known = [(i, n) for i, n in enumerate(names) if i and n.split(SEPARATOR)[0] == task_id]
    if known:
        disguises = [(i, n, undo(n)[1]) for i, n in known]
        note = f"task {task_id} is in the training data: its own {len(known)} puzzle embeddings vote"
    else:
        rng = np.random.default_rng(seed)
        fresh = [(task_id, lambda g: g)] + [disguise(task_id, rng) for _ in range(FRESH_DISGUISES - 1)]
        disguises = [(0, n, undo(n)[1]) for n, _ in fresh]
        applies = [apply for _, apply in fresh]
        note = (f"task {task_id or '(unnamed)'} is not in the training data: no trained puzzle embedding, so the "
                f"blank identifier stands in (as the reference does); {len(fresh)} disguises vote")
    out = []
    for grid in test_inputs:
        rows, ids = [], []
        for k, (ident, name, _back) in enumerate(disguises):
            shown = _apply_named(name, grid) if known else applies[k](grid)
            rows.append(to_canvas(shown, 0, 0, *shown.shape))
            ids.append(ident)
        record = run_puzzles(loaded, np.stack(rows).astype(np.int64), np.array(ids), test_time)[0]
        tally: dict[str, dict[str, Any]] = {}
        _, _, answers, confidence = record.voters()
        per_disguise = len(answers) // len(disguises)
        for k, (_, _, back) in enumerate(disguises):
            for voter in range(k * per_disguise, (k + 1) * per_disguise):
                answer = back(crop(answers[voter].astype(np.uint8)))
                entry = tally.setdefault(grid_hash(answer), {"grid": answer.tolist(), "votes": 0, "confidence": 0.0})
                entry["votes"] += 1
                entry["confidence"] += float(confidence[voter])
        votes = sorted(({**v, "confidence": v["confidence"] / v["votes"]} for v in tally.values()),
                       key=lambda v: (v["votes"], v["confidence"]), reverse=True)
        exit_step = int(record.exit_step[0])
        trajectories, kept = _trajectories(record, 0)
        out.append(Solved(rows[0], _steps(record, 0), int(record.halt_step[0]),
                          float(record.halt_prob[0, exit_step - 1]), votes, note, trajectories, kept))
    return out


def _apply_named(name: str, grid: np.ndarray) -> np.ndarray:
    """The disguise a dataset's identifier names, applied to an original grid (the inverse of ``undo``)."""
    from trm_core.prep.dihedral import dihedral

    if SEPARATOR not in name:
        return grid
    _, t, perm = name.split(SEPARATOR)
    colours = np.array([int(c) for c in perm], dtype=np.uint8)
    return dihedral(colours[grid], int(t[1:]))


def _identifiers(loaded: LoadedCheckpoint) -> list[str]:
    if not loaded.cfg.data.dataset_dir:  # a --model without a dataset: no task is known
        return []
    path = Path(loaded.cfg.data.dataset_dir) / "identifiers.json"
    try:
        return [str(n) for n in json.loads(path.read_text())]
    except (OSError, ValueError, TypeError):
        return []


def arc_grid_of(tokens: np.ndarray) -> np.ndarray:
    return crop(np.asarray(tokens, dtype=np.int64).astype(np.uint8).reshape(-1)[:SIDE * SIDE])
