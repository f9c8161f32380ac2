"""The test-time compute flags every command that runs a model takes (``eval``, ``solve``): supervision steps,
halting, and parallel noisy trajectories. One parser group, one reading into a ``TestTime``, one line that
says what is being run, so the commands cannot drift apart."""

from __future__ import annotations

import argparse
import math
from typing import Any

HALT_AS_TRAINED = -1.0  # --halt without P: the run's own model.halt_threshold
SELECTIONS = ("q", "vote")  # as evaluate.trajectories.SELECTIONS (not imported: --help stays free of torch)


def _read(text: str, kind: type, what: str) -> Any:
    """``text`` as ``kind`` (int or float), or argparse's refusal saying it is not ``what``."""
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None


def at_least_one(text: str) -> int:
    """An argparse type: a whole number of at least 1 (argparse names the flag and exits 2)."""
    value = _read(text, int, "a whole number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: must be at least 1")
    return value


def not_negative(text: str) -> float:
    """An argparse type: a finite number of 0 or more."""
    value = _read(text, float, "a number")
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{value:g}: must be 0 or more")
    return value


def probability(text: str) -> float:
    """An argparse type: a probability strictly between 0 and 1."""
    value = _read(text, float, "a number")
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{value:g}: a halting probability is between 0 and 1 (0.5: logit 0)")
    return value


def add_test_time_flags(p: argparse.ArgumentParser) -> None:
    think = p.add_argument_group("test-time compute (the same weights, run longer, stopped by their halting head, "
                                 "or as several noisy trajectories; each default is the run's [eval] section, "
                                 "the eval as trained unless it says otherwise)")
    think.add_argument("--supervision-steps", type=at_least_one, metavar="N", help="run N supervision steps, "
                       "more than training used if you like; exact_by_step covers all N")
    think.add_argument("--halt", type=probability, nargs="?", const=HALT_AS_TRAINED, metavar="P",
                       help="each example (each trajectory) stops once its halting head says so, as a deployed "
                       "model would: above probability P (default: the run's model.halt_threshold)")
    think.add_argument("--trajectories", type=at_least_one, metavar="K", help="run each example as K "
                       "trajectories side by side (one batched forward) and keep one answer (PTRM)")
    think.add_argument("--noise", type=not_negative, metavar="SIGMA", help="Gaussian noise of scale "
                       "SIGMA added to the latent before every deep recursion step, so trajectories differ")
    think.add_argument("--select", choices=SELECTIONS, help="the answer kept: the trajectory its "
                       "halting head is most confident in (q) or the most common answer (vote)")
    think.add_argument("--settle", type=int, metavar="M", help="stop an example's trajectories as soon "
                       "as M of them agree on the answer, and keep that answer: compute spent where it pays "
                       "(0: off)")
    think.add_argument("--escalate", action="store_true", default=None, help="run one plain trajectory first; "
                       "only the examples its halting head was never sure of run the K trajectories (needs --halt): "
                       "the compute goes to the hard examples")
    think.add_argument("--seed", type=int, help="the noise's seed: a rerun gives the same figures")
    think.add_argument("--as-trained", action="store_true", help="ignore the run's [eval] section: the settings "
                       "the model was trained with (each flag above still applies)")


def test_time_from(args: argparse.Namespace, cfg: Any) -> Any:
    """The ``TestTime`` to run: the run's ``[eval]`` section (``cfg`` its Config; none with ``--as-trained``),
    each flag given in its place; a ``ConfigError`` naming the flag where they contradict."""
    import dataclasses

    from trm_core.config import ConfigError
    from trm_core.evaluate.test_time.settings import TestTime

    base = TestTime() if args.as_trained else TestTime.of_config(cfg)
    flags = {"count": args.trajectories, "noise": args.noise, "select": args.select, "seed": args.seed,
             "settle": args.settle, "escalate": args.escalate}
    trajectories = dataclasses.replace(base.trajectories, **{k: v for k, v in flags.items() if v is not None})
    halt = base.halt if args.halt is None else cfg.model.halt_threshold if args.halt == HALT_AS_TRAINED else args.halt
    steps = args.supervision_steps if args.supervision_steps is not None else base.supervision_steps
    test_time = TestTime(steps, halt, trajectories)
    problem = test_time.problem(cfg.model.halt_in_eval)
    if problem:
        raise ConfigError(problem)
    return test_time


def test_time_text(test_time: Any, trained_steps: int, from_config: bool = False) -> str:
    """What a start line adds for test-time settings: nothing at the trained ones; else the settings, what they
    cost against the eval as trained (supervision steps x trajectories per example), and where they came from
    when no flag asked for them (the run's [eval] section, which a young model pays for too)."""
    said = test_time.describe(trained_steps)
    if not said:
        return ""
    k = test_time.trajectories.count
    cost = test_time.steps(trained_steps) * k / trained_steps
    if cost >= 2:
        upto = "up to " if test_time.halt is not None or test_time.trajectories.settle or \
            test_time.trajectories.escalate else ""
        said += (f"; {upto}{cost:,.0f}x the compute of the eval as trained ({test_time.steps(trained_steps)} "
                 f"supervision steps x {k} trajector{'y' if k == 1 else 'ies'} per example, against {trained_steps})")
    if from_config:
        said += "; from the run's [eval] section (--as-trained runs the eval as trained)"
    return "; " + said


def given_test_time_flags(argv: list[str]) -> list[str]:
    """The test-time flags named on a command line (what an ensemble refuses)."""
    names = ("--supervision-steps", "--halt", "--trajectories", "--noise", "--select", "--settle", "--seed",
             "--escalate", "--as-trained")
    return [a.split("=")[0] for a in argv if a.split("=")[0] in names]
