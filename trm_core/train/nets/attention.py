"""The reference implementation's TRM network: non-causal multi-head self-attention with rotary positions,
then a SwiGLU MLP, each followed by RMSNorm of the residual sum (post-norm), no biases anywhere. The paper's
network for Maze-Hard and ARC.

States are sequence-first, (seq, batch, dim), as everywhere in the model; attention runs batch-first inside."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trm_core.train.nets.layers import LeCunLinear, SwiGLU, rms_norm
from trm_core.train.nets.rotary import Rotary


class SelfAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, rotary: Rotary | None) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.qkv = LeCunLinear(dim, 3 * dim)
        self.out = LeCunLinear(dim, dim)
        self.rotary = rotary

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq, batch, dim = x.shape
        q, k, v = self.qkv(x).view(seq, batch, 3, self.num_heads, self.head_dim).unbind(2)
        if self.rotary is not None:
            q, k = self.rotary(q), self.rotary(k)
        # (seq, batch, heads, head_dim) -> (batch, heads, seq, head_dim) for scaled_dot_product_attention
        q, k, v = (t.permute(1, 2, 0, 3) for t in (q, k, v))
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=False)
        return self.out(attended.permute(2, 0, 1, 3).reshape(seq, batch, dim))


class AttentionBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, expansion: float, rotary: Rotary | None) -> None:
        super().__init__()
        self.attention = SelfAttention(dim, num_heads, rotary)
        self.mlp = SwiGLU(dim, expansion)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = rms_norm(x + self.attention(x))
        return rms_norm(x + self.mlp(x))


class AttentionNet(nn.Module):
    def __init__(self, dim: int, depth: int, seq_len: int, num_heads: int, expansion: float, rope: bool) -> None:
        super().__init__()
        # one table for every block: a buffer, not a parameter, shared so it is built once
        rotary = Rotary(dim // num_heads, seq_len) if rope else None
        self.blocks = nn.ModuleList(AttentionBlock(dim, num_heads, expansion, rotary) for _ in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x
