"""The predictions browser's model, apart from its widgets: the list of examples (sorted and filtered) and the
picture of one example at one supervision step. A test asks it every question without a terminal."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Group
from rich.table import Table
from rich.text import Text

from trm_core.evaluate.predictions import NO_TARGET as IGNORE
from trm_core.evaluate.predictions import ARC_VOTES, METRICS, Predictions
from trm_tui.predictions import render

SORTS = ("index", "failures first", "least confident", "puzzle")
FILTERS = ("all", "failures", "solved")


@dataclass(frozen=True)
class Row:
    index: int
    puzzle: int
    solved: bool
    confidence: float  # the halting probability at exit
    steps: int         # supervision steps run
    halt_step: int     # where halting would have stopped it
    wrong: int         # cells wrong at exit


class Examples:
    """An eval folder's examples: rows for the list, pictures for the detail pane."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.preds = Predictions.open(folder / "predictions")
        self.index = self.preds.index
        self.task = str(self.index.get("task", "tokens"))
        try:
            self.metrics: dict[str, Any] = json.loads((folder / METRICS).read_text())
        except (OSError, ValueError):
            self.metrics = {}
        self.rows = self._rows()
        self._arc: _ArcMapping | None = _ArcMapping.load(self.index) if self.task == "arc" else None
        self._votes: dict | None = None

    def _rows(self) -> list[Row]:
        p = self.preds
        n = len(p)
        exit_step = np.asarray(p["exit_step"], dtype=np.int64)
        confidence = np.asarray(p["halt_prob"])[np.arange(n), np.maximum(exit_step, 1) - 1]
        solved = np.asarray(p["exact"])[np.arange(n), np.maximum(exit_step, 1) - 1]
        wrong = np.zeros(n, dtype=np.int64)
        for lo in range(0, n, 4096):  # in chunks: a big split's labels are memory-mapped, never read whole
            labels = np.asarray(p["labels"][lo:lo + 4096])
            final = np.asarray(p["final"][lo:lo + 4096]).astype(labels.dtype)
            wrong[lo:lo + 4096] = (self._scored(lo, labels) & (final != labels)).sum(1)
        ids, halts = np.asarray(p["puzzle_ids"]), np.asarray(p["halt_step"])
        return [Row(i, int(ids[i]), bool(solved[i]), float(confidence[i]), int(exit_step[i]), int(halts[i]),
                    int(wrong[i])) for i in range(n)]

    def _scored(self, first: int, labels: np.ndarray) -> np.ndarray:
        """The positions an answer is judged on, for the rows from ``first``: the hidden bytes of the code task
        (the visible ones are the input, copied), every labelled position elsewhere."""
        if "hidden" in self.preds.arrays:
            return np.asarray(self.preds["hidden"][first:first + len(labels)]).astype(bool) & (labels != IGNORE)
        return labels != IGNORE

    def view(self, sort: str = "index", keep: str = "all", puzzle: int | None = None) -> list[Row]:
        """The rows to list: ``keep`` all, failures or solved ones, of one ``puzzle`` or all, in ``sort`` order."""
        rows = [r for r in self.rows if (keep == "all" or r.solved == (keep == "solved"))
                and (puzzle is None or r.puzzle == puzzle)]
        if sort == "failures first":
            rows.sort(key=lambda r: (r.solved, -r.wrong, r.index))
        elif sort == "least confident":
            rows.sort(key=lambda r: (r.confidence, r.index))
        elif sort == "puzzle":
            rows.sort(key=lambda r: (r.puzzle, r.index))
        return rows

    def puzzle_name(self, row: Row) -> str:
        if self._arc is not None:
            return self._arc.name(row.puzzle)
        return str(row.puzzle)

    # -- the detail pane --------------------------------------------------------------------------------

    def picture(self, row: Row, step: int, width: int = 80) -> Group:
        """Example ``row`` after supervision step ``step``: a header line, the boards, a legend."""
        p, i = self.preds, row.index
        answer = p.answer(i, step)
        changed = np.zeros(len(answer), dtype=bool)
        changed[p.changed(i, step)] = True
        truth = np.asarray(p["labels"][i]).astype(np.int64)
        given = np.asarray(p["inputs"][i]).astype(np.int64)
        exact_now = bool(np.asarray(p["exact"])[i, step - 1])
        cells = render.Cells(answer.astype(np.int64), truth, given, changed)
        scored = self._scored(i, truth[None])[0]
        wrong = int((cells.wrong() & scored).sum())
        unit = f"of {int(scored.sum())} hidden bytes" if "hidden" in p.arrays else "cells"
        header = Text()
        header.append(f"example {i}", style="bold")
        header.append(f"  puzzle {self.puzzle_name(row)}  step {step}/{row.steps}")
        trained = p.index.get("trained_supervision_steps")
        if isinstance(trained, int) and step > trained:  # test-time compute: a step training never ran
            header.append(f" (past the trained {trained})", "bold magenta")
        header.append(f" (halting at {row.halt_step})" if row.halt_step <= row.steps else "")
        header.append(f"  confidence {float(np.asarray(p['halt_prob'])[i, step - 1]):.2f}  ")
        header.append("RIGHT" if exact_now else f"WRONG: {wrong} {unit}", style="bold green" if exact_now else "bold red")
        changed_count = int((changed & scored).sum()) if "hidden" in p.arrays else int(changed.sum())
        header.append(f"  {changed_count} changed at this step" if step > 1 else "")
        parts: list[Any] = [header]
        if self.task == "sudoku":
            parts.append(_side_by_side([("answer", render.sudoku(answer, cells)), ("truth", render.sudoku(truth))], width))
        elif self.task == "maze":
            parts.append(_side_by_side([("answer", render.maze(answer, cells)), ("truth", render.maze(truth))], width))
        elif self.task == "arc":
            parts += self._arc_picture(row, answer, truth, given, changed, width)
        elif self.task == "code":
            hidden = np.asarray(p["hidden"][i]) if "hidden" in p.arrays else None
            parts.append(render.code(cells, hidden))
        else:
            parts += [Text("answer", style="bold"), render.tokens(cells), Text("truth", style="bold"),
                      render.tokens(render.Cells(truth))]
        if p.trajectories > 1:
            parts += self._trajectories_of(i, truth, scored)
        legend = render.CODE_LEGEND if self.task == "code" else render.LEGEND
        parts.append(Text(legend + "   left/right: step", style="dim"))
        return Group(*parts)

    def _trajectories_of(self, i: int, truth: np.ndarray, scored: np.ndarray, shown: int = 16) -> list[Any]:
        """With K trajectories: each one's answer at exit judged against the truth, its confidence there and
        the step it stopped at; the kept one (whose steps the boards show) marked."""
        p = self.preds
        finals = np.asarray(p["trajectory_final"][i]).astype(np.int64)
        probs, exits, kept = np.asarray(p["trajectory_prob"][i]), np.asarray(p["trajectory_exit"][i]), int(p["chosen"][i])
        select = p.index.get("select", "q")
        rule = "the most confident" if select == "q" else "the most common answer"
        out: list[Any] = [Text(f"{len(finals)} trajectories (noise {p.index.get('noise', 0):g}); kept: {rule}",
                               style="bold")]
        for k in range(min(shown, len(finals))):
            wrong = int(((finals[k] != truth) & scored).sum())
            same = "" if k == kept or not (finals[k] == finals[kept]).all() else ", as the kept one"
            line = Text(f"{'*' if k == kept else ' '} {k + 1:>3}  confidence {float(probs[k]):.2f}  "
                        f"stopped at step {int(exits[k])}  ")
            line.append("RIGHT" if wrong == 0 else f"{wrong} wrong", style="green" if wrong == 0 else "red")
            line.append(same + ("  (kept)" if k == kept else ""), style="bold" if k == kept else "dim")
            out.append(line)
        if len(finals) > shown:
            right = int(((finals != truth) & scored).sum(1).__eq__(0).sum())
            out.append(Text(f"  and {len(finals) - shown} more; {right} of all {len(finals)} right", style="dim"))
        return out

    def _arc_picture(self, row: Row, answer: np.ndarray, truth: np.ndarray, given: np.ndarray, changed: np.ndarray,
                     width: int) -> list[Any]:
        assert self._arc is not None
        arc = self._arc
        a, t, g = arc.grid(row.puzzle, answer), arc.grid(row.puzzle, np.where(truth < 0, 0, truth)), arc.grid(row.puzzle, given)
        moved = arc.mask(row.puzzle, changed, a.shape)
        wrong, word = render.grid_diff(a, t)
        boards = _side_by_side([("input", render.arc_grid(g)), (f"answer ({word})", render.arc_grid(a, wrong, moved)),
                                ("truth", render.arc_grid(t))], width)
        parts: list[Any] = [boards]
        if not arc.mapped:
            parts.append(Text("identifiers.json not found beside the dataset: grids shown as the model saw them",
                              style="dim"))
        parts += self._votes_of(arc.name(row.puzzle).split("|||")[0], g)
        return parts

    def _votes_of(self, base: str, input_grid: np.ndarray) -> list[Any]:
        """ARC: the voted answers to this example's original test input, with their votes."""
        if self._votes is None:
            try:
                self._votes = json.loads((self.folder / ARC_VOTES).read_text())
            except (OSError, ValueError):
                self._votes = {}
        for k, entry in enumerate(self._votes.get(base, [])):
            if entry.get("input") is not None and np.array_equal(np.array(entry["input"]), input_grid):
                out: list[Any] = [Text(f"votes for test input {k + 1} of {base} (pass@2 takes the first two):",
                                       style="bold")]
                for n, ans in enumerate(entry["answers"][:4], 1):
                    out.append(Text(f"{n}. {ans['votes']} votes, confidence {ans['confidence']:.2f}"
                                    + ("  right" if ans["correct"] else ""), style="green" if ans["correct"] else ""))
                return out
        return []


