"""``trm-tui export tensorboard|csv|config``: a run's log as TensorBoard event files, or as a CSV table; the
config its newest start resolved, as TOML (``--restore`` puts it back when config.toml broke)."""

from __future__ import annotations

import argparse
import io
import signal
import sys
import threading
from pathlib import Path

from trm_core.config import ConfigError
from trm_core.rundir import layout
from trm_tui.cli.common import run_dir_arg
from trm_tui.signals import handling

KINDS_HELP = "comma-separated event kinds (step, eval, checkpoint, run_start, run_end, ...), or 'all'"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trm-tui export", description="A run's log elsewhere: TensorBoard event files "
                                "(which W&B, Aim and trackio import) or a CSV table for pandas.")
    sub = p.add_subparsers(dest="format", metavar="{tensorboard,csv,config,model}", required=True)
    tb = sub.add_parser("tensorboard", help="TensorBoard event files: every step and eval scalar, the config as "
                        "hparams, starts, ends and restarts as text")
    run_dir_arg(tb)
    tb.add_argument("--out", type=Path, help="a folder of runs' mirrors: the run's files go in OUT/RUN_NAME "
                    "(default: RUN_DIR/tensorboard, so 'tensorboard --logdir runs' shows every run)")
    tb.add_argument("--follow", action="store_true", help="keep mirroring the run as it trains, across restarts "
                    "and resumes, until Ctrl-C")
    tb.add_argument("--every", type=float, default=2.0, metavar="S", help="with --follow: read the log every S "
                    "seconds (default 2)")
    csv = sub.add_parser("csv", help="one row per event, one column per field")
    run_dir_arg(csv)
    csv.add_argument("--events", default="step,eval", help=KINDS_HELP + " (default: step,eval)")
    csv.add_argument("--out", type=Path, help="the CSV file (default: standard output)")
    cfg = sub.add_parser("config", help="the config the run's newest start resolved (its run_start event), as "
                         "TOML: what its config.toml held then")
    run_dir_arg(cfg)
    cfg.add_argument("--restore", action="store_true", help="write it back as RUN_DIR/config.toml when that file "
                     "no longer reads (the broken one is kept beside it as config.toml.broken)")
    model = sub.add_parser("model", help="the run's model as a folder a Hugging Face repository can hold: "
                           "model.safetensors, config.json, README.md (a model card)")
    run_dir_arg(model)
    model.add_argument("--checkpoint", default="latest", metavar="latest|best|STEP",
                       help="which checkpoint (default: the newest)")
    model.add_argument("--weights", choices=("ema", "raw"), help="the EMA weights (default when the run keeps "
                       "them) or the raw ones")
    model.add_argument("--out", type=Path, required=True, metavar="DIR", help="the folder to create (a new or "
                       "empty one)")
    model.add_argument("--push", metavar="OWNER/NAME", help="also upload the folder to this Hugging Face model "
                       "repository (made when missing; the token from HF_TOKEN or hf auth login)")
    return p


def export_model(args: argparse.Namespace) -> int:
    from trm_core.evaluate import loaded as loading
    from trm_core.export.model_folder import write_model_folder

    run = layout.RunDir.at(existing_run(args.run_dir))
    if args.push:
        from trm_core.export.hub_push import check_repo

        check_repo(args.push)
    checkpoint = loading.load(run, args.checkpoint, args.weights, "cpu")
    if checkpoint.why:
        print(f"trm-tui export: {checkpoint.why}", file=sys.stderr)
    folder = write_model_folder(checkpoint, args.out)
    print(f"step {checkpoint.info.step} ({checkpoint.weights} weights) written to {folder}: model.safetensors, "
          f"config.json, README.md")
    if args.push:
        from trm_core.export.hub_push import push_folder

        url = push_folder(folder, args.push, f"trm-tui export model: {run.root.name} step {checkpoint.info.step}")
        print(f"pushed to {url}; anyone can run it: trm-tui solve PUZZLE --model hf:{args.push}")
    return 0


def existing_run(run_dir: Path) -> Path:
    if not (run_dir / layout.EVENTS).is_file():
        what = "is not a folder" if run_dir.exists() and not run_dir.is_dir() else "has no run (no events.jsonl)"
        raise ConfigError(f"{run_dir} {what}; give a run's folder with --run-dir")
    return run_dir


