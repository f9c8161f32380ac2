"""``trm-tui serve``: the same dashboard as a web page, through textual-serve (each browser tab runs its own
``trm-tui`` on the run, as a terminal would), behind a secret token.

On a shared machine 127.0.0.1 is every user's: without the token (printed in the URL, or read from
``--token-file``) the server answers 403 and starts nothing. ``--share`` prints a second, read-only URL for a
colleague or a screen on the wall; ``--read-only`` serves only that one. ``--unix-socket PATH`` listens on a
socket only its owner can open, for ``ssh -L 8000:PATH host``. See docs/guide/shared-machines.md.
"""

from __future__ import annotations

import argparse
import hashlib
import shlex
import sys
from pathlib import Path

from trm_core.config import ConfigError
from trm_core.rundir import layout, lifecycle
from trm_tui.serve.listen import ListenError, is_loopback
from trm_tui.serve.tokens import Role, TokenError, Tokens, new_token, read_token_file


MAX_TABS = 64


def tab_count(text: str) -> int:
    """An argparse type: how many tabs a link may have open, 1..MAX_TABS."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= MAX_TABS:
        raise argparse.ArgumentTypeError(f"{value}: from 1 to {MAX_TABS}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trm-tui serve", description="Serve the dashboard of a run as a web page "
                                "(textual-serve), behind a secret token in its URL. Bound to 127.0.0.1: over SSH "
                                "use ssh -L 8000:localhost:8000, or --unix-socket.")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--run-dir", type=Path, help="the run to show (default: runs/default)")
    where.add_argument("--root", type=Path, help="a folder of runs: the page opens the newest, R switches")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; any other address "
                   "lets whoever reaches it and has the token control the run)")
    p.add_argument("--port", type=int, default=8000, help="TCP port to listen on (default 8000)")
    p.add_argument("--unix-socket", type=Path, metavar="PATH", help="listen on a Unix socket (mode 0600: no other "
                   "user can connect) instead of a TCP port; from your laptop: ssh -L 8000:PATH host")
    p.add_argument("--token-file", type=Path, metavar="F", help="the full-control token from F's first line (a "
                   "file only you can read), instead of a new random one each start: for scripts and bookmarks")
    p.add_argument("--share", action="store_true", help="also print a read-only URL (its own token): the "
                   "dashboard with stop, resume, auto-tune and kill refused, for a colleague")
    p.add_argument("--read-only", action="store_true", help="serve only the read-only view (no URL can act)")
    p.add_argument("--max-tabs", type=tab_count, default=4, metavar="N", help="open tabs per link (full, "
                   f"read-only) at once, 1..{MAX_TABS} (default 4): each tab runs a dashboard process (about "
                   "30 MB); one more is answered with a page naming the limit")
    p.add_argument("--no-token", action="store_true", help="no token at all (anyone who reaches the address gets "
                   "the page): refused with a --host other than loopback")
    return p


def served_run(args: argparse.Namespace) -> Path:
    """The run the page opens; a clear error when there is none (a page must not start a new run)."""
    if args.root is not None:
        from trm_tui.runs_table import list_runs

        if not args.root.is_dir():
            raise ConfigError(f"--root {args.root} is not a folder")
        rows = list_runs(args.root)
        if not rows:
            raise ConfigError(f"no runs in {args.root}")
        return rows[0].run_dir
    from trm_core.rundir.identity import live_keeper

    run_dir = args.run_dir or Path("runs/default")
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is a file, not a run folder; give the run's folder with --run-dir")
    starting = run_dir.is_dir() and live_keeper(run_dir) is not None  # started a moment ago: no log yet
    if not (starting or run_dir.is_dir() and (lifecycle.holds_run(run_dir) or (run_dir / layout.RUN_CONFIG).exists())):
        raise ConfigError(f"no run in {run_dir}; start one first (trm-tui --detach --run-dir {run_dir} ...), "
                          f"then serve it")
    return run_dir


def make_tokens(args: argparse.Namespace) -> Tokens:
    """The tokens this process answers to: none with --no-token; else a full one (new, or --token-file) unless
    --read-only, and a read-only one with --share or --read-only."""
    if args.no_token:
        if args.token_file or args.share:
            raise ConfigError("--no-token cannot be given with --token-file or --share (a share needs tokens)")
        if args.unix_socket is None and not is_loopback(args.host):
            raise ConfigError(f"--no-token is refused with --host {args.host}: without a token anyone who reaches "
                              f"that address controls the run; keep the token, or bind to 127.0.0.1")
        return Tokens({})
    by_role: dict[Role, str] = {}
    if not args.read_only:
        by_role[Role.FULL] = read_token_file(args.token_file) if args.token_file else new_token()
    if args.share or args.read_only:
        by_role[Role.READ_ONLY] = new_token()
    return Tokens(by_role)


def dashboard_commands(run_dir: Path, read_only: bool) -> dict[Role, str]:
    """The command each role's tab runs: the dashboard on the run, read-only for a read-only token."""
    base = [sys.executable, "-m", "trm_tui.cli", "--run-dir", str(run_dir), "--attach"]  # a page never starts one
    commands = {Role.READ_ONLY: " ".join(shlex.quote(a) for a in [*base, "--read-only"])}
    if not read_only:
        commands[Role.FULL] = " ".join(shlex.quote(a) for a in base)
    return commands


