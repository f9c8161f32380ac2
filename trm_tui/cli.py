"""``trm-tui``: run and watch a TRM training job; ``trm-tui status`` and ``trm-tui stop`` for any shell.

Exit codes: 0 the run completed or was stopped on request, 1 it failed beyond its restarts, 2 bad usage
or config.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from trm_core import config as config_mod
from trm_core.config import ConfigError, SupervisorConfig
from trm_core.prep.dataset_shape import check_data
from trm_core.control.launch import stop_worker
from trm_core.rundir.states import RunState
from trm_core.control.status import RunStatus, run_status
from trm_core.distributed import rank_files
from trm_core.control import commands
from trm_core.control.client import KeeperClient
from trm_core.control import launch
from trm_core.control.launch import ensure_keeper
from trm_core.rundir import layout
from trm_core.rundir.identity import live_keeper, live_worker
from trm_core.rundir.layout import EXIT_CONFIG, EXIT_FAILED
from trm_tui.headless import Headless
from trm_tui.progress import duration, gpu_line

DEFAULT_RUN_DIR = Path("runs/default")


def _run_dir_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR, help="run folder (default: runs/default)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trm-tui", description="Run and watch a Tiny Recursive Model training job. "
                                "Also: 'trm-tui status', 'trm-tui stop', 'trm-tui runs', 'trm-tui serve', 'trm-tui data' and 'trm-tui autotune' (each has --help).")
    _run_dir_arg(p)
    config_mod.add_start_arguments(p)
    p.add_argument("--no-ui", action="store_true", help="headless: print progress lines instead of the dashboard")
    p.add_argument("--json", action="store_true", help="with --no-ui: print the events as JSON lines (messages on stderr)")
    p.add_argument("--detach", action="store_true", help="start the run (or find it) and return at once; the run's "
                   "keeper supervises it with no front end open")
    return p


def status_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trm-tui status", description="Show the state of a run.")
    _run_dir_arg(p)
    p.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    return p


def stop_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trm-tui stop", description="Stop a run: gracefully (checkpoint) unless --force.")
    _run_dir_arg(p)
    p.add_argument("--force", action="store_true", help="SIGKILL at once (no checkpoint of the current step)")
    return p


def autotune_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trm-tui autotune", description="Find the fastest micro-batch and thread "
                                "count for a run, keeping its effective batch: stops the run (checkpoint), "
                                "runs short trials, writes the choice into RUN_DIR/config.toml, resumes it.")
    _run_dir_arg(p)
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="for an existing run: an autotune key for this search (repeatable), e.g. "
                        "autotune.max_seconds=120; for a new run: any key, as for trm-tui")
    p.add_argument("--config", type=Path, help="new run: config file")
    p.add_argument("--preset", help="new run: apply [presets.NAME]")
    p.add_argument("--no-resume", action="store_true", help="leave the run stopped afterwards")
    return p


def prepare_new_run(args: argparse.Namespace) -> bool:
    """Tune before training: a run dir without a run gets its resolved config (nothing else), so the search
    can also try larger batches (autotune.allow_batch_change). True when it made one."""
    has_run = (args.run_dir / layout.RUN_CONFIG).exists()
    if has_run and (args.preset or args.config):
        raise ConfigError(f"--preset and --config are for a new run; {args.run_dir} already has its config "
                          f"(only --set autotune.KEY=VALUE applies to a search)")
    run_keys = [item for item in args.sets if not item.startswith("autotune.")]
    if has_run or not (args.preset or args.config or run_keys):
        return False  # autotune.* alone does not describe a run: a mistyped --run-dir is an error, not a run
    if layout.holds_run(args.run_dir):
        raise ConfigError(f"{args.run_dir} holds a run's events but no {layout.RUN_CONFIG}; it cannot be tuned")
    cfg = config_mod.resolve(config_file=args.config, preset=args.preset, sets=args.sets)
    args.run_dir.mkdir(parents=True, exist_ok=True)
    config_mod.write_config(cfg, args.run_dir / layout.RUN_CONFIG)
    args.sets = []
    return True


def run_settings(run_dir: Path) -> SupervisorConfig:
    """The supervisor settings of an existing run (its own config.toml), defaults when there is none."""
    try:
        return config_mod.resolve(base=config_mod.read_run_config(run_dir / layout.RUN_CONFIG), env={}).supervisor
    except ConfigError:
        return SupervisorConfig()


def cmd_status(argv: list[str]) -> int:
    args = status_parser().parse_args(argv)
    if not args.run_dir.is_dir():
        what = "is a file, not a run folder" if args.run_dir.exists() else "does not exist"
        print(f"trm-tui status: no run in {args.run_dir}: the folder {what}", file=sys.stderr)
        return EXIT_CONFIG
    revive_keeper(args.run_dir)
    show_status(args.run_dir, run_settings(args.run_dir), args.json)
    return 0


def show_status(run_dir: Path, settings: SupervisorConfig, as_json: bool) -> RunStatus:
    """Print the run's status (one JSON object, or a row per figure); returns it for the caller to go on."""
    st = run_status(run_dir, settings)
    gpus = gpu_samples(run_dir, st.pid)
    now = time.time()
    found = rank_files.read_all(run_dir)
    ranks = [(s, rank_files.health(s, now, st.stall_after_s or 60.0, found)) for s in found]
    if as_json:
        print(json.dumps(st.to_dict() | {"gpus": [dataclasses.asdict(g) for g in gpus],
                                         "ranks": [dataclasses.asdict(s) | {"health": h, "heartbeat_age_s": round(s.age(now), 1)}
                                                   for s, h in ranks]}))
        return st
    rows = [("run", str(run_dir)), ("state", st.state + (f" ({st.reason})" if st.reason else "")),
            ("pid", st.pid or "-"),
            ("step", f"{st.step}/{st.total_steps}" if st.step is not None else "-"), ("epoch", st.epoch or "-"),
            ("loss", f"{st.loss:.4f}" if isinstance(st.loss, float) else "-"),
            ("samples/s", f"{st.samples_per_s:.1f}" if st.samples_per_s else "-"), ("ETA", duration(st.eta_s)),
            ("checkpoint", f"step {st.checkpoint_step}, {duration(st.checkpoint_age_s)} old"
                           + (" (STALE)" if st.checkpoint_stale else "") if st.checkpoint_step is not None else "none"),
            ("restarts", st.restarts),
            ("disk", "-" if st.disk_free_mb is None else
             f"{st.disk_free_mb:,.{1 if st.disk_free_mb < 10 else 0}f} MiB free in the run dir's file system")]
    if st.disk_warning:
        rows.append(("WARNING", f"disk low: {st.disk_warning}"))
    rows += [("gpu", gpu_line(g)) for g in gpus]
    rows += [(f"rank {s.rank}", f"{h}: {s.host} pid {s.pid} {s.device}, step {s.step}"
              + (f" ({s.step_s:.2f}s, {100 * w:.0f}% of it waiting for the others)"
                 if s.step_s is not None and (w := rank_files.wait_share(s)) is not None else "")
              + f", {s.phase}, heartbeat "
              f"{duration(s.age(now))} old" + (f"; {s.reason}" if s.ended and s.reason else ""))
             for s, h in ranks]
    for key, value in rows:
        print(f"{key:<11} {value}")
    return st


