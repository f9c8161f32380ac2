"""The run configuration: one typed schema, layered sources, and validation that names the problem.

Layering, lowest first: built-in defaults < config file < preset < environment (``TRM_SECTION_KEY``)
< ``--set section.key=value``. Every layer goes through the same validation, so a typo anywhere gives
the same clear message (key, value, what is allowed) instead of a traceback.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

import tomli_w


class ConfigError(ValueError):
    """A user mistake in configuration: the message is shown as is, the process exits with code 2."""


def _f(default: Any, doc: str, *, min: float | None = None, max: float | None = None,
       choices: tuple[Any, ...] | None = None, above: float | None = None) -> Any:
    """A schema field: its default, a one-line doc (used in config.toml), and its allowed range."""
    meta = {"doc": doc, "min": min, "max": max, "choices": choices, "above": above}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class ModelConfig:
    dim: int = _f(1024, "width of every token vector", min=8)
    depth: int = _f(4, "MLP-mixer blocks in the one shared network", min=1)
    seq_len: int = _f(4096, "tokens per sample (the mixer mixes over a fixed length)", min=2)
    vocab_size: int = _f(0, "token vocabulary; 0 = derived from the data (258 for code: bytes, pad, mask)", min=0)
    latent_steps: int = _f(6, "n: latent refinements z <- net(x + y + z) per refinement block", min=1)
    refinement_blocks: int = _f(3, "T: refinement blocks per supervision step, gradients only through the last", min=1)
    max_supervision_steps: int = _f(16, "deep supervision steps per batch, one optimizer update each", min=1)
    halt_threshold: float = _f(0.5, "a sample halts (leaves the batch) when its halt probability reaches this", min=0.0, max=1.0)
    halt_loss_weight: float = _f(1.0, "weight of the halting BCE loss against 'answer fully correct'", min=0.0)
    expansion_factor: float = _f(4.0, "token-mixing hidden width as a multiple of dim (as tiny-recursive-model)", above=0.0)
    expansion_factor_token: float = _f(0.5, "channel-mixing hidden width as a multiple of dim", above=0.0)


@dataclass
class DataConfig:
    kind: str = _f("code", "'code': byte-level masked-span denoising on source files; 'pairs': a JSONL of input/output token lists",
                   choices=("code", "pairs"))
    paths: list = _f([], "code: files or folders to read; empty = the Python standard library's own sources")
    extensions: list = _f([".py"], "code: file name endings to include")
    max_bytes: int = _f(0, "code: stop reading the corpus after this many bytes; 0 = no limit", min=0)
    mask_ratio: float = _f(0.15, "code: fraction of bytes hidden behind the mask token", min=0.0, max=1.0)
    mean_span: float = _f(3.0, "code: mean length of a masked span", min=1.0)
    eval_fraction: float = _f(0.01, "fraction of samples held out for eval", min=0.0, max=0.5)
    pairs_file: str = _f("", "pairs: JSONL file of {\"input\": [...], \"output\": [...]}, each seq_len long")
    eval_pairs_file: str = _f("", "pairs: optional held-out JSONL; empty = split eval_fraction off pairs_file")
    cache_dir: str = _f("", "where the packed corpus is cached; empty = $XDG_CACHE_HOME/trm-tui or ~/.cache/trm-tui")


@dataclass
class TrainConfig:
    batch_size: int = _f(1, "samples per optimizer update (the effective batch)", min=1)
    micro_batch_size: int = _f(0, "samples per forward/backward; must divide batch_size; 0 = batch_size", min=0)
    epochs: int = _f(15, "passes over the training split (used when max_steps = 0)", min=1)
    max_steps: int = _f(0, "stop after this many steps (a step = one batch through its supervision steps); 0 = epochs", min=0)
    learning_rate: float = _f(2e-4, "peak AdamW learning rate", above=0.0, max=1.0)
    min_lr_ratio: float = _f(0.1, "cosine decay ends at learning_rate * min_lr_ratio", min=0.0, max=1.0)
    warmup_steps: int = _f(100, "linear warm-up steps", min=0)
    weight_decay: float = _f(0.1, "AdamW weight decay", min=0.0)
    adam_beta1: float = _f(0.9, "AdamW beta1", min=0.0, max=1.0)
    adam_beta2: float = _f(0.95, "AdamW beta2", min=0.0, max=1.0)
    grad_clip: float = _f(1.0, "clip the gradient norm to this; 0 = off", min=0.0)
    ema_decay: float = _f(0.999, "decay of the weights' exponential moving average (used for eval); 0 = off", min=0.0, max=1.0)
    seed: int = _f(0, "seed for initialisation and data order", min=0, max=2**63 - 1)
    device: str = _f("auto", "'auto' (cuda when present), 'cpu', 'cuda' or 'cuda:N'")
    bf16: bool = _f(True, "bf16 autocast on CUDA (ignored on CPU, where runs stay bit-exact)")
    compile: bool = _f(False, "torch.compile the network")
    threads: int = _f(0, "torch CPU threads; 0 = torch's default", min=0)
    log_every: int = _f(1, "write a step event every N steps", min=1)
    eval_every: int = _f(500, "run eval every N steps; 0 = off", min=0)
    eval_batches: int = _f(8, "batches per eval", min=1)
    checkpoint_every: int = _f(500, "save a checkpoint every N steps (and always on stop)", min=1)
    keep_checkpoints: int = _f(3, "keep the newest K checkpoints", min=1)
    step_timeout_s: float = _f(900.0, "watchdog: a step running longer than this is a stall (exit 3)", above=0.0)
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
    allow_batch_change: bool = _f(False, "may raise train.batch_size too (learning rate scaled by sqrt of the ratio); only before the first step")
    max_batch_size: int = _f(0, "the largest effective batch tried when allow_batch_change; 0 = 8x train.batch_size", min=0)
    max_seconds: float = _f(600.0, "time budget of a whole search, trials included", above=0.0)
    warmup_steps: int = _f(2, "steps each trial runs before it starts measuring", min=0)
    measure_steps: int = _f(4, "steps each trial measures (samples/s from the median step time)", min=1)
    min_gain: float = _f(0.03, "a larger candidate must be this much faster to count as better; the search stops growing when one is not", min=0.0, max=1.0)


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    supervisor: SupervisorConfig = field(default_factory=SupervisorConfig)
    autotune: AutotuneConfig = field(default_factory=AutotuneConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)

    def hash(self) -> str:
        """Short stable digest of the resolved config, stored with every checkpoint."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    @property
    def micro_batch(self) -> int:
        return self.train.micro_batch_size or self.train.batch_size


