"""The model builds, and the run fits: parameters counted on the meta device (no memory, any size), memory per
device estimated from one real training step at a small batch, scaled to the configured micro-batch.

The activation share is measured, not guessed: the bytes of every tensor autograd saves for the backward
of one supervision step (parameters aside), per sample. Weights, gradients, the optimizer's two moments, the
EMA copy and the puzzle-embedding table are counted from the model itself. The step runs on the device the
run would use, so bf16 and autocast halve what they halve.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Iterator

from trm_core.config import Config
from trm_core.doctor.report import Check, fail, ok, warn

AREA = "model"
PROBE_SAMPLES = 1  # and twice that: the line through the two separates per-sample bytes from fixed ones
HEADROOM = 0.8  # a run that needs more than this share of the free memory is one fragmentation from OOM
# what a step holds beyond the tensors saved for its backward (the forward's temporaries, the backward's
# gradients of activations): bench/doctor_memory.py measured the saved bytes at 0.68-0.87 of the real per-sample
# slope of peak memory on a CPU (tiny to sudoku-paper); scaled by this, they read within about a tenth
TRANSIENT = 1.25
# a probe's work that takes about PROBE_SECONDS: 2 CPU cores run about 25 GFLOP/s of these steps; one GPU
# about a hundred times that
PROBE_SECONDS = 10.0
BUDGET_FLOPS = {"cpu": 25e9 * PROBE_SECONDS, "cuda": 2.5e12 * PROBE_SECONDS}


@dataclass
class Shape:
    vocab_size: int
    seq_len: int
    num_puzzle_ids: int


def data_shape(cfg: Config) -> Shape:
    """The shape the worker will give the model: a puzzle dataset's from its dataset.json (raises ConfigError
    when it cannot be read: the dataset check says why)."""
    if cfg.data.kind == "puzzles":
        from pathlib import Path

        from trm_core.prep.dataset_shape import take_puzzle_shape
        from trm_core.prep.puzzle_format import read_metadata

        shaped = copy.deepcopy(cfg)
        take_puzzle_shape(shaped)
        root = Path(cfg.data.dataset_dir).expanduser()
        ids = max(read_metadata(root, "train").num_puzzle_identifiers, read_metadata(root, "test").num_puzzle_identifiers)
        return Shape(shaped.model.vocab_size, shaped.model.seq_len, ids)
    if cfg.data.kind == "code":
        from trm_core.data.code import CODE_VOCAB

        return Shape(cfg.model.vocab_size or CODE_VOCAB, cfg.model.seq_len, 1)
    return Shape(cfg.model.vocab_size or 256, cfg.model.seq_len, 1)


def shaped(cfg: Config, shape: Shape) -> Config:
    """The config as the worker runs it: the dataset's sequence length and vocabulary in the model."""
    out = copy.deepcopy(cfg)
    out.model.seq_len, out.model.vocab_size = shape.seq_len, shape.vocab_size
    return out


def static_bytes(cfg: Config, shape: Shape) -> tuple[int, int, int]:
    """(parameters, bytes of weights + gradients + optimizer moments + EMA, bytes of buffers such as the
    puzzle-embedding table), from the model built on the meta device."""
    import torch

    from trm_core.train.model import build_model

    with torch.device("meta"):
        model = build_model(shaped(cfg, shape).model, shape.vocab_size, shape.num_puzzle_ids)
    params = sum(p.numel() for p in model.parameters())
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    copies = 2 + 2 + (1 if cfg.train.ema_decay > 0 else 0)  # weight, gradient, two moments, EMA
    return params, params * 4 * copies, buffers


