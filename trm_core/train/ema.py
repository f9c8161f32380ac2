"""Exponential moving average of the weights, kept as a frozen copy of the model used for eval.

The decay warms up as ``min(decay, (1 + n) / (10 + n))`` after n updates (as TensorFlow's
ExponentialMovingAverage does), so early evals see trained weights instead of the random init.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.model = copy.deepcopy(model).requires_grad_(False).eval()
        self._shadow = list(self.model.parameters())
        self._live = list(model.parameters())

    @torch.no_grad()
    def update(self) -> None:
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(self._shadow, self._live, 1.0 - decay)
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        return {"weights": self.model.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["weights"])
        self.updates = int(state["updates"])