def gpu_samples(run_dir: Path, worker_pid: int | None) -> list:
    """What NVML says of each GPU now, with the memory of the worker's process tree (the same tree the
    dashboard's CPU panel sums); none where there is no NVIDIA GPU (a CPU machine's status stays as it was)."""
    from trm_core.telemetry import GpuProbe, HostProbe

    pids = HostProbe(run_dir).sample(worker_pid).worker_pids
    probe = GpuProbe()
    try:
        status = probe.sample(pids)
    finally:
        probe.close()
    return status.gpus if status.available else []


def revive_keeper(run_dir: Path) -> None:
    """A live worker without its keeper (the keeper was killed): a new keeper adopts it, and we say so."""
    adopted = launch.revive_keeper(run_dir)
    if adopted is not None:
        print(f"trm-tui: {launch.adoption_note(adopted)}", file=sys.stderr, flush=True)


def cmd_stop(argv: list[str]) -> int:
    args = stop_parser().parse_args(argv)
    settings = run_settings(args.run_dir)
    ident = live_worker(args.run_dir)
    if ident is None:
        if live_keeper(args.run_dir) is not None:  # between a crash and its restart: cancel the restart
            cid = commands.send(args.run_dir, "kill" if args.force else "stop", commands.sender_name("trm-tui stop"))
            ack = commands.answer(args.run_dir, cid, timeout_s=10)
            print(f"keeper: {ack.reason}" if ack is not None else "the keeper did not answer within 10 s")
            return 0
        print(f"no worker is running in {args.run_dir}")
        return 0
    how = "killing" if args.force else f"stopping (graceful, up to {settings.stop_grace_s:g}s for a checkpoint)"
    print(f"{how} worker pid {ident.pid} of {args.run_dir}", flush=True)
    result = stop_worker(args.run_dir, settings.stop_grace_s, force=args.force)
    if result.graceful:
        st = run_status(args.run_dir, settings)
        print(f"stopped in {result.seconds:.1f}s at step {st.step}; newest checkpoint: step {st.checkpoint_step}")
    elif result.killed:
        print(f"killed after {result.seconds:.1f}s; the newest good checkpoint is kept")
    return 0


