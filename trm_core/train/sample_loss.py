"""The per-sample losses and scores of one supervision step: what training backpropagates and what both
training and eval report."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from trm_core.data.base import IGNORE

Losses = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]


class SampleLoss:
    def __init__(self, token_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], loss_on_hidden: bool) -> None:
        self.token_loss, self.loss_on_hidden = token_loss, loss_on_hidden

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor, halt_logit: torch.Tensor,
                 hidden: torch.Tensor | None = None) -> Losses:
        """Per sample: cross-entropy, halting BCE against "right wherever the loss looks", token accuracy over
        every position with a target, that exactness, and the accuracy on the ``hidden`` positions (the code
        task's masked bytes; None without them). Targets equal to IGNORE count nowhere. The loss looks at the
        hidden positions only when ``data.loss_on = "masked"`` and there are some, else at every target."""
        logits = logits.float()
        seq_first = targets.t()
        supervised = seq_first != IGNORE
        right = (logits.argmax(-1) == seq_first) & supervised
        accuracy = right.sum(0) / supervised.sum(0).clamp_min(1)
        hidden_acc = None
        scored = supervised
        if hidden is not None:
            in_view = hidden.t() & supervised
            hidden_acc = (right & in_view).sum(0) / in_view.sum(0).clamp_min(1)
            if self.loss_on_hidden:
                scored = in_view
        ce = self.token_loss(logits, seq_first)
        ce = ((ce * scored).sum(0) / scored.sum(0).clamp_min(1)).float()
        exact = (right | ~scored).all(0)
        halt = F.binary_cross_entropy_with_logits(halt_logit.float(), exact.float(), reduction="none")
        return ce, halt, accuracy, exact, hidden_acc
