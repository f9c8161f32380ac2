"""Our training step against the reference's own (SamsungSAILMontreal/TinyRecursiveModels): samples/s and peak
memory, same config, same weights, same batches, same optimizer, steps interleaved, medians.

The reference side is what its pretrain.py runs for one step: ``TinyRecursiveReasoningModel_ACTV1`` inside
``ACTLossHead`` (the carry of slots refilled as they halt), ``loss.backward()``, an AdamATan2 step and the sign-SGD
step of the puzzle embeddings' rows. The optimizer is ours on both sides (the reference's ``adam-atan2`` is a CUDA
extension that may not build offline; ours is checked equal to its formula in the tests). Our side is the
trainer's ``train_step`` with ``train.carry = "refill"``, as the paper presets run. Weights go from the reference
to ours by bench/reference_parity.py's name map (every tensor exactly once).

The reference's code is imported from a checkout of it, never copied (see bench/reference_parity.py):

    python -m bench.reference_trm_speed --ref-dir /tmp/ref                      # CPU, reduced shapes
    python -m bench.reference_trm_speed --ref-dir /tmp/ref --device cuda --shape sudoku-paper --compile both

``--loop run`` times each side as its own training loop runs it, instead of each step alone between two
syncs (``--loop step``): windows of ``--steps`` steps with one sync at each end, sides alternating, where the
reference reads its metrics to the host every step (its pretrain.py: ``metric_values.cpu()``) and ours reads
them every 10 steps (the paper presets' ``train.log_every``); a GPU then runs ahead of the host where a side
lets it. On a CPU the two loops time the same work.

``--shape``: ``cpu`` (a reduced mlp_t and attention pair for a CPU), or the paper presets' own shapes
(``sudoku-paper``: mlp_t, seq 81 + 16, batch 768; ``maze-paper``/``arc-paper``: attention, seq 900 + 16; the
batch is the paper's or ``--batch``), or ``seed`` (dim 1024, depth 4, seq 4096, batch 1).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch


from bench.reference_parity import make_batches, name_map, our_config, ref_config
from trm_core.train.trainer import Trainer
from trm_core.train.update.adam_atan2 import AdamATan2

# net, dim, depth, seq_len (tokens, without the puzzle prefix), vocab, T, n, max supervision steps, batch
SHAPES = {
    "cpu-mlp_t": ("mlp_t", 128, 2, 81, 11, 3, 6, 16, 32),
    "cpu-attention": ("attention", 128, 2, 64, 12, 3, 6, 16, 16),
    "sudoku-paper": ("mlp_t", 512, 2, 81, 11, 3, 6, 16, 768),
    "maze-paper": ("attention", 512, 2, 900, 6, 3, 6, 16, 768),
    "arc-paper": ("attention", 512, 2, 900, 12, 3, 4, 16, 768),
    "seed": ("attention", 1024, 4, 4096, 258, 3, 6, 16, 1),
}
GROUPS = {"cpu": ["cpu-mlp_t", "cpu-attention"]}


def args_for(shape: str, a: argparse.Namespace) -> argparse.Namespace:
    net, dim, depth, seq, vocab, T, n, max_steps, batch = SHAPES[shape]
    return argparse.Namespace(net=net, dim=dim, heads=max(1, dim // 64), depth=depth, seq_len=seq, vocab=vocab,
                              batch=a.batch or batch, T=T, n=n, max_steps=max_steps, prefix=16, puzzles=64,
                              expansion=4.0, seed=0)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build(s: argparse.Namespace, a: argparse.Namespace, ref_mods, compiled: bool):
    TRM, ACTLossHead, signsgd = ref_mods
    device = torch.device(a.device)
    torch.manual_seed(0)
    rcfg = ref_config(s, s.net) | {"forward_dtype": "bfloat16" if a.bf16 else "float32"}
    with torch.device(device):
        ref = ACTLossHead(TRM(rcfg), loss_type="stablemax_cross_entropy")
    ref.train()
    cfg = our_config(s, s.net)
    t = cfg.train
    t.device, t.threads, t.compile = a.device, a.threads, "on" if compiled else "off"
    t.precision = "bf16" if a.bf16 else "fp32"
    t.optimizer, t.learning_rate, t.adam_beta1, t.adam_beta2, t.weight_decay = "adam_atan2", 1e-4, 0.9, 0.95, 1.0
    tr = Trainer(cfg, vocab_size=s.vocab, total_steps=10**6, num_puzzle_ids=s.puzzles)
    mapping = name_map(ref.state_dict(), tr.model.state_dict())
    tr.model.load_state_dict({mapping[k]: v.detach().clone().to(device) for k, v in ref.state_dict().items()})
    opt = AdamATan2(ref.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=1.0)
    forward = torch.compile(ref) if compiled else ref  # the reference compiles its model unless told not to
    emb = ref.model.inner.puzzle_emb
    state = {"carry": None}

    def ref_step(b, read: bool = False) -> None:
        rb = {"inputs": b.inputs.to(device, torch.int32), "labels": b.targets.to(device, torch.int32),
              "puzzle_identifiers": b.puzzle_ids.to(device, torch.int32)}
        if state["carry"] is None:
            with torch.device(device):
                state["carry"] = ref.initial_carry(rb)
        state["carry"], loss, metrics, _, _ = forward(carry=state["carry"], batch=rb, return_keys=[])
        ((1 / s.batch) * loss).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        signsgd(emb.local_weights.grad, emb.local_ids, emb.weights, lr=1e-2, weight_decay=0.1, world_size=1)
        emb.local_weights.grad = None
        if read:  # its pretrain.py, every step on rank 0
            torch.stack([metrics[k] for k in sorted(metrics)]).cpu()

    def our_step(b, read: bool = True) -> None:
        tr.queue_step(b._replace(inputs=b.inputs.to(device), targets=b.targets.to(device),
                                 puzzle_ids=b.puzzle_ids.to(device)))
        if read:
            tr.read_metrics()
    return ref_step, our_step


def timed(device: torch.device, work) -> tuple[float, float]:
    """Seconds of ``work()`` between two syncs, and the peak GPU MiB it reached (0 on a CPU)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sync(device)
    t0 = time.perf_counter()
    work()
    sync(device)
    seconds = time.perf_counter() - t0
    return seconds, torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else 0.0


