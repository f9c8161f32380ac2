"""Every kind of event in ``RUN_DIR/events.jsonl``, defined once as a typed record.

The writers (worker, watchdog, supervisor, auto-tune) build these records; ``EventWriter.emit`` turns one
into a line. Readers turn a line back into a record with ``parse``. The log-format doc's events section is
generated from the classes below (``python -m trm_core.rundir.records``; a test keeps the doc equal to it),
so the schema lives here and only here.

Compatibility: a line from a newer writer stays readable. An unknown kind parses as ``Unknown``; unknown
fields land in ``extra``; a field an older writer did not write reads as its default (``None``).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

SCHEMA_VERSION = 1


def doc(text: str, *, optional: bool = False, key: str | None = None) -> Any:
    """A record field: what it means (for the doc). A writer must give every field, except an ``optional``
    one, which the line leaves out while it is ``None`` (a field only some events of the kind carry). ``key``
    is the line's name for it where that is no Python name (``pass@1``)."""
    meta = {"doc": text, "optional": optional, "key": key}
    return field(default=None, metadata=meta) if optional else field(metadata=meta)


@dataclass(frozen=True)
class Event:
    """The base of every record. ``time`` and ``v`` are stamped by the writer; ``extra`` holds fields this
    version does not know (a newer writer's)."""

    KIND: ClassVar[str] = ""
    WRITER: ClassVar[str] = "the worker"
    time: float = field(default=0.0, compare=False, kw_only=True,
                        metadata={"doc": "unix seconds, microsecond resolution"})
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False, kw_only=True)

    @property
    def event(self) -> str:
        """The kind, as the line's ``event`` field names it."""
        return self.KIND

    def payload(self) -> dict[str, Any]:
        """The fields a line carries after ``event``, ``time`` and ``v``, in declaration order."""
        return _fill({}, self)


def record_fields(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if f.name not in ("time", "extra")]


def line_key(f: dataclasses.Field) -> str:
    """The name a line gives the field: its own, or the ``key`` it was declared with."""
    return f.metadata.get("key") or f.name


@functools.cache
def _line_fields(cls: type) -> tuple[tuple[str, str, bool], ...]:
    """(attribute, line key, optional) of each field a line of ``cls`` carries: looked up once per kind."""
    return tuple((f.name, line_key(f), bool(f.metadata.get("optional"))) for f in record_fields(cls))


def _fill(out: dict[str, Any], record: Event) -> dict[str, Any]:
    for name, key, optional in _line_fields(type(record)):
        value = getattr(record, name)
        if value is None and optional:
            continue
        out[key] = value
    return out


# -- the worker's events ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunStart(Event):
    """Each start of the worker, after the checkpoint (if any) is restored and before the first step."""

    KIND: ClassVar[str] = "run_start"
    config: dict = doc("the resolved config, as in `RUN_DIR/config.toml`")
    config_hash: str = doc("short sha256 of the resolved config, also in every checkpoint's sidecar")
    pid: int = doc("the worker's process id")
    host: str = doc("the host name")
    device: str = doc("`cpu`, `cuda` or `cuda:N`")
    world_size: int = doc("processes (ranks) training this run together")
    resumed_from: int | None = doc("the step of the checkpoint loaded, or `null`")
    overrides: list = doc("the `--set` items given on this start")
    total_steps: int = doc("the steps this run trains: `train.max_steps`, or the batches its epochs hold (for a "
                           "puzzle set, the batches the reference's loop trains)")
    steps_per_epoch: int = doc("batches in one pass over the training split; 0 when a pass holds fewer examples than "
                               "a batch (a small puzzle set, whose batches span several passes)")
    parameters: int = doc("trainable parameters of the model")
    data: str = doc("a description of the dataset")
    torch: str = doc("torch version")
    threads: int = doc("torch CPU threads in use")
    backend: str | None = doc("with several ranks: the torch.distributed backend (`nccl`, `gloo`)", optional=True)
    hosts: list | None = doc("with several ranks: each rank's host name, in rank order", optional=True)
    weights_from: str | None = doc("where the starting weights came from: `train.init_from`'s source (a run's "
                                   "checkpoint, a model folder, a hub repo), or for a run `trm-tui import` wrote, "
                                   "the checkpoint it converted", optional=True)
    imported: bool | None = doc("`true` in a run `trm-tui import` (or `--model`) wrote: weights alone, no optimizer "
                                "state, nothing to resume", optional=True)
    schedule_steps: int | None = doc("the learning-rate schedule's horizon when it is not `total_steps`: a puzzle set "
                                     "by epochs, where the reference's cosine runs over its `total_steps` formula "
                                     "(epochs x groups x mean examples / batch), a step or more past the last one "
                                     "trained", optional=True)

    @property
    def weights_source(self) -> str | None:
        """Where the run's first weights came from: the start that loaded them says; a resumed start, its config's
        train.init_from (status and the model card ask)."""
        train = self.config.get("train", {}) if isinstance(self.config, dict) else {}
        return self.weights_from or train.get("init_from") or None


