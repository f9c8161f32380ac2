"""A metric's whole history in bounded memory: min-max downsampling into a fixed number of buckets.

Each bucket keeps the first x it covers and the min and max y seen in it, so spikes survive (a plain
stride would drop them). When the buckets fill up, neighbours merge pairwise and each bucket then covers
twice as many points: memory stays O(capacity) however long the run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class _Bucket:
    x: float
    lo: float
    hi: float
    count: int


class MinMaxSeries:
    def __init__(self, capacity: int = 512) -> None:
        self.capacity = max(4, capacity - capacity % 2)
        self.per_bucket = 1
        self._buckets: list[_Bucket] = []
        self.count = 0

    def append(self, x: float, y: float) -> None:
        if not math.isfinite(y):
            return
        self.count += 1
        last = self._buckets[-1] if self._buckets else None
        if last is not None and last.count < self.per_bucket:
            last.lo, last.hi, last.count = min(last.lo, y), max(last.hi, y), last.count + 1
            return
        self._buckets.append(_Bucket(x, y, y, 1))
        if len(self._buckets) > self.capacity:
            self._merge()

    def _merge(self) -> None:
        merged = []
        for a, b in zip(self._buckets[0::2], self._buckets[1::2]):
            merged.append(_Bucket(a.x, min(a.lo, b.lo), max(a.hi, b.hi), a.count + b.count))
        if len(self._buckets) % 2:
            merged.append(self._buckets[-1])
        self._buckets = merged
        self.per_bucket *= 2

    def points(self) -> tuple[list[float], list[float]]:
        """x and y to draw: each bucket contributes its min and max (one point when they are equal)."""
        xs: list[float] = []
        ys: list[float] = []
        for b in self._buckets:
            xs.append(b.x)
            ys.append(b.lo)
            if b.hi != b.lo:
                xs.append(b.x)
                ys.append(b.hi)
        return xs, ys

    def __len__(self) -> int:
        return len(self._buckets)
