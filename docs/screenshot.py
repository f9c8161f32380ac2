"""Draw docs/dashboard.svg, the README's picture: the real dashboard (Textual's own SVG screenshot) on a real run.

Trains the tiny preset for ``--steps`` steps into a temporary run dir (about a minute on 2 cores), opens it as
``trm-tui --run-dir`` would (a completed run, as it is) at 100x32, and saves the screen.

    python docs/screenshot.py [--steps 400] [--out docs/dashboard.svg]

(after ``pip install -e .``, as the README installs it: the script imports the installed packages)
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


async def shoot(run_dir: Path, out: Path, size: tuple[int, int]) -> None:
    from trm_core.config import SupervisorConfig
    from trm_tui.dashboard.dashboard_app import Dashboard

    app = Dashboard(run_dir, None, SupervisorConfig())
    async with app.run_test(size=size) as pilot:
        await pilot.pause(2.0)  # history read, telemetry sampled, curves drawn
        app.redraw()
        await pilot.pause(0.5)
        out.write_text(app.export_screenshot(title="trm-tui"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--out", type=Path, default=REPO / "docs" / "dashboard.svg")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "tiny"
        subprocess.run([sys.executable, "-m", "trm_core.worker", "--run-dir", str(run_dir), "--preset", "tiny",
                        "--set", f"train.max_steps={args.steps}"], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
        asyncio.run(shoot(run_dir, args.out, (100, 32)))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