@dataclass(frozen=True)
class Step(Event):
    """Every `train.log_every` steps, and the step the run ends or stops on. The figures are this step's; `step_s` (and the
    speeds from it) is the mean over the steps since the figures were last read (the steps the worker logs,
    evaluates, checkpoints or prints a line for): on a GPU those steps are queued while earlier ones run, so
    one step's own time is not known."""

    KIND: ClassVar[str] = "step"
    step: int = doc("1-based, increasing across resumes")
    total_steps: int = doc("`train.max_steps`, or epochs x steps per epoch")
    epoch: int = doc("1-based epoch of this step's batch")
    data_s: float = doc("wall seconds spent building the step's batch, before `step_s`")
    loss: float = doc("mean cross-entropy over every (sample, supervision step) pair of the step")
    halt_loss: float = doc("mean halting BCE over the same pairs")
    accuracy: float = doc("token accuracy of each sample's prediction at the supervision step it left at, averaged "
                          "(over the positions that have a target)")
    masked_accuracy: float | None = doc("code: accuracy on the hidden (masked) bytes alone, the task's real score; "
                                        "`null` for other tasks")
    exact: float = doc("fraction of samples whose answer was fully correct when they left")
    lr: float = doc("learning rate used by this step")
    grad_norm: float = doc("gradient norm before clipping, averaged over the step's updates")
    samples_per_s: float = doc("`batch_size / step_s`")
    tokens_per_s: float = doc("`samples_per_s` times `seq_len`")
    step_s: float = doc("wall seconds of a step's compute (forward, backward, updates, freeing its tensors), the "
                        "mean over the steps since the last read, the wait for the device included")
    sup_steps: float | None = doc("mean number of supervision steps the samples used (with `train.carry = "
                                  "\"refill\"`: those that left their slot this step; `null` when none did)")
    updates: int = doc("optimizer updates in this step (one per supervision step run)")
    peak_mem_mb: float = doc("peak CUDA allocation on GPU; peak RSS of the worker on CPU")
    world_size: int | None = doc("with several ranks: how many; `samples_per_s` is then the global batch over rank "
                                 "0's step time", optional=True)
    slowest_step_s: float | None = doc("with several ranks: the longest `step_s` of any rank this step",
                                       optional=True)
    slowest_rank: int | None = doc("with several ranks: which rank that was", optional=True)
    completed: int | None = doc("`train.carry = \"refill\"`: samples that left their slot this step (halted, or "
                                "at `max_supervision_steps`); `loss`, `accuracy` and `exact` are then over every "
                                "slot at its current supervision step", optional=True)


@dataclass(frozen=True)
class Eval(Event):
    """Every `train.eval_every` steps (or at the end of every `train.eval_every_epochs` epochs and of the
    run), on `train.eval_batches` fixed held-out batches, with the EMA weights
    (when `train.ema_decay > 0`). Metrics are taken at each sample's exit, as in `step`."""

    KIND: ClassVar[str] = "eval"
    step: int = doc("the step just finished")
    epoch: int = doc("1-based epoch of that step")
    seconds: float = doc("wall seconds of the eval")
    loss: float = doc("mean cross-entropy")
    accuracy: float = doc("token accuracy (over the positions that have a target)")
    masked_accuracy: float | None = doc("code: accuracy on the hidden (masked) bytes alone; `null` for other tasks")
    exact: float = doc("fraction of samples fully correct")
    sup_steps: float = doc("mean supervision steps used")
    samples: int = doc("held-out samples evaluated")
    forward_steps: float | None = doc("with `[eval]` trajectories (`eval.trajectories > 1` or `eval.noise > 0`): "
                                      "the supervision steps run per sample over all its trajectories, its compute "
                                      "(the figures above are the kept trajectories')", optional=True)
    escalated: float | None = doc("with `eval.escalate`: the share of samples whose plain trajectory's halting head "
                                  "was never sure, which ran the K trajectories (near 1 on a young model: its "
                                  "head is sure of nothing yet)", optional=True)
    pass_at_1: float | None = doc(
        "ARC: the share of the original test puzzles solved by the most voted answer. Each prediction is "
        "cropped at its end-of-grid marks and mapped back through its augmentation's inverse; the answers to one "
        "original test input are ranked by votes, then mean halting confidence; a puzzle scores the share of its "
        "test inputs answered. Over the puzzles the eval saw (all of them when `train.eval_batches = 0`)",
        optional=True, key="pass@1")
    pass_at_2: float | None = doc("ARC: the same with the two most voted answers (the ARC Prize's two attempts)",
                                  optional=True, key="pass@2")
    voted_puzzles: int | None = doc("ARC: original test puzzles the pass@k figures are over", optional=True)
    best_score: float | None = doc(
        "the run's best eval so far by the task's figure (the code task's `masked_accuracy`, ARC's `pass@2`, else "
        "`exact`), this eval included; carried across restarts and resumes from the log's newest eval",
        optional=True)
    best_step: int | None = doc("the step of that best eval (the earliest, on a tie)", optional=True)


