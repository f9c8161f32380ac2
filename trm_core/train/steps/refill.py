"""``train.carry = "refill"`` (the reference's): one supervision step and one update for a fixed batch of
slots carried across steps (``carry.Carry``); a slot whose sample halts takes a new one."""

from __future__ import annotations

import contextlib

import torch

from trm_core.data.base import Batch, mix_seed
from trm_core.train.carry import Carry
from trm_core.train.halting import halts
from trm_core.train.metrics import PendingMetrics
from trm_core.train.steps.shrink import split
from trm_core.train.steps.step_host import StepHost, to_device


def refill_step(tr: StepHost, batch: Batch) -> PendingMetrics:
    """One supervision step, one update, for every slot of the carry (the reference's training step). Nothing in
    it waits for the device: halting, refilling and the figures stay there (``PendingMetrics``)."""
    dev = tr.device
    lr, emb_lr = tr._learning_rates()
    batch = to_device(batch, dev)
    slots, seq_len = batch.inputs.shape  # this rank's slots
    all_slots = slots * tr.group.world_size
    y0, z0 = tr.model.initial_state(slots, seq_len)
    if tr.carry is None:
        tr.carry = Carry.empty(batch, y0.detach(), z0.detach())
    carry = tr.carry
    y, z = carry.admit(batch, y0, z0)
    tr.model.train()
    halt_logits, per_slot = _forward_slots(tr, carry, y, z, all_slots)
    norm = tr._update(emb_lr)
    carry.steps += 1
    carry.halted = halted = _halted(tr, carry.steps, halt_logits, all_slots)
    sums = tr.group.sum(torch.cat([per_slot.sum(1), torch.stack([halted.sum().float(),
                                                                 (carry.steps * halted).sum().float()])]))
    means, done, steps_of_done = sums[:5] / all_slots, sums[5], sums[6]
    tr.finite.see(tr.step + 1, means[0], norm)
    no_value = torch.full_like(done, float("nan"))
    sup_steps = torch.where(done > 0, steps_of_done / done.clamp_min(1), no_value)
    hidden_acc = means[4] if carry.hidden is not None else no_value
    tr.step += 1
    return PendingMetrics(torch.stack([*means[:4], sup_steps, norm.float(), hidden_acc, done]), lr=lr, updates=1,
                          device=dev, counts_completed=True)


def _forward_slots(tr: StepHost, carry: Carry, y: torch.Tensor, z: torch.Tensor,
                   all_slots: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The supervision step of every slot, micro-batch by micro-batch, gradients accumulated; leaves the new
    (y, z) in the carry. Returns the halting logits (slots,) and the per-slot figures (5, slots): ce, halt,
    accuracy, exact, hidden accuracy."""
    mb, w_halt = tr.cfg.micro_batch, tr.cfg.model.halt_loss_weight
    micro_batches = -(-len(carry.inputs) // mb)
    ys, zs, halt_logits, stats = [], [], [], []
    for k, (mb_in, mb_tg, mb_hidden, mb_ids) in enumerate(zip(
            carry.inputs.split(mb), carry.targets.split(mb), split(carry.hidden, mb), split(carry.puzzle_ids, mb))):
        rows = slice(k * mb, k * mb + len(mb_in))
        syncs = k == micro_batches - 1
        with tr.group.no_sync(tr.wrapped, skip=not syncs):
            with tr.autocast():
                out = tr.forward(mb_in, y[:, rows], z[:, rows], mb_ids)
            ce, halt, accuracy, exact, hidden_acc = tr._losses(out.logits, mb_tg, out.halt_logit, mb_hidden)
            # each slot's answer loss weighed by its supervision step (0-based: the steps it has done)
            weighed = ce if tr.sup_weights is None else ce * tr.sup_weights[
                carry.steps[rows].clamp_max(len(tr.sup_weights) - 1)]
            with tr.group.waiting() if syncs else contextlib.nullcontext():
                ((weighed + w_halt * halt).sum() / all_slots).backward()
        ys.append(out.y)
        zs.append(out.z)
        halt_logits.append(out.halt_logit.detach().float())
        stats.append(torch.stack([ce.detach(), halt.detach(), accuracy, exact.float(),
                                  hidden_acc if hidden_acc is not None else torch.zeros_like(accuracy)]))
    carry.y, carry.z = torch.cat(ys, dim=1), torch.cat(zs, dim=1)
    return torch.cat(halt_logits), torch.cat(stats, dim=1)


def _halted(tr: StepHost, steps: torch.Tensor, halt_logits: torch.Tensor, all_slots: int) -> torch.Tensor:
    """The slots whose sample is done: its halting head fired or it used every supervision step; with
    ``model.halt_exploration`` some must first run a random number of steps (one draw for the global batch,
    the same at any world size)."""
    cfg = tr.cfg
    halted = (steps >= cfg.model.max_supervision_steps) | halts(halt_logits, tr.halt_logit_threshold)
    if cfg.model.halt_exploration > 0 and cfg.model.max_supervision_steps > 1:  # one step leaves nothing to explore
        gen = torch.Generator().manual_seed(mix_seed(cfg.train.seed, tr.step, 101))
        mine = tr.group.share(all_slots)
        explore = torch.rand(all_slots, generator=gen)[mine] < cfg.model.halt_exploration
        least = torch.randint(2, cfg.model.max_supervision_steps + 1, (all_slots,), generator=gen)[mine]
        least = torch.where(explore, least, 0)
        if steps.device.type == "cuda":  # a pinned copy does not wait for the device
            least = least.pin_memory().to(steps.device, non_blocking=True)
        halted &= steps >= least
    return halted

