"""Many runs from one dashboard: a runs screen to switch between the runs beside this one, and a compare view
that overlays the loss and eval curves of the runs marked there."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Label

from trm_tui.dashboard.history import history_view
from trm_tui.runs_table import columns, list_runs, mark_differences
from trm_tui.dashboard.widgets import Curve
from trm_tui.keys_footer import KeysFooter
from trm_tui.event_text import duration

# Colours and markers per run: the markers keep runs apart where colour does not show (NO_COLOR).
COLOURS = ("cyan", "yellow", "green", "magenta", "red", "blue", "white")
MARKERS = ("braille", "•", "x", "+", "*", "o", "#")


class RunsScreen(Screen["Path | None"]):
    """The runs under the current run's folder (``trm-tui runs``' table). Enter opens one (the screen's result:
    the run to switch to), space marks it for the compare view, c compares the marked runs (this one too when
    none is marked)."""

    BINDINGS = [Binding("enter", "open", "open"), Binding("space", "mark", "mark"),
                Binding("c", "compare", "compare marked"), Binding("escape,q,R", "app.pop_screen", "back")]

    def __init__(self, root: Path, current: Path) -> None:
        super().__init__()
        self.root, self.current = root, current
        self.runs: list[Path] = []
        self.marked: set[Path] = set()

    def compose(self) -> ComposeResult:
        yield Label(f"[b]runs in {self.root}[/b]   enter open, space mark, c compare the marked, ← → more columns")
        yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield KeysFooter()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        rows = list_runs(self.root)
        mark_differences(rows)
        headers, cells = columns(rows)
        table.add_columns(" ", *headers)
        self.runs = [row.run_dir for row in rows]
        for row, row_cells in zip(rows, cells):
            table.add_row(self._mark(row.run_dir), *row_cells, key=str(row.run_dir))
        if self.current in self.runs:
            table.move_cursor(row=self.runs.index(self.current))

    def _mark(self, run_dir: Path) -> str:
        return "*" if run_dir in self.marked else ("@" if run_dir == self.current else " ")

    def _selected(self) -> Path | None:
        table = self.query_one(DataTable)
        return self.runs[table.cursor_row] if self.runs and 0 <= table.cursor_row < len(self.runs) else None

    def action_open(self) -> None:
        chosen = self._selected()
        if chosen is not None:
            self.dismiss(chosen)

    def on_data_table_row_selected(self, _event: DataTable.RowSelected) -> None:
        self.action_open()  # enter inside the table arrives as a row selection

    def action_mark(self) -> None:
        chosen = self._selected()
        if chosen is None:
            return
        self.marked.symmetric_difference_update({chosen})
        table = self.query_one(DataTable)
        table.update_cell(str(chosen), table.ordered_columns[0].key, self._mark(chosen))

    def action_compare(self) -> None:
        runs = [r for r in self.runs if r in self.marked] or [self.current]
        self.app.push_screen(CompareScreen(runs))


class CompareScreen(Screen[None]):
    """The loss and eval curves of several runs on one pair of charts, one colour and one marker per run, and
    below them a table of the runs' final scores and time to target beside the config keys they differ in (what
    W&B's runs table and TensorBoard's HParams tab show)."""

    DEFAULT_CSS = """
    #compare-curves { height: 1fr; }
    #compare-curves > Curve { width: 1fr; height: 1fr; border: round $primary; }
    #compare-table { height: auto; max-height: 12; }
    """
    BINDINGS = [Binding("escape,q,c", "app.pop_screen", "back")]

    def __init__(self, runs: list[Path]) -> None:
        super().__init__()
        self.runs = runs

    def compose(self) -> ComposeResult:
        names = [r.name for r in self.runs]
        yield Label(f"[b]compare[/b] {', '.join(names)}")
        markers = {name: MARKERS[i % len(MARKERS)] for i, name in enumerate(names)}
        with Horizontal(id="compare-curves"):
            yield Curve("loss", log_y=True, markers=markers, id="compare-loss")
            yield Curve("eval loss", log_y=True, markers=markers, id="compare-eval")
        yield DataTable(id="compare-table", cursor_type="row", zebra_stripes=True)
        yield KeysFooter()

    def on_mount(self) -> None:
        self.fill_table()
        self.call_after_refresh(self.draw)

    def fill_table(self) -> None:
        """One row per run: its ending and scores, then each config key the runs do not share."""
        from trm_core.control.run_status import run_status
        from trm_core.export.tables import differing_keys, run_config_columns

        configs = [run_config_columns(run) for run in self.runs]
        keys = differing_keys(configs) if len(self.runs) > 1 else []
        table = self.query_one("#compare-table", DataTable)
        table.add_columns("RUN", "STATE", "STEP", "LOSS", "EVAL LOSS", "BEST", "TO-TARGET", *keys)
        for run, cfg in zip(self.runs, configs):
            st = run_status(run)
            best = f"{st.best_score:.3f} @{st.best_step}" if st.best_score is not None else "-"
            to_target = f"{duration(st.target_seconds)} @{st.target_step}" if st.target_step is not None else "-"
            table.add_row(run.name, str(st.state), str(st.step if st.step is not None else "-"),
                          _figure(st.loss), _figure(st.eval_loss), best, to_target,
                          *(str(cfg.get(k, "-")) for k in keys), key=str(run))

    def draw(self) -> None:
        views = [history_view(run) for run in self.runs]
        loss = [(run.name, view.loss, COLOURS[i % len(COLOURS)]) for i, (run, view) in enumerate(zip(self.runs, views))]
        evals = [(run.name, view.eval_curve, COLOURS[i % len(COLOURS)])
                 for i, (run, view) in enumerate(zip(self.runs, views))]
        self.query_one("#compare-loss", Curve).plot(loss, 1)
        self.query_one("#compare-eval", Curve).plot(evals, 1)

    def on_resize(self) -> None:
        self.call_after_refresh(self.draw)


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
