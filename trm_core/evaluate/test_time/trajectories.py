"""Parallel noisy trajectories (PTRM, arXiv 2605.19943): each example runs K times side by side, Gaussian noise
added to the latent before every deep recursion step, and one answer is kept per example: the one its halting
head is most confident in (``q``), or the one most trajectories reached (``vote``).

A deterministic recursion can settle in a wrong basin and stay there; noise lets some of the K copies leave
it, and the halting head, trained to say "this answer is right", picks among them with no retraining. The K
copies of an example are K rows of one batch (rows ``i*K .. i*K+K-1``), so a recursion is one forward over
K x the batch, not a Python loop over trajectories. The noise comes from one seeded generator per eval: the
same seed, batches and device give the same figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from trm_core.config.schema import MAX_NOISE, MAX_TRAJECTORIES

SELECTIONS = ("q", "vote")


@dataclass(frozen=True)
class Trajectories:
    """How many trajectories an example runs, the noise on their latent, how one answer is chosen, and the
    early exit that spends less where the answer is already settled (``settle``)."""

    count: int = 1
    noise: float = 0.0
    select: str = "q"
    seed: int = 0
    # an example stops all its trajectories once this many of them agree on the answer (0: never early);
    # its chosen answer is then the agreed one
    settle: int = 0
    # every example first runs one plain trajectory; only those its halting head was never sure of run the K
    escalate: bool = False

    @property
    def active(self) -> bool:
        """Whether this differs from one plain trajectory (today's eval, on its own code path)."""
        return self.count > 1 or self.noise > 0

    def problem(self) -> str | None:
        """What is wrong with these settings, naming the flag; None when they can run."""
        if not 1 <= self.count <= MAX_TRAJECTORIES:
            return f"--trajectories must be between 1 and {MAX_TRAJECTORIES}, not {self.count}"
        if not 0 <= self.noise <= MAX_NOISE:  # NaN and infinity too
            return f"--noise must be between 0 and {MAX_NOISE:g} (the latent's scale is about 1), not {self.noise:g}"
        if self.select not in SELECTIONS:
            return f"--select must be one of {', '.join(SELECTIONS)}, not {self.select!r}"
        if self.settle < 0 or self.settle == 1 or self.settle > self.count:
            return (f"--settle must be 0 (off) or between 2 and --trajectories ({self.count}), "
                    f"not {self.settle}")
        return None

    def record(self) -> dict[str, Any]:
        return {"trajectories": self.count, "noise": self.noise, "select": self.select, "seed": self.seed,
                "settle": self.settle, "escalate": self.escalate}


class LatentNoise:
    """``z + sigma * N(0, 1)``, drawn from one seeded generator on the latent's device."""

    def __init__(self, sigma: float, seed: int, device: torch.device) -> None:
        self.sigma = sigma
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed)

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        noise = torch.randn(z.shape, generator=self.generator, device=z.device, dtype=torch.float32)
        return z + (self.sigma * noise).to(z.dtype)


def agreement(answers: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For answers (B, K, L): how many of each example's K answers equal each one (B, K), and the index of
    each answer's first equal (B, K), so equal answers share one group."""
    same = (answers[:, :, None, :] == answers[:, None, :, :]).all(-1)  # (B, K, K)
    return same.sum(-1), same.to(torch.int8).argmax(-1)


def choose(answers: torch.Tensor, confidence: torch.Tensor, select: str) -> torch.Tensor:
    """The trajectory kept for each example (B,), from its K answers (B, K, L) and their halting logits at
    exit (B, K). ``q``: the most confident (the first of equals). ``vote``: an answer of the largest group of
    equal answers, ties between groups going to the group whose most confident member is more confident; the
    group's most confident member is kept."""
    if select == "q":
        return confidence.argmax(-1)
    votes, group = agreement(answers)
    best_in_group = torch.full_like(confidence, -torch.inf).scatter_reduce(1, group, confidence, "amax")
    candidates = votes == votes.max(-1, keepdim=True).values
    group_best = best_in_group.gather(1, group).masked_fill(~candidates, -torch.inf)
    candidates &= group_best == group_best.max(-1, keepdim=True).values
    return confidence.masked_fill(~candidates, -torch.inf).argmax(-1)


def settled(answers: torch.Tensor, needed: int) -> torch.Tensor:
    """Which examples (B,) have at least ``needed`` of their K current answers (B, K, L) equal."""
    votes, _ = agreement(answers)
    return votes.max(-1).values >= needed

