"""AdamATan2 against the ``adam-atan2`` 0.0.3 package itself, not against our own reading of it.

Two transcriptions, each cited by file and line of the package's sdist
(``pip download --no-deps --no-binary :all: adam-atan2==0.0.3``):

- the CUDA kernel, ``csrc/adam_atan2.cu``, element by element in float32 scalars, each fused multiply-add
  rounded once exactly (with fractions), the constants in double and then cast (lines 75-88);
- the package's own test reference, ``adam_atan2/adam_atan2_test.py`` ``_adam_atan2_reference_impl``
  (lines 10-42) with the constants its test passes (lines 84-88).

The optimizer's driver, ``adam_atan2/adam_atan2.py``, keeps a float32 step count per parameter (lines 59-61)
and adds one before the kernel reads it (line 134).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from trm_core.train.update.adam_atan2 import AdamATan2

F32 = np.float32
STEPS = 25
BETA1, BETA2 = 0.9, 0.95


def fma32(a: np.float32, b: np.float32, c: np.float32) -> np.float32:
    """C's ``fma`` on floats: a * b + c exactly, rounded once to the nearest float32 (ties to even)."""
    exact = Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c))
    near = F32(float(exact))  # within one float32 step of the true rounding; pick the nearest neighbour
    candidates = [np.nextafter(near, F32(-np.inf)), near, np.nextafter(near, F32(np.inf))]
    best = min(candidates, key=lambda f: (abs(Fraction(float(f)) - exact), int(f.view(np.int32)) & 1))
    return F32(best)


def kernel_lerp(v0: np.float32, v1: np.float32, t: np.float32) -> np.float32:
    """adam_atan2.cu lines 21-26: ``return fma(t, v1, fma(-t, v0, v0));``"""
    return fma32(t, v1, fma32(-t, v0, v0))


def kernel_constants(step_count: np.float32, lr: float, beta1: float, beta2: float, weight_decay: float):
    """adam_atan2.cu lines 75-88, opmath_t = float: ``pow_(beta1, *step_count)`` with a double base and the
    float count (Pow.cuh's pow_ returns the base's type, double); every constant cast to float at the end."""
    bias_correction1 = 1 - math.pow(beta1, float(step_count))        # line 77
    bias_correction2 = 1 - math.pow(beta2, float(step_count))        # line 78
    bias_correction2_sqrt = math.sqrt(bias_correction2)              # line 79
    return (F32(lr / bias_correction1),                               # line 82: step_size
            F32(1 - lr * weight_decay),                               # line 83: wd_alpha
            F32(bias_correction2_sqrt),                               # line 84
            F32(1 - beta1),                                           # line 85: mbeta1
            F32(1 - beta2))                                           # line 86: mbeta2


def kernel_adam_math(param, grad, exp_avg, exp_avg_sq, consts, contract_last: bool):
    """adam_atan2.cu lines 40-58 for one element, in float32. Line 53 is ``param -= step_size * atan2(...)``:
    read literally (a product, then a difference) or as nvcc contracts it by default (one fma)."""
    step_size, wd_alpha, bias_correction2_sqrt, mbeta1, mbeta2 = consts
    param = F32(param * wd_alpha)                                     # line 47
    exp_avg = kernel_lerp(exp_avg, grad, mbeta1)                      # line 49
    exp_avg_sq = kernel_lerp(exp_avg_sq, F32(grad * grad), mbeta2)    # line 50
    denom = F32(np.sqrt(exp_avg_sq) / bias_correction2_sqrt)          # line 52
    angle = np.arctan2(exp_avg, denom)                                # line 53 (float atan2)
    if contract_last:
        param = fma32(-step_size, angle, param)
    else:
        param = F32(param - F32(step_size * angle))
    return param, exp_avg, exp_avg_sq


def run_kernel(p0: np.ndarray, grads: list[np.ndarray], lr: float, wd: float, contract_last: bool):
    param, m, v = p0.astype(F32).copy(), np.zeros_like(p0, F32), np.zeros_like(p0, F32)
    step_count = F32(0)
    for g in grads:
        step_count = F32(step_count + F32(1))  # adam_atan2.py line 134: torch._foreach_add_(state_steps, 1)
        consts = kernel_constants(step_count, lr, BETA1, BETA2, wd)
        for i in range(param.size):
            param[i], m[i], v[i] = kernel_adam_math(param[i], F32(g[i]), m[i], v[i], consts, contract_last)
    return param, m, v


