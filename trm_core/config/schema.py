"""The config schema: one dataclass per section, each field with its default, its doc and its allowed range.

The docs are read: ``reference.py`` renders the shipped config.toml from them (a test keeps the two equal).
Resolution and validation live in ``resolve.py``; a run's saved config and the resume rules in ``run.py``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any


class ConfigError(ValueError):
    """A user mistake in configuration: the message is shown as is, the process exits with code 2."""


def _f(default: Any, doc: str, *, min: float | None = None, max: float | None = None,
       choices: tuple[Any, ...] | None = None, above: float | None = None) -> Any:
    """A schema field: its default, a one-line doc (used in config.toml), and its allowed range."""
    meta = {"doc": doc, "min": min, "max": max, "choices": choices, "above": above}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


# Sizes a user or a file may ask for, bounded before anything is allocated (docs/guide/refusals.md). Far past
# what TRM uses (16 supervision steps; PTRM's 16 or 64 trajectories), well short of what a machine cannot hold.
MAX_SUPERVISION_STEPS = 1024  # each one a full forward of the recursion: 1024 is 64x the paper's
MAX_TRAJECTORIES = 1024       # rows of one batched forward per example
MAX_NOISE = 100.0             # the latent is RMS-normalised (scale ~1): noise past this only drowns it


@dataclass
class ModelConfig:
    net: str = _f("mixer", "the one shared network: 'mixer' (tiny-recursive-model's MLP-mixer), 'attention' (the "
                  "reference's: self-attention + SwiGLU, post-norm), 'mlp_t' (the reference's attention-free variant, "
                  "an MLP across tokens; the paper's Sudoku network)", choices=("mixer", "attention", "mlp_t"))
    dim: int = _f(1024, "width of every token vector", min=8)
    depth: int = _f(4, "blocks in the one shared network", min=1)
    seq_len: int = _f(4096, "tokens per sample (the mixer mixes over a fixed length)", min=2)
    vocab_size: int = _f(0, "token vocabulary; 0 = derived from the data (258 for code: bytes, pad, mask)", min=0)
    latent_steps: int = _f(6, "n: latent refinements z <- net(x + y + z) per refinement block", min=1)
    refinement_blocks: int = _f(3, "T: refinement blocks per supervision step, gradients only through the last", min=1)
    max_supervision_steps: int = _f(16, "deep supervision steps per batch, one optimizer update each", min=1,
                                    max=MAX_SUPERVISION_STEPS)
    halt_threshold: float = _f(0.5, "a sample halts (leaves the batch) when its halt probability is above this (its logit strictly above this "
                           "one's, the reference's rule at 0.5)", min=0.0, max=1.0)
    halt_in_eval: bool = _f(False, "eval: let samples halt early as in training; false = every sample runs all "
                                   "supervision steps, as the paper evaluates")
    halt_loss_weight: float = _f(1.0, "weight of the halting BCE loss against 'answer fully correct'", min=0.0)
    expansion_factor: float = _f(4.0, "token-mixing hidden width as a multiple of dim (as tiny-recursive-model)", above=0.0)
    expansion_factor_token: float = _f(0.5, "channel-mixing hidden width as a multiple of dim", above=0.0)
    num_heads: int = _f(8, "attention: heads (each dim / num_heads wide)", min=1)
    expansion: float = _f(4.0, "attention, mlp_t: SwiGLU hidden width as a multiple of its input (x 2/3, rounded up "
                          "to a multiple of 256, as the reference)", above=0.0)
    pos_encoding: str = _f("rope", "attention, mlp_t: 'rope' (rotary position embeddings in attention) or 'none'",
                           choices=("rope", "none"))
    puzzle_emb_len: int = _f(0, "prefix positions holding a learned per-puzzle embedding, looked up by puzzle "
                             "identifier (ARC); 0 = off", min=0)
    halt_exploration: float = _f(0.0, "train.carry = 'refill': the chance a sample is kept from halting before a "
                                 "random step in 2..max_supervision_steps (the reference's exploration)", min=0.0, max=1.0)


@dataclass
class DataConfig:
    kind: str = _f("code", "'code': byte-level masked-span denoising on source files; 'pairs': a JSONL of input/output "
                   "token lists; 'puzzles': a dataset folder in the TRM reference format", choices=("code", "pairs", "puzzles"))
    paths: list = _f([], "code: files or folders to read; empty = the Python standard library's own sources")
    extensions: list = _f([".py"], "code: file name endings to include")
    max_bytes: int = _f(0, "code: stop reading the corpus after this many bytes; 0 = no limit", min=0)
    mask_ratio: float = _f(0.15, "code: fraction of bytes hidden behind the mask token", min=0.0, max=1.0)
    loss_on: str = _f("masked", "code: 'masked' = the loss on the hidden bytes only (masked-language-model training; "
                      "the rest is copying), 'all' = on every byte", choices=("masked", "all"))
    mean_span: float = _f(3.0, "code: mean length of a masked span", min=1.0)
    eval_fraction: float = _f(0.01, "fraction of samples held out for eval", min=0.0, max=0.5)
    pairs_file: str = _f("", "pairs: JSONL file of {\"input\": [...], \"output\": [...]}, each seq_len long")
    eval_pairs_file: str = _f("", "pairs: optional held-out JSONL; empty = split eval_fraction off pairs_file")
    dataset_dir: str = _f("", "puzzles: a folder with train/ and test/ (trm-tui data ..., or the reference's builders); "
                          "model.seq_len and model.vocab_size come from its dataset.json")
    cache_dir: str = _f("", "where the packed corpus is cached; empty = $XDG_CACHE_HOME/trm-tui or ~/.cache/trm-tui")


@dataclass
class TrainConfig:
    batch_size: int = _f(1, "samples per optimizer update (the effective batch, over all ranks together)", min=1)
    micro_batch_size: int = _f(0, "samples per forward/backward on one rank; must divide batch_size / ranks; "
                               "0 = all of the rank's share", min=0)
    epochs: int = _f(15, "passes over the training split (used when max_steps = 0)", min=1)
    max_steps: int = _f(0, "stop after this many steps (a step = one batch through its supervision steps); 0 = epochs", min=0)
    learning_rate: float = _f(2e-4, "peak learning rate", above=0.0, max=1.0)
    min_lr_ratio: float = _f(0.1, "cosine decay ends at learning_rate * min_lr_ratio", min=0.0, max=1.0)
    warmup_steps: int = _f(100, "linear warm-up steps", min=0)
    optimizer: str = _f("adamw", "'adamw' (PyTorch's, eps 1e-8), or 'adam_atan2' (the reference's: Adam with an "
                        "atan2 step, no epsilon, each step bounded by lr * pi / (2 (1 - beta1^t)); the adam-atan2 "
                        "0.0.3 kernel's update in plain PyTorch, no CUDA extension)", choices=("adamw", "adam_atan2"))
    weight_decay: float = _f(0.1, "the optimizer's decoupled weight decay", min=0.0)
    adam_beta1: float = _f(0.9, "the optimizer's beta1", min=0.0, max=1.0)
    adam_beta2: float = _f(0.95, "the optimizer's beta2", min=0.0, max=1.0)
    grad_clip: float = _f(1.0, "clip the gradient norm to this; 0 = off", min=0.0)
    loss: str = _f("softmax", "token loss: 'softmax' cross-entropy, or 'stablemax' (the reference's stable-max "
                   "cross-entropy, in float64)", choices=("softmax", "stablemax"))
    carry: str = _f("shrink", "'shrink': a batch runs up to max_supervision_steps, one update each, halted samples "
                    "leave; 'refill': a fixed batch of slots carries its state across steps, one supervision step "
                    "(one update) per step, a halted slot takes the next sample (the reference's)",
                    choices=("shrink", "refill"))
    depth_schedule: list = _f([], "a depth curriculum (CGAR, arXiv 2511.08653): stages 'FRACTION T=BLOCKS "
                              "n=LATENT_STEPS' by the fraction of the run's steps they start at, e.g. ['0 T=1 n=2', "
                              "'0.3 T=2 n=4', '0.6 T=3 n=6'] (CGAR's, ending at the paper's depth); each change is a "
                              "depth_stage event; eval always runs the model section's depth; empty = that depth "
                              "throughout (the paper)")
    supervision_weights: str = _f("equal", "the answer loss's weight at each supervision step: 'equal' (the paper) "
                                  "or 'decay:D', step t (from 0) weighted D^t, scaled to a mean of 1 (CGAR: "
                                  "'decay:0.7'); the halting loss is the paper's either way")
    grad_recursions: int = _f(1, "how many of a supervision step's last deep recursions (refinement blocks) carry "
                              "gradient: 1 is the paper's 1-step approximation, more backpropagate through more "
                              "(URM, tiny-recursive-model's recurrent_grad_depth) at more memory; 0 = all", min=0)
    puzzle_emb_lr: float = _f(1e-2, "learning rate of the puzzle embeddings (sign-SGD on the rows in the batch)",
                              min=0.0)
    puzzle_emb_weight_decay: float = _f(0.1, "decoupled weight decay of the puzzle embeddings", min=0.0)
    ema_decay: float = _f(0.999, "decay of the weights' exponential moving average (used for eval); 0 = off", min=0.0, max=1.0)
    ema_warmup: bool = _f(True, "warm the EMA's decay up as min(ema_decay, (1 + n) / (10 + n)) after n updates; "
                          "false: ema_decay from the first update (the reference's)")
    seed: int = _f(0, "seed for initialisation and data order", min=0, max=2**63 - 1)
    device: str = _f("auto", "'auto' (cuda when present), 'cpu', 'cuda' or 'cuda:N'")
    precision: str = _f("autocast", "'fp32'; 'autocast': bf16 autocast on CUDA, fp32 on a CPU (runs stay bit-exact "
                        "there); 'bf16': the reference's bf16 forward (weights cast at use, activations, residual "
                        "stream and carry in bf16, fp32 master weights; attention and mlp_t; slow on a CPU). "
                        "Replaces train.bf16, still read", choices=("fp32", "autocast", "bf16"))
    compile: str = _f("off", "torch.compile the network: 'off', 'on', or 'auto': time the run's own steps eager and "
                      "compiled, keep the faster (a run too short to pay for a compile stays eager); the choice is "
                      "kept in checkpoints, the compile cache in RUN_DIR/compile-cache. true/false read as on/off",
                      choices=("off", "on", "auto"))
    compile_mode: str = _f("default", "torch.compile's mode, when compiled: 'default'; 'reduce-overhead' (CUDA "
                           "graphs: a step's kernels replayed with one launch, for shapes whose kernels are too short "
                           "for eager launches to keep the GPU busy; more GPU memory); 'max-autotune-no-cudagraphs' "
                           "or 'max-autotune' (searches kernel configurations: a much longer compile)",
                           choices=("default", "reduce-overhead", "max-autotune-no-cudagraphs", "max-autotune"))
    threads: int = _f(0, "torch CPU threads; 0 = torch's default", min=0)
    log_every: int = _f(1, "write a step event every N steps", min=1)
    eval_every: int = _f(500, "run eval every N steps; 0 = off (or counted in epochs: eval_every_epochs)", min=0)
    eval_every_epochs: int = _f(0, "run eval at the end of every N epochs and of the run, the reference's "
                                "eval_interval (a puzzle set's sampler restarts its stream there, as its loader); "
                                "needs eval_every = 0; 0 = off", min=0)
    eval_batches: int = _f(8, "batches per eval; 0 = the whole held-out split", min=0)
    eval_save_predictions: bool = _f(False, "every eval also writes its predictions and metrics to "
                                     "RUN/evals/step-N-WEIGHTS-test/, as trm-tui eval does (the reference's "
                                     "eval_save_outputs); browse them with trm-tui eval --show or p")
    target_score: float = _f(0.0, "a score to reach, in the task's eval figure (the code task's masked accuracy, "
                             "ARC's pass@2, else whole answers right): drawn as a line on the eval chart (t) and "
                             "shown beside the best eval in status and runs; the paper presets hold the paper's; "
                             "0 = none", min=0.0, max=1.0)
    target_name: str = _f("target", "what target_score is, as the chart and status name it ('paper' in the paper "
                          "presets)")
    init_from: str = _f("", "start a new run from these weights, with a fresh optimizer and schedule: 'RUN_DIR' "
                        "(its newest checkpoint; 'RUN_DIR:best' or ':STEP'; the EMA weights when it keeps them), a "
                        "model folder (trm-tui export model) or 'hf:OWNER/NAME[@REV]'. A puzzle-embedding table of "
                        "another size is replaced by its mean row, as the reference's load_checkpoint does (new "
                        "puzzles, e.g. unseen ARC tasks); any other weight must fit. Ignored on resume (the "
                        "checkpoint wins); empty = random weights")
    finetune_recipe: bool = _f(True, "with init_from: the recipe of a fine-tune, not of training from scratch: no "
                               "depth-curriculum stages shallower than the model (its source ended at full depth) and "
                               "a warm-up of at most a tenth of the run (both said at the start, and kept in the run's "
                               "config); false: the config's recipe as written")
    checkpoint_every: int = _f(500, "save a checkpoint every N steps (and always on stop); 0 = counted in epochs "
                               "(checkpoint_every_epochs)", min=0)
    checkpoint_every_epochs: int = _f(0, "save a checkpoint at the end of every N epochs; needs checkpoint_every "
                                      "= 0; 0 = off", min=0)
    keep_checkpoints: int = _f(3, "keep the newest K checkpoints (and the one of the best eval, where there is one)", min=1)
    step_timeout_s: float = _f(900.0, "watchdog: a step, checkpoint or eval batch running longer than this is a stall (exit 3)", above=0.0)
    heartbeat_s: float = _f(5.0, "write a heartbeat event when nothing else was written for this long", above=0.0)


@dataclass
class SupervisorConfig:
    max_restarts: int = _f(3, "restart a crashed or stalled worker at most this many times within restart_window_s", min=0)
    restart_window_s: float = _f(3600.0, "the window that max_restarts counts in", above=0.0)
    restart_backoff_s: float = _f(5.0, "wait before the first restart; doubles with each further one", min=0.0)
    stop_grace_s: float = _f(300.0, "a graceful stop may take this long (a checkpoint save) before SIGKILL", above=0.0)
    stall_after_s: float = _f(0.0, "no step or heartbeat for this long shows 'stalled'; 0 = 10x the recent step time, at least 60 s", min=0.0)


@dataclass
class AutotuneConfig:
    memory_margin: float = _f(0.1, "reject a candidate whose peak memory exceeds (1 - this) of the device's memory", min=0.0, max=0.9)
    memory_limit_mb: float = _f(0.0, "a tighter memory cap in MiB (peak RSS on CPU, allocated memory on CUDA); 0 = the device's", min=0.0)
    allow_batch_change: bool = _f(False, "may raise train.batch_size too (learning rate x sqrt(ratio)); only before step 1")
    max_batch_size: int = _f(0, "the largest effective batch tried when allow_batch_change; 0 = 8x train.batch_size", min=0)
    max_seconds: float = _f(600.0, "time budget of a whole search, trials included", above=0.0)
    warmup_steps: int = _f(2, "steps each trial runs before it starts measuring", min=0)
    measure_steps: int = _f(4, "steps each trial measures (samples/s from the median step time)", min=1)
    min_gain: float = _f(0.03, "a larger candidate must be this much faster to count; growth stops when one is not", min=0.0, max=1.0)
    keep_pinned: bool = _f(True, "keep train.threads and train.micro_batch_size where a start's --set put them (the user chose them); false: tune them too")


@dataclass
class DistributedConfig:
    nproc_per_node: int = _f(1, "processes (ranks) on this node, one per GPU; more than 1 launches the worker "
                             "through torchrun with DistributedDataParallel", min=1)
    nnodes: int = _f(1, "nodes (machines) in the run; each runs trm-tui with its own node_rank", min=1)
    node_rank: int = _f(0, "this node's place among nnodes (0 .. nnodes - 1); node 0 keeps the run's keeper "
                        "files at the run dir's top, node N under nodes/node-N/", min=0)
    rdzv_endpoint: str = _f("", "host:port of the torchrun (c10d) rendezvous, the same on every node; needed when "
                            "nnodes > 1; empty on one node = a free local port")
    backend: str = _f("auto", "torch.distributed backend: 'auto' (nccl on CUDA, gloo on CPU), 'nccl' or 'gloo'",
                      choices=("auto", "nccl", "gloo"))

    @property
    def world_size(self) -> int:
        return self.nproc_per_node * self.nnodes


ALERT_KINDS = ("stalled", "crashed", "gave_up", "completed", "checkpoint_stale", "disk_low")


@dataclass
class AlertsConfig:
    command: str = _f("", "run by the keeper through the shell on each alert (the alert as a JSON line on stdin; TRM_ALERT_KIND, TRM_RUN_DIR, TRM_STEP set); empty = no alerts")
    on: list = _f(list(ALERT_KINDS), "which alerts to send (the default is every kind there is)")
    min_interval_s: float = _f(600.0, "at most one alert of a kind per this many seconds", min=0.0)
    timeout_s: float = _f(30.0, "an alert command running longer than this is killed (and recorded as a warning)", above=0.0)


@dataclass
class ExportConfig:
    tensorboard_dir: str = _f("", "the run's keeper mirrors its log as TensorBoard event files into "
                              "TENSORBOARD_DIR/RUN_NAME for the run's whole life (needs tensorboardX: "
                              "pip install 'trm-tui[tensorboard]'); point several runs at one folder and "
                              "'tensorboard --logdir' on it shows them all, live; empty = no mirror")


@dataclass
class EvalConfig:
    """Test-time compute (docs/guide/thinking-longer.md): how the model is run when it answers, with the same
    weights. The defaults are the eval as trained."""

    supervision_steps: int = _f(0, "supervision steps per example at eval; 0 = model.max_supervision_steps (as "
                                "trained); more lets the recursion keep improving the answer", min=0,
                                max=MAX_SUPERVISION_STEPS)
    halt: float = _f(0.0, "each example stops once its halting probability is above this, as a deployed model "
                     "would; 0 = as trained (model.halt_in_eval)", min=0.0, max=0.999)
    trajectories: int = _f(1, "K: each example runs as K trajectories side by side, one answer kept (PTRM, arXiv "
                           "2605.19943); 1 = one", min=1, max=MAX_TRAJECTORIES)
    noise: float = _f(0.0, "Gaussian noise of this scale added to the latent before every deep recursion step, "
                      "so trajectories differ; 0 = none", min=0.0, max=MAX_NOISE)
    select: str = _f("q", "the answer kept of the K: 'q' the one the halting head is most confident in, 'vote' "
                     "the most common", choices=("q", "vote"))
    settle: int = _f(0, "stop an example's trajectories once this many agree on the answer (and keep it); "
                     "0 = off, else 2 .. trajectories", min=0)
    escalate: bool = _f(False, "every example first runs one plain trajectory; only those its halting head was "
                        "never sure of run the K trajectories (needs halt, or model.halt_in_eval)")
    seed: int = _f(0, "the noise's seed: the same seed gives the same figures")
    in_training: bool = _f(True, "the in-training eval runs with these settings (its scores then track the "
                           "test-time figure); false = only trm-tui eval and solve default to them")


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    supervisor: SupervisorConfig = field(default_factory=SupervisorConfig)
    autotune: AutotuneConfig = field(default_factory=AutotuneConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)

    def hash(self) -> str:
        """Short stable digest of the resolved config, stored with every checkpoint."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    @property
    def micro_batch(self) -> int:
        """Samples per forward/backward on one rank."""
        return self.train.micro_batch_size or self.rank_batch

    @property
    def rank_batch(self) -> int:
        """Each rank's share of the global batch."""
        return self.train.batch_size // self.distributed.world_size


