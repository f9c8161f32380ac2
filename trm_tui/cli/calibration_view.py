"""``trm-tui eval --calibration``: how far the halting head can be trusted, as a table and a plotext chart
(the share right against the probability the head gave; a trustworthy head lies on the diagonal), then what
halting above each P would have scored, so a user can pick ``--halt P``."""

from __future__ import annotations

from typing import Any, TextIO


def print_calibration(metrics: dict[str, Any], out: TextIO) -> None:
    rows = [r for r in metrics.get("halt_reliability") or [] if r["count"]]
    if not rows:
        out.write("  no halting probabilities to judge\n")
        return
    out.write("  halting head reliability (every example after every step it ran):\n")
    out.write(f"  {'probability':>13} {'count':>8} {'mean':>6} {'right':>6}\n")
    for r in rows:
        out.write(f"  {r['from']:>5.1f} - {r['to']:<5.1f} {r['count']:>8,} {r['mean_probability']:>6.3f} "
                  f"{r['right']:>6.3f}\n")
    drawn = _chart(rows, out.isatty())
    if drawn:
        out.write(drawn + "\n")
    choices = metrics.get("halt_choices")
    if choices:
        steps = metrics.get("supervision_steps")
        out.write(f"  halting above P instead of running all {steps} steps "
                  f"(all {steps}: exact {metrics.get('exact', 0):.4f}):\n")
        for c in choices:
            out.write(f"    --halt {c['halt']:<5g} exact {c['exact']:.4f}  {c['steps_mean']:.2f} steps on average, "
                      f"{100 * c['compute_saved']:.0f}% saved\n")
    else:
        out.write("  (what each --halt P would score needs an eval that ran every step: drop --halt)\n")


def _chart(rows: list[dict[str, Any]], colour: bool, width: int = 60, height: int = 14) -> str:
    if len(rows) < 2:
        return ""
    import plotext as plt

    plt.clear_figure()
    plt.theme("clear")
    plt.plotsize(width, height)
    plt.plot([0, 1], [0, 1], label="trustworthy", marker="dot")
    plt.plot([r["mean_probability"] for r in rows], [r["right"] for r in rows], label="this head", marker="hd")
    plt.xlim(0, 1)
    plt.ylim(0, 1)
    plt.title("share right against the halting probability given")
    drawn = plt.build()
    return drawn if colour else plt.uncolorize(drawn)
