"""How ``trm-tui eval --sweep`` shows its rows: a table line per setting as it finishes, and at the end a
plotext chart of the share solved against the compute spent (supervision steps run per example, over all its
trajectories), one line per (trajectories, noise, select) family so the steps axis reads left to right."""

from __future__ import annotations

from typing import Any, TextIO

HEADER = (f"{'steps':>5} {'K':>3} {'noise':>6} {'sel':>4} {'settle':>6} {'esc':>3} {'halt':>5}  {'exact':>7} {'accuracy':>8} "
          f"{'pass@2':>7} {'steps/ex':>8} {'compute':>8} {'ex/s':>8}")


def row_line(row: dict[str, Any]) -> str:
    def num(value: Any, fmt: str, width: int) -> str:
        return f"{value:{width}{fmt}}" if isinstance(value, (int, float)) else f"{'-':>{width}}"

    return (f"{row['steps']:>5} {row['trajectories']:>3} {row['noise']:>6g} {row['select']:>4} {row['settle'] or '-':>6} "
            f"{'yes' if row.get('escalate') else '-':>3} "
            f"{num(row['halt'], 'g', 5)}  {num(row['exact'], '.4f', 7)} {num(row['accuracy'], '.4f', 8)} "
            f"{num(row['pass@2'], '.4f', 7)} {num(row['sup_steps'], '.2f', 8)} {num(row['forward_steps'], '.1f', 8)} "
            f"{num(row['examples_per_s'], '.1f', 8)}")


def family(row: dict[str, Any]) -> str:
    name = f"K={row['trajectories']}"
    if row["trajectories"] > 1 or row["noise"]:
        name += f" noise={row['noise']:g} {row['select']}"
    if row["settle"]:
        name += f" settle={row['settle']}"
    if row["halt"]:
        name += f" halt={row['halt']:g}"
    if row.get("escalate"):
        name += " escalate"
    return name


def chart(rows: list[dict[str, Any]], width: int = 78, height: int = 18, colour: bool = False) -> str:
    """Exact against compute (log scale), one line per family of settings; empty with fewer than two rows."""
    if len(rows) < 2:
        return ""
    import plotext as plt

    plt.clear_figure()
    plt.theme("clear")
    plt.plotsize(width, height)
    families: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        families.setdefault(family(row), []).append(row)
    for name, members in families.items():
        members = sorted(members, key=lambda r: r["forward_steps"])
        xs = [float(r["forward_steps"]) for r in members]
        ys = [float(r["exact"]) for r in members]
        plt.plot(xs, ys, label=name, marker="dot")
    plt.xscale("log")
    top = max(float(r["exact"]) for r in rows)
    plt.ylim(0, min(1.0, top * 1.15) or 1.0)
    plt.title("exact against compute (supervision steps run per example, all trajectories; log scale)")
    drawn = plt.build()
    return drawn if colour else plt.uncolorize(drawn)


def print_sweep(rows: list[dict[str, Any]], path: str, planned: int, out: TextIO) -> None:
    """The end of a sweep: the chart and where the rows are (how many of those planned, if cut short)."""
    drawn = chart(rows, colour=out.isatty())
    if drawn:
        out.write(drawn + "\n")
    done = f"{len(rows)} of {planned} settings" if len(rows) < planned else f"all {planned} settings"
    out.write(f"  {done} written to {path}\n")
