"""When a sample stops recursing: the one rule that training (the refill and shrink steps), eval and the eval's
trace all use, so a halting head means the same thing everywhere.

The reference halts a sample when its halting logit is strictly above zero
(TinyRecursiveModels ``models/recursive_reasoning/trm.py`` line 281: ``halted = halted | (q_halt_logits > 0)``);
``model.halt_threshold`` generalises the zero to the logit of any probability.
"""

from __future__ import annotations

import math

import torch


def halt_logit_threshold(probability: float) -> float:
    """``model.halt_threshold`` as a logit, so halting compares logits (no sigmoid on the hot path)."""
    if probability >= 1.0:
        return math.inf
    if probability <= 0:
        return -math.inf
    return math.log(probability / (1 - probability))


def halts(halt_logit: torch.Tensor, threshold: float) -> torch.Tensor:
    """Which samples' halting heads say stop: the logit strictly above the threshold (a logit of exactly 0
    at probability 0.5 does not halt, as in the reference)."""
    return halt_logit > threshold
