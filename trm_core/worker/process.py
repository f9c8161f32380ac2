"""The training worker process: ``python -m trm_core.worker --run-dir DIR [...]``.

It owns one run dir: resolves and records the config, claims the run, builds the dataset and joins the group
of ranks, then hands them to a ``Run`` (``worker.run``: the training loop), and exits with a code a
supervisor can act on: 0 completed or stopped on request, 1 failed, 2 bad config,
3 stalled (restart from the last checkpoint).

Started by torchrun (``distributed.node_launcher``), it is one rank of a group: every rank trains its share of each
global batch and keeps its heartbeat file in ``RUN_DIR/ranks/``; rank 0 alone writes the events, the config
and the checkpoints. A stop asked of any rank (a signal, ``stop.request``) is agreed on after each step, so
every rank stops after the same one.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

import torch

from trm_core import config as config_mod
from trm_core.data.order import order_for
from trm_core.config import Config, ConfigError, Start
from trm_core.data import build_dataset
from trm_core.distributed import rank_files
from trm_core.distributed.group import Group
from trm_core.rundir import identity, layout, lifecycle
from trm_core.rundir.layout import EXIT_CONFIG
from trm_core.worker.faults import Faults
from trm_core.worker.training_run import Run, total_steps_for
from trm_core.telemetry.host_stats import cores, others_busy
from trm_core.worker import cpu_share
from trm_core.worker.memory_floor import check_floor
from trm_core.worker.stop_signals import StopRequest

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m trm_core.worker", description="Train a Tiny Recursive Model in one run dir.")
    p.add_argument("--run-dir", required=True, type=Path, help="folder of the run: config, events, checkpoints")
    config_mod.add_start_arguments(p)
    return p


def threads_for_a_crowded_machine(cfg: Config) -> list[str]:
    """A fresh CPU run with ``train.threads = 0`` on a machine others are using: the cores they leave free,
    written into the run's config (a resume runs as this start did); what was done, in words."""
    if cfg.train.threads or cfg.train.device.startswith("cuda") or (cfg.train.device == "auto" and
                                                                    torch.cuda.is_available()):
        return []
    busy, available = others_busy(), torch.get_num_threads()
    picked = cpu_share.free_threads(busy, available)
    if picked is None or picked >= available:
        return []
    cfg.train.threads = picked
    return [f"train.threads = 0: other processes hold {busy:.1f} of {cores()} cores at the start, so this "
            f"run takes {picked} thread{'s' if picked > 1 else ''} (torch's default is {available}; kept in the run's "
            f"config: auto-tune re-measures, or --set train.threads=N on resume)"]


WARMUP_SHARE = 0.1  # a fine-tune's warm-up: at most this share of its steps


def fine_tune_recipe(cfg: Config, total_steps: int) -> list[str]:
    """A fresh run from ``train.init_from``'s weights: what it keeps and restarts, said; with
    ``train.finetune_recipe`` (the default), no shallow curriculum stages and a short warm-up, written into the
    config (a 60-step fine-tune of a model that solved 0.260 ended at 0.010 when it relearned from depth T=1 n=2
    under a warm-up longer than the run)."""
    t = cfg.train
    if not t.init_from:
        return []
    changed = []
    if t.finetune_recipe and t.depth_schedule:
        changed.append(f"train.depth_schedule {t.depth_schedule} is not run (the source ends at the model's full "
                       f"depth, T={cfg.model.refinement_blocks} n={cfg.model.latent_steps}, which this run trains at)")
        t.depth_schedule = []
    cap = max(1, int(WARMUP_SHARE * total_steps))
    if t.finetune_recipe and t.warmup_steps > cap:
        changed.append(f"train.warmup_steps {t.warmup_steps} is cut to {cap} (a tenth of the run's {total_steps} steps)")
        t.warmup_steps = cap
    kept = (f"train.init_from: a fine-tune keeps the source's weights (the EMA starts from them) and restarts the "
            f"optimizer's moments, the learning-rate schedule (warm-up {t.warmup_steps} steps, then cosine over "
            f"{total_steps}) and the step count")
    if changed:
        kept += "; as a fine-tune's recipe (train.finetune_recipe = false keeps the config's): " + "; ".join(changed)
    elif t.depth_schedule:
        kept += f"; the depth curriculum {t.depth_schedule} runs from its first stage (train.finetune_recipe = false)"
    return [kept]


