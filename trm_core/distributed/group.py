"""The processes that train one run together, as the trainer and the worker see them.

torchrun starts one process per rank and sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE`` and the rendezvous
address; ``Group.from_env`` joins them into a process group. A lone process is a group of one, whose
collectives are the identity: the trainer has one code path, and a single-process run does no extra work.

Every collective here is named for what the training loop needs (a sum, the rows of every rank, one
object from rank 0), and marks the rank as waiting for its peers while it runs, so a stall can be pinned
on the rank the others were waiting for (``waiting``). A collective that fails because a peer is gone
raises ``PeerLost``.
"""

from __future__ import annotations

import contextlib
import datetime
import inspect
import os
import socket
import time
from typing import Any, Iterator

import torch
import torch.distributed as dist
from torch import nn


class PeerLost(RuntimeError):
    """A collective failed: another rank of the group died or hung up."""


def _is_comm_failure(exc: BaseException) -> bool:
    return isinstance(exc, dist.DistError) or any(
        text in str(exc) for text in ("Connection closed by peer", "Connection reset by peer", "Broken pipe",
                                      "Timed out", "timed out", "NCCL communicator was aborted"))


def _sum_hook(process_group: Any, bucket: dist.GradBucket) -> torch.futures.Future:
    """DDP's gradient reduction as a sum, not a mean: the trainer already divides every rank's loss by the
    samples of the whole global batch, so the sum is the one-process gradient."""
    work = dist.all_reduce(bucket.buffer(), group=process_group, async_op=True)
    return work.get_future().then(lambda fut: fut.value()[0])


# DDP checks a hook's annotations as objects; this module's are strings (``from __future__ import annotations``)
_sum_hook.__annotations__ = {"process_group": Any, "bucket": dist.GradBucket,
                             "return": torch.futures.Future[torch.Tensor]}


