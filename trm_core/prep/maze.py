"""Maze datasets (``trm-tui data maze``): the Maze-Hard CSV in, the reference format out.

The CSV has a header and the columns ``source, q, a, rating``: ``q`` the maze and ``a`` the same maze with the
shortest path drawn, each a square grid written row by row in the characters ``# SGo`` (wall, open, start,
goal, path). Tokens as the reference writes them: pad 0, then the five characters as 1..5, vocab 6, seq_len
the grid's cells (900 for 30x30). With ``--aug`` each training maze also appears under the 7 other dihedral
transforms (rotations and reflections keep a shortest path shortest), as one group.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np

from trm_core.config import ConfigError
from trm_core.prep.csv_rows import csv_rows
from trm_core.prep.dihedral import dihedral
from trm_core.prep.output import BuildSummary, building, hold_out
from trm_core.prep.puzzle_format import PuzzleMetadata, write_split

CHARSET = "# SGo"


def read_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(mazes, solved mazes) as (n, side, side) token grids; a bad row is an error naming file and line."""
    to_token = {ch: i + 1 for i, ch in enumerate(CHARSET)}
    grids_q, grids_a, side = [], [], None
    for where, (_source, q, a, _rating) in csv_rows(path):
        n = math.isqrt(len(q))
        if n * n != len(q) or len(a) != len(q):
            raise ConfigError(f"{where}: the maze has {len(q)} cells and its solution {len(a)}; both must be the "
                              f"same square grid")
        if side is None:
            side = n
        elif n != side:
            raise ConfigError(f"{where}: a {n}x{n} maze after {side}x{side} ones; one size per file")
        for what, text in (("maze", q), ("solution", a)):
            bad = next((ch for ch in text if ch not in to_token), None)
            if bad is not None:
                raise ConfigError(f"{where}: {bad!r} in the {what}; expected one of {CHARSET!r}")
        qs, as_ = np.array([to_token[c] for c in q]), np.array([to_token[c] for c in a])
        if np.any((qs != as_) & (as_ != to_token["o"])):
            raise ConfigError(f"{where}: the solution changes more than the path cells of the maze")
        grids_q.append(qs.reshape(n, n))
        grids_a.append(as_.reshape(n, n))
    if not grids_q:
        raise ConfigError(f"{path}: no mazes")
    return np.array(grids_q, dtype=np.uint8), np.array(grids_a, dtype=np.uint8)


def encode(mazes: np.ndarray, solved: np.ndarray, aug: bool,
           progress: Callable[[int], None] = lambda n: None) -> dict[str, np.ndarray]:
    copies = 8 if aug else 1
    n, side = len(mazes), mazes.shape[1]
    inputs = np.empty((n * copies, side * side), dtype=np.uint8)
    labels = np.empty_like(inputs)
    for i in range(n):
        for t in range(copies):
            inputs[i * copies + t] = dihedral(mazes[i], t).reshape(-1)
            labels[i * copies + t] = dihedral(solved[i], t).reshape(-1)
        progress(i + 1)
    total = n * copies
    return {"inputs": inputs, "labels": labels, "puzzle_identifiers": np.zeros(total, dtype=np.int32),
            "puzzle_indices": np.arange(total + 1, dtype=np.int32),
            "group_indices": np.arange(0, total + 1, copies, dtype=np.int32)}


def build(train_csv: Path, out: Path, test_csv: Path | None = None, aug: bool = False, seed: int = 0,
          test_fraction: float = 0.1,
          progress: Callable[[str, int, int], None] = lambda what, done, total: None) -> BuildSummary:
    """Build ``out``; without ``test_csv`` a fixed fraction of the mazes is held out before augmentation."""
    mazes, solved = read_csv(train_csv)
    if test_csv is not None:
        test_q, test_a = read_csv(test_csv)
        if test_q.shape[1:] != mazes.shape[1:]:
            raise ConfigError(f"{test_csv}: {test_q.shape[1]}x{test_q.shape[1]} mazes, but {train_csv} has "
                              f"{mazes.shape[1]}x{mazes.shape[1]}")
    else:
        held, kept = hold_out(len(mazes), test_fraction, np.random.default_rng(seed), train_csv, "maze")
        test_q, test_a = mazes[held], solved[held]
        mazes, solved = mazes[kept], solved[kept]
    seq_len = mazes.shape[1] * mazes.shape[2]
    with building(out) as tmp:
        summary = BuildSummary(out)
        for split, q, a, copies in (("train", mazes, solved, aug), ("test", test_q, test_a, False)):
            arrays = encode(q, a, copies, lambda done, total=len(q): progress(split, done, total))
            groups = len(arrays["group_indices"]) - 1
            meta = PuzzleMetadata(pad_id=0, ignore_label_id=0, blank_identifier_id=0, vocab_size=len(CHARSET) + 1,
                                  seq_len=seq_len, num_puzzle_identifiers=1, total_groups=groups,
                                  mean_puzzle_examples=1.0, total_puzzles=len(arrays["puzzle_indices"]) - 1,
                                  sets=["all"])
            summary.bytes += write_split(tmp, split, meta, {"all": arrays})
            summary.add(split, puzzles=meta.total_puzzles, groups=groups, rows=len(arrays["inputs"]))
        (tmp / "identifiers.json").write_text('["<blank>"]')
    return summary
