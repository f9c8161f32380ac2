"""The MLP-mixer network that TRM reuses for every refinement.

Same parameters as tiny-recursive-model's ``MLPMixer1D`` (token mixing over a fixed ``seq_len`` with a hidden
width of ``expansion_factor * dim``, channel mixing with ``expansion_factor_token * dim``, bias-free
LayerNorms), but activations are laid out sequence-first, (seq, batch, dim). Token mixing is then one
GEMM, ``W1 @ x.view(seq, batch * dim)``, instead of a kernel-size-1 Conv1d (or a batched matmul whose weight
gradient is a per-sample product summed afterwards), and channel mixing is a Linear on the last dim as
before: the same math with no transposes and larger, faster matrix products.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class TokenMixing(nn.Module):
    """Mix along the sequence: out = W2 @ gelu(W1 @ x + b1) + b2, with x viewed as (seq, batch * dim)."""

    def __init__(self, seq_len: int, hidden: int) -> None:
        super().__init__()
        self.w1 = nn.Parameter(torch.empty(hidden, seq_len))
        self.b1 = nn.Parameter(torch.empty(hidden, 1))
        self.w2 = nn.Parameter(torch.empty(seq_len, hidden))
        self.b2 = nn.Parameter(torch.empty(seq_len, 1))
        for w, b in ((self.w1, self.b1), (self.w2, self.b2)):
            bound = 1 / math.sqrt(w.shape[1])  # the Conv1d/Linear default init
            nn.init.uniform_(w, -bound, bound)
            nn.init.uniform_(b, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq, batch, dim = x.shape
        h = F.gelu(torch.addmm(self.b1, self.w1, x.reshape(seq, batch * dim)))
        return torch.addmm(self.b2, self.w2, h).view(seq, batch, dim)


class ChannelMixing(nn.Module):
    """Mix along the features of each token."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class MixerBlock(nn.Module):
    def __init__(self, dim: int, seq_len: int, expansion_factor: float, expansion_factor_token: float) -> None:
        super().__init__()
        self.token_norm = nn.LayerNorm(dim, bias=False)
        self.token_mix = TokenMixing(seq_len, int(expansion_factor * dim))
        self.channel_norm = nn.LayerNorm(dim, bias=False)
        self.channel_mix = ChannelMixing(dim, int(expansion_factor_token * dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.token_mix(self.token_norm(x))
        return x + self.channel_mix(self.channel_norm(x))


class MLPMixer(nn.Module):
    def __init__(self, dim: int, depth: int, seq_len: int, expansion_factor: float = 4.0,
                 expansion_factor_token: float = 0.5) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            MixerBlock(dim, seq_len, expansion_factor, expansion_factor_token) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.norm(x)
