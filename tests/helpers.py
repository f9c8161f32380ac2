"""What the tests share: paths, the micro model, real worker and trm-tui processes, the event log, a real
terminal (tmux), and typed event records for fixtures. Test files import from here; ``conftest`` holds
only the pytest fixtures and markers."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import http.server
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Iterator

from trm_core.rundir.events import read_events
from trm_core.rundir import layout
from trm_core.rundir.records import KINDS, Event, record_fields

REPO = Path(__file__).resolve().parents[1]
STDLIB = Path(sysconfig.get_paths()["stdlib"])

# A model small enough that a step takes milliseconds on 2 cores, with every mechanism switched on:
# two refinement blocks, deep supervision, micro-batching, EMA and eval.
MICRO = [
    "model.dim=32", "model.depth=1", "model.seq_len=32", "model.latent_steps=1", "model.refinement_blocks=2",
    "model.max_supervision_steps=2", "train.batch_size=4", "train.micro_batch_size=2", "train.warmup_steps=3",
    "train.eval_every=4", "train.eval_batches=2", "train.checkpoint_every=4", "train.learning_rate=0.003",
    "train.threads=1", "train.heartbeat_s=1", "data.eval_fraction=0.05",
]


def worker_env(**extra: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRM_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def start_worker(run_dir: Path, args: list[str], **env: Any) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "trm_core.worker", "--run-dir", str(run_dir), *args],
                            cwd=run_dir.parent, env=worker_env(**env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def run_worker(run_dir: Path, args: list[str], timeout: float = 120, **env: Any) -> subprocess.CompletedProcess:
    proc = start_worker(run_dir, args, **env)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def straight_and_split(root: Path, args: list[str], stop_at: int) -> tuple[Path, Path]:
    """The same run twice: straight through, and stopped after step ``stop_at`` then resumed (both complete);
    (the straight run's folder, the split one's), for a bit-identical resume's comparison."""
    straight = run_worker(root / "straight", args)
    assert straight.returncode == 0, straight.stderr
    split = root / "split"
    stopped = run_worker(split, args, TRM_TEST_STOP_AT_STEP=stop_at)
    assert stopped.returncode == 0, stopped.stderr
    resumed = run_worker(split, ["--resume"])
    assert resumed.returncode == 0, resumed.stderr
    return root / "straight", split


def step_losses(run_dir: Path) -> dict[int, float]:
    return {e["step"]: e["loss"] for e in events(run_dir, "step")}


def events(run_dir: Path, kind: str | None = None) -> list[dict[str, Any]]:
    return [e for e in read_events(run_dir / layout.EVENTS).events if kind is None or e["event"] == kind]


def wait_for(predicate: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def terminate(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def cli(*args: str, stdin: int | None = None, **env: object) -> subprocess.Popen:
    """``trm-tui ARGS`` as a real process in its own session, output captured."""
    return subprocess.Popen([sys.executable, "-m", "trm_tui.cli", *args], stdout=subprocess.PIPE, stdin=stdin,
                            stderr=subprocess.PIPE, text=True, env=worker_env(**env), start_new_session=True)


def cli_run(*args: str, timeout: float = 120, stdin_text: str | None = None, **env: object) -> subprocess.CompletedProcess:
    proc = cli(*args, stdin=subprocess.PIPE if stdin_text is not None else None, **env)
    out, err = proc.communicate(stdin_text, timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def free_port() -> int:
    """A loopback TCP port free a moment ago (for trm-tui serve)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def served_urls(server: subprocess.Popen, count: int) -> dict[str, str]:
    """The first ``count`` token URLs ``trm-tui serve`` printed, by role: 'full control' or 'read-only'."""
    urls: dict[str, str] = {}
    while len(urls) < count:
        line = server.stdout.readline()
        assert line, f"serve printed no URL: {server.stderr.read() if server.poll() is not None else ''}"
        if "?token=" in line:
            urls["read-only" if "read-only" in line else "full control"] = \
                next(w for w in line.split() if "?token=" in w)
    return urls


def kill_worker(run_dir: Path) -> None:
    """Leave nothing behind: SIGKILL the run's keeper (first, or it would restart the worker), then its worker."""
    from trm_core.rundir.identity import read_identity

    for name in (layout.KEEPER_IDENTITY, layout.WORKER_IDENTITY):
        ident = read_identity(run_dir, name)
        if ident is not None and ident.is_alive():
            os.kill(ident.pid, signal.SIGKILL)
    # and any worker or keeper of this run that had not recorded itself yet (a relaunch in flight)
    import psutil
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "--run-dir" in cmdline and str(run_dir) in cmdline and any(
                m in cmdline for m in ("trm_core.worker", "trm_core.control.keeper")):
            try:
                proc.kill()
            except psutil.Error:
                pass


_terminals = iter(range(1_000_000))


class Terminal:
    """``trm-tui ARGS`` in a real terminal: a tmux server of its own with one window of ``size``. The
    command runs from the repository with the test PYTHONPATH and ``env``, then prints ``EXIT=<code>``."""

    def __init__(self, args: list[str], size: tuple[int, int] = (80, 24), **env: object) -> None:
        import shlex
        self.session = f"trm-{os.getpid()}-{next(_terminals)}"
        self.tmux = ["tmux", "-L", self.session]
        variables = {"PYTHONPATH": worker_env()["PYTHONPATH"], **{k: str(v) for k, v in env.items()}}
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in variables.items())
        cmd = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "trm_tui.cli", *args])
        subprocess.run(self.tmux + ["new-session", "-d", "-s", self.session, "-x", str(size[0]), "-y", str(size[1]),
                                    f"cd {shlex.quote(str(REPO))} && env {exports} {cmd}; echo EXIT=$?; sleep 60"],
                       check=True)

    def screen(self, escapes: bool = False) -> str:
        """What the window shows; with ``escapes``, its SGR codes too."""
        flags = ["-e"] if escapes else []
        return subprocess.run(self.tmux + ["capture-pane", "-p", *flags, "-t", self.session], capture_output=True,
                              text=True).stdout

    def keys(self, *keys: str) -> None:
        subprocess.run(self.tmux + ["send-keys", "-t", self.session, *keys], check=True)

    def close(self) -> None:
        subprocess.run(self.tmux + ["kill-server"], capture_output=True)

    def __enter__(self) -> "Terminal":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def record(kind: str, **fields: Any) -> Event:
    """A typed record of ``kind`` with the given fields, the others None: for tests of readers, which must take
    whatever a writer (an older one included) left out."""
    cls = KINDS[kind]
    return cls(**({f.name: None for f in record_fields(cls)} | fields))


