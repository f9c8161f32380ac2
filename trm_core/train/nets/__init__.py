"""The one shared network TRM recurses with, chosen by ``model.net``: ``mixer`` (tiny-recursive-model's MLP-mixer),
``attention`` and ``mlp_t`` (the reference implementation's). Each maps sequence-first states (seq, batch, dim)
to the same shape; the recursion, embeddings and heads around them live in ``trm_core.train.model``."""

from __future__ import annotations

from torch import nn

from trm_core.config import ModelConfig
from trm_core.train.nets.attention import AttentionNet
from trm_core.train.nets.mixer import MLPMixer
from trm_core.train.nets.mlp_t import MLPTNet


def build_net(cfg: ModelConfig, positions: int) -> nn.Module:
    """The network for ``positions`` positions (the sequence plus any puzzle-embedding prefix)."""
    if cfg.net == "attention":
        return AttentionNet(cfg.dim, cfg.depth, positions, cfg.num_heads, cfg.expansion, cfg.pos_encoding == "rope")
    if cfg.net == "mlp_t":
        return MLPTNet(cfg.dim, cfg.depth, positions, cfg.expansion)
    return MLPMixer(cfg.dim, cfg.depth, positions, cfg.expansion_factor, cfg.expansion_factor_token)