def _show_log_tail(run_dir: Path, code: int) -> None:
    log = run_dir / layout.WORKER_LOG
    lines = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
    print(f"trm-tui: the worker exited with code {code}; last lines of {log}:", file=sys.stderr)
    for line in lines:
        print(f"  {line}", file=sys.stderr)


def resumed_total(run_dir: Path, cfg) -> int | None:
    """The steps a resume with ``cfg`` would train to: ``train.max_steps``, or epochs x the steps per epoch
    the run's last start recorded; None when that is unknown (the worker then decides)."""
    if cfg.train.max_steps:
        return cfg.train.max_steps
    from trm_core.rundir.events import read_tail
    from trm_core.rundir.records import RunStart, parse
    starts = [ev for ev in map(parse, read_tail(run_dir / layout.EVENTS)) if isinstance(ev, RunStart)]
    per_epoch = starts[-1].steps_per_epoch if starts else None
    return cfg.train.epochs * per_epoch if per_epoch else None


def run_dashboard(run_dir: Path, launch_args: list[str] | None, settings: SupervisorConfig) -> int:
    """The dashboard on ``run_dir`` (started with ``launch_args``, or opened as it is with None), then on each run
    the runs screen switches to, opened as it is; at the end, where the run left going is and how to come back."""
    from trm_tui.dashboard.app import Dashboard  # Textual loads only for the dashboard

    app = Dashboard(run_dir, launch_args, settings)
    code = app.run() or 0
    while app.switch_to is not None:
        run_dir = app.switch_to
        app = Dashboard(run_dir, None, run_settings(run_dir))
        code = app.run() or 0
    keeper = live_keeper(run_dir)
    if keeper is not None:  # q left the run going: say where it is and how to come back
        print(f"the run goes on, supervised by its keeper (pid {keeper.pid}); come back with: "
              f"trm-tui --run-dir {run_dir}   (stop it with: trm-tui stop --run-dir {run_dir})")
    return code


def has_screen() -> bool:
    """Somewhere to draw the dashboard: a terminal, or a browser page (textual-serve runs us under its web
    driver, with pipes for stdin and stdout)."""
    import os

    web = os.environ.get("TEXTUAL_DRIVER", "").startswith("textual.drivers.web_driver")
    return web or (sys.stdout.isatty() and sys.stdin.isatty())


