"""The least memory a run can train in, checked before the model is built: a size asked for by mistake
(``model.dim = 10000000``, ``train.batch_size = 1000000000``) is a refusal naming the keys, not an allocation
that takes the machine down.

A floor, not an estimate: the model's state (weights, gradients, the optimizer's two moments, the EMA, counted
on the meta device), one micro-batch's latents and widest layer, and the batch's token tensors. A run under the
floor may still not fit (``trm-tui doctor`` measures a real step); a run over it cannot.
"""

from __future__ import annotations

import math

import torch

from trm_core.config import Config, ConfigError
from trm_core.telemetry.host_stats import free_memory, gib

STATE_COPIES = 5  # weights, gradients, Adam's two moments, the EMA: float32 each


def floor_bytes(cfg: Config, vocab_size: int, num_puzzle_ids: int) -> dict[str, float]:
    """The floor's parts, in bytes."""
    from trm_core.weights.tensor_checks import meta_shapes

    m = cfg.model
    params = sum(math.prod(shape) for shape in meta_shapes(m, vocab_size, num_puzzle_ids).values())
    micro = cfg.train.micro_batch_size or cfg.rank_batch
    widest = max(m.expansion, m.expansion_factor, 1.0)
    return {"the model's state": 4.0 * STATE_COPIES * params,
            "one micro-batch's latents": 4.0 * micro * m.seq_len * m.dim * (2 + widest),
            "the batch's tokens": 16.0 * cfg.rank_batch * m.seq_len}


def check_floor(cfg: Config, vocab_size: int, num_puzzle_ids: int, device: torch.device) -> None:
    parts = floor_bytes(cfg, vocab_size, num_puzzle_ids)
    need, free = sum(parts.values()), free_memory(device)
    if need <= free:
        return
    said = ", ".join(f"{name} {gib(b)}" for name, b in parts.items())
    raise ConfigError(f"this run needs at least {gib(need)} ({said}) and {device} has {gib(free)} free: "
                      f"model.dim = {cfg.model.dim}, model.depth = {cfg.model.depth}, model.seq_len = "
                      f"{cfg.model.seq_len}, model.expansion_factor = {cfg.model.expansion_factor:g}, model.expansion = "
                      f"{cfg.model.expansion:g}, train.batch_size = {cfg.train.batch_size}, train.micro_batch_size = "
                      f"{cfg.train.micro_batch_size}; trm-tui doctor measures what a step really takes")
