"""``trm-tui data ...``: build puzzle datasets in the TRM reference format, offline.

    trm-tui data sudoku --csv FILE --out DIR [--test-csv FILE] [--subsample N] [--aug K] [--min-difficulty R] [--seed S]
    trm-tui data sudoku-generate --count N --blanks B --out FILE.csv [--seed S]
    trm-tui data maze --csv FILE --out DIR [--test-csv FILE] [--aug] [--seed S]
    trm-tui data arc --json-dir DIR --subsets training,evaluation --test-set evaluation --out DIR [--aug K]

Malformed input is exit 2 with the file and line; a failed build leaves nothing in ``--out``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from trm_core.config import ConfigError
from trm_core.rundir.layout import EXIT_CONFIG


class Progress:
    """A progress bar on stderr: redrawn in place on a terminal (at most 10 times a second), a line every
    10% otherwise (a log file stays short)."""

    def __init__(self, stream=sys.stderr) -> None:
        self.stream, self.tty = stream, stream.isatty()
        self._last, self._tenth, self._what = 0.0, -1, ""

    def __call__(self, what: str, done: int, total: int) -> None:
        now = time.monotonic()
        if what != self._what:
            self._what, self._tenth = what, -1
        frac = done / max(1, total)
        if self.tty:
            if now - self._last < 0.1 and done < total:
                return
            self._last = now
            bar = "#" * int(30 * frac)
            end = "\n" if done >= total else ""
            self.stream.write(f"\r{what:<12} [{bar:<30}] {done:,}/{total:,}{end}")
        elif int(frac * 10) != self._tenth:
            self._tenth = int(frac * 10)
            self.stream.write(f"{what}: {done:,}/{total:,}\n")
        self.stream.flush()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trm-tui data", description="Build puzzle datasets in the TRM reference "
                                "format (train on them with data.kind = 'puzzles', data.dataset_dir = DIR).")
    sub = p.add_subparsers(dest="what", required=True)
    s = sub.add_parser("sudoku", help="Sudoku-Extreme CSV -> dataset folder, with the paper's augmentations")
    s.add_argument("--csv", type=Path, required=True, help="training puzzles: CSV with source,q,a,rating")
    s.add_argument("--out", type=Path, required=True, help="the dataset folder to create (must not exist)")
    s.add_argument("--test-csv", type=Path, help="test puzzles; without it 10%% of --csv is held out (before "
                   "augmentation)")
    s.add_argument("--subsample", type=int, help="keep this many training puzzles (at random, by --seed)")
    s.add_argument("--aug", type=int, default=0, help="augmented copies of each training puzzle (digit "
                   "permutation, transpose, band/stack and row/column shuffles)")
    s.add_argument("--min-difficulty", type=float, help="skip puzzles rated below this")
    s.add_argument("--seed", type=int, default=0)
    m = sub.add_parser("maze", help="Maze-Hard CSV -> dataset folder, with the 8 dihedral transforms (--aug)")
    m.add_argument("--csv", type=Path, required=True, help="mazes: CSV with source,q,a,rating in '# SGo'")
    m.add_argument("--out", type=Path, required=True, help="the dataset folder to create (must not exist)")
    m.add_argument("--test-csv", type=Path, help="test mazes; without it 10%% of --csv is held out")
    m.add_argument("--aug", action="store_true", help="add the 7 other rotations and reflections of each maze")
    m.add_argument("--seed", type=int, default=0)
    a = sub.add_parser("arc", help="ARC-AGI challenges/solutions JSON -> dataset folder, with dihedral and colour "
                       "disguises (--aug)")
    a.add_argument("--json-dir", type=Path, required=True, help="folder with *_SUBSET_challenges.json (and "
                   "*_SUBSET_solutions.json)")
    a.add_argument("--subsets", required=True, help="comma list, e.g. training,evaluation")
    a.add_argument("--test-set", required=True, help="the subset whose test pairs form the test split")
    a.add_argument("--out", type=Path, required=True, help="the dataset folder to create (must not exist)")
    a.add_argument("--aug", type=int, default=0, help="disguises of each puzzle (the paper: 1000)")
    a.add_argument("--seed", type=int, default=42)
    g = sub.add_parser("sudoku-generate", help="write puzzles with unique solutions as a Sudoku-Extreme CSV")
    g.add_argument("--count", type=int, required=True)
    g.add_argument("--blanks", type=int, required=True, help="blank cells per puzzle (at most 64)")
    g.add_argument("--out", type=Path, required=True, help="the CSV file to write")
    g.add_argument("--seed", type=int, default=0)
    return p


def cmd_data(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    progress = Progress()
    try:
        if args.what == "sudoku":
            from trm_core.prep.sudoku import build

            for name in ("subsample", "aug"):
                value = getattr(args, name)
                if value is not None and value < (1 if name == "subsample" else 0):
                    raise ConfigError(f"--{name} {value}: must be at least {1 if name == 'subsample' else 0}")
            summary = build(args.csv, args.out, args.test_csv, args.subsample, args.aug, args.min_difficulty,
                            args.seed, progress=progress)
            print(summary.text())
            print(f"train on it: trm-tui --run-dir runs/sudoku --set data.kind=puzzles "
                  f"--set data.dataset_dir={args.out}")
        elif args.what == "arc":
            from trm_core.prep.arc import build as build_arc

            if args.aug < 0:
                raise ConfigError(f"--aug {args.aug}: must be at least 0")
            summary = build_arc(args.json_dir, args.out, [s for s in args.subsets.split(",") if s], args.test_set,
                                args.aug, args.seed, progress=progress)
            print(summary.text())
            print(f"train on it: trm-tui --run-dir runs/arc --set data.kind=puzzles --set data.dataset_dir={args.out}")
        elif args.what == "maze":
            from trm_core.prep.maze import build as build_maze

            summary = build_maze(args.csv, args.out, args.test_csv, args.aug, args.seed, progress=progress)
            print(summary.text())
            print(f"train on it: trm-tui --run-dir runs/maze --set data.kind=puzzles --set data.dataset_dir={args.out}")
        else:
            from trm_core.prep.sudoku import write_generated

            if args.count < 1 or not 0 <= args.blanks <= 64:
                raise ConfigError(f"--count {args.count} --blanks {args.blanks}: need a count of at least 1 and "
                                  f"0..64 blanks (a sudoku with a unique solution keeps at least 17 givens)")
            write_generated(args.out, args.count, args.blanks, args.seed,
                            lambda done, total: progress("generating", done, total))
            print(f"wrote {args.out}: {args.count:,} puzzles with {args.blanks} blanks, each with one solution")
    except ConfigError as exc:
        print(f"trm-tui data: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return 0
