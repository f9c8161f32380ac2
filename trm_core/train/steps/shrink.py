"""``train.carry = "shrink"``: one batch through up to ``max_supervision_steps`` supervision steps, one
optimizer update each; samples whose halting head fires leave the batch."""

from __future__ import annotations

import contextlib
import itertools
from typing import Any, Callable

import torch

from trm_core.data.base import Batch
from trm_core.train.halting import halts
from trm_core.train.metrics import PendingMetrics
from trm_core.train.steps.step_host import StepHost, to_device


class _Active:
    """The samples of one micro-batch still being supervised."""

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor, hidden: torch.Tensor | None,
                 puzzle_ids: torch.Tensor | None, y: torch.Tensor, z: torch.Tensor) -> None:
        self.inputs, self.targets, self.hidden, self.puzzle_ids, self.y, self.z = inputs, targets, hidden, puzzle_ids, y, z

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def keep(self, mask: torch.Tensor) -> None:
        self.inputs, self.targets = self.inputs[mask], self.targets[mask]
        self.hidden = self.hidden[mask] if self.hidden is not None else None
        self.puzzle_ids = self.puzzle_ids[mask] if self.puzzle_ids is not None else None
        self.y, self.z = self.y[:, mask], self.z[:, mask]  # states are (seq, batch, dim)


class _Sums:
    """Running sums on the device (no sync per supervision step): summed across ranks once, at the end."""

    def __init__(self, device: torch.device) -> None:
        zero = torch.zeros((), device=device)
        self.loss, self.halt, self.acc, self.exact, self.sup, self.norm, self.hidden_acc = (zero.clone() for _ in range(7))
        self.pairs, self.updates = 0, 0


def split(tensor: torch.Tensor | None, size: int) -> Any:
    """Micro-batch slices of an optional per-sample tensor (endless Nones without one, for zip)."""
    return tensor.split(size) if tensor is not None else itertools.repeat(None)


def shrink_step(tr: StepHost, batch: Batch, on_progress: Callable[[int, int], None] | None) -> PendingMetrics:
    """Every supervision step of every sample, its halted samples leaving the batch (the mixer's step). Samples
    leaving change the batch's shape: the host learns which after each supervision step (a sync each)."""
    dev, max_sup = tr.device, tr.cfg.model.max_supervision_steps
    lr, emb_lr = tr._learning_rates()
    batch = to_device(batch, dev)
    actives = _micro_batches(tr, batch)
    sums = _Sums(dev)
    tr.model.train()
    for sup in range(max_sup):
        active_total = tr.group.total(sum(len(a) for a in actives), dev)  # on every rank
        if active_total == 0:
            break
        _supervise(tr, actives, sup, active_total, sums)
        norm = tr._update(emb_lr)
        tr.finite.see(tr.step + 1, sums.loss, norm, supervision_step=sup + 1)
        sums.norm += norm
        sums.updates += 1
        if on_progress is not None:
            on_progress(sup + 1, max_sup)
    batch_size = len(batch.inputs) * tr.group.world_size  # the global batch (every rank holds an equal share)
    return _metrics(tr, sums, batch_size, batch.hidden is not None, lr)


def _micro_batches(tr: StepHost, batch: Batch) -> list[_Active]:
    mb, seq_len = tr.cfg.micro_batch, batch.inputs.shape[1]
    actives = []
    for mb_in, mb_tg, mb_hidden, mb_ids in zip(batch.inputs.split(mb), batch.targets.split(mb),
                                               split(batch.hidden, mb), split(batch.puzzle_ids, mb)):
        y, z = tr.model.initial_state(len(mb_in), seq_len)
        actives.append(_Active(mb_in, mb_tg, mb_hidden, mb_ids, y, z))
    return actives


def _supervise(tr: StepHost, actives: list[_Active], sup: int, active_total: int, sums: _Sums) -> None:
    """One supervision step of every micro-batch, gradients accumulated for one update; halted samples leave."""
    last = sup == tr.cfg.model.max_supervision_steps - 1
    w_halt = tr.cfg.model.halt_loss_weight
    # a rank whose samples have all halted still joins the update (DDP syncs once per update), with none
    live = [a for a in actives if len(a)] or actives[:1]
    for k, act in enumerate(live):
        syncs = k == len(live) - 1
        with tr.group.no_sync(tr.wrapped, skip=not syncs):
            with tr.autocast():
                out = tr.forward(act.inputs, act.y, act.z, act.puzzle_ids)
            ce, halt, accuracy, exact, hidden_acc = tr._losses(out.logits, act.targets, out.halt_logit, act.hidden)
            weighed = ce if tr.sup_weights is None else ce * tr.sup_weights[sup]
            with tr.group.waiting() if syncs else contextlib.nullcontext():
                ((weighed + w_halt * halt).sum() / active_total).backward()
        sums.loss += ce.detach().sum()
        sums.halt += halt.detach().sum()
        sums.pairs += len(act)
        halting = halts(out.halt_logit.detach(), tr.halt_logit_threshold)
        exiting = halting | last
        sums.acc += (accuracy * exiting).sum()  # products, not a mask's selection: no wait for the device
        sums.exact += (exact & exiting).sum()
        if hidden_acc is not None:
            sums.hidden_acc += (hidden_acc * exiting).sum()
        sums.sup += exiting.sum() * (sup + 1)
        act.y, act.z = out.y, out.z
        if halting.any():  # the one wait of a supervision step: which samples leave
            act.keep(~halting)


def _metrics(tr: StepHost, s: _Sums, batch_size: int, has_hidden: bool, lr: float) -> PendingMetrics:
    dev = tr.device
    summed = tr.group.sum(torch.stack([s.loss, s.halt, s.acc, s.exact, s.sup, s.hidden_acc,
                                       torch.full((), float(s.pairs), device=dev)]))
    loss_sum, halt_sum, acc_sum, exact_sum, sup_sum, hidden_acc_sum, all_pairs = summed.unbind()
    hidden_mean = hidden_acc_sum / batch_size if has_hidden else torch.full_like(loss_sum, float("nan"))
    tr.finite.see(tr.step + 1, loss_sum, s.norm)
    tr.step += 1
    values = torch.stack([loss_sum / all_pairs, halt_sum / all_pairs, acc_sum / batch_size, exact_sum / batch_size,
                          sup_sum / batch_size, s.norm / s.updates, hidden_mean, torch.zeros_like(loss_sum)])
    return PendingMetrics(values, lr=lr, updates=s.updates, device=dev, counts_completed=False)
