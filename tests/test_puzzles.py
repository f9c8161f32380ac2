"""Puzzle datasets in the TRM reference format: the Sudoku generator and builder (``trm-tui data``), the reader,
and training on them with exact resume."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from trm_core.config import DataConfig
from trm_core.prep.sudoku_rules import count_solutions, generate, is_valid_solution, shuffle
from trm_core.prep.puzzle_format import ARRAYS
from trm_core.data.puzzles import PuzzleDataset

from helpers import cli_run, events, run_worker, step_losses, straight_and_split

# the reference's PuzzleDatasetMetadata (dataset/common.py), field for field
REFERENCE_FIELDS = ["pad_id", "ignore_label_id", "blank_identifier_id", "vocab_size", "seq_len",
                    "num_puzzle_identifiers", "total_groups", "mean_puzzle_examples", "total_puzzles", "sets"]


def plain_solutions(board: list[int], limit: int = 2) -> int:
    """A second, deliberately naive solver: first blank, digits 1..9 in order, no bit tricks."""
    try:
        i = board.index(0)
    except ValueError:
        return 1
    r, c = divmod(i, 9)
    found = 0
    for v in range(1, 10):
        if any(board[r * 9 + k] == v or board[k * 9 + c] == v for k in range(9)):
            continue
        if any(board[(r // 3 * 3 + dr) * 9 + c // 3 * 3 + dc] == v for dr in range(3) for dc in range(3)):
            continue
        board[i] = v
        found += plain_solutions(board, limit - found)
        board[i] = 0
        if found >= limit:
            break
    return found


def test_generated_puzzles_have_one_solution_and_augmentations_keep_sudokus_valid() -> None:
    rng = random.Random(3)
    for blanks in (20, 45, 55):
        puzzle, solution = generate(blanks, rng)
        assert puzzle.count(0) == blanks and is_valid_solution(solution)
        assert all(p in (0, s) for p, s in zip(puzzle, solution))
        assert plain_solutions(list(puzzle)) == 1 == count_solutions(puzzle)
    gen = np.random.default_rng(0)
    for _ in range(50):
        puzzle, solution = generate(40, rng)
        p, s = shuffle(np.array(puzzle), np.array(solution), gen)
        assert is_valid_solution(s.reshape(-1).tolist())
        assert np.all((p == 0) | (p == s)) and (p == 0).sum() == 40  # the same puzzle, disguised
        assert count_solutions(p.reshape(-1).tolist()) == 1


def test_sixty_blanks_are_dug_past_where_digging_alone_stalls() -> None:
    """Digging alone stalls at 54-59 blanks; swap moves reach the promised maximum (seed 5: 1.4 s here)."""
    from trm_core.prep.sudoku_rules import MAX_BLANKS

    puzzle, solution = generate(MAX_BLANKS, random.Random(5))
    assert MAX_BLANKS == 60 and puzzle.count(0) == 60 and is_valid_solution(solution)
    assert all(p in (0, s) for p, s in zip(puzzle, solution))
    assert plain_solutions(list(puzzle)) == 1


@pytest.mark.process
def test_more_blanks_than_can_be_generated_are_refused_at_once(tmp_path: Path) -> None:
    """--blanks 61 (the help once allowed 64, and 60 ended in a traceback): exit 2 naming the most that
    works, nothing written."""
    out = tmp_path / "p.csv"
    refused = cli_run("data", "sudoku-generate", "--count", "200000", "--blanks", "61", "--out", str(out))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "0..60 blanks" in refused.stderr and not out.exists() and list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def sudoku_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sudoku")
    made = cli_run("data", "sudoku-generate", "--count", "120", "--blanks", "40", "--out", str(root / "p.csv"),
                   "--seed", "7")
    assert made.returncode == 0, made.stderr
    again = cli_run("data", "sudoku-generate", "--count", "120", "--blanks", "40", "--out", str(root / "q.csv"),
                    "--seed", "7")
    assert again.returncode == 0, again.stderr
    assert (root / "p.csv").read_bytes() == (root / "q.csv").read_bytes()  # deterministic for a seed
    built = cli_run("data", "sudoku", "--csv", str(root / "p.csv"), "--out", str(root / "ds"), "--aug", "3")
    assert built.returncode == 0, built.stderr
    assert "train: 432 puzzles, 108 groups, 432 rows; test: 12 puzzles, 12 groups, 12 rows" in built.stdout
    # the next step fits the machine: no GPU here, so the CPU recipe, with how long it takes
    assert f"--preset sudoku-cpu --set data.dataset_dir={root / 'ds'}" in built.stdout
    assert "about 15 minutes" in built.stdout and "the paper's recipe needs a GPU" in built.stdout
    return root / "ds"


@pytest.mark.process
def test_a_built_set_is_the_reference_format(sudoku_set: Path) -> None:
    for split, rows in (("train", 432), ("test", 12)):
        meta = json.loads((sudoku_set / split / "dataset.json").read_text())
        assert list(meta) == REFERENCE_FIELDS
        assert (meta["seq_len"], meta["vocab_size"], meta["pad_id"], meta["ignore_label_id"], meta["sets"]) == \
            (81, 11, 0, 0, ["all"])
        arrays = {name: np.load(sudoku_set / split / f"all__{name}.npy") for name in ARRAYS}
        assert arrays["inputs"].dtype == arrays["labels"].dtype == np.uint8  # as the reference writes them
        assert all(arrays[n].dtype == np.int32 for n in ("puzzle_identifiers", "puzzle_indices", "group_indices"))
        assert arrays["inputs"].shape == arrays["labels"].shape == (rows, 81)
        assert arrays["inputs"].min() >= 1 and arrays["labels"].min() >= 2 and arrays["labels"].max() <= 10
        blanks = arrays["inputs"] == 1
        assert np.all(blanks | (arrays["inputs"] == arrays["labels"]))  # givens are their own answers
        assert meta["total_groups"] == len(arrays["group_indices"]) - 1
    assert json.loads((sudoku_set / "identifiers.json").read_text()) == ["<blank>"]
    ds = PuzzleDataset(DataConfig(kind="puzzles", dataset_dir=str(sudoku_set)), 81)
    assert (ds.num_train, ds.num_eval, ds.vocab_size) == (108, 12, 11)
    a = ds.train_batch(torch.arange(16), seed=5)
    b = ds.train_batch(torch.arange(16), seed=5)
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)  # a pure function of the seed
    for x, y in zip(a.inputs.tolist(), a.targets.tolist()):  # each row a real puzzle with its solution
        assert is_valid_solution([v - 1 for v in y]) and all(v == 1 or v == w for v, w in zip(x, y))


@pytest.mark.process
def test_malformed_csv_is_exit_2_naming_the_line_and_leaves_nothing(tmp_path: Path) -> None:
    good_p, good_s = generate(30, random.Random(0))
    q, a = "".join(str(v) if v else "." for v in good_p), "".join(map(str, good_s))
    wrong = a[:-1] + ("1" if a[-1] != "1" else "2")
    cases = {"short": (f"x,{q[:80]},{a},1", "the puzzle has 80 characters"),
             "letter": (f"x,{q[:-1]}z,{a},1", "'z' in the puzzle"),
             "mismatch": (f"x,{q},{wrong},1", "solution does not match" if q[-1] != "." else "not a valid sudoku"),
             "columns": (f"x,{q},{a}", "3 columns")}
    for name, (row, said) in cases.items():
        csv_file = tmp_path / f"{name}.csv"
        csv_file.write_text(f"source,q,a,rating\nok,{q},{a},1\n{row}\n")
        out = tmp_path / f"out-{name}"
        done = cli_run("data", "sudoku", "--csv", str(csv_file), "--out", str(out))
        assert done.returncode == 2 and f"{csv_file}:3: " in done.stderr and said in done.stderr, done.stderr
        assert not out.exists() and not list(tmp_path.glob(f".out-{name}*"))  # nothing half-written


@pytest.mark.process
def test_train_stop_and_resume_on_a_sudoku_set_is_bit_identical(tmp_path: Path, sudoku_set: Path) -> None:
    sets = ["data.kind='puzzles'", f"data.dataset_dir='{sudoku_set}'", "model.dim=32", "model.depth=1",
            "model.latent_steps=1", "model.refinement_blocks=2", "model.max_supervision_steps=2",
            "train.batch_size=8", "train.max_steps=20", "train.eval_every=10", "train.eval_batches=0",
            "train.checkpoint_every=5", "train.threads=1", "train.warmup_steps=2"]
    args = [a for s in sets for a in ("--set", s)]
    straight, split = straight_and_split(tmp_path, args, stop_at=13)
    assert step_losses(split) == step_losses(straight) and len(step_losses(split)) == 20
    evals = events(split, "eval")
    assert [e["samples"] for e in evals] == [12, 12]  # eval_batches = 0: the whole test split
    start = events(split, "run_start")[0]
    assert start["config"]["model"]["seq_len"] == 81 and start["config"]["model"]["vocab_size"] == 11
    bad = run_worker(tmp_path / "bad", args + ["--set", "model.seq_len=100"])
    assert bad.returncode == 2 and "model.seq_len = 100" in bad.stderr and "seq_len = 81" in bad.stderr


def test_ignored_labels_carry_no_loss_and_count_in_no_accuracy() -> None:
    import torch.nn.functional as F

    from trm_core.config import resolve
    from trm_core.data.base import IGNORE
    from trm_core.train.trainer import Trainer

    trainer = Trainer(resolve(env={}, sets=["model.dim=16", "model.depth=1", "model.seq_len=4",
                                            "train.device='cpu'"]), vocab_size=5, total_steps=10)
    logits = torch.tensor([[[4.0, 0, 0, 0, 0]], [[0, 4.0, 0, 0, 0]], [[0, 0, 4.0, 0, 0]], [[0, 0, 0, 4.0, 0]]])
    targets = torch.tensor([[0, 0, IGNORE, IGNORE]])  # (batch 1, seq 4); logits are (seq, batch, vocab)
    ce, _halt, accuracy, exact, hidden_acc = trainer._losses(logits, targets, torch.zeros(1))
    expected = (F.cross_entropy(logits[0], torch.tensor([0])) + F.cross_entropy(logits[1], torch.tensor([0]))) / 2
    assert torch.allclose(ce, expected.reshape(1))  # the mean over the two supervised tokens only
    assert accuracy.item() == 0.5 and not exact.item() and hidden_acc is None  # the ignored two count nowhere
    ce2, _, accuracy2, exact2, _ = trainer._losses(logits, torch.tensor([[0, 1, IGNORE, IGNORE]]), torch.zeros(1))
    assert accuracy2.item() == 1.0 and exact2.item()  # right wherever supervised: the whole puzzle solved
    # code: the loss on the hidden positions only (data.loss_on = "masked", the default), accuracy everywhere
    hidden = torch.tensor([[False, True, False, False]])
    full = torch.tensor([[0, 0, 2, 0]])  # right at 0 and 2, wrong at 1 and 3
    ce3, _, accuracy3, exact3, hidden_acc3 = trainer._losses(logits, full, torch.zeros(1), hidden)
    assert torch.allclose(ce3, F.cross_entropy(logits[1], torch.tensor([0])).reshape(1))
    assert accuracy3.item() == 0.5 and hidden_acc3.item() == 0.0 and not exact3.item()


def test_every_dihedral_transform_inverts_exactly() -> None:
    from trm_core.prep.dihedral import dihedral, undo

    grid = np.arange(12).reshape(3, 4)  # not square: a transposing transform must still invert
    seen = set()
    for t in range(8):
        assert np.array_equal(undo(dihedral(grid, t), t), grid)
        seen.add(dihedral(np.arange(9).reshape(3, 3), t).tobytes())
    assert len(seen) == 8  # eight different symmetries


@pytest.mark.process
def test_maze_sets_carry_the_dihedral_copies_and_bad_rows_name_their_line(tmp_path: Path) -> None:
    from trm_core.prep.dihedral import dihedral

    mazes = [("S o#", "S o#"), ("S  G", "SooG"), (" #SG", " #SG"), ("GS #", "GS #"), ("S# G", "S#oG")]
    rows = [f"m{i},{q.replace('o', ' ')}" + (" " * 12) + f",{a}" + (" " * 12) + ",0" for i, (q, a) in enumerate(mazes)]
    csv_file = tmp_path / "mazes.csv"
    csv_file.write_text("source,q,a,rating\n" + "\n".join(rows) + "\n")
    out = tmp_path / "maze"
    built = cli_run("data", "maze", "--csv", str(csv_file), "--out", str(out), "--aug")
    assert built.returncode == 0, built.stderr
    meta = json.loads((out / "train" / "dataset.json").read_text())
    assert (meta["seq_len"], meta["vocab_size"], meta["total_groups"]) == (16, 6, 4)
    inputs = np.load(out / "train" / "all__inputs.npy")
    groups = np.load(out / "train" / "all__group_indices.npy")
    assert inputs.shape == (32, 16) and list(groups) == [0, 8, 16, 24, 32]
    first = inputs[0].reshape(4, 4)
    assert all(np.array_equal(inputs[t].reshape(4, 4), dihedral(first, t)) for t in range(8))
    assert np.load(out / "test" / "all__inputs.npy").shape == (1, 16)  # held out before augmentation
    bad = tmp_path / "bad.csv"
    bad.write_text("source,q,a,rating\n" + rows[0] + "\n" + rows[1].replace("S", "X", 1) + "\n")
    refused = cli_run("data", "maze", "--csv", str(bad), "--out", str(tmp_path / "nothing"))
    assert refused.returncode == 2 and f"{bad}:3: 'X' in the maze" in refused.stderr
    assert not (tmp_path / "nothing").exists()


def test_eval_runs_every_supervision_step_unless_halting_is_asked_for() -> None:
    from trm_core.config import resolve
    from trm_core.data.base import Batch
    from trm_core.evaluate.in_training import evaluate_trainer
    from trm_core.train.trainer import Trainer

    batch = Batch(torch.randint(0, 10, (4, 8)), torch.randint(0, 10, (4, 8)))
    used = {}
    for halt_in_eval in (False, True):
        cfg = resolve(env={}, sets=["model.dim=16", "model.depth=1", "model.seq_len=8", "model.max_supervision_steps=3",
                                    "model.halt_threshold=0.0",  # the halting head always fires
                                    f"model.halt_in_eval={str(halt_in_eval).lower()}", "train.device='cpu'"])
        used[halt_in_eval] = evaluate_trainer(Trainer(cfg, vocab_size=10, total_steps=10), [batch])["sup_steps"]
    assert used == {False: 3.0, True: 1.0}  # the paper's eval runs all 3; halting in eval stops at the first


def _arc_files(folder: Path, subset: str, puzzles: dict, solutions: dict) -> None:
    (folder / f"arc-agi_{subset}_challenges.json").write_text(json.dumps(puzzles))
    (folder / f"arc-agi_{subset}_solutions.json").write_text(json.dumps(solutions))


@pytest.mark.process
def test_arc_sets_keep_disguises_consistent_and_every_prediction_maps_back(tmp_path: Path) -> None:
    from trm_core.prep.arc import crop, undo

    src = tmp_path / "arc"
    src.mkdir()
    flip = {"train": [{"input": [[1, 2], [3, 0]], "output": [[2, 1], [0, 3]]},
                      {"input": [[5, 0, 7]], "output": [[7, 0, 5]]}],
            "test": [{"input": [[4, 4, 1], [0, 6, 0]]}]}
    grow = {"train": [{"input": [[8]], "output": [[8, 8], [8, 8]]}], "test": [{"input": [[2]]}]}
    _arc_files(src, "training", {"aaaa0001": flip}, {"aaaa0001": [[[1, 4, 4], [0, 6, 0]]]})
    _arc_files(src, "evaluation", {"bbbb0002": grow}, {"bbbb0002": [[[2, 2], [2, 2]]]})
    out = tmp_path / "ds"
    built = cli_run("data", "arc", "--json-dir", str(src), "--subsets", "training,evaluation",
                    "--test-set", "evaluation", "--out", str(out), "--aug", "3")
    assert built.returncode == 0, built.stderr
    names = json.loads((out / "identifiers.json").read_text())
    meta = json.loads((out / "test" / "dataset.json").read_text())
    assert (meta["seq_len"], meta["vocab_size"], meta["num_puzzle_identifiers"]) == (900, 12, len(names))
    assert names[0] == "<blank>" and {n.split("|||")[0] for n in names[1:]} == {"aaaa0001", "bbbb0002"}
    load = lambda split, k: np.load(out / split / f"all__{k}.npy")  # noqa: E731
    # training: every pair of the training subset, the evaluation subset's demonstrations only
    assert len(load("train", "group_indices")) - 1 == 2 and len(load("test", "group_indices")) - 1 == 1
    test_ids = load("test", "puzzle_identifiers")
    assert set(test_ids) <= set(load("train", "puzzle_identifiers"))  # a test puzzle's embedding was trained
    assert len(test_ids) == 4  # the original and three disguises
    for row, ident in zip(load("test", "labels"), test_ids):  # each disguised answer maps back to the real one
        base, back = undo(names[ident])
        assert base == "bbbb0002" and np.array_equal(back(crop(row)), np.array([[2, 2], [2, 2]]))
    inputs = load("train", "inputs")
    assert inputs.max() <= 11 and set(np.unique(inputs)) >= {0, 1}  # pad, end-of-grid marks, colours 2..11

    bad = tmp_path / "bad"
    bad.mkdir()
    _arc_files(bad, "training", {"cccc0003": {"train": [{"input": [[10]], "output": [[1]]}], "test": []}}, {})
    refused = cli_run("data", "arc", "--json-dir", str(bad), "--subsets", "training", "--test-set", "training",
                      "--out", str(tmp_path / "none"))
    assert refused.returncode == 2 and "puzzle cccc0003, train[0] input: row 0, column 0 is 10; cells must be colours 0..9" \
        in refused.stderr
    assert not (tmp_path / "none").exists()


@pytest.mark.process
def test_a_start_on_a_missing_dataset_is_refused_before_anything_launches(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    refused = cli_run("--no-ui", "--run-dir", str(run_dir), "--preset", "sudoku-paper",
                      "--set", f"data.dataset_dir='{tmp_path / 'nowhere'}'")
    assert refused.returncode == 2
    assert f"{tmp_path / 'nowhere'}/train/dataset.json does not exist" in refused.stderr
    assert "keeper" not in refused.stdout and not run_dir.exists()


@pytest.mark.process
def test_data_says_what_it_builds_checks_inputs_first_and_ctrl_c_is_one_line(tmp_path: Path) -> None:
    import signal

    from helpers import cli

    bare = cli_run("data")
    assert bare.returncode == 2 and "required: {sudoku,sudoku-generate,maze,arc}" in bare.stderr
    helped = " ".join(cli_run("data", "sudoku-generate", "--help").stdout.split())
    assert "--count COUNT how many puzzles to write" in helped and "--seed SEED the random seed" in helped
    # ARC: a subset that is not there is found before the first puzzle is processed
    (tmp_path / "arc").mkdir()
    (tmp_path / "arc" / "x_training_challenges.json").write_text(json.dumps(
        {"p1": {"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[1]]}]}}))
    missing = cli_run("data", "arc", "--json-dir", str(tmp_path / "arc"), "--subsets", "training,evaluation",
                      "--test-set", "evaluation", "--out", str(tmp_path / "out"))
    assert missing.returncode == 2 and "training:" not in missing.stderr  # no progress: nothing processed
    assert "expected one *evaluation_challenges.json, found 0 (it holds x_training_challenges.json)" in missing.stderr
    # Ctrl-C in a long build: one line, exit 130, nothing left
    proc = cli("data", "sudoku-generate", "--count", "100000", "--blanks", "50", "--out", str(tmp_path / "big.csv"))
    seen = b""
    while b"generating" not in seen:  # the build is under way (not still importing), however loaded the machine
        chunk = os.read(proc.stderr.fileno(), 256)
        assert chunk, seen
        seen += chunk
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=600)  # a deadline no load reaches: an idle machine answers in a second
    assert proc.returncode == 130, err
    assert "Traceback" not in err and f"interrupted; nothing written to {tmp_path / 'big.csv'}" in err
    assert not (tmp_path / "big.csv").exists() and not list(tmp_path.glob(".big.csv*"))
