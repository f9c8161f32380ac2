"""``trm-tui serve`` in a real headless browser (Chromium from the system packages): the read-only link shows
the run and refuses ``s`` on screen; the full link's cookie opens the page without the token, and a key
pressed there stops the run with a checkpoint."""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from helpers import cli, cli_run, events, free_port, kill_worker, served_urls, terminate, wait_for

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
needs_browser = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                                   reason="no Chromium here (Debian packages chromium and chromium-driver)")


def wait_serving(server, host: str, port: int, timeout: float = 60) -> None:
    def up() -> bool:
        assert server.poll() is None, f"trm-tui serve exited {server.returncode}: {server.stderr.read()}"
        with socket.socket() as s:
            return s.connect_ex((host, port)) == 0
    wait_for(up, timeout=timeout, what=f"trm-tui serve on {host}:{port}")


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1280,800"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})  # to read what the page's socket receives
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


class PageFeed:
    """What the page's websocket has received so far: the terminal output xterm.js draws on the page's canvas
    (a canvas has no text to read back, so the bytes it is drawn from are read instead)."""

    def __init__(self, driver) -> None:
        self.driver, self.data = driver, b""

    def __contains__(self, text: str) -> bool:
        for entry in self.driver.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            if msg["method"] == "Network.webSocketFrameReceived":
                frame = msg["params"]["response"]
                payload = frame["payloadData"]
                self.data += base64.b64decode(payload) if frame.get("opcode") == 2 else payload.encode()
        return text.encode() in self.data


@contextlib.contextmanager
def served_run(tmp_path: Path, micro_args: list[str], *serve_flags: str, urls: int):
    """A running run (a step every 0.1 s), ``trm-tui serve`` on it with ``serve_flags`` and a headless browser:
    (run_dir, port, the printed URLs by role, the driver); everything stopped afterwards."""
    run_dir = tmp_path / "run"
    started = cli_run("--detach", "--run-dir", str(run_dir), *micro_args, "--set", "train.max_steps=100000",
                      TRM_TEST_STEP_SLEEP_S=0.1)
    assert started.returncode == 0, started.stderr
    port = free_port()
    server = cli("serve", "--run-dir", str(run_dir), "--port", str(port), *serve_flags)
    printed = served_urls(server, urls)
    threading.Thread(target=server.stdout.read, daemon=True).start()  # keep its pipe drained, as a terminal would
    driver = None
    try:
        wait_serving(server, "127.0.0.1", port)
        driver = browser()
        yield run_dir, port, printed, driver
    finally:
        if driver is not None:
            driver.quit()
        terminate(server)
        kill_worker(run_dir)


