"""``trm-tui runs``: every run under a folder, one line each (the table is ``trm_tui/runs_table.py``)."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from trm_core.rundir import layout
from trm_tui.runs_table import DEFAULT_ROOT, list_runs, mark_differences, table


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trm-tui runs", description="List the runs under a folder: state, progress, "
                                "loss, eval, the best eval (beside the paper's, for a paper preset), speed, ETA, newest checkpoint, start time and config hash.")
    p.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="the folder whose subfolders are runs "
                   "(default: runs, relative to the current folder)")
    p.add_argument("--json", action="store_true", help="one JSON object per run, one per line, for scripts")
    p.add_argument("--wide", action="store_true", help="every column, however wide the terminal (a pipe gets "
                   "every column anyway)")
    p.add_argument("--csv", action="store_true", help="one CSV row per run: its figures, then its resolved config "
                   "flattened (model.dim, train.learning_rate, ...), for a sweep in one pd.read_csv")
    return p


def cmd_runs(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if not args.root.is_dir():
        what = "is a file, not a folder" if args.root.exists() else "does not exist"
        print(f"trm-tui runs: {args.root} {what}; give the folder that holds your run dirs with --root",
              file=sys.stderr)
        return layout.EXIT_CONFIG
    rows = list_runs(args.root)
    if not (args.csv or args.json):
        mark_differences(rows)
    if args.csv:
        from trm_core.export.tables import run_config_columns, write_rows

        write_rows(({"run_dir": str(row.run_dir)} | row.status.to_dict() | run_config_columns(row.run_dir)
                    for row in rows), sys.stdout, ("run_dir",))
        return 0
    if args.json:
        for row in rows:
            print(json.dumps({"run_dir": str(row.run_dir)} | row.status.to_dict()))
        return 0
    if not rows:
        print(f"no runs in {args.root}")
        return 0
    terminal = sys.stdout.isatty() and not args.wide
    print(table(rows, shutil.get_terminal_size().columns if terminal else None))
    return 0
