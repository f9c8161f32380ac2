"""Deterministic data order: the batch of a step never depends on what ran before.

That is what makes resume exact: a restarted worker computes the same order and continues at the next step.
A run asks ``order_for`` for its ``TrainOrder``: the reference's packed sampler for puzzle sets
(``data.packing``), a shuffled pass over the samples (``DataOrder``) for the others.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

from trm_core.data.base import Batch, Dataset, mix_seed


class TrainOrder(Protocol):
    steps_per_epoch: int  # batches in one pass over the training split

    def total_steps(self, epochs: int) -> int:
        """The steps of a run of ``epochs`` passes."""
        ...

    def epoch_of(self, step: int) -> int:
        """The 0-based epoch of the batch of 0-based ``step``."""
        ...

    def batch(self, step: int) -> Batch:
        """The global batch of 0-based ``step``."""
        ...


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


class ShuffledOrder:
    """Every epoch a permutation of the training samples, cut into full batches (the code and pairs tasks)."""

    def __init__(self, dataset: Dataset, batch_size: int, seed: int) -> None:
        self.dataset, self.order = dataset, DataOrder(dataset.num_train, batch_size, seed)
        self.steps_per_epoch = self.order.steps_per_epoch

    def total_steps(self, epochs: int) -> int:
        return epochs * self.steps_per_epoch

    def epoch_of(self, step: int) -> int:
        return self.order.locate(step)[0]

    def batch(self, step: int) -> Batch:
        epoch, position = self.order.locate(step)
        return self.dataset.train_batch(self.order.indices(epoch, position), self.order.batch_seed(epoch, position))


def order_for(dataset: Any, batch_size: int, seed: int, interval_epochs: int = 0) -> TrainOrder:
    """The order a run of ``dataset`` trains in: the dataset's own packed sampler when it has one (its stream
    restarting every ``interval_epochs``, the reference's eval interval, when given)."""
    packed = getattr(dataset, "packed_order", None)
    if packed is not None:
        return packed(batch_size, seed, interval_epochs)
    return ShuffledOrder(dataset, batch_size, seed)
