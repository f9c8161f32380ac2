"""``trm-tui autotune``: the fastest micro-batch and thread count for a run, keeping its effective batch.

On a supervised run the keeper runs the search (it outlives this command) and this follows it in the log; on
a stopped or new run the search runs here. Either way Ctrl-C, SIGTERM or SIGHUP cancel it cleanly.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path

from trm_core import config as config_mod
from trm_core.config import ConfigError
from trm_core.control import commands
from trm_core.control import tune
from trm_core.rundir import layout, lifecycle
from trm_core.rundir.identity import live_keeper, live_worker
from trm_core.rundir.layout import EXIT_CONFIG, EXIT_FAILED, RunDir
from trm_tui.cli.common import adopt_orphan_worker, refuse_unless_owner, refuse_unless_run_folder, run_dir_arg
from trm_tui.signals import handling


def autotune_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trm-tui autotune", description="Find the fastest micro-batch and thread "
                                "count for a run, keeping its effective batch: stops the run (checkpoint), "
                                "runs short trials, writes the choice into RUN_DIR/config.toml, resumes it.")
    run_dir_arg(p)
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
    if lifecycle.holds_run(args.run_dir):
        raise ConfigError(f"{args.run_dir} holds a run's events but no {layout.RUN_CONFIG}; it cannot be tuned")
    cfg = config_mod.resolve(config_file=args.config, preset=args.preset, sets=args.sets)
    args.run_dir.mkdir(parents=True, exist_ok=True)
    config_mod.write_config(cfg, args.run_dir / layout.RUN_CONFIG)
    args.sets = []
    return True


def wait_for_worker(run_dir: Path, keeper, timeout_s: float = 120.0):
    """The worker a keeper launched, once it has claimed the run; None if the keeper ends first or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ident = live_worker(run_dir)
        if ident is not None:
            return ident
        if keeper is None or not keeper.is_alive():
            return live_worker(run_dir)
        time.sleep(0.05)
    return None


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # Ctrl-C, a kill, a closed terminal


def say_cancelling(signum: int) -> None:
    print(f"trm-tui: {signal.Signals(signum).name}: cancelling the search (the run keeps its settings)",
          file=sys.stderr, flush=True)


class TrialPrinter:
    """The search as it goes: its start, then one numbered row per trial."""

    def __init__(self) -> None:
        self.count = 0

    def show(self, line_fields: dict) -> None:
        from trm_core.rundir.records import AutotuneStart, AutotuneTrial, parse
        from trm_tui.event_text import event_line, trial_text

        ev = parse(line_fields)
        if isinstance(ev, AutotuneStart):
            print(event_line(ev), flush=True)
            print(f"{'#':>3}  trial", flush=True)
        elif isinstance(ev, AutotuneTrial):
            self.count += 1
            print(f"{self.count:>3}  {trial_text(ev)}", flush=True)


def cmd_autotune(argv: list[str]) -> int:
    args = autotune_parser().parse_args(argv)
    a_file = args.run_dir.exists() and not args.run_dir.is_dir()  # (a folder not there yet may get a new run)
    refused = (refuse_unless_run_folder(args.run_dir, "trm-tui autotune") if a_file else None) or \
        refuse_unless_owner(args.run_dir, "auto-tune it", "trm-tui autotune")
    if refused is not None:
        return refused
    cancel = threading.Event()

    def interrupted(signum: int, _frame: object) -> None:  # end the search cleanly, then put the run back
        say_cancelling(signum)
        cancel.set()

    show = TrialPrinter().show
    with handling(dict.fromkeys(STOP_SIGNALS, interrupted)):
        if live_worker(args.run_dir) is not None and not (args.preset or args.config):
            adopt_orphan_worker(args.run_dir)
            if live_keeper(args.run_dir) is not None:  # a supervised run: its keeper runs the search
                return tune_through_keeper(args, show)
        return tune_here(args, show, cancel)


REACHED_STEPS = 10  # steps after a resume whose median speed is compared with the trial's
REACHED_WAIT_S = 90.0


def report_reached(tail, trial_sps: float | None) -> None:
    """What the resumed run really trains at, beside what the trial measured (a trial is a few steps of a
    fresh process; the run also evaluates and checkpoints): the median samples/s of its first steps after
    the resume, the first left out (warm-up). Said only if those steps come within REACHED_WAIT_S."""
    from statistics import median

    from trm_core.rundir.records import RunEnd, Step, parse

    rates: list[float] = []
    deadline = time.monotonic() + REACHED_WAIT_S
    while len(rates) <= REACHED_STEPS and time.monotonic() < deadline:
        for line in tail.poll():
            ev = parse(line)
            if isinstance(ev, Step) and ev.samples_per_s:
                rates.append(ev.samples_per_s)
            elif isinstance(ev, RunEnd):
                deadline = 0.0
        time.sleep(0.2)
    rates = rates[:REACHED_STEPS + 1]  # one poll may bring several steps: the first REACHED_STEPS after warm-up
    if len(rates) < 3:
        return
    measured = f"; the trial measured {trial_sps:,.1f}" if trial_sps else ""
    print(f"the run now trains at {median(rates[1:]):,.1f} samples/s (median of its {len(rates) - 1} steps "
          f"after the resume{measured})", flush=True)


