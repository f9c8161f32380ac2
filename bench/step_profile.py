"""Where a training step's time goes: torch.profiler over our refill steps (the paper presets' step) at a shape.

    python -m bench.step_profile --shape cpu-attention                       # this CPU
    python -m bench.step_profile --shape sudoku-paper --device cuda --bf16   # the GPU check's profile stage

Prints, per step: the wall time; on CUDA the kernels' busy time (the union of their intervals) and its share
of the wall (how busy the GPU is while the host queues), kernel launches, and the runtime calls that make the
host wait for the device (``cudaStreamSynchronize``, ``cudaDeviceSynchronize``, a blocking ``cudaMemcpy``);
then the top operators by device time (CUDA) or by self CPU time. ``--read-every`` is how often the figures
are read (the worker's ``train.log_every``: 1 = a sync every step), ``--compile on`` the compiled network (its
compile happens in the warm-up, outside the profile). ``--json-out`` keeps the figures.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile


from bench.reference_parity import make_batches, our_config
from bench.reference_trm_speed import SHAPES, args_for
from trm_core.train.trainer import Trainer

SYNCS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize", "cudaMemcpy")
LAUNCHES = ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernelEx")


def build(a: argparse.Namespace) -> tuple[Trainer, list]:
    s = args_for(a.shape, argparse.Namespace(batch=a.batch))
    cfg = our_config(s, s.net)
    t = cfg.train
    t.device, t.threads, t.compile = a.device, a.threads, a.compile
    t.precision = "bf16" if a.bf16 else "fp32"
    t.optimizer, t.learning_rate, t.adam_beta1, t.adam_beta2, t.weight_decay = "adam_atan2", 1e-4, 0.9, 0.95, 1.0
    t.ema_decay = 0.999
    cfg.model.halt_exploration = 0.1  # the paper's: its draws reach the device every step
    trainer = Trainer(cfg, vocab_size=s.vocab, total_steps=10**6, num_puzzle_ids=s.puzzles)
    return trainer, make_batches(s, a.warmup + a.steps, torch.Generator().manual_seed(2))


def busy_seconds(intervals: list[tuple[float, float]]) -> float:
    """The length of the union of [start, end) intervals (kernels on several streams may overlap)."""
    total, last_end = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end <= last_end:
            continue
        total += end - max(start, last_end)
        last_end = end
    return total


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", default="cpu-attention", help=", ".join(SHAPES))
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=0, help="override the shape's batch")
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--compile", default="off", choices=("off", "on"))
    p.add_argument("--read-every", type=int, default=10)
    p.add_argument("--steps", type=int, default=20, help="profiled steps")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--top", type=int, default=12)
    p.add_argument("--json-out", type=Path)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    cuda = a.device.startswith("cuda")
    trainer, batches = build(a)
    device = trainer.device
    t0 = time.perf_counter()
    trainer.train_step(batches[0])  # with --compile on, the compile: the time to the first step
    first_step_s = time.perf_counter() - t0
    for b in batches[1:a.warmup]:
        trainer.train_step(b)
    if cuda:
        torch.cuda.synchronize(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        t0 = time.perf_counter()
        for k, b in enumerate(batches[a.warmup:]):
            trainer.queue_step(b)
            if (k + 1) % a.read_every == 0 or k + 1 == a.steps:
                trainer.read_metrics()
        if cuda:
            torch.cuda.synchronize(device)
        wall = time.perf_counter() - t0
    events = prof.events()
    per_step = 1 / a.steps
    out = {"shape": a.shape, "device": torch.cuda.get_device_name(device) if cuda else f"CPU, {a.threads} threads",
           "torch": torch.__version__, "bf16": a.bf16, "compile": a.compile, "read_every": a.read_every,
           "steps": a.steps, "batch": batches[0].inputs.shape[0], "first_step_s": first_step_s,
           "wall_ms_per_step": 1e3 * wall * per_step}
    if cuda:
        kernels = [(e.time_range.start, e.time_range.end) for e in events if e.device_type.name == "CUDA"]
        busy = busy_seconds(kernels) / 1e6  # microseconds
        out |= {"gpu_busy_ms_per_step": 1e3 * busy * per_step, "gpu_busy_share": busy / wall,
                "kernels_per_step": len(kernels) * per_step,
                "launches_per_step": sum(e.name in LAUNCHES for e in events) * per_step,
                "syncs_per_step": sum(e.name in SYNCS for e in events) * per_step}
    sort = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    table = prof.key_averages().table(sort_by=sort, row_limit=a.top, max_name_column_width=48)
    print(table)
    print(json.dumps(out))
    if a.json_out:
        a.json_out.write_text(json.dumps(out | {"top": table}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
