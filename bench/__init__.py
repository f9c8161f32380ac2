"""The benchmarks: each module is run from the repository root as ``python -m bench.NAME`` and prints, side by
side in one run, the ratios docs/benchmarks.md records. Shared helpers live in ``bench.common``."""