def export_tensorboard(args: argparse.Namespace) -> int:
    from trm_core.export.tensorboard import TensorBoardMirror, default_out, out_under

    run_dir = existing_run(args.run_dir)
    out = out_under(args.out, run_dir) if args.out else default_out(run_dir)
    logdir = args.out or run_dir.parent  # where TensorBoard shows this run beside the others
    mirror = TensorBoardMirror(run_dir, out)
    if not args.follow:
        count = mirror.sync()
        mirror.close()
        if count:
            print(f"{count} events of {run_dir} mirrored into {out}; view with: tensorboard --logdir {logdir}")
        else:  # an export ran before and the log has not grown since
            print(f"{out} is already up to date with {run_dir} (nothing new in its log); view with: "
                  f"tensorboard --logdir {logdir}")
        return 0
    stop = threading.Event()
    print(f"mirroring {run_dir} into {out} every {args.every:g} s until Ctrl-C; view with: "
          f"tensorboard --logdir {logdir}", flush=True)
    with handling(dict.fromkeys((signal.SIGINT, signal.SIGTERM), lambda *_: stop.set())):
        mirror.follow(stop, args.every)
    mirror.close()
    return 0


def export_csv(args: argparse.Namespace) -> int:
    from trm_core.export.tables import FIRST_COLUMNS, event_rows, write_rows

    run_dir = existing_run(args.run_dir)
    kinds = None if args.events.strip() == "all" else [k.strip() for k in args.events.split(",") if k.strip()]
    if kinds is not None and not kinds:
        raise ConfigError(f"--events {args.events!r} names no event kind; " + KINDS_HELP)
    from trm_core.rundir.records import KINDS

    unknown = [k for k in kinds or () if k not in KINDS]
    if unknown:
        raise ConfigError(f"--events: {unknown[0]!r} is not an event kind; choose from {', '.join(KINDS)} or 'all'")
    rows = event_rows(run_dir, kinds)
    if args.out is None:
        write_rows(rows, sys.stdout, FIRST_COLUMNS)
        return 0
    try:
        with layout.atomic_file(args.out) as raw:  # the file whole or not at all
            text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
            count = write_rows(rows, text, FIRST_COLUMNS)
            text.flush()
            text.detach()  # the raw file is atomic_file's to close
    except OSError as exc:
        raise ConfigError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    print(f"{count} events ({args.events}) of {run_dir} written to {args.out}", file=sys.stderr)
    return 0


def cmd_export(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.format == "model":
        return export_model(args)
    if args.format == "config":
        return export_config(args)
    return export_tensorboard(args) if args.format == "tensorboard" else export_csv(args)


def export_config(args: argparse.Namespace) -> int:
    """The newest run_start's resolved config as TOML; with --restore, back into a config.toml that broke."""
    import tomli_w

    from trm_core.config.run_config import config_problem
    from trm_core.rundir.log_queries import newest_in_log
    from trm_core.rundir.records import RunStart

    run_dir = existing_run(args.run_dir)
    start = newest_in_log(run_dir / layout.EVENTS, RunStart)
    if start is None or not start.config:
        raise ConfigError(f"{run_dir / layout.EVENTS} holds no run_start with a config: nothing to export")
    text = tomli_w.dumps(start.config)
    if not args.restore:
        sys.stdout.write(text)
        return 0
    target = run_dir / layout.RUN_CONFIG
    if target.exists() and config_problem(run_dir) is None:
        raise ConfigError(f"{target} reads as it is: nothing to restore (trm-tui export config --run-dir "
                          f"{run_dir} prints the started config to compare)")
    if target.exists():
        target.replace(target.with_name(target.name + ".broken"))
    layout.write_atomic(target, text.encode())
    problem = config_problem(run_dir)
    if problem is not None:  # a config from an older trm-tui that this one no longer reads
        raise ConfigError(f"restored {target} from the newest run_start, but it does not read here: {problem}")
    kept = f"; the broken file is {target.name}.broken" if target.with_name(target.name + ".broken").exists() else ""
    print(f"restored {target} from the run_start of {time_text(start.time)}{kept}; "
          f"trm-tui --resume --run-dir {run_dir} continues the run")
    return 0


def time_text(when: float) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))
