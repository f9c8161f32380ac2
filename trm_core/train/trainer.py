"""One training step of TRM with deep supervision, and the state that makes resume exact.

With ``train.carry = "shrink"`` a step is one batch through up to ``max_supervision_steps`` supervision steps,
one optimizer update each; samples whose halting head fires leave the batch. With ``"refill"`` (the
reference's) a step is one supervision step, one update, for a fixed batch of slots carried across steps
(``carry.Carry``); a slot whose sample halts takes a new one.

The batch may be split into micro-batches: every micro-batch runs the same supervision step before the
update, and losses are divided by the number of samples active in the whole batch, so accumulation gives
the same update as the full batch. With several ranks (``distributed.group``) each trains its share of the
global batch; losses are divided by the samples active on all ranks together and DDP sums the gradients,
so the update is the one a single process would make on the global batch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import random
import resource
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F

from trm_core.config import Config
from trm_core.data.base import IGNORE, Batch, mix_seed
from trm_core.distributed.group import Group
from trm_core.train.carry import Carry
from trm_core.train.ema import EMA
from trm_core.train.losses import LOSSES
from trm_core.train.model import build_model, count_parameters
from trm_core.train.schedule import learning_rate


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


def _split(tensor: torch.Tensor | None, size: int) -> Any:
    """Micro-batch slices of an optional per-sample tensor (endless Nones without one, for zip)."""
    return tensor.split(size) if tensor is not None else itertools.repeat(None)


class Trainer:
    def __init__(self, cfg: Config, vocab_size: int, total_steps: int, num_puzzle_ids: int = 1,
                 group: Group | None = None) -> None:
        self.cfg = cfg
        self.total_steps = total_steps
        self.group = group or Group()
        self.device = self.group.device(cfg.train.device)
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        torch.manual_seed(cfg.train.seed)
        random.seed(cfg.train.seed)
        self.model = build_model(cfg.model, vocab_size, num_puzzle_ids).to(self.device)
        self.num_parameters = count_parameters(self.model)
        self.ema = EMA(self.model, cfg.train.ema_decay) if cfg.train.ema_decay > 0 else None
        t = cfg.train
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=t.learning_rate, weight_decay=t.weight_decay,
                                           betas=(t.adam_beta1, t.adam_beta2), foreach=True)
        self.wrapped = self.group.wrap(self.model)  # DDP across ranks, else the model itself
        self.forward = torch.compile(self.wrapped) if t.compile else self.wrapped
        use_bf16 = self.device.type == "cuda" and t.bf16
        self.autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if use_bf16 else contextlib.nullcontext
        self.loss_on_hidden = cfg.data.loss_on == "masked"
        thr = cfg.model.halt_threshold
        self.halt_logit_threshold = math.inf if thr >= 1.0 else (-math.inf if thr <= 0 else math.log(thr / (1 - thr)))
        self.token_loss = LOSSES[cfg.train.loss]
        self.carry: Carry | None = None  # refill: this rank's slots, from the first step on
        self.step = 0  # completed steps
        self.restored_world_size: int | None = None  # the world size of the checkpoint loaded, if any

    # -- training -------------------------------------------------------------------------------------

    def _losses(self, logits: torch.Tensor, targets: torch.Tensor, halt_logit: torch.Tensor,
                hidden: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Per sample: cross-entropy, halting BCE against "right wherever the loss looks", token accuracy over
        every position with a target, that exactness, and the accuracy on the ``hidden`` positions (the code
        task's masked bytes; None without them). Targets equal to IGNORE count nowhere. The loss looks at the
        hidden positions only when ``data.loss_on = "masked"`` and there are some, else at every target."""
        logits = logits.float()
        seq_first = targets.t()
        supervised = seq_first != IGNORE
        right = (logits.argmax(-1) == seq_first) & supervised
        accuracy = right.sum(0) / supervised.sum(0).clamp_min(1)
        hidden_acc = None
        scored = supervised
        if hidden is not None:
            in_view = hidden.t() & supervised
            hidden_acc = (right & in_view).sum(0) / in_view.sum(0).clamp_min(1)
            if self.loss_on_hidden:
                scored = in_view
        ce = self.token_loss(logits, seq_first)
        ce = ((ce * scored).sum(0) / scored.sum(0).clamp_min(1)).float()
        exact = (right | ~scored).all(0)
        halt = F.binary_cross_entropy_with_logits(halt_logit.float(), exact.float(), reduction="none")
        return ce, halt, accuracy, exact, hidden_acc

    def _learning_rates(self) -> tuple[float, float]:
        """This step's learning rate, set on the optimizer, and the puzzle embeddings' on the same schedule."""
        t = self.cfg.train

        def at(peak: float) -> float:
            return learning_rate(self.step, peak=peak, warmup_steps=t.warmup_steps, total_steps=self.total_steps,
                                 min_ratio=t.min_lr_ratio)
        lr = at(t.learning_rate)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr, at(t.puzzle_emb_lr)

    def _update(self, emb_lr: float, where: str) -> torch.Tensor:
        """Clip, step the optimizer (and the puzzle embeddings, and the EMA); the gradient norm before clipping."""
        clip = self.cfg.train.grad_clip if self.cfg.train.grad_clip > 0 else math.inf
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        emb = getattr(self.model, "puzzle_emb", None)
        if not torch.isfinite(norm):
            self.optimizer.zero_grad(set_to_none=True)
            if emb is not None:
                emb.discard()
            raise NonFiniteLoss(f"non-finite gradient norm ({norm.item()}) at step {self.step + 1}{where}")
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if emb is not None:
            emb.step(emb_lr, self.cfg.train.puzzle_emb_weight_decay,
                     gather=self.group.cat_ragged if self.group.distributed else None)
        if self.ema is not None:
            self.ema.update()
        return norm.detach()

    def train_step(self, batch: Batch, on_progress: Callable[[int, int], None] | None = None) -> StepMetrics:
        """One step. ``on_progress(k, K)`` hears each finished supervision step: a step of the seed's size
        takes minutes on a CPU, and the front ends show how far into it the worker is. ``step_s`` is the whole
        call, the release of the step's tensors and graph included (about 1 ms a step on the tiny preset,
        which a timer inside the step would leave to look like the worker's own overhead)."""
        started = time.perf_counter()
        if self.cfg.train.carry == "refill":
            metrics = self._refill_step(batch)
        else:
            metrics = self._shrink_step(batch, on_progress)
        return dataclasses.replace(metrics, step_s=time.perf_counter() - started)

    def _shrink_step(self, batch: Batch, on_progress: Callable[[int, int], None] | None) -> StepMetrics:
        """Every supervision step of every sample, its halted samples leaving the batch (the mixer's step)."""
        cfg, dev = self.cfg, self.device
        lr, emb_lr = self._learning_rates()
        inputs, targets = batch.inputs.to(dev, non_blocking=True), batch.targets.to(dev, non_blocking=True)
        seq_len = inputs.shape[1]
        batch_size = len(inputs) * self.group.world_size  # the global batch (every rank holds an equal share)
        hidden = batch.hidden.to(dev, non_blocking=True) if batch.hidden is not None else None
        ids = batch.puzzle_ids.to(dev, non_blocking=True) if batch.puzzle_ids is not None else None
        actives = []
        for mb_in, mb_tg, mb_hidden, mb_ids in zip(inputs.split(cfg.micro_batch), targets.split(cfg.micro_batch),
                                                   _split(hidden, cfg.micro_batch), _split(ids, cfg.micro_batch)):
            y, z = self.model.initial_state(len(mb_in), seq_len)
            actives.append(_Active(mb_in, mb_tg, mb_hidden, mb_ids, y, z))
        zero = torch.zeros((), device=dev)
        loss_sum, halt_sum, acc_sum, exact_sum, sup_sum, norm_sum, hidden_acc_sum = (zero.clone() for _ in range(7))
        pairs, updates = 0, 0
        max_sup = cfg.model.max_supervision_steps
        w_halt = cfg.model.halt_loss_weight
        self.model.train()
        for sup in range(max_sup):
            active_total = self.group.total(sum(len(a) for a in actives), dev)  # on every rank
            if active_total == 0:
                break
            last = sup == max_sup - 1
            # a rank whose samples have all halted still joins the update (DDP syncs once per update), with none
            live = [a for a in actives if len(a)] or actives[:1]
            for k, act in enumerate(live):
                syncs = k == len(live) - 1
                with self.group.no_sync(self.wrapped, skip=not syncs):
                    with self.autocast():
                        out = self.forward(act.inputs, act.y, act.z, act.puzzle_ids)
                    ce, halt, accuracy, exact, hidden_acc = self._losses(out.logits, act.targets, out.halt_logit,
                                                                         act.hidden)
                    with self.group.waiting() if syncs else contextlib.nullcontext():
                        ((ce + w_halt * halt).sum() / active_total).backward()
                loss_sum += ce.detach().sum()
                halt_sum += halt.detach().sum()
                pairs += len(act)
                halting = out.halt_logit.detach() >= self.halt_logit_threshold
                exiting = halting | last
                acc_sum += accuracy[exiting].sum()
                exact_sum += exact[exiting].sum()
                if hidden_acc is not None:
                    hidden_acc_sum += hidden_acc[exiting].sum()
                sup_sum += exiting.sum() * (sup + 1)
                act.y, act.z = out.y, out.z
                if halting.any():
                    act.keep(~halting)
            norm_sum += self._update(emb_lr, f", supervision step {sup + 1}")
            updates += 1
            if on_progress is not None:
                on_progress(sup + 1, max_sup)
        sums = self.group.sum(torch.stack([loss_sum, halt_sum, acc_sum, exact_sum, sup_sum, hidden_acc_sum,
                                           torch.tensor(float(pairs), device=dev)]))
        loss_sum, halt_sum, acc_sum, exact_sum, sup_sum, hidden_acc_sum, all_pairs = sums.unbind()
        stats = torch.stack([loss_sum / all_pairs, halt_sum / all_pairs, acc_sum / batch_size, exact_sum / batch_size,
                             sup_sum / batch_size, norm_sum / updates, hidden_acc_sum / batch_size]).tolist()
        hidden_mean = stats.pop()
        masked_accuracy = hidden_mean if hidden is not None else None
        if not math.isfinite(stats[0]):
            raise NonFiniteLoss(f"non-finite loss ({stats[0]}) at step {self.step + 1}")
        self.step += 1
        return StepMetrics(*stats, lr=lr, updates=updates, step_s=0.0, peak_mem_mb=peak_memory_mb(dev),
                           masked_accuracy=masked_accuracy)

    def _refill_step(self, batch: Batch) -> StepMetrics:
        """One supervision step, one update, for every slot of the carry (the reference's training step)."""
        cfg, dev = self.cfg, self.device
        lr, emb_lr = self._learning_rates()
        batch = Batch(*(None if t is None else t.to(dev, non_blocking=True) for t in batch))
        slots, seq_len = batch.inputs.shape  # this rank's slots
        all_slots = slots * self.group.world_size
        y0, z0 = self.model.initial_state(slots, seq_len)
        if self.carry is None:
            self.carry = Carry.empty(batch, y0.detach(), z0.detach())
        carry = self.carry
        y, z = carry.admit(batch, y0, z0)
        self.model.train()
        ys, zs, halt_logits, stats = [], [], [], []
        mb = cfg.micro_batch
        w_halt = cfg.model.halt_loss_weight
        micro_batches = -(-slots // mb)
        for k, (mb_in, mb_tg, mb_hidden, mb_ids) in enumerate(zip(
                carry.inputs.split(mb), carry.targets.split(mb), _split(carry.hidden, mb), _split(carry.puzzle_ids, mb))):
            rows = slice(k * mb, k * mb + len(mb_in))
            syncs = k == micro_batches - 1
            with self.group.no_sync(self.wrapped, skip=not syncs):
                with self.autocast():
                    out = self.forward(mb_in, y[:, rows], z[:, rows], mb_ids)
                ce, halt, accuracy, exact, hidden_acc = self._losses(out.logits, mb_tg, out.halt_logit, mb_hidden)
                with self.group.waiting() if syncs else contextlib.nullcontext():
                    ((ce + w_halt * halt).sum() / all_slots).backward()
            ys.append(out.y)
            zs.append(out.z)
            halt_logits.append(out.halt_logit.detach().float())
            stats.append(torch.stack([ce.detach(), halt.detach(), accuracy, exact.float(),
                                      hidden_acc if hidden_acc is not None else torch.zeros_like(accuracy)]))
        norm = self._update(emb_lr, "")
        carry.y, carry.z = torch.cat(ys, dim=1), torch.cat(zs, dim=1)
        carry.steps += 1
        halted = (carry.steps >= cfg.model.max_supervision_steps) | (torch.cat(halt_logits) >= self.halt_logit_threshold)
        if cfg.model.halt_exploration > 0:  # some samples must run a random number of steps first
            gen = torch.Generator().manual_seed(mix_seed(cfg.train.seed, self.step, 101))
            mine = self.group.share(all_slots)  # one draw for the global batch: the same at any world size
            explore = torch.rand(all_slots, generator=gen)[mine] < cfg.model.halt_exploration
            least = torch.randint(2, cfg.model.max_supervision_steps + 1, (all_slots,), generator=gen)[mine]
            halted &= (carry.steps >= torch.where(explore, least, 0).to(dev))
        carry.halted = halted
        per_slot = torch.cat(stats, dim=1)  # (5, slots): ce, halt, accuracy, exact, hidden accuracy
        sums = self.group.sum(torch.cat([per_slot.sum(1), torch.stack([halted.sum().float(),
                                                                        carry.steps[halted].sum().float()])]))
        loss, halt_loss, accuracy, exact, hidden_acc = (sums[:5] / all_slots).tolist()
        done, steps_of_done = int(sums[5]), float(sums[6])
        sup_steps = steps_of_done / done if done else None
        if not math.isfinite(loss):
            raise NonFiniteLoss(f"non-finite loss ({loss}) at step {self.step + 1}")
        self.step += 1
        return StepMetrics(loss, halt_loss, accuracy, exact, sup_steps, float(norm), lr=lr, updates=1,
                           step_s=0.0, peak_mem_mb=peak_memory_mb(dev),
                           masked_accuracy=hidden_acc if carry.hidden is not None else None, completed=done)

    # -- eval -----------------------------------------------------------------------------------------

    @torch.inference_mode()
    def evaluate(self, batches: list[Batch], observe: Callable[[Batch, torch.Tensor, torch.Tensor], None] | None = None,
                 on_progress: Callable[[int, int], None] | None = None) -> dict[str, float]:
        """Loss and accuracy at each sample's exit, using the EMA weights when there are any. Samples run every
        supervision step, as the paper evaluates, unless ``model.halt_in_eval`` lets them halt as in training.
        ``observe(batch, predictions, confidence)`` hears each batch's predicted tokens and halting probability
        at each sample's exit (ARC votes on them); ``on_progress(k, K)`` hears each finished batch."""
        model = self.ema.model if self.ema is not None else self.model
        model.eval()
        totals = {"loss": 0.0, "accuracy": 0.0, "exact": 0.0, "sup_steps": 0.0, "masked_accuracy": 0.0}
        any_hidden = False
        count = 0
        max_sup = self.cfg.model.max_supervision_steps
        for done, batch in enumerate(batches, 1):
            inputs, targets = batch.inputs.to(self.device), batch.targets.to(self.device)
            hidden = batch.hidden.to(self.device) if batch.hidden is not None else None
            ids = batch.puzzle_ids.to(self.device) if batch.puzzle_ids is not None else None
            any_hidden = any_hidden or hidden is not None
            y, z = model.initial_state(*inputs.shape)
            if observe is not None:
                rows = torch.arange(len(inputs), device=self.device)  # each active sample's row in the batch
                predictions = torch.empty_like(inputs)
                confidence = torch.empty(len(inputs), device=self.device)
            for sup in range(max_sup):
                with self.autocast():
                    out = model(inputs, y, z, ids)
                ce, _, accuracy, exact, hidden_acc = self._losses(out.logits, targets, out.halt_logit, hidden)
                last = sup == max_sup - 1
                exiting = (out.halt_logit >= self.halt_logit_threshold) | last if self.cfg.model.halt_in_eval else \
                    torch.full_like(out.halt_logit, last, dtype=torch.bool)
                totals["loss"] += ce[exiting].sum().item()
                totals["accuracy"] += accuracy[exiting].sum().item()
                totals["exact"] += exact[exiting].sum().item()
                if hidden_acc is not None:
                    totals["masked_accuracy"] += hidden_acc[exiting].sum().item()
                totals["sup_steps"] += exiting.sum().item() * (sup + 1)
                count += int(exiting.sum())
                if observe is not None:
                    predictions[rows[exiting]] = out.logits.argmax(-1).t()[exiting]
                    confidence[rows[exiting]] = torch.sigmoid(out.halt_logit.float()[exiting])
                    rows = rows[~exiting]
                keep = ~exiting
                inputs, targets, y, z = inputs[keep], targets[keep], out.y[:, keep], out.z[:, keep]
                hidden = hidden[keep] if hidden is not None else None
                ids = ids[keep] if ids is not None else None
                if not len(inputs):
                    break
            if observe is not None:
                observe(batch, predictions.cpu(), confidence.cpu())
            if on_progress is not None:
                on_progress(done, len(batches))
        if self.group.distributed:  # each rank evaluated its share of the batches
            summed = self.group.sum(torch.tensor([*totals.values(), count, any_hidden], dtype=torch.float64,
                                                 device=self.device)).tolist()
            totals = dict(zip(totals, summed[:len(totals)]))
            count, any_hidden = int(summed[len(totals)]), bool(summed[-1])
        result = {k: v / max(1, count) for k, v in totals.items()} | {"samples": count}
        if not any_hidden:
            result["masked_accuracy"] = None
        return result

    # -- state ----------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        rng: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
        if self.device.type == "cuda":  # only the training device: never wake other GPUs
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "rng": rng,
            "carry": self._global_carry(),
            "world_size": self.group.world_size,
        }

    def _global_carry(self) -> dict[str, Any] | None:
        """The carry of every rank's slots, in rank order: what one process would hold, at any world size.
        A collective: every rank calls it."""
        if self.carry is None:
            return None
        local = self.carry.state_dict()
        if not self.group.distributed:
            return local
        return {name: None if value is None else
                self.group.cat(value.to(self.device), dim=1 if name in ("y", "z") else 0).cpu()
                for name, value in local.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        carry = state.get("carry")
        self.restored_world_size = int(state.get("world_size", 1))
        if carry is not None and self.group.distributed:  # this rank's slots of the saved global carry
            mine = self.group.share(len(carry["steps"]))
            carry = {name: None if value is None else (value[:, mine] if name in ("y", "z") else value[mine])
                     for name, value in carry.items()}
        self.carry = Carry.from_state(carry, self.device) if carry is not None else None
        rng = state["rng"]
        random.setstate(_as_python_rng_state(rng["python"]))
        # the worker loads checkpoints onto its device, RNG states included; the generators take CPU bytes
        torch.set_rng_state(rng["torch"].cpu())
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"].cpu(), self.device)


def _as_python_rng_state(state: Any) -> tuple:
    """``random.setstate`` wants tuples; a round trip through a checkpoint may give lists."""
    version, internal, gauss = state
    return (version, tuple(internal), gauss)
