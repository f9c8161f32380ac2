"""Eval: every held-out sample through the supervision steps, scored at its exit."""

from __future__ import annotations

from typing import Callable

import torch

from trm_core.data.base import Batch
from trm_core.train.steps.host import StepHost

Observer = Callable[[Batch, torch.Tensor, torch.Tensor], None]
FIGURES = ("loss", "accuracy", "exact", "sup_steps", "masked_accuracy")


@torch.inference_mode()
def evaluate(tr: StepHost, batches: list[Batch], observe: Observer | None = None,
             on_progress: Callable[[int, int], None] | None = None) -> dict[str, float]:
    """Loss and accuracy at each sample's exit, using the EMA weights when there are any. Samples run every
    supervision step, as the paper evaluates, unless ``model.halt_in_eval`` lets them halt as in training.
    ``observe(batch, predictions, confidence)`` hears each batch's predicted tokens and halting probability
    at each sample's exit (ARC votes on them); ``on_progress(k, K)`` hears each finished batch."""
    model = tr.ema.model if tr.ema is not None else tr.model
    model.eval()
    totals = dict.fromkeys(FIGURES, 0.0)
    any_hidden, count = False, 0
    for done, batch in enumerate(batches, 1):
        any_hidden = any_hidden or batch.hidden is not None
        count += _evaluate_batch(tr, model, batch, totals, observe)
        if on_progress is not None:
            on_progress(done, len(batches))
    if tr.group.distributed:  # each rank evaluated its share of the batches
        summed = tr.group.sum(torch.tensor([*totals.values(), count, any_hidden], dtype=torch.float64,
                                           device=tr.device)).tolist()
        totals = dict(zip(totals, summed[:len(totals)]))
        count, any_hidden = int(summed[len(totals)]), bool(summed[-1])
    result = {k: v / max(1, count) for k, v in totals.items()} | {"samples": count}
    if not any_hidden:
        result["masked_accuracy"] = None
    return result


def _evaluate_batch(tr: StepHost, model: torch.nn.Module, batch: Batch, totals: dict[str, float],
                    observe: Observer | None) -> int:
    """One batch, its figures added to ``totals``; the number of samples scored."""
    dev, max_sup = tr.device, tr.cfg.model.max_supervision_steps
    inputs, targets = batch.inputs.to(dev), batch.targets.to(dev)
    hidden = batch.hidden.to(dev) if batch.hidden is not None else None
    ids = batch.puzzle_ids.to(dev) if batch.puzzle_ids is not None else None
    y, z = model.initial_state(*inputs.shape)
    rows = torch.arange(len(inputs), device=dev)  # each active sample's row in the batch
    predictions = torch.empty_like(inputs) if observe is not None else None
    confidence = torch.empty(len(inputs), device=dev) if observe is not None else None
    count = 0
    for sup in range(max_sup):
        with tr.autocast():
            out = model(inputs, y, z, ids)
        ce, _, accuracy, exact, hidden_acc = tr._losses(out.logits, targets, out.halt_logit, hidden)
        last = sup == max_sup - 1
        exiting = (out.halt_logit >= tr.halt_logit_threshold) | last if tr.cfg.model.halt_in_eval else \
            torch.full_like(out.halt_logit, last, dtype=torch.bool)
        totals["loss"] += ce[exiting].sum().item()
        totals["accuracy"] += accuracy[exiting].sum().item()
        totals["exact"] += exact[exiting].sum().item()
        if hidden_acc is not None:
            totals["masked_accuracy"] += hidden_acc[exiting].sum().item()
        totals["sup_steps"] += exiting.sum().item() * (sup + 1)
        count += int(exiting.sum())
        if predictions is not None and confidence is not None:
            predictions[rows[exiting]] = out.logits.argmax(-1).t()[exiting]
            confidence[rows[exiting]] = torch.sigmoid(out.halt_logit.float()[exiting])
            rows = rows[~exiting]
        keep = ~exiting
        inputs, targets, y, z = inputs[keep], targets[keep], out.y[:, keep], out.z[:, keep]
        hidden = hidden[keep] if hidden is not None else None
        ids = ids[keep] if ids is not None else None
        if not len(inputs):
            break
    if observe is not None and predictions is not None and confidence is not None:
        observe(batch, predictions.cpu(), confidence.cpu())
    return count
