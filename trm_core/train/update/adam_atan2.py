"""AdamATan2, the reference's optimizer, in plain PyTorch: Adam whose step is ``atan2(m_hat, sqrt(v_hat))``
instead of ``m_hat / (sqrt(v_hat) + eps)``. No epsilon to tune, and every coordinate's step is bounded by
``lr * pi / 2`` however small its second moment.

The update is the one of the ``adam-atan2`` package's CUDA kernel (the reference's ``pip install adam-atan2``,
whose build is its most reported problem), for each parameter at its step count t:

    p <- p * (1 - lr * weight_decay)
    m <- lerp(m, g, 1 - beta1);  v <- lerp(v, g * g, 1 - beta2)
    p <- p - lr * atan2(m / (1 - beta1**t), sqrt(v) / sqrt(1 - beta2**t))

(equal to the kernel's to float rounding: the two bias corrections are folded into one scale), written here
with PyTorch's own ops, so it runs on any device and its state is an ordinary optimizer state
(``step``, ``exp_avg``, ``exp_avg_sq``) that checkpoints and resumes bit-exactly.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import torch


class AdamATan2(torch.optim.Optimizer):
    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 weight_decay: float = 1e-2, foreach: bool | None = None) -> None:
        if lr < 0:
            raise ValueError(f"learning rate {lr} < 0")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"betas {betas} must lie in [0, 1)")
        if weight_decay < 0:
            raise ValueError(f"weight decay {weight_decay} < 0")
        super().__init__(params, {"lr": lr, "betas": betas, "weight_decay": weight_decay, "foreach": foreach})

    def _state_of(self, p: torch.Tensor) -> dict[str, Any]:
        state = self.state[p]
        if not state:
            # the step count as a float32 tensor, as the kernel keeps it (its bias corrections read it so)
            state["step"] = torch.zeros((), dtype=torch.float32)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return state

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            if any(p.grad.is_sparse for p in params):
                raise RuntimeError("AdamATan2 does not take sparse gradients")
            states = [self._state_of(p) for p in params]
            by_count: dict[float, list[int]] = {}  # parameters at the same step count share bias corrections
            for i, state in enumerate(states):
                state["step"] += 1
                by_count.setdefault(float(state["step"]), []).append(i)
            for count, members in by_count.items():
                self._update([params[i] for i in members], [states[i] for i in members], count, group)
        return loss

    @staticmethod
    def _update(params: list[torch.Tensor], states: list[dict[str, Any]], count: float, group: dict[str, Any]) -> None:
        lr, wd = group["lr"], group["weight_decay"]
        beta1, beta2 = group["betas"]
        grads = [p.grad for p in params]
        ms = [s["exp_avg"] for s in states]
        vs = [s["exp_avg_sq"] for s in states]
        # atan2(m / bc1, sqrt(v) / sqrt(bc2)) = atan2(m, sqrt(v) * bc1 / sqrt(bc2)): one scaling, not two
        scale = (1 - beta1 ** count) / math.sqrt(1 - beta2 ** count)
        foreach = group["foreach"]
        if foreach is None:  # fused multi-tensor kernels on CUDA; on a CPU one tensor at a time is faster
            foreach = params[0].is_cuda
        if foreach:
            torch._foreach_mul_(params, 1 - lr * wd)
            torch._foreach_lerp_(ms, grads, 1 - beta1)
            torch._foreach_mul_(vs, beta2)
            torch._foreach_addcmul_(vs, grads, grads, value=1 - beta2)
            dens = torch._foreach_sqrt(vs)
            torch._foreach_mul_(dens, scale)
            for m, d in zip(ms, dens):
                torch.atan2(m, d, out=d)
            torch._foreach_add_(params, dens, alpha=-lr)
            return
        for p, g, m, v in zip(params, grads, ms, vs):
            p.mul_(1 - lr * wd)
            m.lerp_(g, 1 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            den = v.sqrt().mul_(scale)
            p.add_(torch.atan2(m, den, out=den), alpha=-lr)