SECTIONS: dict[str, type] = {f.name: f.type if isinstance(f.type, type) else globals()[f.type]
                             for f in dataclasses.fields(Config)}

def _paper_recipe(model: dict[str, Any], dataset_dir: str, train: dict[str, Any],
                  paper_score: float) -> dict[str, dict[str, Any]]:
    """One of the reference's recipes: what all three share (config/arch/trm.yaml, cfg_pretrain.yaml), then
    what the task's command line sets, and the score the paper reports for it (the eval chart's line)."""
    return {
        "model": {"dim": 512, "depth": 2, "refinement_blocks": 3, "max_supervision_steps": 16, "expansion": 4.0,
                  "puzzle_emb_len": 16, "halt_exploration": 0.1, "halt_loss_weight": 0.5, **model},
        "data": {"kind": "puzzles", "dataset_dir": dataset_dir},
        "train": {"carry": "refill", "loss": "stablemax", "optimizer": "adam_atan2", "batch_size": 768, "max_steps": 0,
                  "learning_rate": 1e-4,
                  "min_lr_ratio": 1.0, "warmup_steps": 2000, "adam_beta1": 0.9, "adam_beta2": 0.95,
                  "grad_clip": 0.0, "ema_decay": 0.999, "ema_warmup": False, "precision": "bf16", "eval_batches": 0,
                  # the reference compiles; "auto" compiles where that measures faster. Figures read (a wait for
                  # the GPU) every 10 steps, not every step
                  "compile": "auto", "log_every": 10,
                  "target_score": paper_score, "target_name": "paper", **train},
    }


