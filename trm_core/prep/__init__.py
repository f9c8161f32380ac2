"""Preparing datasets before training (``trm-tui data ...``): puzzle sets in the TRM reference format, built
offline from CSV or JSON sources or generated. NumPy only: no torch, so the CLI builds without loading it; the
worker's reader (``trm_core.data.puzzles``) shares the format module."""
