"""A shared machine, with a second real user: who may read a run, who may act on it, and the browser view behind
its token. The second user is ``nobody`` (uid 65534), reached the way CI can: this process runs as root, and a
child imports what it needs, then drops to uid 65534 with ``os.setuid`` before it acts (the interpreter lives
under /root, which nobody may enter, so nothing is imported after the drop)."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from helpers import cli, cli_run, events, free_port, kill_worker, served_urls, terminate, wait_for, worker_env

OTHER_UID = 65534
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="becoming a second user needs root (CI runs as root)")

# what the other user's process imports while still root: every module its command reaches
PRELUDE = """
import json, os, socket, sys, time
from pathlib import Path
from trm_tui.cli import main as trm
import trm_tui.cli.stop, trm_tui.cli.status, trm_tui.cli.autotune, trm_tui.cli.start_or_open
import trm_tui.cli.runs, trm_core.control.commands as commands, trm_core.control.run_status
from trm_core.rundir.ownership import who, user_name
os.chdir("/")
os.setgroups([]); os.setgid({uid}); os.setuid({uid})
"""


def as_other_user(code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``code`` as uid 65534 (after the prelude's imports, made as root)."""
    return subprocess.run([sys.executable, "-c", PRELUDE.format(uid=OTHER_UID) + code], capture_output=True,
                          text=True, timeout=timeout, env=worker_env())


@pytest.fixture
def shared_dir():
    """A folder every user can enter (pytest's own tmp folders are root's alone), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="trm-shared-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def started_run(run_dir: Path, micro_args: list[str]) -> None:
    done = cli_run("--detach", "--run-dir", str(run_dir), *micro_args, "--set", "train.max_steps=100000",
                   TRM_TEST_STEP_SLEEP_S=0.05)
    assert done.returncode == 0, done.stderr
    wait_for(lambda: events(run_dir, "step"), timeout=60, what="the first step")


def steps_after(run_dir: Path, t: float) -> int:
    return sum(1 for e in events(run_dir, "step") if e["time"] > t)


@needs_root
@pytest.mark.process
def test_another_user_can_read_the_run_but_not_stop_it_or_command_it(shared_dir: Path, micro_args: list[str]) -> None:
    run_dir = shared_dir / "run"
    started_run(run_dir, micro_args)
    try:
        inbox = run_dir / "commands"
        assert stat.S_IMODE(inbox.stat().st_mode) == 0o700  # the keeper made the inbox for its owner alone
        for name in ("worker.json", "keeper.json", "keeper.lock", "keeper.log"):
            assert stat.S_IMODE((run_dir / name).stat().st_mode) & 0o022 == 0, name  # no one else writes them
        worker_pid = json.loads((run_dir / "worker.json").read_text())["pid"]

        # reading is the file system's business: status works and says whose run it is
        st = as_other_user(f"sys.exit(trm(['status', '--run-dir', {str(run_dir)!r}]))")
        assert st.returncode == 0, st.stderr
        assert "owner       root" in st.stdout and "root's: you may read it, not act on it" in st.stdout

        # acting is the owner's: refused before any signal, naming the owner
        for argv, doing in ((["stop"], "stop it"), (["stop", "--force"], "kill it"), (["autotune"], "auto-tune it"),
                            (["--resume"], "resume it")):
            done = as_other_user(f"sys.exit(trm({argv + ['--run-dir', str(run_dir)]!r}))")
            assert done.returncode == 2, (argv, done.stdout, done.stderr)
            assert f"belongs to root (uid 0); only its owner may {doing}" in done.stderr, done.stderr
            assert "you are nobody (uid 65534)" in done.stderr and "Traceback" not in done.stderr
        assert psutil.pid_exists(worker_pid) and not events(run_dir, "run_end")

        # a folder left writable by mistake: the other user's command file and stop.request are refused
        inbox.chmod(0o777)
        run_dir.chmod(0o777)
        t0 = time.time()
        sent = as_other_user(f"""
