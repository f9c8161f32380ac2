"""``trm-tui adopt``: a live worker whose keeper is gone (killed, out of memory) gets a new keeper that adopts
it: supervised again (restarts, commands, alerts) without being restarted. ``status`` only suggests it."""

from __future__ import annotations

import argparse

from trm_core.control import launch
from trm_core.rundir.identity import live_keeper, live_worker
from trm_core.rundir.layout import RunDir
from trm_tui.cli.common import refuse_unless_owner, refuse_unless_run_folder, run_dir_arg


def adopt_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trm-tui adopt", description="Start a keeper for a running worker whose "
                                "keeper is gone; the worker goes on as it is.")
    run_dir_arg(p)
    return p


def cmd_adopt(argv: list[str]) -> int:
    args = adopt_parser().parse_args(argv)
    refused = refuse_unless_run_folder(args.run_dir, "trm-tui adopt") or \
        refuse_unless_owner(args.run_dir, "adopt its worker", "trm-tui adopt")
    if refused is not None:
        return refused
    run = RunDir.at(args.run_dir)
    worker, keeper = live_worker(run.control), live_keeper(run.control)
    if worker is None:
        print(f"nothing to adopt: no worker is running in {args.run_dir}")
        return 0
    if keeper is not None:
        print(f"nothing to adopt: keeper pid {keeper.pid} already supervises worker pid {worker.pid}")
        return 0
    adopted = launch.revive_keeper(run)
    print(launch.adoption_note(adopted) if adopted is not None else "nothing to adopt: the run changed meanwhile")
    return 0
