"""Sudoku datasets: the Sudoku-Extreme CSV in, the reference format out (``trm-tui data sudoku``), and a
generator that writes that CSV (``trm-tui data sudoku-generate``), so everything runs with no download.

The CSV has a header and the columns ``source, q, a, rating``: ``q`` the puzzle (81 characters, ``.`` or
``0`` a blank), ``a`` its solution. Tokens as the reference builder writes them: pad 0, blank 1, digits 1..9 as
2..10, vocab 11, seq_len 81, labels ignored where they equal 0 (pad). Each training puzzle and its ``--aug``
augmentations form one group, so an epoch draws each original puzzle once, under one of its disguises.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from trm_core.config import ConfigError
from trm_core.prep.csv_rows import HEADER, csv_rows
from trm_core.prep.output import BuildSummary, building, hold_out
from trm_core.prep.sudoku_rules import generate, is_valid_solution, shuffle
from trm_core.prep.puzzle_format import PuzzleMetadata, write_split

@dataclass
class SudokuRows:
    puzzles: np.ndarray    # (n, 81) uint8, 0 = blank
    solutions: np.ndarray  # (n, 81) uint8, 1..9


def read_csv(path: Path, min_difficulty: float | None = None) -> SudokuRows:
    """Every row checked; a bad one is an error naming the file and the line."""
    puzzles, solutions = [], []
    for where, (_source, q, a, rating) in csv_rows(path):
        if min_difficulty is not None:
            try:
                if float(rating) < min_difficulty:
                    continue
            except ValueError:
                raise ConfigError(f"{where}: rating {rating!r} is not a number") from None
        given = _cells(q, where, "puzzle", blanks=True)
        solution = _cells(a, where, "solution", blanks=False)
        if any(g and g != s for g, s in zip(given, solution)):
            raise ConfigError(f"{where}: the solution does not match the puzzle's givens")
        if not is_valid_solution(solution):
            raise ConfigError(f"{where}: the solution is not a valid sudoku (a row, column or box repeats a digit)")
        puzzles.append(given)
        solutions.append(solution)
    if not puzzles:
        raise ConfigError(f"{path}: no puzzles" + (f" rated {min_difficulty} or more" if min_difficulty else ""))
    return SudokuRows(np.array(puzzles, dtype=np.uint8), np.array(solutions, dtype=np.uint8))


def _cells(text: str, where: str, what: str, blanks: bool) -> list[int]:
    if len(text) != 81:
        raise ConfigError(f"{where}: the {what} has {len(text)} characters; a sudoku has 81")
    cells = []
    for ch in text:
        if ch in ".0" and blanks:
            cells.append(0)
        elif "1" <= ch <= "9":
            cells.append(ord(ch) - 48)
        else:
            allowed = "1..9, '.' or '0' for a blank" if blanks else "1..9"
            raise ConfigError(f"{where}: {ch!r} in the {what}; expected {allowed}")
    return cells


def encode(rows: SudokuRows, aug: int, rng: np.random.Generator,
           progress: Callable[[int], None] = lambda n: None) -> dict[str, np.ndarray]:
    """The reference's arrays: each puzzle then ``aug`` shuffled copies, one group per original."""
    n = len(rows.puzzles)
    total = n * (1 + aug)
    inputs = np.empty((total, 81), dtype=np.uint8)
    labels = np.empty((total, 81), dtype=np.uint8)
    k = 0
    for i in range(n):
        board, solution = rows.puzzles[i], rows.solutions[i]
        for copy in range(1 + aug):
            x, y = (board, solution) if copy == 0 else shuffle(board, solution, rng)
            inputs[k], labels[k] = x.reshape(-1) + 1, y.reshape(-1) + 1
            k += 1
        progress(i + 1)
    return {"inputs": inputs, "labels": labels,
            "puzzle_identifiers": np.zeros(total, dtype=np.int32),
            "puzzle_indices": np.arange(total + 1, dtype=np.int32),
            "group_indices": np.arange(0, total + 1, 1 + aug, dtype=np.int32)}


def metadata(arrays: dict[str, np.ndarray]) -> PuzzleMetadata:
    groups = len(arrays["group_indices"]) - 1
    return PuzzleMetadata(pad_id=0, ignore_label_id=0, blank_identifier_id=0, vocab_size=11, seq_len=81,
                          num_puzzle_identifiers=1, total_groups=groups, mean_puzzle_examples=1.0,
                          total_puzzles=len(arrays["puzzle_indices"]) - 1, sets=["all"])


def build(train_csv: Path, out: Path, test_csv: Path | None = None, subsample: int | None = None, aug: int = 0,
          min_difficulty: float | None = None, seed: int = 0, test_fraction: float = 0.1,
          progress: Callable[[str, int, int], None] = lambda what, done, total: None) -> BuildSummary:
    """Build ``out`` (train/ and test/). Without ``test_csv`` a fixed ``test_fraction`` of the training CSV's
    puzzles is held out, before augmentation, so no test puzzle is seen in any disguise while training."""
    rng = np.random.default_rng(seed)
    train = read_csv(train_csv, min_difficulty)
    if test_csv is not None:
        test = read_csv(test_csv, min_difficulty)
    else:
        held, kept = hold_out(len(train.puzzles), test_fraction, rng, train_csv, "puzzle")
        test = SudokuRows(train.puzzles[held], train.solutions[held])
        train = SudokuRows(train.puzzles[kept], train.solutions[kept])
    if subsample is not None and subsample < len(train.puzzles):
        keep = np.sort(rng.choice(len(train.puzzles), size=subsample, replace=False))
        train = SudokuRows(train.puzzles[keep], train.solutions[keep])
    with building(out) as tmp:
        summary = BuildSummary(out)
        for split, rows, copies in (("train", train, aug), ("test", test, 0)):
            arrays = encode(rows, copies, rng, lambda done, total=len(rows.puzzles): progress(split, done, total))
            summary.bytes += write_split(tmp, split, metadata(arrays), {"all": arrays})
            summary.add(split, puzzles=len(arrays["puzzle_indices"]) - 1, groups=len(arrays["group_indices"]) - 1,
                        rows=len(arrays["inputs"]))
        (tmp / "identifiers.json").write_text('["<blank>"]')
    return summary


def write_generated(out_csv: Path, count: int, blanks: int, seed: int = 0,
                    progress: Callable[[int, int], None] = lambda done, total: None) -> None:
    """``count`` puzzles with ``blanks`` blanks and unique solutions, in the Sudoku-Extreme CSV layout (the
    rating column holds the number of blanks). The same seed writes the same file."""
    rng = random.Random(seed)
    tmp = out_csv.with_name(f".{out_csv.name}.tmp")
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(HEADER)
            for i in range(count):
                puzzle, solution = generate(blanks, rng)
                writer.writerow([f"generated-{seed}-{i}", "".join(str(v) if v else "." for v in puzzle),
                                 "".join(map(str, solution)), blanks])
                progress(i + 1, count)
        tmp.replace(out_csv)
    finally:
        tmp.unlink(missing_ok=True)
