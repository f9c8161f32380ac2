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

from trm_core.config import Config
from trm_core.doctor.report import Check, fail, ok, warn

AREA = "model"
PROBE_SAMPLES = 1  # and twice that: the line through the two separates per-sample bytes from fixed ones
HEADROOM = 0.8  # a run that needs more than this share of the free memory is one fragmentation from OOM
# what a step holds beyond the tensors saved for its backward (the forward's temporaries, the backward's
# gradients of activations): bench/doctor_memory.py measured the saved bytes at 0.68-0.87 of the real per-sample
# slope of peak memory on a CPU (tiny to sudoku-paper); scaled by this, they read within about a tenth
TRANSIENT = 1.25


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


def activation_bytes(cfg: Config, shape: Shape) -> tuple[float, float]:
    """(bytes per sample, bytes per step whatever the batch): a line through two probe sizes, since some saved
    tensors do not grow with the batch (bf16 copies of the weights, cast at each use); the per-sample share
    scaled by TRANSIENT."""
    small, large = saved_bytes(cfg, shape, PROBE_SAMPLES), saved_bytes(cfg, shape, 2 * PROBE_SAMPLES)
    per_sample = max(0.0, (large - small) / PROBE_SAMPLES)
    return per_sample * TRANSIENT, max(0.0, small - per_sample * PROBE_SAMPLES)


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


def checks(cfg: Config, probe_memory: bool = True) -> list[Check]:
    from trm_core.config import ConfigError

    try:
        shape = data_shape(cfg)
    except ConfigError as exc:
        return [fail(AREA, "shape", f"the model's shape needs the dataset: {exc}", "see the dataset check")]
    params, state, buffers = static_bytes(cfg, shape)
    found = [ok(AREA, "builds", f"{cfg.model.net} network, {params:,} parameters (vocab {shape.vocab_size}, "
                                f"seq_len {shape.seq_len}" + (f", {shape.num_puzzle_ids:,} puzzle ids" if
                                                              shape.num_puzzle_ids > 1 else "") + ")")]
    if not probe_memory:
        return found
    per_sample, fixed = activation_bytes(cfg, shape)
    micro = cfg.micro_batch
    need = state + buffers + fixed + per_sample * micro
    free, where = free_bytes(cfg)
    detail = (f"about {gib(need)} per {'rank' if cfg.distributed.world_size > 1 else 'process'}: weights, "
              f"gradients, optimizer and EMA {gib(state)}, buffers {gib(buffers + fixed)}, activations "
              f"{gib(per_sample)} a sample x micro-batch {micro}; {gib(free)} {where}")
    if need > free:
        fit = max(0, int((free * HEADROOM - state - buffers - fixed) / per_sample)) if per_sample else 0
        found.append(fail(AREA, "memory", detail, f"set train.micro_batch_size to at most {fit} (the batch stays "
                          "the same; steps take longer)" if fit else "a smaller model (model.dim, model.depth) or a "
                          "device with more memory"))
    elif need > HEADROOM * free:
        found.append(warn(AREA, "memory", detail, "close to full: a smaller train.micro_batch_size leaves room"))
    else:
        found.append(ok(AREA, "memory", detail))
    return found