def saved_bytes(cfg: Config, shape: Shape, samples: int) -> int:
    """Bytes autograd keeps for the backward of one supervision step of ``samples`` samples (parameters
    aside): one real step of a copy of the config, on the run's device."""
    import torch

    from trm_core.data.base import Batch
    from trm_core.train.metrics import NonFiniteLoss
    from trm_core.train.trainer import Trainer

    probe = shaped(cfg, shape)
    t = probe.train
    t.batch_size = t.micro_batch_size = samples
    t.compile, t.ema_decay = "off", 0.0
    # one supervision step's graph: a refill step is one already (its halting draws need a maximum of 2)
    probe.model.max_supervision_steps = 2 if t.carry == "refill" else 1
    probe.distributed.nproc_per_node = probe.distributed.nnodes = 1
    trainer = Trainer(probe, shape.vocab_size, total_steps=10, num_puzzle_ids=min(shape.num_puzzle_ids, samples))
    device = trainer.device
    tokens = torch.ones((samples, shape.seq_len), dtype=torch.long, device=device)
    batch = Batch(tokens, tokens.clone(),
                  torch.ones_like(tokens, dtype=torch.bool) if cfg.data.kind == "code" else None,
                  torch.zeros(samples, dtype=torch.long, device=device) if cfg.data.kind == "puzzles" else None)
    owned = {p.untyped_storage().data_ptr() for p in trainer.model.parameters()}
    seen: set[int] = set()
    total = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal total
        ptr = tensor.untyped_storage().data_ptr()
        if ptr not in owned and ptr not in seen:
            seen.add(ptr)
            total += tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        try:
            trainer.train_step(batch)
        except NonFiniteLoss:
            pass  # a constant made-up batch may not train; its graph was measured before the update
    return total


def probe_flops(params: int, seq_len: int, latent_steps: int) -> float:
    """A rough count of a probe's work: forward and backward (6 x parameters a token) through the n + 1 net
    passes of one refinement block, for the 1 + 2 samples of the two probe steps."""
    return 6.0 * params * seq_len * (latent_steps + 1) * 3 * PROBE_SAMPLES


def _per_sample(cfg: Config, shape: Shape) -> tuple[float, float]:
    """(saved bytes per sample, saved bytes whatever the batch) at ``shape``: a line through two batch sizes,
    since some saved tensors do not grow with the batch (bf16 copies of the weights, cast at each use)."""
    small, large = saved_bytes(cfg, shape, PROBE_SAMPLES), saved_bytes(cfg, shape, 2 * PROBE_SAMPLES)
    per_sample = max(0.0, (large - small) / PROBE_SAMPLES)
    return per_sample, max(0.0, small - per_sample * PROBE_SAMPLES)


def activation_bytes(cfg: Config, shape: Shape, params: int, budget_flops: float) -> tuple[float, float, str]:
    """(bytes per sample, bytes per step whatever the batch, how they were found), the per-sample share scaled
    by TRANSIENT. One refinement block is probed: the T - 1 before it run without gradient and save nothing.
    A model whose probe would cost more than ``budget_flops`` at its sequence length (the default config's
    139M parameters at 4,096 tokens: most of an hour on a CPU) is probed at two shorter lengths, and the
    bytes are carried along the line through them to its own (saved bytes grow with the sequence, less than
    in proportion: a fixed part per sample)."""
    probe = copy.deepcopy(cfg)
    probe.model.refinement_blocks = 1
    seq = shape.seq_len
    if probe_flops(params, seq, cfg.model.latent_steps) <= budget_flops or seq < 32:
        per_sample, fixed = _per_sample(probe, shape)
        return per_sample * TRANSIENT, fixed, ""
    # mlp_t's token-mixing width is rounded up to a multiple of 256: below ~200 tokens it stops shrinking,
    # and a line through shorter probes would miss most of its growth (32% short at 1,024 tokens)
    floor = 256 if cfg.model.net == "mlp_t" else 8
    longer = seq
    while longer > 2 * floor and probe_flops(params, longer, cfg.model.latent_steps) > budget_flops:
        longer //= 2
    shorter = longer // 2
    (p1, f1), (p2, f2) = (_per_sample(probe, Shape(shape.vocab_size, s, shape.num_puzzle_ids))
                          for s in (shorter, longer))
    slope = (p2 - p1) / (longer - shorter)
    per_sample = p2 + slope * (seq - longer)
    fixed = f2 + (f2 - f1) / (longer - shorter) * (seq - longer)
    how = (f"; activations estimated from probes at seq_len {shorter} and {longer}, carried along their line to "
           f"{seq} (a probe at {seq} would take about {probe_flops(params, seq, cfg.model.latent_steps) / budget_flops * PROBE_SECONDS:,.0f} s here)")
    return max(0.0, per_sample) * TRANSIENT, max(0.0, fixed), how


