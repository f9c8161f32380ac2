"""How fast ``trm-tui eval`` runs, against the training step's forward at the same shape, side by side.

At the ``sudoku-cpu`` preset's shape (mlp_t, dim 128, 81 tokens, 4 supervision steps; random weights and data:
speed does not depend on them), one process times, interleaved round by round so the machine's drift hits
all alike:

- eval: ``evaluate_batches`` as ``trm-tui eval`` runs it (inference mode, every supervision step, each step
  traced for the predictions), at the eval's batch (``--eval-batch``, its CPU default 256);
- eval untraced: the same without the trace (what the in-training eval costs without saving predictions);
- training forward: the forward of every supervision step in training mode (autograd recording, no backward),
  at the training batch (``--train-batch``, the preset's 32).

Each is reported in examples/s through all supervision steps, and as a ratio to the training forward.

Run from the repository root:  python -m bench.eval_speed [--rounds 7] [--eval-batch 256] [--train-batch 32]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


from trm_core.config import resolve
from trm_core.data.base import Batch
from trm_core.evaluate.trace import StepTrace
from trm_core.evaluate.batch_pass import evaluate_batches
from trm_core.evaluate.eval_model import EvalModel
from trm_core.train.trainer import Trainer

SEQ, VOCAB = 81, 11


def batch_of(size: int, seed: int) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch(torch.randint(1, VOCAB, (size, SEQ), generator=g), torch.randint(2, VOCAB, (size, SEQ), generator=g))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--eval-batch", type=int, default=256)
    ap.add_argument("--train-batch", type=int, default=32)
    args = ap.parse_args()
    cfg = resolve(env={}, preset="sudoku-cpu", sets=["train.device='cpu'", "data.kind='code'", f"model.seq_len={SEQ}",
                                                     f"train.batch_size={args.train_batch}"])
    tr = Trainer(cfg, VOCAB, total_steps=100)
    ev = EvalModel.of_trainer(tr)
    sup = cfg.model.max_supervision_steps
    eval_batch, train_batch = batch_of(args.eval_batch, 1), batch_of(args.train_batch, 2)

    def eval_traced() -> None:
        evaluate_batches(ev, [eval_batch], trace=StepTrace(ev.halt_logit_threshold, lambda record: None))

    def eval_plain() -> None:
        evaluate_batches(ev, [eval_batch])

    def train_forward() -> None:
        tr.model.train()
        inputs = train_batch.inputs
        y, z = tr.model.initial_state(*inputs.shape)
        for _ in range(sup):
            out = tr.model(inputs, y, z, None)
            y, z = out.y, out.z
            out.logits.float().sum().detach()

    cases = {"eval (trm-tui eval, traced)": (eval_traced, args.eval_batch),
             "eval, untraced": (eval_plain, args.eval_batch),
             "training forward": (train_forward, args.train_batch)}
    for fn, _ in cases.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, (fn, _) in cases.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    rate = {name: cases[name][1] / statistics.median(t) for name, t in times.items()}
    base = rate["training forward"]
    print(f"sudoku-cpu shape (mlp_t dim {cfg.model.dim}, {sup} supervision steps, {SEQ} tokens), "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; medians of {args.rounds} rounds")
    print(f"{'':<30}{'batch':>7}{'examples/s':>12}{'x training fwd':>16}")
    for name, (_, size) in cases.items():
        print(f"{name:<30}{size:>7}{rate[name]:>12,.0f}{rate[name] / base:>16.2f}")


if __name__ == "__main__":
    main()