@dataclass(frozen=True)
class Checkpoint(Event):
    """After a checkpoint is durably on disk (the .pt, then its sidecar, then the folder fsynced)."""

    KIND: ClassVar[str] = "checkpoint"
    step: int = doc("the step saved")
    epoch: int = doc("its epoch")
    path: str = doc("the .pt file")
    bytes: int = doc("its size")
    seconds: float = doc("wall seconds of the save")


@dataclass(frozen=True)
class Heartbeat(Event):
    """Written by the watchdog when nothing else was written for `train.heartbeat_s` seconds."""

    KIND: ClassVar[str] = "heartbeat"
    step: int = doc("the step in progress, or the last finished")
    phase: str = doc("`step`, `eval`, `checkpoint`, `restore` or `idle`")
    phase_s: float = doc("how long the phase has been running")
    sup_step: int | None = doc("in a step: supervision steps finished so far", optional=True)
    sup_steps: int | None = doc("in a step: the most it can take (`model.max_supervision_steps`)", optional=True)
    batch: int | None = doc("in an eval: held-out batches finished so far", optional=True)
    batches: int | None = doc("in an eval: the batches it runs", optional=True)


@dataclass(frozen=True)
class Stall(Event):
    """A phase ran longer than `train.step_timeout_s` (an eval: one of its batches did, since a whole-split eval
    may rightly outlast any step). Followed by `run_end` (`failed`, reason `stalled`) and exit code 3."""

    KIND: ClassVar[str] = "stall"
    step: int = doc("the step of the phase")
    phase: str = doc("the phase that hung")
    seconds: float = doc("how long it had run")
    timeout_s: float = doc("`train.step_timeout_s`")
    threads: list = doc("`{\"thread\": name, \"stack\": text}` with the Python stack of every thread")
    rank: int | None = doc("with several ranks: the rank that hung (the keeper writes this event for a rank other "
                           "than 0, from its rank file)", optional=True)
    host: str | None = doc("with several ranks: that rank's host", optional=True)


@dataclass(frozen=True)
class WarningEvent(Event):
    """Something the user should know that did not stop the run: a checkpoint that did not verify and was
    skipped on resume (renamed to `*.pt.corrupt` / `*.json.corrupt`, kept for inspection and never counted
    again), or a resume that found no checkpoint at all."""

    KIND: ClassVar[str] = "warning"
    message: str = doc("what happened")
    about: str | None = doc("what a front end may act on: `crowded_cpu` (the run's speed collapsed while other "
                            "processes hold the cores; the dashboard shows an alert naming auto-tune)", optional=True)


@dataclass(frozen=True)
class DepthStageEvent(Event):
    """`train.depth_schedule`: the run enters a stage of its depth curriculum (also the stage a start or resume
    begins in)."""

    KIND: ClassVar[str] = "depth_stage"
    step: int = doc("the first step run at this depth")
    stage: int = doc("the stage, from 1")
    stages: int = doc("the schedule's stages")
    T: int = doc("refinement blocks per supervision step in this stage")
    n: int = doc("latent steps per refinement block in this stage")
    start: float = doc("the fraction of the run's steps the stage starts at")


