"""The optimizer ``train.optimizer`` names, over the network's weights (the puzzle embeddings keep their own
sign-SGD, ``train.puzzle_emb``)."""

from __future__ import annotations

from typing import Iterable

import torch

from trm_core.config.schema import TrainConfig
from trm_core.train.update.adam_atan2 import AdamATan2


def build_optimizer(params: Iterable[torch.nn.Parameter], t: TrainConfig) -> torch.optim.Optimizer:
    betas = (t.adam_beta1, t.adam_beta2)
    if t.optimizer == "adam_atan2":
        return AdamATan2(params, lr=t.learning_rate, betas=betas, weight_decay=t.weight_decay)
    params = list(params)
    # on a GPU one fused kernel for every tensor (its step counts stay on the GPU: no host reads either)
    fused = {"fused": True} if params and params[0].is_cuda else {"foreach": True}
    return torch.optim.AdamW(params, lr=t.learning_rate, weight_decay=t.weight_decay, betas=betas, **fused)