def free_bytes(cfg: Config) -> tuple[float, str]:
    """Free memory where the run trains, and where that is: the least free GPU, or the machine's RAM."""
    import torch

    wants_cpu = cfg.train.device == "cpu" or not torch.cuda.is_available()
    if wants_cpu:
        import psutil

        return float(psutil.virtual_memory().available), "RAM available"
    free = min(torch.cuda.mem_get_info(i)[0] for i in range(torch.cuda.device_count()))
    return float(free), "free on the fullest GPU"


def gib(n: float) -> str:
    if n >= 2**28:
        return f"{n / 2**30:.2f} GiB"
    return f"{n / 2**20:.0f} MiB" if n >= 2**20 else f"{n / 2**10:.0f} KiB"


def checks(cfg: Config, probe_memory: bool = True, note: Callable[[str], None] = lambda text: None,
           budget_flops: float | None = None) -> Iterator[Check]:
    """The model's checks, each as soon as it is known; ``note`` hears what a slow one is doing."""
    from trm_core.config import ConfigError

    try:
        shape = data_shape(cfg)
    except ConfigError as exc:
        yield fail(AREA, "shape", f"the model's shape needs the dataset: {exc}", "see the dataset check")
        return
    params, state, buffers = static_bytes(cfg, shape)
    yield ok(AREA, "builds", f"{cfg.model.net} network, {params:,} parameters (vocab {shape.vocab_size}, "
                             f"seq_len {shape.seq_len}" + (f", {shape.num_puzzle_ids:,} puzzle ids" if
                                                           shape.num_puzzle_ids > 1 else "") + ")")
    if not probe_memory:
        return
    free, where = free_bytes(cfg)
    device = "cpu" if where == "RAM available" else "cuda"
    budget = budget_flops if budget_flops is not None else BUDGET_FLOPS[device]
    note(f"model memory: one training step of the model on the {device} (about "
         f"{min(PROBE_SECONDS, probe_flops(params, shape.seq_len, cfg.model.latent_steps) / budget * PROBE_SECONDS) + 2:.0f} s; "
         f"Ctrl-C skips it)")
    try:
        per_sample, fixed, how = activation_bytes(cfg, shape, params, budget)
    except KeyboardInterrupt:
        yield warn(AREA, "memory", "not measured: Ctrl-C during the probe", "trm-tui doctor --no-memory skips it")
        return
    finally:
        note("")
    yield memory_check(cfg, state, buffers, per_sample, fixed, how, free, where)


def memory_check(cfg: Config, state: float, buffers: float, per_sample: float, fixed: float, how: str,
                 free: float, where: str) -> Check:
    """Whether the weights, their optimizer state, the buffers and a micro-batch's activations fit."""
    micro = cfg.micro_batch
    need = state + buffers + fixed + per_sample * micro
    detail = (f"about {gib(need)} per {'rank' if cfg.distributed.world_size > 1 else 'process'}: weights, "
              f"gradients, optimizer and EMA {gib(state)}, buffers {gib(buffers + fixed)}, activations "
              f"{gib(per_sample)} a sample x micro-batch {micro}; {gib(free)} {where}{how}")
    if need > free:
        fit = max(0, int((free * HEADROOM - state - buffers - fixed) / per_sample)) if per_sample else 0
        return fail(AREA, "memory", detail, f"set train.micro_batch_size to at most {fit} (the batch stays "
                    "the same; steps take longer)" if fit else "a smaller model (model.dim, model.depth) or a "
                    "device with more memory")
    if need > HEADROOM * free:
        return warn(AREA, "memory", detail, "close to full: a smaller train.micro_batch_size leaves room")
    return ok(AREA, "memory", detail)