def cmd_serve(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        from trm_tui.serve.guarded import GuardedServer
    except ImportError:
        print("trm-tui serve needs textual-serve: pip install textual-serve", file=sys.stderr)
        return layout.EXIT_CONFIG
    from trm_tui.serve.listen import tcp_socket, unix_socket

    try:
        run_dir = served_run(args).resolve()
        tokens = make_tokens(args)
        sock = unix_socket(args.unix_socket) if args.unix_socket else tcp_socket(args.host, args.port)
    except (ConfigError, TokenError, ListenError) as exc:
        print(f"trm-tui serve: {exc}", file=sys.stderr)
        return layout.EXIT_CONFIG
    where = f"unix:{args.unix_socket}" if args.unix_socket else f"{args.host}:{args.port}"
    cookie = "trm-tui-" + hashlib.sha256(where.encode()).hexdigest()[:10]  # one per server: cookies ignore ports
    warn_exposure(args, tokens)
    print_addresses(args, run_dir, tokens)
    server = GuardedServer(dashboard_commands(run_dir, args.read_only), tokens, sock, cookie,
                           title=f"trm-tui {run_dir.name}", max_tabs=args.max_tabs)
    try:
        server.serve()
    finally:
        if args.unix_socket:
            args.unix_socket.unlink(missing_ok=True)
    return 0


def warn_exposure(args: argparse.Namespace, tokens: Tokens) -> None:
    if not tokens.required:
        print("trm-tui serve: WARNING: --no-token: every user on this machine who reaches the page controls the "
              "run as you (stop, resume, auto-tune, kill, your worker log)", file=sys.stderr, flush=True)
    if args.unix_socket is None and not is_loopback(args.host):
        print(f"trm-tui serve: WARNING: bound to {args.host}: anyone who reaches port {args.port} there and has "
              f"the token can control the run, and the token crosses the network unencrypted. Prefer the default "
              f"(127.0.0.1) with ssh -L {args.port}:localhost:{args.port}.", file=sys.stderr, flush=True)


def print_addresses(args: argparse.Namespace, run_dir: Path, tokens: Tokens) -> None:
    """The URLs to open, each with its token: the only place the tokens are shown."""
    if args.unix_socket:
        base = "http://localhost:8000"
        print(f"trm-tui serve: {run_dir} on the Unix socket {args.unix_socket} (mode 0600: only you can connect); "
              f"from your laptop: ssh -L 8000:{args.unix_socket.resolve()} THIS-HOST, then open:", flush=True)
    else:
        host = f"[{args.host}]" if ":" in args.host else args.host
        base = f"http://{host}:{args.port}"
        print(f"trm-tui serve: {run_dir} on {base} (Ctrl-C stops serving; the run goes on)", flush=True)
    if not tokens.required:
        print(f"  {base}/", flush=True)
        return
    names = {Role.FULL: "full control", Role.READ_ONLY: "read-only   "}
    for role, token in tokens.by_role.items():
        note = "  (s, r, a and K refused: for a colleague or a screen on the wall)" if role == Role.READ_ONLY else ""
        print(f"  {names[role]}  {base}/?token={token}{note}", flush=True)
