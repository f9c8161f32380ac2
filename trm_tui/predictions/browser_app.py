"""``trm-tui eval --show``: the predictions browser on its own, for an eval folder."""

from __future__ import annotations

from pathlib import Path

from textual.app import App

from trm_tui.predictions.screen import PredictionsScreen


class PredictionsApp(App[None]):
    TITLE = "trm-tui predictions"

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder

    def get_default_screen(self) -> PredictionsScreen:
        return PredictionsScreen(self.folder)