SECTIONS: dict[str, type] = {f.name: f.type if isinstance(f.type, type) else globals()[f.type]
                             for f in dataclasses.fields(Config)}

# Built-in presets: also written out in the shipped config.toml (a test keeps the two equal), here so
# that `--preset tiny` works from any directory.
BUILTIN_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "tiny": {
        "model": {"dim": 64, "depth": 2, "seq_len": 64, "latent_steps": 2, "refinement_blocks": 2,
                  "max_supervision_steps": 2},
        "data": {"max_bytes": 4_000_000},
        "train": {"batch_size": 16, "max_steps": 600, "learning_rate": 1e-3, "warmup_steps": 20,
                  "checkpoint_every": 100, "eval_every": 100, "eval_batches": 4, "ema_decay": 0.99,
                  "step_timeout_s": 120.0},
    },
}

# Keys a resumed run may change: none of them changes the model, the data or the optimizer. Two still
# touch the numbers, as the user guide says: epochs/max_steps move the end of the cosine schedule, and
# device/micro_batch_size change floating-point rounding (bf16 on CUDA, summation order).
SAFE_ON_RESUME: frozenset[str] = frozenset({
    "train.epochs", "train.max_steps", "train.micro_batch_size", "train.compile", "train.threads",
    "train.log_every", "train.eval_every", "train.eval_batches", "train.checkpoint_every",
    "train.keep_checkpoints", "train.step_timeout_s", "train.heartbeat_s", "train.device",
    "supervisor.max_restarts", "supervisor.restart_window_s", "supervisor.restart_backoff_s",
    "supervisor.stop_grace_s", "supervisor.stall_after_s",
    "autotune.memory_margin", "autotune.memory_limit_mb", "autotune.allow_batch_change", "autotune.max_batch_size",
    "autotune.max_seconds", "autotune.warmup_steps", "autotune.measure_steps", "autotune.min_gain",
})


