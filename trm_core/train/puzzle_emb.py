"""Per-puzzle embeddings (ARC): a learned vector per puzzle identifier, placed in a prefix position ahead of the
tokens, trained as the reference trains them: only the rows of the identifiers in the batch change, by sign-SGD
with decoupled weight decay at their own learning rate.

The table is a buffer, not a parameter: AdamW never sees it (an Adam state for a million rows that each see a
gradient once an epoch would cost twice the table and behave like sign-SGD anyway). Each training forward
gathers its rows into a leaf tensor that collects their gradient; ``step`` applies what the leaves collected
since the last update, summed per identifier.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn


class PuzzleEmbedding(nn.Module):
    def __init__(self, count: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("weights", torch.zeros(count, dim))  # zero init, as the reference
        self._pending: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        rows = self.weights[ids]
        if not (self.training and torch.is_grad_enabled()):
            return rows
        rows.requires_grad_(True)
        self._pending.append((ids, rows))
        return rows

    @torch.no_grad()
    def step(self, lr: float, weight_decay: float,
             gather: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        """Update the rows the forwards since the last step used, then forget them. With several ranks,
        ``gather`` concatenates every rank's rows, so each rank applies the same update to its copy."""
        pending = [(ids, rows.grad) for ids, rows in self._pending if rows.grad is not None]
        self._pending.clear()
        if pending:
            ids, grads = torch.cat([i for i, _ in pending]), torch.cat([g for _, g in pending])
        elif gather is None:
            return
        else:  # this rank had no rows, but the others may: it still joins the gather
            ids = torch.zeros(0, dtype=torch.long, device=self.weights.device)
            grads = torch.zeros(0, self.weights.shape[1], device=self.weights.device)
        if gather is not None:
            ids, grads = gather(ids), gather(grads.to(self.weights.dtype))
            if not len(ids):
                return
        self._sign_sgd(ids, grads, lr, weight_decay)

    def _sign_sgd(self, ids: torch.Tensor, grads: torch.Tensor, lr: float, weight_decay: float) -> None:
        """Sign-SGD on the rows of ``ids``, each row's gradients summed first. Shapes stay fixed (no
        ``unique``, whose size the host would wait for the device to learn): the ids are sorted, each run of
        equal ids sums into the slot of its first, and every copy of an id writes that same new row."""
        ids, order = torch.sort(ids, stable=True)
        grads = grads[order]
        first = torch.ones_like(ids, dtype=torch.bool)
        first[1:] = ids[1:] != ids[:-1]
        run = torch.cumsum(first, 0) - 1  # the run (distinct id) each entry belongs to
        summed = torch.zeros_like(grads).index_add_(0, run, grads)[run]
        rows = self.weights[ids]
        rows.mul_(1.0 - lr * weight_decay).add_(summed.sign(), alpha=-lr)
        self.weights.index_put_((ids,), rows)

    def forget(self) -> None:
        """Drop what the forwards since the last step gathered (a step abandoned before its update)."""
        self._pending.clear()
