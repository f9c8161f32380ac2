"""What gradient through more recursions costs: the bytes autograd keeps for one supervision step's backward
(doctor's own probe, ``doctor/model_memory.saved_bytes``) and the median time of a training step, for
``train.grad_recursions`` = 1 (the paper's 1-step approximation), 2 and all, side by side in one process.

Two depths of the `sudoku-cpu` network (mlp_t, dim 128, batch 32, 81 cells): the preset's T=2, n=3, and the
paper's T=3, n=6. The settings are timed round-robin (one step of each in turn), so a noisy machine slows all
alike.

Run from the repository root:  python -m bench.grad_recursions [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from trm_core.config import resolve
from trm_core.data.base import Batch
from trm_core.doctor.model_memory import Shape, saved_bytes
from trm_core.train.trainer import Trainer

SHAPE = Shape(vocab_size=11, seq_len=81, num_puzzle_ids=1)
SETTINGS = (("1 (the paper)", 1), ("2", 2), ("all", 0))


def config(T: int, n: int, grad: int):
    return resolve(env={}, preset="sudoku-cpu", default_file=Path("/nonexistent"), sets=[
        f"model.refinement_blocks={T}", f"model.latent_steps={n}", f"train.grad_recursions={grad}",
        "model.seq_len=81", "model.vocab_size=11", "train.device='cpu'", "train.compile='off'",
        "model.max_supervision_steps=1"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    print(f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    for T, n in ((2, 3), (3, 6)):
        trainers, times = {}, {}
        for name, grad in SETTINGS:
            cfg = config(T, n, grad)
            trainers[name] = Trainer(cfg, SHAPE.vocab_size, total_steps=10 ** 6)
            times[name] = []
        gen = torch.Generator().manual_seed(0)
        inputs = torch.randint(1, 11, (32, 81), generator=gen)
        batch = Batch(inputs, torch.randint(1, 11, (32, 81), generator=gen), None, None)
        for name in trainers:  # a warm-up step each
            trainers[name].train_step(batch)
        for _ in range(args.repeats):
            for name, trainer in trainers.items():
                t0 = time.perf_counter()
                trainer.train_step(batch)
                times[name].append(time.perf_counter() - t0)
        base_bytes = base_time = None
        print(f"\nT={T} n={n}:")
        for name, grad in SETTINGS:
            kept = saved_bytes(config(T, n, grad), SHAPE, 32)
            step = statistics.median(times[name])
            base_bytes, base_time = base_bytes or kept, base_time or step
            print(f"  grad_recursions {name:<14} autograd keeps {kept / 2**20:7.1f} MiB ({kept / base_bytes:4.2f}x)"
                  f"   step {step * 1000:7.1f} ms ({step / base_time:4.2f}x)")


if __name__ == "__main__":
    main()
