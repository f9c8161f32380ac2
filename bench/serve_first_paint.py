"""Does the token check slow the page? Time to the dashboard's first paint in a real browser, with the token
(the default) against ``--no-token`` (no check: what serve was before the token), side by side.

Two ``trm-tui serve`` processes on one finished run, one headless Chromium; each round opens both pages in
turn (alternating which goes first), timing from the navigation to the first WebSocket frame that holds the
run's header (the run's name in the dashboard's first frame). Medians over the rounds; the ratio is the
figure (these machines are noisy). Needs Chromium and chromedriver (Debian: chromium, chromium-driver) and
selenium.

Run from the repository root:  python -m bench.serve_first_paint --run-dir RUN [--rounds 7]
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_serve(run_dir: Path, port: int, *flags: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "trm_tui.cli", "serve", "--run-dir", str(run_dir), "--port",
                             str(port), *flags], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while True:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit(f"serve exited: {proc.stderr.read()}")
        if "?token=" in line:
            return proc, next(w for w in line.split() if "?token=" in w)
        if line.startswith("  http"):  # --no-token: the bare address
            return proc, line.split()[0]


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--window-size=1280,800",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)


def first_paint_s(driver, url: str, marker: bytes, timeout: float = 120) -> float:
    """Seconds from navigation to the first frame holding ``marker``."""
    driver.get("about:blank")
    driver.get_log("performance")  # drop what came before
    t0 = time.monotonic()
    driver.get(url)
    data = b""
    while time.monotonic() - t0 < timeout:
        for entry in driver.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            if msg["method"] == "Network.webSocketFrameReceived":
                frame = msg["params"]["response"]
                payload = frame["payloadData"]
                data += base64.b64decode(payload) if frame.get("opcode") == 2 else payload.encode()
        if marker in data:
            return time.monotonic() - t0
        time.sleep(0.02)
    raise SystemExit(f"no first paint within {timeout}s at {url}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run-dir", type=Path, required=True, help="a run to show (a finished one keeps the CPU quiet)")
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args()
    open_server, open_url = start_serve(args.run_dir, free_port(), "--no-token")
    token_server, token_url = start_serve(args.run_dir, free_port())
    marker = args.run_dir.resolve().name.encode()  # the header's run name, in the first frame
    driver = browser()
    times: dict[str, list[float]] = {"token": [], "no token": []}
    try:
        first_paint_s(driver, token_url, marker)  # warm the OS caches and the browser once, uncounted
        first_paint_s(driver, open_url, marker)
        for r in range(args.rounds):
            order = [("token", token_url), ("no token", open_url)]
            for name, url in order if r % 2 == 0 else order[::-1]:
                times[name].append(first_paint_s(driver, url, marker))
    finally:
        driver.quit()
        open_server.terminate()
        token_server.terminate()
    med = {k: statistics.median(v) for k, v in times.items()}
    for name, values in times.items():
        print(f"{name:9} first paint: median {med[name]:.2f} s  ({', '.join(f'{v:.2f}' for v in values)})")
    print(f"token / no token: {med['token'] / med['no token']:.3f}")


if __name__ == "__main__":
    main()
