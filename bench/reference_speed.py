"""Samples/s of our trainer against tiny-recursive-model 0.0.12's Trainer, side by side in one process.

The reference package is a benchmark-only dependency: install it in a throwaway venv that sees this
project's packages, then run this script from the repository root:

    python -m venv --system-site-packages /tmp/benchvenv
    /tmp/benchvenv/bin/pip install tiny-recursive-model==0.0.12
    /tmp/benchvenv/bin/python -m bench.reference_speed

Both train the same MLP-mixer TRM (same parameter count, checked below) on the same random token batches,
with the same number of supervision steps per batch (halting disabled in both so neither gets an easier
batch), AdamW and EMA in both, gradient clipping in ours only (the reference has none). Steps alternate
ours/reference so machine noise hits both; reported are the ratios of the median and of the fastest step
times (on a shared, noisy machine the fastest step is the least disturbed one).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import time

import torch
from torch.utils.data import Dataset as TorchDataset


from trm_core.config import Config, ModelConfig, TrainConfig
from trm_core.data.base import Batch
from trm_core.train.model import count_parameters
from trm_core.train.trainer import Trainer


class RandomPairs(TorchDataset):
    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        self.inputs, self.targets = inputs, targets

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inputs[i], self.targets[i]


def build_ours(cfg: Config) -> Trainer:
    return Trainer(cfg, 258, total_steps=10_000)


def build_reference(cfg: Config, inputs: torch.Tensor, targets: torch.Tensor):
    """The reference Trainer over a one-batch dataset: each call is one step (one batch, all supervision steps)."""
    from tiny_recursive_model import MLPMixer1D, TinyRecursiveModel, Trainer as RefTrainer

    m = cfg.model
    model = TinyRecursiveModel(dim=m.dim, num_tokens=258, network=MLPMixer1D(dim=m.dim, depth=m.depth, seq_len=m.seq_len),
                               num_refinement_blocks=m.refinement_blocks, num_latent_refinements=m.latent_steps)
    trainer = RefTrainer(model, RandomPairs(inputs, targets), batch_size=len(inputs), epochs=1, cpu=True,
                         halt_prob_thres=1.01, max_recurrent_steps=m.max_supervision_steps, warmup_steps=10)
    return trainer, count_parameters(model)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--sup", type=int, default=4)
    p.add_argument("--steps", type=int, default=10, help="measured steps of each, interleaved")
    p.add_argument("--warmup", type=int, default=2)
    args = p.parse_args()
    cfg = Config(model=ModelConfig(dim=args.dim, depth=args.depth, seq_len=args.seq_len, max_supervision_steps=args.sup,
                                   halt_threshold=1.0),
                 train=TrainConfig(batch_size=args.batch, device="cpu", grad_clip=1.0, ema_decay=0.999))
    gen = torch.Generator().manual_seed(0)
    inputs = torch.randint(0, 258, (args.batch, args.seq_len), generator=gen)
    targets = torch.randint(0, 258, (args.batch, args.seq_len), generator=gen)
    ours = build_ours(cfg)
    reference, n_ref = build_reference(cfg, inputs, targets)
    assert ours.num_parameters == n_ref, (ours.num_parameters, n_ref)
    batch = Batch(inputs, targets)
    times: dict[str, list[float]] = {"ours": [], "reference": []}
    # steps alternate ours/reference, so drift in machine speed (large here) hits both alike
    with contextlib.redirect_stdout(io.StringIO()):
        for i in range(args.warmup + args.steps):
            t0 = time.perf_counter()
            ours.train_step(batch)
            t1 = time.perf_counter()
            reference()
            t2 = time.perf_counter()
            if i >= args.warmup:
                times["ours"].append(t1 - t0)
                times["reference"].append(t2 - t1)
    med = {k: statistics.median(v) for k, v in times.items()}
    best = {k: min(v) for k, v in times.items()}
    print(f"config: dim={args.dim} depth={args.depth} seq_len={args.seq_len} batch={args.batch} "
          f"n={cfg.model.latent_steps} T={cfg.model.refinement_blocks} supervision_steps={args.sup} "
          f"params={n_ref:,} threads={torch.get_num_threads()} torch={torch.__version__} steps={args.steps}")
    print(f"median step: ours {1000 * med['ours']:.1f} ms ({args.batch / med['ours']:.2f} samples/s), "
          f"reference {1000 * med['reference']:.1f} ms ({args.batch / med['reference']:.2f} samples/s), "
          f"speed ratio ours/reference {med['reference'] / med['ours']:.3f}")
    # the fastest step of each is the one least disturbed by other load on the machine
    print(f"fastest step: ours {1000 * best['ours']:.1f} ms, reference {1000 * best['reference']:.1f} ms, "
          f"speed ratio ours/reference {best['reference'] / best['ours']:.3f}")

if __name__ == "__main__":
    main()
