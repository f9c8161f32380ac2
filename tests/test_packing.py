"""The reference's sampler for puzzle sets (``data.packing.PackedOrder``): every group once an epoch, the
examples of one puzzle together and drawn without replacement, only a partial batch at the end of the stream
(or of an interval) dropped, the reference's step count, and the same batch at a step however it is reached."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trm_core.config import ConfigError
from trm_core.data.packing import PackedOrder

B = 16


def structure(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Groups of 1-5 puzzles, puzzles of 1-6 examples: (each group's first puzzle + end, each puzzle's first
    example + end)."""
    rng = np.random.default_rng(seed)
    per_group = rng.integers(1, 6, size=9)
    sizes = rng.integers(1, 7, size=int(per_group.sum()))
    return np.concatenate([[0], np.cumsum(per_group)]), np.concatenate([[0], np.cumsum(sizes)])


def order(interval: int = 0, batch_size: int = B) -> PackedOrder:
    groups, puzzles = structure()
    return PackedOrder(groups, puzzles, batch_size, seed=3, take=lambda rows, ps: (rows, ps),
                       interval_epochs=interval)


def runs(puzzles: np.ndarray, sizes: np.ndarray) -> list[tuple[int, int]]:
    """(puzzle, how many rows) for each stream position: a stretch of one puzzle, or several in a row when an
    epoch ends with the group the next one starts with (a whole puzzle is its size in rows)."""
    out = []
    for stretch in np.split(puzzles, np.flatnonzero(np.diff(puzzles)) + 1):
        p, left = int(stretch[0]), len(stretch)
        while left > 0:
            out.append((p, min(left, int(sizes[p]))))
            left -= int(sizes[p])
    return out


def test_batches_pack_whole_puzzles_in_group_order_and_every_group_once_an_epoch() -> None:
    groups, examples = structure()
    group_of = np.repeat(np.arange(len(groups) - 1), np.diff(groups))
    sizes = np.diff(examples)
    o = order()
    visited: list[int] = []
    for step in range(40):
        rows, puzzles = o.batch(step)
        assert len(rows) == B  # every batch is full
        stretches = runs(puzzles, sizes)
        for k, (puzzle, count) in enumerate(stretches):
            mine = rows[sum(c for _, c in stretches[:k]):][:count]
            assert set(mine) <= set(range(examples[puzzle], examples[puzzle + 1]))  # its own examples
            assert len(set(mine)) == count  # without replacement
            if k < len(stretches) - 1:
                assert count == sizes[puzzle]  # whole, except the puzzle that filled the batch
        visited += [int(group_of[p]) for p, _ in stretches]
    g = len(groups) - 1
    epochs = len(visited) // g
    assert epochs >= 3
    for e in range(epochs):  # the batches walk the stream with no gap: each epoch is a permutation of the groups
        assert sorted(visited[e * g:(e + 1) * g]) == list(range(g))
    assert visited[:g] != visited[g:2 * g]  # a new order each epoch


def test_steps_follow_the_references_formula() -> None:
    groups, examples = structure()
    o = order()
    mean = examples[-1] / (len(examples) - 1)
    formula = int(1000 * (len(groups) - 1) * mean / B)  # pretrain.py line 219
    assert o.steps_per_epoch == int((len(groups) - 1) * mean / B)
    # a batch leaves the rest of the puzzle that filled it unused, so 1,000 passes yield fewer batches than the
    # formula's (as the reference's loader; at its batch of 768 the difference is a fraction of a percent);
    # the run trains the batches the passes yield
    assert 0.8 * formula <= o.total_steps(1000) <= formula
    assert o.epoch_of(0) == 0 and o.epoch_of(o.total_steps(10)) == 10  # the next batch opens pass 11


def test_a_batch_is_the_same_however_its_step_is_reached() -> None:
    walked = order()
    batches = [walked.batch(step) for step in range(30)]
    for step in (29, 7, 0, 18):  # a resumed worker asks for its step first
        rows, puzzles = order().batch(step)
        assert np.array_equal(rows, batches[step][0]) and np.array_equal(puzzles, batches[step][1])
    other_seed = PackedOrder(*structure(), B, seed=4, take=lambda rows, ps: (rows, ps))
    assert not np.array_equal(other_seed.batch(0)[0], batches[0][0])


