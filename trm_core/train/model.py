"""The Tiny Recursive Model (arXiv 2510.04871): one tiny network refines a latent and an answer.

Per supervision step: T refinement blocks, each n latent updates ``z <- net(x + y + z)`` then one answer
update ``y <- net(y + z)``; only the last block keeps gradients. (y, z) are carried, detached, to the next
supervision step. A halting head reads the answer and is trained against "answer fully correct".

The recursion is one; around it, two sets of conventions:

- ``TinyRecursiveModel`` (``model.net = "mixer"``): tiny-recursive-model 0.0.12's, parameter for parameter:
  plain embeddings, learned initial y and z, a halting head on the mean-pooled answer.
- ``ReferenceModel`` (``"attention"``, ``"mlp_t"``): the reference implementation's: embeddings scaled by
  sqrt(dim) with a 1/sqrt(dim) init, fixed random initial y and z, truncated-normal init, a halting head on
  the first position (two outputs, as the reference's Q head, the first used) starting at a bias of -5.

Either may put ``model.puzzle_emb_len`` prefix positions ahead of the tokens, the first holding the sample's
puzzle embedding (``PuzzleEmbedding``), the rest zeros; logits are read from the token positions only.

States and logits are sequence-first, (seq, batch, ...), the layout the networks are fastest in; token ids
and targets stay (batch, seq) at the interface.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch
from torch import nn

from trm_core.config import ModelConfig
from trm_core.train.nets import build_net
from trm_core.train.nets.layers import CastLinear, LeCunLinear, trunc_normal_
from trm_core.train.puzzle_emb import PuzzleEmbedding


class StepOutput(NamedTuple):
    y: torch.Tensor            # answer state, detached (positions, batch, dim)
    z: torch.Tensor            # latent state, detached (positions, batch, dim)
    logits: torch.Tensor       # (seq, batch, vocab)
    halt_logit: torch.Tensor   # (batch,)


class RecursiveModel(nn.Module):
    """The recursion; subclasses build ``net`` (``_build_net``, where their initialisation order wants it), the
    embedding, the initial state and the heads."""

    sometimes_unused_parameters = False  # some parameters get no gradient in some updates (DDP must know)
    # the dtype of the forward: embeddings, states and activations (train.precision = 'bf16' sets bfloat16;
    # the weights stay fp32 and are cast at use)
    forward_dtype: torch.dtype = torch.float32

    net: nn.Module

    def __init__(self, cfg: ModelConfig, num_puzzle_ids: int) -> None:
        super().__init__()
        self.latent_steps = cfg.latent_steps
        self.refinement_blocks = cfg.refinement_blocks
        self.grad_recursions = 1  # train.grad_recursions: the last blocks that carry gradient (0: all)
        self.prefix = cfg.puzzle_emb_len
        self.dim = cfg.dim
        if self.prefix:
            self.puzzle_emb = PuzzleEmbedding(max(1, num_puzzle_ids), cfg.dim)

    def _build_net(self, cfg: ModelConfig) -> None:
        self.net = build_net(cfg, cfg.seq_len + self.prefix)

    def token_embedding(self, tokens: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def heads(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits over the token positions, halting logit) from the answer state."""
        raise NotImplementedError

    def embed(self, tokens: torch.Tensor, puzzle_ids: torch.Tensor | None) -> torch.Tensor:
        x = self.token_embedding(tokens.t()).to(self.forward_dtype)
        if not self.prefix:
            return x
        batch = tokens.shape[0]
        ids = puzzle_ids if puzzle_ids is not None else torch.zeros(batch, dtype=torch.long, device=tokens.device)
        first = self.puzzle_emb(ids).to(x.dtype)[None]
        rest = x.new_zeros(self.prefix - 1, batch, self.dim)
        return torch.cat((first, rest, x))

    def _refine(self, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for _ in range(self.latent_steps):
            z = self.net(x + y + z)
        return self.net(y + z), z

    def forward(self, tokens: torch.Tensor, y: torch.Tensor, z: torch.Tensor,
                puzzle_ids: torch.Tensor | None = None,
                latent_noise: Callable[[torch.Tensor], torch.Tensor] | None = None) -> StepOutput:
        """One supervision step. ``latent_noise``: applied to the latent before each of the T refinement
        blocks (the deep recursion steps), as PTRM perturbs it at test time (``evaluate.test_time.trajectories``)."""
        x = self.embed(tokens, puzzle_ids)
        blocks = self.refinement_blocks
        with_grad = blocks if self.grad_recursions == 0 else min(self.grad_recursions, blocks)
        if blocks > with_grad:
            with torch.no_grad():
                for _ in range(blocks - with_grad):
                    y, z = self._refine(x, y, z if latent_noise is None else latent_noise(z))
        for _ in range(with_grad):
            y, z = self._refine(x, y, z if latent_noise is None else latent_noise(z))
        logits, halt_logit = self.heads(y)
        return StepOutput(y.detach(), z.detach(), logits, halt_logit)


class TinyRecursiveModel(RecursiveModel):
    # the learned initial states get a gradient only on a sample's first supervision step: DDP must expect
    # parameters without one
    sometimes_unused_parameters = True

    def __init__(self, cfg: ModelConfig, vocab_size: int, num_puzzle_ids: int = 1) -> None:
        super().__init__(cfg, num_puzzle_ids)
        self.input_embed = nn.Embedding(vocab_size, cfg.dim)
        self.y_init = nn.Parameter(torch.randn(cfg.dim) * 1e-2)
        self.z_init = nn.Parameter(torch.randn(cfg.dim) * 1e-2)
        self._build_net(cfg)  # after the initial states: the random init stays what it always was
        self.to_logits = nn.Linear(cfg.dim, vocab_size, bias=False)
        self.to_halt = nn.Linear(cfg.dim, 1, bias=False)

    def token_embedding(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.input_embed(tokens)

    def initial_state(self, batch: int, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (seq_len + self.prefix, batch, self.dim)
        return self.y_init.expand(shape), self.z_init.expand(shape)

    def heads(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.to_logits(y[self.prefix:]), self.to_halt(y.mean(dim=0)).squeeze(-1)


class ReferenceModel(RecursiveModel):
    def __init__(self, cfg: ModelConfig, vocab_size: int, num_puzzle_ids: int = 1) -> None:
        super().__init__(cfg, num_puzzle_ids)
        self.embed_scale = math.sqrt(cfg.dim)
        self.embed_tokens = nn.Embedding(vocab_size, cfg.dim)
        trunc_normal_(self.embed_tokens.weight, std=1 / self.embed_scale)
        self.register_buffer("y_init", trunc_normal_(torch.empty(cfg.dim), std=1.0))
        self.register_buffer("z_init", trunc_normal_(torch.empty(cfg.dim), std=1.0))
        self._build_net(cfg)
        self.lm_head = LeCunLinear(cfg.dim, vocab_size)
        self.q_head = CastLinear(cfg.dim, 2)  # (halt, continue) as the reference's; only halt is used
        with torch.no_grad():
            self.q_head.weight.zero_()
            self.q_head.bias.fill_(-5.0)  # start near "never halt": learn the answer first

    def token_embedding(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.embed_tokens(tokens)

    def embed(self, tokens: torch.Tensor, puzzle_ids: torch.Tensor | None) -> torch.Tensor:
        return self.embed_scale * super().embed(tokens, puzzle_ids)

    def initial_state(self, batch: int, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (seq_len + self.prefix, batch, self.dim)
        return self.y_init.to(self.forward_dtype).expand(shape), self.z_init.to(self.forward_dtype).expand(shape)

    def heads(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The logits in the forward's dtype (the loss reads them in fp32); the halting logit in fp32."""
        return self.lm_head(y[self.prefix:]), self.q_head(y[0])[:, 0].float()


def build_model(cfg: ModelConfig, vocab_size: int, num_puzzle_ids: int = 1) -> RecursiveModel:
    cls = TinyRecursiveModel if cfg.net == "mixer" else ReferenceModel
    return cls(cfg, vocab_size, num_puzzle_ids)


def count_parameters(module: nn.Module) -> int:
    """Trainable parameters, as the reference counts them (puzzle embeddings, a buffer, not included)."""
    return sum(p.numel() for p in module.parameters())