def opens_existing_run(args: argparse.Namespace) -> bool:
    """``trm-tui [--run-dir DIR]`` with nothing that describes a start, on a folder that holds a run: open it as
    it is, in whatever state (only --preset, --config or --set on a folder without a run start one)."""
    return not (args.preset or args.config or args.sets or args.resume) and args.run_dir.is_dir() \
        and layout.holds_run(args.run_dir)


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
    if not args.no_ui and has_screen():
        return run_dashboard(run_dir, None, settings)
    if live_keeper(run_dir) is not None or live_worker(run_dir) is not None:
        if not args.no_ui:
            print("trm-tui: not a terminal; running headless (--no-ui)", file=sys.stderr)
        client = KeeperClient(run_dir, None, settings.stop_grace_s, role="trm-tui --no-ui")
        return Headless(client, as_json=args.json).run()
    st = show_status(run_dir, settings, args.json)
    if not args.json and st.state != RunState.COMPLETED:
        print(f"\nnot running; continue it with: trm-tui --resume --run-dir {run_dir}")
    elif not args.json:
        print(f"\ncomplete; train it further with: trm-tui --resume --run-dir {run_dir} --set train.max_steps=N")
    return 0


def node_rank_of(args: argparse.Namespace) -> int:
    """The node a start runs on (``distributed.node_rank``), 0 when its config does not resolve (the full
    check below says why)."""
    try:
        return config_mod.resolve(config_file=args.config, preset=args.preset, sets=args.sets).distributed.node_rank
    except ConfigError:
        return 0


def cmd_run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    # node N > 0 of a multi-node run: its keeper and launcher keep their files in nodes/node-N (the run's
    # config, events and checkpoints are rank 0's, at the top of the shared run dir)
    run_dir: Path = layout.node_dir(args.run_dir, node_rank_of(args))
    settings: SupervisorConfig
    if opens_existing_run(args):
        return open_existing_run(args)
    if live_worker(run_dir) is not None:
        settings = run_settings(run_dir)  # attach: the run keeps its own config
    else:
        cfg = None
        try:
            cfg = config_mod.resolve_run_config(args)  # fail fast, before anything is written
            check_data(cfg)
            settings = cfg.supervisor
        except ConfigError as exc:
            if live_worker(run_dir) is None:  # not a concurrent start that we can attach to
                print(f"trm-tui: error: {exc}", file=sys.stderr)
                return EXIT_CONFIG
            settings = run_settings(run_dir)
        if args.resume and cfg is not None:
            st = run_status(run_dir, settings)
            total = resumed_total(run_dir, cfg)
            if st.state == RunState.COMPLETED and (total is None or total <= (st.step or 0)):
                print(f"the run in {run_dir} is complete at step {st.step}; nothing to resume (a larger "
                      f"train.max_steps or train.epochs on --resume extends it)")
                return 0
    created = not run_dir.exists()
    if args.detach:
        code = detach(run_dir, config_mod.start_argv(args))
    elif not args.no_ui and has_screen():
        code = run_dashboard(run_dir, config_mod.start_argv(args), settings)
    else:
        if not args.no_ui:
            print("trm-tui: not a terminal; running headless (--no-ui)", file=sys.stderr)
        client = KeeperClient(run_dir, config_mod.start_argv(args), settings.stop_grace_s, role="trm-tui --no-ui")
        code = Headless(client, as_json=args.json).run()
    if code != 0 and run_dir.exists():
        _show_log_tail(run_dir, code)
    if code == EXIT_CONFIG and created:
        wait_keeper_gone(run_dir)  # it wrote its last word; its lock goes when it exits, a moment later
        layout.forget_new_run(run_dir, created=True)
    return code


def wait_keeper_gone(run_dir: Path, timeout_s: float = 10.0) -> None:
    keeper = live_keeper(run_dir)
    if keeper is not None:
        launch.wait_gone(keeper, timeout_s)


def wait_for_worker(run_dir: Path, keeper, timeout_s: float = 120.0):
    """The worker a keeper launched, once it has claimed the run; None if the keeper ends first or time runs out."""
    import time
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ident = live_worker(run_dir)
        if ident is not None:
            return ident
        if keeper is None or not keeper.is_alive():
            return live_worker(run_dir)
        time.sleep(0.05)
    return None