# Built-in presets: also written out in the shipped config.toml (a test keeps the two equal), here so
# that `--preset tiny` works from any directory.
BUILTIN_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "tiny": {
        "model": {"dim": 64, "depth": 2, "seq_len": 64, "latent_steps": 2, "refinement_blocks": 2,
                  "max_supervision_steps": 2},
        # single hidden bytes, 30% of them, the loss on those alone: the held-out masked-byte accuracy passes
        # 0.40 in 1,000 steps (always guessing a space scores 0.30); see docs/benchmarks.md, "The tiny preset"
        "data": {"max_bytes": 4_000_000, "mask_ratio": 0.3, "mean_span": 1.0},
        "train": {"batch_size": 32, "max_steps": 1000, "learning_rate": 4e-3, "warmup_steps": 20,
                  "checkpoint_every": 100, "eval_every": 250, "eval_batches": 8, "ema_decay": 0.0,
                  "step_timeout_s": 120.0},
    },
    # Sized for a 2-core CPU, on generated puzzles: bench/sudoku_cpu.py measures it (docs/benchmarks.md).
    "sudoku-cpu": {
        "model": {"net": "mlp_t", "dim": 128, "depth": 2, "refinement_blocks": 2, "latent_steps": 3,
                  "max_supervision_steps": 4, "expansion": 4.0, "pos_encoding": "none", "puzzle_emb_len": 0,
                  "halt_exploration": 0.1, "halt_loss_weight": 0.5},
        "data": {"kind": "puzzles", "dataset_dir": "data/sudoku-50"},
        # CGAR's depth curriculum by thirds of T=2 n=3: its shallow steps are cheaper, so 1,800 steps fill the
        # time the paper's fixed depth spent on 1,400. On bench/sudoku_cpu.py's 200 held-out puzzles (2 cores,
        # 2026-12-07): 86.5% at 7.0 minutes and 92.5% at 9.7, against 83.0% at 10.1 for the fixed depth
        # (docs/benchmarks.md, "A recipe that learns faster"); the target line is that 85% goal
        "train": {"carry": "refill", "loss": "softmax", "batch_size": 32, "max_steps": 1800,
                  "depth_schedule": ["0 T=1 n=1", "0.3 T=1 n=2", "0.6 T=2 n=3"],
                  "learning_rate": 2e-3, "min_lr_ratio": 0.1, "warmup_steps": 50, "weight_decay": 0.1,
                  "grad_clip": 1.0, "ema_decay": 0.0, "eval_every": 180, "eval_batches": 0,
                  "checkpoint_every": 100, "step_timeout_s": 300.0, "target_score": 0.85, "target_name": "goal",
                  "eval_save_predictions": True},  # 200 small puzzles: p in the dashboard has them at once
        # how trm-tui eval and solve run its checkpoints (docs/guide/thinking-longer.md): 16 supervision steps,
        # one plain trajectory first, and 64 noisy ones (noise 1.0) for the examples whose halting head was not
        # sure (above 0.9), the most confident kept. On bench/sudoku_cpu.py's 200 held-out puzzles: 92.5% as
        # trained, 97.5% this way in 35 seconds on 2 cores (the fixed-depth recipe's model: 83.0% and 96.0% in 3.5
        # minutes; docs/benchmarks.md). Not in the in-training
        # eval: while the model is young no head is sure and every example would run all 64
        "eval": {"supervision_steps": 16, "halt": 0.9, "trajectories": 64, "noise": 1.0, "escalate": True,
                 "in_training": False},
    },
    # The reference implementation's recipes (its README and config/), for a GPU machine: its sampler and
    # its step count (data.packing); eval and checkpoints every eval_interval epochs, as its commands.
    "sudoku-paper": _paper_recipe(
        {"net": "mlp_t", "latent_steps": 6, "pos_encoding": "none"}, "data/sudoku-extreme-1k-aug-1000",
        {"epochs": 50000, "weight_decay": 1.0, "puzzle_emb_lr": 1e-4, "puzzle_emb_weight_decay": 1.0,
         "eval_every": 0, "eval_every_epochs": 5000, "checkpoint_every": 0, "checkpoint_every_epochs": 5000}, 0.874),
    # the README's second Sudoku command: the same recipe on the attention network (arch/trm.yaml's RoPE)
    "sudoku-att-paper": _paper_recipe(
        {"net": "attention", "num_heads": 8, "latent_steps": 6, "pos_encoding": "rope"},
        "data/sudoku-extreme-1k-aug-1000",
        {"epochs": 50000, "weight_decay": 1.0, "puzzle_emb_lr": 1e-4, "puzzle_emb_weight_decay": 1.0,
         "eval_every": 0, "eval_every_epochs": 5000, "checkpoint_every": 0, "checkpoint_every_epochs": 5000}, 0.747),
    "maze-paper": _paper_recipe(
        {"net": "attention", "num_heads": 8, "latent_steps": 4, "pos_encoding": "rope"}, "data/maze-30x30-hard-1k",
        {"epochs": 50000, "weight_decay": 1.0, "puzzle_emb_lr": 1e-4, "puzzle_emb_weight_decay": 1.0,
         "eval_every": 0, "eval_every_epochs": 5000, "checkpoint_every": 0, "checkpoint_every_epochs": 5000}, 0.853),
    "arc-paper": _paper_recipe(
        {"net": "attention", "num_heads": 8, "latent_steps": 4, "pos_encoding": "rope"}, "data/arc1concept-aug-1000",
        {"epochs": 100000, "weight_decay": 0.1, "puzzle_emb_lr": 1e-2, "puzzle_emb_weight_decay": 0.1,
         "eval_every": 0, "eval_every_epochs": 10000, "checkpoint_every": 0, "checkpoint_every_epochs": 10000}, 0.446),
    "arc2-paper": _paper_recipe(
        {"net": "attention", "num_heads": 8, "latent_steps": 4, "pos_encoding": "rope"}, "data/arc2concept-aug-1000",
        {"epochs": 100000, "weight_decay": 0.1, "puzzle_emb_lr": 1e-2, "puzzle_emb_weight_decay": 0.1,
         "eval_every": 0, "eval_every_epochs": 10000, "checkpoint_every": 0, "checkpoint_every_epochs": 10000}, 0.078),
}

