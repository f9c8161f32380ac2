"""One auto-tune trial, in its own process: ``python -m trm_core.autotune.trial --config RUN/config.toml ...``.

It builds the run's model, data and trainer exactly as the worker does, with one candidate's micro-batch,
thread count and batch size, trains ``warmup + measure`` steps from fresh weights on the run's first
batches, and prints one JSON line: samples/s (from the median measured step) and peak memory. It writes
nothing anywhere, so whatever happens here (an out-of-memory error, a crash, a kill) cannot touch the run.

Exit codes: 0 measured, 4 out of memory (a rejected candidate), anything else a crash.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

EXIT_OOM = 4


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m trm_core.autotune.trial")
    p.add_argument("--config", type=Path, required=True, help="the run's resolved config.toml")
    p.add_argument("--batch-size", type=int, required=True)
    p.add_argument("--micro-batch", type=int, required=True)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 = leave torch's default")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--measure", type=int, default=4)
    p.add_argument("--memory-margin", type=float, default=0.1, help="CUDA: keep this fraction of the GPU free")
    p.add_argument("--gpu-limit-mb", type=float, default=0.0,
                   help="CUDA: a tighter cap in MiB; allocations beyond the cap are an OOM, not a later crash")
    return p


def _is_oom(exc: BaseException) -> bool:
    import torch
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def run_trial(args: argparse.Namespace) -> dict:
    import torch

    from trm_core import config as config_mod
    from trm_core.data import build_dataset
    from trm_core.data.order import order_for
    from trm_core.worker.faults import Faults
    from trm_core.train.metrics import peak_memory_mb
    from trm_core.train.trainer import Trainer

    # one process measures one rank's share of the global batch, on one device
    sets = [f"train.batch_size={args.batch_size}", f"train.micro_batch_size={args.micro_batch}",
            "distributed.nproc_per_node=1", "distributed.nnodes=1", "distributed.node_rank=0"]
    if args.threads:
        sets.append(f"train.threads={args.threads}")
    cfg = config_mod.resolve(base=config_mod.read_run_config(args.config), env={}, sets=sets)
    Faults.from_env().before_trial(args.micro_batch)
    dataset = build_dataset(cfg)
    steps = args.warmup + args.measure
    trainer = Trainer(cfg, dataset.vocab_size, total_steps=max(steps, cfg.train.warmup_steps + 1),
                      num_puzzle_ids=getattr(dataset, "num_puzzle_ids", 1))
    limit_mb = 0.0
    if trainer.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(trainer.device)
        total = torch.cuda.get_device_properties(trainer.device).total_memory / 2**20
        limit_mb = (1 - args.memory_margin) * total
        if args.gpu_limit_mb:
            limit_mb = min(limit_mb, args.gpu_limit_mb)
        # this call, unlike the others, wants an index: "cuda" alone (train.device = 'cuda' or 'auto') failed every
        # GPU trial with a ValueError before a step ran (seen on an H200, 2026-11-27)
        index = trainer.device.index if trainer.device.index is not None else torch.cuda.current_device()
        torch.cuda.set_per_process_memory_fraction(limit_mb / total, index)
    order = order_for(dataset, cfg.train.batch_size, cfg.train.seed, cfg.train.eval_every_epochs)
    times: list[float] = []
    for step in range(steps):
        batch = order.batch(step)
        if trainer.device.type == "cuda":
            torch.cuda.synchronize(trainer.device)
        t0 = time.perf_counter()
        trainer.train_step(batch)
        if trainer.device.type == "cuda":
            torch.cuda.synchronize(trainer.device)
        if step >= args.warmup:
            times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    return {"ok": True, "samples_per_s": cfg.train.batch_size / median, "step_s": median,
            "peak_mb": peak_memory_mb(trainer.device), "limit_mb": limit_mb, "device": str(trainer.device),
            "threads": torch.get_num_threads()}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = run_trial(args)
    except Exception as exc:  # noqa: BLE001 - an OOM is an answer; anything else is reported, then re-raised
        if _is_oom(exc):
            print(json.dumps({"ok": False, "reason": "out of memory"}), flush=True)
            return EXIT_OOM
        raise
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
