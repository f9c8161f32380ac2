"""The per-batch pass of every eval: each held-out sample through the supervision steps, scored at its exit.

One code path for the in-training eval (``evaluate.in_training``), ``trm-tui eval`` on a checkpoint
(``evaluate.session``), an ensemble and ``solve``: each hands ``evaluate_batches`` an ``EvalModel``, so the
same checkpoint, split and batches give the same numbers bit for bit. A ``Trace`` hears every supervision step of every batch (the
answers after each step, the halting logits) without changing what is computed.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Protocol

import torch

from trm_core.data.base import Batch
from trm_core.evaluate.trajectories import LatentNoise, Trajectories
from trm_core.train.halting import halts
from trm_core.train.sample_loss import Losses
from trm_core.train.steps.step_host import StepHost

Observer = Callable[[Batch, torch.Tensor, torch.Tensor], None]
FIGURES = ("loss", "accuracy", "exact", "sup_steps", "masked_accuracy")
FORWARD_STEPS = "forward_steps"  # with trajectories: supervision steps run per example, all its trajectories


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

    @classmethod
    def of_trainer(cls, tr: StepHost) -> "EvalModel":
        """The trainer's eval: its EMA weights when there are any."""
        model = tr.ema.model if tr.ema is not None else tr.model
        return cls(model, tr.device, tr.cfg.model.max_supervision_steps, tr.cfg.model.halt_in_eval,
                   tr.halt_logit_threshold, tr._losses, tr.autocast)


def figures(totals: dict[str, float], count: int, any_hidden: bool) -> dict[str, Any]:
    """The eval's means over the samples scored (an ``eval`` event's fields)."""
    result: dict[str, Any] = {k: v / max(1, count) for k, v in totals.items()} | {"samples": count}
    if not any_hidden:
        result["masked_accuracy"] = None
    return result


@torch.inference_mode()
def evaluate_batches(ev: EvalModel, batches: list[Batch] | Any, observe: Observer | None = None,
                     on_progress: Callable[[int, int], None] | None = None, trace: Trace | None = None,
                     total: int | None = None) -> tuple[dict[str, float], int, bool]:
    """Sums of the figures over ``batches`` (any iterable; ``total`` its length when it has none), the
    samples scored, and whether any batch had hidden positions. With several trajectories (``ev.trajectories``)
    ``observe`` hears every trajectory of every example, each a voter (the batch's rows repeated K times)."""
    from trm_core.evaluate.trajectory_pass import evaluate_trajectories  # it builds on this module's pieces

    ev.model.eval()
    several = ev.trajectories.active
    totals = dict.fromkeys(FIGURES + ((FORWARD_STEPS,) if several else ()), 0.0)
    noise = LatentNoise(ev.trajectories.noise, ev.trajectories.seed, ev.device) if ev.trajectories.noise else None
    any_hidden, count = False, 0
    expected = total if total is not None else len(batches)
    for done, batch in enumerate(batches, 1):
        any_hidden = any_hidden or batch.hidden is not None
        if several:
            count += evaluate_trajectories(ev, batch, totals, observe, trace, noise)
        else:
            count += _evaluate_batch(ev, batch, totals, observe, trace)
        if on_progress is not None:
            on_progress(done, expected)
    return totals, count, any_hidden


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


def _add_exits(totals: dict[str, float], losses: Losses, exiting: torch.Tensor, sup: int) -> int:
    """The exiting rows' figures added to ``totals`` (summed in float64: the same examples give the same
    figures whatever the batch size); how many exited."""
    ce, _, accuracy, exact, hidden_acc = losses
    totals["loss"] += ce[exiting].double().sum().item()
    totals["accuracy"] += accuracy[exiting].double().sum().item()
    totals["exact"] += exact[exiting].sum().item()
    if hidden_acc is not None:
        totals["masked_accuracy"] += hidden_acc[exiting].double().sum().item()
    exited = int(exiting.sum())
    totals["sup_steps"] += exited * (sup + 1)
    return exited


def _evaluate_batch(ev: EvalModel, batch: Batch, totals: dict[str, float], observe: Observer | None,
                    trace: Trace | None) -> int:
    """One batch through the supervision steps, each row scored at its exit and its figures added to
    ``totals``; the number of samples scored."""
    run = Running.of(ev, batch)
    size = len(run.inputs)
    predictions = torch.empty_like(run.inputs) if observe is not None else None
    confidence = torch.empty(size, device=ev.device) if observe is not None else None
    if trace is not None:
        trace.start(batch, ev.max_sup)
    count = 0
    for sup in range(ev.max_sup):
        with ev.autocast():
            out = ev.model(run.inputs, run.y, run.z, run.ids)
        losses = ev.losses(out.logits, run.targets, out.halt_logit, run.hidden)
        exiting = exiting_rows(ev, out.halt_logit, sup == ev.max_sup - 1)
        count += _add_exits(totals, losses, exiting, sup)
        if trace is not None or observe is not None:
            answers = out.logits.argmax(-1).t()
            if trace is not None:
                _, _, accuracy, exact, _ = losses
                trace.step(run.rows, sup, answers, out.halt_logit, exact, accuracy, exiting)
            if predictions is not None and confidence is not None:
                predictions[run.rows[exiting]] = answers[exiting]
                confidence[run.rows[exiting]] = torch.sigmoid(out.halt_logit.float()[exiting])
        run.keep(~exiting, out.y, out.z)
        if not len(run.inputs):
            break
    if trace is not None:
        trace.finish()
    if observe is not None and predictions is not None and confidence is not None:
        observe(batch, predictions.cpu(), confidence.cpu())
    return count
