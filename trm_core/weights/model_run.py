"""``--model DIR|hf:OWNER/NAME[@REV]``: a model folder (``trm-tui export model``'s, or a hub repository holding
one) opened as a completed run, so eval (every test-time setting), solve and the predictions browser take it as
they take ``--run-dir``. The run lives in the cache (``$XDG_CACHE_HOME/trm-tui/models/``), one per model and
dataset, made once: a second ``--model`` of the same files opens the same run, its evals beside it.

Only safetensors is read (no pickle, no code run); a folder or repository that is not a TRM model is a
``ConfigError`` naming what is missing."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from trm_core.config import Config, ConfigError
from trm_core.rundir.layout import RunDir
from trm_core.rundir.model_shape import MODEL_CONFIG
from trm_core.weights.sources import hub_file, is_hub, parse_hub

def models_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "trm-tui" / "models"


def model_folder(spec: str) -> tuple[Path, str]:
    """The folder holding the model's files (the hub's cache for ``hf:``), and how to name it."""
    from trm_core.weights.model_folder import CONFIG_FILE, WEIGHTS_FILE

    if is_hub(spec):
        hub = parse_hub(spec, "--model")
        instead = f"download the repository yourself ({CONFIG_FILE}, {WEIGHTS_FILE}) and give --model DIR"
        paths = [hub_file(hub, name, instead) for name in (CONFIG_FILE, WEIGHTS_FILE)]
        return paths[0].parent, str(hub)
    folder = Path(spec).expanduser()
    if not folder.is_dir():
        raise ConfigError(f"--model {spec}: " + ("a file; give the model's folder (config.json, model.safetensors)"
                                                 if folder.exists() else "no such folder"))
    return folder, str(folder.resolve())


def _config_of(config: dict[str, Any], dataset_dir: str, where: Path) -> Config:
    """Our config for the model: its model section and test-time settings, its loss, the data it answers."""
    from trm_core.weights.reference import config_of

    keys = {f"model.{k}": v for k, v in config["model"].items()}
    evals = config.get("eval") or {}
    if not isinstance(evals, dict):
        raise ConfigError(f"{where}: \"eval\" is {json.dumps(evals)}; expected a section of test-time settings")
    keys |= {f"eval.{k}": v for k, v in evals.items()}
    keys |= {"data.kind": "puzzles", "data.dataset_dir": dataset_dir, "train.loss": config.get("loss", "softmax"),
             "train.ema_decay": 0.0, "train.precision": config.get("precision", "fp32"), "train.device": "auto"}
    return config_of(keys, str(where))


def _content_hash(path: Path) -> str:
    """The file's bytes, hashed (header and data alike): a file replaced by another of the same size and time
    (``cp -p``, ``rsync -a``, ``tar -x``) is another model."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _run_folder(folder: Path, source: str, dataset_dir: str) -> Path:
    """The cached run's folder: named by the model's config, its weights' content and the dataset."""
    from trm_core.weights.model_folder import CONFIG_FILE, WEIGHTS_FILE

    key = hashlib.sha256(json.dumps([(folder / CONFIG_FILE).read_text(encoding="utf-8"),
                                     _content_hash(folder / WEIGHTS_FILE), dataset_dir]).encode())
    name = re.sub(r"[^\w.-]+", "-", source.removeprefix("hf:").strip("/"))[-48:].strip("-")
    return models_cache() / f"{name}-{key.hexdigest()[:12]}"


def _check_vocabulary(config: dict[str, Any], cfg: Config, dataset: Path) -> str:
    """The dataset's vocabulary and puzzle identifiers against the model's (also for a cached run: the dataset
    folder may have been rebuilt since); the dataset's description."""
    from trm_core.data.factory import build_dataset

    ds = build_dataset(cfg)
    wanted = (int(config["vocab_size"]), int(config["num_puzzle_ids"]))
    found = (ds.vocab_size, getattr(ds, "num_puzzle_ids", 1))
    if wanted != found:
        raise ConfigError(f"--dataset {dataset}: vocabulary {found[0]} and {found[1]} puzzle identifiers; the "
                          f"model was trained on {wanted[0]} and {wanted[1]} (another dataset's model? fine-tune "
                          f"it on this one with train.init_from)")
    return ds.description


def model_run(spec: str, dataset: Path | None) -> RunDir:
    """The run that holds model ``spec`` with ``dataset`` (its own shape when None): made once in the cache."""
    from trm_core.weights.model_folder import CONFIG_FILE, load_model_folder, trained_step
    from trm_core.train.model import count_parameters
    from trm_core.weights.as_run import write_weights_run

    folder, source = model_folder(spec)
    if dataset is not None and not dataset.is_dir():
        raise ConfigError(f"--dataset {dataset}: no such folder")
    dataset_dir = str(dataset.resolve()) if dataset is not None else ""
    try:
        out = _run_folder(folder, source, dataset_dir)
    except (OSError, UnicodeDecodeError) as exc:
        load_model_folder(folder)  # says which of the model's files is missing or unreadable
        raise ConfigError(f"--model {spec}: {exc}") from None
    if (out / "checkpoints").is_dir():  # made before for these files and this dataset: opened, not made again
        if dataset is not None:
            from trm_core.weights.model_folder import read_model_config

            config = read_model_config(folder)[0]
            _check_vocabulary(config, _config_of(config, dataset_dir, folder / CONFIG_FILE), dataset)
        return RunDir(out)
    model, config = load_model_folder(folder)
    cfg = _config_of(config, dataset_dir, folder / CONFIG_FILE)
    data = _check_vocabulary(config, cfg, dataset) if dataset is not None else "none (the model's own shape)"
    step = trained_step(config, folder / CONFIG_FILE)
    cfg.train.max_steps = max(1, step)
    shape = {} if dataset is not None else {MODEL_CONFIG: json.dumps(config, indent=1)}
    try:
        return write_weights_run(out, cfg, model.state_dict(), step=step, weights_from=source,
                                 parameters=count_parameters(model), data=data, files=shape)
    except (ConfigError, OSError):
        if (out / "checkpoints").is_dir():  # another command made it first
            return RunDir(out)
        raise

