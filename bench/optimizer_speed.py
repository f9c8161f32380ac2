"""One optimizer update of the sudoku-paper network (TRM-MLP, dim 512, 2 layers: about 5M weights), side by side
in one process, interleaved: PyTorch's AdamW (foreach) against our AdamATan2 over the parameter list
(foreach) and one tensor at a time. Answers the issue's "foreach where that is faster (measure)".

Run from the repository root:  python -m bench.optimizer_speed [--threads N] [--rounds N]
"""
from __future__ import annotations

import argparse
import statistics
import time


import torch

from trm_core.config import resolve
from trm_core.train.model import build_model
from trm_core.train.update.adam_atan2 import AdamATan2


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=60)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = resolve(env={}, sets=["model.net='mlp_t'", "model.dim=512", "model.depth=2", "model.seq_len=81",
                                "model.pos_encoding='none'", "model.puzzle_emb_len=16", "train.device='cpu'"])
    optimizers = {}
    for name in ("adamw", "adam_atan2 foreach", "adam_atan2 one by one"):
        model = build_model(cfg.model, vocab_size=11, num_puzzle_ids=1)
        params = [p for p in model.parameters() if p.requires_grad]
        for p in params:
            p.grad = torch.randn_like(p)
        opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=1.0, betas=(0.9, 0.95), foreach=True) \
            if name == "adamw" else AdamATan2(params, lr=1e-4, betas=(0.9, 0.95), weight_decay=1.0,
                                              foreach=name.endswith("foreach"))
        optimizers[name] = opt
    weights = sum(p.numel() for p in optimizers["adamw"].param_groups[0]["params"])
    times: dict[str, list[float]] = {name: [] for name in optimizers}
    names = list(optimizers)
    for i in range(args.rounds):
        for name in names[i % 3:] + names[:i % 3]:  # the order turns each round
            t0 = time.perf_counter()
            optimizers[name].step()
            times[name].append(time.perf_counter() - t0)
    print(f"{weights:,} weights, {args.threads} threads, {args.rounds} rounds (median of each; first 5 dropped)")
    base = statistics.median(times["adamw"][5:])
    for name, ts in times.items():
        med = statistics.median(ts[5:])
        print(f"{name:<24} {med * 1e3:8.2f} ms  {med / base:5.2f}x AdamW")


if __name__ == "__main__":
    main()
