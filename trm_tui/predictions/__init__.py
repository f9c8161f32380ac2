"""What the model learned, drawn: an eval's examples as their task draws them (``render``), the browser's list
and pictures (``examples``), its screen (``screen``) and the App ``trm-tui eval --show`` runs (``app``)."""
