"""Several ranks and nodes: one GPU per rank, and a rendezvous address every node can resolve."""

from __future__ import annotations

import socket

from trm_core.config import Config
from trm_core.doctor.report import Check, fail, ok, warn

AREA = "distributed"


def checks(cfg: Config, with_gpus: bool = True) -> list[Check]:
    """``with_gpus``: count this node's GPUs (imports torch)."""
    d = cfg.distributed
    if d.world_size == 1:
        return [ok(AREA, "ranks", "one process (no torch.distributed)")]
    found: list[Check] = []
    gpus = 0
    if with_gpus:
        import torch

        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    on_gpu = cfg.train.device != "cpu" and gpus > 0
    if on_gpu and d.nproc_per_node > gpus:
        found.append(fail(AREA, "ranks", f"distributed.nproc_per_node = {d.nproc_per_node} but this node has "
                          f"{gpus} GPU(s): one rank per GPU", f"set distributed.nproc_per_node = {gpus}"))
    elif on_gpu and d.nproc_per_node < gpus:
        found.append(warn(AREA, "ranks", f"{d.nproc_per_node} rank(s) on a node with {gpus} GPUs: "
                          f"{gpus - d.nproc_per_node} idle", f"set distributed.nproc_per_node = {gpus}"))
    elif with_gpus:
        found.append(ok(AREA, "ranks", f"{d.nproc_per_node} rank(s) x {d.nnodes} node(s) on "
                                       f"{'GPUs' if on_gpu else 'the CPU (gloo)'}"))
    if d.nnodes > 1:
        if not d.rdzv_endpoint:
            found.append(fail(AREA, "rendezvous", "distributed.nnodes > 1 needs distributed.rdzv_endpoint",
                              "set it to node 0's host:port, the same on every node"))
        else:
            host, _, port = d.rdzv_endpoint.rpartition(":")
            try:
                addresses = {info[4][0] for info in socket.getaddrinfo(host or d.rdzv_endpoint, int(port or 29400))}
                found.append(ok(AREA, "rendezvous", f"{d.rdzv_endpoint} resolves to {', '.join(sorted(addresses))}"))
            except (socket.gaierror, ValueError) as exc:
                found.append(fail(AREA, "rendezvous", f"distributed.rdzv_endpoint = {d.rdzv_endpoint!r} does not "
                                  f"resolve ({exc})", "give node 0's host name or address as host:port"))
    return found
