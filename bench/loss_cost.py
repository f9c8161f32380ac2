"""The trainer's loss before and after the masked-loss change (hidden-byte mask, IGNORE, per-sample accuracy), side by
side in one process on the tiny preset's shape, forward and backward, interleaved; beside a whole step's time.

Run from the repository root:  python -m bench.loss_cost
"""
import statistics, time
import torch, torch.nn.functional as F
from trm_core.config import resolve
from trm_core.data.base import Batch
from trm_core.train.trainer import Trainer
torch.set_num_threads(2)
cfg = resolve(env={}, sets=["train.device='cpu'", "train.threads=2", "model.dim=64", "model.depth=2", "model.seq_len=64", "model.latent_steps=2", "model.refinement_blocks=2", "model.max_supervision_steps=2", "train.batch_size=32"])
tr = Trainer(cfg, vocab_size=258, total_steps=10_000)
g = torch.Generator().manual_seed(0)
seq, batch, vocab = 64, 32, 258
targets = torch.randint(0, 256, (batch, seq), generator=g)
hidden = torch.rand(targets.shape, generator=g) < 0.3
halt = torch.randn(batch, requires_grad=True)

def old(logits, targets, halt_logit):
    logits = logits.float()
    seq_first = targets.t()
    ce = F.cross_entropy(logits.flatten(0, 1), seq_first.flatten(), reduction="none").view(seq_first.shape).mean(0)
    correct = (logits.argmax(-1) == seq_first).t()
    h = F.binary_cross_entropy_with_logits(halt_logit.float(), correct.all(1).float(), reduction="none")
    return ce, h, correct.float().mean(1), correct.all(1)

def new(logits, targets, halt_logit):
    ce, h, acc, exact, _ = tr._losses(logits, targets, halt_logit, hidden)
    return ce, h, acc, exact

times = {"old": [], "new": []}
for i in range(400):
    for name, fn in (("old", old), ("new", new)) if i % 2 else (("new", new), ("old", old)):
        logits = torch.randn(seq, batch, vocab, requires_grad=True)
        t0 = time.perf_counter()
        ce, h, acc, exact = fn(logits, targets, halt)
        (ce + h).sum().backward()
        acc.sum().item()
        times[name].append(time.perf_counter() - t0)
step = []
b = Batch(targets.masked_fill(hidden, 257), targets, hidden)
for _ in range(5): tr.train_step(b)
for _ in range(30):
    t0 = time.perf_counter(); tr.train_step(b); step.append(time.perf_counter() - t0)
o, n, s = (statistics.median(times["old"]), statistics.median(times["new"]), statistics.median(step))
calls = cfg.model.max_supervision_steps  # one loss per supervision step per micro-batch
print(f"loss fwd+bwd: before {1e3*o:.3f} ms, after {1e3*n:.3f} ms (x{n/o:.2f}); a step {1e3*s:.1f} ms with {calls} "
      f"loss calls: the change costs {100*calls*(n-o)/s:+.2f}% of a step")
