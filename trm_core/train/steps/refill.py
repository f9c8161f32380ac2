"""``train.carry = "refill"`` (the reference's): one supervision step and one update for a fixed batch of
slots carried across steps (``carry.Carry``); a slot whose sample halts takes a new one."""

from __future__ import annotations

import contextlib
import math

import torch

from trm_core.data.base import Batch, mix_seed
from trm_core.train.carry import Carry
from trm_core.train.metrics import NonFiniteLoss, StepMetrics, peak_memory_mb
from trm_core.train.steps.shrink import split
from trm_core.train.steps.host import StepHost


def refill_step(tr: StepHost, batch: Batch) -> StepMetrics:
    """One supervision step, one update, for every slot of the carry (the reference's training step)."""
    dev = tr.device
    lr, emb_lr = tr._learning_rates()
    batch = Batch(*(None if t is None else t.to(dev, non_blocking=True) for t in batch))
    slots, seq_len = batch.inputs.shape  # this rank's slots
    all_slots = slots * tr.group.world_size
    y0, z0 = tr.model.initial_state(slots, seq_len)
    if tr.carry is None:
        tr.carry = Carry.empty(batch, y0.detach(), z0.detach())
    carry = tr.carry
    y, z = carry.admit(batch, y0, z0)
    tr.model.train()
    halt_logits, per_slot = _forward_slots(tr, carry, y, z, all_slots)
    norm = tr._update(emb_lr, "")
    carry.steps += 1
    carry.halted = halted = _halted(tr, carry.steps, halt_logits, all_slots)
    sums = tr.group.sum(torch.cat([per_slot.sum(1), torch.stack([halted.sum().float(),
                                                                 carry.steps[halted].sum().float()])]))
    loss, halt_loss, accuracy, exact, hidden_acc = (sums[:5] / all_slots).tolist()
    done, steps_of_done = int(sums[5]), float(sums[6])
    if not math.isfinite(loss):
        raise NonFiniteLoss(f"non-finite loss ({loss}) at step {tr.step + 1}")
    tr.step += 1
    return StepMetrics(loss, halt_loss, accuracy, exact, steps_of_done / done if done else None, float(norm), lr=lr,
                       updates=1, step_s=0.0, peak_mem_mb=peak_memory_mb(dev),
                       masked_accuracy=hidden_acc if carry.hidden is not None else None, completed=done)


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
            with tr.group.waiting() if syncs else contextlib.nullcontext():
                ((ce + w_halt * halt).sum() / all_slots).backward()
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
    halted = (steps >= cfg.model.max_supervision_steps) | (halt_logits > tr.halt_logit_threshold)  # > 0: the reference's
    if cfg.model.halt_exploration > 0:
        gen = torch.Generator().manual_seed(mix_seed(cfg.train.seed, tr.step, 101))
        mine = tr.group.share(all_slots)
        explore = torch.rand(all_slots, generator=gen)[mine] < cfg.model.halt_exploration
        least = torch.randint(2, cfg.model.max_supervision_steps + 1, (all_slots,), generator=gen)[mine]
        halted &= (steps >= torch.where(explore, least, 0).to(steps.device))
    return halted

