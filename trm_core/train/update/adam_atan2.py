"""AdamATan2, the reference's optimizer, in plain PyTorch: Adam whose step is an ``atan2`` of the first moment
and the bias-corrected root of the second instead of ``m / (sqrt(v) + eps)``. No epsilon to tune, and every
coordinate's step is bounded by ``lr * pi / (2 * (1 - beta1**t))`` at step count t however small its second
moment (15.7 lr on the first step at beta1 = 0.9, tending to ``lr * pi / 2``; a unit gradient's first step is
``atan(0.1) / 0.1 = 0.997 lr``).

The update is the one the ``adam-atan2`` 0.0.3 package's CUDA kernel computes (what the reference's
``pip install adam-atan2`` builds; its sdist's ``csrc/adam_atan2.cu``), per element at the float32 step count t:

    constants (lines 75-88, in double, then cast to float):
        step_size = lr / (1 - beta1**t)          wd_alpha = 1 - lr * weight_decay
        bc2_sqrt  = sqrt(1 - beta2**t)            mbeta1 = 1 - beta1,  mbeta2 = 1 - beta2
    per element, in float (lines 47-53):
        p <- p * wd_alpha
        m <- lerp(m, g, mbeta1);  v <- lerp(v, g * g, mbeta2)     lerp(a, b, t) = fma(t, b, fma(-t, a, a))
        p <- p - step_size * atan2(m, sqrt(v) / bc2_sqrt)

The first bias correction scales the atan2's *output*, not its argument. The kernel's arithmetic is kept
where it changes bits: each fused multiply-add is one rounding (done in float64, where the products are exact,
then rounded to float32 once), the last line is contracted to a fused multiply-add as nvcc does by default
(``--fmad=true``; the package's setup.py does not turn it off), the constants are computed in double from the
float32 count and cast. What differs is the ``atan2`` itself (CUDA's ``atan2f`` against PyTorch's, a few
ulp). ``tests/test_adam_atan2_kernel.py`` checks this against transcriptions of the kernel and of the
package's own test reference, cited by line.

Written with PyTorch's own ops, it runs on any device, and its state is an ordinary optimizer state (``step``,
``exp_avg``, ``exp_avg_sq``) that checkpoints and resumes bit-exactly.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any, Iterable

import torch


def to_float32(x: float) -> float:
    """A double rounded to the nearest float32, as C++'s ``static_cast<float>`` does."""
    return struct.unpack("f", struct.pack("f", x))[0]


@dataclass(frozen=True)
class KernelConstants:
    """The five per-step scalars of ``adam_atan2.cu`` lines 75-88: computed in double from the float32 step
    count, then cast to the math type (float for float32, bfloat16 and half weights; double for double)."""

    step_size: float
    wd_alpha: float
    bc2_sqrt: float
    mbeta1: float
    mbeta2: float

    @classmethod
    def at(cls, count: float, lr: float, beta1: float, beta2: float, weight_decay: float,
           in_float32: bool = True) -> "KernelConstants":
        t = to_float32(count)  # the kernel reads the step count as a float (line 76)
        bc1 = 1 - beta1 ** t
        bc2 = 1 - beta2 ** t
        cast = to_float32 if in_float32 else float
        return cls(step_size=cast(lr / bc1), wd_alpha=cast(1 - lr * weight_decay), bc2_sqrt=cast(math.sqrt(bc2)),
                   mbeta1=cast(1 - beta1), mbeta2=cast(1 - beta2))


def _lerp_fma_(start: torch.Tensor, end: torch.Tensor, weight: float, wide: torch.Tensor,
               wide_end: torch.Tensor) -> None:
    """``start <- fma(weight, end, fma(-weight, start, start))`` on float32 tensors, each fma rounded once;
    ``wide`` and ``wide_end`` are float64 scratch of the same shape (reused: no allocation per call).

    In float64 ``start * (1 - weight)`` is exact (24 + 28 significant bits for a weight of 0.05 or more), so
    its rounding to float32 is the inner fma's; ``weight * end`` is exact too, and the sum is rounded to double,
    then to float (a double rounding that can differ from the fma's single one in about one case in 2^29)."""
    wide.copy_(start).mul_(1 - weight)
    start.copy_(wide)                     # the inner fma, rounded once
    wide.copy_(start).add_(wide_end.copy_(end), alpha=weight)
    start.copy_(wide)                     # the outer fma


def _divide_(t: torch.Tensor, divisor: float, wide: torch.Tensor) -> torch.Tensor:
    """``t / divisor`` in place, correctly rounded as the kernel's float division (line 52). On CUDA PyTorch
    divides by a host scalar as a multiplication by its reciprocal (an ulp off now and then), so there the
    quotient is taken in float64 (its reciprocal's error is far below a float's ulp) and rounded once."""
    if not t.is_cuda:
        return t.div_(divisor)
    return t.copy_(wide.copy_(t).div_(divisor))


