"""Sudoku itself: validity, a solution counter, a generator of puzzles with unique solutions, and the paper's
augmentations. Boards are flat sequences of 81 ints, row by row, 0 for a blank.

The counter is a bitmask backtracking search that always branches on the most constrained cell; it stops at
``limit`` solutions, so "unique" costs one search that finds one solution and fails to find a second.
"""

from __future__ import annotations

import random
from typing import Sequence

import numpy as np

ALL = 0x3FE  # bits 1..9
BOX = [(r // 3) * 3 + c // 3 for r in range(9) for c in range(9)]


def cell_name(i: int) -> str:
    """Cell ``i`` (0..80, row by row) as a solver names it: ``r3c7``."""
    return f"r{i // 9 + 1}c{i % 9 + 1}"


def conflicts(board: Sequence[int]) -> list[str]:
    """What breaks the rules in a board (0 a blank, blanks allowed): each digit that stands twice in a row,
    a column or a box, named as ``row 3 has two 5s (r3c1, r3c7)``, in reading order of the units."""
    found = []
    units = [("row", k + 1, [k * 9 + c for c in range(9)]) for k in range(9)] + \
        [("column", k + 1, [r * 9 + k for r in range(9)]) for k in range(9)] + \
        [("box", k + 1, [i for i in range(81) if BOX[i] == k]) for k in range(9)]
    for kind, number, cells in units:
        for digit in range(1, 10):
            at = [i for i in cells if board[i] == digit]
            if len(at) > 1:
                where = ", ".join(cell_name(i) for i in at)
                found.append(f"{kind} {number} has {len(at)} {digit}s ({where})")
    return found


def is_valid_solution(board: Sequence[int]) -> bool:
    """Every row, column and box holds 1..9 once."""
    if len(board) != 81 or any(not 1 <= v <= 9 for v in board):
        return False
    for k in range(9):
        row = {board[k * 9 + c] for c in range(9)}
        col = {board[r * 9 + k] for r in range(9)}
        box = {board[i] for i in range(81) if BOX[i] == k}
        if len(row) != 9 or len(col) != 9 or len(box) != 9:
            return False
    return True


def count_solutions(board: Sequence[int], limit: int = 2) -> int:
    """Solutions of ``board`` (0 = blank), counted up to ``limit``; 0 when the givens already clash."""
    rows, cols, boxes = [0] * 9, [0] * 9, [0] * 9
    empties = []
    for i, v in enumerate(board):
        if v:
            bit, r, c, b = 1 << v, i // 9, i % 9, BOX[i]
            if (rows[r] | cols[c] | boxes[b]) & bit:
                return 0
            rows[r] |= bit
            cols[c] |= bit
            boxes[b] |= bit
        else:
            empties.append(i)
    found = 0

    def search(empties: list[int]) -> None:
        nonlocal found
        if not empties:
            found += 1
            return
        best, best_mask, best_n = -1, 0, 10
        for k, i in enumerate(empties):
            mask = ALL & ~(rows[i // 9] | cols[i % 9] | boxes[BOX[i]])
            n = bin(mask).count("1")
            if n < best_n:
                best, best_mask, best_n = k, mask, n
                if n <= 1:
                    break
        if best_n == 0:
            return
        i = empties[best]
        rest = empties[:best] + empties[best + 1:]
        r, c, b = i // 9, i % 9, BOX[i]
        mask = best_mask
        while mask and found < limit:
            bit = mask & -mask
            mask ^= bit
            rows[r] |= bit
            cols[c] |= bit
            boxes[b] |= bit
            search(rest)
            rows[r] ^= bit
            cols[c] ^= bit
            boxes[b] ^= bit

    search(empties)
    return found


def random_solution(rng: random.Random) -> list[int]:
    """A random complete grid: the empty board filled by a search that tries each cell's digits in random
    order (branching on the most constrained cell). Grids differ in structure, not only by the symmetries
    that the augmentation adds later."""
    board = [0] * 81
    rows, cols, boxes = [0] * 9, [0] * 9, [0] * 9

    def fill(empties: list[int]) -> bool:
        if not empties:
            return True
        best, best_mask, best_n = 0, 0, 10
        for k, i in enumerate(empties):
            mask = ALL & ~(rows[i // 9] | cols[i % 9] | boxes[BOX[i]])
            n = bin(mask).count("1")
            if n < best_n:
                best, best_mask, best_n = k, mask, n
        if best_n == 0:
            return False
        i = empties[best]
        rest = empties[:best] + empties[best + 1:]
        digits = [v for v in range(1, 10) if best_mask >> v & 1]
        rng.shuffle(digits)
        r, c, b = i // 9, i % 9, BOX[i]
        for v in digits:
            bit = 1 << v
            rows[r] |= bit
            cols[c] |= bit
            boxes[b] |= bit
            board[i] = v
            if fill(rest):
                return True
            rows[r] ^= bit
            cols[c] ^= bit
            boxes[b] ^= bit
        board[i] = 0
        return False

    fill(list(range(81)))
    return board


# The most blanks `generate` promises. Digging a random grid cell by cell stops at 54-59 blanks (100 grids
# here: 57 the most common); swap moves (below) reach 60 in about 10 s a puzzle on 2 cores, rarely 61. Puzzles
# with one solution and 61-64 blanks exist (17 givens is the known minimum) but a random search meets them too
# seldom to promise them.
MAX_BLANKS = 60


def generate(blanks: int, rng: random.Random, max_grids: int = 1000, swaps_per_grid: int = 300,
             ) -> tuple[list[int], list[int]]:
    """A puzzle with exactly ``blanks`` blanks and one solution, and that solution.

    Blanks are dug from a random full grid in a random order, each kept only when the puzzle still has one
    solution. Where that stalls short of ``blanks`` (a minimal puzzle: every remaining given is needed), swap
    moves go on: blank a given, give back another cell that makes the solution unique again, dig again."""
    if not 0 <= blanks <= MAX_BLANKS:
        raise ValueError(f"blanks = {blanks}: at most {MAX_BLANKS} (more are too rare to generate)")
    for _ in range(max_grids):
        solution = random_solution(rng)
        puzzle = list(solution)
        _dig(puzzle, blanks, rng)
        for _ in range(swaps_per_grid):
            if puzzle.count(0) >= blanks:
                break
            if _swap(puzzle, solution, rng):
                _dig(puzzle, blanks, rng)
        if puzzle.count(0) == blanks:
            return puzzle, solution
    raise RuntimeError(f"could not dig {blanks} blanks with a unique solution in {max_grids} grids")


def _dig(puzzle: list[int], blanks: int, rng: random.Random) -> None:
    """Blank givens in a random order, each only if the solution stays unique, until ``blanks`` are blank."""
    order = [i for i in range(81) if puzzle[i]]
    rng.shuffle(order)
    for i in order:
        if puzzle.count(0) >= blanks:
            return
        keep, puzzle[i] = puzzle[i], 0
        if count_solutions(puzzle, 2) != 1:
            puzzle[i] = keep


def _swap(puzzle: list[int], solution: list[int], rng: random.Random) -> bool:
    """Blank one random given and fill one other blank from the solution so that the solution is unique
    again: the same number of blanks, another puzzle, where digging may go further."""
    given = rng.choice([i for i in range(81) if puzzle[i]])
    puzzle[given] = 0
    others = [i for i in range(81) if not puzzle[i] and i != given]
    rng.shuffle(others)
    for cell in others:
        puzzle[cell] = solution[cell]
        if count_solutions(puzzle, 2) == 1:
            return True
        puzzle[cell] = 0
    puzzle[given] = solution[given]
    return False


def shuffle(board: np.ndarray, solution: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The paper's Sudoku augmentation, the same map applied to a puzzle and its solution: a permutation of the
    digits 1..9 (blank stays 0), a transpose half of the time, the three bands shuffled and the rows inside
    each band, the three stacks shuffled and the columns inside each. Each keeps a valid grid valid."""
    digits = np.concatenate([[0], rng.permutation(9) + 1])
    transpose = rng.random() < 0.5
    rows = np.concatenate([band * 3 + rng.permutation(3) for band in rng.permutation(3)])
    cols = np.concatenate([stack * 3 + rng.permutation(3) for stack in rng.permutation(3)])

    def apply(grid: np.ndarray) -> np.ndarray:
        grid = grid.reshape(9, 9)
        grid = grid.T if transpose else grid
        return digits[grid[rows][:, cols]]
    return apply(board), apply(solution)
