"""Builders of puzzle datasets in the reference format (``trm-tui data ...``): one module per task."""