def resume_after_search(run_dir: Path, trial_sps: float | None = None) -> int:
    """Put a run the search stopped back to training, under a keeper, and say so, then what it trains at."""
    from trm_core.rundir.events import EventTail

    tail = EventTail(run_dir / layout.EVENTS, from_end=True)
    keeper = tune.resume(RunDir.at(run_dir))
    ident = wait_for_worker(run_dir, keeper)
    if ident is None:
        print(f"trm-tui autotune: the resumed worker has not started; see {run_dir / layout.WORKER_LOG}",
              file=sys.stderr)
        return EXIT_FAILED
    print(f"resumed: worker pid {ident.pid}, supervised by its keeper; watch it with: trm-tui --run-dir {run_dir}",
          flush=True)
    report_reached(tail, trial_sps)
    return 0


def tune_here(args: argparse.Namespace, show, cancel: threading.Event) -> int:
    """The search in this process: for a stopped run, a new run (its config prepared first), or a running
    run with no keeper to ask."""
    from trm_core.rundir.records import parse
    from trm_tui.event_text import event_line

    created = not args.run_dir.exists()
    new_run = False
    try:
        new_run = prepare_new_run(args)
        outcome = tune.tune(args.run_dir, on_event=show, sets=args.sets, cancel=cancel,
                            on_stopping=lambda: print(f"stopping the run in {args.run_dir} (checkpoint) ...",
                                                      flush=True))
    except (ConfigError, tune.AutotuneError, OSError) as exc:
        print(f"trm-tui autotune: error: {exc}", file=sys.stderr)
        if new_run:
            lifecycle.forget_new_run(args.run_dir, created)
        if isinstance(exc, tune.AutotuneError) and exc.was_running and not args.no_resume:
            resume_after_search(args.run_dir)  # the search stopped the run: it goes on as it was
        return EXIT_CONFIG if isinstance(exc, ConfigError) else EXIT_FAILED
    if outcome.note:
        print(f"note: {outcome.note}")
    print(event_line(parse(outcome.result_event)))
    if outcome.chosen is not None and not cancel.is_set():
        print(f"chosen: {outcome.chosen.candidate.label()}" + ("" if outcome.changed else " (the run's current settings)"))
    if outcome.was_running and not args.no_resume:
        return resume_after_search(args.run_dir, outcome.chosen.samples_per_s if outcome.chosen else None)
    if outcome.was_running or new_run:
        print(f"the run {'stays stopped' if outcome.was_running else 'is ready'}; "
              f"{'resume' if outcome.was_running else 'start'} it with: trm-tui --run-dir {args.run_dir} --resume")
    return 0


def tune_through_keeper(args: argparse.Namespace, show) -> int:
    """``trm-tui autotune`` on a supervised run: the keeper runs the search (it outlives this command) and
    resumes the run; this follows it in the log. Ctrl-C, SIGTERM or SIGHUP cancel the search (the run keeps
    its settings and goes on)."""
    from trm_core.rundir.events import EventTail

    tune.search_config(args.run_dir, args.sets)  # a ConfigError: exit 2 at the one boundary (cli/main.py)
    sender = commands.sender_name("trm-tui autotune")
    cancelled = []

    def interrupted(signum: int, _frame: object) -> None:  # the keeper cancels its search
        say_cancelling(signum)
        if not cancelled:
            cancelled.append(commands.send(args.run_dir, commands.CancelAutotune(), sender))

    with handling(dict.fromkeys(STOP_SIGNALS, interrupted)):
        tail = EventTail(args.run_dir / layout.EVENTS, from_end=True)
        cid = commands.send(args.run_dir, commands.Autotune(tuple(args.sets), resume=not args.no_resume), sender)
        ack = commands.answer(args.run_dir, cid, timeout_s=30)
        if ack is None or not ack.accepted:
            print(f"trm-tui autotune: the keeper {'did not answer' if ack is None else 'refused: ' + ack.reason}",
                  file=sys.stderr)
            return EXIT_FAILED
        print(f"stopping the run in {args.run_dir} (checkpoint) ...", flush=True)
        return follow_search(args, show, tail)


def follow_search(args: argparse.Namespace, show, tail) -> int:
    """The keeper's search as its log tells it, to the run's resume (or its end)."""
    from trm_core.rundir.records import AutotuneResult, KeeperEnd, RunStart, WarningEvent, parse
    from trm_tui.event_text import event_line

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
                      f"trm-tui --run-dir {args.run_dir}", flush=True)
                aborted = result is None or (result.note or "").startswith("aborted")
                if not aborted:
                    report_reached(tail, result.after_samples_per_s)
                return EXIT_FAILED if aborted else 0
            elif isinstance(ev, KeeperEnd):
                print(f"supervision over: {ev.reason}")
                return ev.exit_code
        time.sleep(0.2)
