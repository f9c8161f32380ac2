"""The text of a run, shared by every front end: durations, the progress line, one line per notable event."""

from __future__ import annotations

import datetime

from trm_core.rundir.records import (Alert, AutotuneResult, AutotuneStart, AutotuneTrial, Checkpoint, CommandAck,
                                     CompileChoice, DepthStageEvent, ErrorEvent, TargetReached,
                                     Eval, Event, GiveUp, Heartbeat, KeeperEnd, KeeperStart, RankDown, Restart, RunEnd, RunStart, Stall, Step,
                                     WarningEvent)
from trm_core.telemetry import GpuSample


def duration(seconds: float | None) -> str:
    """H:MM:SS (days when longer), ``-`` when unknown; never negative."""
    return "-" if seconds is None else str(datetime.timedelta(seconds=int(max(0, seconds))))


def progress_line(step: Step, eta_s: float | None) -> str:
    total = step.total_steps or 0
    pct = f" ({100 * step.step / total:.1f}%)" if total else ""
    eta = f" | ETA {duration(eta_s)}" if eta_s is not None else ""
    task = f" masked acc {step.masked_accuracy:.3f}" if step.masked_accuracy is not None else \
        (f" exact {step.exact:.3f}" if step.exact is not None else "")
    return (f"step {step.step}/{total}{pct} epoch {step.epoch if step.epoch is not None else '?'} "
            f"loss {step.loss:.4f} acc {step.accuracy or 0:.3f}{task} | {step.samples_per_s or 0:.1f} samples/s{eta}")


def _aim(target: float | None, target_name: str | None) -> str:
    return f" ({target_name or 'target'} {target:.3f})" if target else ""


def best_text(best: float | None, target: float | None, target_name: str | None) -> str:
    """The run's best eval beside the score it aims at: ``0.640 (paper 0.874)``; ``-`` before any eval."""
    return ("-" if best is None else f"{best:.3f}") + _aim(target, target_name)


def eval_text(metric: str | None, score: float | None, best: float | None, best_step: int | None,
              target: float | None, target_name: str | None) -> str:
    """The newest eval by the task's figure, the run's best and the target: ``exact 0.612; best 0.640 at step
    4,500 (paper 0.874)`` (status's ``eval`` row)."""
    parts = [f"{metric} {score:.3f}"] if metric is not None and score is not None else []
    if best is not None:  # the newest eval may be older than the log's tail: the best is then all there is
        parts.append(f"best {best:.3f}" + (f" at step {best_step:,}" if best_step is not None else ""))
    return ("; ".join(parts) or "none yet") + _aim(target, target_name)


LONG_STEP_S = 5.0  # a step longer than this shows its progress from the heartbeats


def _parts(hb: Heartbeat) -> tuple[int | None, int | None]:
    """(done, total) of the phase: supervision steps in a step, batches in an eval."""
    return (hb.sup_step, hb.sup_steps) if hb.phase == "step" else (hb.batch, hb.batches)


def _phase_length_s(hb: Heartbeat) -> float | None:
    """The phase's length at the pace of its parts so far: for a step, if every supervision step runs (an
    upper bound: samples may halt early); for an eval, its batches."""
    done, total = _parts(hb)
    return hb.phase_s / done * total if done and total else None


def _is_long(hb: Heartbeat | None) -> bool:
    return hb is not None and hb.phase in ("step", "eval") and (hb.phase_s or 0) >= LONG_STEP_S


def step_progress_line(hb: Heartbeat) -> str | None:
    """Inside a long step (the seed's size takes minutes on a CPU) or a long eval (a whole ARC test split):
    how far, how long so far, and an estimate of its length. None for a short one or another phase."""
    if not _is_long(hb):
        return None
    done, total = _parts(hb)
    length = _phase_length_s(hb)
    if hb.phase == "eval":
        where = f", batch {done} of {total} done" if done else ""
        estimate = f", about {duration(length)} for the eval at this pace" if length is not None else ""
        return f"eval after step {hb.step} in progress{where}: {duration(hb.phase_s)} so far{estimate}"
    where = f", supervision step {done} of at most {total} done" if done else ""
    estimate = f", at most about {duration(length)} for the step at this pace" if length is not None else ""
    return f"step {hb.step} in progress{where}: {duration(hb.phase_s)} so far{estimate}"


def step_progress_short(hb: Heartbeat | None) -> str:
    """The same in a panel's width: ``sup 4/16  0:01:32/~0:06:08`` (supervision steps done, time so far,
    estimated length), ``eval 30/59  ...`` in an eval; empty when there is no long step or eval."""
    if hb is None or not _is_long(hb):
        return ""
    done, total = _parts(hb)
    length = _phase_length_s(hb)
    if length is not None:
        return f"{'sup' if hb.phase == 'step' else 'eval'} {done}/{total}  {duration(hb.phase_s)}/~{duration(length)}"
    return f"{hb.phase} {duration(hb.phase_s)} so far"


