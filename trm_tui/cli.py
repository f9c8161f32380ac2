"""``trm-tui``: run and watch a TRM training job. Until the dashboard lands, every mode is headless."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trm_core.config import ConfigError
from trm_core.worker import EXIT_CONFIG, resolve_run_config
from trm_tui.headless import Headless


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trm-tui", description="Run and watch a Tiny Recursive Model training job.")
    p.add_argument("--run-dir", type=Path, default=Path("runs/default"), help="run folder (default: runs/default)")
    p.add_argument("--config", type=Path, help="config file (default: ./config.toml when present)")
    p.add_argument("--preset", help="apply [presets.NAME] (built in: tiny)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one config key (repeatable)")
    p.add_argument("--resume", action="store_true", help="continue the run from its newest good checkpoint")
    p.add_argument("--no-ui", action="store_true", help="headless: print progress lines instead of the dashboard")
    p.add_argument("--json", action="store_true", help="with --no-ui: print the events as JSON lines")
    return p


def worker_argv(args: argparse.Namespace) -> list[str]:
    argv = ["--run-dir", str(args.run_dir)]
    if args.config:
        argv += ["--config", str(args.config)]
    if args.preset:
        argv += ["--preset", args.preset]
    for item in args.sets:
        argv += ["--set", item]
    if args.resume:
        argv.append("--resume")
    return argv


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        resolve_run_config(args)  # fail fast, before anything is launched or written
    except ConfigError as exc:
        print(f"trm-tui: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if not args.no_ui:
        print("trm-tui: the dashboard is not built yet; running headless (--no-ui)", file=sys.stderr)
    return Headless(args.run_dir, worker_argv(args), as_json=args.json).run()


if __name__ == "__main__":
    sys.exit(main())
