"""The predictions browser: the examples of one eval in a list (solved or not, confidence, steps, puzzle) beside
the chosen one drawn as its task draws it, stepping through the supervision steps with left and right.

A ``Screen``, so the dashboard pushes it (``p``) and ``trm-tui eval --show`` runs it in an App of its own.
"""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Label, Static

from trm_tui.predictions.examples import FILTERS, SORTS, Examples, Row
from trm_tui.keys_footer import KeysFooter


class PredictionsScreen(Screen[None]):
    DEFAULT_CSS = """
    PredictionsScreen #pred-list { width: 34; height: 1fr; }
    PredictionsScreen #pred-detail { width: 1fr; height: auto; padding: 0 0 0 1; }
    PredictionsScreen #pred-title { height: 1; }
    """
    BINDINGS = [
        Binding("left", "step(-1)", "step back", priority=True),
        Binding("right", "step(1)", "step on", priority=True),
        Binding("s", "sort", "sort"),
        Binding("f", "keep", "filter"),
        Binding("u", "puzzle", "this puzzle"),
        Binding("escape,q,p", "close", "back"),
    ]

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.examples = Examples(folder)
        self.sort, self.keep, self.puzzle = SORTS[1], FILTERS[0], None  # failures first: what a researcher wants
        self.rows: list[Row] = []
        self.row: Row | None = None
        self.step = 1

    def compose(self) -> ComposeResult:
        yield Label(id="pred-title")
        with Horizontal():
            yield DataTable(id="pred-list", cursor_type="row", zebra_stripes=True)
            with VerticalScroll(id="pred-detail-scroll"):
                yield Static(id="pred-detail")
        yield KeysFooter()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("#", "ok", "conf", "wrong", "puzzle")
        self.fill()
        table.focus()

    def title_text(self) -> str:
        m, ex = self.examples.metrics, self.examples
        score = m.get("score")
        scored = f" · {m.get('score_name', 'score')} {score:.3f}" if isinstance(score, float) else ""
        only = f" of puzzle {ex.puzzle_name(self.row) if self.row else self.puzzle}" if self.puzzle is not None else ""
        return (f"[b]step {ex.index.get('step')} {ex.index.get('weights')} {ex.index.get('split')}[/b]{scored} · "
                f"{len(self.rows):,}/{len(ex.rows):,} · {self.sort} · {self.keep}{only}")

    def fill(self, stay: bool = True) -> None:
        """The list again, after a change of sort or filter; the cursor stays on the same example if it can
        (``stay``), else goes to the top of the new order."""
        table = self.query_one(DataTable)
        keep_index = self.row.index if self.row is not None and stay else None
        self.rows = self.examples.view(self.sort, self.keep, self.puzzle)
        table.clear()
        for r in self.rows:
            table.add_row(str(r.index), "✓" if r.solved else "✗", f"{r.confidence:.2f}", str(r.wrong),
                          self.examples.puzzle_name(r)[:8], key=str(r.index))
        self.query_one("#pred-title", Label).update(self.title_text())
        if not self.rows:
            self.row = None
            self.query_one("#pred-detail", Static).update(f"no examples are {self.keep} here; f shows others")
            return
        at = next((k for k, r in enumerate(self.rows) if r.index == keep_index), 0)
        table.move_cursor(row=at)
        self.show(self.rows[at])

    def show(self, row: Row, step: int | None = None) -> None:
        self.row = row
        self.step = row.steps if step is None else max(1, min(row.steps, step))
        detail = self.query_one("#pred-detail", Static)
        width = max(30, detail.size.width or self.app.size.width - 35)
        detail.update(self.examples.picture(row, self.step, width))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if 0 <= event.cursor_row < len(self.rows):
            self.show(self.rows[event.cursor_row])

    def action_step(self, delta: int) -> None:
        if self.row is not None:
            self.show(self.row, self.step + delta)

    def action_sort(self) -> None:
        self.sort = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]
        self.fill(stay=False)

    def action_keep(self) -> None:
        self.keep = FILTERS[(FILTERS.index(self.keep) + 1) % len(FILTERS)]
        self.fill()

    def action_puzzle(self) -> None:
        """Only the examples of the chosen example's puzzle, or all again."""
        self.puzzle = None if self.puzzle is not None or self.row is None else self.row.puzzle
        self.fill()

    def action_close(self) -> None:
        if len(self.app.screen_stack) > 1 and self.app.screen is self:
            self.app.pop_screen()
        else:
            self.app.exit()
