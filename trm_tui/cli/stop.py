"""``trm-tui stop``: stop a run from any shell, gracefully (a checkpoint) unless --force."""

from __future__ import annotations

import argparse

from trm_core.config.start import saved_settings
from trm_core.control import commands
from trm_core.control.launch import stop_worker
from trm_core.control.run_status import run_status
from trm_core.rundir.identity import live_keeper, live_worker
from trm_core.rundir.layout import RunDir
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
    if ident is None:
        if live_keeper(args.run_dir) is not None:  # between a crash and its restart: cancel the restart
            cid = commands.send(args.run_dir, commands.Kill() if args.force else commands.Stop("trm-tui stop"), commands.sender_name("trm-tui stop"))
            ack = commands.answer(args.run_dir, cid, timeout_s=10)
            print(f"keeper: {ack.reason}" if ack is not None else "the keeper did not answer within 10 s")
            return 0
        print(f"no worker is running in {args.run_dir}")
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
