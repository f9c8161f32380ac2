"""A model folder read and checked: ``model.safetensors`` (the weights; loading runs no code and maps the file)
beside ``config.json`` (the model section and what running it needs). One home for what the folder holds and
how it is read, used by ``--model``, ``train.init_from`` and the exporter (``export/model_folder.py``, which
writes it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trm_core.config import ConfigError

FORMAT = "trm-tui-model"
VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def _count(config: dict[str, Any], key: str, where: Path, least: int) -> int:
    value = config.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not least <= value < 2**31:
        raise ConfigError(f"{where}: \"{key}\" is {json.dumps(value)}; expected a whole number of at least {least}")
    return value


def trained_step(config: dict[str, Any], where: Path) -> int:
    """The step the model was trained to (0 when the folder does not say): a checkpoint's name is made of it."""
    trained = config.get("trained") or {}
    step = trained.get("step", 0) if isinstance(trained, dict) else None
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step < 10**8:
        raise ConfigError(f"{where}: \"trained\": {{\"step\": {json.dumps(step)}}}; expected a whole number of "
                          f"steps from 0")
    return step


def read_model_config(folder: Path) -> tuple[dict[str, Any], Any, int, int]:
    """config.json, checked as a run's config is (every model key through the schema's validation): (the file,
    the model section as a ModelConfig, the vocabulary, the puzzle identifiers' count)."""
    from trm_core.prep.arc import read_json
    from trm_core.weights.reference import config_of

    path = folder / CONFIG_FILE
    config = read_json(path, "a model folder's; trm-tui export model writes one")
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ConfigError(f"{path}: not a TRM model's config (its \"format\" is not {FORMAT!r})")
    if not isinstance(config.get("model"), dict):
        raise ConfigError(f"{path}: no \"model\" section")
    model = config_of({f"model.{k}": v for k, v in config["model"].items()}, str(path)).model
    trained_step(config, path)
    return config, model, _count(config, "vocab_size", path, 2), _count(config, "num_puzzle_ids", path, 1)


def load_model_folder(folder: Path | str, device: str = "cpu") -> tuple[Any, dict[str, Any]]:
    """The network a model folder holds, its weights loaded (safetensors: no pickle, no code run), in eval mode,
    and its config.json; a ``ConfigError`` naming what is missing or wrong for a folder that is not one. The
    weights' shapes are compared with the config's model (built on the meta device) before anything is
    allocated, and their values checked (finite) before they answer anything."""
    import torch
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    from trm_core.train.model import build_model
    from trm_core.weights.tensor_checks import check_values, meta_shapes, refuse, shape_problems

    folder = Path(folder)
    config, model_cfg, vocab, puzzles = read_model_config(folder)
    weights = folder / WEIGHTS_FILE
    try:
        with safe_open(str(weights), "pt") as header:
            found = {name: tuple(header.get_slice(name).get_shape()) for name in header.keys()}
    except FileNotFoundError:
        raise ConfigError(f"{folder}: no {WEIGHTS_FILE}") from None
    except (SafetensorError, OSError) as exc:
        raise ConfigError(f"{weights}: not readable safetensors ({exc})") from None
    refuse(shape_problems(found, meta_shapes(model_cfg, vocab, puzzles)), str(weights),
           "its weights do not fit the config's model")
    model = build_model(model_cfg, vocab, puzzles)
    try:
        state = load_file(str(weights), device=device)
    except (SafetensorError, OSError) as exc:
        raise ConfigError(f"{weights}: not readable safetensors ({exc})") from None
    check_values(state, str(weights))
    model.load_state_dict(state)
    model.to(torch.device(device)).requires_grad_(False).eval()
    return model, config