def summary(shape: str, s: argparse.Namespace, compiled: bool, times: dict[str, list[float]],
            peaks: dict[str, float]) -> dict:
    """Samples/s of each side from its median time per step, their ratio, and each side's peak memory."""
    med = {n: statistics.median(v) for n, v in times.items()}
    return {"shape": shape, "net": s.net, "batch": s.batch, "compiled": compiled,
            "ref_sps": s.batch / med["reference"], "our_sps": s.batch / med["ours"],
            "ratio": med["reference"] / med["ours"], "ref_peak": peaks["reference"], "our_peak": peaks["ours"]}


def measure(shape: str, a: argparse.Namespace, ref_mods, compiled: bool) -> dict:
    s = args_for(shape, a)
    device = torch.device(a.device)
    ref_step, our_step = build(s, a, ref_mods, compiled)
    if a.loop == "run":
        return measure_loops(s, a, ref_step, our_step, compiled, shape)
    batches = make_batches(s, a.warmup + a.steps, torch.Generator().manual_seed(2))
    times: dict[str, list[float]] = {"reference": [], "ours": []}
    peaks: dict[str, float] = {"reference": 0.0, "ours": 0.0}
    for k, b in enumerate(batches):
        order = [("reference", ref_step), ("ours", our_step)]
        for name, step in order if k % 2 == 0 else order[::-1]:  # interleaved, alternating who goes first
            seconds, peak = timed(device, lambda: step(b))
            if k >= a.warmup:
                times[name].append(seconds)
                peaks[name] = max(peaks[name], peak)
    return summary(shape, s, compiled, times, peaks)


