"""``trm-tui eval``: evaluate any checkpoint of a run (its EMA or raw weights, on the held-out or the training
split), write its metrics and predictions under ``RUN/evals/``, and optionally an ARC Prize submission; with
``--show``, browse the predictions (``trm-tui eval --show`` alone opens the newest eval)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TextIO

from trm_core.config import ConfigError
from trm_core.rundir.layout import EXIT_INTERRUPTED, RunDir
from trm_core.rundir import strict_json
from trm_tui.cli.common import model_args, run_dir_arg, run_or_model
from trm_tui.cli.compute_flags import add_test_time_flags, given_test_time_flags, test_time_from, test_time_text


def eval_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trm-tui eval", description="Evaluate a checkpoint of a run: every supervision "
                                "step, as the paper evaluates. Writes RUN/evals/step-N-WEIGHTS-SPLIT/ (metrics.json, "
                                "predictions/). Safe beside a live run: it takes no lock and writes only there.")
    run_dir_arg(p)
    model_args(p, "with --model: the dataset to evaluate it on (its test split, or --split train)")
    p.add_argument("--checkpoint", default="latest", metavar="latest|best|STEP",
                   help="which checkpoint: the newest (default), the one whose eval scored best in the log, or a step")
    p.add_argument("--checkpoints", metavar="A,B,...", help="ARC: an ensemble on purpose: each named checkpoint "
                   "(latest, best or a step) answers the test split and every answer votes in one count (what the "
                   "reference's aggregated voting does across its evals); writes RUN/evals/ensemble-A+B-WEIGHTS-test/")
    p.add_argument("--weights", choices=("ema", "raw"), help="the EMA weights (default, as the in-training eval, "
                   "when the run keeps them) or the raw ones")
    p.add_argument("--split", choices=("test", "train"), default="test", help="the held-out split (default) or the "
                   "training split")
    p.add_argument("--limit", type=int, metavar="N", help="the first N examples of the split only")
    p.add_argument("--batch-size", type=int, metavar="B", help="examples per batch (default: as many as memory "
                   "allows on a GPU, 256 on a CPU)")
    p.add_argument("--device", help="where to run it (default: the run's train.device): cpu, cuda, cuda:1, ...")
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object, for scripts")
    p.add_argument("--no-predictions", action="store_true", help="write metrics.json only")
    p.add_argument("--out", type=Path, metavar="DIR", help="write the eval's folder under DIR instead of RUN/evals "
                   "(another user's run, a read-only copy)")
    p.add_argument("--arc-submission", type=Path, metavar="FILE", help="ARC: also write the ARC Prize submission "
                   "(two voted attempts per test input) to FILE")
    p.add_argument("--solutions", type=Path, metavar="FILE", help="ARC: score the submission against this "
                   "solutions file, as the ARC Prize does")
    p.add_argument("--show", action="store_true", help="browse the predictions afterwards (alone: the newest eval)")
    add_test_time_flags(p)
    p.add_argument("--calibration", action="store_true", help="also print how far the halting head can be trusted "
                   "(its probability against the share right, a table and a chart) and what each --halt P would "
                   "score (always in metrics.json)")
    p.add_argument("--sweep", metavar="GRID", help="evaluate every combination of test-time settings, e.g. "
                   "\"steps=4,8,16 trajectories=1,4,16 noise=0,0.1\" (axes: steps, trajectories, noise, select, "
                   "settle, halt, escalate); prints a table and a chart of exact against compute, and writes "
                   "RUN/evals/sweep-step-N-WEIGHTS-SPLIT-GRID/metrics.json (Ctrl-C keeps the rows done)")
    return p


class EvalProgress:
    """Examples done, examples/s and the time left, on stderr: in place on a terminal, every 10% otherwise."""

    def __init__(self, stream: TextIO | None = None) -> None:
        stream = stream or sys.stderr  # the stderr of the moment (not the one at import), as print's own default
        self.stream, self.tty = stream, stream.isatty()
        self.started = time.monotonic()
        self._drawn, self._tenth = 0.0, -1

    def __call__(self, done: float, total: int) -> None:
        now = time.monotonic()
        rate = done / max(1e-9, now - self.started)
        eta = (total - done) / rate if rate > 0 else 0.0
        text = f"{done:,.0f}/{total:,} examples, {rate:,.1f}/s, {_clock(eta)} left"  # done: fractional within a batch
        if self.tty:
            if now - self._drawn < 0.1 and done < total:
                return
            self._drawn = now
            bar = "#" * int(30 * done / max(1, total))
            self.stream.write(f"\reval [{bar:<30}] {text}   " + ("\n" if done >= total else ""))
        elif int(10 * done / max(1, total)) != self._tenth:
            self._tenth = int(10 * done / max(1, total))
            self.stream.write(f"eval: {text}\n")
        self.stream.flush()


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


def cmd_eval(argv: list[str]) -> int:
    """SIGTERM (timeout, kill, a scheduler's end of job) ends an eval as Ctrl-C does: what was done is kept or
    discarded whole, and no hidden temporary folder is left behind."""
    import signal

    from trm_tui.signals import handling, interrupt

    with handling({signal.SIGTERM: interrupt}):
        return _eval(argv)


def _eval(argv: list[str]) -> int:
    args = eval_parser().parse_args(argv)
    if args.model is not None and args.dataset is None:
        raise ConfigError("--model: give --dataset DIR too, the puzzles to evaluate it on (a model folder holds "
                          "no data)")
    run = run_or_model(args, argv)
    if not run.root.is_dir():
        what = "is a file, not a run folder" if run.root.exists() else "does not exist"
        raise ConfigError(f"--run-dir {run.root}: the folder {what}")
    for flag in ("limit", "batch_size"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise ConfigError(f"--{flag.replace('_', '-')} {value}: must be at least 1")
    if args.solutions and not args.arc_submission:
        raise ConfigError("--solutions scores an ARC submission: give --arc-submission FILE too")
    if args.show and _only_show(argv):
        return show_newest(run)
    if args.checkpoints is not None:
        return cmd_ensemble(args, run, argv)
    from trm_core.evaluate import loaded as loading
    from trm_core.evaluate.session import run_eval

    evals = writable_evals(args.out or run.evals, run.root, args.out is not None)
    checkpoint = loading.load(run, args.checkpoint, args.weights, args.device)
    if args.arc_submission and checkpoint.voting is None:
        raise ConfigError("--arc-submission: this run's data is not an ARC set (no test_puzzles.json beside it)")
    if args.arc_submission and args.split != "test":
        raise ConfigError("--arc-submission: the submission answers the test split; drop --split train")
    if checkpoint.why:
        print(f"trm-tui eval: {checkpoint.why}", file=sys.stderr)
    test_time = test_time_from(args, checkpoint.cfg)
    if args.sweep is not None:
        return cmd_sweep(args, checkpoint, test_time, evals)
    settings = test_time_text(test_time, checkpoint.cfg.model.max_supervision_steps, not given_test_time_flags(argv))
    print(f"trm-tui eval: step {checkpoint.info.step} ({checkpoint.weights} weights), {args.split} split, on "
          f"{checkpoint.ev.device}{settings}", file=sys.stderr)
    try:
        outcome = run_eval(checkpoint, args.split, args.limit, args.batch_size, EvalProgress(),
                           save_predictions=not args.no_predictions, evals=evals, test_time=test_time)
    except KeyboardInterrupt:
        print("\ntrm-tui eval: interrupted; nothing written", file=sys.stderr)
        return EXIT_INTERRUPTED
    metrics = outcome.metrics | {"folder": str(outcome.folder)}
    escalated = metrics.get("escalated")
    if escalated is not None and escalated >= 0.9:  # why --escalate spent what it saves elsewhere
        print(f"trm-tui eval: --escalate: {escalated:.0%} of the examples ran the {test_time.trajectories.count} "
              f"trajectories: the plain trajectory's halting head was sure of almost nothing (a young model's is "
              f"not yet; its calibration: --calibration), so escalating saved little here", file=sys.stderr)
    if args.arc_submission:
        metrics |= arc_submission(outcome.folder, checkpoint.voting.tests, args.arc_submission, args.solutions)
    if args.json:
        print(strict_json.dumps(metrics))
    else:
        print_metrics(metrics)
        if args.calibration:
            from trm_tui.cli.calibration_view import print_calibration
            print_calibration(metrics, sys.stdout)
    if args.show:
        return show(outcome.folder)
    return 0


def cmd_sweep(args: argparse.Namespace, checkpoint, base, evals: Path) -> int:
    """``--sweep GRID``: one eval per combination, a table line as each finishes, the chart at the end."""
    from trm_core.evaluate.test_time.sweep import parse_sweep, run_sweep, sweep_path
    from trm_tui.cli.sweep_view import HEADER, print_sweep, row_line

    for flag, value in (("--arc-submission", args.arc_submission), ("--show", args.show)):
        if value:
            raise ConfigError(f"--sweep with {flag}: a sweep writes one table of figures, no predictions")
    points = parse_sweep(args.sweep, base, checkpoint.cfg.model.halt_in_eval)
    print(f"trm-tui eval: a sweep of {len(points)} settings over step {checkpoint.info.step} "
          f"({checkpoint.weights} weights), {args.split} split, on {checkpoint.ev.device}", file=sys.stderr)
    rows: list = []
    if not args.json:
        print(HEADER, flush=True)

    def on_row(row: dict) -> None:
        rows.append(row)
        if not args.json:
            print(row_line(row), flush=True)

    path = sweep_path(checkpoint, args.sweep, args.split, args.limit, evals)
    try:
        run_sweep(checkpoint, points, args.sweep, args.split, args.limit, args.batch_size, evals, on_row)
    except KeyboardInterrupt:
        print(f"\ntrm-tui eval: interrupted; {len(rows)} of {len(points)} settings done, kept", file=sys.stderr)
        if rows and not args.json:
            print_sweep(rows, str(path), len(points), sys.stdout)
        return EXIT_INTERRUPTED
    if args.json:
        print(strict_json.dumps({"sweep": args.sweep, "rows": rows, "file": str(path)}))
    else:
        print_sweep(rows, str(path), len(points), sys.stdout)
    return 0


def cmd_ensemble(args: argparse.Namespace, run: RunDir, argv: list[str]) -> int:
    """``--checkpoints A,B,...``: the named checkpoints' ARC answers voted in one count."""
    names = [n.strip() for n in args.checkpoints.split(",") if n.strip()]
    if len(names) < 2:
        raise ConfigError(f"--checkpoints {args.checkpoints!r}: name two or more checkpoints, comma-separated "
                          f"(latest, best or a step); one checkpoint is --checkpoint")
    given = [a.split("=")[0] for a in argv]
    if args.split != "test":
        raise ConfigError("--checkpoints with --split train: an ensemble votes on the test split")
    for flag, why in (("--checkpoint", "name the checkpoints in --checkpoints only"),
                      ("--show", "an ensemble has no predictions of one model to browse"),
                      ("--no-predictions", "an ensemble writes its metrics and votes only")):
        if flag in given:
            raise ConfigError(f"--checkpoints with {flag}: {why}")
    for flag in given_test_time_flags(argv):
        raise ConfigError(f"--checkpoints with {flag}: an ensemble runs each checkpoint as it was trained "
                          f"(test-time settings are for one checkpoint, for now)")
    from trm_core.evaluate import loaded as loading
    from trm_core.evaluate.arc.ensemble import arc_voting, refuse_repeats, run_ensemble

    evals = writable_evals(args.out or run.evals, run.root, args.out is not None)
    cfg, dataset, _task = loading.run_data(run)
    voting = arc_voting(cfg)  # before any checkpoint loads: refused for data that is not ARC
    members = [loading.load(run, name, args.weights, args.device, cfg=cfg, dataset=dataset, voting=voting)
               for name in names]
    for m in members:
        if m.why:
            print(f"trm-tui eval: {m.why}", file=sys.stderr)
    refuse_repeats(members)  # before the ensemble's first line
    print(f"trm-tui eval: an ensemble of steps {', '.join(str(m.info.step) for m in members)} "
          f"({members[0].weights} weights), test split, on {members[0].ev.device}", file=sys.stderr)
    try:
        outcome = run_ensemble(members, args.limit, args.batch_size, EvalProgress(), evals)
    except KeyboardInterrupt:
        print("\ntrm-tui eval: interrupted; nothing written", file=sys.stderr)
        return EXIT_INTERRUPTED
    metrics = outcome.metrics | {"folder": str(outcome.folder)}
    if args.arc_submission:
        metrics |= arc_submission(outcome.folder, voting.tests, args.arc_submission, args.solutions)
    if args.json:
        print(strict_json.dumps(metrics))
        return 0
    print(f"an ensemble of {len(members)} checkpoints on the test split: {metrics['examples']:,} examples each, "
          f"{metrics['seconds']:.1f} s")
    for m in metrics["members"]:
        print(f"  step {m['step']:>8}: pass@1 {m['pass@1']:.4f}  pass@2 {m['pass@2']:.4f}  exact {m['exact']:.4f}")
    print(f"  ensemble     : pass@1 {metrics['pass@1']:.4f}  pass@2 {metrics['pass@2']:.4f} (every member's "
          f"answers voted together)")
    if "submission" in metrics:
        print(f"  ARC Prize submission: {metrics['submission']} ({metrics['submission_tasks']} tasks)")
        if "arc_prize_score" in metrics:
            print(f"  ARC Prize score: {metrics['arc_prize_score']:.4f}")
    print(f"  written to {metrics['folder']}")
    return 0


def writable_evals(evals: Path, root: Path, given: bool) -> Path:
    """Where the eval's folder goes, checked before the checkpoint loads: a folder this user may write, or a
    clear error (another user's run is read, never written: --out puts the eval elsewhere)."""
    if evals.exists() and not evals.is_dir():
        raise ConfigError(f"{'--out ' if given else ''}{evals} is a file, not a folder; evals are written into a folder")
    try:
        evals.mkdir(parents=True, exist_ok=True)
        if os.access(evals, os.W_OK | os.X_OK):
            return evals
        why = "Permission denied"
    except OSError as exc:
        why = exc.strerror or str(exc)
    from trm_core.rundir.ownership import run_owner, who

    owner = run_owner(root)
    whose = f" (the run belongs to {who(owner)})" if owner is not None and owner != os.geteuid() else ""
    hint = "" if given else "; give --out DIR to write the eval somewhere you can"
    raise ConfigError(f"cannot write the eval under {evals}: {why}{whose}{hint}")


def _only_show(argv: list[str]) -> bool:
    """``--show`` with nothing that asks for a new eval: open the newest one."""
    asks = ("--checkpoint", "--checkpoints", "--weights", "--split", "--limit", "--batch-size", "--device", "--arc-submission",
            "--no-predictions", "--sweep")
    return not any(a.split("=")[0] in asks for a in argv) and not given_test_time_flags(argv)


def arc_submission(folder: Path, tasks: dict, path: Path, solutions: Path | None) -> dict:
    from trm_core.evaluate.arc import submission
    from trm_core.evaluate.predictions import ARC_VOTES

    votes = json.loads((folder / ARC_VOTES).read_text())
    sub, missing = submission.build(votes, tasks)
    submission.write(path, sub)
    out: dict = {"submission": str(path), "submission_tasks": len(sub), "unanswered_inputs": missing}
    if solutions is not None:
        scored = submission.score(sub, submission.read_solutions(solutions))
        out |= {"arc_prize_score": scored["score"], "arc_prize_tasks": scored["tasks"],
                "arc_prize_solved_tasks": scored["solved_tasks"]}
    return out


def print_metrics(m: dict) -> None:
    print(f"step {m['step']} ({m['weights']} weights) on the {m['split']} split: {m['examples']:,} examples in "
          f"{m['seconds']:.1f} s ({m['examples_per_s']:,.1f} examples/s, batch {m['batch_size']}, {m['device']})")
    figures = [("exact", m.get("exact")), ("accuracy", m.get("accuracy")),
               ("masked acc", m.get("masked_accuracy")), ("pass@1", m.get("pass@1")), ("pass@2", m.get("pass@2")),
               ("loss", m.get("loss")), ("steps used", m.get("sup_steps")), ("halting at", m.get("halt_step_mean"))]
    print("  " + "  ".join(f"{name} {value:.4f}" for name, value in figures if isinstance(value, float)))
    by_step = m.get("exact_by_step") or []
    if by_step:
        print("  solved after each supervision step: " + " ".join(f"{k}:{v:.3f}" for k, v in enumerate(by_step, 1)))
    if m.get("halt_probability") is not None and m.get("steps_used_mean") is not None:
        print(f"  halting above {m['halt_probability']:g}: {m['steps_used_mean']:.2f} of {m['supervision_steps']} "
              f"steps on average, {100 * m['compute_saved']:.0f}% of the compute saved; stopped after each step: "
              + " ".join(f"{k}:{n}" for k, n in enumerate(m.get("steps_used") or [], 1)))
    if m.get("forward_steps") is not None:
        print(f"  {m['trajectories']} trajectories (noise {m['noise']:g}, kept by {m['select']}"
              + (", after one plain trajectory" if m.get("escalate") else "") + f"): {m['forward_steps']:.1f} "
              f"supervision steps run per example over all of them (the steps above are the kept one's)")
    if "submission" in m:
        line = f"  ARC Prize submission: {m['submission']} ({m['submission_tasks']} tasks"
        line += f", {m['unanswered_inputs']} test inputs unanswered)" if m["unanswered_inputs"] else ")"
        print(line)
        if "arc_prize_score" in m:
            print(f"  ARC Prize score: {m['arc_prize_score']:.4f} ({m['arc_prize_solved_tasks']} of "
                  f"{m['arc_prize_tasks']} tasks solved whole)")
    print(f"  written to {m['folder']}")


def show_newest(run: RunDir) -> int:
    from trm_core.evaluate.predictions import newest_eval

    folder = newest_eval(run.evals)
    if folder is None:
        raise ConfigError(f"{run.evals}: no eval with predictions yet; run trm-tui eval --run-dir {run.root} first")
    return show(folder)


def show(folder: Path) -> int:
    from trm_tui.predictions.browser_app import PredictionsApp

    if not (sys.stdout.isatty() and sys.stdin.isatty()):
        raise ConfigError("--show draws in a terminal; this is not one")
    PredictionsApp(folder).run()
    return 0