def _update_float32(p: torch.Tensor, g: torch.Tensor, m: torch.Tensor, v: torch.Tensor, c: KernelConstants) -> None:
    """adam_atan2.cu lines 47-53 on float32 storage (the math type of float, bfloat16 and half alike)."""
    p.mul_(c.wd_alpha)                                    # line 47: param *= wd_alpha
    _after_decay_float32(p, g, m, v, c)


def _after_decay_float32(p: torch.Tensor, g: torch.Tensor, m: torch.Tensor, v: torch.Tensor,
                         c: KernelConstants) -> None:
    """adam_atan2.cu lines 49-53, on a weight already decayed (line 47, here or over a list)."""
    wide = torch.empty_like(p, dtype=torch.float64)
    wide_other = torch.empty_like(wide)
    _lerp_fma_(m, g, c.mbeta1, wide, wide_other)          # line 49
    _lerp_fma_(v, g * g, c.mbeta2, wide, wide_other)      # line 50: grad * grad rounded to float first
    angle = _divide_(v.sqrt(), c.bc2_sqrt, wide)          # line 52: denom = sqrt(exp_avg_sq) / bc2_sqrt
    torch.atan2(m, angle, out=angle)                      # line 53: atan2(exp_avg, denom) ...
    # ... param -= step_size * atan2: one fma, p - step_size * a rounded once (exact product in float64)
    p.copy_(wide.copy_(p).sub_(wide_other.copy_(angle), alpha=c.step_size))


def _update_float64(p: torch.Tensor, g: torch.Tensor, m: torch.Tensor, v: torch.Tensor, c: KernelConstants) -> None:
    """The same lines in double (the kernel's math type for double weights), without the fused roundings."""
    p.mul_(c.wd_alpha)
    m.lerp_(g, c.mbeta1)
    v.lerp_(g * g, c.mbeta2)
    angle = v.sqrt().div_(c.bc2_sqrt)
    p.sub_(torch.atan2(m, angle, out=angle), alpha=c.step_size)


def kernel_update(p: torch.Tensor, g: torch.Tensor, m: torch.Tensor, v: torch.Tensor, c: KernelConstants) -> None:
    """One parameter's update in place. Half and bfloat16 weights (and moments) are widened to float and
    narrowed back, as the kernel loads and stores them (lines 41-45, 56-58)."""
    if p.dtype == torch.float64:
        _update_float64(p, g, m, v, c)
    elif p.dtype == torch.float32:
        _update_float32(p, g.float(), m, v, c)
    else:
        wide = [t.float() for t in (p, m, v)]
        _update_float32(wide[0], g.float(), wide[1], wide[2], c)
        for narrow, w in zip((p, m, v), wide):
            narrow.copy_(w)


def _foreach_update_float32(params: list[torch.Tensor], grads: list[torch.Tensor], ms: list[torch.Tensor],
                            vs: list[torch.Tensor], c: KernelConstants) -> None:
    """The float32 update over a list: the decay as one multi-tensor op (a fused kernel on a GPU), the rest a
    tensor at a time, since its fma roundings go through float64 scratch of each tensor's shape."""
    torch._foreach_mul_(params, c.wd_alpha)
    for p, g, m, v in zip(params, grads, ms, vs):
        _after_decay_float32(p, g, m, v, c)


class AdamATan2(torch.optim.Optimizer):
    """The ``adam-atan2`` package's optimizer (same arguments and state), its update computed as its kernel does."""

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
            # the step count as a float32 tensor, as the package keeps it (the kernel reads it as a float); on
            # the host, so reading it never waits for a GPU
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
            by_count: dict[float, list[int]] = {}  # parameters at the same step count share the constants
            for i, state in enumerate(states):
                state["step"] += 1  # adam_atan2.py line 134: the count goes up before the kernel reads it
                by_count.setdefault(float(state["step"]), []).append(i)
            for count, members in by_count.items():
                self._update([params[i] for i in members], [states[i] for i in members], count, group)
        return loss

    @staticmethod
    def _update(params: list[torch.Tensor], states: list[dict[str, Any]], count: float, group: dict[str, Any]) -> None:
        beta1, beta2 = group["betas"]
        grads = [p.grad for p in params]
        ms = [s["exp_avg"] for s in states]
        vs = [s["exp_avg_sq"] for s in states]
        foreach = group["foreach"]
        if foreach is None:  # fused multi-tensor kernels on CUDA; on a CPU one tensor at a time is faster
            foreach = params[0].is_cuda
        single = [p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in params]
        if foreach and all(single):
            c = KernelConstants.at(count, group["lr"], beta1, beta2, group["weight_decay"])
            _foreach_update_float32(params, grads, ms, vs, c)
            return
        for p, g, m, v in zip(params, grads, ms, vs):
            c = KernelConstants.at(count, group["lr"], beta1, beta2, group["weight_decay"],
                                   in_float32=p.dtype != torch.float64)
            kernel_update(p, g, m, v, c)
