"""One run of training in one process: restore, loop (steps, evals, checkpoints), and how it ended.

``process`` sets the process up (flags, config, lock, dataset, the group of ranks) and hands a ``Run`` the
pieces; this module is the loop itself and the records it leaves: ``run_start``, ``step``, ``eval``,
``checkpoint`` and ``run_end`` events, checkpoints, and the exit code a supervisor acts on.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable

import torch

from trm_core.config import Config
from trm_core.rundir.states import RunState
from trm_core.data import Dataset
from trm_core.data.base import Batch
from trm_core.data.order import TrainOrder
from trm_core.distributed.group import Group
from trm_core.rundir import checkpoints as ckpt
from trm_core.rundir import layout, log_queries
from trm_core.rundir.events import EventWriter, SilentLog
from trm_core.rundir.layout import EXIT_OK, RunDir
from trm_core.rundir.scores import best_of, headline
from trm_core.rundir.records import Checkpoint, DepthStageEvent, Eval, RunEnd, RunStart, Step, WarningEvent
from trm_core.worker.target_clock import TargetClock
from trm_core.train.metrics import StepMetrics
from trm_core.train.trainer import Trainer
from trm_core.worker.compiling import CompileDriver
from trm_core.worker.console import Console
from trm_core.worker.endings import Endings
from trm_core.evaluate.trace import StepTrace
from trm_core.evaluate.arc.vote import voting_for
from trm_core.evaluate.in_training import eval_set, evaluate_with_votes, save_predictions, score_text
from trm_core.worker.faults import Faults
from trm_core.worker.rank_report import RankReport
from trm_core.worker.cpu_share import CROWDED_CPU, CollapseWatch
from trm_core.worker.stop_signals import StopRequest
from trm_core.worker.watchdog import Watchdog


def total_steps_for(cfg: Config, order: TrainOrder) -> int:
    return cfg.train.max_steps or order.total_steps(cfg.train.epochs)


def schedule_steps_for(cfg: Config, order: TrainOrder) -> int:
    """The learning-rate schedule's horizon: ``train.max_steps``, else the order's own (the reference's
    total_steps formula for a puzzle set, which its cosine runs over), else the steps trained."""
    if cfg.train.max_steps:
        return cfg.train.max_steps
    own = getattr(order, "schedule_steps", None)
    return own(cfg.train.epochs) if own is not None else order.total_steps(cfg.train.epochs)


@dataclass(frozen=True)
class StepDuties:
    """What a step must do once it has run. Its figures are read (a wait for the device) only for a step that
    acts on them."""

    logs: bool
    evals: bool
    saves: bool
    measuring: bool  # train.compile = "auto" times this step

    @property
    def acts(self) -> bool:
        return self.logs or self.evals or self.saves or self.measuring


class Run:
    def __init__(self, cfg: Config, run_dir: Path, dataset: Dataset, order: TrainOrder, resume: bool,
                 overrides: list[str], stop: StopRequest, faults: Faults, group: Group | None = None,
                 notes: list[str] | None = None) -> None:
        self.cfg, self.run_dir, self.dataset = cfg, run_dir, dataset
        self.notes = notes or []  # what the start decided for the user (threads on a crowded machine), said once
        self.crowding: CollapseWatch | None = None  # a CPU run's watch on its speed, set when it starts
        self.voting = voting_for(cfg.data)  # ARC's pass@k over augmentations; None for any other data
        self.resume, self.overrides, self.stop = resume, overrides, stop
        self.group = group or Group()
        self.ckpt_dir = run_dir / layout.CHECKPOINTS
        self.order = order
        self.total_steps = total_steps_for(cfg, self.order)
        self.schedule_steps = schedule_steps_for(cfg, self.order)
        self.events = EventWriter(run_dir / layout.EVENTS) if self.group.leader else SilentLog()
        self.report = RankReport(run_dir, self.group, str(self.group.device(cfg.train.device))) \
            if self.group.distributed else None
        self.stopping = False  # agreed by every rank: stop after this step
        self.last_loss: float | None = None
        self.last_saved_step = -1
        self.done_steps = 0     # steps completed, as known to the loop
        self.current_step = 0   # the step a failure would be reported against
        self.started = time.monotonic()
        self.faults = faults
        stop.on_second = self._forced_stop
        self.console = Console()
        self.last_eval: dict | None = None
        self.best = log_queries.best_eval(run_dir / layout.EVENTS) if self.group.leader else None
        self.target = TargetClock(run_dir / layout.EVENTS, cfg.train.target_score, cfg.train.target_name,
                                  self.group.leader)
        self.depth_seen: object = None  # the depth stage the last depth_stage event named
        self.weights_from: str | None = None  # where train.init_from's weights came from, when this start loaded them
        self.endings = Endings(self.events, self.report, run_dir)

    def _forced_stop(self, signum: int) -> None:
        self.events.emit(RunEnd(status=RunState.STOPPED.value, step=self.done_steps, exit_code=EXIT_OK,
                                reason=f"second signal {signum}: exited without a checkpoint", forced=True))

    def _epoch_of(self, step: int) -> int:
        return self.order.epoch_of(max(0, step - 1)) + 1

    def save(self, watchdog: Watchdog) -> None:
        step = self.trainer.step
        if self.trainer.unread:  # a stop after a step nobody read: never save weights a NaN went through
            self.last_loss = self.trainer.read_metrics().loss
        watchdog.begin("checkpoint", step)
        t0 = time.perf_counter()
        state = self.trainer.state_dict()  # with several ranks, a collective: every rank's carry slots
        if not self.group.leader:
            watchdog.end()
            self.last_saved_step = step
            return
        info = ckpt.save_checkpoint(self.ckpt_dir, state, step=step,
                                    epoch=self._epoch_of(step), loss=self.last_loss, config_hash=self.cfg.hash(),
                                    on_write=self.faults.checkpoint_writes(step), best=self.best,
                                    target=self.target.sidecar)
        ckpt.prune(self.ckpt_dir, self.cfg.train.keep_checkpoints, also_keep=self.best[1] if self.best else None)
        watchdog.end()
        self.last_saved_step = step
        self.events.emit(Checkpoint(step=step, epoch=info.epoch, path=str(info.path), bytes=info.bytes,
                                    seconds=round(time.perf_counter() - t0, 4)))

    def restore(self, watchdog: Watchdog) -> int | None:
        """Load the newest checkpoint that verifies; set aside (never delete) the ones that do not."""
        watchdog.begin("restore", 0)
        info = None
        if self.group.leader:  # rank 0 picks the checkpoint; every rank loads that one (a shared run dir)
            info, failed = ckpt.newest_verified(self.ckpt_dir)
            for bad, problem in failed:
                moved = ckpt.quarantine(bad)
                self.events.emit(WarningEvent(message=f"skipped checkpoint: {problem}; kept aside as {moved.name}"))
        info = self.group.broadcast(info)
        if info is None:
            watchdog.end()
            if self.resume:
                self.events.emit(WarningEvent(message="no verifying checkpoint: starting from step 0"))
            return None
        self.trainer.load_state_dict(ckpt.load_checkpoint(info, map_location=self.trainer.device))
        watchdog.end()
        self.last_loss = info.loss
        self.last_saved_step = self.done_steps = self.trainer.step
        saved_world = self.trainer.restored_world_size
        if saved_world is not None and saved_world != self.group.world_size:
            self.events.emit(WarningEvent(message=(
                f"checkpoint of step {self.trainer.step} was saved by {saved_world} rank(s), resumed by "
                f"{self.group.world_size}: the same global batch and data order, but gradients are summed in "
                f"another order, so losses may differ in the last bits (bit-exact resume needs equal world "
                f"sizes)")))
        return self.trainer.step

    def execute(self) -> int:
        cfg = self.cfg
        watchdog = Watchdog(self.events, cfg.train.step_timeout_s, cfg.train.heartbeat_s, report=self.report)
        watchdog.start()
        try:
            if cfg.train.compile != "off":  # before the first compile: a restart reads what this run compiled
                os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(self.run_dir / layout.COMPILE_CACHE))
            self.trainer = Trainer(cfg, self.dataset.vocab_size, self.total_steps,
                                   num_puzzle_ids=getattr(self.dataset, "num_puzzle_ids", 1), group=self.group,
                                   schedule_steps=self.schedule_steps)
            resumed_from = self.restore(watchdog)
            if resumed_from is None and cfg.train.init_from:
                self.weights_from = self._initial_weights()
            if self.resume and self.trainer.step >= self.total_steps:
                watchdog.stop()
                self.endings.report_end(RunState.COMPLETED.value, EXIT_OK, "already complete")
                print(f"run in {self.run_dir} is already complete at step {self.trainer.step} of {self.total_steps}")
                return EXIT_OK
            self._announce(resumed_from)
            status = self._loop(watchdog)
        except Exception as exc:  # noqa: BLE001 - every failure is recorded for the supervisor, then exits
            watchdog.stop()
            return self.endings.failed(exc, self.current_step, self.done_steps)
        watchdog.stop()
        reason = self._stop_reason() or "finished"
        self.endings.report_end(status, EXIT_OK, reason)
        score = score_text(self.last_eval, self.dataset)
        self.console.say(f"trm worker: {status} at step {self.done_steps} of {self.total_steps}"
                         + (f" ({reason})" if self.stop.requested else "") + (f"; {score}" if score else ""))
        self.events.emit(RunEnd(status=status, step=self.done_steps, exit_code=EXIT_OK, reason=reason,
                                seconds=round(time.monotonic() - self.started, 3), score=score or None))
        return EXIT_OK

    def _announce_depth(self, step: int) -> None:
        """A depth_stage event when the step about to run begins another stage (or the first of this start)."""
        stage = self.trainer.stage(step - 1)
        if stage is None or stage == self.depth_seen:
            return
        self.depth_seen = stage
        stages = self.trainer.depth_stages
        self.events.emit(DepthStageEvent(step=step, stage=stages.index(stage) + 1, stages=len(stages), T=stage.T,
                                    n=stage.n, start=stage.start))

    def _initial_weights(self) -> str:
        """train.init_from: a new run's starting weights (trm_core/weights/init_from.py), the puzzle table resized."""
        from trm_core.weights.init_from import initial_weights

        start = initial_weights(self.cfg.train.init_from, self.trainer.model.state_dict())
        self.trainer.start_from(start.state)
        if start.note:
            self.events.emit(WarningEvent(message=f"train.init_from: {start.note}"))
        return start.source

    def _announce(self, resumed_from: int | None) -> None:
        """The run_start record (the run's settings, where it runs, where it resumed) and the console line."""
        cfg, group = self.cfg, self.group
        hosts = group.objects(group.host) if group.distributed else None
        self.events.emit(RunStart(
            config=cfg.to_dict(), config_hash=cfg.hash(), pid=os.getpid(), host=socket.gethostname(),
            device=str(self.trainer.device), world_size=group.world_size,
            resumed_from=resumed_from, overrides=self.overrides, total_steps=self.total_steps,
            schedule_steps=self.schedule_steps if self.schedule_steps != self.total_steps else None,
            steps_per_epoch=self.order.steps_per_epoch, parameters=self.trainer.num_parameters,
            data=self.dataset.description, torch=torch.__version__, threads=torch.get_num_threads(),
            backend=group.backend or None, hosts=hosts, weights_from=self.weights_from))
        for note in self.notes:
            self.events.emit(WarningEvent(message=note))
        if self.trainer.device.type != "cuda":  # a GPU run's speed is the GPU's
            self.crowding = CollapseWatch()
        if cfg.train.precision == "bf16" and self.trainer.device.type != "cuda":
            self.events.emit(WarningEvent(message=(
                f"train.precision = 'bf16' on {self.trainer.device}: the reference's bf16 forward runs, but slowly "
                f"(a CPU has few bf16 kernels); 'fp32' is faster here and bit-exact")))
        self.console.say(f"trm worker: {'resumed at step ' + str(resumed_from) if resumed_from else 'started'} "
                         f"in {self.run_dir}: {self.total_steps} steps on {self.trainer.device}, "
                         f"{self.trainer.num_parameters:,} parameters, {self.dataset.description}"
                         + (f"; weights from {self.weights_from}" if self.weights_from else ""))

    def _stop_now(self) -> bool:
        """Before each step: a lone process stops as soon as it is asked; ranks stop when they agreed to."""
        if not self.group.distributed:
            self.stopping = self.stop.requested is not None
        return self.stopping

    def _stop_reason(self) -> str | None:
        """Why the run stopped: what asked (stop.request says, when a front end or the keeper wrote it: "Ctrl-C
        in trm-tui --no-ui"), else the signal that arrived; None when nothing asked."""
        if self.stop.requested is None:
            return None
        asked = RunDir(self.run_dir, self.group.node_rank).stop_reason()
        return asked if asked and self.stop.requested.startswith("SIG") else self.stop.requested

    def _stop_file(self) -> bool:
        """A stop asked for through a file: for nodes a signal cannot reach (this node's, or the run's)."""
        return RunDir(self.run_dir, self.group.node_rank).stop_requested()

    def _agree(self, step_s: float) -> tuple[float, int]:
        """After each step, every rank at once: whether any wants to stop (then all stop after this step), and
        the slowest rank's step time."""
        local_stop = self.stop.requested is not None or self._stop_file()
        rows = self.group.rows(torch.tensor([step_s, float(local_stop)], dtype=torch.float64,
                                            device=self.trainer.device)).cpu()
        if rows[:, 1].any():
            self.stopping = True
            if self.stop.requested is None:
                asked = [r for r in range(self.group.world_size) if rows[r, 1]]
                self.stop.requested = f"stop asked on rank {asked[0]}"
        slowest = int(rows[:, 0].argmax())
        return float(rows[slowest, 0]), slowest

    def _loop(self, watchdog: Watchdog) -> str:
        """Steps until the run is done or asked to stop; each step's duties (log, eval, save) after it."""
        trainer = self.trainer
        eval_batches = self._eval_batches()
        progress, eval_progress = self._progress_hooks(watchdog)
        compiling = CompileDriver(trainer, self.cfg.train.compile, self.total_steps - trainer.step, self.events,
                                  self.console, self.faults.compile_guess_s)
        while trainer.step < self.total_steps and not self._stop_now():
            step = self.current_step = trainer.step + 1
            epoch = self.order.epoch_of(trainer.step)
            watchdog.begin("step", step)
            self.faults.before_step(step, trainer.model, self.group.rank)
            batch, data_s = self._batch_of_this_rank()
            duties = self._duties(step, bool(eval_batches), compiling.measuring)
            self._announce_depth(step)
            compiling.queue_step(batch, step, progress)
            metrics, spread = self._read_step(duties)
            if duties.measuring:  # a measured step is always read
                compiling.observe(spread.get("slowest_step_s", metrics.step_s), step)
            watchdog.end()
            self.done_steps = step
            if metrics is not None:
                self._report_step(step, epoch, data_s, metrics, spread, duties.logs)
            if duties.evals:
                self._eval_now(watchdog, step, epoch, eval_batches, eval_progress)
            if duties.saves:
                self.save(watchdog)
        if self.last_saved_step != trainer.step:
            self.save(watchdog)
        return RunState.STOPPED.value if self.stopping else RunState.COMPLETED.value

    def _eval_batches(self) -> list:
        """The fixed held-out batches every in-training eval uses; none when the run does not evaluate."""
        cfg, ds = self.cfg, self.dataset
        evaluates = (cfg.train.eval_every or cfg.train.eval_every_epochs) and ds.num_eval
        return eval_set(ds, cfg.train.batch_size, cfg.train.eval_batches) if evaluates else []

    def _progress_hooks(self, watchdog: Watchdog) -> tuple[Callable[[int, int], None], Callable[[int, int], None]]:
        """What hears each supervision step of a step, and each batch of an eval: the watchdog and the faults."""
        def progress(done: int, total: int) -> None:
            watchdog.progress(done, total)
            self.faults.after_supervision_step()

        def eval_progress(done: int, total: int) -> None:
            self.faults.after_eval_batch()
            watchdog.progress(done, total)

        return progress, eval_progress

    def _batch_of_this_rank(self) -> tuple[Batch, float]:
        """The step's batch (this rank's rows of it) and the seconds it took to build."""
        t0 = time.perf_counter()
        batch = self.order.batch(self.trainer.step)
        if self.group.distributed:  # every rank builds the global batch (its randomness is the batch's), keeps its rows
            mine = self.group.share(self.cfg.train.batch_size)
            batch = Batch(*(None if t is None else t[mine] for t in batch))
        data_s = time.perf_counter() - t0
        self.group.take_waited()  # from here on, this step's waits only (not the last eval's or agreement's)
        return batch, data_s

    def _duties(self, step: int, evaluates: bool, measuring: bool) -> StepDuties:
        t = self.cfg.train
        return StepDuties(logs=step % t.log_every == 0 or step == self.total_steps,
                          # the last step is always evaluated: the run's headline is its final model's
                          evals=evaluates and (self._due(step, t.eval_every, t.eval_every_epochs)
                                               or step == self.total_steps),
                          saves=self._due(step, t.checkpoint_every, t.checkpoint_every_epochs), measuring=measuring)

    def _read_step(self, duties: StepDuties) -> tuple[StepMetrics | None, dict[str, Any]]:
        """The step's figures, read (a wait for the device) only for a step that shows or acts on them; with
        several ranks, the ranks agree (a stop, the slowest step) on the steps every rank knows are read."""
        group = self.group
        reads = duties.acts or self.console.due() or self.stop.requested is not None
        metrics = self.trainer.read_metrics() if reads else None
        if not (group.distributed and duties.acts) or metrics is None:
            return metrics, {}
        self.report.step_done(self.current_step, metrics.step_s, group.take_waited())  # the step's own waits
        slowest_s, slowest_rank = self._agree(metrics.step_s)
        return metrics, {"world_size": group.world_size, "slowest_step_s": round(slowest_s, 6),
                         "slowest_rank": slowest_rank}

    def _report_step(self, step: int, epoch: int, data_s: float, metrics: StepMetrics, spread: dict[str, Any],
                     logs: bool) -> None:
        """The step event (when due, and on the step a stop ends on) and the console's rationed line."""
        cfg = self.cfg
        self.last_loss = metrics.loss
        if logs or self._stop_now():  # the step a stop ends on is logged too, whatever log_every says
            self.events.emit(Step(step=step, total_steps=self.total_steps, epoch=epoch + 1, data_s=round(data_s, 6),
                                  **metrics.as_event(cfg.train.batch_size, cfg.model.seq_len), **spread))
        rate = cfg.train.batch_size / max(metrics.step_s, 1e-9)
        self.console.step(step, self.total_steps, metrics.loss, rate, final=step == self.total_steps)
        crowded = self.crowding.see(rate, time.monotonic()) if logs and self.crowding is not None else None
        if crowded and self.group.leader:
            self.events.emit(WarningEvent(message=crowded, about=CROWDED_CPU))

    def _due(self, step: int, every_steps: int, every_epochs: int) -> bool:
        """After ``step`` steps: every N steps, or at the end of every N epochs (the next batch starts a new
        one) and of the run."""
        if not every_epochs:
            return bool(every_steps) and step % every_steps == 0
        return step == self.total_steps or \
            self.order.epoch_of(step) // every_epochs > self.order.epoch_of(step - 1) // every_epochs

    def _eval_now(self, watchdog: Watchdog, step: int, epoch: int, batches: list,
                  on_progress: Callable[[int, int], None]) -> None:
        """The in-training eval after ``step``, under the watchdog, recorded as an ``eval`` event."""
        watchdog.begin("eval", step)
        t0 = time.perf_counter()
        records: list = []
        trace = StepTrace(self.trainer.halt_logit_threshold, records.append) \
            if self.cfg.train.eval_save_predictions else None
        result = evaluate_with_votes(self.trainer, self.voting, self.group, batches, on_progress, trace)
        if trace is not None:
            save_predictions(self.trainer, self.dataset, self.voting, self.group, records, result, step, epoch + 1,
                             time.perf_counter() - t0, RunDir(self.run_dir).evals)
        watchdog.end()
        figure = headline(result)
        self.best = best_of(self.best, figure[1] if figure else None, step)
        best = {"best_score": self.best[0], "best_step": self.best[1]} if self.best else {}
        self.events.emit(Eval(step=step, epoch=epoch + 1, seconds=round(time.perf_counter() - t0, 4), **result, **best))
        self.last_eval = result
        reached = self.target.check(step, figure[1] if figure else None, step * self.cfg.train.batch_size)
        if reached is not None:
            self.events.emit(reached)
