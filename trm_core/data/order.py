"""Deterministic data order: the batch at (epoch, position) never depends on what ran before.

That is what makes resume exact: a restarted worker computes the same permutation and continues at the
next position.
"""

from __future__ import annotations

import torch

from trm_core.data.base import mix_seed


class DataOrder:
    def __init__(self, num_train: int, batch_size: int, seed: int) -> None:
        self.num_train = num_train
        self.batch_size = batch_size
        self.seed = seed
        self.steps_per_epoch = num_train // batch_size
        self._perm_epoch = -1
        self._perm = torch.empty(0, dtype=torch.long)

    def indices(self, epoch: int, position: int) -> torch.Tensor:
        if epoch != self._perm_epoch:
            gen = torch.Generator().manual_seed(mix_seed(self.seed, epoch, 1))
            self._perm = torch.randperm(self.num_train, generator=gen)
            self._perm_epoch = epoch
        start = position * self.batch_size
        return self._perm[start:start + self.batch_size]

    def batch_seed(self, epoch: int, position: int) -> int:
        return mix_seed(self.seed, epoch, position, 2)

    def locate(self, step: int) -> tuple[int, int]:
        """(epoch, position) of the batch for 0-based global step ``step``."""
        return divmod(step, self.steps_per_epoch)