class Group:
    def __init__(self, rank: int = 0, world_size: int = 1, local_rank: int = 0, node_rank: int = 0,
                 backend: str = "") -> None:
        self.rank, self.world_size, self.local_rank, self.node_rank = rank, world_size, local_rank, node_rank
        self.backend = backend
        self.host = socket.gethostname()
        self.waiting_since: float | None = None  # monotonic time this rank entered a collective
        self.waited_s = 0.0  # seconds spent in collectives since the last take_waited()

    # -- joining ----------------------------------------------------------------------------------------

    @classmethod
    def from_env(cls, backend: str, device: str, timeout_s: float = 1800.0) -> "Group":
        """Join the group torchrun set up, or a group of one when there is none. ``backend`` 'auto' picks
        nccl when the ranks train on CUDA, else gloo."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        node = int(os.environ.get("GROUP_RANK", "0"))
        on_cuda = device != "cpu" and torch.cuda.is_available()
        if on_cuda:
            torch.cuda.set_device(local)
        chosen = backend if backend != "auto" else ("nccl" if on_cuda else "gloo")
        dist.init_process_group(chosen, timeout=datetime.timedelta(seconds=timeout_s))
        return cls(rank, world, local, node, chosen)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def leader(self) -> bool:
        """Rank 0: it alone writes the run's events and checkpoints."""
        return self.rank == 0

    def device(self, name: str) -> torch.device:
        """This rank's device for ``train.device``: with several ranks, each takes the GPU of its local rank."""
        if name == "auto":
            name = "cuda" if torch.cuda.is_available() else "cpu"
        if self.distributed and name.startswith("cuda"):
            return torch.device("cuda", self.local_rank)
        return torch.device(name)

    def close(self) -> None:
        if self.distributed and dist.is_initialized():
            with contextlib.suppress(Exception):
                dist.destroy_process_group()

    # -- the batch ----------------------------------------------------------------------------------------

    def share(self, rows: int) -> slice:
        """This rank's rows of a global batch of ``rows`` (contiguous, in rank order)."""
        per = rows // self.world_size
        return slice(self.rank * per, (self.rank + 1) * per)

    def spread(self, items: list) -> list:
        """This rank's items of a list every rank holds (round robin: the eval's batches)."""
        return items[self.rank::self.world_size]

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module the training forward runs: DistributedDataParallel with summed gradients, or the model
        itself. Buffers are not broadcast at each forward: they are fixed, or (the puzzle embeddings) updated
        the same way on every rank."""
        if not self.distributed:
            return model
        ddp_class = nn.parallel.DistributedDataParallel
        # newer torch names it forward_sync_buffers (and deprecates the old name); older torch has only that
        no_buffer_sync = {"forward_sync_buffers": False} if "forward_sync_buffers" in \
            inspect.signature(ddp_class.__init__).parameters else {"broadcast_buffers": False}
        ddp = ddp_class(model, device_ids=[self.local_rank] if self.backend == "nccl" else None,
                        find_unused_parameters=getattr(model, "sometimes_unused_parameters", False), **no_buffer_sync)
        ddp.register_comm_hook(None, _sum_hook)
        return ddp

    @contextlib.contextmanager
    def no_sync(self, wrapped: nn.Module, skip: bool) -> Iterator[None]:
        """Inside, a backward keeps its gradients local (all but the last micro-batch of an update)."""
        if skip and isinstance(wrapped, nn.parallel.DistributedDataParallel):
            with wrapped.no_sync():
                yield
        else:
            yield

    # -- collectives ----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def waiting(self) -> Iterator[None]:
        """Mark this rank as waiting for its peers; a failure of the wait is a lost peer."""
        if not self.distributed:
            yield
            return
        self.waiting_since = since = time.monotonic()
        try:
            yield
        except Exception as exc:
            if _is_comm_failure(exc):
                raise PeerLost(f"rank {self.rank} lost its peers: {type(exc).__name__}: {exc}") from exc
            raise
        finally:
            self.waiting_since = None
            self.waited_s += time.monotonic() - since

    def take_waited(self) -> float:
        """Seconds this rank spent in collectives since the last call: in a step, mostly waiting for slower
        ranks (the straggler waits least)."""
        waited, self.waited_s = self.waited_s, 0.0
        return waited

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The sum over ranks, in place (and returned)."""
        if self.distributed:
            with self.waiting():
                dist.all_reduce(tensor)
        return tensor

    def total(self, count: int, device: torch.device) -> int:
        """The sum over ranks of a local count (a lone process just returns it: no tensor, no sync)."""
        if not self.distributed:
            return count
        return int(self.sum(torch.tensor([count], device=device))[0])

    def rows(self, values: torch.Tensor) -> torch.Tensor:
        """Every rank's ``values`` stacked in rank order: (world_size, *values.shape)."""
        if not self.distributed:
            return values[None]
        if values.dtype == torch.bool:  # not every backend reduces bools
            return self.rows(values.to(torch.uint8)).bool()
        parts = [torch.empty_like(values) for _ in range(self.world_size)]
        with self.waiting():
            dist.all_gather(parts, values.contiguous())
        return torch.stack(parts)

    def cat(self, tensor: torch.Tensor, dim: int = 0) -> torch.Tensor:
        """Every rank's equally shaped ``tensor`` concatenated along ``dim`` in rank order."""
        if not self.distributed:
            return tensor
        return torch.cat(list(self.rows(tensor).unbind(0)), dim=dim)

    def cat_ragged(self, tensor: torch.Tensor) -> torch.Tensor:
        """Every rank's ``tensor`` concatenated along dim 0, where ranks may hold different numbers of rows."""
        if not self.distributed:
            return tensor
        counts = self.rows(torch.tensor([len(tensor)], device=tensor.device))[:, 0].tolist()
        most = max(counts)
        padded = torch.zeros((most, *tensor.shape[1:]), dtype=tensor.dtype, device=tensor.device)
        padded[:len(tensor)] = tensor
        gathered = self.rows(padded)
        return torch.cat([gathered[r, :n] for r, n in enumerate(counts)])

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (a small picklable object: a path, a decision)."""
        if not self.distributed:
            return obj
        box = [obj]
        with self.waiting():
            dist.broadcast_object_list(box, src=0)
        return box[0]

    def objects(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank."""
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.world_size
        with self.waiting():
            dist.all_gather_object(out, obj)
        return out