def _section_fields(section: str) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(SECTIONS[section])}


def _did_you_mean(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _resolve_key(dotted: str, source: str) -> tuple[str, str]:
    if "." not in dotted:
        raise ConfigError(f"{source}: '{dotted}' is not a config key; keys look like section.key, "
                          f"sections: {', '.join(SECTIONS)}")
    section, key = dotted.split(".", 1)
    if section not in SECTIONS:
        raise ConfigError(f"{source}: unknown section '{section}'{_did_you_mean(section, list(SECTIONS))}; "
                          f"sections: {', '.join(SECTIONS)}")
    fields = _section_fields(section)
    if key not in fields:
        raise ConfigError(f"{source}: unknown key '{section}.{key}'"
                          f"{_did_you_mean(key, list(fields))}; keys in [{section}]: {', '.join(fields)}")
    return section, key


def _type_name(t: type) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string",
            list: "a list of strings"}[t]


def _coerce(section: str, key: str, value: Any, source: str) -> Any:
    """Check one value against its field's type and range; return it in the field's type."""
    f = _section_fields(section)[key]
    t = {"int": int, "float": float, "bool": bool, "str": str, "list": list}.get(f.type, f.type) \
        if isinstance(f.type, str) else f.type
    name = f"{section}.{key}"
    bad = ConfigError(f"{source}: {name} = {value!r} is not {_type_name(t)}")
    if t is bool:
        if not isinstance(value, bool):
            raise bad
    elif t is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
    elif t is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        value = float(value)
    elif t is str:
        if not isinstance(value, str):
            raise bad
    elif t is list:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad
    meta = f.metadata
    if meta.get("choices") and value not in meta["choices"]:
        allowed = ", ".join(repr(c) for c in meta["choices"])
        raise ConfigError(f"{source}: {name} = {value!r} is not allowed; choose one of {allowed}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        lo, hi, above = meta.get("min"), meta.get("max"), meta.get("above")
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"{source}: {name} = {value!r} must be a finite number")
        if lo is not None and value < lo:
            raise ConfigError(f"{source}: {name} = {value!r} is out of range; it must be >= {lo}")
        if above is not None and value <= above:
            raise ConfigError(f"{source}: {name} = {value!r} is out of range; it must be > {above}")
        if hi is not None and value > hi:
            raise ConfigError(f"{source}: {name} = {value!r} is out of range; it must be <= {hi}")
    return value