cid = commands.send(Path({str(run_dir)!r}), 'stop', 'intruder')
Path({str(run_dir)!r}, 'stop.request').write_text('stop')
print(cid)
""")
        assert sent.returncode == 0, sent.stderr
        cid = sent.stdout.strip()
        acks = wait_for(lambda: [e for e in events(run_dir, "command") if e["time"] > t0] if len(
            [e for e in events(run_dir, "command") if e["time"] > t0]) >= 2 else None, timeout=30,
            what="the keeper's two refusals")
        by_id = {a["id"]: a for a in acks}
        assert by_id[cid]["accepted"] is False and "owned by nobody (uid 65534)" in by_id[cid]["reason"]
        assert by_id["stop.request"]["accepted"] is False and "nobody (uid 65534)" in by_id["stop.request"]["reason"]
        assert not (run_dir / "stop.request").exists() and not list(inbox.iterdir())
        t1 = time.time()
        wait_for(lambda: steps_after(run_dir, t1) >= 3, timeout=30, what="the run to go on training")
        assert not events(run_dir, "run_end") and psutil.pid_exists(worker_pid)

        # the owner's stop still works
        assert cli_run("stop", "--run-dir", str(run_dir)).returncode == 0
        assert events(run_dir, "run_end")[-1]["status"] == "stopped"
    finally:
        kill_worker(run_dir)


@needs_root
@pytest.mark.process
def test_the_run_dir_follows_the_umask_but_its_control_files_do_not(shared_dir: Path, micro_args: list[str]) -> None:
    run_dir = shared_dir / "run"
    old = os.umask(0o002)  # a group-collaboration umask: run files group-writable, control files never
    try:
        done = cli_run("--no-ui", "--run-dir", str(run_dir), *micro_args, "--set", "train.max_steps=2")
    finally:
        os.umask(old)
    assert done.returncode == 0, done.stderr
    mode = lambda name: stat.S_IMODE((run_dir / name).stat().st_mode)  # noqa: E731
    assert mode("events.jsonl") == 0o664 and mode("config.toml") == 0o664  # the user's umask
    assert mode("worker.json") == 0o644 and mode("keeper.json") == 0o644 and mode("commands") == 0o700


@needs_root
@pytest.mark.process
def test_an_alert_command_comes_only_from_the_owners_config(shared_dir: Path, micro_args: list[str]) -> None:
    """The environment cannot set one; a config.toml someone else wrote does not run one."""
    env_set = cli_run("--no-ui", "--run-dir", str(shared_dir / "env"), *micro_args, "--set", "train.max_steps=2",
                      TRM_ALERTS_COMMAND="touch /tmp/should-not-exist")
    assert env_set.returncode == 2 and "environment TRM_ALERTS_COMMAND" in env_set.stderr
    assert "never from the environment" in env_set.stderr

    run_dir = shared_dir / "run"
    assert cli_run("--no-ui", "--run-dir", str(run_dir), *micro_args, "--set", "train.max_steps=2").returncode == 0
    config = run_dir / "config.toml"
    config.write_text(config.read_text().replace('command = ""', 'command = "touch /tmp/x"'))
    from trm_core.config.start import Start
    from trm_core.rundir.layout import RunDir

    assert Start.resuming(RunDir(run_dir)).keeper_settings()[1].command == "touch /tmp/x"  # the owner's own
    os.chown(config, OTHER_UID, OTHER_UID)  # as if another user had replaced it in a folder they could write
    assert Start.resuming(RunDir(run_dir)).keeper_settings()[1].command == ""  # not run by the owner's keeper


# -- the browser view behind its token ---------------------------------------------------------------------

def serve(*args: str) -> tuple[subprocess.Popen, dict[str, str]]:
    """``trm-tui serve ARGS`` and the token URLs it printed, by role ('full control', 'read-only')."""
    server = cli("serve", *args)
    return server, served_urls(server, 2 if "--share" in args else 1)


def get(host: str, port: int, path: str, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.request("GET", path, headers=headers or {})
    resp = conn.getresponse()
    resp.read()
    return resp


WS_HEADERS = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
              "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}


@pytest.mark.process
def test_serve_answers_only_to_its_tokens(tmp_path: Path, micro_args: list[str]) -> None:
    run_dir = tmp_path / "run"
    assert cli_run("--no-ui", "--run-dir", str(run_dir), *micro_args, "--set", "train.max_steps=2").returncode == 0
    port = free_port()
    server, urls = serve("--run-dir", str(run_dir), "--port", str(port), "--share")
    try:
        full, ro = urls["full control"].split("token=")[1], urls["read-only"].split("token=")[1]
        assert len(full) >= 22 and len(ro) >= 22 and full != ro  # 128 bits at least, base64
        for path in ("/", "/ws", "/static/js/textual.js", f"/?token={full[:-1]}", f"/?token={full}x"):
            assert get("127.0.0.1", port, path, WS_HEADERS if path == "/ws" else None).status == 403, path
        assert psutil.Process(server.pid).children() == []  # refused: no dashboard was started
        page = get("127.0.0.1", port, f"/?token={full}")
        assert page.status == 200
        cookie = page.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and full in cookie
        name = cookie.split("=", 1)[0]
        again = get("127.0.0.1", port, "/static/js/textual.js", {"Cookie": f"{name}={full}"})
        assert again.status == 200  # the cookie alone, after the first visit
        # a socket from another site is refused even with the cookie
        assert get("127.0.0.1", port, "/ws", {**WS_HEADERS, "Cookie": f"{name}={full}",
                                               "Origin": "http://evil.example"}).status == 403
        assert psutil.Process(server.pid).children() == []
    finally:
        terminate(server)

    # bad ways to start it: one line each, exit 2
    token_file = tmp_path / "token"
    token_file.write_text("a-long-enough-secret-token-1234\n")
    token_file.chmod(0o644)
    loose = cli_run("serve", "--run-dir", str(run_dir), "--port", str(free_port()), "--token-file", str(token_file))
    assert loose.returncode == 2 and "mode 0644 lets other users read it; chmod 600" in loose.stderr
    no_token = cli_run("serve", "--run-dir", str(run_dir), "--host", "0.0.0.0", "--no-token")
    assert no_token.returncode == 2 and "--no-token is refused with --host 0.0.0.0" in no_token.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        in_use = cli_run("serve", "--run-dir", str(run_dir), "--port", str(busy.getsockname()[1]))
    assert in_use.returncode == 2 and "is in use" in in_use.stderr and "Traceback" not in in_use.stderr

    token_file.chmod(0o600)
    port = free_port()
    server, urls = serve("--run-dir", str(run_dir), "--port", str(port), "--token-file", str(token_file))
    try:
        assert urls["full control"].endswith("?token=a-long-enough-secret-token-1234")
        assert get("127.0.0.1", port, "/?token=a-long-enough-secret-token-1234").status == 200
    finally:
        terminate(server)


@needs_root
@pytest.mark.process
def test_the_unix_socket_is_its_owners_alone(shared_dir: Path, tmp_path: Path, micro_args: list[str]) -> None:
    run_dir = tmp_path / "run"
    assert cli_run("--no-ui", "--run-dir", str(run_dir), *micro_args, "--set", "train.max_steps=2").returncode == 0
    sock_path = shared_dir / "trm.sock"
    server, urls = serve("--run-dir", str(run_dir), "--unix-socket", str(sock_path))
    try:
        token = urls["full control"].split("token=")[1]
        wait_for(sock_path.exists, timeout=30, what="the socket")
        assert stat.S_ISSOCK(sock_path.lstat().st_mode) and stat.S_IMODE(sock_path.lstat().st_mode) == 0o600

        def status_line(path: str) -> str:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(sock_path))
                s.sendall(f"GET {path} HTTP/1.0\r\nHost: localhost:8000\r\n\r\n".encode())
                return s.recv(200).decode().splitlines()[0]

        wait_for(lambda: status_line("/").endswith("403 Forbidden"), timeout=30, what="serving")
        assert status_line(f"/?token={token}").endswith("200 OK")
        other = as_other_user(f"""
