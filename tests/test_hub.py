"""``trm-tui data maze|sudoku --hub``: the source CSVs through huggingface_hub's real download code, from a hub
served on loopback (this machine has no network), then from the cache it filled with ``HF_HUB_OFFLINE=1``;
and the failures a user meets (nothing cached offline, a dataset that does not exist) as exit 2, nothing
written."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from trm_core.prep.hub import MAZE_REPO
from trm_core.prep.puzzle_format import ARRAYS

from helpers import FakeHub, cli_run, fake_hub, hub_env

pytestmark = pytest.mark.process

MAZES = [("S o#", "S o#"), ("S  G", "SooG"), (" #SG", " #SG"), ("GS #", "GS #"), ("S# G", "S#oG")]


def maze_csv(rows: list[tuple[str, str]]) -> bytes:
    """Mazes padded to 4x4 grids, in the Maze-Hard layout (source, q, a, rating)."""
    lines = [f"m{i},{q.replace('o', ' ')}{' ' * 12},{a}{' ' * 12},0" for i, (q, a) in enumerate(rows)]
    return ("source,q,a,rating\n" + "\n".join(lines) + "\n").encode()


@pytest.fixture
def hub() -> Iterator[str]:
    with fake_hub({f"datasets/{MAZE_REPO}": {"train.csv": maze_csv(MAZES), "test.csv": maze_csv(MAZES[:2])}}) as url:
        yield url


def same_set(a: Path, b: Path) -> None:
    for split in ("train", "test"):
        assert (a / split / "dataset.json").read_text() == (b / split / "dataset.json").read_text()
        for name in ARRAYS:
            assert np.array_equal(np.load(a / split / f"all__{name}.npy"), np.load(b / split / f"all__{name}.npy"))


def test_hub_download_then_the_offline_cache_build_what_the_csvs_build(tmp_path: Path, hub: str) -> None:
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    train.write_bytes(FakeHub.files[f"datasets/{MAZE_REPO}"]["train.csv"])
    test.write_bytes(FakeHub.files[f"datasets/{MAZE_REPO}"]["test.csv"])
    by_hand = tmp_path / "by-hand"
    built = cli_run("data", "maze", "--csv", str(train), "--test-csv", str(test), "--aug", "--out", str(by_hand))
    assert built.returncode == 0, built.stderr

    online = tmp_path / "online"
    fetched = cli_run("data", "maze", "--hub", "--aug", "--out", str(online), **hub_env(tmp_path, HF_ENDPOINT=hub))
    assert fetched.returncode == 0, fetched.stderr
    same_set(by_hand, online)
    cached = sorted(p.name for p in (tmp_path / "hub-cache").rglob("*.csv"))
    assert cached == ["test.csv", "train.csv"]  # in the hub's own cache layout, where every hub tool looks

    offline = tmp_path / "offline"  # no hub at all now: the cache alone
    again = cli_run("data", "maze", "--hub", "--aug", "--out", str(offline),
                    **hub_env(tmp_path, HF_HUB_OFFLINE="1", HF_ENDPOINT="http://127.0.0.1:1"))
    assert again.returncode == 0, again.stderr
    same_set(by_hand, offline)


def test_nothing_cached_offline_or_no_such_dataset_is_exit_2_and_writes_nothing(tmp_path: Path, hub: str) -> None:
    out = tmp_path / "maze"
    offline = cli_run("data", "maze", "--hub", "--out", str(out), **hub_env(tmp_path, HF_HUB_OFFLINE="1"))
    assert offline.returncode == 2
    assert f"train.csv of the dataset {MAZE_REPO}" in offline.stderr and "HF_HUB_OFFLINE" in offline.stderr
    assert "Traceback" not in offline.stderr

    missing = cli_run("data", "sudoku", "--hub", "someone/no-such-set", "--out", str(out),
                      **hub_env(tmp_path, HF_ENDPOINT=hub))
    assert missing.returncode == 2, missing.stderr
    assert "someone/no-such-set" in missing.stderr and "no such dataset" in missing.stderr
    assert "Traceback" not in missing.stderr

    both = cli_run("data", "maze", "--hub", "--test-csv", str(tmp_path / "t.csv"), "--out", str(out))
    assert both.returncode == 2 and "--hub takes test.csv" in both.stderr
    assert not out.exists() and list(tmp_path.glob(".maze.building-*")) == []
