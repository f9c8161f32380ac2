"""ARC-AGI datasets (``trm-tui data arc``): the ``*_challenges.json`` / ``*_solutions.json`` files in, the
reference format out.

As the reference builds them: each grid sits on a 30x30 canvas, colours 0..9 as tokens 2..11, pad 0, and an
end-of-grid token 1 along the row below and the column right of the grid (seq_len 900, vocab 12). A puzzle
of the ``--test-set`` subset gives its demonstration pairs to training and its test pairs to the test split;
a puzzle of any other subset gives all its pairs to training. ``--aug K`` adds K disguises of each puzzle:
one of the 8 dihedral transforms and a permutation of the colours 1..9 (black stays black), no two alike.
Each disguise is a puzzle of its own, with its own puzzle identifier (its embedding), named
``ID|||tT|||PERM`` in ``identifiers.json`` so a prediction can be mapped back (``undo``); a puzzle and its
disguises form one group. Training pairs but one per puzzle are also shifted to a random place on the canvas.
``test_puzzles.json`` keeps the test split's original puzzles, which eval votes against (``ArcVoting``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from trm_core.config import ConfigError
from trm_core.prep.dihedral import dihedral, undo as undo_dihedral
from trm_core.prep.output import BuildSummary, building, check_out
from trm_core.prep.puzzle_format import PuzzleMetadata, write_split

SIDE = 30
SEPARATOR = "|||"
RETRIES_PER_AUG = 5
Pair = tuple[np.ndarray, np.ndarray]


def _grid(value: Any, where: str) -> np.ndarray:
    if not (isinstance(value, list) and value and all(isinstance(row, list) and row for row in value)):
        raise ConfigError(f"{where}: a grid must be a non-empty list of non-empty rows")
    if len({len(row) for row in value}) != 1:
        raise ConfigError(f"{where}: the grid's rows differ in length")
    for r, row in enumerate(value):
        for c, cell in enumerate(row):  # JSON true is not colour 1, nor [2] colour 2
            if isinstance(cell, bool) or not isinstance(cell, int) or not 0 <= cell <= 9:
                raise ConfigError(f"{where}: row {r}, column {c} is {json.dumps(cell)}; cells must be colours 0..9")
    arr = np.array(value)
    if arr.shape[0] > SIDE or arr.shape[1] > SIDE:
        raise ConfigError(f"{where}: a {arr.shape[0]}x{arr.shape[1]} grid; ARC grids are at most {SIDE}x{SIDE}")
    return arr.astype(np.uint8)


def check_task_id(pid: str, source: Path) -> str:
    """A task id as it may be kept: a disguised puzzle's name is ``ID|||t3|||0123456789`` (``SEPARATOR``), so an
    id holding the separator would be read back as another id and disguise at every eval; an id is one printable
    line (it names the task in every message and file)."""
    problem = "is empty" if not pid else \
        f"holds {SEPARATOR!r}, which separates a task id from its disguise in the dataset" if SEPARATOR in pid else \
        "holds a character that cannot be printed" if not pid.isprintable() else None
    if problem:
        raise ConfigError(f"{source}: the task id {pid!r} {problem}; rename the task")
    return pid


def read_json(path: Path, where: str = "") -> Any:
    """A JSON file, or a ConfigError naming it (``where`` says where such a file belongs, when it is missing)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist" + (f" ({where})" if where else "")) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not readable JSON ({exc})") from None


def subset_file(json_dir: Path, subset: str) -> Path:
    """The one ``*SUBSET_challenges.json`` in ``json_dir``; an error naming what is there otherwise."""
    if not json_dir.is_dir():
        raise ConfigError(f"--json-dir {json_dir} is not a folder")
    found = sorted(json_dir.glob(f"*{subset}_challenges.json"))
    if len(found) != 1:
        there = sorted(p.name for p in json_dir.glob("*_challenges.json"))
        raise ConfigError(f"--json-dir {json_dir}: expected one *{subset}_challenges.json, found {len(found)}"
                          + (f" (it holds {', '.join(there)})" if there else " (it holds no *_challenges.json)"))
    return found[0]


