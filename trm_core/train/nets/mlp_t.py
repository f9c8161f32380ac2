"""The reference implementation's attention-free TRM network ("TRM-MLP", the paper's best on Sudoku): in place
of attention, a SwiGLU MLP across the sequence (each feature's values at every position in, the same out),
with RMSNorm over the sequence after it; then the usual SwiGLU over features and RMSNorm over features.

Sequence-first states make the MLP across tokens one matrix product on ``x.view(seq, batch * dim)``."""

from __future__ import annotations

import torch
from torch import nn

from trm_core.train.nets.layers import SwiGLU, rms_norm


class TokenMLPBlock(nn.Module):
    def __init__(self, dim: int, seq_len: int, expansion: float) -> None:
        super().__init__()
        self.token_mlp = SwiGLU(seq_len, expansion)
        self.mlp = SwiGLU(dim, expansion)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq, batch, dim = x.shape
        across = x.reshape(seq, batch * dim).t()  # (batch * dim, seq): an MLP over positions
        x = rms_norm(across + self.token_mlp(across)).t().reshape(seq, batch, dim)
        return rms_norm(x + self.mlp(x))


class MLPTNet(nn.Module):
    def __init__(self, dim: int, depth: int, seq_len: int, expansion: float) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(TokenMLPBlock(dim, seq_len, expansion) for _ in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x
