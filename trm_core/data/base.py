"""What the trainer needs from a dataset, whatever the task."""

from __future__ import annotations

import hashlib
from typing import NamedTuple, Protocol

import torch


IGNORE = -100  # a target with no loss and no accuracy (torch's default ignore_index)


class Batch(NamedTuple):
    inputs: torch.Tensor   # (batch, seq) int64
    targets: torch.Tensor  # (batch, seq) int64; IGNORE where a position is not supervised
    hidden: torch.Tensor | None = None  # (batch, seq) bool: the positions hidden from the input (code's masked
    #                                     bytes), scored on their own; with data.loss_on = "masked" the only loss
    puzzle_ids: torch.Tensor | None = None  # (batch,) int64: each row's puzzle identifier (puzzle datasets)


class Dataset(Protocol):
    vocab_size: int
    num_train: int
    num_eval: int
    description: str

    def train_batch(self, indices: torch.Tensor, seed: int) -> Batch:
        """Samples ``indices`` of the training split; any randomness comes from ``seed`` alone."""
        ...

    def eval_batch(self, start: int, size: int) -> Batch:
        """A fixed slice of the held-out split, the same at every eval."""
        ...

    def split_size(self, split: str) -> int:
        """Examples in ``split`` ("test": the held-out split; "train") as ``examples`` numbers them."""
        ...

    def examples(self, split: str, start: int, size: int) -> Batch:
        """Examples ``start:start + size`` of ``split`` in a fixed order (the held-out split's are
        ``eval_batch``'s): what ``trm-tui eval`` runs."""
        ...


def mix_seed(*parts: int) -> int:
    """A 63-bit seed from integers, stable across processes and Python versions."""
    digest = hashlib.sha256(",".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def holdout_split(count: int, fraction: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Split sample ids into (train, eval) by a fixed permutation, so eval is spread over the corpus."""
    n_eval = min(count - 1, int(round(count * fraction))) if fraction > 0 else 0
    perm = torch.randperm(count, generator=torch.Generator().manual_seed(mix_seed(seed, 7919)))
    eval_ids, _ = perm[:n_eval].sort()
    train_ids, _ = perm[n_eval:].sort()
    return train_ids, eval_ids