def run_test_reference(p0: torch.Tensor, grads: list[torch.Tensor], lr: float, wd: float):
    """adam_atan2_test.py lines 10-42 (``_adam_atan2_reference_impl``, float32 math), called as its test calls
    it at lines 78-89: step_size = lr / (1 - beta1 ** steps), wd_step_size = lr * weight_decay,
    bias_correction2_sqrt = math.sqrt(1 - beta2 ** steps), with a Python int step count."""
    param, exp_avg, exp_avg_sq = p0.clone(), torch.zeros_like(p0), torch.zeros_like(p0)
    for steps, grad in enumerate(grads, 1):
        step_size = lr / (1 - BETA1 ** steps)                          # line 84
        wd_step_size = lr * wd                                         # line 85
        bias_correction2_sqrt = math.sqrt(1 - BETA2 ** steps)          # line 86
        param.mul_(1 - wd_step_size)                                   # line 34
        exp_avg.lerp_(grad, 1 - BETA1)                                 # line 36
        exp_avg_sq.mul_(BETA2).addcmul_(grad, grad, value=1 - BETA2)   # line 37
        denom = exp_avg_sq.sqrt() / bias_correction2_sqrt              # line 39
        param.add_(torch.atan2(exp_avg, denom), alpha=-step_size)      # line 40
    return param, exp_avg, exp_avg_sq


def run_ours(p0: torch.Tensor, grads: list[torch.Tensor], lr: float, wd: float, foreach: bool):
    # two tensors in the group, so the foreach path really runs over a list
    w = torch.nn.Parameter(p0.clone())
    other = torch.nn.Parameter(p0[:7].clone())
    opt = AdamATan2([w, other], lr=lr, betas=(BETA1, BETA2), weight_decay=wd, foreach=foreach)
    for g in grads:
        w.grad, other.grad = g.clone(), g[:7].clone()
        opt.step()
    state = opt.state[w]
    assert state["step"].dtype == torch.float32 and state["step"].item() == len(grads)
    # the same numbers in a tensor of another length (atan2's vectorised body and scalar tail may differ by an ulp)
    torch.testing.assert_close(other.detach(), w.detach()[:7], rtol=1e-6, atol=0)
    return w.detach(), state["exp_avg"], state["exp_avg_sq"]


def case(seed: int, n: int = 48) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The package test's scales (adam_atan2_test.py lines 55-56: init_std 0.02, grad_std 0.001), plus
    coordinates whose gradients jump by orders of magnitude and one that never gets a gradient."""
    gen = torch.Generator().manual_seed(seed)
    p0 = torch.randn(n, generator=gen) * 0.02
    grads = []
    for _ in range(STEPS):
        g = torch.randn(n, generator=gen) * 0.001
        g[:4] *= 10.0 ** torch.randint(-6, 6, (4,), generator=gen)
        g[-1] = 0.0
        grads.append(g)
    return p0, grads


def assert_relative(ours: torch.Tensor, theirs, rel: float = 1e-6, floor: float = 1e-30) -> None:
    """Each element within ``rel`` of the other's magnitude, or of ``floor`` for one that passes near zero."""
    theirs = torch.as_tensor(np.asarray(theirs, dtype=np.float32))
    scale = theirs.abs().clamp_min(floor)
    worst = ((ours - theirs).abs() / scale).max().item()
    assert worst <= rel, f"max relative difference {worst:.3g}"


