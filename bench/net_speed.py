"""Training speed of the three networks at equal parameter count, and how much of a step is matrix products.

On a Sudoku-shaped task (81 tokens, vocabulary 11, random data: speed does not depend on it), builds the
trainer for ``mixer``, ``attention`` and ``mlp_t`` with widths chosen so their parameter counts are within a
few percent of each other, then times training steps interleaved (one step of each in turn, so the machine's
drift hits all three alike) and reports samples/s and the ratio to the mixer. A torch.profiler pass then
gives each network's share of CPU time in matrix products (mm, addmm, bmm, the attention kernel) and their
achieved FLOP/s, against this CPU's peak measured by one large float32 matmul in the same process.

Run from the repository root:  python -m bench.net_speed [--steps 20] [--batch 64] [--params 400000]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


from trm_core.config import resolve
from trm_core.data.base import Batch
from trm_core.train.model import build_model, count_parameters
from trm_core.train.trainer import Trainer

SEQ, VOCAB = 81, 11
MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::_scaled_dot_product_flash_attention_for_cpu",
              "aten::_scaled_dot_product_attention_math", "aten::baddbmm")


def sets_for(net: str, dim: int, batch: int) -> list[str]:
    common = [f"model.net='{net}'", f"model.dim={dim}", "model.depth=2", f"model.seq_len={SEQ}",
              "model.latent_steps=3", "model.refinement_blocks=2", "model.max_supervision_steps=2",
              "model.halt_threshold=1.0", f"train.batch_size={batch}", "train.device='cpu'", "train.ema_decay=0"]
    if net == "attention":
        common.append(f"model.num_heads={max(1, dim // 32)}")
    return common


def params(net: str, dim: int) -> int:
    with torch.device("meta"):
        return count_parameters(build_model(resolve(env={}, sets=sets_for(net, dim, 1)).model, VOCAB))


def width_for(net: str, target: int) -> int:
    """The width (a multiple of 32, for whole attention heads) whose parameter count is nearest the target."""
    return min(range(32, 1025, 32), key=lambda d: abs(params(net, d) - target))


def peak_gflops(size: int = 1536, repeats: int = 5) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * size ** 3 / best / 1e9


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--params", type=int, default=400_000, help="the parameter count to match")
    args = p.parse_args()
    torch.manual_seed(0)
    nets = {}
    for net in ("mixer", "attention", "mlp_t"):
        dim = width_for(net, args.params)
        cfg = resolve(env={}, sets=sets_for(net, dim, args.batch))
        nets[net] = (dim, Trainer(cfg, VOCAB, total_steps=10_000))
    gen = torch.Generator().manual_seed(1)
    batch = Batch(torch.randint(0, VOCAB, (args.batch, SEQ), generator=gen),
                  torch.randint(0, VOCAB, (args.batch, SEQ), generator=gen))
    times: dict[str, list[float]] = {net: [] for net in nets}
    for _, (_, tr) in nets.items():
        tr.train_step(batch)  # warm-up
    for _ in range(args.steps):
        for net, (_, tr) in nets.items():
            times[net].append(_timed(lambda: tr.train_step(batch)))
    peak = peak_gflops()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; float32 matmul peak (1536^3): "
          f"{peak:.1f} GFLOP/s")
    base = statistics.median(times["mixer"])
    for net, (dim, tr) in nets.items():
        median = statistics.median(times[net])
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], with_flops=True) as prof:
            tr.train_step(batch)
        rows = prof.key_averages()
        total = sum(r.self_cpu_time_total for r in rows)
        matmul = [r for r in rows if r.key in MATMUL_OPS]
        mm_time = sum(r.self_cpu_time_total for r in matmul)
        flops = sum(r.flops for r in matmul)
        achieved = flops / (mm_time / 1e6) / 1e9 if mm_time else 0.0
        print(f"{net:9} dim {dim:4} params {count_parameters(tr.model):9,}  {args.batch / median:8.1f} samples/s "
              f"(x{base / median:.2f} of mixer)  matmul share {mm_time / total:.0%}  "
              f"matmul {achieved:.1f} GFLOP/s = {achieved / peak:.0%} of peak")


if __name__ == "__main__":
    main()
