"""Exponential moving average of the weights, kept as a frozen copy of the model used for eval.

With ``warmup`` the decay warms up as ``min(decay, (1 + n) / (10 + n))`` after n updates (as TensorFlow's
ExponentialMovingAverage does), so early evals see trained weights instead of the random init. Without it
(``train.ema_warmup = false``, the reference's EMA) the decay is ``decay`` from the first update on.

Only parameters are averaged. Buffers are shared with the live model, as the reference's EMA copy sees them:
the fixed initial states, and the puzzle-embedding table, which is trained by its own sign-SGD (a second,
averaged copy of a table that may hold a million rows would double its memory and its checkpoint bytes).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, decay: float, warmup: bool = True) -> None:
        self.decay, self.warmup = decay, warmup
        self.updates = 0
        self.model = copy.deepcopy(model).requires_grad_(False).eval()
        live_modules = dict(model.named_modules())
        for name, module in self.model.named_modules():
            for key in module._buffers:
                module._buffers[key] = live_modules[name]._buffers[key]
        self._shadow = list(self.model.parameters())
        self._live = list(model.parameters())

    @torch.no_grad()
    def update(self) -> None:
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates)) if self.warmup else self.decay
        torch._foreach_lerp_(self._shadow, self._live, 1.0 - decay)
        self.updates += 1

    @torch.no_grad()
    def restart(self) -> None:
        """The average starts over from the live weights (a new run's first weights, train.init_from)."""
        torch._foreach_copy_(self._shadow, self._live)
        self.updates = 0

    def state_dict(self) -> dict[str, Any]:
        return {"weights": dict(self.model.named_parameters()), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        weights = dict(self.model.named_parameters())
        missing = weights.keys() - state["weights"].keys()
        if missing:
            raise KeyError(f"EMA state lacks {sorted(missing)[:3]}")
        with torch.no_grad():
            for name, value in weights.items():
                value.copy_(state["weights"][name])
        self.updates = int(state["updates"])
