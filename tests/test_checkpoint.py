"""Checkpoints: atomic, verified against their sidecar, pruned, and cheap to read progress from."""

from __future__ import annotations

from pathlib import Path

import torch

from trm_core.rundir import checkpoints as ckpt


def _save(folder: Path, step: int, size: int = 1000) -> ckpt.CheckpointInfo:
    state = {"w": torch.full((size,), float(step)), "step": step}
    return ckpt.save_checkpoint(folder, state, step=step, epoch=1, loss=1.0 / step, config_hash="abc")


def test_save_verify_load_round_trip(tmp_path: Path) -> None:
    info = _save(tmp_path, 3)
    assert info.path.name == "step-00000003.pt" and info.path.with_suffix(".json").exists()
    assert ckpt.verify(info) is None
    state = ckpt.load_checkpoint(info)
    assert state["step"] == 3 and torch.equal(state["w"], torch.full((1000,), 3.0))
    assert not list(tmp_path.glob(".*tmp*"))


def test_truncated_or_corrupt_newest_falls_back(tmp_path: Path) -> None:
    for step in (1, 2, 3):
        _save(tmp_path, step)
    newest = tmp_path / "step-00000003.pt"
    newest.write_bytes(newest.read_bytes()[:100])
    corrupt = tmp_path / "step-00000002.pt"
    blob = bytearray(corrupt.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    corrupt.write_bytes(bytes(blob))
    info, failed = ckpt.newest_verified(tmp_path)
    assert info is not None and info.step == 1
    assert [bad.step for bad, _ in failed] == [3, 2]
    assert "step-00000003.pt has 100 bytes" in failed[0][1] and "truncated" in failed[0][1]
    assert "step-00000002.pt does not match its sha256" in failed[1][1]
    for bad, _ in failed:
        ckpt.quarantine(bad)
    # set aside, not deleted, and never counted again (so pruning cannot keep them over good ones)
    assert (tmp_path / "step-00000003.pt.corrupt").exists() and (tmp_path / "step-00000003.json.corrupt").exists()
    assert [i.step for i in ckpt.list_checkpoints(tmp_path)] == [1]


def test_checkpoint_without_sidecar_is_ignored(tmp_path: Path) -> None:
    _save(tmp_path, 1)
    (tmp_path / "step-00000002.pt").write_bytes(b"half written")
    assert ckpt.latest_progress(tmp_path).step == 1
    assert ckpt.newest_verified(tmp_path)[0].step == 1
    ckpt.prune(tmp_path, keep=3)
    assert not (tmp_path / "step-00000002.pt").exists() and (tmp_path / "step-00000001.pt").exists()


def test_prune_keeps_newest_k(tmp_path: Path) -> None:
    for step in range(1, 6):
        _save(tmp_path, step)
    ckpt.prune(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "step-00000004.json", "step-00000004.pt", "step-00000005.json", "step-00000005.pt"]


def test_prune_never_removes_the_best_evals_checkpoint(tmp_path: Path) -> None:
    for step in range(1, 6):
        _save(tmp_path, step)
    ckpt.prune(tmp_path, keep=2, also_keep=2)
    assert [i.step for i in ckpt.list_checkpoints(tmp_path)] == [5, 4, 2]


def test_progress_reads_sidecar_only(tmp_path: Path, monkeypatch) -> None:
    info = _save(tmp_path, 7, size=100_000)
    info.path.write_bytes(b"")  # the tensors are not even there: progress must not need them
    monkeypatch.setattr(torch, "load", lambda *a, **k: (_ for _ in ()).throw(AssertionError("loaded tensors")))
    progress = ckpt.latest_progress(tmp_path)
    assert (progress.step, progress.epoch, progress.loss, progress.bytes) == (7, 1, 1 / 7, info.bytes)
