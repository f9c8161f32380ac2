"""What a training step reports, and the one way it can refuse to go on.

A step leaves its figures on the device (``PendingMetrics``): reading them makes the host wait for the device
(a sync), and a GPU that waits for the host between steps sits idle. The trainer reads them only when asked
(the worker asks on the steps it logs, evaluates or checkpoints); ``FiniteWatch`` keeps the first step whose
loss or gradient norm was not finite, on the device too, and is read with them.
"""

from __future__ import annotations

import math
import resource
from dataclasses import dataclass
from typing import Any

import torch


class NonFiniteLoss(RuntimeError):
    """The loss or gradient went NaN/inf: the run stops instead of training on garbage. ``step`` is the step that
    went bad, which may be earlier than the step that found out (figures are read every ``train.log_every``)."""

    def __init__(self, message: str, step: int) -> None:
        super().__init__(message)
        self.step = step


@dataclass
class StepMetrics:
    loss: float
    halt_loss: float
    accuracy: float
    exact: float
    sup_steps: float | None
    grad_norm: float
    lr: float
    updates: int
    step_s: float
    peak_mem_mb: float
    masked_accuracy: float | None = None
    completed: int | None = None  # refill: samples that left their slot in this step

    def as_event(self, batch_size: int, seq_len: int) -> dict[str, Any]:
        per_s = batch_size / self.step_s if self.step_s > 0 else 0.0
        return {"loss": self.loss, "halt_loss": self.halt_loss, "accuracy": self.accuracy, "exact": self.exact,
                "lr": self.lr, "grad_norm": self.grad_norm, "samples_per_s": round(per_s, 3),
                "tokens_per_s": round(per_s * seq_len, 1), "step_s": round(self.step_s, 6),
                "sup_steps": self.sup_steps, "updates": self.updates, "peak_mem_mb": round(self.peak_mem_mb, 1),
                "masked_accuracy": self.masked_accuracy, "completed": self.completed}


# the order of PendingMetrics.values
FIGURES = ("loss", "halt_loss", "accuracy", "exact", "sup_steps", "grad_norm", "masked_accuracy", "completed")


@dataclass
class PendingMetrics:
    """One step's figures, still on the device: ``values`` in the order of ``FIGURES`` (NaN where a figure has no
    value: no sample finished, no hidden positions)."""

    values: torch.Tensor
    lr: float
    updates: int
    device: torch.device
    counts_completed: bool  # refill reports how many samples left their slot

    def read(self) -> StepMetrics:
        """The figures as numbers (``step_s`` left to the reader, who times the steps): waits for the device to
        finish the step."""
        got = dict(zip(FIGURES, self.values.tolist()))
        known = {name: None if math.isnan(value) else value for name, value in got.items()}
        return StepMetrics(got["loss"], got["halt_loss"], got["accuracy"], got["exact"], known["sup_steps"],
                           got["grad_norm"], lr=self.lr, updates=self.updates, step_s=0.0,
                           peak_mem_mb=peak_memory_mb(self.device), masked_accuracy=known["masked_accuracy"],
                           completed=int(got["completed"]) if self.counts_completed else None)


class FiniteWatch:
    """The first step whose loss or gradient norm was not finite, with both figures, kept on the device:
    checking every step would cost a sync each; ``check`` reads it when the trainer reads figures anyway. The
    steps after it train on NaN weights, but none of them is ever saved (a checkpoint checks first)."""

    def __init__(self, device: torch.device) -> None:
        # step (0 = none yet), supervision step (0 = not counted), loss, gradient norm
        self.first = torch.zeros(4, dtype=torch.float64, device=device)

    def see(self, step: int, loss: torch.Tensor, norm: torch.Tensor, supervision_step: int = 0) -> None:
        loss, norm = loss.detach().double().reshape(()), norm.detach().double().reshape(())
        bad = ~(torch.isfinite(loss) & torch.isfinite(norm)) & (self.first[0] == 0)
        seen = torch.stack([torch.full_like(loss, step), torch.full_like(loss, supervision_step), loss, norm])
        self.first = torch.where(bad, seen, self.first)

    def check(self) -> None:
        step, sup, loss, norm = self.first.tolist()
        if not step:
            return
        where = f"step {int(step)}" + (f", supervision step {int(sup)}" if sup else "")
        if not math.isfinite(loss):
            raise NonFiniteLoss(f"non-finite loss ({loss}) at {where}", int(step))
        raise NonFiniteLoss(f"non-finite gradient norm ({norm}) at {where}", int(step))


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
