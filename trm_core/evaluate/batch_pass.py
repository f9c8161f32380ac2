"""The per-batch pass of every eval: each held-out sample through the supervision steps, scored at its exit.

One code path for the in-training eval (``evaluate.in_training``), ``trm-tui eval`` on a checkpoint
(``evaluate.session``), an ensemble and ``solve``: each hands ``evaluate_batches`` an ``EvalModel``, so the
same checkpoint, split and batches give the same numbers bit for bit. A ``Trace`` hears every supervision step of every batch (the
answers after each step, the halting logits) without changing what is computed.
"""

from __future__ import annotations

import dataclasses

from typing import Any, Callable

import torch

from trm_core.data.base import Batch
from trm_core.evaluate.eval_model import EvalModel, Observer, Running, Trace, add_figures, exiting_rows
from trm_core.evaluate.test_time.trajectories import LatentNoise
from trm_core.evaluate.test_time.trajectory_pass import FORWARD_STEPS, evaluate_trajectories
from trm_core.train.sample_loss import Losses

FIGURES = ("loss", "accuracy", "exact", "sup_steps", "masked_accuracy")


def figures(totals: dict[str, float], count: int, any_hidden: bool) -> dict[str, Any]:
    """The eval's means over the samples scored (an ``eval`` event's fields)."""
    result: dict[str, Any] = {k: v / max(1, count) for k, v in totals.items()} | {"samples": count}
    if not any_hidden:
        result["masked_accuracy"] = None
    return result


@torch.inference_mode()
def evaluate_batches(ev: EvalModel, batches: list[Batch] | Any, observe: Observer | None = None,
                     on_progress: Callable[[float, int], None] | None = None, trace: Trace | None = None,
                     total: int | None = None, within_batch: bool = False) -> tuple[dict[str, float], int, bool]:
    """Sums of the figures over ``batches`` (any iterable; ``total`` its length when it has none), the
    samples scored, and whether any batch had hidden positions. With several trajectories (``ev.trajectories``)
    ``observe`` hears every trajectory of every example, each a voter (the batch's rows repeated K times).
    ``within_batch``: ``on_progress`` also hears each supervision step, as a fraction of a batch done."""
    ev.model.eval()
    several = ev.trajectories.active
    totals = dict.fromkeys(FIGURES + ((FORWARD_STEPS,) if several else ()), 0.0)
    noise = LatentNoise(ev.trajectories.noise, ev.trajectories.seed, ev.device) if ev.trajectories.noise else None
    any_hidden, count = False, 0
    expected = total if total is not None else len(batches)
    for done, batch in enumerate(batches, 1):
        any_hidden = any_hidden or batch.hidden is not None
        batch_ev = ev if on_progress is None or not within_batch else dataclasses.replace(
            ev, on_step=lambda part, before=done - 1: on_progress(before + part, expected))
        if several:
            count += evaluate_trajectories(batch_ev, batch, totals, observe, trace, noise)
        else:
            count += _evaluate_batch(batch_ev, batch, totals, observe, trace)
        if on_progress is not None:
            on_progress(done, expected)
    return totals, count, any_hidden


def _add_exits(totals: dict[str, float], losses: Losses, exiting: torch.Tensor, sup: int) -> int:
    """The exiting rows' figures added to ``totals``; how many exited."""
    ce, _, accuracy, exact, hidden_acc = losses
    exited = int(exiting.sum())
    add_figures(totals, ce[exiting], accuracy[exiting], exact[exiting],
                None if hidden_acc is None else hidden_acc[exiting], exited * (sup + 1))
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
        ev.step_done(sup)
        if not len(run.inputs):
            break
    if trace is not None:
        trace.finish()
    if observe is not None and predictions is not None and confidence is not None:
        observe(batch, predictions.cpu(), confidence.cpu())
    return count
