"""``trm-tui`` (the default command): start a run, resume it, or open it as it is; in the dashboard, headless
(--no-ui) or detached (--detach)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trm_core import config as config_mod
from trm_core.config import ConfigError, Start, SupervisorConfig
from trm_core.config.start import saved_settings as run_settings
from trm_core.control.client import KeeperClient
from trm_core.control.start_checks import StartRefused, check_start
from trm_core.control.launch import ensure_keeper, wait_gone
from trm_core.control.run_status import run_status
from trm_core.rundir import layout, lifecycle, log_queries, start_claim
from trm_core.rundir.identity import live_keeper, live_worker
from trm_core.rundir.ownership import is_mine
from trm_core.rundir.layout import EXIT_CONFIG, EXIT_FAILED, RunDir
from trm_core.rundir.states import RunState
from trm_tui.cli.common import refuse_unless_owner, run_dir_arg
from trm_tui.cli.status import show_status
from trm_tui.headless import Headless
from trm_tui.serve.tab import in_browser_tab


class PrintVersion(argparse.Action):
    """``--version``, looked up only when asked (building the parser imports nothing more)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        from trm_tui.cli.main import version

        print(f"trm-tui {version()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    from trm_tui.cli.main import commands_help

    p = argparse.ArgumentParser(prog="trm-tui", description="Run and watch a Tiny Recursive Model training job.",
                                epilog=commands_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action=PrintVersion, help="print the installed version and exit")
    run_dir_arg(p)
    config_mod.add_start_arguments(p)
    p.add_argument("--no-ui", action="store_true", help="headless: print progress lines instead of the dashboard")
    p.add_argument("--json", action="store_true", help="with --no-ui: print the events as JSON lines (messages on stderr)")
    p.add_argument("--read-only", action="store_true", help="watch a run as it is without acting on it: the "
                   "dashboard refuses stop, resume, auto-tune and kill (a screen on the wall; what "
                   "'trm-tui serve --share' gives a colleague)")
    p.add_argument("--attach", action="store_true", help="open the run in --run-dir as it is, in whatever state; "
                   "an error when there is none (without it, a folder with no run gets a new one)")
    p.add_argument("--detach", action="store_true", help="start the run (or find it) and return at once; the run's "
                   "keeper supervises it with no front end open")
    return p


LOG_TAIL_BYTES = 1 << 16  # a worker.log of a long run is large: its last lines are in its last 64 KiB


def _show_log_tail(run_dir: Path, code: int) -> None:
    log = run_dir / layout.WORKER_LOG
    try:
        with open(log, "rb") as fh:
            fh.seek(max(0, fh.seek(0, 2) - LOG_TAIL_BYTES))
            lines = fh.read().decode(errors="replace").splitlines()[-15:]
    except OSError:
        lines = []
    print(f"trm-tui: the worker exited with code {code}; last lines of {log}:", file=sys.stderr)
    for line in lines:
        print(f"  {line}", file=sys.stderr)


def run_dashboard(run_dir: Path, start: Start | None, settings: SupervisorConfig, read_only: bool = False) -> int:
    """The dashboard on ``run_dir`` (started by ``start``, or opened as it is with None), then on each run the
    runs screen switches to, opened as it is; at the end, where the run left going is and how to come back."""
    from trm_tui.dashboard.dashboard_app import Dashboard  # Textual loads only for the dashboard

    app = Dashboard(run_dir, start, settings, read_only=read_only)
    code = app.run() or 0
    while app.switch_to is not None:
        run_dir = app.switch_to
        app = Dashboard(run_dir, None, run_settings(run_dir), read_only=read_only)
        code = app.run() or 0
    keeper = live_keeper(run_dir)
    if keeper is not None and not read_only:  # q left the run going: say where it is and how to come back
        print(f"the run goes on, supervised by its keeper (pid {keeper.pid}); come back with: "
              f"trm-tui --run-dir {run_dir}   (stop it with: trm-tui stop --run-dir {run_dir})")
    return code


def has_screen() -> bool:
    """Somewhere to draw the dashboard: a terminal, or a browser page (textual-serve runs us under its web
    driver, with pipes for stdin and stdout)."""
    return in_browser_tab() or (sys.stdout.isatty() and sys.stdin.isatty())


def wants_dashboard(args: argparse.Namespace) -> bool:
    """The dashboard unless --no-ui, or when there is nowhere to draw it (then headless, saying so)."""
    if args.no_ui:
        return False
    if has_screen():
        return True
    print("trm-tui: not a terminal; running headless (--no-ui)", file=sys.stderr)
    return False


def opens_existing_run(start: Start) -> bool:
    """``trm-tui [--run-dir DIR]`` with nothing that describes a start, on a folder that holds a run: open it as
    it is, in whatever state (only --preset, --config or --set on a folder without a run start one)."""
    if start.describes_run or not start.root.is_dir():
        return False
    return lifecycle.holds_run(start.root) or live_keeper(start.root) is not None  # or starting: no log yet


def open_existing_run(args: argparse.Namespace) -> int:
    """The dashboard on the run as it is (running: attach; otherwise its history, ``r`` to resume); headless,
    its status and how to go on. Nothing is started."""
    run_dir = args.run_dir
    settings = run_settings(run_dir)
    if args.detach:
        st = run_status(run_dir, settings)
        if st.state in (RunState.STOPPED, RunState.FAILED, RunState.STALLED, RunState.COMPLETED):
            print(f"trm-tui: nothing to start: the run in {run_dir} is {st.state}; "
                  f"trm-tui --detach --resume --run-dir {run_dir} continues it", file=sys.stderr)
            return EXIT_CONFIG
        print(f"the run in {run_dir} is {st.state}; watch it with: trm-tui --run-dir {run_dir}")
        return 0
    live = live_keeper(run_dir) is not None or live_worker(run_dir) is not None
    if live or not args.no_ui and has_screen():  # something to watch, or somewhere to show its history
        if wants_dashboard(args):
            return run_dashboard(run_dir, None, settings, read_only=args.read_only)
        client = KeeperClient(RunDir(run_dir), None, settings.stop_grace_s, role="trm-tui --no-ui",
                              may_adopt=is_mine(run_dir) and not args.read_only)  # reading only: adopt nothing
        return Headless(client, as_json=args.json).run()
    st = show_status(run_dir, settings, args.json)
    if not args.json and st.config_error:
        print("\nnot running, and it cannot be resumed until its config reads (the CONFIG line above)")
    elif not args.json and st.state != RunState.COMPLETED:
        print(f"\nnot running; continue it with: trm-tui --resume --run-dir {run_dir}")
    elif not args.json:
        print(f"\ncomplete; train it further with: trm-tui --resume --run-dir {run_dir} --set train.max_steps=N")
    return 0


def cmd_run(argv: list[str]) -> int:
    """Bare trm-tui: open a run as it is, or start or resume one and follow it (dashboard, --no-ui, --detach)."""
    args = build_parser().parse_args(argv)
    start = Start.from_args(args)
    if opens_existing_run(start):
        start_claim.release(start.rundir.root)  # nothing will be started: a stop must not wait for this
        return open_existing_run(args)
    refused = _refuse_open_flags(args, start) or refuse_unless_owner(
        start.rundir.root, "resume it or start it again" if args.resume else "start a run in it", "trm-tui")
    if refused is not None:
        return refused
    settings = _settings_for_start(args, start)
    if isinstance(settings, int):  # an exit code: refused, or nothing to do
        return settings
    return _start_and_follow(args, start, settings)


def _refuse_open_flags(args: argparse.Namespace, start: Start) -> int | None:
    """--read-only and --attach open a run as it is: with no run here, or with flags that describe one to start,
    they are an error."""
    if not (args.read_only or args.attach):
        return None
    flag = "--read-only" if args.read_only else "--attach"
    print(f"trm-tui: {flag} opens a run as it is, and there is no run in {start.rundir.control} "
          f"({flag} cannot start or resume one)" if not start.describes_run else
          f"trm-tui: {flag} opens a run as it is; it cannot be given --preset, --config, --set or "
          "--resume", file=sys.stderr)
    return EXIT_CONFIG


def _settings_for_start(args: argparse.Namespace, start: Start) -> SupervisorConfig | int:
    """The supervisor settings to start with, after the config resolves and doctor's torch-free checks pass
    (fail fast, before anything is written); a live worker keeps its own. An exit code instead: a config
    error, a failing check, or a resume of a completed run with nothing left to train."""
    run_dir = start.rundir.control
    running = live_worker(run_dir)
    if running is not None:  # attach: the run keeps its own config, and the user hears what was not applied
        say_ignored(args, start, running.pid)
        return run_settings(run_dir)
    try:
        cfg = check_start(start)
    except ConfigError as exc:
        if live_worker(run_dir) is not None:  # a concurrent start that we can attach to
            return run_settings(run_dir)
        print(f"trm-tui: {exc}" if isinstance(exc, StartRefused) else f"trm-tui: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.resume and _complete(start, cfg):
        return 0
    return cfg.supervisor


def say_ignored(args: argparse.Namespace, start: Start, pid: int) -> None:
    """A start on a run that is already running attaches to it: the flags that would have changed it are not
    applied, and saying so beats a silent attach (a user who typed --set expects it to count)."""
    given = [flag for flag, value in (("--preset", start.preset), ("--config", start.config_file),
                                      ("--set", start.sets)) if value]
    if not given:
        return
    print(f"trm-tui: the run in {start.rundir.root} is already running (worker pid {pid}): attaching to it; "
          f"{', '.join(given)} not applied (a running run keeps its config). To change it: trm-tui stop --run-dir "
          f"{start.rundir.root}, then trm-tui --resume --run-dir {start.rundir.root} --set KEY=VALUE (the keys a "
          f"resume may change: docs/config.md), or press a in the dashboard to auto-tune", file=sys.stderr)


def _complete(start: Start, cfg: config_mod.Config) -> bool:
    """A resume of a completed run that asks for no more steps: say so (there is nothing to resume)."""
    run_dir = start.rundir.control
    st = run_status(run_dir, cfg.supervisor)
    total = log_queries.resumed_total(start.rundir.events, cfg.train.max_steps, cfg.train.epochs)
    if st.state != RunState.COMPLETED or (total is not None and total > (st.step or 0)):
        return False
    print(f"the run in {run_dir} is complete at step {st.step}; nothing to resume (a larger "
          f"train.max_steps or train.epochs on --resume extends it)")
    return True


def _start_and_follow(args: argparse.Namespace, start: Start, settings: SupervisorConfig) -> int:
    """Start (or attach to) the run's keeper and follow it in the chosen front end; a start that failed on its
    config leaves no half-made run behind."""
    run = start.rundir
    # node N > 0 of a multi-node run: its keeper and launcher keep their files in nodes/node-N (the run's
    # config, events and checkpoints are rank 0's, at the top of the shared run dir)
    run_dir: Path = run.control
    created = not run_dir.exists()
    if args.detach:
        code = detach(start)
    elif wants_dashboard(args):
        code = run_dashboard(run_dir, start, settings)
    else:
        client = KeeperClient(run, start, settings.stop_grace_s, role="trm-tui --no-ui")
        code = Headless(client, as_json=args.json).run()
    if code != 0 and run_dir.exists():
        _show_log_tail(run_dir, code)
    if code == EXIT_CONFIG and created:
        wait_keeper_gone(run_dir)  # it wrote its last word; its lock goes when it exits, a moment later
        lifecycle.forget_new_run(run_dir, created=True)
    return code


def wait_keeper_gone(run_dir: Path, timeout_s: float = 10.0) -> None:
    keeper = live_keeper(run_dir)
    if keeper is not None:
        wait_gone(keeper, timeout_s)


def detach(start: Start) -> int:
    """Start the run (or find it) under its keeper and return: the SSH workflow's first step."""
    run_dir = start.rundir.control
    was = live_worker(run_dir)
    keeper, started = ensure_keeper(start)
    if keeper is None:
        print(f"trm-tui: the run's keeper did not start; see {start.rundir.keeper_log}", file=sys.stderr)
        return EXIT_FAILED
    what = f"attached: the run is already going (worker pid {was.pid})" if was is not None else \
        ("started" if started else "already starting")
    print(f"{what}; keeper pid {keeper.pid} supervises {run_dir} with no front end open\n"
          f"  watch:  trm-tui --run-dir {run_dir}    (or --no-ui; leaving either leaves the run going)\n"
          f"  status: trm-tui status --run-dir {run_dir}\n"
          f"  stop:   trm-tui stop --run-dir {run_dir}")
    return 0