# The command that builds each puzzle preset's dataset into its data.dataset_dir (the presets' notes and
# trm-tui doctor's fix for a missing or differently built set both say it)
DATA_COMMANDS: dict[str, str] = {
    "sudoku-cpu": "trm-tui data sudoku-generate --count 1000 --blanks 50 --out train.csv; the same with --count 200 "
                  "--seed 1 --out test.csv; trm-tui data sudoku --csv train.csv --test-csv test.csv --aug 1000 "
                  "--out data/sudoku-50",
    "sudoku-paper": "trm-tui data sudoku --hub --subsample 1000 --aug 1000 --out data/sudoku-extreme-1k-aug-1000",
    "maze-paper": "trm-tui data maze --hub --aug --out data/maze-30x30-hard-1k",
    "arc-paper": "trm-tui data arc --json-dir kaggle/combined --subsets training,evaluation,concept --test-set "
                 "evaluation --aug 1000 --out data/arc1concept-aug-1000",
    "arc2-paper": "trm-tui data arc --json-dir kaggle/combined --subsets training2,evaluation2,concept --test-set "
                  "evaluation2 --aug 1000 --out data/arc2concept-aug-1000",
}
DATA_COMMANDS["sudoku-att-paper"] = DATA_COMMANDS["sudoku-paper"]


