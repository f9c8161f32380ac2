"""Byte-level code corpus with masked-span denoising.

The corpus (every matching source file under ``data.paths``) is packed once into one byte file in the
cache, keyed by the files' paths, sizes and mtimes; later runs map it back in well under a second.
Samples are ``seq_len``-byte chunks; the input hides spans behind a mask token and the target is the
original bytes.
"""

from __future__ import annotations

import hashlib
import os
import sysconfig
from pathlib import Path

import torch

from trm_core.config import ConfigError, DataConfig
from trm_core.rundir.layout import atomic_file
from trm_core.data.base import Batch, holdout_split

PAD_TOKEN = 256
MASK_TOKEN = 257
CODE_VOCAB = 258
SKIP_DIRS = {"site-packages", "dist-packages", "__pycache__", ".git"}


def default_paths() -> list[str]:
    return [sysconfig.get_paths()["stdlib"]]


def list_sources(paths: list[str], extensions: list[str]) -> list[Path]:
    files: list[Path] = []
    for root in paths:
        p = Path(root).expanduser()
        if p.is_file():
            files.append(p)
        elif p.is_dir():
            for dirpath, dirnames, filenames in os.walk(p):
                dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
                files.extend(Path(dirpath) / f for f in sorted(filenames)
                             if f.endswith(tuple(extensions)) and (Path(dirpath) / f).is_file())  # no broken links
        else:
            raise ConfigError(f"data.paths: {root} does not exist")
    return files


def cache_dir(cfg: DataConfig) -> Path:
    if cfg.cache_dir:
        return Path(cfg.cache_dir).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "trm-tui"


def _corpus_key(files: list[Path], cfg: DataConfig) -> str:
    h = hashlib.sha256(f"v1|{cfg.max_bytes}|".encode())
    for f in files:
        st = f.stat()
        h.update(f"{f}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def _pack(files: list[Path], max_bytes: int, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    total = 0
    with atomic_file(dest) as out:
        for f in files:
            try:
                blob = f.read_bytes() + b"\n"
            except OSError:
                continue  # an unreadable file is skipped, not fatal
            if max_bytes and total + len(blob) > max_bytes:
                blob = blob[:max_bytes - total]
            out.write(blob)
            total += len(blob)
            if max_bytes and total >= max_bytes:
                break


def load_corpus(cfg: DataConfig) -> tuple[torch.Tensor, str]:
    paths = cfg.paths or default_paths()
    files = list_sources(paths, cfg.extensions)
    if not files:
        raise ConfigError(f"data.paths: no files ending in {', '.join(cfg.extensions)} under {', '.join(paths)}")
    dest = cache_dir(cfg) / f"corpus-{_corpus_key(files, cfg)}.bin"
    if not dest.exists():
        try:
            _pack(files, cfg.max_bytes, dest)
        except OSError as exc:
            raise ConfigError(f"data.cache_dir: cannot write the packed corpus to {dest.parent}: "
                              f"{exc.strerror}") from None
    data = torch.frombuffer(bytearray(dest.read_bytes()), dtype=torch.uint8)
    return data, f"{len(files)} files, {data.numel():,} bytes from {', '.join(paths)}"


class CodeDataset:
    vocab_size = CODE_VOCAB

    def __init__(self, cfg: DataConfig, seq_len: int) -> None:
        corpus, source = load_corpus(cfg)
        count = corpus.numel() // seq_len
        if count < 2:
            raise ConfigError(f"data.paths: the corpus ({corpus.numel()} bytes) is shorter than two samples of "
                              f"model.seq_len = {seq_len}")
        self.chunks = corpus[:count * seq_len].view(count, seq_len)
        self.train_ids, self.eval_ids = holdout_split(count, cfg.eval_fraction)
        self.num_train, self.num_eval = len(self.train_ids), len(self.eval_ids)
        self.seq_len = seq_len
        self.mask_ratio = cfg.mask_ratio
        self.mean_span = cfg.mean_span
        self.description = f"code: {source}; {self.num_train:,} train / {self.num_eval:,} eval samples"
        held_out = self.chunks[self.eval_ids].reshape(-1).long()
        # the score of always guessing the held-out split's most common byte (a space, in Python sources): a
        # model that has learned only to copy scores about this on the masked bytes
        self.baseline = ("always guessing the most common byte",
                         float(torch.bincount(held_out).max()) / max(1, held_out.numel()))

    def _mask(self, targets: torch.Tensor, gen: torch.Generator) -> Batch:
        """Hide about ``mask_ratio`` of the bytes in spans of mean length ``mean_span``: the input shows the mask
        token there, the target keeps every byte, and ``hidden`` marks which were hidden."""
        batch, n = targets.shape
        spans = max(1, round(self.mask_ratio * n / self.mean_span)) if self.mask_ratio > 0 else 0
        if spans == 0:
            return Batch(targets.clone(), targets, torch.zeros_like(targets, dtype=torch.bool))
        starts = torch.randint(0, n, (batch, spans, 1), generator=gen)
        max_len = max(1, int(round(2 * self.mean_span - 1)))
        lengths = torch.randint(1, max_len + 1, (batch, spans, 1), generator=gen)
        pos = torch.arange(n).view(1, 1, n)
        mask = ((pos >= starts) & (pos < starts + lengths)).any(dim=1)
        return Batch(targets.masked_fill(mask, MASK_TOKEN), targets, mask)

    def train_batch(self, indices: torch.Tensor, seed: int) -> Batch:
        return self._mask(self.chunks[self.train_ids[indices]].long(), torch.Generator().manual_seed(seed))

    def eval_batch(self, start: int, size: int) -> Batch:
        ids = torch.arange(start, start + size) % max(1, self.num_eval)
        return self._mask(self.chunks[self.eval_ids[ids]].long(), torch.Generator().manual_seed(start))

    def split_size(self, split: str) -> int:
        return self.num_eval if split == "test" else self.num_train

    def examples(self, split: str, start: int, size: int) -> Batch:
        """The held-out split as every eval masks it; the training split's chunks masked the same way (by their
        start), in order."""
        if split == "test":
            return self.eval_batch(start, size)
        ids = torch.arange(start, min(self.num_train, start + size))
        return self._mask(self.chunks[self.train_ids[ids]].long(), torch.Generator().manual_seed(start))