@dataclass(frozen=True)
class TargetReached(Event):
    """The first eval whose task figure reached `train.target_score`: the time to target, a recipe's measure."""

    KIND: ClassVar[str] = "target_reached"
    step: int = doc("the eval's step")
    score: float = doc("the figure it reached")
    target: float = doc("`train.target_score`")
    name: str = doc("`train.target_name`")
    seconds: float = doc("wall seconds since the run's first start (pauses between a stop and a resume "
                         "included)")
    train_seconds: float = doc("seconds the worker spent training, summed over its starts")
    samples: int = doc("training samples seen: steps x the global batch")


@dataclass(frozen=True)
class CompileChoice(Event):
    """`train.compile = "auto"` made its choice, from the run's own steps timed eager and compiled (or without
    compiling: a run too short to pay for one, or a compile that failed). Kept in the run's checkpoints: a resumed
    or restarted run takes it without measuring again."""

    KIND: ClassVar[str] = "compile"
    step: int = doc("the last step measured")
    compiled: bool = doc("whether the run goes on compiled")
    reason: str = doc("why, in words: the speed-up and when the compile is paid back, or why not")
    eager_step_s: float | None = doc("median eager step, seconds; `null` if not measured")
    compiled_step_s: float | None = doc("median compiled step, seconds; `null` if not measured", optional=True)
    compile_s: float | None = doc("seconds the compile added to its first step", optional=True)
    payback_steps: int | None = doc("compiled steps that pay the compile back", optional=True)


@dataclass(frozen=True)
class ErrorEvent(Event):
    """The run failed. The failed step does not count as done: `run_end.step` is the last completed step.
    Followed by `run_end` `failed` and exit code 1, 5 when the disk is full, or 2 when what the config asked
    for cannot be (train.init_from's weights): the keeper restarts none of those but 1 and 5."""

    KIND: ClassVar[str] = "error"
    message: str = doc("what failed")
    kind: str = doc("`non_finite`, `exception`, `config` (the config asks for what cannot be; the message names "
                    "it), `disk_full` (the message says which path and how much was "
                    "free; the keeper waits for space, then restarts the run), or `peer_lost` (with several ranks: "
                    "another rank died or hung up; a `rank_down` event from the keeper names it)")
    step: int = doc("the step being worked on: the step that failed, or the last finished one when an eval or "
                    "a checkpoint save failed")
    traceback: str | None = doc("for exceptions: the Python traceback", optional=True)


@dataclass(frozen=True)
class RunEnd(Event):
    """The worker's last word before it exits. When a user kills the worker (`trm-tui stop --force`, the
    dashboard's `K`), it has no last word: the keeper writes this for it, with `forced: true`."""

    KIND: ClassVar[str] = "run_end"
    status: str = doc("`completed`, `stopped` or `failed`")
    step: int = doc("the last completed step")
    exit_code: int | None = doc("the worker's exit code (see the user guide); `null` when it was killed and the "
                                "keeper did not launch it")
    reason: str = doc("`finished`; for a stop, what asked when a front end or the keeper said so in stop.request "
                      "(`Ctrl-C in trm-tui --no-ui`, `s in the dashboard`, `trm-tui stop`, `auto-tune (trials "
                      "next)`), else the signal name; `stalled`, `non-finite loss`, the exception type, for a "
                      "forced stop `second signal N: exited without a checkpoint`, or `killed on request`")
    seconds: float | None = doc("on a normal end: the worker's wall seconds", optional=True)
    forced: bool | None = doc("`true` when the worker exited at once, without a checkpoint: a second stop signal, "
                              "or killed on request", optional=True)
    score: str | None = doc("on a normal end after an eval: the newest held-out figure that fits the task, beside "
                            "what learning nothing would score (`held-out masked-byte accuracy 0.437 (always "
                            "guessing the most common byte: 0.302)`)", optional=True)


# -- the keeper's events (the supervisor inside it) -------------------------------------------------------

@dataclass(frozen=True)
class Restart(Event):
    """The worker failed (exit 1 or 3, or vanished without `run_end`) and will be relaunched with `--resume`."""

    KIND: ClassVar[str] = "restart"
    WRITER: ClassVar[str] = "the keeper"
    attempt: int = doc("restarts in the current window, this one included")
    failed_step: int = doc("the last completed step")
    exit_code: int | None = doc("`null` when the supervisor did not launch the worker")
    reason: str = doc("the `run_end` reason, or `exit code N`, or `worker vanished`")
    delay_s: float = doc("the backoff before the relaunch")
    message: str = doc("the restart policy's verdict, for people")


