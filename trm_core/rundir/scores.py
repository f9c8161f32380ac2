"""The one figure an eval is judged by, per task: the code task's accuracy on the hidden bytes, ARC's pass@2
(puzzles solved in two attempts), else the share of whole answers right (puzzles solved). The worker keeps the
run's best of it, the front ends draw and list it, and a target (the paper's score) is a value of it."""

from __future__ import annotations

from typing import Any, Mapping

from trm_core.rundir.records import Eval

# (the eval's field, its short label), in order of precedence: the first present is the task's figure
HEADLINES: tuple[tuple[str, str], ...] = (("masked_accuracy", "masked acc"), ("pass_at_2", "pass@2"),
                                          ("exact", "exact"))


def is_number(value: object) -> bool:
    """A figure to plot or show: an int or float, never a bool (JSON true is not a 1)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def headline(scores: Mapping[str, Any]) -> tuple[str, float] | None:
    """(label, value) of the task's figure among an eval's fields (by their Python names); None without one."""
    for key, label in HEADLINES:
        if is_number(scores.get(key)):
            return label, float(scores[key])
    return None


def best_of(previous: tuple[float, int] | None, score: float | None, step: int) -> tuple[float, int] | None:
    """The best (score, step) after an eval of ``score`` at ``step``: a tie keeps the earlier step."""
    if score is None:
        return previous
    if previous is None or score > previous[0]:
        return score, step
    return previous


def after_eval(best: tuple[float, int] | None, ev: Eval) -> tuple[float, int] | None:
    """The run's best (score, step) once ``ev`` is read: the best it carries (every earlier eval's, some of them
    perhaps before the part of the log read) and its own figure (an eval written before ``best_*`` existed)."""
    if ev.best_score is not None and ev.best_step is not None:
        best = best_of(best, ev.best_score, ev.best_step)
    figure = headline(ev.__dict__)
    return best_of(best, figure[1] if figure else None, ev.step)