def read_subset(json_dir: Path, subset: str) -> dict[str, dict[str, list[Pair]]]:
    """{puzzle id: {"train": pairs, "test": pairs}} of one subset; test outputs from the solutions file."""
    challenges_path = subset_file(json_dir, subset)
    solutions_path = challenges_path.with_name(challenges_path.name.replace("_challenges.json", "_solutions.json"))
    challenges = read_json(challenges_path)
    solutions = read_json(solutions_path) if solutions_path.exists() else None
    if not isinstance(challenges, dict):
        raise ConfigError(f"{challenges_path}: expected an object of puzzles by id")
    puzzles = {}
    for pid, puzzle in challenges.items():
        check_task_id(pid, challenges_path)
        where = f"{challenges_path}: puzzle {pid}"
        if not isinstance(puzzle, dict) or not isinstance(puzzle.get("train"), list) or \
                not isinstance(puzzle.get("test"), list):
            raise ConfigError(f"{where}: expected {{\"train\": [...], \"test\": [...]}}")
        out: dict[str, list[Pair]] = {}
        for kind in ("train", "test"):
            pairs = []
            for i, example in enumerate(puzzle[kind]):
                at = f"{where}, {kind}[{i}]"
                if not isinstance(example, dict) or "input" not in example:
                    raise ConfigError(f"{at}: expected an object with \"input\"")
                output = example.get("output")
                if output is None and kind == "test":
                    sols = solutions.get(pid) if isinstance(solutions, dict) else None
                    if not isinstance(sols, list) or i >= len(sols):
                        raise ConfigError(f"{at}: no output, and {solutions_path} has none for it")
                    output = sols[i]
                if output is None:
                    raise ConfigError(f"{at}: a demonstration pair needs an \"output\"")
                pairs.append((_grid(example["input"], f"{at} input"), _grid(output, f"{at} output")))
            out[kind] = pairs
        puzzles[pid] = out
    return puzzles


def disguise(name: str, rng: np.random.Generator) -> tuple[str, Callable[[np.ndarray], np.ndarray]]:
    """A random dihedral transform and colour permutation (black kept), and the name that records them."""
    t = int(rng.integers(0, 8))
    colours = np.concatenate([[0], rng.permutation(9) + 1]).astype(np.uint8)
    return f"{name}{SEPARATOR}t{t}{SEPARATOR}{''.join(map(str, colours))}", lambda g: dihedral(colours[g], t)


def undo(name: str) -> tuple[str, Callable[[np.ndarray], np.ndarray]]:
    """The original puzzle's id and the map that takes a disguised grid back to the original's colours and
    orientation (the identity for an undisguised name)."""
    if SEPARATOR not in name:
        return name, lambda g: g
    base, t, perm = name.split(SEPARATOR)
    inverse = np.argsort(np.array([int(c) for c in perm])).astype(np.uint8)
    return base, lambda g: inverse[undo_dihedral(g, int(t[1:]))]


def _pairs_hash(pairs: list[Pair]) -> str:
    parts = sorted(hashlib.sha256(bytes(a.shape) + a.tobytes() + bytes(b.shape) + b.tobytes()).hexdigest()
                   for a, b in pairs)
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def to_canvas(grid: np.ndarray, row: int, col: int, rows: int, cols: int) -> np.ndarray:
    """The grid's tokens at (row, col) of the 30x30 canvas, with the end-of-grid marks; ``rows``/``cols`` is
    the larger of the pair's sizes, so input and output share one frame."""
    canvas = np.zeros((SIDE, SIDE), dtype=np.uint8)
    h, w = grid.shape
    canvas[row:row + h, col:col + w] = grid + 2
    if row + h < SIDE:
        canvas[row + h, col:col + w] = 1
    if col + w < SIDE:
        canvas[row:row + h, col + w] = 1
    return canvas.reshape(-1)


def crop(tokens: np.ndarray) -> np.ndarray:
    """The grid at the top left of a canvas (where test pairs sit): the largest rectangle anchored there whose
    cells are all colours, so a prediction with stray end-of-grid or pad tokens still gives a grid (possibly
    empty). On a canvas from ``to_canvas`` at (0, 0) it is exactly the grid placed."""
    canvas = np.asarray(tokens).reshape(SIDE, SIDE)
    colour = (canvas >= 2) & (canvas <= 11)
    run = np.where(colour.all(1), SIDE, np.argmin(colour, axis=1))  # colour cells from the left, per row
    widths = np.minimum.accumulate(run)
    areas = widths * np.arange(1, SIDE + 1)
    rows = int(np.argmax(areas)) + 1  # the first of equal areas: the squatter rectangle, as the reference
    cols = int(widths[rows - 1])
    if cols == 0:
        return np.zeros((0, 0), dtype=np.uint8)
    return (canvas[:rows, :cols] - 2).astype(np.uint8)


Groups = dict[str, list[list[tuple[str, list[Pair]]]]]  # split -> each puzzle's disguises and their pairs


def build(json_dir: Path, out: Path, subsets: list[str], test_set: str, aug: int = 0, seed: int = 42,
          progress: Callable[[str, int, int], None] = lambda what, done, total: None) -> BuildSummary:
    """An ARC set in the reference's format: every subset's puzzles in disguise (``aug`` each), the test set's
    test pairs as the test split, identifiers.json and test_puzzles.json beside them for the vote."""
    if test_set not in subsets:
        raise ConfigError(f"--test-set {test_set} is not one of --subsets {','.join(subsets)}")
    check_out(out)
    for subset in subsets:  # every input found before the first is processed (one may take minutes)
        subset_file(json_dir, subset)
    rng = np.random.default_rng(seed)
    groups: Groups = {"train": [], "test": []}
    test_puzzles: dict[str, Any] = {}  # the original puzzles of the test split, for voting (ArcVoting)
    for subset in subsets:
        puzzles = read_subset(json_dir, subset)
        for n, (pid, puzzle) in enumerate(sorted(puzzles.items())):
            if subset == test_set:
                test_puzzles[pid] = {kind: [{"input": a.tolist(), "output": b.tolist()} for a, b in puzzle[kind]]
                                     for kind in ("train", "test")}
            _add_puzzle(groups, pid, puzzle, subset == test_set, aug, rng)
            progress(subset, n + 1, len(puzzles))
    with building(out) as tmp:
        return _write(tmp, out, groups, test_puzzles, rng)


