"""Rotary position embeddings (RoFormer), as the reference applies them: each head's features in two halves
rotated by position-dependent angles, base 10000."""

from __future__ import annotations

import torch
from torch import nn


class Rotary(nn.Module):
    def __init__(self, head_dim: int, positions: int, base: float = 10000.0) -> None:
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        angles = torch.outer(torch.arange(positions, dtype=torch.float32), inv_freq)
        angles = torch.cat((angles, angles), dim=-1)  # (positions, head_dim)
        # (seq, 1, 1, head_dim): broadcasts over sequence-first (seq, batch, heads, head_dim)
        self.register_buffer("cos", angles.cos()[:, None, None, :], persistent=False)
        self.register_buffer("sin", angles.sin()[:, None, None, :], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (seq, batch, heads, head_dim)."""
        half = x.shape[-1] // 2
        rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
        return (x.float() * self.cos + rotated.float() * self.sin).to(x.dtype)