def _side_by_side(boards: list[tuple[str, Text]], width: int) -> Any:
    """Boards in one row when they fit the width, else one under the other."""
    widths = [max(len(title), max((len(line) for line in board.plain.splitlines()), default=0)) for title, board in boards]
    if sum(widths) + 3 * (len(boards) - 1) <= width:
        table = Table.grid(padding=(0, 3))
        for _ in boards:
            table.add_column()
        table.add_row(*(Text(title, style="bold") for title, _ in boards))
        table.add_row(*(board for _, board in boards))
        return table
    return Group(*(part for title, board in boards for part in (Text(title, style="bold"), board)))


@dataclass
class _ArcMapping:
    """ARC's canvas back to the original puzzle: crop at the end-of-grid marks, then undo the augmentation the
    puzzle identifier names (``identifiers.json`` beside the dataset)."""

    names: list[str]
    mapped: bool

    @classmethod
    def load(cls, index: dict[str, Any]) -> "_ArcMapping":
        path = Path(str(index.get("dataset_dir") or "")) / "identifiers.json"
        try:
            names = json.loads(path.read_text())
            return cls([str(n) for n in names], True)
        except (OSError, ValueError, TypeError):
            return cls([], False)

    def name(self, puzzle: int) -> str:
        return self.names[puzzle] if 0 <= puzzle < len(self.names) else str(puzzle)

    def grid(self, puzzle: int, tokens: np.ndarray) -> np.ndarray:
        from trm_core.prep.arc import crop, undo

        grid = crop(np.asarray(tokens, dtype=np.int64).astype(np.uint8))
        if not self.mapped or grid.size == 0:
            return grid
        return undo(self.name(puzzle))[1](grid)

    def mask(self, puzzle: int, flags: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
        """A per-cell flag of the canvas, cropped and turned as the grid was (colours do not apply)."""
        from trm_core.prep.arc import SEPARATOR, SIDE
        from trm_core.prep.dihedral import undo as undo_dihedral

        if len(shape) != 2 or 0 in shape:
            return None
        name = self.name(puzzle)
        t = int(name.split(SEPARATOR)[1][1:]) if self.mapped and SEPARATOR in name else 0
        rows, cols = (shape[1], shape[0]) if t in (1, 3, 6, 7) else shape  # the canvas crop before the turn
        canvas = np.asarray(flags).reshape(SIDE, SIDE)[:rows, :cols]
        out = undo_dihedral(canvas, t)
        return out if out.shape == shape else None
