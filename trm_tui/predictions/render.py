"""An example drawn as its task draws it: a Sudoku board with box lines, a maze with its path, ARC grids in the
ARC palette, code with the hidden bytes in place, else the tokens. Pure functions of token arrays to Rich text,
shared by the predictions browser and ``trm-tui solve``.

Marks hold without colour (NO_COLOR, a monochrome terminal): a wrong cell is drawn in reverse video, a cell that
changed at the step shown is underlined, a given (an input cell the model did not have to find) is dim.
Colours are named in full; Rich and Textual bring them down to what the terminal has (true colour, 256, 16).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
from rich.text import Text

from trm_core.evaluate.predictions import NO_TARGET as IGNORE

WRONG = "reverse bold red"
CHANGED = "underline"
GIVEN = "dim"
RIGHT = "bold"
# the ARC Prize's palette, colours 0..9
ARC_PALETTE = ("#000000", "#0074D9", "#FF4136", "#2ECC40", "#FFDC00", "#AAAAAA", "#F012BE", "#FF851B", "#7FDBFF",
               "#870C25")
MAZE_CHARS = " # SGo"  # token 0 pad, then wall, open, start, goal, path
LEGEND = "reverse: wrong   underline: changed at this step   dim: given"
CODE_LEGEND = "dim: the visible text   underline green: a hidden byte the model got right   reverse: one it got wrong"


def no_color() -> bool:
    return bool(os.environ.get("NO_COLOR"))


@dataclass
class Cells:
    """One example at one step, as flat token arrays of the same length."""

    answer: np.ndarray                 # the model's tokens
    truth: np.ndarray | None = None    # the label tokens (IGNORE where unsupervised)
    given: np.ndarray | None = None    # the input tokens
    changed: np.ndarray | None = None  # bool: changed at the step shown

    def wrong(self) -> np.ndarray:
        if self.truth is None:
            return np.zeros(len(self.answer), dtype=bool)
        return (self.truth != IGNORE) & (self.answer != self.truth)

    def was_changed(self) -> np.ndarray:
        return self.changed if self.changed is not None else np.zeros(len(self.answer), dtype=bool)


def _style(wrong: bool, changed: bool, base: str = "") -> str:
    return " ".join(s for s in (base, WRONG if wrong else "", CHANGED if changed else "") if s)


# -- Sudoku -----------------------------------------------------------------------------------------------

def sudoku_char(token: int) -> str:
    """Tokens as the reference writes them: 1 a blank, 2..10 the digits 1..9."""
    return str(token - 1) if 2 <= token <= 10 else "·"


def sudoku(tokens: np.ndarray, cells: Cells | None = None) -> Text:
    """A 9x9 board with box lines; with ``cells``, the answer's wrong and changed cells marked, givens dim."""
    wrong = cells.wrong() if cells is not None else np.zeros(81, dtype=bool)
    changed = cells.was_changed() if cells is not None else np.zeros(81, dtype=bool)
    given = (cells.given >= 2) if cells is not None and cells.given is not None else np.zeros(81, dtype=bool)
    out = Text()
    for r in range(9):
        if r in (3, 6):
            out.append("──────┼───────┼──────\n", style="dim")
        for c in range(9):
            if c in (3, 6):
                out.append("│ ", style="dim")
            i = r * 9 + c
            out.append(sudoku_char(int(tokens[i])), style=_style(bool(wrong[i]), bool(changed[i]),
                                                                 GIVEN if given[i] else ""))
            if c < 8:
                out.append(" ")
        out.append("\n")
    return out


# -- Maze -------------------------------------------------------------------------------------------------

def maze(tokens: np.ndarray, cells: Cells | None = None) -> Text:
    """The maze's characters (# wall, S start, G goal, o the path), the path bold."""
    side = math.isqrt(len(tokens))
    wrong = cells.wrong() if cells is not None else np.zeros(len(tokens), dtype=bool)
    changed = cells.was_changed() if cells is not None else np.zeros(len(tokens), dtype=bool)
    out = Text()
    for r in range(side):
        for c in range(side):
            i = r * side + c
            t = int(tokens[i])
            ch = MAZE_CHARS[t] if 0 <= t < len(MAZE_CHARS) else "?"
            base = "dim" if ch == "#" else ("bold green" if ch == "o" else ("bold" if ch in "SG" else ""))
            out.append(ch, style=_style(bool(wrong[i]), bool(changed[i]), base))
        out.append("\n")
    return out


# -- ARC --------------------------------------------------------------------------------------------------

def arc_grid(grid: np.ndarray, wrong: np.ndarray | None = None, changed: np.ndarray | None = None,
             plain: bool | None = None) -> Text:
    """A grid of colours 0..9, two columns a cell: coloured blocks, or the digits where there is no colour
    (``plain``, NO_COLOR). A wrong cell shows an x over its colour (in reverse without colour)."""
    plain = no_color() if plain is None else plain
    out = Text()
    if grid.size == 0:
        return Text("(empty grid)\n", style="dim")
    for r in range(grid.shape[0]):
        for c in range(grid.shape[1]):
            v = int(grid[r, c])
            bad = wrong is not None and bool(wrong[r, c])
            moved = changed is not None and bool(changed[r, c])
            if plain:
                out.append(f"{v} ", style=_style(bad, moved))
                continue
            colour = ARC_PALETTE[v] if 0 <= v < 10 else "#FFFFFF"
            ink = "white" if v in (0, 1, 9) else "black"
            text = "××" if bad else ("··" if moved else "  ")
            out.append(text, style=f"bold {ink} on {colour}" + (" underline" if moved else ""))
        out.append("\n")
    return out


def grid_diff(answer: np.ndarray, truth: np.ndarray | None) -> tuple[np.ndarray | None, str]:
    """Where an ARC answer differs from the truth, and a word on it (a grid of another shape is all wrong)."""
    if truth is None:
        return None, ""
    if answer.shape != truth.shape:
        return None, f"wrong shape: {answer.shape[0]}x{answer.shape[1] if answer.ndim > 1 else 0}, " \
                     f"the answer is {truth.shape[0]}x{truth.shape[1]}"
    wrong = answer != truth
    return wrong, ("right" if not wrong.any() else f"{int(wrong.sum())} cells wrong")


# -- code and plain tokens --------------------------------------------------------------------------------

def code(cells: Cells, hidden: np.ndarray | None) -> Text:
    """The source as the truth has it, with the model's bytes in place of the hidden ones: right ones
    underlined green, wrong ones in reverse."""
    truth = cells.truth if cells.truth is not None else cells.answer
    hidden = hidden if hidden is not None else np.zeros(len(truth), dtype=bool)
    out = Text()
    for i in range(len(truth)):
        if hidden[i]:
            t, bad = int(cells.answer[i]), bool(cells.answer[i] != truth[i])
            out.append(_byte(t), style=WRONG if bad else "underline green")
        else:
            out.append(_byte(int(truth[i])), style="dim")
    return out


def _byte(t: int) -> str:
    if t == 10:
        return "⏎\n"
    if t == 9:
        return "→"
    if 32 <= t < 127:
        return chr(t)
    return "□" if t < 256 else ""


def tokens(cells: Cells) -> Text:
    wrong, changed = cells.wrong(), cells.was_changed()
    out = Text()
    for i, t in enumerate(cells.answer.tolist()):
        out.append(str(t), style=_style(bool(wrong[i]), bool(changed[i])))
        out.append(" ")
    return out
