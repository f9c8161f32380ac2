"""The Tiny Recursive Model (arXiv 2510.04871): one tiny network refines a latent and an answer.

Per supervision step: T refinement blocks, each n latent updates ``z <- net(x + y + z)`` then one answer
update ``y <- net(y + z)``; only the last block keeps gradients. (y, z) are carried, detached, to the next
supervision step. A halting head reads the mean-pooled answer and is trained against "answer fully correct".

States and logits are sequence-first, (seq, batch, ...), the layout the mixer is fastest in; token ids
and targets stay (batch, seq) at the interface.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from trm_core.config import ModelConfig
from trm_core.train.mixer import MLPMixer


class StepOutput(NamedTuple):
    y: torch.Tensor            # answer state, detached (seq, batch, dim)
    z: torch.Tensor            # latent state, detached (seq, batch, dim)
    logits: torch.Tensor       # (seq, batch, vocab)
    halt_logit: torch.Tensor   # (batch,)


class TinyRecursiveModel(nn.Module):
    def __init__(self, cfg: ModelConfig, vocab_size: int) -> None:
        super().__init__()
        self.latent_steps = cfg.latent_steps
        self.refinement_blocks = cfg.refinement_blocks
        self.input_embed = nn.Embedding(vocab_size, cfg.dim)
        self.y_init = nn.Parameter(torch.randn(cfg.dim) * 1e-2)
        self.z_init = nn.Parameter(torch.randn(cfg.dim) * 1e-2)
        self.net = MLPMixer(cfg.dim, cfg.depth, cfg.seq_len, cfg.expansion_factor, cfg.expansion_factor_token)
        self.to_logits = nn.Linear(cfg.dim, vocab_size, bias=False)
        self.to_halt = nn.Linear(cfg.dim, 1, bias=False)

    def initial_state(self, batch: int, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        dim = self.y_init.shape[0]
        return self.y_init.expand(seq_len, batch, dim), self.z_init.expand(seq_len, batch, dim)

    def _refine(self, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for _ in range(self.latent_steps):
            z = self.net(x + y + z)
        return self.net(y + z), z

    def forward(self, tokens: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> StepOutput:
        """One supervision step."""
        x = self.input_embed(tokens.t())
        if self.refinement_blocks > 1:
            with torch.no_grad():
                for _ in range(self.refinement_blocks - 1):
                    y, z = self._refine(x, y, z)
        y, z = self._refine(x, y, z)
        logits = self.to_logits(y)
        halt_logit = self.to_halt(y.mean(dim=0)).squeeze(-1)
        return StepOutput(y.detach(), z.detach(), logits, halt_logit)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