def press_s(driver) -> None:
    """Focus the page's terminal (a click), then the s key."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    ActionChains(driver).move_to_element(driver.find_element(By.TAG_NAME, "body")).click().perform()
    ActionChains(driver).send_keys("s").perform()


@needs_browser
@pytest.mark.process
def test_the_full_link_once_then_the_cookie_and_s_in_the_page_stops_it(tmp_path: Path,
                                                                          micro_args: list[str]) -> None:
    with served_run(tmp_path, micro_args, "--share", urls=2) as (run_dir, port, urls, driver):
        driver.get(urls["full control"])  # the full token once: its cookie replaces the read-only one
        driver.get(f"http://127.0.0.1:{port}/")  # then no token in the address bar: the cookie opens it
        page = PageFeed(driver)
        wait_for(lambda: "RUNNING" in page and "loss" in page and "step" in page, timeout=60,
                 what="the dashboard of the running run in the page")
        assert "[read-only]" not in page
        # the footer's keys before anything is clicked (a tab has no focus until then; Textual's own footer
        # waited for it)
        wait_for(lambda: "preds" in page and "plot" in page, timeout=30, what="the footer's keys before a click")
        press_s(driver)
        wait_for(lambda: events(run_dir, "run_end"), timeout=60, what="the run to stop")
        end = events(run_dir, "run_end")[-1]
        assert end["status"] == "stopped", end
        assert events(run_dir, "checkpoint")[-1]["step"] == end["step"]  # stopped with a checkpoint
        wait_for(lambda: "STOPPED" in page, timeout=30, what="the page to show it stopped")


@pytest.mark.process
def test_serve_refuses_a_folder_without_a_run_and_warns_off_loopback(tmp_path: Path, micro_args: list[str],
                                                                     capsys: pytest.CaptureFixture) -> None:
    empty = cli_run("serve", "--run-dir", str(tmp_path / "none"))
    assert empty.returncode == 2 and "no run in" in empty.stderr and "start one first" in empty.stderr
    run_dir = tmp_path / "run"
    assert cli_run("--no-ui", "--run-dir", str(run_dir), *micro_args, "--set", "train.max_steps=2").returncode == 0
    port = free_port()
    server = cli("serve", "--run-dir", str(run_dir), "--host", "127.0.0.2", "--port", str(port))  # loopback too
    try:
        wait_serving(server, "127.0.0.2", port)
    finally:
        terminate(server)
    assert "WARNING" not in server.stderr.read()  # all of 127/8 is this machine's
    # any other address is warned about (not bound here: tests talk to loopback alone)
    from trm_tui.cli.serve import make_tokens, parser, warn_exposure

    args = parser().parse_args(["--host", "10.1.2.3"])
    warn_exposure(args, make_tokens(args))
    assert "WARNING: bound to 10.1.2.3: anyone who reaches port 8000 there and has the token" in capsys.readouterr().err


@needs_browser
@pytest.mark.process
def test_the_read_only_page_refuses_s_and_the_run_goes_on(tmp_path: Path, micro_args: list[str]) -> None:
    with served_run(tmp_path, micro_args, "--read-only", urls=1) as (run_dir, _port, urls, driver):
        driver.get(urls["read-only"])
        page = PageFeed(driver)
        wait_for(lambda: "[read-only]" in page, timeout=60, what="the read-only dashboard in the page")
        press_s(driver)
        wait_for(lambda: "read-only view" in page, timeout=30, what="the page to say why s was refused")
        t0 = time.time()
        wait_for(lambda: sum(e["time"] > t0 for e in events(run_dir, "step")) >= 3, timeout=30,
                 what="the run to go on")
        assert not events(run_dir, "run_end")


@pytest.mark.process
def test_a_tab_whose_run_is_gone_shows_why_in_the_page(tmp_path: Path) -> None:
    """What textual-serve runs for a tab, under its web driver: with no run to open (the folder was removed
    after serve started), the error is drawn in the page, not only printed in the server's terminal, and no
    run is started there."""
    import os
    import select
    import subprocess

    from helpers import worker_env
    from trm_tui.cli.serve import dashboard_commands
    from trm_tui.serve.tokens import Role

    gone = tmp_path / "gone"
    command = dashboard_commands(gone, read_only=False)[Role.FULL]
    env = worker_env(TEXTUAL_DRIVER="textual.drivers.web_driver:WebDriver", COLUMNS="120", ROWS="30")
    tab = subprocess.Popen(command, shell=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=env, start_new_session=True)
    drawn = b""
    try:
        deadline = time.monotonic() + 60
        while b"no run in" not in drawn and time.monotonic() < deadline and tab.poll() is None:
            if select.select([tab.stdout], [], [], 0.5)[0]:
                drawn += os.read(tab.stdout.fileno(), 1 << 16)
        assert drawn.startswith(b"__GANGLION__"), drawn[:200]  # a Textual app in the page
        assert b"could not open" in drawn and b"no run in" in drawn and b"--attach cannot start" in drawn
        assert not gone.exists()  # nothing started
    finally:
        os.killpg(tab.pid, 9)  # the shell and the trm-tui under it
        tab.wait()


@pytest.mark.process
def test_attach_on_a_folder_without_a_run_is_an_error_and_starts_nothing(tmp_path: Path) -> None:
    for flag in ("--attach", "--read-only"):
        result = cli_run("--run-dir", str(tmp_path / "typo"), flag, "--no-ui")
        assert result.returncode == 2, result
        assert f"no run in {tmp_path / 'typo'} ({flag} cannot start or resume one)" in result.stderr
        assert not (tmp_path / "typo").exists()


@pytest.mark.process
def test_tabs_are_capped_bounded_in_size_and_end_with_their_socket(tmp_path: Path, micro_args: list[str]) -> None:
    """Past --max-tabs a link's page and socket are refused (503, naming the limit) before anything starts; a
    tab asking for a 2000x2000 terminal gets the largest allowed; and when its socket closes its dashboard ends,
    even one that cannot answer (SIGSTOPped): killed after the grace."""
    import signal
    import urllib.error
    import urllib.request

    import psutil
    import websocket

    run_dir = tmp_path / "run"
    started = cli_run("--detach", "--run-dir", str(run_dir), *micro_args, "--set", "train.max_steps=100000",
                      TRM_TEST_STEP_SLEEP_S=0.1)
    assert started.returncode == 0, started.stderr
    port = free_port()
    server = cli("serve", "--run-dir", str(run_dir), "--port", str(port), "--max-tabs", "2")
    try:
        url = served_urls(server, 1)["full control"]
        threading.Thread(target=server.stdout.read, daemon=True).start()
        wait_serving(server, "127.0.0.1", port)
        token = url.split("?token=")[1]
        ws_url = f"ws://127.0.0.1:{port}/ws?token={token}&width=2000&height=2000"

        def dashboards() -> dict[psutil.Process, tuple[str, str]]:
            """The server's tab processes (textual-serve's shell and the trm-tui under it), with their size."""
            found = {}
            for proc in psutil.Process(server.pid).children(recursive=True):
                try:
                    env = proc.environ()
                except psutil.Error:
                    continue
                if "TEXTUAL_DRIVER" in env:
                    found[proc] = (env.get("COLUMNS", ""), env.get("ROWS", ""))
            return found

        tabs = [websocket.create_connection(ws_url, timeout=30) for _ in range(2)]
        wait_for(lambda: len(dashboards()) >= 2, timeout=60, what="two tabs' dashboards")
        assert set(dashboards().values()) == {("500", "200")}
        with pytest.raises(websocket.WebSocketBadStatusException) as third:
            websocket.create_connection(ws_url, timeout=30)
        assert third.value.status_code == 503
        with pytest.raises(urllib.error.HTTPError) as page:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/?token={token}", timeout=30)
        assert page.value.code == 503 and "--max-tabs 2" in page.value.read().decode()
        for garbage in ("not json", "[1]", '["resize", {}]', '["resize", {"width": "x", "height": null}]', "{}"):
            tabs[0].send(garbage)  # what no page sends: dropped, the tab goes on
        tabs[0].send('["ping", "still here"]')
        def answered() -> bool:  # the dashboard's frames (bytes) go by until the pong (text)
            frame = tabs[0].recv()
            return "still here" in (frame.decode(errors="replace") if isinstance(frame, bytes) else frame)
        wait_for(answered, timeout=30, what="the tab's answer after the garbage")
        stuck = next(p for p in dashboards() if "sh" != p.name())
        stuck.send_signal(signal.SIGSTOP)  # a dashboard that cannot answer the quit its socket's close sends
        for tab in tabs:
            tab.close()
        wait_for(lambda: not dashboards(), timeout=30, what="every tab's dashboard to end with its socket")
        again = websocket.create_connection(ws_url, timeout=30)  # the slots are free again
        again.close()
    finally:
        terminate(server)
        kill_worker(run_dir)
    assert "Traceback" not in server.stderr.read()  # nothing a tab sent reached the server's log as a crash
