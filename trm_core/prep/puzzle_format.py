"""The puzzle dataset format of the TRM reference implementation (SamsungSAILMontreal/TinyRecursiveModels),
read and written here so datasets built by either side load in the other unchanged.

A dataset folder holds ``train/`` and ``test/``. Each holds ``dataset.json`` (the metadata below) and, for each
name in its ``sets``, five arrays:

- ``SET__inputs.npy``, ``SET__labels.npy``: (examples, seq_len) token ids (the reference writes uint8 for
  Sudoku and Maze, int32-compatible ids elsewhere); labels equal to ``ignore_label_id`` carry no loss;
- ``SET__puzzle_identifiers.npy`` (int32, one per puzzle): which embedding a puzzle uses (ARC), 0 otherwise;
- ``SET__puzzle_indices.npy`` (int32, puzzles + 1): the examples of puzzle p are rows
  ``puzzle_indices[p]:puzzle_indices[p + 1]``;
- ``SET__group_indices.npy`` (int32, groups + 1): the puzzles of group g (a puzzle and its augmentations) are
  ``group_indices[g]:group_indices[g + 1]``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trm_core.config import ConfigError

SPLITS = ("train", "test")
ARRAYS = ("inputs", "labels", "puzzle_identifiers", "puzzle_indices", "group_indices")
INDEX_ARRAYS = ("puzzle_identifiers", "puzzle_indices", "group_indices")


@dataclass
class PuzzleMetadata:
    """``dataset.json``, field for field as the reference's ``PuzzleDatasetMetadata``."""

    pad_id: int
    ignore_label_id: int | None
    blank_identifier_id: int
    vocab_size: int
    seq_len: int
    num_puzzle_identifiers: int
    total_groups: int
    mean_puzzle_examples: float
    total_puzzles: int
    sets: list[str]

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def read_metadata(dataset_dir: Path, split: str) -> PuzzleMetadata:
    """One split's ``dataset.json``; an error names the file and the field when it is not the format."""
    path = dataset_dir / split / "dataset.json"
    try:
        raw: Any = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"data.dataset_dir: {path} does not exist (a puzzle dataset holds train/ and test/, "
                          f"each with a dataset.json; build one with trm-tui data sudoku|maze|arc --out DIR, "
                          f"each with --help)") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    fields = PuzzleMetadata.__dataclass_fields__
    missing = [name for name in fields if name not in raw]
    if missing:
        raise ConfigError(f"{path}: missing field(s) {', '.join(missing)}")
    meta = PuzzleMetadata(**{name: raw[name] for name in fields})
    for name in ("pad_id", "blank_identifier_id", "vocab_size", "seq_len", "num_puzzle_identifiers",
                 "total_groups", "total_puzzles"):
        value = getattr(meta, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"{path}: {name} = {value!r} is not a non-negative integer")
    if not isinstance(meta.sets, list) or not meta.sets or not all(isinstance(s, str) for s in meta.sets):
        raise ConfigError(f"{path}: sets = {meta.sets!r} is not a list of set names")
    return meta


def load_split(dataset_dir: Path, split: str, meta: PuzzleMetadata) -> dict[str, dict[str, np.ndarray]]:
    """Each set's arrays: inputs and labels memory-mapped (never read whole), the index arrays in memory."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for set_name in meta.sets:
        arrays = {}
        for name in ARRAYS:
            path = dataset_dir / split / f"{set_name}__{name}.npy"
            try:
                arrays[name] = np.load(path, mmap_mode=None if name in INDEX_ARRAYS else "r")
            except FileNotFoundError:
                raise ConfigError(f"{path} is missing (dataset.json lists the set {set_name!r})") from None
            except (OSError, ValueError) as exc:
                raise ConfigError(f"{path}: not a NumPy array file ({exc})") from None
        _check(dataset_dir / split, set_name, arrays, meta)
        out[set_name] = arrays
    return out


def _check(folder: Path, set_name: str, a: dict[str, np.ndarray], meta: PuzzleMetadata) -> None:
    where = f"{folder}/{set_name}__"
    for name in ("inputs", "labels"):
        if a[name].ndim != 2 or a[name].shape[1] != meta.seq_len:
            raise ConfigError(f"{where}{name}.npy has shape {a[name].shape}; dataset.json says seq_len = {meta.seq_len}")
    if a["inputs"].shape != a["labels"].shape:
        raise ConfigError(f"{where}inputs.npy {a['inputs'].shape} and labels.npy {a['labels'].shape} differ")
    p, g = a["puzzle_indices"], a["group_indices"]
    if p.ndim != 1 or p[0] != 0 or p[-1] != len(a["inputs"]) or np.any(np.diff(p) <= 0):
        raise ConfigError(f"{where}puzzle_indices.npy does not partition the {len(a['inputs'])} examples")
    if g.ndim != 1 or g[0] != 0 or g[-1] != len(p) - 1 or np.any(np.diff(g) <= 0):
        raise ConfigError(f"{where}group_indices.npy does not partition the {len(p) - 1} puzzles")
    if len(a["puzzle_identifiers"]) != len(p) - 1:
        raise ConfigError(f"{where}puzzle_identifiers.npy has {len(a['puzzle_identifiers'])} entries for "
                          f"{len(p) - 1} puzzles")


def write_split(dataset_dir: Path, split: str, meta: PuzzleMetadata, sets: dict[str, dict[str, np.ndarray]]) -> int:
    """Write one split as the reference does (same names, dtypes and metadata); returns the bytes written."""
    folder = dataset_dir / split
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dataset.json").write_text(meta.to_json())
    written = 0
    for set_name, arrays in sets.items():
        for name in ARRAYS:
            value = arrays[name]
            if name in INDEX_ARRAYS:
                value = np.asarray(value, dtype=np.int32)
            path = folder / f"{set_name}__{name}.npy"
            np.save(path, value)
            written += path.stat().st_size
    return written
