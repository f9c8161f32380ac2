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
import math
import random
import time
from typing import Any, Callable, Iterator

import torch

from trm_core.config import Config, ConfigError
from trm_core.config.curriculum import DepthStage, parse_depth_schedule, stage_at, supervision_weights
from trm_core.data.base import Batch
from trm_core.distributed.group import Group
from trm_core.train.carry import Carry
from trm_core.train.update.ema import EMA
from trm_core.train.update.optimizers import build_optimizer
from trm_core.train.losses import LOSSES
from trm_core.train.metrics import FiniteWatch, NonFiniteLoss, PendingMetrics, StepMetrics, peak_memory_mb
from trm_core.train.model import build_model, count_parameters
from trm_core.train.halting import halt_logit_threshold
from trm_core.train.sample_loss import SampleLoss
from trm_core.train.update.schedule import learning_rate
from trm_core.train.steps.refill import refill_step
from trm_core.train.steps.shrink import shrink_step

__all__ = ["NonFiniteLoss", "StepMetrics", "Trainer", "peak_memory_mb"]

_GRAPHED = ("reduce-overhead", "max-autotune")  # the compile modes that capture CUDA graphs


class Trainer:
    def __init__(self, cfg: Config, vocab_size: int, total_steps: int, num_puzzle_ids: int = 1,
                 group: Group | None = None, schedule_steps: int | None = None) -> None:
        self.cfg = cfg
        self.total_steps = total_steps
        # the learning-rate schedule's horizon: the steps trained, or the reference's total_steps formula where a
        # puzzle run by epochs trains a few batches fewer (data.packing.PackedOrder.schedule_steps)
        self.schedule_steps = schedule_steps or total_steps
        self.group = group or Group()
        self.device = self.group.device(cfg.train.device)
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        torch.manual_seed(cfg.train.seed)
        random.seed(cfg.train.seed)
        self.model = build_model(cfg.model, vocab_size, num_puzzle_ids).to(self.device)
        self.model.grad_recursions = cfg.train.grad_recursions
        self.depth_stages = parse_depth_schedule(cfg.train.depth_schedule)
        weights = supervision_weights(cfg.train.supervision_weights, cfg.model.max_supervision_steps)
        # None for the paper's equal weights: the step then runs exactly as it always did
        self.sup_weights = None if cfg.train.supervision_weights == "equal" else \
            torch.tensor(weights, dtype=torch.float32, device=self.device)
        self.num_parameters = count_parameters(self.model)
        if cfg.train.precision == "bf16":  # before the EMA copy: it forwards as the model does
            self.model.forward_dtype = torch.bfloat16
        self.ema = EMA(self.model, cfg.train.ema_decay, cfg.train.ema_warmup) if cfg.train.ema_decay > 0 else None
        t = cfg.train
        self.optimizer = build_optimizer(self.model.parameters(), t)
        self.wrapped = self.group.wrap(self.model)  # DDP across ranks, else the model itself
        self._compiled: Callable[..., Any] | None = None
        self.forward: Callable[..., Any] = self.wrapped
        self.use_compiled(t.compile == "on")
        self.compile_verdict: bool | None = None  # "auto"'s choice (compiled or not), once made; kept in checkpoints
        use_autocast = self.device.type == "cuda" and t.precision == "autocast"
        self.autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if use_autocast \
            else contextlib.nullcontext
        self._losses = SampleLoss(LOSSES[cfg.train.loss], loss_on_hidden=cfg.data.loss_on == "masked")
        self.halt_logit_threshold = halt_logit_threshold(cfg.model.halt_threshold)
        self.carry: Carry | None = None  # refill: this rank's slots, from the first step on
        self.step = 0  # completed steps
        self.finite = FiniteWatch(self.device)
        self._pending: PendingMetrics | None = None  # the last step's figures, not read yet
        self._window_s, self._window_steps = 0.0, 0  # host time in the steps since the last read, and their count
        self.restored_world_size: int | None = None  # the world size of the checkpoint loaded, if any

    # -- training -------------------------------------------------------------------------------------

    def use_compiled(self, compiled: bool) -> None:
        """Run the network compiled (``torch.compile``, which compiles at its first call) or eager; the compiled
        one is kept, so going back to it does not compile again."""
        if compiled and self._compiled is None:
            mode = self.cfg.train.compile_mode
            self._compiled = torch.compile(self.wrapped, mode=None if mode == "default" else mode)
        self.forward = self._compiled if compiled else self.wrapped

    @property
    def compiled(self) -> bool:
        return self._compiled is not None and self.forward is self._compiled

    def abandon_step(self) -> None:
        """Forget a step that raised before its update (a compile that failed): its gradients and the
        puzzle-embedding rows it gathered. The carry and the counters only change after the update."""
        self.optimizer.zero_grad(set_to_none=True)
        emb = getattr(self.model, "puzzle_emb", None)
        if emb is not None:
            emb.forget()

    def _learning_rates(self) -> tuple[float, float]:
        """This step's learning rate, set on the optimizer, and the puzzle embeddings' on the same schedule."""
        t = self.cfg.train

        def at(peak: float) -> float:
            return learning_rate(self.step, peak=peak, warmup_steps=t.warmup_steps, total_steps=self.schedule_steps,
                                 min_ratio=t.min_lr_ratio)
        lr = at(t.learning_rate)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr, at(t.puzzle_emb_lr)

    def _update(self, emb_lr: float) -> torch.Tensor:
        """Clip, step the optimizer (and the puzzle embeddings, and the EMA); the gradient norm before clipping.
        A non-finite norm is not checked here (that would wait for the device): the step gives it to
        ``self.finite``, which the next read of the figures checks."""
        clip = self.cfg.train.grad_clip if self.cfg.train.grad_clip > 0 else math.inf
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        emb = getattr(self.model, "puzzle_emb", None)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if emb is not None:
            emb.step(emb_lr, self.cfg.train.puzzle_emb_weight_decay,
                     gather=self.group.cat_ragged if self.group.distributed else None)
        if self.ema is not None:
            self.ema.update()
        return norm.detach()

    def train_step(self, batch: Batch, on_progress: Callable[[int, int], None] | None = None) -> StepMetrics:
        """One step, and its figures (``queue_step`` then ``read_metrics``)."""
        self.queue_step(batch, on_progress)
        return self.read_metrics()

    def queue_step(self, batch: Batch, on_progress: Callable[[int, int], None] | None = None) -> None:
        """One step, its figures left on the device until ``read_metrics``: on a GPU the host queues the next
        step while this one runs. ``on_progress(k, K)`` hears each finished supervision step: a step of the
        seed's size takes minutes on a CPU, and the front ends show how far into it the worker is. The timing
        covers the whole call, the release of the step's tensors and graph included (about 1 ms a step on the
        tiny preset, which a timer inside the step would leave to look like the worker's own overhead)."""
        started = time.perf_counter()
        if self.compiled and self.device.type == "cuda" and self.cfg.train.compile_mode in _GRAPHED:
            # CUDA graphs: the last step's graph outputs are dead (the carry holds copies); their memory is reused
            torch.compiler.cudagraph_mark_step_begin()
        with self.depth(self.stage(self.step)):
            if self.cfg.train.carry == "refill":
                self._pending = refill_step(self, batch)
            else:
                self._pending = shrink_step(self, batch, on_progress)
        self._window_s += time.perf_counter() - started
        self._window_steps += 1

    def stage(self, step: int) -> DepthStage | None:
        """train.depth_schedule's stage for the step after ``step`` completed ones; None without a schedule."""
        if not self.depth_stages:
            return None
        return self.depth_stages[stage_at(self.depth_stages, step, self.total_steps)]

    @contextlib.contextmanager
    def depth(self, stage: DepthStage | None) -> Iterator[None]:
        """The stage's T and n for one step; the model section's outside it (eval, checkpoints, the EMA's copy)."""
        if stage is None:
            yield
            return
        full = self.model.refinement_blocks, self.model.latent_steps
        self.model.refinement_blocks, self.model.latent_steps = stage.T, stage.n
        try:
            yield
        finally:
            self.model.refinement_blocks, self.model.latent_steps = full

    def read_metrics(self) -> StepMetrics:
        """The last step's figures; ``step_s`` is the mean over the steps since the last read, the wait for the
        device included (what each took on the device, when the host queues ahead of it). Raises
        ``NonFiniteLoss`` for the first of those steps that went non-finite."""
        if self._pending is None:
            raise RuntimeError("no step to read: queue_step first")
        started = time.perf_counter()
        self.finite.check()  # before any figure is trusted (and, through a save's read, any weight saved)
        metrics = self._pending.read()
        step_s = (self._window_s + time.perf_counter() - started) / max(1, self._window_steps)
        self._window_s, self._window_steps = 0.0, 0
        return dataclasses.replace(metrics, step_s=step_s)

    @property
    def unread(self) -> bool:
        """Steps ran since the figures were last read."""
        return self._window_steps > 0

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
            "compiled": self.compile_verdict,
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

    @torch.no_grad()
    def start_from(self, weights: dict[str, Any]) -> None:
        """A new run's first weights (train.init_from), copied in place: the optimizer keeps its parameters and
        starts fresh; the EMA starts from them too."""
        self.model.load_state_dict(weights)
        if self.ema is not None:
            self.ema.restart()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "optimizer" not in state:  # trm-tui import's run: weights only (trm_core/weights/as_run.py)
            source = state.get("imported", "no optimizer state")
            raise ConfigError(f"this run's checkpoint holds imported weights ({source}), nothing to resume; "
                              f"fine-tune from it in a new run: --set train.init_from='RUN_DIR'")
        self.model.load_state_dict(state["model"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        _step_counts_on_host(self.optimizer)
        self.step = int(state["step"])
        carry = state.get("carry")
        self.restored_world_size = int(state.get("world_size", 1))
        self.compile_verdict = state.get("compiled")
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


def _step_counts_on_host(optimizer: torch.optim.Optimizer) -> None:
    """A checkpoint loaded onto the GPU brings the optimizer's step counts with it, and torch.optim keeps them
    where they land; each update's bias correction then reads one back from the device (a sync per step).
    They live on the host, as a fresh optimizer keeps them; a fused optimizer keeps them on the device (its
    kernel reads them there), where torch.optim already puts them."""
    if any(group.get("fused") or group.get("capturable") for group in optimizer.param_groups):
        return
    for state in optimizer.state.values():
        if isinstance(state.get("step"), torch.Tensor):
            state["step"] = state["step"].cpu()


def _as_python_rng_state(state: Any) -> tuple:
    """``random.setstate`` wants tuples; a round trip through a checkpoint may give lists."""
    version, internal, gauss = state
    return (version, tuple(internal), gauss)
