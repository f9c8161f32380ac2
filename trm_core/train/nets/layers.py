"""The pieces the reference implementation builds its networks from, written for sequence-first states:
its initialisation (truncated normal, LeCun scale), bias-free linear layers, RMSNorm without a weight, and the
SwiGLU MLP with the reference's hidden width, so parameter counts match the reference's configs."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def trunc_normal_(tensor: torch.Tensor, std: float = 1.0, bound: float = 2.0) -> torch.Tensor:
    """Normal values cut at +-``bound`` standard deviations, rescaled so the result really has ``std`` (torch's
    ``trunc_normal_`` takes the std of the distribution before the cut, as JAX's initialisers do not)."""
    with torch.no_grad():
        if std == 0:
            return tensor.zero_()
        # variance of a standard normal truncated to [-bound, bound]
        mass = math.erf(bound / math.sqrt(2))
        density = math.exp(-bound * bound / 2) / math.sqrt(2 * math.pi)
        truncated_var = 1 - 2 * bound * density / mass
        nn.init.trunc_normal_(tensor, mean=0.0, std=1.0, a=-bound, b=bound)
        return tensor.mul_(std / math.sqrt(truncated_var))


class CastLinear(nn.Linear):
    """A linear layer whose weights are cast to the input's dtype at use (the reference's CastedLinear): fp32
    master weights, a bf16 forward under ``train.precision = 'bf16'``; a no-op in fp32."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == self.weight.dtype:
            return super().forward(x)
        bias = self.bias.to(x.dtype) if self.bias is not None else None
        return F.linear(x, self.weight.to(x.dtype), bias)


class LeCunLinear(CastLinear):
    """A linear layer initialised as the reference's: truncated LeCun normal weights, zero bias."""

    def __init__(self, in_features: int, out_features: int, bias: bool = False) -> None:
        super().__init__(in_features, out_features, bias=bias)
        trunc_normal_(self.weight, std=1 / math.sqrt(in_features))
        if self.bias is not None:
            nn.init.zeros_(self.bias)


def rms_norm(x: torch.Tensor, dim: int = -1, eps: float = 1e-5) -> torch.Tensor:
    """RMSNorm with no weight, computed in float32 (the reference's post-norm)."""
    dtype = x.dtype
    x = x.float()
    return (x * torch.rsqrt(x.square().mean(dim, keepdim=True) + eps)).to(dtype)


def swiglu_hidden(width: int, expansion: float) -> int:
    """The reference's SwiGLU hidden width: expansion x 2/3 of the input, rounded up to a multiple of 256."""
    return -(round(expansion * width * 2 / 3) // -256) * 256


class SwiGLU(nn.Module):
    """down(silu(gate(x)) * up(x)) over the last dimension, bias-free."""

    def __init__(self, width: int, expansion: float) -> None:
        super().__init__()
        hidden = swiglu_hidden(width, expansion)
        self.gate_up = LeCunLinear(width, 2 * hidden)
        self.down = LeCunLinear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)