def event_line(ev: Event) -> str | None:
    """One line for a notable event (headless output, the dashboard's events pane); None for the rest."""
    match ev:
        case RunStart():
            # what matters first: a narrow events pane cuts the end of the line
            what = f"run resumed from step {ev.resumed_from}" if ev.resumed_from else "run started"
            where = f"{ev.world_size} ranks on {len(set(ev.hosts or [ev.host]))} host(s), {ev.backend}" \
                if (ev.world_size or 1) > 1 else f"pid {ev.pid} on {ev.device}"
            return f"{what}, {ev.total_steps or 0:,} steps: {where}, {ev.parameters or 0:,} parameters"
        case Checkpoint():
            name = str(ev.path or "").rsplit("/", 1)[-1]
            return f"checkpoint: step {ev.step} -> {name} ({ev.bytes / 2**20:.1f} MiB, {ev.seconds:.2f}s)"
        case Eval():
            masked = f" masked acc {ev.masked_accuracy:.3f}" if ev.masked_accuracy is not None else ""
            voted = f" pass@1 {ev.pass_at_1:.3f} pass@2 {ev.pass_at_2:.3f} ({ev.voted_puzzles} puzzles)" \
                if ev.pass_at_1 is not None and ev.pass_at_2 is not None else ""
            return (f"eval: step {ev.step} loss {ev.loss:.4f} acc {ev.accuracy:.3f}{masked} exact {ev.exact:.3f}"
                    + voted)
        case ErrorEvent():
            return f"error in step {ev.step}: {ev.message or ''}"
        case WarningEvent():
            return f"{ev.event}: {ev.message or ''}"
        case DepthStageEvent():
            return (f"depth stage {ev.stage} of {ev.stages} from step {ev.step}: T={ev.T} n={ev.n} "
                    f"(train.depth_schedule, from {ev.start:.0%} of the run)")
        case TargetReached():
            return (f"{ev.name} reached: {ev.score:.4f} >= {ev.target:.4f} at step {ev.step}, "
                    f"{duration(ev.seconds)} after the start ({ev.samples:,} samples)")
        case CompileChoice():
            return f"train.compile = 'auto' chose {'compiled' if ev.compiled else 'eager'}: {ev.reason}"
        case Stall():
            who = f" on rank {ev.rank} ({ev.host})" if ev.rank is not None else ""
            return f"stall{who}: {ev.phase} of step {ev.step} ran {ev.seconds}s (timeout {ev.timeout_s}s)"
        case RankDown():
            return f"rank {ev.rank} on {ev.host} took the group down: {ev.state}, {ev.reason} (log: {ev.log})"
        case Restart():
            return f"restart: the worker failed after step {ev.failed_step} ({ev.reason}); {ev.message}"
        case GiveUp():
            return f"giving up: the worker failed after step {ev.failed_step} ({ev.reason}); {ev.message}"
        case RunEnd():
            at = "after" if ev.status == "failed" else "at"  # a failed run's step is its last completed one
            return f"run ended: {ev.status} {at} step {ev.step} ({ev.reason or ''})" + (f"; {ev.score}" if ev.score else "")
        case KeeperStart():
            what = f"adopted the running worker (pid {ev.adopted})" if ev.adopted else "launching the worker"
            return f"keeper started (pid {ev.pid}): {what}"
        case CommandAck():
            verdict = "done" if ev.accepted else "refused"
            return f"{ev.command} from {ev.sender}: {verdict}, {ev.reason}"
        case Alert():
            return f"alert sent ({ev.kind}): {ev.message}"
        case KeeperEnd():
            return f"supervision over: {ev.reason}"
        case AutotuneStart():
            return (f"auto-tune: searching from batch {ev.batch_size} micro {ev.micro_batch_size} on "
                    f"{ev.device}, memory limit {ev.memory_limit_mb or 0:,.0f} MiB")
        case AutotuneTrial():
            return f"auto-tune trial: {trial_text(ev)}"
        case AutotuneResult():
            what = ", ".join(f"{k.split('.', 1)[1]} {a} -> {b}" for k, (a, b) in (ev.changed or {}).items()) \
                or "no change"
            speed = ""
            if ev.before_samples_per_s and ev.after_samples_per_s:
                speed = f" ({ev.before_samples_per_s:.1f} -> {ev.after_samples_per_s:.1f} samples/s)"
            return (f"auto-tune result: {what}{speed}" + (" [cancelled]" if ev.cancelled else "")
                    + (f". {ev.note}" if ev.note and ev.note.startswith("batch ") else ""))
    return None


def trial_text(ev: AutotuneTrial) -> str:
    """A trial, from its event fields: what was tried and what came of it."""
    what = f"micro {ev.micro_batch_size} threads {ev.threads or 'default'}"
    if ev.batch_size is not None:
        what = f"batch {ev.batch_size} " + what
    if ev.accepted:
        return f"{what}: {ev.samples_per_s:.1f} samples/s, peak {ev.peak_mb:,.0f} MiB"
    return f"{what}: rejected, {ev.reason}"


def gpu_line(g: GpuSample) -> str:
    """One GPU as ``trm-tui status`` prints it; N/A where the driver does not report a field."""
    def show(value: float | None, fmt: str, unit: str) -> str:
        return "N/A" if value is None else format(value, fmt) + unit
    memory = ("N/A" if g.mem_used_mb is None else
              f"{g.mem_used_mb / 1024:.1f}/{show(g.mem_total_mb and g.mem_total_mb / 1024, '.0f', '')} GiB")
    power = "N/A" if g.power_w is None else f"{g.power_w:.0f}/{show(g.power_limit_w, '.0f', '')} W"
    worker = "N/A" if g.worker_mem_mb is None else f"{g.worker_mem_mb / 1024:.2f} GiB"
    return (f"{g.index} {g.name}: util {show(g.util_pct, '.0f', '%')}, memory {memory}, "
            f"temp {show(g.temp_c, '.0f', ' C')}, power {power}, worker {worker}")
