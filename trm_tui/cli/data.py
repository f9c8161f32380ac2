"""``trm-tui data ...``: build puzzle datasets in the TRM reference format, offline.

    trm-tui data sudoku (--csv FILE [--test-csv FILE] | --hub [REPO]) --out DIR [--subsample N] [--aug K]
                        [--min-difficulty R] [--seed S]
    trm-tui data sudoku-generate --count N --blanks B --out FILE.csv [--seed S]
    trm-tui data maze (--csv FILE [--test-csv FILE] | --hub [REPO]) --out DIR [--aug] [--seed S]
    trm-tui data arc --json-dir DIR --subsets training,evaluation --test-set evaluation --out DIR [--aug K]

Malformed input is exit 2 with the file and line; a failed build leaves nothing in ``--out``. ``--hub`` takes
the train and test CSVs from the dataset the reference's builder downloads (or from the hub's cache).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from trm_core.config import ConfigError
from trm_core.prep.hub import MAZE_REPO, SUDOKU_REPO, fetch_sources
from trm_core.prep.output import check_out
from trm_core.rundir.layout import EXIT_INTERRUPTED
from trm_core.telemetry.gpu import nvidia_gpu_present


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


def _sources(p: argparse.ArgumentParser, what: str, repo: str, layout: str = "") -> None:
    """--csv FILE or --hub [REPO]: one of them."""
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--csv", type=Path, help=f"training {what}: CSV with source,q,a,rating {layout}".rstrip())
    group.add_argument("--hub", nargs="?", const=repo, metavar="REPO", help=f"take train.csv and test.csv from "
                       f"this Hugging Face dataset (default {repo}, the reference's source), through the hub's "
                       f"cache (HF_HUB_OFFLINE, HF_ENDPOINT and HF_TOKEN honoured)")


def _inputs(args: argparse.Namespace) -> tuple[Path, Path | None]:
    """(train CSV, test CSV) from --csv/--test-csv, or downloaded for --hub (after --out is known to be free:
    a download can take minutes)."""
    if args.hub is None:
        return args.csv, args.test_csv
    if args.test_csv is not None:
        raise ConfigError("--hub takes test.csv from the same dataset; leave out --test-csv (or give --csv)")
    check_out(args.out)
    sources = fetch_sources(args.hub)
    return sources.train, sources.test


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trm-tui data", description="Build puzzle datasets in the TRM reference "
                                "format (train on them with data.kind = 'puzzles', data.dataset_dir = DIR).")
    sub = p.add_subparsers(dest="what", required=True, metavar="{sudoku,sudoku-generate,maze,arc}",
                           help="what to build (each has --help)")
    s = sub.add_parser("sudoku", help="Sudoku-Extreme CSV -> dataset folder, with the paper's augmentations")
    _sources(s, "puzzles", SUDOKU_REPO)
    s.add_argument("--out", type=Path, required=True, help="the dataset folder to create (must not exist)")
    s.add_argument("--test-csv", type=Path, help="test puzzles; without it 10%% of --csv is held out (before "
                   "augmentation)")
    s.add_argument("--subsample", type=int, help="keep this many training puzzles (at random, by --seed)")
    s.add_argument("--aug", type=int, default=0, help="augmented copies of each training puzzle (digit "
                   "permutation, transpose, band/stack and row/column shuffles)")
    s.add_argument("--min-difficulty", type=float, help="skip puzzles rated below this")
    s.add_argument("--seed", type=int, default=0, help="the random seed of the held-out split, --subsample and "
                   "the augmentations (default 0): the same seed builds the same set")
    m = sub.add_parser("maze", help="Maze-Hard CSV -> dataset folder, with the 8 dihedral transforms (--aug)")
    _sources(m, "mazes", MAZE_REPO, "in '# SGo'")
    m.add_argument("--out", type=Path, required=True, help="the dataset folder to create (must not exist)")
    m.add_argument("--test-csv", type=Path, help="test mazes; without it 10%% of --csv is held out")
    m.add_argument("--aug", action="store_true", help="add the 7 other rotations and reflections of each maze")
    m.add_argument("--seed", type=int, default=0, help="the random seed of the held-out split (default 0)")
    a = sub.add_parser("arc", help="ARC-AGI challenges/solutions JSON -> dataset folder, with dihedral and colour "
                       "disguises (--aug)")
    a.add_argument("--json-dir", type=Path, help="folder with *_SUBSET_challenges.json (and "
                   "*_SUBSET_solutions.json)")
    a.add_argument("--subsets", help="comma list, e.g. training,evaluation")
    a.add_argument("--test-set", help="the subset whose test pairs form the test split")
    a.add_argument("--tasks", type=Path, nargs="+", metavar="FILE.json", help="instead of --json-dir: a set of just "
                   "these tasks (a task each, or an object of tasks by id), to fine-tune a trained model on tasks it "
                   "never saw (train.init_from) and solve them: their demonstrations train; their test pairs are "
                   "the test split when every output is given, else the demonstrations are")
    a.add_argument("--out", type=Path, required=True, help="the dataset folder to create (must not exist)")
    a.add_argument("--aug", type=int, default=0, help="disguises of each puzzle (the paper: 1000)")
    a.add_argument("--seed", type=int, default=42, help="the random seed of the disguises (default 42)")
    g = sub.add_parser("sudoku-generate", help="write puzzles with unique solutions as a Sudoku-Extreme CSV")
    g.add_argument("--count", type=int, required=True, help="how many puzzles to write")
    g.add_argument("--blanks", type=int, required=True, help="blank cells per puzzle (at most 60; above "
                   "about 57 each puzzle takes seconds)")
    g.add_argument("--out", type=Path, required=True, help="the CSV file to write")
    g.add_argument("--seed", type=int, default=0, help="the random seed (default 0): the same seed writes the "
                   "same puzzles; another seed, others (e.g. a test set)")
    return p


def _arc_tasks(args, progress) -> int:  # noqa: ANN001 - argparse's namespace and cmd_data's Progress
    """``data arc --tasks``: a set of just these tasks, and what to do with it."""
    from trm_core.prep.arc_tasks import build_tasks

    for flag, value in (("--json-dir", args.json_dir), ("--subsets", args.subsets), ("--test-set", args.test_set)):
        if value is not None:
            raise ConfigError(f"--tasks with {flag}: a set of named task files is built from those files alone")
    summary, scored = build_tasks(args.tasks, args.out, args.aug, args.seed, progress=progress)
    print(summary.text())
    print(("the test split is the tasks' test pairs (eval scores pass@k)" if scored else
           "no test outputs given: the test split is the demonstrations themselves (eval says how well the model "
           "fits them); solve answers the test inputs") + ". Fine-tune a trained ARC model on it:")
    print(f"  trm-tui --preset arc-paper --set data.dataset_dir='{args.out}' --init-from TRAINED_RUN "
          f"--set train.epochs=... --run-dir runs/ft")
    print("  trm-tui solve TASK.json --run-dir runs/ft")
    return 0


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
            train_csv, test_csv = _inputs(args)
            summary = build(train_csv, args.out, test_csv, args.subsample, args.aug, args.min_difficulty,
                            args.seed, progress=progress)
            print(summary.text())
            print(next_steps("sudoku", args.out))
        elif args.what == "arc":
            from trm_core.prep.arc import build as build_arc

            if args.aug < 0:
                raise ConfigError(f"--aug {args.aug}: must be at least 0")
            if args.tasks:
                return _arc_tasks(args, progress)
            missing = [f for f, v in (("--json-dir", args.json_dir), ("--subsets", args.subsets),
                                      ("--test-set", args.test_set)) if v is None]
            if missing:
                raise ConfigError(f"trm-tui data arc: give {', '.join(missing)} (or --tasks FILE.json ...)")
            summary = build_arc(args.json_dir, args.out, [s for s in args.subsets.split(",") if s], args.test_set,
                                args.aug, args.seed, progress=progress)
            print(summary.text())
            print(next_steps("arc2" if "evaluation2" in args.subsets or "training2" in args.subsets else "arc",
                             args.out))
        elif args.what == "maze":
            from trm_core.prep.maze import build as build_maze

            train_csv, test_csv = _inputs(args)
            summary = build_maze(train_csv, args.out, test_csv, args.aug, args.seed, progress=progress)
            print(summary.text())
            print(next_steps("maze", args.out))
        else:
            from trm_core.prep.sudoku import write_generated
            from trm_core.prep.sudoku_rules import MAX_BLANKS

            if args.count < 1 or not 0 <= args.blanks <= MAX_BLANKS:
                raise ConfigError(f"--count {args.count} --blanks {args.blanks}: need a count of at least 1 and "
                                  f"0..{MAX_BLANKS} blanks (puzzles with one solution and more blanks exist, "
                                  f"down to 17 givens, but are too rare for a random search to find)")
            try:
                write_generated(args.out, args.count, args.blanks, args.seed,
                                lambda done, total: progress("generating", done, total))
            except RuntimeError as exc:  # no grid in a thousand gave the blanks: nothing was written
                print(f"trm-tui data: error: {exc}; nothing written to {args.out}", file=sys.stderr)
                return 1
            print(f"wrote {args.out}: {args.count:,} puzzles with {args.blanks} blanks, each with one solution")
    except KeyboardInterrupt:  # a ConfigError goes to the one boundary (cli/main.py), which says it the same way
        print(f"\ntrm-tui data: interrupted; nothing written to {args.out}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


# the paper's recipe for each kind of set: its preset, what it needs, how long the paper says it takes
PAPER_PRESETS = {
    "sudoku": ("sudoku-paper", "a GPU: under 36 h on one L40S"),
    "maze": ("maze-paper", "GPUs: under 24 h on 4 L40S (--set distributed.nproc_per_node=4)"),
    "arc": ("arc-paper", "GPUs: about 3 days on 4 H100 (--set distributed.nproc_per_node=4)"),
    "arc2": ("arc2-paper", "GPUs: about 3 days on 4 H100 (--set distributed.nproc_per_node=4)"),
}


def next_steps(kind: str, out: Path) -> str:
    """How to train on the set just built, with the preset that fits this machine and how long it takes."""
    preset, needs = PAPER_PRESETS[kind]
    name = out.name
    paper = f"trm-tui --run-dir runs/{name} --preset {preset} --set data.dataset_dir={out}"
    if nvidia_gpu_present():
        return f"train on it with the paper's recipe (it needs {needs}):\n  {paper}"
    if kind == "sudoku":
        return (f"train on it on this CPU (no GPU here) with the recipe sized for 2 cores (about 15 minutes; made "
                f"for puzzles with about 50 blanks):\n  trm-tui --run-dir runs/{name} --preset sudoku-cpu "
                f"--set data.dataset_dir={out}\nthe paper's recipe needs {needs}:\n  {paper}")
    return (f"no GPU here: the paper's recipe for this set needs {needs}, and no preset trains it in reasonable "
            f"time on a CPU; on a GPU machine:\n  {paper}\n(trm-tui doctor --preset {preset} --set "
            f"data.dataset_dir={out} checks a machine first)")