# CGAR (arXiv 2511.08653): the depth curriculum by thirds of the paper's (T, n) = (3, 6), and the supervision steps
# weighted 0.7^t; the paper presets stay the paper's recipe, each gains a -fast twin with these
CGAR_SUDOKU = ["0 T=1 n=2", "0.3 T=2 n=4", "0.6 T=3 n=6"]
CGAR_N4 = ["0 T=1 n=1", "0.3 T=2 n=3", "0.6 T=3 n=4"]  # the same thirds for n = 4 (not measured by CGAR)


def _fast(preset: dict[str, dict[str, Any]], schedule: list[str]) -> dict[str, dict[str, Any]]:
    return {**preset, "train": {**preset["train"], "depth_schedule": schedule, "supervision_weights": "decay:0.7"}}


for _name, _schedule in (("sudoku-paper", CGAR_SUDOKU), ("sudoku-att-paper", CGAR_SUDOKU),
                         ("maze-paper", CGAR_N4), ("arc-paper", CGAR_N4), ("arc2-paper", CGAR_N4)):
    BUILTIN_PRESETS[f"{_name}-fast"] = _fast(BUILTIN_PRESETS[_name], _schedule)
    DATA_COMMANDS[f"{_name}-fast"] = DATA_COMMANDS[_name]


