"""How fast a run's log becomes TensorBoard files and a CSV table, against reading the log alone.

Writes a log of ``--lines`` step events (bench.dashboard_cost.write_log), then in one process run times: parsing
it whole (read_events, the floor any exporter pays), ``TensorBoardMirror.sync`` into a fresh folder, an export
run again on the same folder (it must add nothing and cost little), and the CSV of its step events. Ratios
against the parse, since this machine is noisy.

Run from the repository root:  python -m bench.export_speed [--lines 100000]
"""

from __future__ import annotations

import argparse
import io
import tempfile
from pathlib import Path


from bench.dashboard_cost import write_log
from trm_core.export.tables import event_rows, write_rows
from trm_core.export.tensorboard import TensorBoardMirror
from trm_core.rundir.events import read_events
from bench.common import seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lines", type=int, default=100_000)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        run.mkdir()
        write_log(run / "events.jsonl", args.lines)
        size = (run / "events.jsonl").stat().st_size / 2**20
        parse = seconds(lambda: read_events(run / "events.jsonl"))

        def export() -> None:
            mirror = TensorBoardMirror(run, Path(tmp) / "tb")
            mirror.sync()
            mirror.close()
        first = seconds(export)
        again = seconds(export)
        out = io.StringIO()
        table = seconds(lambda: write_rows(event_rows(run, ["step"]), out, ("event", "time", "step")))
        tb_size = sum(f.stat().st_size for f in (Path(tmp) / "tb").iterdir()) / 2**20
    print(f"{args.lines:,} step events ({size:.0f} MiB of log):")
    print(f"  parse the log          {parse:7.2f} s   1.00x")
    print(f"  export tensorboard     {first:7.2f} s   {first / parse:5.2f}x   ({args.lines / first:,.0f} steps/s; "
          f"{tb_size:.0f} MiB of event files)")
    print(f"  export again (no-op)   {again:7.2f} s   {again / parse:5.2f}x")
    print(f"  export csv (steps)     {table:7.2f} s   {table / parse:5.2f}x   ({len(out.getvalue()) / 2**20:.0f} MiB)")


if __name__ == "__main__":
    main()
