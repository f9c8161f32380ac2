"""A node's launcher: ``python -m trm_core.distributed.node_launcher --run-dir DIR [start flags]``.

The keeper starts this instead of the worker when the run has more than one rank. It checks the start,
claims the node's run lock and records itself as the node's worker (``worker.json`` in the node's dir:
the run dir itself on node 0, ``nodes/node-N`` on node N), then *becomes* torchrun (``exec`` of
``python -m torch.distributed.run``, same pid, the lock still held): torchrun's c10d rendezvous forms the
group across nodes and starts one worker per local rank. Everything the keeper does to a worker (wait for
it, signal it, find it after a front end died) works on this one process, and a SIGTERM to it reaches
every local rank (torchrun forwards it, then waits ``supervisor.stop_grace_s`` before SIGKILL).

torchrun never restarts the group itself (``--max-restarts 0``): the keeper does, under the run's restart
policy, after its post-mortem has named the rank that took the group down.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from trm_core import config as config_mod
from trm_core.config import Config, ConfigError, Start
from trm_core.distributed import rank_files
from trm_core.rundir import identity
from trm_core.rundir.layout import EXIT_CONFIG, RunDir


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m trm_core.distributed.node_launcher",
                                description="Launch this node's ranks of a run through torchrun.")
    p.add_argument("--run-dir", required=True, type=Path, help="the node's dir (the run dir on node 0)")
    config_mod.add_start_arguments(p)
    return p


def rendezvous_id(run_dir: Path) -> str:
    """The same on every node of a run (they share the run dir's name), distinct between runs."""
    return "trm-" + "".join(c if c.isalnum() or c in "-_" else "-" for c in run_dir.resolve().name)


def torchrun_argv(cfg: Config, run_dir: Path, start_args: list[str]) -> list[str]:
    """The torchrun command line for this node's ranks of the run in ``run_dir`` (the run's own dir)."""
    d = cfg.distributed
    argv = [sys.executable, "-m", "torch.distributed.run", "--nnodes", str(d.nnodes),
            "--nproc-per-node", str(d.nproc_per_node), "--max-restarts", "0",
            "--shutdown-timeout", str(int(cfg.supervisor.stop_grace_s)), "--monitor-interval", "0.5"]
    if d.nnodes == 1 and not d.rdzv_endpoint:
        argv.append("--standalone")  # c10d on a free local port
    else:
        argv += ["--rdzv-backend", "c10d", "--rdzv-endpoint", d.rdzv_endpoint or "127.0.0.1:29500",
                 "--rdzv-id", rendezvous_id(run_dir), "--node-rank", str(d.node_rank)]
    return argv + ["-m", "trm_core.worker", "--run-dir", str(run_dir), *start_args]


def rank_threads(cfg: Config) -> str:
    """CPU threads per rank when nothing says otherwise: the node's cores shared out (torchrun's own
    default is 1, which would leave a CPU run with one core per rank however many there are)."""
    return str(cfg.train.threads or max(1, (os.cpu_count() or 1) // cfg.distributed.nproc_per_node))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    start = Start.from_args(args)
    run, run_dir = RunDir.at(args.run_dir), start.root  # the config is the run's, at its top
    try:
        cfg = start.resolve()
        if cfg.distributed.node_rank != run.node:
            raise ConfigError(f"{run.control} is not node {cfg.distributed.node_rank}'s dir of the run in {run_dir}")
        run.control.mkdir(parents=True, exist_ok=True)
        lock_fd = identity.claim_run(run.control, role="launcher")
    except (ConfigError, identity.RunClaimed) as exc:
        print(f"trm launcher: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    os.set_inheritable(lock_fd, True)  # held across the exec, for torchrun's whole life
    rank_files.ranks_dir(run_dir).mkdir(parents=True, exist_ok=True)
    if cfg.distributed.node_rank == 0:  # a new group: last attempt's heartbeats would mislead the post-mortem
        rank_files.forget(run_dir)
    os.environ.setdefault("OMP_NUM_THREADS", rank_threads(cfg))
    command = torchrun_argv(cfg, run_dir, start.to_argv())
    print(f"trm launcher: node {cfg.distributed.node_rank} of {cfg.distributed.nnodes}: "
          f"{' '.join(command[1:])}", flush=True)
    os.execv(command[0], command)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
