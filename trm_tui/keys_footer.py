"""The key footer every screen shows (the dashboard's, its dialogs, the predictions browser): one home, so the
browser of ``trm-tui eval --show`` loads no dashboard panels and no plotext."""

from __future__ import annotations

from textual.screen import Screen
from textual.widgets import Footer


class KeysFooter(Footer):
    """Textual's footer, drawn whether or not the app has focus. Textual redraws it only while the app is
    focused; a browser tab (trm-tui serve) reports no focus until the page is clicked, so its footer row
    stayed empty until then."""

    def bindings_changed(self, screen: Screen) -> None:
        self._bindings_ready = True
        if self.is_attached and screen is self.screen:
            self.call_after_refresh(self.recompose)