def test_with_an_interval_no_batch_spans_its_end() -> None:
    g = len(structure()[0]) - 1
    o = order(interval=2)
    starts = [o._start(step) for step in range(40)]
    assert 2 * g in starts and 4 * g in starts  # a new interval starts with a batch of its own
    for s in starts:
        end = o._end(s)
        assert end is not None and (s // (2 * g)) == ((end - 1) // (2 * g))


def reference_batches_per_interval(groups: int, batch: int, epochs_per_iter: int) -> int:
    """The batches the reference trains in one eval interval, transcribed from TinyRecursiveModels
    ``puzzle_dataset.py`` for one-example puzzles: ``_iter_train`` concatenates ``epochs_per_iter``
    permutations of the groups (line 209) and cuts batches from that stream (``_sample_batch``, lines 22-26: a
    group gives one puzzle; line 32: as many of its examples as still fit); a batch smaller than the global
    batch is dropped and ends the interval (lines 225-227)."""
    order_size = groups * epochs_per_iter  # line 209: group_order.size
    start_index, batches = 0, 0
    while start_index < order_size:  # line 212
        current_size = 0
        while start_index < order_size and current_size < batch:  # line 22
            start_index += 1  # line 26
            current_size += min(1, batch - current_size)  # line 32, a puzzle of one example
        if current_size < batch:  # lines 225-227: drop last batch
            break
        batches += 1
    return batches


def test_a_set_smaller_than_a_batch_trains_as_the_reference_trains_it() -> None:
    """The issue's case: 100 one-example groups at the paper's batch 768, 50,000 epochs, an eval interval of
    5,000. The reference trains int(50,000 x 100 x 1 / 768) = 6,510 steps (pretrain.py line 219), 651 in
    each of its 10 intervals (its loader, transcribed above); each batch holds 6 to 9 draws of every group.
    It was refused here ("fewer than one batch")."""
    groups, per_interval = 100, 5000
    o = PackedOrder(np.arange(groups + 1), np.arange(groups + 1), 768, seed=0, take=lambda rows, ps: (rows, ps),
                    interval_epochs=per_interval)
    assert o.total_steps(50_000) == 6510 == 10 * reference_batches_per_interval(groups, 768, per_interval)
    assert reference_batches_per_interval(groups, 768, per_interval) == 651
    assert o._start(651) == per_interval * groups  # batch 652 opens the second interval: 651 in the first
    assert o._start(650) < per_interval * groups
    for step in (0, 1, 650, 651, 6509):
        rows, puzzles = o.batch(step)
        assert len(rows) == 768
        counts = np.bincount(puzzles, minlength=groups)  # 768 consecutive places of a stream of passes
        assert counts.min() >= 6 and counts.max() <= 9


def test_only_what_cannot_fill_a_batch_is_refused() -> None:
    """An interval whose passes hold fewer examples than a batch would drop its only batch every time (the
    reference's loader would train nothing, silently); a run whose epochs hold fewer than one batch has no
    step. Both name the key, its value and the smallest value that works."""
    take = lambda rows, ps: (rows, ps)  # noqa: E731
    with pytest.raises(ConfigError) as err:
        PackedOrder(np.arange(101), np.arange(101), 768, seed=0, take=take, interval_epochs=7)
    assert "train.eval_every_epochs = 7" in str(err.value) and "at least 8" in str(err.value)
    o = PackedOrder(np.arange(101), np.arange(101), 768, seed=0, take=take, interval_epochs=8)
    assert o.total_steps(8) == 1 and len(o.batch(0)[0]) == 768
    with pytest.raises(ConfigError) as err:
        o.total_steps(7)
    assert "train.epochs = 7" in str(err.value) and "at least 8" in str(err.value)


def test_epochs_must_be_a_multiple_of_the_eval_interval() -> None:
    """The reference's pretrain.py line 567, ``assert config.epochs % train_epochs_per_iter == 0``, as a check
    of a new run's config naming both keys (25,000 epochs with an interval of 10,000 was accepted). A run
    already on disk with such a config still reads (status, eval and resume of it keep working)."""
    from trm_core.config import resolve
    from trm_core.config.resolve import check_new_run

    def new_run(*sets: str) -> None:
        check_new_run(resolve(env={}, sets=["train.eval_every=0", *sets]))

    with pytest.raises(ConfigError) as err:
        new_run("train.epochs=25000", "train.eval_every_epochs=10000")
    assert "train.epochs = 25000" in str(err.value) and "train.eval_every_epochs = 10000" in str(err.value)
    assert "20000 or 30000" in str(err.value)
    with pytest.raises(ConfigError) as err:
        new_run("train.epochs=3", "train.eval_every_epochs=10")
    assert "use train.epochs = 10," in str(err.value)
    new_run("train.epochs=30000", "train.eval_every_epochs=10000")
    new_run("train.epochs=25000", "train.max_steps=10", "train.eval_every_epochs=10000")  # epochs unused
    resolve(env={}, sets=["train.eval_every=0", "train.epochs=25000", "train.eval_every_epochs=10000"])  # reads


def test_a_run_of_epochs_trains_the_batches_the_references_loader_yields() -> None:
    """The reference's loop trains what its loader yields: each eval interval drops its partial last batch,
    so Sudoku's 1,000 one-example groups at batch 768, 50,000 epochs, interval 5,000 train
    10 x (5,000,000 // 768) = 65,100 steps, not pretrain.py line 219's 65,104 (its lines 289-292 only cap
    the count). Puzzles of several examples (ARC) waste the rest of the puzzle that fills each batch: the walk
    counts them."""
    take = lambda rows, ps: (rows, ps)  # noqa: E731
    sudoku = PackedOrder(np.arange(1001), np.arange(1001), 768, seed=0, take=take, interval_epochs=5000)
    assert sudoku.total_steps(50_000) == 65_100 == 10 * reference_batches_per_interval(1000, 768, 5000)
    assert sudoku._start(6510) == 5000 * 1000  # the 6,511th batch opens the second interval
    groups, examples = structure()
    walked = PackedOrder(groups, examples, B, seed=3, take=take, interval_epochs=2)
    steps = walked.total_steps(8)
    limit = 8 * (len(groups) - 1)
    assert walked._start(steps - 1) < limit <= walked._start(steps)
    assert steps <= int(8 * walked.examples_per_epoch / B)
    no_interval = PackedOrder(groups, examples, B, seed=3, take=take)
    last = no_interval.total_steps(8) - 1
    assert no_interval._end(no_interval._start(last)) <= limit < no_interval._end(no_interval._start(last + 1))


@pytest.mark.process
def test_an_epochs_and_interval_mismatch_is_exit_2_naming_both(tmp_path: Path) -> None:
    from helpers import cli_run

    out = cli_run("--no-ui", "--run-dir", str(tmp_path / "run"), "--preset", "tiny", "--set", "train.max_steps=0",
                  "--set", "train.epochs=25",
                  "--set", "train.eval_every=0", "--set", "train.eval_every_epochs=10")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "train.epochs = 25" in out.stderr and "train.eval_every_epochs = 10" in out.stderr


@pytest.mark.process
def test_a_run_counted_in_epochs_evaluates_and_saves_at_each_intervals_end(tmp_path: Path) -> None:
    """24 one-example groups at batch 6: 4 steps a pass. Eval and checkpoints every 2 epochs (the reference's
    eval_interval) land at steps 8, 16, 24 (the end of the run); counting in steps and epochs at once is exit 2."""
    from test_carry import tiny_puzzles

    from helpers import events, run_worker

    data = tiny_puzzles(tmp_path / "data")
    sets = ["data.kind='puzzles'", f"data.dataset_dir='{data}'", "model.net='attention'", "model.num_heads=2",
            "model.dim=16", "model.depth=1", "model.latent_steps=1", "model.refinement_blocks=1",
            "model.max_supervision_steps=2", "train.carry='refill'", "train.batch_size=6", "train.max_steps=0",
            "train.epochs=6", "train.eval_every=0", "train.eval_every_epochs=2", "train.eval_batches=1",
            "train.checkpoint_every=0", "train.checkpoint_every_epochs=2", "train.threads=1", "train.warmup_steps=0"]
    args = [a for s in sets for a in ("--set", s)]
    done = run_worker(tmp_path / "run", args)
    assert done.returncode == 0, done.stderr
    start = events(tmp_path / "run", "run_start")[0]
    assert (start["total_steps"], start["steps_per_epoch"]) == (24, 4)
    assert [e["step"] for e in events(tmp_path / "run", "eval")] == [8, 16, 24]
    assert [e["step"] for e in events(tmp_path / "run", "checkpoint")] == [8, 16, 24]
    both = run_worker(tmp_path / "both", args + ["--set", "train.eval_every=5"])
    assert both.returncode == 2 and "train.eval_every = 5 and train.eval_every_epochs = 2" in both.stderr
