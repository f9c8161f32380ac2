"""Test-time compute: run a trained TRM for more (or fewer) supervision steps than it was trained with, let
each example stop when its halting head says so, as a deployed model would, and run several noisy
trajectories per example, keeping the one its halting head trusts most (``evaluate.test_time.trajectories``).

The recursion keeps improving an answer past the depth it was trained at (the paper's Sudoku-Extreme model is
reported near 96% at 128 recursion steps against 87.4% at 16); the reference evaluates at its training depth
and cannot halt at eval (TinyRecursiveModels issue #64). ``TestTime`` is the one description of how a model
is run at test time: ``trm-tui eval`` takes it from its flags, and it names the eval's folder and records
itself in metrics.json, so evals at different settings sit side by side.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from trm_core.config.schema import MAX_SUPERVISION_STEPS
from trm_core.evaluate.eval_model import EvalModel
from trm_core.evaluate.test_time.trajectories import Trajectories
from trm_core.train.halting import halt_logit_threshold


@dataclass(frozen=True)
class TestTime:
    """How a trained model runs at test time. ``None`` everywhere: as it was trained (today's eval)."""

    supervision_steps: int | None = None  # None: the trained model.max_supervision_steps
    halt: float | None = None             # a halting probability: each example stops above it; None: as trained
    trajectories: Trajectories = Trajectories()

    @classmethod
    def of_config(cls, cfg: Any) -> "TestTime":
        """A run's ``[eval]`` section (``cfg``: its whole Config), as settings."""
        e = cfg.eval
        return cls(e.supervision_steps or None, e.halt or None,
                   Trajectories(e.trajectories, e.noise, e.select, e.seed, e.settle, e.escalate))

    @classmethod
    def in_training(cls, cfg: Any) -> "TestTime":
        """What the in-training eval runs with: the run's ``[eval]`` when ``eval.in_training``, else as trained."""
        return cls.of_config(cfg) if cfg.eval.in_training else cls()

    def problem(self, halts_as_trained: bool) -> str | None:
        """What cannot run, naming the flag: escalating needs a halting head that decides who escalates."""
        if self.supervision_steps is not None and not 1 <= self.supervision_steps <= MAX_SUPERVISION_STEPS:
            return f"--supervision-steps must be between 1 and {MAX_SUPERVISION_STEPS}, not {self.supervision_steps}"
        if self.halt is not None and not 0 < self.halt < 1:  # NaN too
            return f"--halt {self.halt:g}: a halting probability is between 0 and 1"
        t = self.trajectories
        if t.escalate and self.halt is None and not halts_as_trained:
            return "--escalate needs --halt [P]: the plain trajectory's halting head decides who gets the K"
        return t.problem()

    def apply(self, ev: EvalModel) -> EvalModel:
        """The eval model run this way (a copy; the weights are shared)."""
        changes: dict[str, Any] = {"trajectories": self.trajectories}
        if self.supervision_steps is not None:
            changes["max_sup"] = self.supervision_steps
        if self.halt is not None:
            changes |= {"halt_in_eval": True, "halt_logit_threshold": halt_logit_threshold(self.halt)}
        return dataclasses.replace(ev, **changes)

    def steps(self, trained_steps: int) -> int:
        """The supervision steps an example may run: the flag's, else the trained count."""
        return self.supervision_steps or trained_steps

    def folder_suffix(self, trained_steps: int) -> str:
        """What an eval's folder name adds, so it never replaces the eval at the trained settings:
        ``-sup16``, ``-halt0.5``; nothing for the trained settings."""
        parts = []
        if self.steps(trained_steps) != trained_steps:
            parts.append(f"sup{self.supervision_steps}")
        if self.halt is not None:
            parts.append(f"halt{self.halt:g}")
        t = self.trajectories
        if t.active:
            parts.append(f"k{t.count}-noise{t.noise:g}-{t.select}" + (f"-settle{t.settle}" if t.settle else "")
                         + ("-escalate" if t.escalate else "") + (f"-seed{t.seed}" if t.seed else ""))
        return "".join(f"-{p}" for p in parts)

    def describe(self, trained_steps: int) -> str:
        """The settings in words, as a command's start line says them; empty at the trained settings."""
        parts = []
        if self.steps(trained_steps) != trained_steps:
            parts.append(f"{self.supervision_steps} supervision steps (trained with {trained_steps})")
        if self.halt is not None:
            parts.append(f"halting above {self.halt:g}")
        t = self.trajectories
        if t.active:
            parts.append(f"{t.count} trajectories, noise {t.noise:g}, kept by {t.select}"
                         + (f", settled at {t.settle} agreeing" if t.settle else "")
                         + (", for the examples one plain trajectory was not sure of" if t.escalate else "")
                         + f", seed {t.seed}")
        return ", ".join(parts)

    def record(self, model: Any) -> dict[str, Any]:
        """metrics.json's account of the settings the eval ran with, for a run whose model section is
        ``model``: its halting probability counts when its own eval halts (model.halt_in_eval)."""
        trained_halt = model.halt_threshold if model.halt_in_eval else None
        return {"supervision_steps": self.steps(model.max_supervision_steps),
                "trained_supervision_steps": model.max_supervision_steps,
                "halt_probability": self.halt if self.halt is not None else trained_halt} | self.trajectories.record()

    def context(self, model: Any) -> dict[str, Any]:
        """What a predictions folder's index says of how the model ran (the browser marks the steps past
        trained_supervision_steps), for a run whose model section is ``model``."""
        return {"halt_threshold": self.halt if self.halt is not None else model.halt_threshold,
                "halt_in_eval": self.halt is not None or model.halt_in_eval,
                "supervision_steps": self.steps(model.max_supervision_steps),
                "trained_supervision_steps": model.max_supervision_steps} | self.trajectories.record()


def steps_used(exit_steps: list[int], max_steps: int) -> dict[str, Any]:
    """How many supervision steps the examples used: the count that stopped after each step (1..N), the mean,
    and the share of the compute saved against running all N."""
    counts = [0] * max_steps
    for step in exit_steps:
        counts[int(step) - 1] += 1
    total = len(exit_steps)
    mean = sum(exit_steps) / total if total else None
    return {"steps_used": counts, "steps_used_mean": round(mean, 4) if mean is not None else None,
            "compute_saved": round(1 - mean / max_steps, 4) if mean is not None else None}