def small_arc_set(root: Path, aug: int = 2) -> tuple[dict, dict, Path]:
    """Three tiny ARC tasks (two test inputs each) written as ARC-AGI JSON under ``root/arc`` and built with
    ``trm-tui data arc --aug`` into ``root/ds``: (the puzzles, their solutions, the dataset folder)."""

    src = root / "arc"
    src.mkdir()
    puzzles = {f"p{i:07d}": {"train": [{"input": [[i % 9 + 1, 0]], "output": [[0, i % 9 + 1]]}],
                             "test": [{"input": [[i % 9 + 1]]}, {"input": [[0, i % 9 + 1]]}]} for i in range(3)}
    solutions = {pid: [[[i % 9 + 1]], [[i % 9 + 1, 0]]] for i, pid in enumerate(puzzles)}
    for subset in ("training", "evaluation"):
        (src / f"arc-agi_{subset}_challenges.json").write_text(json.dumps(puzzles))
        (src / f"arc-agi_{subset}_solutions.json").write_text(json.dumps(solutions))
    built = cli_run("data", "arc", "--json-dir", str(src), "--subsets", "training,evaluation",
                    "--test-set", "evaluation", "--out", str(root / "ds"), "--aug", str(aug))
    assert built.returncode == 0, built.stderr
    return puzzles, solutions, root / "ds"


class FakeHub(http.server.BaseHTTPRequestHandler):
    """The two routes hf_hub_download uses: HEAD and GET of /[datasets/]OWNER/NAME/resolve/REVISION/FILE, with the
    headers the hub sends (the commit, the file's ETag, its size); any other repository or file is the hub's 404.
    ``files`` maps "[datasets/]OWNER/NAME" to {path in the repository: bytes}."""

    files: dict[str, dict[str, bytes]] = {}
    commit = "0123456789abcdef0123456789abcdef01234567"

    def _answer(self) -> bytes | None:
        repo, _, rest = self.path.split("?")[0].lstrip("/").partition("/resolve/")
        name = urllib.parse.unquote(rest.partition("/")[2])
        body = self.files.get(repo, {}).get(name)
        if body is None:
            self.send_response(404)
            self.send_header("X-Error-Code", "RepoNotFound" if repo not in self.files else "EntryNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        self.send_response(200)
        self.send_header("X-Repo-Commit", self.commit)
        self.send_header("ETag", f'"{hashlib.sha256(body).hexdigest()}"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        return body

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's name
        self._answer()

    def do_GET(self) -> None:  # noqa: N802
        body = self._answer()
        if body is not None:
            self.wfile.write(body)

    tokens: list[str] = []  # the Authorization header of every upload call

    def do_POST(self) -> None:  # noqa: N802 - what upload_folder calls: create the repo, preupload, commit
        """Uploads, as the hub's API answers them: every file "regular" (its bytes in the commit's ndjson)."""
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        auth = self.headers.get("Authorization", "")
        self.tokens.append(auth)
        path = self.path.split("?")[0]
        if not auth:
            return self._json(401, {"error": "Invalid username or password."})
        if path == "/api/validate-yaml":  # a model card's front matter, checked before the commit
            return self._json(200, {"errors": [], "warnings": []})
        if path == "/api/repos/create":
            ask = json.loads(body)
            repo = f"{ask['organization']}/{ask['name']}"
            if repo in self.files:
                return self._json(409, {"error": "You already created this model repo", "url": repo})
            self.files[repo] = {}
            return self._json(200, {"url": repo})
        repo, _, action = path.removeprefix("/api/models/").rpartition("/")
        repo, _, kind = repo.rpartition("/")
        if repo not in self.files:
            return self._json(404, {"error": "Repository not found"})
        if kind == "preupload":
            files = json.loads(body)["files"]
            return self._json(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                              for f in files]})
        if kind == "commit":
            for line in body.splitlines():
                item = json.loads(line)
                if item["key"] == "file":
                    self.files[repo][item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            return self._json(200, {"commitUrl": f"{repo}/commit/{self.commit}", "commitOid": self.commit})
        return self._json(404, {"error": f"not served here: {path} ({action})"})

    def _json(self, code: int, answer: dict) -> None:
        data = json.dumps(answer).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def fake_hub(files: dict[str, dict[str, bytes]]) -> Iterator[str]:
    """A hub on loopback serving ``files`` (FakeHub); yields its endpoint (HF_ENDPOINT)."""
    FakeHub.files, FakeHub.tokens = files, []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def hub_env(tmp_path: Path, **more: str) -> dict[str, str]:
    """The hub client's own settings, all inside the test's folder (no user token, no user cache)."""
    return {"HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_CACHE": str(tmp_path / "hub-cache"),
            "HF_HUB_DISABLE_TELEMETRY": "1", **more}