@dataclass(frozen=True)
class RankDown(Event):
    """With several ranks: the group went down, and this rank took it down (the keeper's post-mortem of the rank
    files in `RUN_DIR/ranks/`). Written before the `restart` or `give_up` it leads to."""

    KIND: ClassVar[str] = "rank_down"
    WRITER: ClassVar[str] = "the keeper"
    rank: int = doc("the global rank")
    host: str = doc("its host")
    pid: int = doc("its process id")
    state: str = doc("`stalled`, `failed`, or `killed` (it died without a word: a signal, the OOM killer)")
    step: int = doc("the step it was in, or had last finished")
    exit_code: int | None = doc("its exit code when it wrote one; a negative number is the signal that ended it "
                                "(from torchrun's report)")
    reason: str = doc("how it ended, in words")
    log: str = doc("its log file (stacks of a stall, a traceback)")


@dataclass(frozen=True)
class GiveUp(Event):
    """The restart policy refused another restart (it failed again at the same step, or
    `supervisor.max_restarts` restarts happened within `supervisor.restart_window_s`); the keeper ends with 1."""

    KIND: ClassVar[str] = "give_up"
    WRITER: ClassVar[str] = "the keeper"
    failed_step: int = doc("the last completed step")
    exit_code: int | None = doc("the worker's exit code, `null` when unknown")
    reason: str = doc("why the worker failed")
    message: str = doc("why no restart")


@dataclass(frozen=True)
class KeeperStart(Event):
    """A keeper took charge of the run: it launches the worker, or adopts the one already running (after a
    keeper died, or a run started before keepers existed)."""

    KIND: ClassVar[str] = "keeper_start"
    WRITER: ClassVar[str] = "the keeper"
    pid: int = doc("the keeper's process id")
    adopted: int | None = doc("the pid of the live worker it adopted, or `null` when it launches one")
    launch: list = doc("the flags it launches (and relaunches) the worker with")


@dataclass(frozen=True)
class CommandAck(Event):
    """The keeper's answer to a client's command (from `commands/`): every client shows it."""

    KIND: ClassVar[str] = "command"
    WRITER: ClassVar[str] = "the keeper"
    id: str = doc("the command's id, as the client wrote it")
    command: str = doc("`stop`, `kill`, `cancel_restart`, `autotune` or `cancel_autotune`")
    sender: str = doc("who sent it, e.g. `dashboard pid 4242`")
    accepted: bool = doc("whether the keeper acts on it")
    reason: str = doc("what it does, or why it refuses")


@dataclass(frozen=True)
class KeeperEnd(Event):
    """The keeper's last word: supervision is over (the run completed, was stopped, gave up, or the worker
    refused its config). A client that followed the run exits with `exit_code`."""

    KIND: ClassVar[str] = "keeper_end"
    WRITER: ClassVar[str] = "the keeper"
    exit_code: int = doc("0 completed or stopped, 1 failed beyond its restarts, 2 the worker refused its config")
    reason: str = doc("why supervision ended")


@dataclass(frozen=True)
class Alert(Event):
    """The keeper told someone (`[alerts]`): its command ran with this record as a JSON line on stdin. A
    command that fails or hangs is a `warning`, never a disturbance to training."""

    KIND: ClassVar[str] = "alert"
    WRITER: ClassVar[str] = "the keeper"
    kind: str = doc("`stalled`, `crashed`, `gave_up`, `completed`, `checkpoint_stale` or `disk_low`")
    step: int | None = doc("the run's newest step when it fired")
    message: str = doc("what happened, for people")
    trigger: dict | None = doc("the log line that fired it (`null` for the keeper's own checks: a stale "
                               "checkpoint, a low disk)")


# -- auto-tune's events -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class AutotuneStart(Event):
    """A search begins, after the run was stopped."""

    KIND: ClassVar[str] = "autotune_start"
    WRITER: ClassVar[str] = "auto-tune"
    step: int = doc("of the newest checkpoint")
    batch_size: int = doc("the current `train.batch_size`")
    micro_batch_size: int = doc("the current micro-batch")
    threads: int = doc("the current `train.threads`")
    memory_limit_mb: float = doc("host memory a trial may use")
    device: str = doc("`cpu` or `cuda`")
    cores: int = doc("thread counts are searched up to this; 0 on CUDA")
    max_seconds: float = doc("`autotune.max_seconds`")
    allow_batch_change: bool = doc("whether larger batches are tried")
    note: str = doc("why a batch change was not applied, or empty")


