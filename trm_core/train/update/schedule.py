"""Learning-rate schedule: linear warm-up, then cosine decay to ``min_lr_ratio`` of the peak.

A pure function of the step, so resume needs no scheduler state beyond the step count.
"""

from __future__ import annotations

import math


def learning_rate(step: int, *, peak: float, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """The learning rate for 0-based ``step``: the reference's ``cosine_schedule_with_warmup_lr_lambda``
    (``pretrain.py`` lines 207-214) at its 1-based ``current_step = step + 1`` (it counts the step up before it
    computes the rate, line 290), ``total_steps`` its ``num_training_steps``."""
    current = step + 1
    if current < warmup_steps:
        return peak * current / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (current - warmup_steps) / span)
    return peak * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))
