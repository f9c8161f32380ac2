"""What every eval runs: the model and the rules a sample exits by (``EvalModel``), who hears its steps
(``Trace``, an ``Observer``), the rows of a batch still running (``Running``), and how scored rows add to an
eval's sums (``add_figures``). The one-trajectory pass
(``batch_pass``) and the K-trajectory pass (``test_time.trajectory_pass``) are both built on these."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Protocol

import torch

from trm_core.data.base import Batch
from trm_core.evaluate.test_time.trajectories import Trajectories
from trm_core.train.halting import halts
from trm_core.train.sample_loss import Losses
from trm_core.train.steps.step_host import StepHost

Observer = Callable[[Batch, torch.Tensor, torch.Tensor], None]


class Trace(Protocol):
    """Hears one batch's supervision steps: ``start`` with the batch, ``step`` after each supervision step
    with the rows still running (their index in the batch), their answers (rows, seq), halting logits, whole
    answers right and which of them exit now; ``finish`` when every row has exited."""

    def start(self, batch: Batch, max_sup: int) -> None: ...

    def step(self, rows: torch.Tensor, sup: int, answers: torch.Tensor, halt_logit: torch.Tensor,
             exact: torch.Tensor, accuracy: torch.Tensor, exiting: torch.Tensor) -> None: ...

    def trajectories(self, final: torch.Tensor, confidence: torch.Tensor, exit_step: torch.Tensor,
                     chosen: torch.Tensor) -> None:
        """With several trajectories, before ``finish``: each example's K answers at exit (B, K, L), their
        halting logits there (B, K), their exit steps (B, K) and the one kept (B,); the steps heard before
        were the kept trajectory's."""
        ...

    def finish(self) -> None: ...


@dataclass
class EvalModel:
    """What an eval needs: the weights to run, where, and the rules a sample exits by."""

    model: Any                 # the TRM network (initial_state, forward)
    device: torch.device
    max_sup: int
    halt_in_eval: bool
    halt_logit_threshold: float
    losses: Callable[..., Losses]
    autocast: Callable[[], ContextManager[Any]] = contextlib.nullcontext
    trajectories: Trajectories = Trajectories()  # one plain trajectory: the eval as trained
    # hears each supervision step of a batch as the fraction of the batch done: progress inside a batch, where a
    # whole eval set fits one batch and sixteen steps of 64 trajectories take minutes
    on_step: Callable[[float], None] | None = None

    def step_done(self, sup: int) -> None:
        if self.on_step is not None:
            self.on_step((sup + 1) / self.max_sup)

    @classmethod
    def of_trainer(cls, tr: StepHost) -> "EvalModel":
        """The trainer's eval: its EMA weights when there are any."""
        model = tr.ema.model if tr.ema is not None else tr.model
        return cls(model, tr.device, tr.cfg.model.max_supervision_steps, tr.cfg.model.halt_in_eval,
                   tr.halt_logit_threshold, tr._losses, tr.autocast)


@dataclass
class Running:
    """The rows of a batch still running, on the device: their index in the batch, inputs, targets, hidden
    mask, puzzle ids and carried state (y, z). Rows leave as they exit."""

    rows: torch.Tensor
    inputs: torch.Tensor
    targets: torch.Tensor
    hidden: torch.Tensor | None
    ids: torch.Tensor | None
    y: torch.Tensor
    z: torch.Tensor

    @classmethod
    def of(cls, ev: EvalModel, batch: Batch, copies: int = 1) -> "Running":
        """The batch's rows, each ``copies`` times in a row (trajectories ``i*K .. i*K+K-1`` of example i)."""
        dev = ev.device

        def rows(t: torch.Tensor | None) -> torch.Tensor | None:
            if t is None:
                return None
            return t.to(dev) if copies == 1 else t.to(dev).repeat_interleave(copies, 0)

        inputs = rows(batch.inputs)
        assert inputs is not None
        targets = rows(batch.targets)
        assert targets is not None
        y, z = ev.model.initial_state(*inputs.shape)
        return cls(torch.arange(len(inputs), device=dev), inputs, targets, rows(batch.hidden),
                   rows(batch.puzzle_ids), y, z)

    def keep(self, keep: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> None:
        """Only the rows in ``keep`` go on, with the new state."""
        self.rows, self.inputs, self.targets = self.rows[keep], self.inputs[keep], self.targets[keep]
        self.y, self.z = y[:, keep], z[:, keep]
        self.hidden = self.hidden[keep] if self.hidden is not None else None
        self.ids = self.ids[keep] if self.ids is not None else None


def exiting_rows(ev: EvalModel, halt_logit: torch.Tensor, last: bool) -> torch.Tensor:
    """The rows that exit after this supervision step: all at the last; before it, only where halting is on
    in eval and the head says halt."""
    if ev.halt_in_eval:
        return halts(halt_logit, ev.halt_logit_threshold) | last
    return torch.full_like(halt_logit, last, dtype=torch.bool)


def add_figures(totals: dict[str, float], ce: torch.Tensor, accuracy: torch.Tensor, exact: torch.Tensor,
                hidden_accuracy: torch.Tensor | None, steps_run: float) -> None:
    """Scored rows' figures added to an eval's sums, in float64: the same examples give the same figures
    whatever the batch size, and whichever pass scored them."""
    totals["loss"] += ce.double().sum().item()
    totals["accuracy"] += accuracy.double().sum().item()
    totals["exact"] += exact.double().sum().item()
    if hidden_accuracy is not None:
        totals["masked_accuracy"] += hidden_accuracy.double().sum().item()
    totals["sup_steps"] += steps_run