@dataclass(frozen=True)
class AutotuneTrial(Event):
    """One candidate, measured in its own process."""

    KIND: ClassVar[str] = "autotune_trial"
    WRITER: ClassVar[str] = "auto-tune"
    batch_size: int = doc("the candidate's effective batch")
    micro_batch_size: int = doc("its micro-batch")
    threads: int = doc("its thread count (the real count when the run uses torch's default)")
    accepted: bool = doc("whether it may be chosen")
    samples_per_s: float | None = doc("measured speed; `null` when not measured")
    peak_mb: float | None = doc("MiB: peak RSS on CPU, max allocated on CUDA; `null` when not measured")
    reason: str = doc("why rejected: `over the memory limit (...)`, `out of memory`, `crashed (exit N): last line "
                      "of its stderr`, `out of time`, `too slow (over N s, a quarter of autotune.max_seconds)`, "
                      "`cancelled`; empty when accepted")
    seconds: float = doc("the trial's wall time, process start included")


@dataclass(frozen=True)
class AutotuneResult(Event):
    """The search's choice, after it is written into the run's config."""

    KIND: ClassVar[str] = "autotune_result"
    WRITER: ClassVar[str] = "auto-tune"
    changed: dict = doc("`{\"train.KEY\": [before, after]}`, empty when the current settings stay")
    before_samples_per_s: float | None = doc("the current settings' speed")
    after_samples_per_s: float | None = doc("the chosen settings' speed (equal to before when nothing changed or "
                                            "the search was cancelled)")
    trials: int = doc("trials run")
    cancelled: bool = doc("the search was cancelled: nothing changed")
    note: str = doc("`aborted: ...` when the run's own settings crashed in the first trial (nothing is compared "
                    "or changed then), or why a batch change was not applied")
    lr_rule: str | None = doc("`\"sqrt\"` when the batch and the learning rate changed, else `null`")


@dataclass(frozen=True)
class Unknown(Event):
    """A kind this version does not know (a newer writer's): its fields are all in ``extra``."""

    name: str = ""

    @property
    def event(self) -> str:
        return self.name


KINDS: dict[str, type[Event]] = {cls.KIND: cls for cls in (
    RunStart, Step, Eval, Checkpoint, Heartbeat, Stall, WarningEvent, CompileChoice, DepthStageEvent, TargetReached,
    ErrorEvent, RunEnd, Restart,
    RankDown, GiveUp, KeeperStart, CommandAck, KeeperEnd, Alert, AutotuneStart, AutotuneTrial, AutotuneResult)}


_LINE_KEYS: dict[type[Event], dict[str, str]] = {cls: {line_key(f): f.name for f in record_fields(cls)}
                                                 for cls in KINDS.values()}
_STAMPS = frozenset({"event", "time", "v"})


def as_line(record: Event, time: float) -> dict[str, Any]:
    """The line for ``record`` written at ``time``, as a dict (what the writer writes, what readers read)."""
    return _fill({"event": record.event, "time": time, "v": SCHEMA_VERSION}, record)


def parse(line: Mapping[str, Any]) -> Event:
    """A record from one decoded line (``{"event": ..., "time": ..., ...}``); never raises for a newer line."""
    kind = str(line.get("event", ""))
    cls = KINDS.get(kind)
    time = line.get("time", 0.0)
    time = float(time) if isinstance(time, (int, float)) else 0.0
    if cls is None:
        return Unknown(name=kind, time=time, extra={k: v for k, v in line.items() if k not in _STAMPS})
    keys = _LINE_KEYS[cls]
    values = {name: line.get(key) for key, name in keys.items()}  # an older writer's missing field reads as None
    rest = line.keys() - keys.keys() - _STAMPS
    extra = {k: line[k] for k in rest} if rest else {}
    return cls(time=time, extra=extra, **values)


def markdown() -> str:
    """The events section of docs/log-format.md, from the classes above."""
    out: list[str] = []
    for kind, cls in KINDS.items():
        by = "" if cls.WRITER == "the worker" else f" (written by {cls.WRITER})"
        out.append(f"### `{kind}`{by}\n")
        out.append(" ".join((cls.__doc__ or "").split()) + "\n")
        out.append("| field | meaning |\n|-------|---------|")
        for f in record_fields(cls):
            extra = " (only when present)" if f.metadata.get("optional") else ""
            out.append(f"| `{line_key(f)}` | {f.metadata['doc']}{extra} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