def parse_scalar(text: str) -> Any:
    """Parse a command-line or environment value as TOML (numbers, booleans, lists), else a plain string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_set(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected section.key=value")
    key, _, raw = item.partition("=")
    return key.strip(), parse_scalar(raw.strip())


class Layers:
    """Collects overrides layer by layer, validating each value as it arrives."""

    def __init__(self) -> None:
        self.values: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}

    def apply_tables(self, tables: Mapping[str, Any], source: str) -> None:
        for section, body in tables.items():
            if section == "presets":
                continue
            if not isinstance(body, Mapping):
                _resolve_key(section, source)  # raises with a clear message for a bare key
                raise ConfigError(f"{source}: [{section}] must be a table")
            for key, value in body.items():
                self.set(f"{section}.{key}", value, source)

    def set(self, dotted: str, value: Any, source: str) -> None:
        section, key = _resolve_key(dotted, source)
        self.values[section][key] = _coerce(section, key, value, source)

    def build(self) -> Config:
        cfg = Config(**{s: SECTIONS[s](**self.values[s]) for s in SECTIONS})
        validate(cfg)
        return cfg


def validate(cfg: Config) -> None:
    """Checks that span several keys."""
    t = cfg.train
    if t.micro_batch_size and t.batch_size % t.micro_batch_size:
        raise ConfigError(f"train.micro_batch_size = {t.micro_batch_size} does not divide "
                          f"train.batch_size = {t.batch_size}; choose a divisor of {t.batch_size}")
    if t.device not in ("auto", "cpu", "cuda") and not (t.device.startswith("cuda:") and t.device[5:].isdigit()):
        raise ConfigError(f"train.device = {t.device!r} is not allowed; use 'auto', 'cpu', 'cuda' or 'cuda:N'")
    m = cfg.model
    for key, factor in (("expansion_factor", m.expansion_factor), ("expansion_factor_token", m.expansion_factor_token)):
        if int(factor * m.dim) < 1:
            raise ConfigError(f"model.{key} = {factor} gives a hidden width of {int(factor * m.dim)} with "
                              f"model.dim = {m.dim}; it must be at least 1 / dim = {1 / m.dim:g}")
    if cfg.data.kind == "pairs" and not cfg.data.pairs_file:
        raise ConfigError("data.pairs_file is empty but data.kind = 'pairs' needs a JSONL file")


def load_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None


def resolve(config_file: Path | None = None, preset: str | None = None,
            env: Mapping[str, str] | None = None, sets: list[str] | tuple[str, ...] = (),
            base: Mapping[str, Any] | None = None, default_file: Path = Path("config.toml")) -> Config:
    """Resolve a config from every layer. ``base`` replaces defaults+file (used on resume)."""
    layers = Layers()
    file_tables: dict[str, Any] = {}
    if base is not None:
        layers.apply_tables(base, "saved run config")
    else:
        path = config_file if config_file is not None else (default_file if default_file.exists() else None)
        if path is not None:
            file_tables = load_toml(Path(path))
            layers.apply_tables(file_tables, str(path))
    if preset:
        file_presets = file_tables.get("presets") or {}
        if not isinstance(file_presets, Mapping) or not all(isinstance(v, Mapping) for v in file_presets.values()):
            raise ConfigError(f"{config_file or default_file}: [presets] must hold tables like [presets.NAME.train]")
        presets = {**BUILTIN_PRESETS, **file_presets}
        if preset not in presets:
            raise ConfigError(f"unknown preset '{preset}'{_did_you_mean(preset, list(presets))}; "
                              f"presets: {', '.join(sorted(presets))}")
        layers.apply_tables(presets[preset], f"preset '{preset}'")
    for name, raw in sorted((env if env is not None else os.environ).items()):
        if not name.startswith("TRM_"):
            continue
        rest = name[4:].lower()
        section = next((s for s in SECTIONS if rest.startswith(s + "_")), None)
        if section is None:
            continue  # TRM_TEST_* hooks and other tools' variables are not config
        layers.set(f"{section}.{rest[len(section) + 1:]}", parse_scalar(raw), f"environment {name}")
    for item in sets:
        key, value = parse_set(item)
        layers.set(key, value, f"--set {item}")
    return layers.build()


def check_resume_overrides(sets: list[str] | tuple[str, ...], preset: str | None) -> None:
    """On resume only math-neutral keys may change; say which ones are allowed."""
    if preset:
        raise ConfigError("--preset cannot be combined with --resume: a run keeps its own config")
    for item in sets:
        key, _ = parse_set(item)
        _resolve_key(key, f"--set {item}")
        if key not in SAFE_ON_RESUME:
            raise ConfigError(f"--set {item}: {key} cannot change on resume (it would change the math of the "
                              f"run); keys that can: {', '.join(sorted(SAFE_ON_RESUME))}")


def write_config(cfg: Config, path: Path) -> None:
    """Write the resolved config atomically so a crash never leaves half a file."""
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        tomli_w.dump(cfg.to_dict(), fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


RUN_CONFIG_FILE = "config.toml"  # RUN_DIR/config.toml: the run's resolved config, written by the worker


def read_run_config(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ConfigError(f"{path} does not exist: nothing to resume in this run dir")
    return load_toml(path)
