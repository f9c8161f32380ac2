"""The refill step (the paper presets') never makes the host wait for the device: no figure read, no shape that
depends on a value, no halting decision taken on the host. This CPU has no device to wait for, so the test
watches for the operations that would wait on a GPU (``HostReads``); the GPU check runs the same step under
``torch.cuda.set_sync_debug_mode``. Reading the figures later gives what reading them at once gave."""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch.overrides import TorchFunctionMode

from trm_core.config import resolve
from trm_core.data.base import Batch
from trm_core.train.metrics import NonFiniteLoss
from trm_core.train.trainer import Trainer

import pytest

SLOTS, SEQ, VOCAB = 6, 8, 6

# what copies a value from the device to the host (or sizes a result by one): on a GPU, each waits for it
_READS = {"item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__", "__index__", "nonzero", "argwhere",
          "unique", "unique_consecutive", "masked_select"}


class HostReads(TorchFunctionMode):
    """Records every torch call that would wait for a GPU: a value read, or a boolean-mask index; except reads
    of the tensors ``on_host`` says live on the host even when training on a GPU."""

    def __init__(self, on_host: Callable[[Any], bool] = lambda tensor: False) -> None:
        super().__init__()
        self.seen: list[str] = []
        self.on_host = on_host

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        name = getattr(func, "__name__", str(func))
        if (name in _READS and not (args and self.on_host(args[0]))) \
                or (name in ("__getitem__", "__setitem__") and _bool_index(args[1])):
            self.seen.append(name)
        return func(*args, **(kwargs or {}))


def _bool_index(index: Any) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(p, torch.Tensor) and p.dtype == torch.bool for p in parts)


def trainer(*sets: str) -> Trainer:
    """The paper recipe's moving parts, small: refill, puzzle embeddings, halting exploration, micro-batches,
    AdamATan2, clipping, the EMA."""
    cfg = resolve(env={}, sets=["model.net='attention'", "model.num_heads=2", "model.dim=16", "model.depth=1",
                                f"model.seq_len={SEQ}", "model.latent_steps=1", "model.refinement_blocks=1",
                                "model.max_supervision_steps=3", "model.puzzle_emb_len=2",
                                "model.halt_exploration=0.5", "train.carry='refill'", "train.optimizer='adam_atan2'",
                                f"train.batch_size={SLOTS}", "train.micro_batch_size=3", "train.device='cpu'",
                                "train.warmup_steps=0", "train.ema_decay=0.9", "train.grad_clip=1.0", *sets])
    return Trainer(cfg, VOCAB, total_steps=100, num_puzzle_ids=20)


def batch(step: int) -> Batch:
    g = torch.Generator().manual_seed(step)
    return Batch(torch.randint(0, VOCAB, (SLOTS, SEQ), generator=g), torch.randint(0, VOCAB, (SLOTS, SEQ), generator=g),
                 puzzle_ids=torch.randint(0, 20, (SLOTS,), generator=g))


def step_count(tr: Trainer) -> Callable[[Any], bool]:
    """The optimizer's step counts: CPU tensors on any device, as torch.optim keeps them (its bias
    corrections are host arithmetic)."""
    return lambda tensor: any(tensor is state["step"] for state in tr.optimizer.state.values())


def test_a_refill_step_never_waits_for_the_device() -> None:
    tr = trainer()
    reads = HostReads(on_host=step_count(tr))
    with reads:
        for step in range(1, 7):  # slots fill, halt and refill across these
            tr.queue_step(batch(step))
    assert reads.seen == []
    metrics = tr.read_metrics()
    assert tr.step == 6 and metrics.updates == 1 and metrics.completed is not None
    with reads:  # the watch sees what it is there for: reading the figures waits
        tr.read_metrics() if tr.unread else tr.queue_step(batch(7)) or tr.read_metrics()
    assert "tolist" in reads.seen


def test_the_shrink_step_waits_and_the_watch_sees_it() -> None:
    """The other carry removes halted samples from its batch, so the host must learn which: the watch catches
    that, which is what makes its silence on the refill step mean something."""
    tr = trainer("train.carry='shrink'")
    reads = HostReads()
    with reads:
        tr.queue_step(batch(1))
    assert "__bool__" in reads.seen or "__getitem__" in reads.seen


def test_the_shrink_step_waits_once_a_supervision_step() -> None:
    """Its one wait: whether any sample of a micro-batch halted. Sums over the exiting samples are products, not
    selections (3 supervision steps x 2 micro-batches here, no sample halting)."""
    tr = trainer("train.carry='shrink'", "model.halt_threshold=1.0")
    reads = HostReads(on_host=step_count(tr))
    with reads:
        tr.queue_step(batch(1))
    assert reads.seen == ["__bool__"] * 6


def test_reading_later_gives_what_reading_at_once_gave() -> None:
    every, later = trainer(), trainer()
    read_each = [every.train_step(batch(s)) for s in range(1, 9)]
    read_late = []
    for s in range(1, 9):
        later.queue_step(batch(s))
        if s % 4 == 0:
            read_late.append(later.read_metrics())
    for mine, theirs in zip(read_late, (read_each[3], read_each[7])):
        assert (mine.loss, mine.grad_norm, mine.accuracy, mine.completed, mine.sup_steps) == \
            (theirs.loss, theirs.grad_norm, theirs.accuracy, theirs.completed, theirs.sup_steps)
    assert all(torch.equal(a, b) for a, b in zip(every.model.state_dict().values(), later.model.state_dict().values()))


def test_a_step_that_went_non_finite_is_named_when_read() -> None:
    tr = trainer()
    tr.queue_step(batch(1))
    with torch.no_grad():
        next(tr.model.parameters()).view(-1)[0] = float("nan")
    tr.queue_step(batch(2))
    tr.queue_step(batch(3))
    with pytest.raises(NonFiniteLoss) as failed:
        tr.read_metrics()
    assert failed.value.step == 2 and "at step 2" in str(failed.value)
