"""How far the halting head can be trusted, from one eval's trace: the halting probability it gave after each
supervision step against whether the whole answer was right at that step (a reliability table), and, for an
eval that ran every step, what halting above each probability P would have scored and cost.

A head trained against "the answer is right" that says 0.9 should be right 9 times in 10; the paper's
halting stops an example the first time it says more than 0.5. Where the head is overconfident early, it
stops too soon and the score falls; the table shows by how much and which P a user should pick instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np

THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)


def reliability(halt_prob: np.ndarray, exact: np.ndarray, bins: int = 10) -> list[dict[str, Any]]:
    """Over every (example, step) the eval ran (halt_prob not NaN): for each probability bin, how many there
    were, their mean probability and the share whose whole answer was right."""
    ran = ~np.isnan(halt_prob)
    probs, right = halt_prob[ran], exact[ran]
    which = np.minimum((probs * bins).astype(np.int64), bins - 1)
    rows = []
    for b in range(bins):
        mine = which == b
        count = int(mine.sum())
        rows.append({"from": round(b / bins, 4), "to": round((b + 1) / bins, 4), "count": count,
                     "mean_probability": round(float(probs[mine].mean()), 4) if count else None,
                     "right": round(float(right[mine].mean()), 4) if count else None})
    return rows


def halting_choices(halt_prob: np.ndarray, exact: np.ndarray,
                    thresholds: tuple[float, ...] = THRESHOLDS) -> list[dict[str, Any]] | None:
    """For each P: the share solved and the mean steps if every example had stopped the first time its
    halting probability passed P (else at the last step). Needs every example to have run every step (an
    eval without halting); None otherwise."""
    if not len(halt_prob) or np.isnan(halt_prob).any():
        return None
    steps = halt_prob.shape[1]
    rows = []
    for p in thresholds:
        above = halt_prob > p
        stop = np.where(above.any(1), above.argmax(1), steps - 1)
        solved = exact[np.arange(len(exact)), stop]
        rows.append({"halt": p, "exact": round(float(solved.mean()), 4), "steps_mean": round(float(stop.mean() + 1), 4),
                     "compute_saved": round(float(1 - (stop.mean() + 1) / steps), 4)})
    return rows


def calibration(halt_prob: np.ndarray, exact: np.ndarray) -> dict[str, Any]:
    """metrics.json's ``halt_reliability`` and ``halt_choices``."""
    return {"halt_reliability": reliability(halt_prob, exact), "halt_choices": halting_choices(halt_prob, exact)}
