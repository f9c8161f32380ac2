"""Token losses: softmax cross-entropy, and the reference implementation's stable-max cross-entropy.

Stable-max (Prieto et al., "Grokking at the edge of numerical stability") replaces exp in softmax with
s(x) = x + 1 for x >= 0 and 1 / (1 - x) for x < 0, which grows linearly instead of exponentially, so the
probabilities cannot saturate in floating point; the reference trains its puzzles with it, in float64.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from trm_core.data.base import IGNORE


def stablemax_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """-log(s(x_target) / sum s(x)) per position, in float64; 0 where the target is IGNORE. ``logits`` is
    (..., vocab), ``targets`` the leading shape."""
    x = logits.double()
    s = torch.where(x < 0, 1 / (1 - x), x + 1)
    log_probs = torch.log(s / s.sum(-1, keepdim=True))
    valid = targets != IGNORE
    picked = log_probs.gather(-1, torch.where(valid, targets, 0).unsqueeze(-1)).squeeze(-1)
    return torch.where(valid, -picked, 0.0)


def softmax_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The usual cross-entropy per position, in float32; 0 where the target is IGNORE."""
    return F.cross_entropy(logits.float().flatten(0, -2), targets.flatten(), reduction="none",
                           ignore_index=IGNORE).view(targets.shape)


LOSSES = {"softmax": softmax_cross_entropy, "stablemax": stablemax_cross_entropy}
