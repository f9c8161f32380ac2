"""What a step (and eval) needs of the trainer that runs it: the Trainer is one; a step never imports it."""

from __future__ import annotations

from typing import Any, Callable, ContextManager, Protocol

import torch

from trm_core.config import Config
from trm_core.data.base import Batch
from trm_core.distributed.group import Group
from trm_core.train.carry import Carry
from trm_core.train.metrics import FiniteWatch
from trm_core.train.update.ema import EMA
from trm_core.train.sample_loss import Losses


class StepHost(Protocol):
    cfg: Config
    device: torch.device
    group: Group
    model: Any        # the TRM network (its initial_state, train(), eval())
    wrapped: Any      # the model as the ranks hold it (DDP, or the model itself)
    forward: Callable[..., Any]  # the wrapped model, compiled or not
    ema: EMA | None
    carry: Carry | None
    step: int         # completed steps
    halt_logit_threshold: float
    sup_weights: torch.Tensor | None  # train.supervision_weights by supervision step; None: equal (the paper)
    autocast: Callable[[], ContextManager[Any]]
    _losses: Callable[..., Losses]
    finite: FiniteWatch

    def _learning_rates(self) -> tuple[float, float]: ...

    def _update(self, emb_lr: float) -> torch.Tensor: ...


def to_device(batch: Batch, device: torch.device) -> Batch:
    """The batch on the training device. To a GPU through pinned memory: a copy from pageable memory makes the
    host wait for the device, the wait a step avoids everywhere else."""
    pin = device.type == "cuda"
    return Batch(*(None if t is None else (t.pin_memory() if pin and not t.is_cuda else t).to(device, non_blocking=True)
                   for t in batch))
