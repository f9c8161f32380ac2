"""Data: deterministic order, masked-span denoising on real code, the corpus cache, JSONL pairs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from trm_core.config import ConfigError, DataConfig
from trm_core.data.code import MASK_TOKEN, CodeDataset
from trm_core.data.order import DataOrder
from trm_core.data.pairs import PairsDataset


def test_order_is_a_function_of_seed_epoch_position() -> None:
    a, b = DataOrder(100, 8, seed=3), DataOrder(100, 8, seed=3)
    assert a.steps_per_epoch == 12
    # a fresh object asked for (epoch 2, position 5) directly gives what the sequential walk gave
    walk = [a.indices(*a.locate(s)) for s in range(30)]
    assert torch.equal(b.indices(2, 5), walk[2 * 12 + 5])
    epoch0 = torch.cat(walk[:12])
    assert len(set(epoch0.tolist())) == 96  # no repeats inside an epoch
    assert not torch.equal(walk[0], walk[12])  # a new permutation per epoch
    assert not torch.equal(DataOrder(100, 8, seed=4).indices(0, 0), walk[0])


def test_code_dataset_masks_spans_of_real_code(corpus: Path, tmp_path: Path) -> None:
    cfg = DataConfig(paths=[str(corpus)], cache_dir=str(tmp_path), eval_fraction=0.1)
    ds = CodeDataset(cfg, seq_len=128)
    assert ds.num_eval > 0 and ds.num_train > ds.num_eval
    batch = ds.train_batch(torch.arange(16), seed=42)
    again = ds.train_batch(torch.arange(16), seed=42)
    assert torch.equal(batch.inputs, again.inputs)
    masked = batch.inputs == MASK_TOKEN
    assert 0.08 < masked.float().mean() < 0.2
    assert torch.equal(batch.inputs[~masked], batch.targets[~masked])
    text = bytes(batch.targets[0].tolist()).decode("utf-8", errors="replace")
    assert text.isprintable() or "\n" in text
    assert ds.train_batch(torch.arange(16), seed=43).inputs.ne(batch.inputs).any()


def test_corpus_is_packed_once_and_reused(corpus: Path, tmp_path: Path) -> None:
    cfg = DataConfig(paths=[str(corpus)], cache_dir=str(tmp_path))
    CodeDataset(cfg, seq_len=64)
    packed = list(tmp_path.glob("corpus-*.bin"))
    assert len(packed) == 1
    stamp = packed[0].stat().st_mtime_ns
    CodeDataset(cfg, seq_len=32)  # another seq_len reuses the same bytes
    assert packed[0].stat().st_mtime_ns == stamp and len(list(tmp_path.glob("corpus-*.bin"))) == 1
    expected = sum(p.stat().st_size + 1 for p in corpus.iterdir())
    assert packed[0].stat().st_size == expected


def test_code_paths_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        CodeDataset(DataConfig(paths=[str(tmp_path / "nope")], cache_dir=str(tmp_path)), 32)
    with pytest.raises(ConfigError, match="no files ending in .py"):
        CodeDataset(DataConfig(paths=[str(tmp_path)], cache_dir=str(tmp_path)), 32)


def _write_pairs(path: Path, rows: list) -> None:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")


def test_pairs_load_and_split(tmp_path: Path) -> None:
    f = tmp_path / "p.jsonl"
    _write_pairs(f, [{"input": [i % 5] * 4, "output": [(i + 1) % 5] * 4} for i in range(40)])
    ds = PairsDataset(DataConfig(kind="pairs", pairs_file=str(f), eval_fraction=0.1), seq_len=4, vocab_size=0)
    assert (ds.num_train, ds.num_eval, ds.vocab_size) == (36, 4, 5)
    b = ds.train_batch(torch.tensor([0, 1]), seed=0)
    assert b.inputs.shape == (2, 4)


@pytest.mark.parametrize("bad, message", [
    ("{not json", "p.jsonl:2: not valid JSON"),
    ({"input": [1, 2, 3, 4]}, "p.jsonl:2: expected an object with \"input\" and \"output\""),
    ({"input": [1, 2, 3], "output": [1, 2, 3, 4]}, "p.jsonl:2: \"input\" has 3 tokens, model.seq_len is 4"),
    ({"input": [1, 2, 3, "x"], "output": [1, 2, 3, 4]}, "p.jsonl:2: \"input\" must be a list of integers"),
    ({"input": [1, 2, 3, 99], "output": [1, 2, 3, 4]}, "p.jsonl:2: token 99 in \"input\" is outside 0..9"),
])
def test_bad_pairs_line_names_file_and_line(tmp_path: Path, bad: object, message: str) -> None:
    f = tmp_path / "p.jsonl"
    _write_pairs(f, [{"input": [1, 2, 3, 4], "output": [4, 3, 2, 1]}, bad])
    with pytest.raises(ConfigError) as err:
        PairsDataset(DataConfig(kind="pairs", pairs_file=str(f)), seq_len=4, vocab_size=10)
    assert message in str(err.value)


def test_pairs_not_utf8_names_the_line(tmp_path: Path) -> None:
    f = tmp_path / "p.jsonl"
    f.write_bytes(json.dumps({"input": [1, 2], "output": [2, 1]}).encode() + b"\n\xff\xfe\n")
    with pytest.raises(ConfigError, match="p.jsonl:2: not UTF-8 text"):
        PairsDataset(DataConfig(kind="pairs", pairs_file=str(f)), seq_len=2, vocab_size=0)


def test_pairs_vocabulary_covers_the_eval_file(tmp_path: Path) -> None:
    train, held_out = tmp_path / "t.jsonl", tmp_path / "e.jsonl"
    _write_pairs(train, [{"input": [1, 2], "output": [2, 1]}] * 4)
    _write_pairs(held_out, [{"input": [7, 2], "output": [2, 7]}])
    ds = PairsDataset(DataConfig(kind="pairs", pairs_file=str(train), eval_pairs_file=str(held_out)), 2, 0)
    assert ds.vocab_size == 8


def test_unwritable_cache_dir_is_a_config_error(corpus: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="data.cache_dir: cannot write the packed corpus"):
        CodeDataset(DataConfig(paths=[str(corpus)], cache_dir=str(blocker / "cache")), 32)
