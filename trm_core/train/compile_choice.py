"""``train.compile = "auto"``: torch.compile where it pays, measured on the run itself.

A compile costs time before its first step (Dynamo traces the network, Inductor writes and builds kernels) and
may or may not make a step faster: on a GPU it fuses elementwise kernels and cuts launches, on a CPU it often
does little. Which one a run gets depends on the network, its shapes and the machine, so "auto" measures:

1. ``EAGER_WARMUP`` eager steps (allocations, first-call set-up), then ``MEASURED`` eager steps, timed.
2. A run whose eager remainder could not pay back ``COMPILE_GUESS_S`` ``PAYBACK_MARGIN`` times over stays eager
   without trying (a short run, or a fast one).
3. Otherwise the compiled network: its first step (the compile, timed), ``COMPILED_WARMUP`` more, ``MEASURED``
   timed. It stays when a compiled step is at least ``MIN_GAIN`` faster than an eager one (the compile is spent
   either way); the verdict says after how many steps the compile is paid back.
4. A compile that fails (no C compiler, an unsupported op) is a verdict too: eager, with the error.

The verdict is training state: it goes into the checkpoint, so a resumed or restarted run takes it at once
instead of measuring again (and, with the compile cache in the run dir, compiles from the cache).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

EAGER_WARMUP = 2
MEASURED = 5
COMPILED_WARMUP = 1
COMPILE_GUESS_S = 120.0  # a pessimistic compile time, before one is measured
PAYBACK_MARGIN = 2.0
MIN_GAIN = 0.03
TRIAL_STEPS = EAGER_WARMUP + MEASURED + 1 + COMPILED_WARMUP + MEASURED


@dataclass(frozen=True)
class CompileVerdict:
    compiled: bool
    reason: str
    eager_step_s: float | None = None
    compiled_step_s: float | None = None
    compile_s: float | None = None
    payback_steps: int | None = None  # compiled steps that pay for the compile


class CompileTrial:
    """The measuring, step by step: ``compiled_next`` says which network the next step runs, ``observe`` takes
    each finished step's time (measured alone: the worker reads every step while ``measuring``) and returns the
    verdict once there is one."""

    def __init__(self, steps_left: int, compile_guess_s: float = COMPILE_GUESS_S) -> None:
        self.steps_left, self.compile_guess_s = steps_left, compile_guess_s
        self.compiled_next = False
        self.verdict: CompileVerdict | None = None
        self._eager: list[float] = []
        self._compiled: list[float] = []
        self._compile_s: float | None = None  # the first compiled step: the compile and one step
        self._seen = 0
        if steps_left < 4 * TRIAL_STEPS and compile_guess_s > 0:
            self.verdict = CompileVerdict(False, f"{steps_left} steps to go: too few to measure whether a compile "
                                                 f"pays ({4 * TRIAL_STEPS} or more)")

    @property
    def measuring(self) -> bool:
        return self.verdict is None

    def observe(self, step_s: float) -> CompileVerdict | None:
        if self.verdict is not None:
            return None
        self._seen += 1
        left = self.steps_left - self._seen
        if not self.compiled_next:
            if self._seen > EAGER_WARMUP:
                self._eager.append(step_s)
            if len(self._eager) == MEASURED:
                return self._after_eager(left)
            return None
        if self._compile_s is None:
            self._compile_s = step_s
        elif self._seen > TRIAL_STEPS - MEASURED:
            self._compiled.append(step_s)
        if len(self._compiled) == MEASURED:
            return self._after_compiled(left)
        return None

    def failed(self, error: BaseException) -> CompileVerdict:
        """The compiled step raised: eager from here on."""
        self.compiled_next = False
        first_line = (str(error).strip().splitlines() or [""])[0][:200]
        return self._decide(CompileVerdict(False, f"the compile failed ({type(error).__name__}: {first_line})",
                                           eager_step_s=self._median(self._eager)))

    def _after_eager(self, left: int) -> CompileVerdict | None:
        eager = self._median(self._eager)
        if left * eager < PAYBACK_MARGIN * self.compile_guess_s:
            return self._decide(CompileVerdict(False, f"{left} steps to go take about {left * eager:.0f} s eager: "
                                               f"too little to pay for a compile (up to {self.compile_guess_s:.0f} s)",
                                               eager_step_s=eager))
        self.compiled_next = True
        return None

    def _after_compiled(self, left: int) -> CompileVerdict:
        eager, compiled = self._median(self._eager), self._median(self._compiled)
        compile_s = max(0.0, (self._compile_s or 0.0) - compiled)
        faster = compiled <= eager * (1 - MIN_GAIN)
        payback = int(compile_s / (eager - compiled)) + 1 if faster else None
        if faster:
            pays = f"paid back after {payback} steps" + ("" if payback <= left else f", more than the {left} to go")
            reason = (f"compiled steps {eager / compiled:.2f}x faster than eager; the {compile_s:.1f} s compile is "
                      f"{pays}")
        else:
            reason = (f"compiled steps not faster ({compiled * 1e3:.1f} ms against {eager * 1e3:.1f} ms eager, "
                      f"{MIN_GAIN:.0%} needed): eager from here on")
        self.compiled_next = faster
        return self._decide(CompileVerdict(faster, reason, eager_step_s=eager, compiled_step_s=compiled,
                                           compile_s=compile_s, payback_steps=payback))

    def _decide(self, verdict: CompileVerdict) -> CompileVerdict:
        self.verdict = verdict
        return verdict

    @staticmethod
    def _median(values: list[float]) -> float | None:
        return statistics.median(values) if values else None
