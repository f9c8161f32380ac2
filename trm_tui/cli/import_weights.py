"""``trm-tui import reference CKPT --out RUN``: a checkpoint of the reference implementation as a completed run:
eval (every test-time setting), solve, the predictions browser, status, runs and export then open it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trm-tui import", description="Weights trained elsewhere as a run of ours.")
    sub = p.add_subparsers(dest="kind", metavar="{reference}", required=True)
    ref = sub.add_parser("reference", help="a checkpoint the reference's pretrain.py saved (step_N, beside its "
                         "all_config.yaml), on disk or hf:OWNER/NAME[@REV]/PATH in a hub repository")
    ref.add_argument("checkpoint", metavar="CKPT", help="the step_N file, or hf:OWNER/NAME[@REV]/PATH/step_N")
    ref.add_argument("--config", type=Path, metavar="YAML", help="its all_config.yaml (default: the one beside it)")
    ref.add_argument("--dataset", type=Path, metavar="DIR", help="the dataset it was trained on (default: the "
                     "yaml's data_paths[0], where that folder exists here); its shape is the model's")
    ref.add_argument("--out", type=Path, required=True, metavar="RUN", help="the run folder to create (a new or "
                     "empty one)")
    return p


def cmd_import(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    from trm_core.weights.import_reference import import_reference

    done = import_reference(args.checkpoint, args.out, args.config, args.dataset)
    print(f"trm-tui import: {args.checkpoint} -> {done.run.root}: a completed run at step {done.step} "
          f"({done.tensors} tensors, {done.parameters:,} parameters; the data: {done.dataset})", file=sys.stderr)
    print(f"next: trm-tui eval --run-dir {done.run.root}    trm-tui solve PUZZLE --run-dir {done.run.root}")
    return 0