s = socket.socket(socket.AF_UNIX)
try:
    s.connect({str(sock_path)!r})
    print('connected')
except PermissionError as exc:
    print('refused', exc.errno)
""")
        assert other.stdout.strip() == "refused 13", (other.stdout, other.stderr)
    finally:
        terminate(server)


@needs_root
def test_a_stop_request_or_an_identity_someone_else_wrote_counts_for_nothing(tmp_path: Path) -> None:
    from trm_core.rundir.identity import _record_self, read_identity
    from trm_core.rundir.layout import RunDir

    run = RunDir(tmp_path)
    run.stop_request.write_text("stop")
    assert run.stop_requested()
    os.chown(run.stop_request, OTHER_UID, OTHER_UID)
    assert not run.stop_requested()  # the worker and the supervisor go on
    _record_self(tmp_path, "worker.json")
    assert read_identity(tmp_path) is not None and read_identity(tmp_path).pid == os.getpid()
    os.chown(tmp_path / "worker.json", OTHER_UID, OTHER_UID)
    assert read_identity(tmp_path) is None  # a forged pid would aim the owner's stop at another process


@needs_root
@pytest.mark.process
def test_another_user_evaluates_a_run_into_their_own_folder(shared_dir: Path, micro_args: list[str]) -> None:
    run_dir = shared_dir / "run"
    corpus = Path(next(a for a in micro_args if a.startswith("data.paths=")).split("'")[1])
    shutil.copytree(corpus, shared_dir / "corpus")  # data the other user may read (pytest's folders are root's)
    shared_data = ["--set", f"data.paths=['{shared_dir / 'corpus'}']", "--set", f"data.cache_dir='{shared_dir / 'cache'}'"]
    assert cli_run("--no-ui", "--run-dir", str(run_dir), *micro_args, *shared_data,
                   "--set", "train.max_steps=2").returncode == 0
    subprocess.run(["chmod", "-R", "a+rX", str(shared_dir)], check=True)
    out = shared_dir / "mine"
    out.mkdir()
    os.chown(out, OTHER_UID, OTHER_UID)
    eval_imports = ("import torch, torch.utils.serialization, torch.utils.serialization.config, trm_tui.cli.eval, "
                    "trm_core.evaluate.loaded, trm_core.evaluate.session\n")
    code = f"sys.exit(trm(['eval', '--run-dir', {str(run_dir)!r}, '--limit', '4', '--json'] + sys.argv[1:]))"
    refused = subprocess.run([sys.executable, "-c", eval_imports + PRELUDE.format(uid=OTHER_UID) + code],
                             capture_output=True, text=True, timeout=120, env=worker_env())
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
    assert f"cannot write the eval under {run_dir / 'evals'}: Permission denied (the run belongs to root (uid 0))" \
        in refused.stderr and "give --out DIR" in refused.stderr
    done = subprocess.run([sys.executable, "-c", eval_imports + PRELUDE.format(uid=OTHER_UID) + code,
                           "--out", str(out)], capture_output=True, text=True, timeout=120, env=worker_env())
    assert done.returncode == 0, done.stderr
    folder = Path(json.loads(done.stdout)["folder"])
    assert folder.parent == out and (folder / "metrics.json").exists() and not (run_dir / "evals").exists()


@needs_root
@pytest.mark.process
def test_the_dashboards_runs_screen_says_whose_each_run_is(tmp_path: Path, micro_args: list[str]) -> None:
    """R in the dashboard: an OWNER column as soon as one run beside yours is another user's (their
    config.toml is theirs), as ``trm-tui runs`` has."""
    import asyncio

    from textual.widgets import DataTable

    from trm_core.config import SupervisorConfig
    from trm_tui.dashboard.dashboard_app import Dashboard
    from trm_tui.dashboard.runs_screen import RunsScreen

    for name in ("mine", "theirs"):
        done = cli_run("--no-ui", "--run-dir", str(tmp_path / name), *micro_args, "--set", "train.max_steps=2")
        assert done.returncode == 0, done.stderr
    os.chown(tmp_path / "theirs" / "config.toml", OTHER_UID, OTHER_UID)

    async def runs_table() -> dict[str, list[str]]:
        app = Dashboard(tmp_path / "mine", None, SupervisorConfig())
        async with app.run_test(size=(160, 30)) as pilot:
            await pilot.pause(0.5)
            await pilot.press("R")
            await pilot.pause(0.5)
            assert isinstance(app.screen, RunsScreen)
            table = app.screen.query_one(DataTable)
            headers = [str(c.label) for c in table.ordered_columns]
            rows = {str(table.get_row_at(i)[1]): [str(c) for c in table.get_row_at(i)] for i in range(table.row_count)}
            return {"headers": headers, **rows}
    got = asyncio.run(runs_table())
    owner = got["headers"].index("OWNER")
    assert got["headers"][owner - 1] == "RUN"
    assert got["theirs"][owner] == "nobody" and got["mine"][owner] == "root"
