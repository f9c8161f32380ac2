"""``trm-tui stop``: stop a run from any shell, gracefully (a checkpoint) unless --force."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from trm_core.config import SupervisorConfig
from trm_core.config.start import saved_settings
from trm_core.control import commands
from trm_core.control.launch import stop_worker, wait_gone
from trm_core.control.run_status import run_status
from trm_core.rundir.identity import live_keeper, live_worker, run_lock_held
from trm_core.rundir.layout import EXIT_FAILED, START_LOCK, RunDir
from trm_tui.cli.common import refuse_unless_owner, refuse_unless_run_folder, run_dir_arg


def stop_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trm-tui stop", description="Stop a run: gracefully (checkpoint) unless --force.")
    run_dir_arg(p)
    p.add_argument("--force", action="store_true", help="SIGKILL at once (no checkpoint of the current step)")
    return p


def cmd_stop(argv: list[str]) -> int:
    args = stop_parser().parse_args(argv)
    refused = refuse_unless_run_folder(args.run_dir, "trm-tui stop") or refuse_unless_owner(args.run_dir, "stop it" if not args.force else "kill it", "trm-tui stop")
    if refused is not None:
        return refused
    settings = saved_settings(args.run_dir)
    ident = live_worker(args.run_dir)
    run = RunDir.at(args.run_dir)
    if not args.force and run.stop_requested() and (ident is not None or live_keeper(args.run_dir) is not None):
        # a second stop: a second signal would end the worker without its checkpoint, and a keeper on its
        # way out answers no command; say at once what is under way
        who = run.stop_reason() or "an earlier stop"
        doing = f"worker pid {ident.pid} is saving its checkpoint and exiting" if ident is not None else \
            "the worker has exited and its keeper is winding down"
        print(f"a stop is already under way in {args.run_dir} (asked by {who}): {doing}; trm-tui status shows "
              f"when it is over, trm-tui stop --force ends it at once without a checkpoint")
        return 0
    if ident is None and live_keeper(args.run_dir) is None and run_lock_held(args.run_dir, START_LOCK):
        if not wait_for_start(args.run_dir):
            print(f"trm-tui stop: a start in {args.run_dir} has not reached its keeper within {START_WAIT_S:g}s; "
                  f"nothing was stopped (trm-tui status shows where it is; try again)", file=sys.stderr)
            return EXIT_FAILED
        ident = live_worker(args.run_dir)
    if ident is None:
        if live_keeper(args.run_dir) is not None:  # starting, or between a crash and its restart
            return stop_through_keeper(args.run_dir, args.force, settings)
        st = run_status(args.run_dir, settings)
        print(f"nothing to stop: no worker is running in {args.run_dir} (the run is {st.state})")
        return 0
    how = "killing" if args.force else f"stopping (graceful, up to {settings.stop_grace_s:g}s for a checkpoint)"
    print(f"{how} worker pid {ident.pid} of {args.run_dir}", flush=True)
    result = stop_worker(run, settings.stop_grace_s, force=args.force, why="trm-tui stop")
    if result.graceful:
        st = run_status(args.run_dir, settings)
        print(f"stopped in {result.seconds:.1f}s at step {st.step}; newest checkpoint: step {st.checkpoint_step}")
    elif result.killed:
        print(f"killed after {result.seconds:.1f}s; the newest good checkpoint is kept")
    return 0


START_WAIT_S = 120.0  # a start's imports, config and pre-checks on a busy machine, before its keeper claims the run
KEEPER_ANSWER_S = 60.0  # a keeper answers once its new worker has claimed the run (its imports: seconds)


def wait_for_start(run_dir: Path) -> bool:
    """A start is under way (its front end holds start.lock, no keeper yet): wait until its keeper is there or
    the start is over. False when it is still under way after ``START_WAIT_S``."""
    print(f"a start is under way in {run_dir}: waiting for its keeper, to stop the run through it", flush=True)
    deadline = time.monotonic() + START_WAIT_S
    while run_lock_held(run_dir, START_LOCK) and live_keeper(run_dir) is None:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def stop_through_keeper(run_dir: Path, force: bool, settings: SupervisorConfig) -> int:
    """No worker yet (starting) or none now (a restart pending): the keeper carries the stop out. Exit 0 only
    when it accepted the stop and the run ended; the keeper's refusal or silence is said, exit 1."""
    grace_s = settings.stop_grace_s
    cid = commands.send(run_dir, commands.Kill() if force else commands.Stop("trm-tui stop"),
                        commands.sender_name("trm-tui stop"))
    ack = commands.answer(run_dir, cid, timeout_s=KEEPER_ANSWER_S)
    if ack is None:
        print(f"trm-tui stop: the keeper did not answer within {KEEPER_ANSWER_S:g}s; the stop waits in its inbox and "
              f"is carried out when it answers (trm-tui status shows when)", file=sys.stderr)
        return EXIT_FAILED
    print(f"keeper: {ack.reason}", flush=True)
    if not ack.accepted:
        return EXIT_FAILED
    keeper = live_keeper(run_dir)
    if keeper is not None and not wait_gone(keeper, grace_s + KEEPER_ANSWER_S):
        print(f"trm-tui stop: the run is still stopping after {grace_s + KEEPER_ANSWER_S:g}s; trm-tui status shows "
              f"when it is over", file=sys.stderr)
        return EXIT_FAILED
    st = run_status(run_dir, settings)
    print(f"the run is {st.state} at step {st.step}; newest checkpoint: step {st.checkpoint_step}")
    return 0
