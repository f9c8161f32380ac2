"""``trm-tui import reference``: one of the reference's checkpoints (``step_N`` beside ``all_config.yaml``, on disk
or in a hub repository) as a completed run of ours, with identical logits at every supervision step."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

from trm_core.config import ConfigError
from trm_core.rundir.layout import RunDir
from trm_core.weights import reference
from trm_core.prep.output import check_out
from trm_core.weights.as_run import write_weights_run
from trm_core.weights.sources import hub_file, is_hub, parse_hub
from trm_core.weights.tensor_checks import check_values, meta_shapes

YAML = "all_config.yaml"


@dataclass(frozen=True)
class Imported:
    run: RunDir
    step: int
    tensors: int
    parameters: int
    dataset: str


def locate(checkpoint: str, config: Path | None) -> tuple[Path, Path, str]:
    """(the checkpoint file, its all_config.yaml, how to name the source): local, or fetched from the hub."""
    if is_hub(checkpoint):
        spec = parse_hub(checkpoint, "CKPT")
        if not spec.path:
            raise ConfigError(f"CKPT {checkpoint}: name the checkpoint file in the repository, "
                              f"e.g. {checkpoint}/step_1000")
        instead = "download the checkpoint and all_config.yaml yourself and give their paths"
        path = hub_file(spec, "", instead)
        if config is None:
            folder = spec.path.rsplit("/", 1)[0] if "/" in spec.path else ""
            config = hub_file(dataclasses.replace(spec, path=folder), YAML, instead + " (or give --config)")
        return path, config, str(spec)
    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise ConfigError(f"CKPT {checkpoint}: " + ("a folder; name the checkpoint file in it (step_N)"
                                                     if path.is_dir() else "no such file"))
    return path, config or path.parent / YAML, str(path.resolve())


def dataset_of(data: dict, given: Path | None, where: Path) -> str:
    """The dataset the model's shape is read from: ``--dataset``, or the yaml's own ``data_paths[0]`` where it
    exists here."""
    if given is not None:
        if not given.is_dir():
            raise ConfigError(f"--dataset {given}: no such folder")
        return str(given.resolve())
    paths = data.get("data_paths") or []
    first = Path(str(paths[0])).expanduser() if paths else None
    if first is not None and first.is_dir():
        return str(first.resolve())
    said = f"its data_paths[0] = {paths[0]!r} is not a folder here" if paths else "it names no data_paths"
    raise ConfigError(f"{where}: {said}; give --dataset DIR, the dataset the model was trained on (built by "
                      f"trm-tui data ... or the reference's builders): its sequence length, vocabulary and puzzle "
                      f"identifiers are part of the model")


def import_reference(checkpoint: str, out: Path, config: Path | None = None,
                     dataset: Path | None = None) -> Imported:
    """Convert, check and write the run ``out``; nothing is written when anything is refused."""
    import torch

    from trm_core.data.factory import build_dataset
    from trm_core.train.model import build_model, count_parameters

    check_out(out)
    path, yaml_path, source = locate(checkpoint, config)
    data = reference.read_reference_yaml(yaml_path)
    keys = reference.reference_sets(data, str(yaml_path))  # the architecture is refused before the data is looked for
    cfg = reference.config_of(keys | {"data.dataset_dir": dataset_of(data, dataset, yaml_path)}, str(yaml_path))
    ds = build_dataset(cfg)
    vocab, puzzles = ds.vocab_size, getattr(ds, "num_puzzle_ids", 1)
    expected = meta_shapes(cfg.model, vocab, puzzles)  # the yaml's model, sized without memory
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a pickle with code in it, not a torch file, a truncated one: all refused alike
        first = str(exc).splitlines()[0] if str(exc) else ""
        if "Weights only load failed" in first:  # torch goes on to advise weights_only=False, the unsafe load: not ours
            first = "it holds objects other than tensors, which are not loaded (no code from a checkpoint runs)"
        raise ConfigError(f"{path}: not a checkpoint torch.load reads with weights_only=True "
                          f"({type(exc).__name__}: {first})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"{path}: not a state dict (the reference's pretrain.py saves model.state_dict())")
    check_values(state, str(path))
    converted = reference.convert(state, expected, str(path))  # every shape the yaml's: the model is the file's size
    model = build_model(cfg.model, vocab, puzzles)
    model.load_state_dict(converted)
    m = re.fullmatch(r"step_(\d+)", path.name)
    step = int(m[1]) if m else 0
    cfg.train.max_steps = max(1, step)  # a completed run of that many steps (the reference counts epochs)
    parameters = count_parameters(model)
    run = write_weights_run(out, cfg, model.state_dict(), step=step, parameters=parameters,
                            weights_from=f"the reference's checkpoint {source}", data=ds.description)
    return Imported(run, step, len(converted), parameters, cfg.data.dataset_dir)