def measure_loops(s: argparse.Namespace, a: argparse.Namespace, ref_step, our_step, compiled: bool,
                  shape: str) -> dict:
    """``--loop run``: after ``--warmup`` steps each, ``--rounds`` windows of ``--steps`` steps per side, the
    sides alternating; each window between two syncs. Samples/s from the median window."""
    device = torch.device(a.device)
    batches = make_batches(s, a.warmup + a.steps, torch.Generator().manual_seed(2))
    for b in batches[:a.warmup]:
        ref_step(b, read=True)
        our_step(b, read=True)
    window = batches[a.warmup:]
    sides = {"reference": lambda k, b: ref_step(b, read=True),
             "ours": lambda k, b: our_step(b, read=(k + 1) % 10 == 0 or k + 1 == len(window))}
    times: dict[str, list[float]] = {"reference": [], "ours": []}
    peaks: dict[str, float] = {"reference": 0.0, "ours": 0.0}
    for r in range(a.rounds):
        for name in (list(sides) if r % 2 == 0 else list(sides)[::-1]):
            seconds, peak = timed(device, lambda: [sides[name](k, b) for k, b in enumerate(window)])
            times[name].append(seconds / len(window))
            peaks[name] = max(peaks[name], peak)
    return summary(shape, s, compiled, times, peaks)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ref-dir", required=True, type=Path, help="a checkout of TinyRecursiveModels")
    p.add_argument("--shape", default="cpu", help=f"{', '.join([*GROUPS, *SHAPES])} (comma-separated)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=0, help="override the shape's batch (the paper's may not fit)")
    p.add_argument("--bf16", action="store_true", help="the paper's bf16 forward on both sides (GPU)")
    p.add_argument("--compile", default="eager", choices=("eager", "compiled", "both"))
    p.add_argument("--steps", type=int, default=12, help="measured steps per side")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--loop", default="step", choices=("step", "run"),
                   help="time each step alone (step) or windows of steps as each side's loop runs them (run)")
    p.add_argument("--rounds", type=int, default=3, help="--loop run: windows per side")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    sys.path.insert(0, str(a.ref_dir.resolve()))
    from models.losses import ACTLossHead
    from models.recursive_reasoning.trm import TinyRecursiveReasoningModel_ACTV1
    from models.sparse_embedding import _sparse_emb_signsgd_dist
    mods = (TinyRecursiveReasoningModel_ACTV1, ACTLossHead, _sparse_emb_signsgd_dist)
    shapes = [x for name in a.shape.split(",") for x in GROUPS.get(name, [name])]
    modes = {"eager": [False], "compiled": [True], "both": [False, True]}[a.compile]
    machine = torch.cuda.get_device_name(0) if a.device.startswith("cuda") else f"CPU, {a.threads} threads"
    how = f"{a.rounds} windows of {a.steps} steps each, alternating" if a.loop == "run" else \
        f"{a.steps} measured steps each, interleaved"
    print(f"torch {torch.__version__} on {machine}; {how}, after {a.warmup} warm-up steps")
    print(f"{'shape':<14} {'net':<10} {'batch':>5} {'mode':<9} {'reference/s':>11} {'ours/s':>9} {'ours/ref':>8}"
          f" {'ref MiB':>8} {'our MiB':>8}")
    for shape in shapes:
        for compiled in modes:
            r = measure(shape, a, mods, compiled)
            print(f"{r['shape']:<14} {r['net']:<10} {r['batch']:>5} {'compiled' if compiled else 'eager':<9} "
                  f"{r['ref_sps']:>11.1f} {r['our_sps']:>9.1f} {r['ratio']:>8.2f} {r['ref_peak']:>8.0f} "
                  f"{r['our_peak']:>8.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
