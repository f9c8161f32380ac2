"""The recipe knobs that change over training or over the supervision steps, parsed and checked without torch:
the depth curriculum (``train.depth_schedule``, CGAR, arXiv 2511.08653), the supervision steps' loss weights
(``train.supervision_weights``, CGAR's 0.7^t) and how many deep recursions carry gradient
(``train.grad_recursions``, the paper's 1-step approximation at 1; URM, arXiv 2512.14693, and
tiny-recursive-model's ``recurrent_grad_depth`` let more carry it)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from trm_core.config.schema import ConfigError

_STAGE = re.compile(r"^\s*(?P<at>\d*\.?\d+)\s+T\s*=\s*(?P<T>\d+)\s+n\s*=\s*(?P<n>\d+)\s*$")


@dataclass(frozen=True)
class DepthStage:
    """From ``start`` (a fraction of the run's steps) on, T refinement blocks of n latent steps each."""

    start: float
    T: int
    n: int

    def __str__(self) -> str:
        return f"T={self.T} n={self.n} from {self.start:.0%}"


def parse_depth_schedule(items: list[str]) -> list[DepthStage]:
    """``["0 T=1 n=2", "0.3 T=2 n=4", "0.6 T=3 n=6"]``: stages by the fraction of training they start at; the
    first starts at 0, the fractions increase, T and n are at least 1. Empty: the model section's depth always."""
    stages = []
    for k, item in enumerate(items):
        m = _STAGE.match(str(item))
        where = f"train.depth_schedule[{k}] = {item!r}"
        if m is None:
            raise ConfigError(f"{where}: expected 'FRACTION T=BLOCKS n=LATENT_STEPS', e.g. '0.3 T=2 n=4'")
        stage = DepthStage(float(m["at"]), int(m["T"]), int(m["n"]))
        if stage.T < 1 or stage.n < 1:
            raise ConfigError(f"{where}: T and n must be at least 1")
        if stage.start >= 1:
            raise ConfigError(f"{where}: a stage starts at a fraction of training below 1")
        if stages and stage.start <= stages[-1].start:
            raise ConfigError(f"{where}: the fractions must increase (the stage before starts at "
                              f"{stages[-1].start:g})")
        if not stages and stage.start != 0:
            raise ConfigError(f"{where}: the first stage starts at 0 (training has a depth from its first step)")
        stages.append(stage)
    return stages


def stage_at(stages: list[DepthStage], step: int, total_steps: int) -> int:
    """The index of the stage step ``step`` (0-based: the step about to run) belongs to: a pure function of the
    step and the run's length, so a resumed run is at the stage the straight run was."""
    index = 0
    for k, stage in enumerate(stages):
        if step >= stage.start * total_steps:
            index = k
    return index


def supervision_weights(spec: str, steps: int) -> list[float]:
    """Each supervision step's weight on the answer loss: ``equal`` (the paper: 1 each) or ``decay:D`` (step t,
    counted from 0, weighs D^t, scaled so the mean over the ``steps`` is 1, so the loss keeps its size)."""
    if spec == "equal":
        return [1.0] * steps
    m = re.fullmatch(r"decay:(\d*\.?\d+(?:e-?\d+)?)", spec.strip())
    if m is None:
        raise ConfigError(f"train.supervision_weights = {spec!r}: expected 'equal' or 'decay:D' (e.g. 'decay:0.7', "
                          f"CGAR's)")
    decay = float(m[1])
    if not 0 < decay <= 1:
        raise ConfigError(f"train.supervision_weights = {spec!r}: D must be in (0, 1] (1 is 'equal')")
    raw = [decay ** t for t in range(steps)]
    mean = sum(raw) / steps
    return [w / mean for w in raw]


def check_curriculum(stages_items: list[str], weights: str, grad_recursions: int, steps: int, blocks: int,
                     latent_steps: int) -> None:
    """The config's checks of the three keys (each error names its key). A stage is at most the model's depth
    (``blocks`` T, ``latent_steps`` n): a curriculum grows towards the model it trains, never past it (a stage of
    T=100 n=100 on a T=2 n=2 model made each step take a minute)."""
    for k, stage in enumerate(parse_depth_schedule(stages_items)):
        if stage.T > blocks or stage.n > latent_steps:
            raise ConfigError(f"train.depth_schedule[{k}] = {stages_items[k]!r}: deeper than the model "
                              f"(model.refinement_blocks = {blocks}, model.latent_steps = {latent_steps}); a stage "
                              f"is at most the model's depth")
    supervision_weights(weights, steps)
    if grad_recursions < 0:
        raise ConfigError(f"train.grad_recursions = {grad_recursions}: at least 0 (0: all of them)")