@pytest.mark.parametrize("foreach", [True, False])
@pytest.mark.parametrize("weight_decay", [1.0, 0.1])
@pytest.mark.parametrize("lr", [1e-4, 1e-3])
def test_equal_to_the_kernel_and_to_the_packages_test_reference(foreach: bool, weight_decay: float, lr: float) -> None:
    p0, grads = case(seed=int(lr * 1e4) + int(weight_decay * 10))
    ours = run_ours(p0, grads, lr, weight_decay, foreach)
    for contract_last in (True, False):
        param, exp_avg, exp_avg_sq = run_kernel(p0.numpy(), [g.numpy() for g in grads], lr, weight_decay,
                                                contract_last)
        # a weight that crosses zero is held to 1e-6 of lr (each step's atan2 may differ by an ulp of
        # step_size * atan2, about 1e-7 lr); the moments are the kernel's bit for bit
        assert_relative(ours[0], param, floor=lr)
        assert torch.equal(ours[1], torch.from_numpy(exp_avg)) and torch.equal(ours[2], torch.from_numpy(exp_avg_sq))
    # the package's test reference takes its lerp and the second moment's update from PyTorch (lines 36-37),
    # which round differently from the kernel's fmas: the weights agree to 1e-6 relative, the moments (which
    # pass near zero) within the package test's own float32 tolerance (lines 58 and 105-107: atol 1e-6) or
    # 1e-6 relative (the coordinates whose gradients jump to 1e3 have second moments near 1e6)
    param, exp_avg, exp_avg_sq = run_test_reference(p0, grads, lr, weight_decay)
    assert_relative(ours[0], param, floor=lr)
    torch.testing.assert_close(ours[1], exp_avg, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ours[2], exp_avg_sq, rtol=1e-6, atol=1e-6)
    # the comparison can fail: the weights moved by far more than the tolerance
    moved = ((ours[0] - p0).abs() / p0.abs()).max().item()
    assert moved > 1e-2


def test_the_first_bias_correction_scales_the_atan2s_output() -> None:
    """The issue's figure from the kernel's transcription: a unit gradient's first step moves a weight by
    atan(0.1) / 0.1 = 0.997 lr (with the correction inside the argument it would be atan(1) = 0.785 lr)."""
    lr = 1e-4
    kernel = run_kernel(np.array([1.0], F32), [np.array([1.0], F32)], lr, 0.0, contract_last=True)[0][0]
    w = torch.nn.Parameter(torch.tensor([1.0]))
    opt = AdamATan2([w], lr=lr, betas=(BETA1, BETA2), weight_decay=0.0)
    w.grad = torch.tensor([1.0])
    opt.step()
    assert (1.0 - kernel) / lr == pytest.approx(math.atan(0.1) / 0.1, rel=1e-3)
    assert w.item() == pytest.approx(float(kernel), rel=1e-7)


def test_the_step_never_passes_the_kernels_bound() -> None:
    """|atan2| < pi/2, so a step is at most step_size * pi / 2 = lr * pi / (2 (1 - beta1**t)) (lines 53, 82):
    15.7 lr on the first step, tending to lr * pi / 2; however the gradients' scales jump."""
    gen = torch.Generator().manual_seed(0)
    lr = 0.01
    w = torch.nn.Parameter(torch.zeros(1000))
    opt = AdamATan2([w], lr=lr, betas=(BETA1, BETA2), weight_decay=0.0)
    for t in range(1, 21):
        scale = 10.0 ** torch.randint(-12, 12, (1000,), generator=gen)
        w.grad = torch.randn(1000, generator=gen) * scale
        before = w.detach().clone()
        opt.step()
        biggest = (w.detach() - before).abs().max().item()
        assert biggest <= lr * math.pi / (2 * (1 - BETA1 ** t)) * (1 + 1e-6)
    assert torch.isfinite(w).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float64])
def test_other_weight_types_follow_the_kernels_math_type(dtype: torch.dtype) -> None:
    """bfloat16 weights are widened to float and narrowed back (lines 41-45, 56-58); double weights are
    updated in double (opmath_t of double): both stay within the package test's tolerances of the float32
    transcription (adam_atan2_test.py line 58: bfloat16 0.005)."""
    p0, grads = case(seed=3)
    w = torch.nn.Parameter(p0.to(dtype))
    opt = AdamATan2([w], lr=1e-3, betas=(BETA1, BETA2), weight_decay=0.1)
    for g in grads:
        w.grad = g.to(dtype)
        opt.step()
    assert w.dtype == dtype and opt.state[w]["exp_avg"].dtype == dtype
    reference = run_test_reference(p0.double(), [g.double() for g in grads], 1e-3, 0.1)[0]
    tol = 0.005 if dtype == torch.bfloat16 else 1e-12
    torch.testing.assert_close(w.detach().double(), reference, rtol=0, atol=tol)
