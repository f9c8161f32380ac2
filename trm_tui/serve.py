"""``trm-tui serve``: the same dashboard as a web page, through textual-serve (each browser tab runs its own
``trm-tui`` on the run, as a terminal would). Bound to localhost unless told otherwise: over SSH, forward
the port (``ssh -L 8000:localhost:8000 gpu-box``) rather than opening it to the network, because anyone who
reaches the page can stop the run."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from trm_core.config import ConfigError
from trm_core.rundir import layout, lifecycle

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trm-tui serve", description="Serve the dashboard of a run as a web page "
                                "(textual-serve). Bound to 127.0.0.1: over SSH use ssh -L 8000:localhost:8000.")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--run-dir", type=Path, help="the run to show (default: runs/default)")
    where.add_argument("--root", type=Path, help="a folder of runs: the page opens the newest, R switches")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; any other address "
                   "lets whoever reaches it control the run)")
    p.add_argument("--port", type=int, default=8000)
    return p


def served_run(args: argparse.Namespace) -> Path:
    """The run the page opens; a clear error when there is none (a page must not start a new run)."""
    if args.root is not None:
        from trm_tui.runs import list_runs

        if not args.root.is_dir():
            raise ConfigError(f"--root {args.root} is not a folder")
        rows = list_runs(args.root)
        if not rows:
            raise ConfigError(f"no runs in {args.root}")
        return rows[0].run_dir
    from trm_core.rundir.identity import live_keeper

    run_dir = args.run_dir or Path("runs/default")
    starting = run_dir.is_dir() and live_keeper(run_dir) is not None  # started a moment ago: no log yet
    if not (starting or run_dir.is_dir() and (lifecycle.holds_run(run_dir) or (run_dir / layout.RUN_CONFIG).exists())):
        raise ConfigError(f"no run in {run_dir}; start one first (trm-tui --detach --run-dir {run_dir} ...), "
                          f"then serve it")
    return run_dir


def cmd_serve(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        from textual_serve.server import Server
    except ImportError:
        print("trm-tui serve needs textual-serve: pip install textual-serve", file=sys.stderr)
        return layout.EXIT_CONFIG
    try:
        run_dir = served_run(args).resolve()
    except ConfigError as exc:
        print(f"trm-tui serve: {exc}", file=sys.stderr)
        return layout.EXIT_CONFIG
    if args.host not in LOCAL_HOSTS:
        print(f"trm-tui serve: WARNING: bound to {args.host}: anyone who reaches port {args.port} there can stop, "
              f"resume or kill the run. Prefer the default (127.0.0.1) with ssh -L {args.port}:localhost:{args.port}.",
              file=sys.stderr, flush=True)
    command = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "trm_tui.cli", "--run-dir", str(run_dir)])
    print(f"trm-tui serve: {run_dir} on http://{args.host}:{args.port} (Ctrl-C stops serving; the run goes on)",
          flush=True)
    Server(command, host=args.host, port=args.port, title=f"trm-tui {run_dir.name}").serve()
    return 0
