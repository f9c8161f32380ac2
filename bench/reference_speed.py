"""Samples/s of our trainer against tiny-recursive-model 0.0.12's Trainer, side by side in one process.

The reference package is a benchmark-only dependency: install it in a throwaway venv that sees this
project's packages, then run this script from the repository root:

    python -m venv --system-site-packages /tmp/benchvenv
    /tmp/benchvenv/bin/pip install tiny-recursive-model==0.0.12
    /tmp/benchvenv/bin/python bench/reference_speed.py

Both train the same MLP-mixer TRM (same parameter count, checked below) on the same random token batches,
with the same number of supervision steps per batch (halting disabled in both so neither gets an easier
batch), AdamW, EMA and gradient clipping off in the reference's loop (it has none) but on in ours. Rounds
alternate ours/reference so machine noise hits both; the figure is the ratio of medians.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import Dataset as TorchDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trm_core.config import Config, ModelConfig, TrainConfig  # noqa: E402
from trm_core.data.base import Batch  # noqa: E402
from trm_core.model import count_parameters  # noqa: E402
from trm_core.trainer import Trainer  # noqa: E402


class RandomPairs(TorchDataset):
    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        self.inputs, self.targets = inputs, targets

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inputs[i], self.targets[i]


def ours_samples_per_s(cfg: Config, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[float, int]:
    trainer = Trainer(cfg, 258, total_steps=10_000)
    bs = cfg.train.batch_size
    trainer.train_step(Batch(inputs[:bs], targets[:bs]))  # warm-up
    t0 = time.perf_counter()
    for i in range(0, len(inputs), bs):
        trainer.train_step(Batch(inputs[i:i + bs], targets[i:i + bs]))
    return len(inputs) / (time.perf_counter() - t0), trainer.num_parameters


def reference_samples_per_s(cfg: Config, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[float, int]:
    from tiny_recursive_model import MLPMixer1D, TinyRecursiveModel, Trainer as RefTrainer

    m = cfg.model
    model = TinyRecursiveModel(dim=m.dim, num_tokens=258, network=MLPMixer1D(dim=m.dim, depth=m.depth, seq_len=m.seq_len),
                               num_refinement_blocks=m.refinement_blocks, num_latent_refinements=m.latent_steps)
    bs = cfg.train.batch_size
    warm = RefTrainer(model, RandomPairs(inputs[:bs], targets[:bs]), batch_size=bs, epochs=1, cpu=True,
                      halt_prob_thres=1.01, max_recurrent_steps=m.max_supervision_steps, warmup_steps=10)
    trainer = RefTrainer(model, RandomPairs(inputs, targets), batch_size=bs, epochs=1, cpu=True,
                         halt_prob_thres=1.01, max_recurrent_steps=m.max_supervision_steps, warmup_steps=10)
    with contextlib.redirect_stdout(io.StringIO()):
        warm()
        t0 = time.perf_counter()
        trainer()
        elapsed = time.perf_counter() - t0
    return len(inputs) / elapsed, count_parameters(model)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--sup", type=int, default=4)
    p.add_argument("--batches", type=int, default=6)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    cfg = Config(model=ModelConfig(dim=args.dim, depth=args.depth, seq_len=args.seq_len, max_supervision_steps=args.sup,
                                   halt_threshold=1.0),
                 train=TrainConfig(batch_size=args.batch, device="cpu", grad_clip=1.0, ema_decay=0.999))
    gen = torch.Generator().manual_seed(0)
    n = args.batch * args.batches
    inputs = torch.randint(0, 258, (n, args.seq_len), generator=gen)
    targets = torch.randint(0, 258, (n, args.seq_len), generator=gen)
    ours, ref = [], []
    for r in range(args.rounds):
        o, n_ours = ours_samples_per_s(cfg, inputs, targets)
        f, n_ref = reference_samples_per_s(cfg, inputs, targets)
        assert n_ours == n_ref, (n_ours, n_ref)
        ours.append(o)
        ref.append(f)
        print(f"round {r + 1}: ours {o:.2f} samples/s, reference {f:.2f} samples/s, ratio {o / f:.3f}", flush=True)
    print(f"config: dim={args.dim} depth={args.depth} seq_len={args.seq_len} batch={args.batch} "
          f"n={cfg.model.latent_steps} T={cfg.model.refinement_blocks} supervision_steps={args.sup} "
          f"params={n_ours:,} threads={torch.get_num_threads()} torch={torch.__version__}")
    print(f"median: ours {statistics.median(ours):.2f} samples/s, reference {statistics.median(ref):.2f} samples/s, "
          f"ratio {statistics.median(ours) / statistics.median(ref):.3f}")


if __name__ == "__main__":
    main()