def _add_puzzle(groups: Groups, pid: str, puzzle: dict[str, list[Pair]], in_test_set: bool, aug: int,
                rng: np.random.Generator) -> None:
    """One puzzle's disguised pairs, each to its split: a test-set puzzle's test pairs to the test split, the
    rest to training."""
    dest = {"train": "train", "test": "test" if in_test_set else "train"}
    by_split = {split: [p for kind in ("train", "test") if dest[kind] == split for p in puzzle[kind]]
                for split in ("train", "test")}
    # one set of disguises per puzzle, the same on its training and its test pairs (so a test pair's
    # puzzle identifier is one that training saw), none alike
    disguises = _disguises(pid, by_split["train"] + by_split["test"], aug, rng)
    for split, pairs in by_split.items():
        if pairs:
            groups[split].append([(name, [(apply(a), apply(b)) for a, b in pairs]) for name, apply in disguises])


def _write(tmp: Path, out: Path, groups: Groups, test_puzzles: dict[str, Any], rng: np.random.Generator) -> BuildSummary:
    """Both splits encoded and written, with the identifiers' names and the test puzzles beside them."""
    names = sorted({name for split in groups.values() for group in split for name, _ in group})
    identifiers = {name: i + 1 for i, name in enumerate(names)}  # 0 is the blank identifier
    summary = BuildSummary(out)
    for split, split_groups in groups.items():
        arrays, count = _encode(split_groups, identifiers, shift=split == "train", rng=rng)
        meta = PuzzleMetadata(pad_id=0, ignore_label_id=0, blank_identifier_id=0, vocab_size=12,
                              seq_len=SIDE * SIDE, num_puzzle_identifiers=len(identifiers) + 1,
                              total_groups=len(split_groups), mean_puzzle_examples=count["rows"] / max(1, count["puzzles"]),
                              total_puzzles=count["puzzles"], sets=["all"])
        summary.bytes += write_split(tmp, split, meta, {"all": arrays})
        summary.add(split, puzzles=count["puzzles"], groups=len(split_groups), rows=count["rows"])
    (tmp / "identifiers.json").write_text(json.dumps(["<blank>", *names]))
    (tmp / "test_puzzles.json").write_text(json.dumps(test_puzzles))
    return summary


def _disguises(pid: str, everything: list[Pair], aug: int, rng: np.random.Generator
               ) -> list[tuple[str, Callable[[np.ndarray], np.ndarray]]]:
    """The puzzle itself and up to ``aug`` disguises of it, no two alike on its pairs (a disguise that maps
    the pairs onto ones seen already is drawn again, a bounded number of times)."""
    disguises: list[tuple[str, Callable[[np.ndarray], np.ndarray]]] = [(pid, lambda g: g)]
    seen = {_pairs_hash(everything)}
    for _ in range(RETRIES_PER_AUG * aug):
        if len(disguises) > aug:
            break
        name, apply = disguise(pid, rng)
        h = _pairs_hash([(apply(a), apply(b)) for a, b in everything])
        if h not in seen:
            seen.add(h)
            disguises.append((name, apply))
    return disguises


def _encode(split_groups: list, identifiers: dict[str, int], shift: bool, rng: np.random.Generator
            ) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    inputs, labels, ids, puzzle_indices, group_indices = [], [], [], [0], [0]
    for group in split_groups:
        for name, pairs in group:
            plain = int(rng.integers(0, len(pairs)))  # one pair per puzzle stays at the top left
            for k, (a, b) in enumerate(pairs):
                rows, cols = max(a.shape[0], b.shape[0]), max(a.shape[1], b.shape[1])
                r = int(rng.integers(0, SIDE - rows + 1)) if shift and k != plain else 0
                c = int(rng.integers(0, SIDE - cols + 1)) if shift and k != plain else 0
                inputs.append(to_canvas(a, r, c, rows, cols))
                labels.append(to_canvas(b, r, c, rows, cols))
            puzzle_indices.append(len(inputs))
            ids.append(identifiers[name])
        group_indices.append(len(ids))
    if not inputs:
        raise ConfigError("no pairs for this split (does the --test-set subset have test pairs?)")
    arrays = {"inputs": np.stack(inputs), "labels": np.stack(labels), "puzzle_identifiers": np.array(ids),
              "puzzle_indices": np.array(puzzle_indices), "group_indices": np.array(group_indices)}
    return arrays, {"puzzles": len(ids), "rows": len(inputs)}
