"""The worker's side of ``train.compile = "auto"``: it runs ``CompileTrial`` on the run's own steps, switches
the trainer's network as the trial asks, and records the verdict (a ``compile`` event, the console, the
trainer's state, which checkpoints keep). A checkpoint's verdict is taken at once; a compile that fails in the
trial becomes an eager verdict and its step runs again eager."""

from __future__ import annotations

from typing import Callable

from trm_core.data.base import Batch
from trm_core.rundir.events import EventWriter, SilentLog
from trm_core.rundir.records import CompileChoice
from trm_core.train.compile_choice import CompileTrial, CompileVerdict
from trm_core.train.trainer import Trainer
from trm_core.worker.console import Console


class CompileDriver:
    def __init__(self, trainer: Trainer, mode: str, steps_left: int, events: EventWriter | SilentLog,
                 console: Console, compile_guess_s: float | None = None) -> None:
        self.trainer, self.events, self.console = trainer, events, console
        self.trial: CompileTrial | None = None
        if mode != "auto":
            return
        if trainer.compile_verdict is not None:  # a checkpoint's: no new trial
            trainer.use_compiled(trainer.compile_verdict)
            return
        guess = {} if compile_guess_s is None else {"compile_guess_s": compile_guess_s}
        trial = CompileTrial(steps_left, **guess)
        if trial.verdict is not None:  # too short to measure
            self._record(trial.verdict, trainer.step)
        else:
            self.trial = trial

    @property
    def measuring(self) -> bool:
        """While the trial times steps: the worker reads every step then, so each is timed alone."""
        return self.trial is not None and self.trial.measuring

    def queue_step(self, batch: Batch, step: int, progress: Callable[[int, int], None]) -> None:
        """The step, on the network the trial asks for."""
        trainer, trial = self.trainer, self.trial
        trying = self.measuring and trial.compiled_next
        if self.measuring:
            trainer.use_compiled(trial.compiled_next)
        try:
            trainer.queue_step(batch, on_progress=progress)
        except Exception as exc:  # noqa: BLE001 - any failure of a compiled trial step: eager is the fallback
            if not trying:
                raise
            trainer.abandon_step()
            self._record(trial.failed(exc), step - 1)
            trainer.queue_step(batch, on_progress=progress)

    def observe(self, step_s: float, step: int) -> None:
        """A measured step's time (with several ranks, the slowest rank's: every rank reaches one verdict)."""
        if self.measuring:
            verdict = self.trial.observe(step_s)
            if verdict is not None:
                self._record(verdict, step)

    def _record(self, verdict: CompileVerdict, step: int) -> None:
        self.trainer.compile_verdict = verdict.compiled
        self.trainer.use_compiled(verdict.compiled)
        self.events.emit(CompileChoice(step=step, compiled=verdict.compiled, reason=verdict.reason,
                                       eager_step_s=_rounded(verdict.eager_step_s),
                                       compiled_step_s=_rounded(verdict.compiled_step_s),
                                       compile_s=_rounded(verdict.compile_s, 3), payback_steps=verdict.payback_steps))
        self.console.say(f"trm worker: train.compile = 'auto': {'compiled' if verdict.compiled else 'eager'}, "
                         f"{verdict.reason}")


def _rounded(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)