def data_command(preset: str | None, dataset_dir: str) -> str | None:
    """The command that builds ``preset``'s dataset into ``dataset_dir``; None for a preset without one."""
    command = DATA_COMMANDS.get(preset or "")
    if command is None:
        return None
    head, _, _ = command.rpartition(" --out ")
    return f"{head} --out {dataset_dir}"


# One comment per preset, shown above it in config.toml and beside it in docs/config.md.
PRESET_NOTES: dict[str, str] = {
    "tiny": "the README's first command: the code task, small enough for 2 CPU cores in under 3 minutes",
    "sudoku-cpu": f"TRM-MLP sized for 2 CPU cores. Data: {DATA_COMMANDS['sudoku-cpu']}",
    "sudoku-paper": "TRM-MLP on Sudoku-Extreme (87.4% in the paper; < 36 h on one L40S). Data: "
                    f"{DATA_COMMANDS['sudoku-paper']}",
    "sudoku-att-paper": "TRM-Att on Sudoku-Extreme (74.7% in the paper, against 87.4% for TRM-MLP; < 36 h on one "
                        "L40S). Data: as sudoku-paper's",
    "maze-paper": f"TRM-Att on Maze-Hard (85.3% in the paper; < 24 h on 4 L40S). Data: {DATA_COMMANDS['maze-paper']}"
                  ". The paper's 85.3% is with 8 dihedral transforms of each of the "
                  "1,000 mazes (its section 5: 'Maze-Hard uses 8 dihedral transformations per data example'), hence "
                  "--aug; the reference README's command builds none (its builder's aug defaults to false) though "
                  "its comment says '8 augments'. HRM's 74.5% was without",
    "arc-paper": "TRM-Att on ARC-AGI-1 (44.6% pass@2 in the paper; about 3 days on 4 H100). Data: "
                 f"{DATA_COMMANDS['arc-paper']}",
    "arc2-paper": "TRM-Att on ARC-AGI-2 (7.8% pass@2 in the paper; about 3 days on 4 H100). Data: "
                  f"{DATA_COMMANDS['arc2-paper']} (never train on ARC-AGI-2 and evaluate on ARC-AGI-1: its training "
                  "set holds some of ARC-AGI-1's evaluation puzzles)",
    "sudoku-paper-fast": "sudoku-paper with CGAR's recipe (arXiv 2511.08653): its depth curriculum T=1 n=2, then "
                         "T=2 n=4 from 30%, the paper's T=3 n=6 from 60%, and supervision steps weighted 0.7^t. CGAR "
                         "reports 86.02% against 86.65% in 6.38 h against 10.93 h on one A100 (1.71x); the curriculum "
                         "alone 85.47% at 2.26x. Data: as sudoku-paper's",
    "sudoku-att-paper-fast": "sudoku-att-paper with CGAR's recipe, as sudoku-paper-fast (CGAR measured the MLP only)",
    "maze-paper-fast": "maze-paper with CGAR's recipe, its thirds scaled to n = 4 (T=1 n=1, T=2 n=3, T=3 n=4): not "
                       "measured by CGAR, which reports Sudoku only",
    "arc-paper-fast": "arc-paper with CGAR's recipe scaled to n = 4, as maze-paper-fast (not measured by CGAR)",
    "arc2-paper-fast": "arc2-paper with CGAR's recipe scaled to n = 4, as maze-paper-fast (not measured by CGAR)",
}
