"""How close ``trm-tui doctor``'s memory estimate is to what a training step really takes, on this machine.

For each config: the estimate (``trm_core.doctor.model_memory``: autograd's saved bytes per sample, from one
step at 1 and 2 samples) against the measured slope of peak memory over the micro-batch: fresh processes run
two training steps at two micro-batch sizes and report their peak RSS (CPU) or peak CUDA allocation (GPU);
the slope between the two sizes is the real cost of one more sample. A ratio under 1 means the estimate
reads low.

Run from the repository root:  python -m bench.doctor_memory [--dataset DIR] [--sizes 8 40]
(--dataset: a Sudoku set in the reference's format, for the sudoku-paper shape; without it, only the
code task's configs run.)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


CHILD = r"""
import json, resource, sys, torch
from trm_core.config import resolve
from trm_core.data.base import Batch
from trm_core.doctor.model_memory import data_shape, shaped
from trm_core.train.metrics import NonFiniteLoss
from trm_core.train.trainer import Trainer
preset, sets, n = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
cfg = resolve(preset=preset or None, sets=sets)
shape = data_shape(cfg)
c = shaped(cfg, shape)
c.train.batch_size = c.train.micro_batch_size = n
c.train.ema_decay = 0.0
c.model.max_supervision_steps = 2 if c.train.carry == "refill" else 1
tr = Trainer(c, shape.vocab_size, 10, min(shape.num_puzzle_ids, n))
tok = torch.ones((n, shape.seq_len), dtype=torch.long, device=tr.device)
batch = Batch(tok, tok.clone(), torch.ones_like(tok, dtype=torch.bool) if cfg.data.kind == "code" else None,
              torch.zeros(n, dtype=torch.long, device=tr.device) if cfg.data.kind == "puzzles" else None)
for _ in range(2):
    try:
        tr.train_step(batch)
    except NonFiniteLoss:
        pass
if tr.device.type == "cuda":
    peak = torch.cuda.max_memory_allocated(tr.device)
else:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"peak": peak}))
"""


def measured(preset: str, sets: list[str], n: int) -> int:
    out = subprocess.run([sys.executable, "-c", CHILD, preset, json.dumps(sets), str(n)], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["peak"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", type=Path, help="a Sudoku set (reference format) for the sudoku-paper shape")
    p.add_argument("--sizes", type=int, nargs=2, default=(8, 40))
    args = p.parse_args()
    from trm_core.config import resolve
    from trm_core.doctor.model_memory import activation_bytes, data_shape, static_bytes

    configs = [("tiny", ["train.threads=2"]),
               ("tiny", ["train.threads=2", "model.dim=256", "model.seq_len=256"])]
    if args.dataset:
        configs.append(("sudoku-paper", [f"data.dataset_dir={args.dataset}", "train.precision=fp32", "train.threads=2"]))
    small, large = args.sizes
    print(f"{'config':<58} {'estimate':>10} {'measured':>10} {'ratio':>6}   (MiB per sample)")
    for preset, sets in configs:
        cfg = resolve(preset=preset, sets=sets)
        shape = data_shape(cfg)
        per_sample, _, _ = activation_bytes(cfg, shape, static_bytes(cfg, shape)[0], float("inf"))
        slope = (measured(preset, sets, large) - measured(preset, sets, small)) / (large - small)
        name = preset + " " + " ".join(s for s in sets if "threads" not in s and "dataset_dir" not in s)
        print(f"{name:<58} {per_sample / 2**20:10.2f} {slope / 2**20:10.2f} {per_sample / slope:6.2f}")


if __name__ == "__main__":
    main()