def cmd_autotune(argv: list[str]) -> int:
    import signal
    import threading

    from trm_core.autotune.engine import AutotuneError, autotune
    from trm_core.rundir.records import AutotuneStart, AutotuneTrial, parse
    from trm_tui.progress import event_line, trial_text

    args = autotune_parser().parse_args(argv)
    cancel = threading.Event()

    def interrupted(signum: int, _frame: object) -> None:
        # Ctrl-C, a closed terminal (SIGHUP) or a kill: end the search cleanly, then put the run back
        print(f"trm-tui: {signal.Signals(signum).name}: cancelling the search (the run keeps its settings)",
              file=sys.stderr, flush=True)
        cancel.set()

    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, interrupted) for sig in handled}
    count = 0

    def show(line_fields: dict) -> None:
        nonlocal count
        ev = parse(line_fields)
        if isinstance(ev, AutotuneStart):
            print(event_line(ev), flush=True)
            print(f"{'#':>3}  trial", flush=True)
        elif isinstance(ev, AutotuneTrial):
            count += 1
            print(f"{count:>3}  {trial_text(ev)}", flush=True)

    def resume() -> int:
        keeper, _ = ensure_keeper(args.run_dir, ["--resume"])
        ident = wait_for_worker(args.run_dir, keeper)
        if ident is None:
            print(f"trm-tui autotune: the resumed worker has not started; see {args.run_dir / layout.WORKER_LOG}",
                  file=sys.stderr)
            return EXIT_FAILED
        print(f"resumed: worker pid {ident.pid}, supervised by its keeper; watch it with: trm-tui --run-dir "
              f"{args.run_dir}")
        return 0

    if live_worker(args.run_dir) is not None and not (args.preset or args.config):
        revive_keeper(args.run_dir)
        if live_keeper(args.run_dir) is not None:  # a supervised run: its keeper runs the search
            try:
                return tune_through_keeper(args, show, previous)
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
    created = not args.run_dir.exists()
    new_run = False
    try:
        new_run = prepare_new_run(args)
        outcome = autotune(args.run_dir, on_event=show, sets=args.sets, cancel=cancel,
                           on_stopping=lambda: print(f"stopping the run in {args.run_dir} (checkpoint) ...",
                                                     flush=True))
    except (ConfigError, AutotuneError, OSError) as exc:
        print(f"trm-tui autotune: error: {exc}", file=sys.stderr)
        if new_run:
            layout.forget_new_run(args.run_dir, created)
        if isinstance(exc, AutotuneError) and exc.was_running and not args.no_resume:
            resume()  # the search stopped the run: it goes on as it was
        return EXIT_CONFIG if isinstance(exc, ConfigError) else EXIT_FAILED
    try:
        if outcome.note:
            print(f"note: {outcome.note}")
        print(event_line(parse(outcome.result_event)))
        if outcome.chosen is not None and not cancel.is_set():
            print(f"chosen: {outcome.chosen.candidate.label()}"
                  + ("" if outcome.changed else " (the run's current settings)"))
        if outcome.was_running and not args.no_resume:
            return resume()
        if outcome.was_running or new_run:
            print(f"the run {'stays stopped' if outcome.was_running else 'is ready'}; "
                  f"{'resume' if outcome.was_running else 'start'} it with: trm-tui --run-dir {args.run_dir} --resume")
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def tune_through_keeper(args: argparse.Namespace, show, handlers: dict) -> int:
    """``trm-tui autotune`` on a supervised run: the keeper runs the search (it outlives this command) and
    resumes the run; this follows it in the log. Ctrl-C, SIGTERM or SIGHUP cancel the search (the run keeps
    its settings and goes on)."""
    import signal
    import time

    from trm_core.rundir.events import EventTail
    from trm_core.rundir.records import AutotuneResult, KeeperEnd, RunStart, WarningEvent, parse
    from trm_tui.progress import event_line

    bad = [s for s in args.sets if not s.startswith("autotune.")]
    try:
        if bad:
            raise ConfigError(f"--set {bad[0]}: only autotune.* keys can be set for a search")
        config_mod.resolve(base=config_mod.read_run_config(args.run_dir / layout.RUN_CONFIG), env={}, sets=args.sets)
    except ConfigError as exc:
        print(f"trm-tui autotune: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    sender = commands.sender_name("trm-tui autotune")
    cancelled = []

    def interrupted(signum: int, _frame: object) -> None:
        print(f"trm-tui: {signal.Signals(signum).name}: cancelling the search (the run keeps its settings)",
              file=sys.stderr, flush=True)
        if not cancelled:
            cancelled.append(commands.send(args.run_dir, "cancel_autotune", sender))

    for sig in handlers:
        signal.signal(sig, interrupted)
    tail = EventTail(args.run_dir / layout.EVENTS, from_end=True)
    cid = commands.send(args.run_dir, "autotune", sender, {"sets": args.sets, "resume": not args.no_resume})
    ack = commands.answer(args.run_dir, cid, timeout_s=30)
    if ack is None or not ack.accepted:
        print(f"trm-tui autotune: the keeper {'did not answer' if ack is None else 'refused: ' + ack.reason}",
              file=sys.stderr)
        return EXIT_FAILED
    print(f"stopping the run in {args.run_dir} (checkpoint) ...", flush=True)
    result: AutotuneResult | None = None
    while True:
        for line in tail.poll():
            ev = parse(line)
            show(line)
            if isinstance(ev, AutotuneResult):
                result = ev
                print(event_line(ev), flush=True)
                if args.no_resume:
                    print(f"the run stays stopped; resume it with: trm-tui --run-dir {args.run_dir} --resume")
                    return 0
            elif isinstance(ev, WarningEvent) and (ev.message or "").startswith("auto-tune"):
                print(f"trm-tui autotune: error: {ev.message}", file=sys.stderr)
            elif isinstance(ev, RunStart) and ev.pid:
                outcome = "resumed" if result is not None else "the search did not run; the run goes on"
                print(f"{outcome}: worker pid {ev.pid}, supervised by its keeper; watch it with: "
                      f"trm-tui --run-dir {args.run_dir}")
                aborted = result is None or (result.note or "").startswith("aborted")
                return EXIT_FAILED if aborted else 0
            elif isinstance(ev, KeeperEnd):
                print(f"supervision over: {ev.reason}")
                return ev.exit_code
        time.sleep(0.2)


def detach(run_dir: Path, launch_args: list[str]) -> int:
    """Start the run (or find it) under its keeper and return: the SSH workflow's first step."""
    was = live_worker(run_dir)
    keeper, started = ensure_keeper(run_dir, launch_args)
    if keeper is None:
        print(f"trm-tui: the run's keeper did not start; see {run_dir / layout.KEEPER_LOG}", file=sys.stderr)
        return EXIT_FAILED
    what = f"attached: the run is already going (worker pid {was.pid})" if was is not None else \
        ("started" if started else "already starting")
    print(f"{what}; keeper pid {keeper.pid} supervises {run_dir} with no front end open\n"
          f"  watch:  trm-tui --run-dir {run_dir}    (or --no-ui; leaving either leaves the run going)\n"
          f"  status: trm-tui status --run-dir {run_dir}\n"
          f"  stop:   trm-tui stop --run-dir {run_dir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    from trm_tui.runs import cmd_runs
    from trm_tui.data_cli import cmd_data
    from trm_tui.serve import cmd_serve

    subcommands = {"status": cmd_status, "stop": cmd_stop, "autotune": cmd_autotune, "runs": cmd_runs,
                   "serve": cmd_serve, "data": cmd_data}
    try:
        if argv and argv[0] in subcommands:
            return subcommands[argv[0]](argv[1:])
        return cmd_run(argv)
    except BrokenPipeError:  # `trm-tui status | head -2`: the reader has what it wanted
        from trm_tui.headless import _quiet_stdout
        _quiet_stdout()
        return 0


if __name__ == "__main__":
    sys.exit(main())