def check_device(cfg: Config) -> None:
    device = cfg.train.device
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"train.device = {device!r} but no CUDA device is available; use 'auto' or 'cpu'")
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ConfigError(f"train.device = {device!r} but only {torch.cuda.device_count()} CUDA device(s) exist")
    procs = cfg.distributed.nproc_per_node
    if procs > 1 and device != "cpu" and torch.cuda.is_available() and procs > torch.cuda.device_count():
        raise ConfigError(f"distributed.nproc_per_node = {procs} but this node has {torch.cuda.device_count()} "
                          f"CUDA device(s): one rank per GPU")


def _rank_output(run_dir: Path) -> None:
    """A rank started by torchrun: its stdout and stderr go to ``ranks/rank-N.log`` (the watchdog's stacks, a
    traceback), not into the launcher's log interleaved with every other rank's."""
    rank = int(os.environ["RANK"])
    rank_files.ranks_dir(run_dir).mkdir(parents=True, exist_ok=True)
    fd = os.open(rank_files.log_path(run_dir, rank), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def run_config(cfg: Config) -> Config:
    """The config as the run keeps it: ``distributed.node_rank`` belongs to each node's start, not to the
    run (a resume on node N says its own)."""
    if not cfg.distributed.node_rank:
        return cfg
    return dataclasses.replace(cfg, distributed=dataclasses.replace(cfg.distributed, node_rank=0))


def join_group(cfg: Config) -> Group:
    """This process's group: torchrun's ranks, which must be as many as the config says, on one config."""
    group = Group.from_env(cfg.distributed.backend, cfg.train.device, timeout_s=max(1800.0, cfg.train.step_timeout_s))
    group.node_rank = cfg.distributed.node_rank  # the node as its start names it (nodes/node-N), not c10d's order
    if group.world_size != cfg.distributed.world_size:
        group.close()
        raise ConfigError(f"torchrun started {group.world_size} rank(s) but distributed.nproc_per_node x "
                          f"distributed.nnodes = {cfg.distributed.world_size}: set them to match")
    hashes = group.objects(run_config(cfg).hash())  # every node's own node_rank aside
    if len(set(hashes)) > 1:
        odd = [r for r, h in enumerate(hashes) if h != hashes[0]]
        group.close()
        raise ConfigError(f"rank(s) {odd} resolved another config than rank 0 (config hash {hashes[odd[0]]} vs "
                          f"{hashes[0]}): start every node with the same preset, config file and --set flags")
    return group


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    start = Start.from_args(args)
    stop = StopRequest()
    stop.install()  # from the start: a stop during set-up still ends cleanly
    run_dir: Path = args.run_dir
    is_rank = int(os.environ.get("WORLD_SIZE", "1")) > 1  # started by torchrun: the launcher holds the run
    if is_rank:
        _rank_output(run_dir)
    created = not run_dir.exists()
    lock_fd: int | None = None  # once claimed, held until this process exits
    group: Group | None = None
    try:
        cfg = start.resolve(joining=is_rank)
        check_device(cfg)
        run_dir.mkdir(parents=True, exist_ok=True)
        if not is_rank:
            lock_fd = identity.claim_run(run_dir)
            rank_files.forget(run_dir)  # a former group's: this run has no ranks now
        dataset = build_dataset(cfg)
        # a set too small for a batch stops here; a puzzle set's stream restarts at each eval interval
        order = order_for(dataset, cfg.train.batch_size, cfg.train.seed, cfg.train.eval_every_epochs)
        total = total_steps_for(cfg, order)  # epochs too few for one batch stop here too
        group = join_group(cfg) if is_rank else Group()
        # sizes asked for by mistake are refused here, before the model or a batch is allocated
        check_floor(cfg, dataset.vocab_size, getattr(dataset, "num_puzzle_ids", 1), group.device(cfg.train.device))
        notes = [] if start.resume or is_rank else threads_for_a_crowded_machine(cfg) + fine_tune_recipe(cfg, total)
        if group.leader:
            config_mod.write_config(run_config(cfg), run_dir / layout.RUN_CONFIG)
    except (ConfigError, identity.RunClaimed) as exc:
        if lock_fd is not None:
            os.close(lock_fd)
        if created and not is_rank:  # leave nothing behind in a dir made for this start (not one another start won)
            lifecycle.forget_new_run(run_dir, created=True)
        print(f"trm worker: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        return Run(cfg, run_dir, dataset, order, start.resume, list(start.sets), stop, Faults.from_env(), group,
                   notes).execute()
    finally:
        group.close()

