"""What a training step reports, and the one way it can refuse to go on."""

from __future__ import annotations

import resource
from dataclasses import dataclass
from typing import Any

import torch


class NonFiniteLoss(RuntimeError):
    """The loss or gradient went NaN/inf: the run stops instead of training on garbage."""


@dataclass
class StepMetrics:
    loss: float
    halt_loss: float
    accuracy: float
    exact: float
    sup_steps: float
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


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
